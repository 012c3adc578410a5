"""The workflow_steps table: a step stored before its ack, claimed once, told to Slack once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Row, Table, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.deals.models import SubmissionState
from bot.jobs import NOW, ClaimSpec, DurableQueue
from bot.store.db import insert_once, update_where
from bot.store.tables import SubmissionRow, WorkflowStepRow
from bot.workflow.models import StepState, WorkflowStep

OPEN_STATES = (StepState.RECEIVED.value, StepState.ACCEPTED.value)


def _to_model(row: WorkflowStepRow | Row[Any]) -> WorkflowStep:
    return WorkflowStep.model_validate(
        {column.key: getattr(row, column.key) for column in WorkflowStepRow.__table__.columns}
    )


def _held(step: WorkflowStep) -> ColumnElement[bool]:
    """Still claimed by whoever claimed `step`: `attempts` is the claim's fencing token."""
    return and_(
        WorkflowStepRow.function_execution_id == step.function_execution_id,
        WorkflowStepRow.state == step.state.value,
        WorkflowStepRow.attempts == step.attempts,
    )


_t = cast(Table, WorkflowStepRow.__table__)
_FINISHED = select(SubmissionRow.id).where(
    or_(
        and_(
            SubmissionRow.state == SubmissionState.CREATED.value,
            SubmissionRow.confirmed_at.is_not(None),
        ),
        SubmissionRow.state == SubmissionState.FAILED.value,
    )
)
CLAIM = ClaimSpec(
    table=_t,
    key=_t.c.function_execution_id,
    # Received and not yet read; or accepted, its submission over, Slack not yet told.
    due=and_(
        _t.c.next_attempt_at <= NOW,
        or_(_t.c.claimed_until.is_(None), _t.c.claimed_until < NOW),
        or_(
            _t.c.state == StepState.RECEIVED.value,
            and_(_t.c.state == StepState.ACCEPTED.value, _t.c.submission_id.in_(_FINISHED)),
        ),
    ),
    order_by=(_t.c.next_attempt_at,),
    sets={"updated_at": NOW},
    # The runner asks once a poll period: a plain read first, so that finding nothing (nearly
    # always) costs no write transaction (SQLite has one writer).
    peek=True,
    held=_held,
    touch=True,
)


class StepStore(DurableQueue[WorkflowStep]):
    """Workflow steps received: a durable queue of steps to read and to tell Slack about
    (claimed through `CLAIM`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        super().__init__(sessions, dialect=dialect, spec=CLAIM, load=lambda row, _: _to_model(row))

    async def receive(
        self,
        *,
        function_execution_id: str,
        inputs: dict[str, Any],
        bot_access_token: str,
        team_id: str | None,
        now: datetime,
    ) -> tuple[WorkflowStep, bool]:
        """Store a step before the ack: (step, True) the first time, (the stored one, False)
        for a redelivery of the same execution, whichever process it reaches."""
        values: dict[str, Any] = {
            "function_execution_id": function_execution_id,
            "team_id": team_id,
            "inputs": inputs,
            "bot_access_token": bot_access_token,
            "state": StepState.RECEIVED.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        return await insert_once(
            self._writer,
            _t,
            values,
            WorkflowStep.model_validate,
            lambda: self.get(function_execution_id),
        )

    async def get(self, function_execution_id: str) -> WorkflowStep | None:
        async with self._sessions() as session:
            row = await session.get(WorkflowStepRow, function_execution_id)
            return _to_model(row) if row else None

    # --- claims ---------------------------------------------------------------------------

    async def claim(
        self, function_execution_id: str, *, now: datetime, lease: timedelta, owner: str
    ) -> WorkflowStep | None:
        """Take this step if it is due and nobody holds it (the listener, right after its ack)."""
        claimed = await self.claim_ids([function_execution_id], now=now, lease=lease, owner=owner)
        return claimed[0] if claimed else None

    async def _update(self, where: ColumnElement[bool], now: datetime, **values: Any) -> bool:
        return await update_where(self._writer, WorkflowStepRow, where, updated_at=now, **values)

    # --- writes of the claim's holder (False: the claim was lost) --------------------------

    async def accepted(self, step: WorkflowStep, *, submission_id: str, now: datetime) -> bool:
        """The step is a submission now; it is due again (to tell Slack) once that is over."""
        return await self._update(
            _held(step),
            now,
            state=StepState.ACCEPTED.value,
            submission_id=submission_id,
            next_attempt_at=now,
            claimed_until=None,
            error=None,
        )

    async def retry_at(
        self, step: WorkflowStep, *, at: datetime, error: str, now: datetime
    ) -> bool:
        """Not done yet (Close or Slack did not answer): due again at `at`."""
        return await self._update(
            _held(step), now, next_attempt_at=at, error=error, claimed_until=None
        )

    async def hand_back(self, step: WorkflowStep, *, now: datetime) -> bool:
        """Given back at shutdown: due again at once, elsewhere."""
        return await self._update(_held(step), now, claimed_until=None)

    # --- the end (idempotent: Slack says when it was told already) -------------------------

    async def finish(
        self, function_execution_id: str, *, state: StepState, error: str | None, now: datetime
    ) -> bool:
        """Slack was told (completed or failed); False if it was already marked done."""
        return await self._update(
            and_(
                WorkflowStepRow.function_execution_id == function_execution_id,
                WorkflowStepRow.state.in_(OPEN_STATES),
            ),
            now,
            state=state.value,
            error=error,
            completed_at=now,
            claimed_until=None,
        )

    async def defer(
        self, function_execution_id: str, *, at: datetime, error: str, now: datetime
    ) -> None:
        """Telling Slack failed for now: the worker tries again at `at`."""
        await self._update(
            and_(
                WorkflowStepRow.function_execution_id == function_execution_id,
                WorkflowStepRow.state.in_(OPEN_STATES),
            ),
            now,
            next_attempt_at=at,
            error=error,
            claimed_until=None,
        )

    # --- reads (history) --------------------------------------------------------------------

    async def for_submissions(self, submission_ids: Iterable[str]) -> dict[str, WorkflowStep]:
        ids = [value for value in submission_ids if value]
        if not ids:
            return {}
        async with self._sessions() as session:
            rows = await session.scalars(
                select(WorkflowStepRow).where(WorkflowStepRow.submission_id.in_(ids))
            )
            return {row.submission_id: _to_model(row) for row in rows.all() if row.submission_id}

    async def without_submission(self, *, limit: int = 20) -> list[WorkflowStep]:
        """Steps that never became a submission (bad inputs), or not yet: newest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(WorkflowStepRow)
                .where(WorkflowStepRow.submission_id.is_(None))
                .order_by(WorkflowStepRow.created_at.desc())
                .limit(limit)
            )
            return [_to_model(row) for row in rows.all()]
