"""The scheduled sends' store and people's settings, on SQLite and on PostgreSQL (when
TEST_DATABASE_URL is set), with the schema as the migrations make it: a send is stored once per
(kind, recipient, period) however many stores plan it at once, its claim fences off a stalled
holder, and two writes of a sent message's payload never undo each other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.schedule.people import People
from bot.schedule.store import Planned, ScheduledSends
from bot.store.db import create_engine, session_factory
from bot.store.migrate import upgrade

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade(database_url)
    made = create_engine(database_url)
    yield made
    await made.dispose()


def sends(engine: AsyncEngine) -> ScheduledSends:
    return ScheduledSends(session_factory(engine), dialect=engine.dialect.name)


def nudge(recipient: str, period: str = "2026-12-07") -> Planned:
    return Planned(kind="nudge", recipient=recipient, period=period, due_at=NOW)


async def test_a_send_planned_by_many_at_once_is_stored_once(engine: AsyncEngine) -> None:
    stores = [sends(engine) for _ in range(4)]
    planned = [nudge("U1"), nudge("U2")]
    counts = await asyncio.gather(*(store.plan(planned, now=NOW) for store in stores))
    assert sum(counts) == 2
    assert await stores[0].plan([nudge("U1"), nudge("U1", "2026-12-08")], now=NOW) == 1
    claimed = await stores[0].claim_due(now=NOW, lease=LEASE, limit=10, owner="a")
    assert sorted((s.recipient, s.period) for s in claimed) == [
        ("U1", "2026-12-07"),
        ("U1", "2026-12-08"),
        ("U2", "2026-12-07"),
    ]


async def test_a_send_is_not_due_before_its_time_nor_after_it_is_done(engine: AsyncEngine) -> None:
    store = sends(engine)
    await store.plan([nudge("U1")], now=NOW)
    assert await store.claim_due(now=NOW - timedelta(seconds=1), lease=LEASE, owner="a") == []
    [send] = await store.claim_due(now=NOW, lease=LEASE, owner="a")
    assert await store.sent(send, channel="D1", ts="1.0", payload={"lines": []}, now=NOW)
    later = NOW + timedelta(hours=1)
    assert await store.claim_due(now=later, lease=LEASE, owner="b") == []
    stored = await store.find("nudge", "U1", "2026-12-07")
    assert stored is not None
    assert (stored.state, stored.message_channel, stored.message_ts) == ("sent", "D1", "1.0")


async def test_a_stalled_holder_cannot_mark_a_send_taken_over(engine: AsyncEngine) -> None:
    store = sends(engine)
    await store.plan([nudge("U1")], now=NOW)
    [stalled] = await store.claim_due(now=NOW, lease=LEASE, owner="a")
    later = NOW + LEASE + timedelta(seconds=1)
    [taken] = await store.claim_due(now=later, lease=LEASE, owner="b")
    assert taken.attempts == stalled.attempts + 1
    assert not await store.sent(stalled, channel="D1", ts="1.0", payload={}, now=later)
    assert not await store.skipped(stalled, why="x", now=later)
    assert await store.skipped(taken, why="nothing overdue", now=later)
    stored = await store.get(taken.id)
    assert stored is not None and stored.state == "skipped"


async def test_two_writes_of_one_payload_never_undo_each_other(engine: AsyncEngine) -> None:
    store = sends(engine)
    await store.plan([nudge("U1")], now=NOW)
    [send] = await store.claim_due(now=NOW, lease=LEASE, owner="a")
    await store.sent(send, channel="D1", ts="1.0", payload={"done": []}, now=NOW)
    first = await store.get(send.id)
    second = await store.get(send.id)
    assert first is not None and second is not None
    assert await store.write_payload(first, {"done": ["a"]}, now=NOW)
    # Read before the first write: refused, to be read again and redone.
    assert not await store.write_payload(second, {"done": ["b"]}, now=NOW)
    again = await store.get(send.id)
    assert again is not None and again.payload == {"done": ["a"]}
    assert await store.write_payload(again, {"done": ["a", "b"]}, now=NOW)


async def test_zones_read_again_keep_each_persons_switches(engine: AsyncEngine) -> None:
    people = People(session_factory(engine), dialect=engine.dialect.name)
    assert (await people.get("U1")).nudges is True  # on unless switched off
    assert await people.zones_read_at() is None
    await people.set_nudges("U1", False, now=NOW)
    await people.remember_zones([("U1", "Asia/Tokyo"), ("U2", "America/Los_Angeles")], now=NOW)
    one, two = await people.get("U1"), await people.get("U2")
    assert (one.nudges, one.alerts, one.tz) == (False, True, "Asia/Tokyo")
    assert (two.nudges, two.tz) == (True, "America/Los_Angeles")
    assert await people.zones_read_at() == NOW
    await people.set_nudges("U1", True, now=NOW)
    assert {p.slack_user_id: p.nudges for p in await people.everyone()} == {"U1": True, "U2": True}
