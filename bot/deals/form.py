"""Reading and validating the submitted modal: Slack view state -> DealRequest or inline errors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import BaseModel

from bot.blocks.custom_fields import HIDDEN_TYPES
from bot.blocks.custom_fields import PREFIX as CUSTOM_PREFIX
from bot.blocks.modal import LeadOption, ModalForm, ModalMetadata
from bot.close.catalog import Catalog
from bot.close.models import CustomField
from bot.deals.fields import (
    PERIODS,
    Invalid,
    read_confidence,
    read_date,
    read_period_choice,
    read_value,
)
from bot.deals.models import DealRequest, LeadChoice

_T = TypeVar("_T")


class FormValues(BaseModel):
    """The modal's inputs as submitted, read tolerantly (any odd shape reads as empty)."""

    lead: str | None = None
    lead_label: str | None = None
    value: str | None = None
    value_period: str | None = None
    confidence: str | None = None
    date_won: str | None = None
    status: str | None = None
    owner: str | None = None
    contact: str | None = None
    note: str | None = None
    custom: dict[str, dict[str, Any]] = {}  # cf_id -> the element's raw state


def _element(values: dict[str, Any], block_id: str) -> dict[str, Any]:
    block = values.get(block_id)
    if not isinstance(block, dict):
        return {}
    element = block.get(block_id)
    if not isinstance(element, dict):
        element = next((v for v in block.values() if isinstance(v, dict)), {})
    return element


def _text(element: dict[str, Any], key: str = "value") -> str | None:
    value = element.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _selected(element: dict[str, Any]) -> tuple[str | None, str | None]:
    option = element.get("selected_option")
    if not isinstance(option, dict):
        return None, None
    value = option.get("value")
    text = option.get("text")
    label = text.get("text") if isinstance(text, dict) else None
    return (value if isinstance(value, str) else None, label if isinstance(label, str) else None)


def read_state(values: object) -> FormValues:
    """`view.state.values` -> FormValues; never raises, whatever the payload holds."""
    if not isinstance(values, dict):
        return FormValues()
    lead, lead_label = _selected(_element(values, "lead"))
    return FormValues(
        lead=lead,
        lead_label=lead_label,
        value=_text(_element(values, "value")),
        value_period=_selected(_element(values, "value_period"))[0],
        confidence=_text(_element(values, "confidence")),
        date_won=_text(_element(values, "date_won"), "selected_date"),
        status=_selected(_element(values, "status"))[0],
        owner=_text(_element(values, "owner"), "selected_user"),
        contact=_selected(_element(values, "contact"))[0],
        note=_text(_element(values, "note")),
        custom={
            key.removeprefix(CUSTOM_PREFIX): _element(values, key)
            for key in values
            if isinstance(key, str) and key.startswith(CUSTOM_PREFIX)
        },
    )


def _custom_value(field: CustomField, element: dict[str, Any]) -> tuple[Any, str | None]:
    """(value as Close takes it, or None; an error message, or None)."""
    kind = field.type
    if kind == "date":
        return _text(element, "selected_date"), None
    if kind == "datetime":
        stamp = element.get("selected_date_time")
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            return datetime.fromtimestamp(stamp, UTC).isoformat(), None
        return None, None
    if isinstance(element.get("selected_options"), list):
        chosen = [o.get("value") for o in element["selected_options"] if isinstance(o, dict)]
        return [v for v in chosen if isinstance(v, str)] or None, None
    if "selected_option" in element:
        chosen_value = _selected(element)[0]
        if chosen_value is not None and field.accepts_multiple_values:
            return [chosen_value], None  # Close takes a list for a multi-value field, always
        return chosen_value, None
    text = _text(element)
    if text is None:
        return None, None
    if kind == "number":
        try:
            number = Decimal(text.replace(",", "").replace(" ", ""))
        except InvalidOperation:
            number = None
        # Decimal reads "NaN" and "Infinity", which JSON (and Close) cannot take.
        if number is None or not number.is_finite():
            return None, f"“{text[:40]}” is not a number."
        return (int(number) if number == number.to_integral_value() else float(number)), None
    if kind == "choices" and field.accepts_multiple_values:
        return [text], None
    return text, None


class Validated(BaseModel):
    """A DealRequest still missing the owner's Close user (mapped afterwards), or errors."""

    request: DealRequest | None = None
    errors: dict[str, str] = {}


def validate(form: FormValues, catalog: Catalog) -> Validated:
    """Check every field; each problem becomes a message under its block (`response_action: errors`)."""
    errors: dict[str, str] = {}
    lead = _lead(form, errors)
    money = _checked(read_value(form.value), "value", errors) if form.value else None
    # A period typed with the amount ("12k/mo") counts unless the select says otherwise.
    period_text = form.value_period or (money.period if money is not None else None)
    period = (
        _checked(read_period_choice(period_text), "value_period", errors)
        if period_text is not None
        else None
    )
    confidence = (
        _checked(read_confidence(form.confidence), "confidence", errors)
        if form.confidence
        else None
    )
    date_won = _checked(read_date(form.date_won), "date_won", errors) if form.date_won else None
    status_id, pipeline_id = _status_and_pipeline(form, catalog, errors)
    custom = _custom_values(form, catalog, errors)

    if errors or lead is None:
        return Validated(errors=errors)
    return Validated(
        request=DealRequest(
            lead=lead,
            lead_name=lead.new_name or form.lead_label or lead.id or "",
            status_id=status_id,
            pipeline_id=pipeline_id,
            value=money.cents if money is not None else None,
            value_period=period,
            confidence=confidence,
            date_won=date_won,
            contact_id=form.contact,
            note=form.note,
            custom=custom,
        )
    )


def _checked(result: _T | Invalid, block_id: str, errors: dict[str, str]) -> _T | None:
    """The field's value, or None with its message recorded under its block."""
    if isinstance(result, Invalid):
        errors[block_id] = result.in_modal
        return None
    return result


def _lead(form: FormValues, errors: dict[str, str]) -> LeadChoice | None:
    if not form.lead:
        errors["lead"] = "Pick a lead, or type a name and choose “Create new lead”."
        return None
    lead = LeadChoice.from_option_value(form.lead)
    if lead.id is None and not lead.new_name:
        errors["lead"] = "Type the new lead's name."
    return lead


def _status_and_pipeline(
    form: FormValues, catalog: Catalog, errors: dict[str, str]
) -> tuple[str | None, str | None]:
    """The chosen status's id and its pipeline's (Close files an opportunity under both)."""
    if not form.status:
        return None, None
    status = catalog.status(form.status)
    if status is None:
        errors["status"] = "This status no longer exists in Close. Pick another one."
        return None, None
    pipeline = catalog.pipeline_for_status(status.id)
    return status.id, pipeline.id if pipeline else status.pipeline_id


def _custom_values(form: FormValues, catalog: Catalog, errors: dict[str, str]) -> dict[str, Any]:
    """Each custom field's value as Close takes it. A required field is asked of the user only
    when the submitted view showed it: not a hidden type, nor one missing from the view (added
    in Close since the form opened, say)."""
    custom: dict[str, Any] = {}
    for field in catalog.custom_fields:
        element = form.custom.get(field.id)
        field_value, problem = (
            _custom_value(field, element) if element is not None else (None, None)
        )
        if problem:
            errors[CUSTOM_PREFIX + field.id] = problem
        elif field_value is not None:
            custom[field.id] = field_value
        elif field.required and field.type not in HIDDEN_TYPES and element is not None:
            errors[CUSTOM_PREFIX + field.id] = f"{field.name} is required in Close."
    return custom


def modal_form_from_values(
    form: FormValues, metadata: ModalMetadata, catalog: Catalog
) -> ModalForm:
    """Rebuild the modal from what the user has entered so far (for views.update)."""
    custom: dict[str, Any] = {}
    for field in catalog.custom_fields:
        element = form.custom.get(field.id)
        if element is not None:
            value, _problem = _custom_value(field, element)
            custom[field.id] = value if value is not None else _text(element)
    return ModalForm(
        metadata=metadata,
        lead=LeadOption(value=form.lead, label=form.lead_label or form.lead) if form.lead else None,
        value_text=form.value,
        value_period=form.value_period if form.value_period in PERIODS else None,  # type: ignore[arg-type]
        confidence=int(form.confidence) if form.confidence and form.confidence.isdigit() else None,
        date_won=_date_or_none(form.date_won),
        status_id=form.status,
        owner=form.owner,
        contact_id=form.contact,
        note=form.note,
        custom=custom,
    )


def _date_or_none(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None
