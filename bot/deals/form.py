"""Reading and validating the submitted modal: Slack view state -> DealRequest or inline errors."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, get_args

from pydantic import BaseModel

from bot.blocks.custom_fields import HIDDEN_TYPES
from bot.blocks.custom_fields import PREFIX as CUSTOM_PREFIX
from bot.blocks.modal import LeadOption, ModalForm, ModalMetadata
from bot.close.catalog import Catalog
from bot.close.models import CustomField, ValuePeriod
from bot.deals.models import DealRequest, LeadChoice
from bot.parsing.money import parse_money

_PERIODS: tuple[str, ...] = get_args(ValuePeriod)
_CONFIDENCE = re.compile(r"^\s*(\d{1,3})(?:[.,]0+)?\s*%?\s*$")


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
    lead: LeadChoice | None = None
    if not form.lead:
        errors["lead"] = "Pick a lead, or type a name and choose “Create new lead”."
    else:
        lead = LeadChoice.from_option_value(form.lead)
        if lead.id is None and not lead.new_name:
            errors["lead"] = "Type the new lead's name."

    value: int | None = None
    currency_period: str | None = None
    if form.value:
        money = parse_money(form.value)
        if money is None:
            errors["value"] = f"“{form.value[:50]}” is not an amount. Try 12k, $12,500 or 1.5m."
        else:
            value = money.cents
            currency_period = money.period

    period = form.value_period or currency_period
    if period is not None and period not in _PERIODS:
        errors["value_period"] = "Pick one-time, monthly or annual."
        period = None

    confidence: int | None = None
    if form.confidence:
        match = _CONFIDENCE.match(form.confidence)
        if not match or not 0 <= int(match.group(1)) <= 100:
            errors["confidence"] = "Confidence is a whole number from 0 to 100."
        else:
            confidence = int(match.group(1))

    date_won: date | None = None
    if form.date_won:
        try:
            date_won = date.fromisoformat(form.date_won)
        except ValueError:
            errors["date_won"] = "Pick a date with the date picker."

    status_id = pipeline_id = None
    if form.status:
        status = catalog.status(form.status)
        if status is None:
            errors["status"] = "This status no longer exists in Close. Pick another one."
        else:
            status_id = status.id
            pipeline = catalog.pipeline_for_status(status.id)
            pipeline_id = pipeline.id if pipeline else status.pipeline_id

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

    if errors or lead is None:
        return Validated(errors=errors)
    return Validated(
        request=DealRequest(
            lead=lead,
            lead_name=lead.new_name or form.lead_label or lead.id or "",
            status_id=status_id,
            pipeline_id=pipeline_id,
            value=value,
            value_period=period,  # type: ignore[arg-type]
            confidence=confidence,
            date_won=date_won,
            contact_id=form.contact,
            note=form.note,
            custom=custom,
        )
    )


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
        value_period=form.value_period if form.value_period in _PERIODS else None,  # type: ignore[arg-type]
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
