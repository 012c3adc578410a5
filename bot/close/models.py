"""Pydantic models of the Close objects the bot reads and writes, named as Close names them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ValuePeriod = Literal["one_time", "monthly", "annual"]
StatusType = Literal["active", "won", "lost"]


class CloseObject(BaseModel):
    """Close adds fields over time: keep what we know, ignore the rest."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Status(CloseObject):
    id: str
    label: str
    type: StatusType = "active"
    pipeline_id: str | None = None


class Pipeline(CloseObject):
    id: str
    name: str
    statuses: list[Status] = Field(default_factory=list)


class User(CloseObject):
    id: str
    email: str = ""
    first_name: str | None = None
    last_name: str | None = None
    image: str | None = None

    @property
    def display_name(self) -> str:
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return name or self.email or self.id

    @property
    def label(self) -> str:
        """How people are shown a Close user: their name, with the email when it differs."""
        name = self.display_name
        return f"{name} ({self.email})" if self.email and name != self.email else name


class Membership(CloseObject):
    """An org member as `/organization/{id}/` lists it; `active` is False for people who left."""

    user_id: str
    active: bool = True


class CustomField(CloseObject):
    id: str
    name: str
    type: str = "text"
    choices: list[str] = Field(default_factory=list)
    accepts_multiple_values: bool = False
    required: bool = False
    description: str | None = None


class Contact(CloseObject):
    id: str
    lead_id: str | None = None
    name: str | None = None
    display_name: str | None = None
    title: str | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.name or self.id


class Lead(CloseObject):
    id: str
    display_name: str = ""
    name: str | None = None
    html_url: str | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.name or self.id


class Me(CloseObject):
    id: str
    email: str = ""
    first_name: str | None = None
    last_name: str | None = None
    organizations: list[dict[str, Any]] = Field(default_factory=list)


class OpportunityCreate(BaseModel):
    """The body of `POST /opportunity/` (Close's `CreateOpportunity`), custom fields included.

    `value` is integer cents. `custom` holds `cf_...` ids and is written as top-level
    `"custom.cf_..."` keys by :meth:`to_close`.
    """

    model_config = ConfigDict(extra="forbid")

    lead_id: str
    status_id: str | None = None
    pipeline_id: str | None = None
    value: int | None = Field(default=None, ge=0)
    value_period: ValuePeriod | None = None
    confidence: int | None = Field(default=None, ge=0, le=100)
    date_won: date | None = None
    contact_id: str | None = None
    user_id: str | None = None
    note: str | None = None
    # Who Close shows as its creator, when the key creates it on someone's behalf.
    created_by: str | None = None
    custom: dict[str, Any] = Field(default_factory=dict)

    def to_close(self) -> dict[str, Any]:
        """The JSON body Close expects: no nulls we did not mean, dates as YYYY-MM-DD."""
        body: dict[str, Any] = self.model_dump(mode="json", exclude={"custom"}, exclude_none=True)
        for field_id, field_value in self.custom.items():
            body[f"custom.{field_id}"] = field_value
        return body


class Opportunity(CloseObject):
    """An opportunity as Close returns it."""

    id: str
    lead_id: str
    lead_name: str | None = None
    status_id: str | None = None
    status_label: str | None = None
    status_type: StatusType | None = None
    pipeline_id: str | None = None
    pipeline_name: str | None = None
    value: int | None = None
    value_period: ValuePeriod | None = None
    value_currency: str | None = None
    value_formatted: str | None = None
    confidence: int | None = None
    date_won: date | None = None
    user_id: str | None = None
    user_name: str | None = None
    contact_id: str | None = None
    contact_name: str | None = None
    note: str | None = None
    date_created: str | None = None
    date_updated: str | None = None
    date_lost: str | None = None
    # Close's yearly figures (monthly x 12): what the digest adds up.
    annualized_value: int | None = None
    annualized_expected_value: int | None = None
    custom: dict[str, Any] = Field(default_factory=dict)


class LeadWithOpportunities(Lead):
    """A lead with what its page in Close leads with: its status and its opportunities.

    `GET /lead/{id}/` embeds every opportunity of the lead (open, won and lost) as
    :class:`Opportunity` objects; `status_id`/`status_label` are the lead's own status.
    """

    status_id: str | None = None
    status_label: str | None = None
    opportunities: list[Opportunity] = Field(default_factory=list)


class OpportunityPage(CloseObject):
    """The first page of `GET /opportunity/` and `total_results`: how many match in all."""

    data: list[Opportunity] = Field(default_factory=list)
    total_results: int = 0


class EventPage(CloseObject):
    """A page of `GET /event/`: events latest first, and the cursor to older ones."""

    data: list[dict[str, Any]] = Field(default_factory=list)
    cursor_next: str | None = None
    cursor_previous: str | None = None


class WebhookSubscription(CloseObject):
    """A webhook subscription; `signature_key` (hex) comes with the create response."""

    id: str
    url: str = ""
    status: str = "active"
    events: list[dict[str, Any]] = Field(default_factory=list)
    signature_key: str | None = None


def parse_close_time(text: str) -> datetime | None:
    """Close's ISO 8601 instants ("2026-11-30T13:48:39.123000+00:00", or with a Z), as aware UTC."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
