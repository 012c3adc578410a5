"""The submissions table as a durable work queue: accept once, claim once, record the outcome."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.deals.models import DealRequest, ReplyTarget, Submission, SubmissionState
from bot.store.tables import SubmissionRow


def _to_model(row: SubmissionRow) -> Submission:
    return Submission.model_validate(
        {column.key: getattr(row, column.key) for column in SubmissionRow.__table__.columns}
    )


class SubmissionStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect

    async def accept(
        self,
        *,
        idempotency_key: str,
        request: DealRequest,
        reply_to: ReplyTarget,
        slack_user_id: str,
        team_id: str | None,
        now: datetime,
    ) -> tuple[Submission, bool]:
        """Store a submission before the ack. Returns (submission, True) the first time the key
        is seen and (the existing one, False) for a double tap or a re-sent request."""
        row = SubmissionRow(
            id=str(uuid.uuid4()),
            idempotency_key=idempotency_key,
            state=SubmissionState.PENDING.value,
            team_id=team_id,
            slack_user_id=slack_user_id,
            request=request.model_dump(mode="json"),
            reply_to=reply_to.model_dump(mode="json"),
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
            return _to_model(row), True
        except IntegrityError:
            existing = await self.by_key(idempotency_key)
            if existing is None:  # pragma: no cover - the unique key says it exists
                raise
            return existing, False

    async def by_key(self, idempotency_key: str) -> Submission | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(SubmissionRow).where(SubmissionRow.idempotency_key == idempotency_key)
            )
            return _to_model(row) if row else None

    async def get(self, submission_id: str) -> Submission | None:
        async with self._sessions() as session:
            row = await session.get(SubmissionRow, submission_id)
            return _to_model(row) if row else None

    async def claim_due(
        self, *, now: datetime, lease: timedelta, limit: int = 10
    ) -> list[Submission]:
        """Take up to `limit` due submissions for this worker.

        Due: pending with its next attempt reached, or creating whose lease ran out (the worker
        that held it died). The claim is a compare-and-set, so two workers — in one process or
        in two instances on one PostgreSQL — never work the same submission at once; on
        PostgreSQL the candidates are read with FOR UPDATE SKIP LOCKED so instances don't queue
        behind each other's rows.
        """
        due = or_(
            (SubmissionRow.state == SubmissionState.PENDING.value)
            & (SubmissionRow.next_attempt_at <= now),
            (SubmissionRow.state == SubmissionState.CREATING.value)
            & (SubmissionRow.claimed_until < now),
        )
        claimed: list[Submission] = []
        async with self._sessions.begin() as session:
            query = select(SubmissionRow).where(due).order_by(SubmissionRow.next_attempt_at)
            query = query.limit(limit)
            if self._dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = (await session.scalars(query)).all()
            for row in rows:
                result = await session.execute(
                    update(SubmissionRow)
                    .where(SubmissionRow.id == row.id, due)
                    .values(
                        state=SubmissionState.CREATING.value,
                        claimed_until=now + lease,
                        attempts=SubmissionRow.attempts + 1,
                        first_attempt_at=row.first_attempt_at or now,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(row.id)  # type: ignore[arg-type]
        return [s for s in [await self.get(i) for i in claimed] if s is not None]  # type: ignore[arg-type]

    async def _update(self, submission_id: str, now: datetime, **values: Any) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(SubmissionRow)
                .where(SubmissionRow.id == submission_id)
                .values(updated_at=now, **values)
            )

    async def set_lead(self, submission_id: str, lead_id: str, *, now: datetime) -> None:
        await self._update(submission_id, now, lead_id=lead_id)

    async def mark_created(
        self,
        submission_id: str,
        *,
        lead_id: str,
        opportunity_id: str,
        response: dict[str, Any],
        now: datetime,
    ) -> None:
        await self._update(
            submission_id,
            now,
            state=SubmissionState.CREATED.value,
            lead_id=lead_id,
            opportunity_id=opportunity_id,
            response=response,
            error=None,
            claimed_until=None,
        )

    async def schedule_retry(
        self, submission_id: str, *, at: datetime, error: str, now: datetime
    ) -> None:
        await self._update(
            submission_id,
            now,
            state=SubmissionState.PENDING.value,
            next_attempt_at=at,
            error=error,
            claimed_until=None,
        )

    async def mark_failed(
        self, submission_id: str, *, error: str, response: dict[str, Any] | None, now: datetime
    ) -> None:
        await self._update(
            submission_id,
            now,
            state=SubmissionState.FAILED.value,
            error=error,
            response=response,
            claimed_until=None,
        )

    async def set_notice(self, submission_id: str, *, channel: str, ts: str, now: datetime) -> None:
        await self._update(submission_id, now, notice_channel=channel, notice_ts=ts)

    async def recent(
        self, *, slack_user_id: str | None = None, limit: int = 20
    ) -> Sequence[Submission]:
        async with self._sessions() as session:
            query = select(SubmissionRow).order_by(SubmissionRow.created_at.desc()).limit(limit)
            if slack_user_id:
                query = query.where(SubmissionRow.slack_user_id == slack_user_id)
            return [_to_model(row) for row in (await session.scalars(query)).all()]
