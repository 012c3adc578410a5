"""The job runner itself: a new kind of job is a table, a `ClaimSpec` and a handler registered
with the runner — run exactly once across runners sharing a database, fenced by its claim,
handed back at shutdown, looked for when kicked. On SQLite, and on PostgreSQL when
TEST_DATABASE_URL is set."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    and_,
    insert,
    or_,
)
from sqlalchemy import select as sql_select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.jobs import NOW, ClaimSpec, DurableQueue, JobKind, JobRunner, LostClaim
from bot.store.db import create_engine, session_factory
from bot.store.tables import UTCDateTime
from tests.flows import wait_until

# A kind of job the app does not have yet (a nudge to send later): its own table.
_metadata = MetaData()
nudges = Table(
    "test_nudges",
    _metadata,
    Column("id", String(36), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("claimed_until", UTCDateTime(), nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("sent_by", String(128), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=True),
)


class Nudge(BaseModel):
    id: str
    attempts: int


def _held(nudge: Nudge) -> ColumnElement[bool]:
    return and_(
        nudges.c.id == nudge.id, nudges.c.attempts == nudge.attempts, nudges.c.state == "pending"
    )


NUDGE_CLAIM = ClaimSpec(
    table=nudges,
    key=nudges.c.id,
    due=and_(
        nudges.c.state == "pending",
        nudges.c.next_attempt_at <= NOW,
        or_(nudges.c.claimed_until.is_(None), nudges.c.claimed_until < NOW),
    ),
    order_by=(nudges.c.next_attempt_at,),
    sets={"updated_at": NOW},
    held=_held,
    touch=True,
)


def _nudge(row: Row[Any], _candidate: Any) -> Nudge:
    return Nudge(id=row.id, attempts=row.attempts)


class NudgeStore(DurableQueue[Nudge]):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        super().__init__(
            session_factory(engine), dialect=engine.dialect.name, spec=NUDGE_CLAIM, load=_nudge
        )

    async def add(self, count: int, *, now: datetime) -> list[str]:
        ids = [str(uuid.uuid4()) for _ in range(count)]
        rows = [{"id": i, "state": "pending", "attempts": 0, "next_attempt_at": now} for i in ids]
        async with self.engine.begin() as connection:
            await connection.execute(insert(nudges), rows)
        return ids

    async def sent(self, nudge: Nudge, *, by: str, now: datetime) -> bool:
        return await self._held_update(nudge, now, state="sent", sent_by=by, claimed_until=None)

    async def hand_back(self, nudge: Nudge, *, now: datetime) -> bool:
        return await self._held_update(nudge, now, claimed_until=None)

    async def retry_at(self, nudge: Nudge, *, at: datetime, error: str, now: datetime) -> bool:
        return await self._held_update(nudge, now, next_attempt_at=at, claimed_until=None)

    async def rows(self) -> list[Row[Any]]:
        async with self.engine.connect() as connection:
            return list(await connection.execute(sql_select(nudges)))


@pytest.fixture
async def database_url(database_url: str) -> str:
    """The test's database (tests/conftest.py: SQLite, and PostgreSQL), with the nudges' table."""
    return await _with_table(database_url)


async def _with_table(url: str) -> str:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_metadata.create_all)
    finally:
        await engine.dispose()
    return url


def _runner(store: NudgeStore, name: str, work: Any, **options: Any) -> JobRunner:
    runner = JobRunner(name=name, poll_seconds=options.pop("poll_seconds", 0.05))
    runner.register(JobKind("nudge", queue=store, work=work, concurrency=4, **options))
    return runner


async def test_a_new_kind_runs_each_job_exactly_once_across_two_runners(
    database_url: str,
) -> None:
    engines = [create_engine(database_url), create_engine(database_url)]
    stores = [NudgeStore(engine) for engine in engines]
    done: list[tuple[str, str]] = []

    def sender(store: NudgeStore, name: str) -> Any:
        async def send(nudge: Nudge) -> None:
            await asyncio.sleep(0.01)  # the work overlaps the other runner's claims
            if not await store.sent(nudge, by=name, now=datetime.now(UTC)):
                raise LostClaim(nudge.id)
            done.append((name, nudge.id))

        return send

    runners = [
        _runner(store, name, sender(store, name), batch=3, every_turn=True)
        for store, name in zip(stores, ("a", "b"), strict=True)
    ]
    try:
        ids = await stores[0].add(40, now=datetime.now(UTC))
        for runner in runners:
            runner.start()
        await wait_until(lambda: len(done) >= len(ids), timeout=20)
        for runner in runners:
            await runner.stop(grace=1.0)
        assert Counter(nudge for _, nudge in done) == Counter(ids)  # each once
        rows = await stores[0].rows()
        assert {row.state for row in rows} == {"sent"}
        assert all(row.attempts == 1 for row in rows)  # claimed once, never taken over
        assert {(row.sent_by, row.id) for row in rows} == set(done)
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_claim_taken_over_fences_off_its_old_holder(database_url: str) -> None:
    engine = create_engine(database_url)
    store = NudgeStore(engine)
    now = datetime.now(UTC)
    lease = timedelta(seconds=1)
    try:
        await store.add(1, now=now)
        [stalled] = await store.claim_due(now=now, lease=lease, owner="a")
        assert await store.claim_due(now=now + timedelta(seconds=0.5), lease=lease) == []
        later = now + timedelta(seconds=2)  # a's lease ran out: b takes the nudge over
        [taken] = await store.claim_due(now=later, lease=lease, owner="b")
        assert (taken.id, taken.attempts) == (stalled.id, stalled.attempts + 1)
        # Every write of the old holder is refused; the new holder's go through.
        assert not await store.renew(stalled, now=later, lease=lease)
        assert not await store.retry_at(stalled, at=later, error="x", now=later)
        assert not await store.hand_back(stalled, now=later)
        assert not await store.sent(stalled, by="a", now=later)
        assert await store.renew(taken, now=later, lease=lease)
        assert await store.sent(taken, by="b", now=later)
        [row] = await store.rows()
        assert (row.state, row.sent_by, row.claimed_by) == ("sent", "b", "b")
    finally:
        await engine.dispose()


async def test_work_cut_short_at_shutdown_is_handed_back_at_once(database_url: str) -> None:
    engine = create_engine(database_url)
    store = NudgeStore(engine)
    started = asyncio.Event()

    async def hang(_nudge: Nudge) -> None:
        started.set()
        await asyncio.Event().wait()

    runner = _runner(store, "a", hang)
    try:
        [nudge_id] = await store.add(1, now=datetime.now(UTC))
        runner.start()
        await asyncio.wait_for(started.wait(), 10)
        assert runner.in_flight == 1
        await runner.stop(grace=0.05)
        assert runner.in_flight == 0
        # Another runner takes it now, not after the lease (two minutes).
        [again] = await store.claim_due(
            now=datetime.now(UTC), lease=timedelta(seconds=60), owner="b"
        )
        assert (again.id, again.attempts) == (nudge_id, 2)
    finally:
        await engine.dispose()


async def test_a_kind_looked_for_on_demand_waits_for_its_kick(database_url: str) -> None:
    engine = create_engine(database_url)
    store = NudgeStore(engine)
    done: list[str] = []

    async def send(nudge: Nudge) -> None:
        if await store.sent(nudge, by="a", now=datetime.now(UTC)):
            done.append(nudge.id)

    # Looked for when kicked, else once a poll period (here: longer than the test).
    runner = _runner(store, "a", send, poll_seconds=60.0)
    try:
        runner.start()
        await asyncio.sleep(0.05)  # its first look (at start) found nothing
        [nudge_id] = await store.add(1, now=datetime.now(UTC))
        await asyncio.sleep(0.05)
        assert done == []
        runner.kick("nudge")
        await wait_until(lambda: done == [nudge_id], timeout=10)
    finally:
        await runner.stop(grace=1.0)
        await engine.dispose()


async def test_the_lease_is_renewed_while_the_work_goes_on_and_a_lost_claim_stops_it(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    store = NudgeStore(engine)
    lease = timedelta(seconds=0.3)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(_nudge: Nudge) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner = JobRunner(name="a", poll_seconds=0.05, lease=lease)
    runner.register(
        JobKind("nudge", queue=store, work=slow, concurrency=1, renew=True, every_turn=True)
    )
    try:
        [nudge_id] = await store.add(1, now=datetime.now(UTC))
        runner.start()
        await asyncio.wait_for(started.wait(), 10)
        [claimed] = await store.rows()
        renewed: list[datetime] = []
        async with asyncio.timeout(10):
            while not renewed:  # every third of the lease the runner extends it
                [row] = await store.rows()
                if row.claimed_until > claimed.claimed_until:
                    renewed.append(row.claimed_until)
                await asyncio.sleep(0.02)
        assert await store.claim_due(now=datetime.now(UTC), lease=lease, owner="b") == []
        # Taken over as if the runner had stalled: its next renewal fails and stops the work.
        [taken] = await store.claim_due(
            now=datetime.now(UTC) + timedelta(seconds=5), lease=lease, owner="b"
        )
        assert taken.id == nudge_id
        await asyncio.wait_for(cancelled.wait(), 10)
    finally:
        await runner.stop(grace=1.0)
        await engine.dispose()
