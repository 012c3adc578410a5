"""Slack's `link_shared` deliveries taken already, by any process sharing the database.

Slack redelivers an event it thinks was missed (`X-Slack-Retry-Num`, within minutes), and the
retry may reach another process. Like every other event the bot takes (a workflow step, a
submission, a Close change), the first process records the event's identity with one insert
(`insert_once`); a redelivery, wherever it lands, finds it taken. The record is a row of the
`sync_state` table (its small durable facts and leases), held until `KEEP`, then pruned.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.db import insert_once, writer_for
from bot.store.tables import SyncStateRow

log = logging.getLogger(__name__)

PREFIX = "link_shared:"
# Slack retries three times, the last about 5 minutes after the first delivery.
KEEP = timedelta(hours=1)
# Receipts past KEEP are deleted by the process that records one, at most this often.
PRUNE_EVERY = timedelta(minutes=10)

_t = cast(Table, SyncStateRow.__table__)
_KEY_LENGTH = 64


def receipt_key(event_id: str) -> str:
    """The row's key: the event id under PREFIX (a digest of it when too long for the key)."""
    key = PREFIX + event_id
    if len(key) <= _KEY_LENGTH:
        return key
    return PREFIX + hashlib.sha256(event_id.encode()).hexdigest()[: _KEY_LENGTH - len(PREFIX)]


class Deliveries:
    """`first(event_id)`: True for the one process that records the event first."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._writer = writer_for(sessions)
        self._pruned_at: datetime | None = None

    async def first(self, event_id: str, *, now: datetime) -> bool:
        values = {"key": receipt_key(event_id), "held_until": now + KEEP, "updated_at": now}

        async def taken() -> bool:
            return False

        recorded, _ = await insert_once(self._writer, _t, values, lambda _: True, taken)
        if recorded and (self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY):
            self._pruned_at = now
            await self.prune(now=now)
        return recorded

    async def prune(self, *, now: datetime) -> int:
        """Forget the receipts held past KEEP; how many."""
        statement = delete(_t).where(
            _t.c.key.startswith(PREFIX, autoescape=True), _t.c.held_until < now
        )

        def write(connection: Connection) -> int:
            return int(connection.execute(statement).rowcount or 0)

        try:
            return await self._writer.run_core(write, one_statement=True)
        except Exception:  # a later receipt prunes them
            log.warning("Could not prune old link_shared receipts", exc_info=True)
            return 0
