"""The scheduled_sends table: one row per (kind, recipient, period), planned by any number of
processes (ON CONFLICT DO NOTHING), claimed and sent once through the one job runner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Connection, Row, Table, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.jobs import NOW, ClaimSpec, DurableQueue
from bot.store.db import dialect_insert
from bot.store.tables import ScheduledSendRow

PENDING, SENT, SKIPPED = "pending", "sent", "skipped"
# A write of the payload that met another one retries this many times.
PAYLOAD_RETRIES = 5

_t = cast(Table, ScheduledSendRow.__table__)


class Planned(BaseModel):
    """A send to make once: what kind, to whom, for which period, from when."""

    kind: str
    recipient: str
    period: str
    due_at: datetime


class ScheduledSend(BaseModel):
    """A scheduled send as stored; `attempts` is its claim's fencing token."""

    id: str
    kind: str
    recipient: str
    period: str
    state: str
    due_at: datetime
    attempts: int
    claimed_by: str | None = None
    error: str | None = None  # why it was put off or skipped
    posting_at: datetime | None = None
    sent_at: datetime | None = None
    message_channel: str | None = None
    message_ts: str | None = None
    payload: dict[str, Any] | None = None
    revision: int = 0


def _to_model(row: ScheduledSendRow | Row[Any]) -> ScheduledSend:
    return ScheduledSend.model_validate(
        {name: getattr(row, name) for name in ScheduledSend.model_fields}
    )


def _held(send: ScheduledSend) -> ColumnElement[bool]:
    """Still claimed by whoever claimed `send`: `attempts` is the claim's fencing token."""
    return and_(_t.c.id == send.id, _t.c.state == PENDING, _t.c.attempts == send.attempts)


CLAIM = ClaimSpec(
    table=_t,
    key=_t.c.id,
    due=and_(
        _t.c.state == PENDING,
        _t.c.next_attempt_at <= NOW,
        or_(_t.c.claimed_until.is_(None), _t.c.claimed_until < NOW),
    ),
    order_by=(_t.c.next_attempt_at,),
    sets={"updated_at": NOW},
    # Looked for every poll period: a plain read first, so finding nothing costs no write.
    peek=True,
    held=_held,
    touch=True,
)


class ScheduledSends(DurableQueue[ScheduledSend]):
    """Sends planned once per (kind, recipient, period) and claimed through `CLAIM`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        super().__init__(sessions, dialect=dialect, spec=CLAIM, load=lambda row, _: _to_model(row))
        self._insert = dialect_insert(dialect)(_t).on_conflict_do_nothing(
            index_elements=[_t.c.kind, _t.c.recipient, _t.c.period]
        )

    async def plan(self, planned: Sequence[Planned], *, now: datetime) -> int:
        """Store these sends unless stored already (by any process): how many were new."""
        if not planned:
            return 0
        rows = [
            {
                "id": str(uuid.uuid4()),
                "kind": p.kind,
                "recipient": p.recipient,
                "period": p.period,
                "state": PENDING,
                "due_at": p.due_at,
                "attempts": 0,
                "next_attempt_at": p.due_at,
                "revision": 0,
                "created_at": now,
                "updated_at": now,
            }
            for p in planned
        ]
        statement = self._insert

        def write(connection: Connection) -> int:
            # One statement per row: executemany's rowcount is not reliable on every driver.
            return sum(connection.execute(statement, row).rowcount for row in rows)

        return await self._writer.run_core(write)

    async def get(self, send_id: str) -> ScheduledSend | None:
        async with self._sessions() as session:
            row = await session.get(ScheduledSendRow, send_id)
            return _to_model(row) if row else None

    async def find(self, kind: str, recipient: str, period: str) -> ScheduledSend | None:
        query = select(ScheduledSendRow).where(
            ScheduledSendRow.kind == kind,
            ScheduledSendRow.recipient == recipient,
            ScheduledSendRow.period == period,
        )
        async with self._sessions() as session:
            row = await session.scalar(query)
            return _to_model(row) if row else None

    # --- writes of the claim's holder (False: the claim was lost) --------------------------

    async def sent(
        self,
        send: ScheduledSend,
        *,
        channel: str,
        ts: str,
        payload: dict[str, Any],
        now: datetime,
    ) -> bool:
        """The message went out: where it is and what it says."""
        return await self._held_update(
            send,
            now,
            state=SENT,
            sent_at=now,
            message_channel=channel,
            message_ts=ts,
            payload=payload,
            claimed_until=None,
            error=None,
        )

    async def posting(self, send: ScheduledSend, *, now: datetime) -> bool:
        """About to post: if this holder dies before `sent`, the send is not posted again."""
        return await self._held_update(send, now, posting_at=now)

    async def settle_period(self, send: ScheduledSend, period: str, *, now: datetime) -> bool:
        """A send planned under a provisional period (an alert's `open` window, which every
        process plans alike) takes its own, so the next one can be planned."""
        if send.period == period:
            return True
        done = await self._held_update(send, now, period=period)
        if done:
            send.period = period
        return done

    async def skipped(self, send: ScheduledSend, *, why: str, now: datetime) -> bool:
        """Nothing to send (no overdue deal, switched off, not mapped): done all the same."""
        return await self._held_update(send, now, state=SKIPPED, error=why, claimed_until=None)

    async def retry_at(
        self, send: ScheduledSend, *, at: datetime, error: str, now: datetime
    ) -> bool:
        """Not sent, for sure (Close or Slack answered no): due again at `at`."""
        return await self._held_update(
            send, now, next_attempt_at=at, error=error, claimed_until=None, posting_at=None
        )

    async def hand_back(self, send: ScheduledSend, *, now: datetime) -> bool:
        return await self._held_update(send, now, claimed_until=None)

    # --- after the send ------------------------------------------------------------------------

    async def write_payload(
        self, send: ScheduledSend, payload: dict[str, Any], *, now: datetime
    ) -> bool:
        """Replace the payload of a sent message if nobody changed it since `send` was read
        (its `revision`): False means read it again and redo the change."""
        statement = (
            update(_t)
            .where(_t.c.id == send.id, _t.c.revision == send.revision)
            .values(payload=payload, revision=_t.c.revision + 1, updated_at=now)
        )

        def write(connection: Connection) -> bool:
            return bool(connection.execute(statement).rowcount)

        return await self._writer.run_core(write, one_statement=True)
