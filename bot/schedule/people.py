"""Each person's settings for what the bot sends on its own (nudges, alerts) and their time zone
as Slack last said it (person_settings)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.db import dialect_insert, writer_for
from bot.store.tables import PersonSettingsRow

_t = PersonSettingsRow.__table__


class PersonSettings(BaseModel):
    slack_user_id: str
    nudges: bool = True
    alerts: bool = True
    tz: str | None = None
    tz_read_at: datetime | None = None


class People:
    """person_settings: the switches (default on) and the zones the planner reads."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect
        self._writer = writer_for(sessions)

    async def get(self, slack_user_id: str) -> PersonSettings:
        async with self._sessions() as session:
            row = await session.get(PersonSettingsRow, slack_user_id)
        if row is None:
            return PersonSettings(slack_user_id=slack_user_id)
        return _to_model(row)

    async def everyone(self) -> list[PersonSettings]:
        async with self._sessions() as session:
            rows = await session.scalars(select(PersonSettingsRow))
            return [_to_model(row) for row in rows.all()]

    async def zones_read_at(self) -> datetime | None:
        """When the zones were last read from Slack (the newest), None if never."""
        async with self._sessions() as session:
            newest: datetime | None = await session.scalar(
                select(func.max(PersonSettingsRow.tz_read_at))
            )
        return newest

    async def set_nudges(self, slack_user_id: str, on: bool, *, now: datetime) -> None:
        await self._upsert([{"slack_user_id": slack_user_id, "nudges": on, "updated_at": now}])

    async def set_alerts(self, slack_user_id: str, on: bool, *, now: datetime) -> None:
        await self._upsert([{"slack_user_id": slack_user_id, "alerts": on, "updated_at": now}])

    async def remember_zones(self, zones: Sequence[tuple[str, str]], *, now: datetime) -> None:
        """Each (Slack user id, IANA zone) read from Slack now; switches left as they are."""
        await self._upsert(
            [
                {"slack_user_id": user, "tz": tz, "tz_read_at": now, "updated_at": now}
                for user, tz in zones
            ]
        )

    async def _upsert(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        insert = dialect_insert(self._dialect)

        def write(connection: Connection) -> None:
            for row in rows:
                statement = insert(_t).values(**row)
                changes = {k: v for k, v in row.items() if k != "slack_user_id"}
                connection.execute(
                    statement.on_conflict_do_update(index_elements=["slack_user_id"], set_=changes)
                )

        await self._writer.run_core(write)


def _to_model(row: PersonSettingsRow) -> PersonSettings:
    return PersonSettings(
        slack_user_id=row.slack_user_id,
        nudges=row.nudges,
        alerts=row.alerts,
        tz=row.tz,
        tz_read_at=row.tz_read_at,
    )
