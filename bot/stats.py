"""What the store holds, in numbers, for /metrics: cheap reads on the state indexes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.deals.models import SubmissionState
from bot.metrics import StoreNumbers
from bot.store.tables import CloseEventRow, SubmissionRow
from bot.sync.store import OPEN_STATES

WAITING = (SubmissionState.PENDING.value, SubmissionState.CREATING.value)


async def store_numbers(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime
) -> StoreNumbers:
    """Submissions by state and the oldest not yet in Close; changes from Close not yet
    applied and the oldest of them. One short read transaction, counts from the indexes."""
    async with sessions() as session:
        by_state = await session.execute(
            select(SubmissionRow.state, func.count()).group_by(SubmissionRow.state)
        )
        oldest_submission: datetime | None = await session.scalar(
            select(func.min(SubmissionRow.created_at)).where(SubmissionRow.state.in_(WAITING))
        )
        open_changes = await session.execute(
            select(func.count(), func.min(CloseEventRow.received_at)).where(
                CloseEventRow.state.in_(OPEN_STATES)
            )
        )
        waiting, oldest_change = open_changes.one()
    return StoreNumbers(
        submissions={str(state): int(count) for state, count in by_state.all()},
        queue_oldest_seconds=_age(oldest_submission, now),
        changes_waiting=int(waiting or 0),
        changes_oldest_seconds=_age(oldest_change, now),
    )


def _age(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0
