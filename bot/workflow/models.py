"""Data shapes of a Workflow Builder step on its way from `function_executed` to its completion."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

CALLBACK_ID = "create_opportunity"
# One execution makes at most one submission: this prefix plus its id is the submission's key.
IDEMPOTENCY_PREFIX = "workflow:"
# Slack's `bot_access_token` of an execution, the only token functions.complete* take, lives
# about 15 minutes from the step's start (SLACK.md; bolt-python issue #1075): after it, a
# completion is refused with `token_expired` / `invalid_auth`, and nothing can tell the workflow.
STEP_TOKEN_LIFE = timedelta(minutes=15)
# The most WORKFLOW_STEP_GIVE_UP_SECONDS may be: the token's life less a minute for what comes
# after the deadline (the last attempt and the last look in Close, CLOSE_TIMEOUT_SECONDS each
# by default 15 s, then the completion itself).
STEP_GIVE_UP_LIMIT_SECONDS = STEP_TOKEN_LIFE.total_seconds() - 60


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
