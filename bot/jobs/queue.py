"""The durable-queue protocol and its one claim: a table's due rows taken with a lease.

Every kind of job (a deal to create, a Close change to tell, a workflow step to complete…) is
a row with `attempts`, `next_attempt_at`, `claimed_until` and `claimed_by`. A claim is a
compare-and-set that bumps `attempts`: that number is the claim's fencing token, so every
later write of the holder is conditional on it and a worker that stalled past its lease
cannot write over the work of the one that took the job over. What differs between kinds is
small and declared once per kind in a `ClaimSpec`: which rows are due, what else the claim
sets, the order, and whether a group (an opportunity) is worked one job at a time.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Row,
    Select,
    String,
    Table,
    Update,
    bindparam,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.db import writer_for
from bot.store.tables import UTCDateTime

# "Now" in a spec's statements: bound when the statement runs, so each is compiled once.
NOW: Any = bindparam("p_now", type_=UTCDateTime())


class LostClaim(Exception):
    """Another worker holds the job now (this one stalled past its lease): stop."""


class Backoff(BaseModel):
    """The one retry schedule: doubling from `base_seconds` up to `max_seconds`, jittered."""

    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def delay(self, attempts: int) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return random.uniform(ceiling / 2, ceiling)  # jitter spreads a burst of retries


class Job(Protocol):
    """What the runner needs of a claimed job: who it is, and its claim's fencing token."""

    @property
    def id(self) -> str: ...

    @property
    def attempts(self) -> int: ...


J = TypeVar("J", bound=Job)


@dataclass(frozen=True, eq=False)
class ClaimSpec:
    """Which rows of `table` are due and how the claim takes them; statements built once.

    `due`: a condition on `table` in terms of `NOW`, checked when reading the candidates and
    again in the claim's UPDATE. `choose`: further conditions on the candidates only.
    `sets`: what the claim writes besides the lease and `attempts`. `one_per`: a column of
    `table`; at most one job of each of its values is claimed at a time (read `overfetch`
    times the limit, to fill it after skipping). `peek`: look with a plain read first, so
    that finding nothing (nearly always, for a queue of leftovers) costs no write transaction.
    `held(job)`: the claim of `job`, still ours (its fencing token); `touch`: the table has an
    `updated_at` that the runner's writes set too.
    """

    table: Table
    key: Column[str]
    due: ColumnElement[bool]
    order_by: Sequence[Any]
    held: Callable[[Any], ColumnElement[bool]]
    sets: dict[str, Any] = field(default_factory=dict)
    choose: Sequence[ColumnElement[bool]] = ()
    carry: Sequence[Column[Any]] = ()
    one_per: Column[Any] | None = None
    overfetch: int = 1
    peek: bool = False
    touch: bool = False

    def __post_init__(self) -> None:
        t = self.table
        carried = [*self.carry]
        if self.one_per is not None and self.one_per not in carried:
            carried.append(self.one_per)
        candidates = (
            select(self.key, *carried)
            .where(self.due, *self.choose)
            .order_by(*self.order_by)
            .limit(bindparam("p_limit"))
        )
        claim = (
            update(t)
            .where(self.key.in_(bindparam("p_ids", expanding=True)), self.due)
            .values(
                **self.sets,
                claimed_until=bindparam("p_until", type_=UTCDateTime()),
                claimed_by=bindparam("p_owner", type_=String()),
                attempts=t.c.attempts + 1,
            )
            .returning(*t.c)
        )
        set_ = object.__setattr__  # frozen: the built statements are part of the spec
        set_(self, "candidates", candidates)
        # On PostgreSQL the candidates are locked, skipping those another instance is claiming,
        # so instances don't queue behind each other's rows.
        set_(self, "candidates_locked", candidates.with_for_update(skip_locked=True, of=t))
        set_(self, "claim", claim)
        set_(self, "look", select(self.key).where(self.due, *self.choose).limit(1))
        set_(self, "group_at", 1 + carried.index(self.one_per) if self.one_per is not None else 0)

    candidates: Select[Any] = field(init=False, repr=False)
    candidates_locked: Select[Any] = field(init=False, repr=False)
    claim: Update = field(init=False, repr=False)
    look: Select[Any] = field(init=False, repr=False)
    group_at: int = field(init=False, repr=False)


class DurableQueue(ABC, Generic[J]):
    """The durable-queue protocol: a table of jobs of one kind, claimed through its
    `ClaimSpec` (the one `claim_due`), renewed, retried and handed back by the kind's store.

    Each write of the holder is a compare-and-set on the claim (False: it was lost).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        dialect: str,
        spec: ClaimSpec,
        load: Callable[[Row[Any], Any], J],
    ) -> None:
        self._sessions = sessions
        self._dialect = dialect
        # Every write goes through it (on SQLite: one thread, the ack's insert first).
        self._writer = writer_for(sessions)
        self._spec = spec
        self._load = load

    async def claim_due(
        self, *, now: datetime, lease: timedelta, limit: int = 10, owner: str | None = None
    ) -> list[J]:
        """Take up to `limit` due jobs for `owner`, each for `lease`, in the order they are due.

        The claim is a compare-and-set that bumps `attempts`, so two workers — in one process
        or in several instances on one PostgreSQL — never hold the same job at once.
        """
        if limit <= 0:
            return []
        spec = self._spec
        if spec.peek:
            async with self._sessions() as session:
                if await session.scalar(spec.look, {"p_now": now}) is None:
                    return []
        return await self._claim(None, now=now, lease=lease, limit=limit, owner=owner)

    async def claim_ids(
        self, ids: Sequence[str], *, now: datetime, lease: timedelta, owner: str | None
    ) -> list[J]:
        """Take these jobs, those of them that are due and held by nobody."""
        return await self._claim(ids, now=now, lease=lease, limit=len(ids), owner=owner)

    async def _claim(
        self,
        ids: Sequence[str] | None,
        *,
        now: datetime,
        lease: timedelta,
        limit: int,
        owner: str | None,
    ) -> list[J]:
        spec = self._spec
        query = spec.candidates_locked if self._dialect == "postgresql" else spec.candidates
        look = {"p_now": now, "p_limit": limit * spec.overfetch}
        at = spec.group_at

        def claim(connection: Connection) -> list[J]:
            found: list[Any] = (
                list(connection.execute(query, look)) if ids is None else [(i,) for i in ids]
            )
            chosen: dict[str, Any] = {}
            groups: set[Any] = set()
            for candidate in found:
                if len(chosen) >= limit:
                    break
                if at:
                    if candidate[at] in groups:
                        continue  # its group's earlier job goes first; this one next time
                    groups.add(candidate[at])
                chosen[candidate[0]] = candidate
            if not chosen:
                return []
            params = {"p_now": now, "p_ids": list(chosen), "p_until": now + lease, "p_owner": owner}
            name = spec.key.key
            claimed = [
                self._load(row, chosen[getattr(row, name)] if ids is None else None)
                for row in connection.execute(spec.claim, params)
            ]
            # In the order they were due (RETURNING's order is the database's).
            order = {key: n for n, key in enumerate(chosen)}
            return sorted(claimed, key=lambda job: order[job.id])

        return await self._writer.run_core(claim)

    async def renew(self, job: J, *, now: datetime, lease: timedelta) -> bool:
        """Extend the claim while the work goes on; False if another worker took it over."""
        return await self._held_update(job, now, claimed_until=now + lease)

    @abstractmethod
    async def hand_back(self, job: J, *, now: datetime) -> bool:
        """Give the claim back at shutdown, so another worker takes the job at once rather
        than after the lease. False when it is no longer ours (or already done)."""

    @abstractmethod
    async def retry_at(self, job: J, *, at: datetime, error: str, now: datetime) -> bool:
        """Not done yet: due again at `at` (what was done so far is kept), `error` recorded."""

    async def _held_update(self, job: J, now: datetime, **values: Any) -> bool:
        """Write `values` to `job`'s row if the claim is still ours (and its `updated_at`)."""
        if self._spec.touch:
            values["updated_at"] = now
        statement = update(self._spec.table).where(self._spec.held(job)).values(**values)

        def write(connection: Connection) -> bool:
            return bool(connection.execute(statement).rowcount)

        return await self._writer.run_core(write, one_statement=True)
