"""Data shapes of a Workflow Builder step on its way from `function_executed` to its completion."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

CALLBACK_ID = "create_opportunity"
# One execution makes at most one submission: this prefix plus its id is the submission's key.
IDEMPOTENCY_PREFIX = "workflow:"


class StepState(StrEnum):
    RECEIVED = "received"  # stored and acked; its inputs not read yet
    ACCEPTED = "accepted"  # a submission now: the worker creates it in Close
    COMPLETED = "completed"  # Slack told: functions.completeSuccess
    FAILED = "failed"  # Slack told: functions.completeError
    # Final, Slack never told: it refused the execution's token (expired: the step ran longer
    # than the token lives), or did not answer within the token's life. `error` says which,
    # and what the workflow would have been told.
    UNTOLD = "untold"


FINAL_STATES = (StepState.COMPLETED, StepState.FAILED, StepState.UNTOLD)


class WorkflowStep(BaseModel):
    """A stored step, as the use case and `history` see it."""

    function_execution_id: str
    team_id: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    bot_access_token: str = Field(repr=False)
    state: StepState
    submission_id: str | None = None
    error: str | None = None
    attempts: int = 0
    next_attempt_at: datetime
    claimed_until: datetime | None = None
    claimed_by: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None

    @property
    def id(self) -> str:
        return self.function_execution_id

    @property
    def idempotency_key(self) -> str:
        return IDEMPOTENCY_PREFIX + self.function_execution_id
