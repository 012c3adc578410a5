"""The alert_changes table: each change a person is alerted about, noted once (whichever process
or retry notes it) and taken by exactly one window's DM."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.blocks.alerts import Alert
from bot.store.db import dialect_insert, writer_for
from bot.store.tables import AlertChangeRow

_t = cast(Table, AlertChangeRow.__table__)


class AlertChanges:
    """Changes waiting for their DM (`send_id` null), and those each DM took."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self._writer = writer_for(sessions)
        self._insert = dialect_insert(dialect)(_t).on_conflict_do_nothing(
            index_elements=[_t.c.recipient, _t.c.event_id, _t.c.event_updated_at]
        )

    async def note(self, recipient: str, alert: Alert, *, now: datetime) -> bool:
        """Keep `alert` for `recipient` unless kept already: True when it is new."""
        row = {
            "id": str(uuid.uuid4()),
            "recipient": recipient,
            "event_id": alert.event_id,
            "event_updated_at": alert.at,
            "opportunity_id": alert.opportunity_id,
            "alert": alert.model_dump(mode="json"),
            "send_id": None,
            "created_at": now,
        }
        statement = self._insert

        def write(connection: Connection) -> bool:
            return bool(connection.execute(statement, row).rowcount)

        return await self._writer.run_core(write, one_statement=True)

    async def take(self, recipient: str, send_id: str) -> list[Alert]:
        """Every change of `recipient` no DM has taken yet, now `send_id`'s (with those it took
        on an earlier attempt), oldest first. A change noted after this goes in the next DM."""
        statement = (
            update(_t)
            .where(_t.c.recipient == recipient, _t.c.send_id.is_(None))
            .values(send_id=send_id)
        )

        def write(connection: Connection) -> None:
            connection.execute(statement)

        await self._writer.run_core(write, one_statement=True)
        return await self.taken(send_id)

    async def taken(self, send_id: str) -> list[Alert]:
        query = (
            select(AlertChangeRow.alert)
            .where(AlertChangeRow.send_id == send_id)
            .order_by(AlertChangeRow.event_updated_at, AlertChangeRow.created_at)
        )
        async with self._sessions() as session:
            rows = await session.scalars(query)
            return [Alert.model_validate(row) for row in rows.all()]

    async def forget(self, recipient: str, *, before: datetime) -> int:
        """The changes of `recipient`'s DMs noted before `before` (a week is kept, for
        `history`-like questions): how many were forgotten."""
        statement = delete(_t).where(
            _t.c.recipient == recipient, _t.c.send_id.is_not(None), _t.c.created_at < before
        )

        def write(connection: Connection) -> int:
            return int(connection.execute(statement).rowcount or 0)

        return await self._writer.run_core(write, one_statement=True)
