"""Data shapes of a deal on its way from the modal to Close."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.close.models import OpportunityCreate, ValuePeriod

NEW_LEAD_PREFIX = "new:"


class LeadChoice(BaseModel):
    """The `lead` select's value: an existing Close lead id, or `new:<name>` to create one."""

    model_config = ConfigDict(frozen=True)

    id: str | None = None
    new_name: str | None = None

    @classmethod
    def from_option_value(cls, value: str) -> LeadChoice:
        if value.startswith(NEW_LEAD_PREFIX):
            return cls(new_name=value.removeprefix(NEW_LEAD_PREFIX).strip())
        return cls(id=value)

    @property
    def option_value(self) -> str:
        return self.id if self.id else NEW_LEAD_PREFIX + (self.new_name or "")


class DealRequest(BaseModel):
    """A validated submission: everything `POST /opportunity/` needs except, for a new lead, its id."""

    model_config = ConfigDict(extra="forbid")

    lead: LeadChoice
    lead_name: str
    status_id: str | None = None
    pipeline_id: str | None = None
    value: int | None = None
    value_period: ValuePeriod | None = None
    confidence: int | None = None
    date_won: date | None = None
    contact_id: str | None = None
    user_id: str | None = None
    note: str | None = None
    custom: dict[str, Any] = Field(default_factory=dict)
    tz_offset_hours: float | None = None
    owner_slack_id: str | None = None

    def to_create(self, lead_id: str) -> OpportunityCreate:
        fields = self.model_dump(exclude={"lead", "lead_name", "tz_offset_hours", "owner_slack_id"})
        return OpportunityCreate(lead_id=lead_id, **fields)


class ReplyTarget(BaseModel):
    """Where the outcome is told: a channel (and thread), with the command's response_url as fallback."""

    user_id: str
    channel_id: str | None = None
    thread_ts: str | None = None
    response_url: str | None = None
    view_id: str | None = None  # the modal, while it still shows "Creating…"
    # A Workflow Builder step's function_execution_id: the outcome completes that step, and
    # nothing is posted but the confirmation in `channel_id` (when the workflow gave one).
    workflow_step: str | None = None


class SubmissionState(StrEnum):
    PENDING = "pending"
    CREATING = "creating"
    CREATED = "created"
    FAILED = "failed"


class Submission(BaseModel):
    """A stored submission, as the worker and `history` see it."""

    id: str
    idempotency_key: str
    state: SubmissionState
    slack_user_id: str
    team_id: str | None = None
    request: DealRequest
    reply_to: ReplyTarget
    lead_id: str | None = None
    opportunity_id: str | None = None
    response: dict[str, Any] | None = None
    # The exact create sent to Close by the last attempt that sent one (and when).
    sent: dict[str, Any] | None = None
    # Claimed from a worker whose lease ran out while creating (not a column: set by the claim).
    taken_over: bool = False
    error: str | None = None
    attempts: int = 0
    next_attempt_at: datetime
    first_attempt_at: datetime | None = None
    notice_channel: str | None = None
    notice_ts: str | None = None
    # Where the confirmation's thread and its details message are (Close -> Slack replies there).
    thread_channel: str | None = None
    thread_ts: str | None = None
    details_ts: str | None = None
    announce_channel: str | None = None
    announce_ts: str | None = None
    confirmed_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
