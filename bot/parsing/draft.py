"""The result of parsing a line of text: the `parse` JSON contract of PRODUCT.md."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.close.models import ValuePeriod


class Draft(BaseModel):
    """What the text said, field by field (None where it said nothing).

    `value` is integer cents; `owner` a Slack user id; `status` as typed, matched to a
    status id by the app. Field names follow Close's opportunity fields.
    """

    model_config = ConfigDict(extra="forbid")

    lead: str | None = None
    value: int | None = None
    value_currency: str | None = None
    value_period: ValuePeriod | None = None
    confidence: int | None = Field(default=None, ge=0, le=100)
    date_won: date | None = None
    owner: str | None = None
    status: str | None = None
    note: str | None = None
    warnings: list[str] = Field(default_factory=list)

    def to_contract(self) -> dict[str, Any]:
        """The JSON object `python -m bot parse` prints: every key present, nulls included."""
        return self.model_dump(mode="json")
