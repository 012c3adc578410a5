"""Close's event-log entries and webhook deliveries, as Close shapes them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.close.client import parse_opportunity
from bot.close.models import Opportunity
from bot.close.models import parse_close_time as parse_close_time

# The object and actions the app follows (Close names them so in the event log and webhooks).
OBJECT_TYPE = "opportunity"
ACTIONS: tuple[Literal["created", "updated", "deleted"], ...] = ("created", "updated", "deleted")


class CloseEvent(BaseModel):
    """One entry of Close's event log (also the `event` of a webhook delivery)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=64)
    object_type: str = Field(max_length=64)
    object_id: str = Field(min_length=1, max_length=64)
    action: str = Field(max_length=32)
    lead_id: str | None = None
    date_created: str | None = None
    date_updated: str
    user_id: str | None = None
    api_key_id: str | None = None
    request_id: str | None = None
    changed_fields: list[str] = Field(default_factory=list)
    previous_data: dict[str, Any] | None = None
    data: dict[str, Any] | None = None

    @field_validator("date_updated")
    @classmethod
    def _instant(cls, value: str) -> str:
        if parse_close_time(value) is None:
            raise ValueError("date_updated is not an ISO 8601 instant")
        return value

    @property
    def updated_at(self) -> datetime:
        when = parse_close_time(self.date_updated)
        assert when is not None  # checked by the validator
        return when

    @property
    def followed(self) -> bool:
        """An opportunity created, updated or deleted: what the app shows in Slack."""
        return self.object_type == OBJECT_TYPE and self.action in ACTIONS


class WebhookDelivery(BaseModel):
    """The JSON body Close POSTs to a webhook subscription's URL."""

    model_config = ConfigDict(extra="ignore")

    subscription_id: str | None = None
    event: CloseEvent


def read_opportunity(data: Mapping[str, Any] | None) -> Opportunity | None:
    """An opportunity from a copy of it (an event's, Close's answer, what Slack shows); None
    when there is none or it cannot be read."""
    if not data:
        return None
    try:
        return parse_opportunity(data)
    except ValueError:
        return None


def same_data(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two copies of an opportunity hold the same data. Close stamps `date_updated`
    to the microsecond, yet two changes may carry the same stamp: the stamp alone does not
    tell them apart."""
    first, second = read_opportunity(a), read_opportunity(b)
    if first is None or second is None:
        return a == b
    return first == second
