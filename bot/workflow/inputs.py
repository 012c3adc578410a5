"""Pure: a workflow step's inputs -> what the deal says, or the input at fault and what to do."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from bot.close.catalog import Catalog
from bot.close.models import Status, ValuePeriod
from bot.deals.custom_text import read_custom_fields
from bot.deals.fields import Invalid, read_confidence, read_date, read_period, read_value
from bot.parsing import Draft, parse

# What Workflow Builder shows for each input (the manifests' titles): errors name them so.
INPUT_TITLES: dict[str, str] = {
    "owner": "Owner",
    "text": "Deal text",
    "lead": "Lead",
    "value": "Value",
    "value_period": "Value period",
    "confidence": "Confidence",
    "close_date": "Expected close date",
    "status": "Status",
    "note": "Note",
    "channel": "Post confirmation in",
}
LEAD_ID = re.compile(r"^lead_[A-Za-z0-9]+$")
STATUSES_LISTED = 8
_T = TypeVar("_T")


class InputProblem(BaseModel):
    """Why the step cannot be done as given: which input, and what to change."""

    input: str
    message: str

    def describe(self) -> str:
        """The error Workflow Builder shows: the input by its title, then what to do."""
        return f"The step's “{INPUT_TITLES.get(self.input, self.input)}” input: {self.message}"


class StepInputs(BaseModel):
    """The step's inputs as Slack sent them, read tolerantly (odd shapes read as empty)."""

    owner: str | None = None
    text: str = ""
    lead: str | None = None
    value: str | None = None
    value_period: str | None = None
    confidence: str | None = None
    close_date: str | None = None
    status: str | None = None
    note: str | None = None
    channel: str | None = None

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> StepInputs:
        values = {name: _text(raw.get(name)) for name in cls.model_fields}
        values["text"] = values["text"] or ""
        return cls.model_validate(values)


def _text(value: Any) -> str | None:
    """A scalar as text ("12000" for 12000); empty and non-scalars read as None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


class DealInputs(BaseModel):
    """What the inputs (explicit ones over the text) say, bar the owner's Close user and the
    lead's id: `lead` is as given (a lead id or a name)."""

    lead: str
    status: Status | None = None
    value: int | None = None
    value_period: ValuePeriod | None = None
    confidence: int | None = None
    date_won: date | None = None
    note: str | None = None
    custom: dict[str, Any] = Field(default_factory=dict)


def read_deal(
    inputs: StepInputs,
    catalog: Catalog,
    *,
    now: datetime,
    tz: str,
    locale: str,
    default_status: Status | None,
) -> DealInputs | InputProblem:
    """Read the inputs like the modal reads a command: `text` parsed exactly as /opportunity
    text (custom fields typed as `Name: value` first, then the parse in the owner's zone and
    locale), each explicit input winning over what the text says."""
    typed = read_custom_fields(inputs.text, catalog.custom_fields, users=catalog.users, tz=tz)
    if typed.warnings:
        return InputProblem(
            input="text", message="; ".join(_custom_hint(w, catalog) for w in typed.warnings)
        )
    draft = parse(
        typed.text,
        now=now,
        tz=tz,
        locale=locale,
        status_labels=[status.label for status in catalog.statuses],
    )
    lead = inputs.lead or draft.lead
    if not lead:
        return InputProblem(
            input="lead",
            message="say which lead: a lead name or id (lead_…) here, "
            "or start the “Deal text” with the lead's name.",
        )
    value_and_period = _value_and_period(inputs, draft, locale=locale)
    if isinstance(value_and_period, InputProblem):
        return value_and_period
    value, period = value_and_period
    confidence = _explicit(inputs.confidence, read_confidence, "confidence", draft.confidence)
    if isinstance(confidence, InputProblem):
        return confidence
    date_won = _explicit(inputs.close_date, read_date, "close_date", draft.date_won)
    if isinstance(date_won, InputProblem):
        return date_won
    status = _status(inputs, draft, catalog, default_status)
    if isinstance(status, InputProblem):
        return status
    return DealInputs(
        lead=lead,
        status=status,
        value=value,
        value_period=period,
        confidence=confidence,
        date_won=date_won,
        note=inputs.note if inputs.note is not None else draft.note,
        custom=typed.custom,
    )


def _explicit(
    given: str | None, read: Callable[[str], _T | Invalid], input_name: str, drafted: _T | None
) -> _T | InputProblem | None:
    """An explicit input read by its field's rule, winning over what the text says."""
    if given is None:
        return drafted
    result = read(given)
    if isinstance(result, Invalid):
        return InputProblem(input=input_name, message=result.in_step)
    return result


def _value_and_period(
    inputs: StepInputs, draft: Draft, *, locale: str
) -> tuple[int | None, ValuePeriod | None] | InputProblem:
    """The value in cents and its period: a period typed with the `value` input ("12k/mo")
    wins over the text's, and the `value_period` input over both."""
    value, money_period = draft.value, None
    if inputs.value is not None:
        money = read_value(inputs.value, locale=locale)
        if isinstance(money, Invalid):
            return InputProblem(input="value", message=money.in_step)
        value, money_period = money.cents, money.period
    period: ValuePeriod | InputProblem | None = _explicit(
        inputs.value_period, read_period, "value_period", money_period or draft.value_period
    )
    if isinstance(period, InputProblem):
        return period
    return value, period


def _status(
    inputs: StepInputs, draft: Draft, catalog: Catalog, default_status: Status | None
) -> Status | InputProblem | None:
    """The `status` input (a label or an id), else a status label the text names, else the
    default; one Close does not have is the input's (or the text's) fault."""
    if inputs.status is not None:
        found = catalog.status_by_label(inputs.status) or catalog.status(inputs.status)
        if found is None:
            return InputProblem(input="status", message=_unknown_status(inputs.status, catalog))
        return found
    if draft.status:
        found = catalog.status_by_label(draft.status)
        if found is None:
            return InputProblem(input="text", message=_unknown_status(draft.status, catalog))
        return found
    return default_status


def is_lead_id(text: str) -> bool:
    return LEAD_ID.match(text.strip()) is not None


def _unknown_status(typed: str, catalog: Catalog) -> str:
    labels = list(dict.fromkeys(status.label for status in catalog.statuses))
    shown = ", ".join(labels[:STATUSES_LISTED]) + (", …" if len(labels) > STATUSES_LISTED else "")
    return f"Close has no status “{typed[:60]}”. Use one of its status labels: {shown}."


def _custom_hint(warning: str, catalog: Catalog) -> str:
    """A custom-field warning of the text, said for a workflow (there is no form to fix it in)."""
    name = warning.split(":", 1)[0]
    field = next((f for f in catalog.custom_fields if f.name == name), None)
    said = warning.removesuffix("; pick it below")
    if field is None:
        return said
    if field.type == "contact":
        return f"{field.name} cannot be set from a workflow step (it is one of the lead's contacts)"
    if field.type == "choices" and field.choices:
        return f"{said}: write one of {', '.join(field.choices[:STATUSES_LISTED])}"
    hints = {"number": "a number", "date": "a date as YYYY-MM-DD", "user": "a Close user's name"}
    return f"{said}: write {hints[field.type]}" if field.type in hints else said
