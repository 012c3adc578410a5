"""The store's write path: claims renewed after `record_created`, the writer across dispose,
preferences written through, and the SQL a complete flow costs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from bot.deals.models import DealRequest, LeadChoice, ReplyTarget, SubmissionState
from bot.deals.preferences import LastUsed, Preferences
from bot.deals.store import SubmissionStore
from bot.store.db import create_engine, session_factory, writer_for
from bot.store.migrate import upgrade
from sandbox.stack import running_sandbox
from tests.flows import open_modal, submit, wait_until


def _request() -> DealRequest:
    return DealRequest(lead=LeadChoice(id="lead_acme"), lead_name="Acme", value=100)


async def _accept(store: SubmissionStore, key: str, now: datetime) -> None:
    await store.accept(
        idempotency_key=key,
        request=_request(),
        reply_to=ReplyTarget(user_id="U0ALICE"),
        slack_user_id="U0ALICE",
        team_id=None,
        now=now,
    )


async def test_a_claim_is_renewed_while_telling_the_user_and_only_by_its_holder(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'renew.sqlite3'}")
    await upgrade(engine)
    store = SubmissionStore(session_factory(engine), dialect="sqlite")
    now = datetime.now(UTC)
    lease = timedelta(seconds=1)
    try:
        await _accept(store, "k1", now)
        [held] = await store.claim_due(now=now, lease=lease, owner="a")
        assert await store.record_created(
            held, lead_id="lead_acme", opportunity_id="oppo_1", response={}, now=now
        )
        # Created, not yet told: the holder keeps renewing, so nobody else tells it too.
        later = now + timedelta(seconds=0.8)
        assert await store.renew(held, now=later, lease=lease)
        assert await store.claim_due(now=later + timedelta(seconds=0.5), lease=lease) == []
        # Lease run out: another worker takes it over; the old holder's renewal is refused.
        much_later = later + timedelta(seconds=2)
        [taken] = await store.claim_due(now=much_later, lease=lease, owner="b")
        assert taken.state == SubmissionState.CREATED
        assert not await store.renew(held, now=much_later, lease=lease)
        assert await store.renew(taken, now=much_later, lease=lease)
        assert await store.mark_confirmed(taken, now=much_later)
        assert not await store.renew(taken, now=much_later, lease=lease)  # done: nothing to hold
    finally:
        await engine.dispose()


async def test_writes_go_on_after_the_engine_is_disposed_and_a_burst_all_lands(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'writer.sqlite3'}")
    await upgrade(engine)
    store = SubmissionStore(session_factory(engine), dialect="sqlite")
    now = datetime.now(UTC)
    try:
        await asyncio.gather(*(_accept(store, f"k{n}", now) for n in range(50)))
        await engine.dispose()  # stops the writer thread; the next write starts it again
        await _accept(store, "after", now)
        # A double tap of one key stays one row, whichever press commits first.
        results = await asyncio.gather(*(
            store.accept(
                idempotency_key="tap",
                request=_request(),
                reply_to=ReplyTarget(user_id="U0ALICE"),
                slack_user_id="U0ALICE",
                team_id=None,
                now=now,
            )
            for _ in range(5)
        ))  # fmt: skip
        assert sorted(is_new for _, is_new in results) == [False] * 4 + [True]
        assert len({submission.id for submission, _ in results}) == 1
        assert len(await store.recent(limit=100)) == 52
    finally:
        await engine.dispose()


async def test_last_used_is_written_through_and_another_process_choice_shows_after_the_ttl(
    tmp_path: Path,
) -> None:
    """Two processes on one database: each remembers its own submissions at once; the other's
    show once its entry is `ttl` old (a preselection may lag that long across processes)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'prefs.sqlite3'}"
    engines = [create_engine(url), create_engine(url)]
    await upgrade(engines[0])
    now = [0.0]
    stores, prefs = [], []
    for engine in engines:
        store = SubmissionStore(session_factory(engine), dialect="sqlite")
        preferences = Preferences(session_factory(engine), ttl=30, clock=lambda: now[0])
        store.on_accepted = preferences.remember
        stores.append(store)
        prefs.append(preferences)
    here, there = prefs

    async def choose(store: SubmissionStore, key: str, status: str, at: datetime) -> None:
        request = _request().model_copy(update={"status_id": status, "pipeline_id": "pipe_1"})
        await store.accept(
            idempotency_key=key,
            request=request,
            reply_to=ReplyTarget(user_id="U0ALICE"),
            slack_user_id="U0ALICE",
            team_id=None,
            now=at,
        )

    try:
        start = datetime.now(UTC)
        assert await here.last_used("U0ALICE") is None  # read, and known now: nothing yet
        await choose(stores[1], "k1", "stat_won", start)  # the other process
        assert here.peek("U0ALICE") == (True, None)  # within the ttl: not seen yet
        now[0] = 31.0
        assert here.peek("U0ALICE") == (False, None)
        assert (await here.last_used("U0ALICE")) == LastUsed(
            status_id="stat_won", pipeline_id="pipe_1"
        )
        # This process's own submission: written through, no read needed.
        await choose(stores[0], "k2", "stat_lost", start + timedelta(seconds=1))
        assert here.peek("U0ALICE") == (True, LastUsed(status_id="stat_lost", pipeline_id="pipe_1"))
        # A backdated submission (a workflow step's) does not replace a later choice.
        await choose(stores[0], "k3", "stat_open", start - timedelta(seconds=5))
        assert here.peek("U0ALICE")[1] == LastUsed(status_id="stat_lost", pipeline_id="pipe_1")
        assert (await there.last_used("U0ALICE")) == LastUsed(
            status_id="stat_lost", pipeline_id="pipe_1"
        )
    finally:
        for engine in engines:
            await engine.dispose()


# How each kind of statement on `submissions` starts (whitespace folded).
STATEMENT_KINDS = {
    "insert": "INSERT INTO submissions",
    "claim look": "SELECT submissions.id, submissions.state FROM submissions",
    "claim": "UPDATE submissions SET state=CASE",
    "last used": "SELECT submissions.request",
    "write": "UPDATE submissions SET",
}


class _Statements:
    """SQL statements run in this process (every engine, the writer thread's too), by kind."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __enter__(self) -> _Statements:
        event.listen(Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(Engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        folded = " ".join(statement.split())
        for kind, start in STATEMENT_KINDS.items():
            if folded.startswith(start):
                self.counts[kind] += 1
                return


async def test_a_flow_costs_one_insert_one_claim_and_four_writes_and_no_read_of_last_used(
    tmp_path: Path,
) -> None:
    """The SQL budget of a complete flow once the user is known: command (last used choices
    from memory), submission (one insert), the worker's one look and claim on its kick, then
    `sent`, created, the summary's place, and confirmed with its thread."""
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'budget.sqlite3'}",
        worker_poll_seconds=30,  # only kicks wake the worker during the test
    ) as sb:

        async def flow(note: str) -> None:
            view_id = await open_modal(sb, f"Acme Corp 12k annual note: {note}")
            await submit(sb, view_id)

            async def confirmed() -> bool:
                rows = await sb.services.store.recent()
                return any(row.request.note == note and row.confirmed_at for row in rows)

            deadline = asyncio.get_running_loop().time() + 10
            while not await confirmed():
                assert asyncio.get_running_loop().time() < deadline, "not confirmed in time"
                await asyncio.sleep(0.05)

        await flow("first")  # the user and their last choices become known
        with _Statements() as sql:
            await flow("second")
        # Writes of the holder: sent; created; the summary's place, as soon as it is posted
        # (a worker telling it again updates it); confirmed, with its thread.
        assert sql.counts == {"insert": 1, "claim look": 1, "claim": 1, "write": 4}


async def test_an_acks_insert_runs_at_once_when_the_file_is_free_and_waits_its_turn_when_not(
    tmp_path: Path,
) -> None:
    """SQLite: the submission's insert needs no thread hop when nothing writes, and when another
    connection holds the write lock (another process mid-transaction) it is not refused: it is
    queued to the writer thread, which waits for the lock, and lands once it is free."""
    path = tmp_path / "at_once.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    store = SubmissionStore(session_factory(engine), dialect="sqlite")
    now = datetime.now(UTC)
    try:
        await _accept(store, "free", now)
        writer = writer_for(session_factory(engine))
        assert writer._thread is None  # nothing went through the writer thread
        with sqlite3.connect(path, timeout=5) as other:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            pending = asyncio.ensure_future(_accept(store, "locked", now))
            await wait_until(lambda: writer._thread is not None)  # queued, not refused
            assert not pending.done()
            other.rollback()
        await asyncio.wait_for(pending, 5)
        assert {s.idempotency_key for s in await _all(store)} == {"free", "locked"}
    finally:
        await engine.dispose()


async def _all(store: SubmissionStore) -> list[Any]:
    return [s for key in ("free", "locked") if (s := await store.by_key(key)) is not None]
