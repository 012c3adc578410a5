"""What a user chose last time (status, pipeline, period), read from their latest submission."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.close.models import ValuePeriod
from bot.store.tables import SubmissionRow


class LastUsed(BaseModel):
    status_id: str | None = None
    pipeline_id: str | None = None
    value_period: ValuePeriod | None = None


class Preferences:
    """One indexed lookup per modal open: the user's most recent submission's choices."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def last_used(self, slack_user_id: str) -> LastUsed | None:
        async with self._sessions() as session:
            request = await session.scalar(
                select(SubmissionRow.request)
                .where(SubmissionRow.slack_user_id == slack_user_id)
                .order_by(SubmissionRow.created_at.desc())
                .limit(1)
            )
        if not isinstance(request, dict):
            return None
        return LastUsed.model_validate(request, strict=False)
