"""Slack→Close user links in SQL: admin overrides (kept until unlinked) and email matches (cached)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from pydantic import BaseModel
from sqlalchemy import Connection, Row, Table, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from bot.store.db import dialect_insert, writer_for
from bot.store.tables import UserLinkRow

LinkSource = Literal["override", "email"]

_links = cast(Table, UserLinkRow.__table__)
_BY_SLACK_USER = select(_links).where(_links.c.slack_user_id == bindparam("slack_user_id"))


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone-aware columns; we only ever write UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class UserLink(BaseModel):
    """One row of `user_links`, named as the table names it."""

    slack_user_id: str
    close_user_id: str | None
    source: LinkSource
    email: str | None = None
    set_by: str | None = None
    updated_at: datetime
    expires_at: datetime | None = None

    @classmethod
    def from_row(cls, row: UserLinkRow | Row[Any]) -> UserLink:
        return cls(
            slack_user_id=row.slack_user_id,
            close_user_id=row.close_user_id,
            source="override" if row.source == "override" else "email",
            email=row.email,
            set_by=row.set_by,
            updated_at=_utc(row.updated_at) or row.updated_at,
            expires_at=_utc(row.expires_at),
        )

    def fresh(self, now: datetime) -> bool:
        """Overrides never expire; an email match is trusted until `expires_at`."""
        return self.expires_at is None or self.expires_at > now


class UserLinkStore:
    """Reads and writes `user_links`; an email match never replaces an override."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect
        self._writer = writer_for(sessions)  # SQLite: the process's one writer thread

    async def get(self, slack_user_id: str) -> UserLink | None:
        """One person's link. Urgent, in one hop (on SQLite the writer thread's connection, not
        aiosqlite's several): a submission's ack may wait on it (a person not seen lately)."""

        def read(connection: Connection) -> UserLink | None:
            row = connection.execute(_BY_SLACK_USER, {"slack_user_id": slack_user_id}).first()
            return UserLink.from_row(row) if row is not None else None

        return await self._writer.run_core(read, urgent=True, one_statement=True)

    async def many(self, slack_user_ids: Iterable[str] | None = None) -> dict[str, UserLink]:
        """Links by Slack user id: all of them, or those of `slack_user_ids` (one query)."""
        query = select(UserLinkRow)
        if slack_user_ids is not None:
            ids = list(slack_user_ids)
            if not ids:
                return {}
            query = query.where(UserLinkRow.slack_user_id.in_(ids))
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return {row.slack_user_id: UserLink.from_row(row) for row in rows}

    async def of_close_user(self, close_user_id: str) -> list[UserLink]:
        """The links to Close user `close_user_id`, admin overrides first."""
        query = select(UserLinkRow).where(UserLinkRow.close_user_id == close_user_id)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        links = [UserLink.from_row(row) for row in rows]
        return sorted(links, key=lambda link: link.source != "override")

    async def set_override(
        self,
        slack_user_id: str,
        close_user_id: str,
        *,
        email: str | None,
        set_by: str,
        now: datetime,
    ) -> UserLink:
        values: dict[str, Any] = {
            "slack_user_id": slack_user_id,
            "close_user_id": close_user_id,
            "source": "override",
            "email": email,
            "set_by": set_by,
            "updated_at": now,
            "expires_at": None,
        }
        await self._upsert(values, only_over_email=False)
        return UserLink.model_validate(values)

    async def remember_email(
        self,
        slack_user_id: str,
        close_user_id: str,
        *,
        email: str,
        now: datetime,
        ttl: timedelta,
    ) -> None:
        """Cache an email match until `now + ttl`, unless an admin override is in place."""
        values: dict[str, Any] = {
            "slack_user_id": slack_user_id,
            "close_user_id": close_user_id,
            "source": "email",
            "email": email,
            "set_by": None,
            "updated_at": now,
            "expires_at": now + ttl,
        }
        await self._upsert(values, only_over_email=True)

    async def remove_override(self, slack_user_id: str) -> UserLink | None:
        """Delete the user's override; returns it, or None when there was none."""

        def remove(session: Session) -> UserLink | None:
            row = session.get(UserLinkRow, slack_user_id)
            if row is None or row.source != "override":
                return None
            removed = UserLink.from_row(row)
            session.delete(row)
            return removed

        return await self._writer.run(remove)

    async def forget_email(self, slack_user_id: str) -> None:
        """Drop a cached email match that no longer holds (an override is left alone)."""
        statement = delete(UserLinkRow).where(
            UserLinkRow.slack_user_id == slack_user_id, UserLinkRow.source == "email"
        )

        def forget(session: Session) -> None:
            session.execute(statement)

        await self._writer.run(forget)

    async def _upsert(self, values: dict[str, Any], *, only_over_email: bool) -> None:
        # One statement, so two instances writing the same user never trip on the primary key.
        changes = {k: v for k, v in values.items() if k != "slack_user_id"}
        guard = (UserLinkRow.source != "override") if only_over_email else None
        statement: Any = None
        if self._dialect in ("sqlite", "postgresql"):
            statement = dialect_insert(self._dialect)(UserLinkRow).values(**values)
            statement = statement.on_conflict_do_update(
                index_elements=[UserLinkRow.slack_user_id], set_=changes, where=guard
            )

        def upsert(session: Session) -> None:
            if statement is not None:
                session.execute(statement)
                return
            # Other databases: read, then write.
            row = session.get(UserLinkRow, values["slack_user_id"], with_for_update=True)
            if row is None:
                session.add(UserLinkRow(**values))
            elif not (only_over_email and row.source == "override"):
                for key, value in values.items():
                    setattr(row, key, value)

        await self._writer.run(upsert)
