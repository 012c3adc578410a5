"""Pure: a workflow step's inputs -> what the deal says, or the input at fault and what to do."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, get_args

from pydantic import BaseModel, Field

from bot.close.catalog import Catalog
from bot.close.models import Status, ValuePeriod
from bot.deals.custom_text import read_custom_fields
from bot.parsing import parse, parse_money
from bot.parsing.periods import PERIOD_RE, period_of

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
_PERIODS: tuple[str, ...] = get_args(ValuePeriod)
_PERIOD_WORDS = {"one_time", "one-time", "one time", "once"}
_CONFIDENCE = re.compile(r"^\s*(\d{1,3})(?:[.,]0+)?\s*%?\s*$")
LEAD_ID = re.compile(r"^lead_[A-Za-z0-9]+$")
STATUSES_LISTED = 8


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

    value, money_period = draft.value, None
    if inputs.value is not None:
        money = parse_money(inputs.value, locale=locale)
        if money is None:
            return InputProblem(
                input="value",
                message=f"“{inputs.value[:50]}” is not an amount. Try 12k, $12,500 or 1.5m.",
            )
        value, money_period = money.cents, money.period

    period: ValuePeriod | None = money_period or draft.value_period
    if inputs.value_period is not None:
        read_period = _period(inputs.value_period)
        if read_period is None:
            return InputProblem(
                input="value_period",
                message=f"“{inputs.value_period[:40]}” is not a period: "
                "use one_time, monthly or annual.",
            )
        period = read_period

    confidence = draft.confidence
    if inputs.confidence is not None:
        match = _CONFIDENCE.match(inputs.confidence)
        if not match or not 0 <= int(match.group(1)) <= 100:
            return InputProblem(
                input="confidence", message="a whole number from 0 to 100, e.g. 60."
            )
        confidence = int(match.group(1))

    date_won = draft.date_won
    if inputs.close_date is not None:
        try:
            date_won = date.fromisoformat(inputs.close_date)
        except ValueError:
            return InputProblem(
                input="close_date",
                message=f"“{inputs.close_date[:40]}” is not a date: use YYYY-MM-DD.",
            )

    status = default_status
    if inputs.status is not None:
        found = catalog.status_by_label(inputs.status) or catalog.status(inputs.status)
        if found is None:
            return InputProblem(input="status", message=_unknown_status(inputs.status, catalog))
        status = found
    elif draft.status:
        found = catalog.status_by_label(draft.status)
        if found is None:
            return InputProblem(input="text", message=_unknown_status(draft.status, catalog))
        status = found

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


def is_lead_id(text: str) -> bool:
    return LEAD_ID.match(text.strip()) is not None


def _period(text: str) -> ValuePeriod | None:
    """one_time, monthly, annual, or any word the parser knows for them ("ARR", "per month")."""
    folded = " ".join(text.split()).casefold()
    if folded in _PERIODS:
        return folded  # type: ignore[return-value]
    if folded in _PERIOD_WORDS:
        return "one_time"
    match = PERIOD_RE.fullmatch(folded)
    return period_of(match) if match else None


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
