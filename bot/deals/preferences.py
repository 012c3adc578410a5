"""What a user chose last time (status, pipeline, period), read from their latest submission."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.close.models import ValuePeriod
from bot.deals.models import Submission
from bot.store.db import writer_for
from bot.store.tables import SubmissionRow

_t = cast(Table, SubmissionRow.__table__)
_LATEST = (
    select(_t.c.request, _t.c.created_at)
    .where(_t.c.slack_user_id == bindparam("user"))
    .order_by(_t.c.created_at.desc())
    .limit(1)
)


class LastUsed(BaseModel):
    status_id: str | None = None
    pipeline_id: str | None = None
    value_period: ValuePeriod | None = None


class Preferences:
    """The user's most recent submission's choices: one indexed read, then from memory.

    Every submission this process accepts is written through (`remember`, wired to the
    submission store), so a user working with one process always sees their last choice. A
    submission accepted by another process (several instances on PostgreSQL, a workflow step
    read by a separate worker) shows once this process's entry is `ttl` old: until then the
    modal may preselect the choice before it. That is a default the user sees and can change
    in the form, so up to `ttl` seconds of lag across processes is the price of no SQL on
    most commands.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl: float = 30.0,
        size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writer = writer_for(sessions)
        self._ttl = ttl
        self._size = size
        self._clock = clock
        # user -> (fresh until, created_at of the submission it comes from, its choices)
        self._known: dict[str, tuple[float, datetime | None, LastUsed | None]] = {}

    def peek(self, slack_user_id: str) -> tuple[bool, LastUsed | None]:
        """(True, choices) when known and fresh, without touching the database."""
        known = self._known.get(slack_user_id)
        if known is None or known[0] < self._clock():
            return False, None
        return True, known[2]

    async def last_used(self, slack_user_id: str) -> LastUsed | None:
        hit, last_used = self.peek(slack_user_id)
        if hit:
            return last_used

        def read(connection: Connection) -> tuple[Any, datetime] | None:
            row = connection.execute(_LATEST, {"user": slack_user_id}).first()
            return (row[0], row[1]) if row is not None else None

        # Urgent: a command's views.open waits on it.
        found = await self._writer.run_core(read, urgent=True, one_statement=True)
        request, created_at = found if found is not None else (None, None)
        last_used = (
            LastUsed.model_validate(request, strict=False) if isinstance(request, dict) else None
        )
        self._keep(slack_user_id, created_at, last_used)
        return last_used

    def remember(self, submission: Submission) -> None:
        """Write-through: `submission` was just stored."""
        request = submission.request
        self._keep(
            submission.slack_user_id,
            submission.created_at,
            LastUsed(
                status_id=request.status_id,
                pipeline_id=request.pipeline_id,
                value_period=request.value_period,
            ),
        )

    def _keep(self, user: str, created_at: datetime | None, last_used: LastUsed | None) -> None:
        known = self._known.get(user)
        if (
            known is not None
            and known[1] is not None
            and (created_at is None or created_at < known[1])
        ):
            # A read that started before a submission was written through must not undo it.
            created_at, last_used = known[1], known[2]
        self._known.pop(user, None)
        if len(self._known) >= self._size:  # the least recently stored goes first
            del self._known[next(iter(self._known))]
        self._known[user] = (self._clock() + self._ttl, created_at, last_used)
