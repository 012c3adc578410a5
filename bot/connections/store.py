"""The queries of per-person Close access: connections (tokens sealed) and OAuth states."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection as SqlConnection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from bot.store.db import dialect_insert, update_where, writer_for
from bot.store.tables import CloseConnectionRow, OAuthStateRow

STATE_TTL = timedelta(minutes=10)
# Used and expired states are kept this long (a replay meanwhile is told "already used").
STATE_KEPT = timedelta(days=1)


class Connection(BaseModel):
    """A person's connection as the rest of the app sees it: no tokens, sealed or not."""

    team_id: str
    slack_user_id: str
    close_user_id: str
    organization_id: str
    expires_at: datetime
    version: int
    connected_at: datetime
    broken_at: datetime | None = None
    broken_reason: str | None = None
    broken_told_at: datetime | None = None

    @property
    def broken(self) -> bool:
        return self.broken_at is not None

    @classmethod
    def from_row(cls, row: CloseConnectionRow) -> Connection:
        return cls(
            team_id=row.team_id,
            slack_user_id=row.slack_user_id,
            close_user_id=row.close_user_id,
            organization_id=row.organization_id,
            expires_at=row.expires_at,
            version=row.version,
            connected_at=row.connected_at,
            broken_at=row.broken_at,
            broken_reason=row.broken_reason,
            broken_told_at=row.broken_told_at,
        )


@dataclass(frozen=True)
class SealedTokens:
    """A connection's tokens as stored (Fernet), with the version they belong to."""

    connection: Connection
    access_token_sealed: str
    refresh_token_sealed: str
    refreshing_until: datetime | None
    refreshing_by: str | None

    def __repr__(self) -> str:  # never the sealed text either
        return f"SealedTokens({self.connection.slack_user_id}, v{self.connection.version})"


def _key(team_id: str, slack_user_id: str) -> Any:
    return and_(
        CloseConnectionRow.team_id == team_id, CloseConnectionRow.slack_user_id == slack_user_id
    )


class ConnectionStore:
    """Reads and writes `close_connections`; every token goes in and out sealed."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect
        self._writer = writer_for(sessions)

    async def of_user(self, slack_user_id: str) -> Connection | None:
        """The user's connection in any team (Slack user ids are unique across workspaces)."""
        query = (
            select(CloseConnectionRow)
            .where(CloseConnectionRow.slack_user_id == slack_user_id)
            .order_by(CloseConnectionRow.connected_at.desc())
            .limit(1)
        )
        async with self._sessions() as session:
            row = (await session.scalars(query)).first()
            return Connection.from_row(row) if row else None

    async def of_close_user(self, close_user_id: str) -> list[str]:
        """The Slack users connected as Close user `close_user_id`, the latest first."""
        query = (
            select(CloseConnectionRow.slack_user_id)
            .where(CloseConnectionRow.close_user_id == close_user_id)
            .order_by(CloseConnectionRow.connected_at.desc())
        )
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def sealed(self, team_id: str, slack_user_id: str) -> SealedTokens | None:
        async with self._sessions() as session:
            row = await session.get(
                CloseConnectionRow, (team_id, slack_user_id), populate_existing=True
            )
            if row is None:
                return None
            return SealedTokens(
                Connection.from_row(row),
                row.access_token_sealed,
                row.refresh_token_sealed,
                row.refreshing_until,
                row.refreshing_by,
            )

    async def count(self) -> tuple[int, int]:
        """(connected, of whom broken), for `doctor`."""
        query = select(func.count(), func.count(CloseConnectionRow.broken_at))
        async with self._sessions() as session:
            total, broken = (await session.execute(query)).one()
        return int(total), int(broken)

    async def save(
        self,
        *,
        team_id: str,
        slack_user_id: str,
        close_user_id: str,
        organization_id: str,
        access_token_sealed: str,
        refresh_token_sealed: str,
        expires_at: datetime,
        now: datetime,
    ) -> None:
        """A new connection, or a reconnection replacing the old one (no longer broken)."""
        values: dict[str, Any] = {
            "team_id": team_id,
            "slack_user_id": slack_user_id,
            "close_user_id": close_user_id,
            "organization_id": organization_id,
            "access_token_sealed": access_token_sealed,
            "refresh_token_sealed": refresh_token_sealed,
            "expires_at": expires_at,
            "version": 1,
            "refreshing_until": None,
            "refreshing_by": None,
            "connected_at": now,
            "updated_at": now,
            "broken_at": None,
            "broken_reason": None,
            "broken_told_at": None,
        }
        changes = {k: v for k, v in values.items() if k not in ("team_id", "slack_user_id")}
        # A reconnection's version moves on too: a refresh that read the old one cannot land.
        changes["version"] = CloseConnectionRow.version + 1
        statement = (
            dialect_insert(self._dialect)(CloseConnectionRow)
            .values(**values)
            .on_conflict_do_update(
                index_elements=[CloseConnectionRow.team_id, CloseConnectionRow.slack_user_id],
                set_=changes,
            )
        )

        def write(connection: SqlConnection) -> None:
            connection.execute(statement)

        await self._writer.run_core(write, one_statement=True)

    async def delete(self, team_id: str, slack_user_id: str) -> bool:
        statement = delete(CloseConnectionRow).where(_key(team_id, slack_user_id))

        def write(connection: SqlConnection) -> bool:
            return bool(connection.execute(statement).rowcount)

        return await self._writer.run_core(write, one_statement=True)

    async def take_refresh(
        self,
        team_id: str,
        slack_user_id: str,
        *,
        version: int,
        holder: str,
        now: datetime,
        until: datetime,
    ) -> bool:
        """Take the connection's refresh for `holder` until `until`, if it is still at
        `version`, not broken, and nobody else holds the refresh (or their lease ran out)."""
        return await update_where(
            self._writer,
            CloseConnectionRow,
            and_(
                _key(team_id, slack_user_id),
                CloseConnectionRow.version == version,
                CloseConnectionRow.broken_at.is_(None),
                or_(
                    CloseConnectionRow.refreshing_until.is_(None),
                    CloseConnectionRow.refreshing_until < now,
                    CloseConnectionRow.refreshing_by == holder,
                ),
            ),
            refreshing_until=until,
            refreshing_by=holder,
        )

    async def refreshed(
        self,
        team_id: str,
        slack_user_id: str,
        *,
        version: int,
        holder: str,
        access_token_sealed: str,
        refresh_token_sealed: str,
        expires_at: datetime,
        now: datetime,
    ) -> bool:
        """Store a refresh's new tokens (the new refresh token replaces the old one in the same
        statement) if `holder` still holds the refresh of `version`; bumps the version."""
        return await update_where(
            self._writer,
            CloseConnectionRow,
            and_(
                _key(team_id, slack_user_id),
                CloseConnectionRow.version == version,
                CloseConnectionRow.refreshing_by == holder,
            ),
            access_token_sealed=access_token_sealed,
            refresh_token_sealed=refresh_token_sealed,
            expires_at=expires_at,
            version=version + 1,
            refreshing_until=None,
            refreshing_by=None,
            updated_at=now,
        )

    async def release_refresh(
        self, team_id: str, slack_user_id: str, *, version: int, holder: str
    ) -> None:
        """Give the refresh back without new tokens (Close could not be reached)."""
        await update_where(
            self._writer,
            CloseConnectionRow,
            and_(
                _key(team_id, slack_user_id),
                CloseConnectionRow.version == version,
                CloseConnectionRow.refreshing_by == holder,
            ),
            refreshing_until=None,
            refreshing_by=None,
        )

    async def mark_broken(
        self, team_id: str, slack_user_id: str, *, version: int, reason: str, now: datetime
    ) -> bool:
        """Close refused this version's refresh token: the person must connect again."""
        return await update_where(
            self._writer,
            CloseConnectionRow,
            and_(
                _key(team_id, slack_user_id),
                CloseConnectionRow.version == version,
                CloseConnectionRow.broken_at.is_(None),
            ),
            broken_at=now,
            broken_reason=reason,
            broken_told_at=None,
            refreshing_until=None,
            refreshing_by=None,
            version=version + 1,
            updated_at=now,
        )

    async def mark_told(self, team_id: str, slack_user_id: str, *, now: datetime) -> bool:
        """Claim telling the person about the breakage: True once per breakage."""
        return await update_where(
            self._writer,
            CloseConnectionRow,
            and_(
                _key(team_id, slack_user_id),
                CloseConnectionRow.broken_at.is_not(None),
                CloseConnectionRow.broken_told_at.is_(None),
            ),
            broken_told_at=now,
        )


@dataclass(frozen=True)
class ConsumedState:
    team_id: str
    slack_user_id: str


class StateProblem(Exception):
    """Why a state cannot be used: `unknown`, `used` or `expired`."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "replace")).hexdigest()


class StateStore:
    """Single-use OAuth states, bound to the Slack team and user who asked, for 10 minutes."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl: timedelta = STATE_TTL):
        self._sessions = sessions
        self._writer = writer_for(sessions)
        self.ttl = ttl

    async def mint(self, team_id: str, slack_user_id: str, *, now: datetime) -> str:
        state = secrets.token_urlsafe(32)
        row = {
            "state_hash": _hash(state),
            "team_id": team_id,
            "slack_user_id": slack_user_id,
            "created_at": now,
            "expires_at": now + self.ttl,
            "used_at": None,
        }
        add = insert(OAuthStateRow).values(**row)
        sweep = delete(OAuthStateRow).where(OAuthStateRow.expires_at < now - STATE_KEPT)

        def write(connection: SqlConnection) -> None:
            connection.execute(add)
            connection.execute(sweep)

        await self._writer.run_core(write, urgent=True)
        return state

    async def peek(self, state: str, *, now: datetime) -> ConsumedState:
        """Who the state belongs to, if it can still be used (the start route: not consumed)."""
        async with self._sessions() as session:
            row = await session.get(OAuthStateRow, _hash(state))
            _check(row, now)
            assert row is not None
            return ConsumedState(row.team_id, row.slack_user_id)

    async def consume(self, state: str, *, now: datetime) -> ConsumedState:
        """Use the state up, atomically: of two callbacks with it, one gets it, the other
        `StateProblem("used")`."""
        key = _hash(state)
        claim = (
            update(OAuthStateRow)
            .where(
                OAuthStateRow.state_hash == key,
                OAuthStateRow.used_at.is_(None),
                OAuthStateRow.expires_at > now,
            )
            .values(used_at=now)
        )

        def write(session: Session) -> ConsumedState:
            taken = session.execute(claim).rowcount  # type: ignore[attr-defined]
            row = session.get(OAuthStateRow, key, populate_existing=True)
            if not taken:
                _check(row, now)
                raise StateProblem("used")  # pragma: no cover - _check raised already
            assert row is not None
            return ConsumedState(row.team_id, row.slack_user_id)

        return await self._writer.run(write, urgent=True)


def _check(row: OAuthStateRow | None, now: datetime) -> None:
    if row is None:
        raise StateProblem("unknown")
    if row.used_at is not None:
        raise StateProblem("used")
    if row.expires_at <= now:
        raise StateProblem("expired")
