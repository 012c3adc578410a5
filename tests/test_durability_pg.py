"""Several instances on one PostgreSQL: migrations at once, one claim per submission, no duplicate.

Needs a real server: TEST_DATABASE_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test,
set by .ci/run). Each test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from bot.app import build_app
from bot.deals.models import DealRequest, LeadChoice, ReplyTarget, SubmissionState
from bot.deals.store import SubmissionStore
from bot.services import Services
from bot.store.db import create_engine, session_factory
from bot.store.migrate import current_revision, head_revision, upgrade
from bot.store.tables import Base
from bot.transport.http import create_http_app
from sandbox.close_sim import CloseSimulator
from sandbox.server import RunningServer, start_server
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import (
    BOT_TOKEN,
    CLOSE_API_KEY,
    SIGNING_SECRET,
    Sandbox,
    running_sandbox,
)
from tests.flows import open_modal, wait_until
from tests.process import Bot
from tests.test_durability import (
    ALL_TOLD,
    FAST,
    all_told,
    ask,
    frozen_submission,
    opportunity_posts,
    send,
    summaries,
    wait_summaries,
)

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set"
    ),
]


@dataclass
class Instance:
    services: Services
    bot: RunningServer
    driver: SlackDriver


@asynccontextmanager
async def second_instance(sb: Sandbox) -> AsyncIterator[Instance]:
    """Another `serve` process in all but pid: its own Services, worker and HTTP server."""
    services = Services.create(sb.settings)
    bot = await start_server(create_http_app(services, build_app(sb.settings, services)))
    try:
        await services.catalog.wait_loaded(5.0)
        async with SlackDriver(sb.slack, bot.url + "slack/events", SIGNING_SECRET) as driver:
            yield Instance(services, bot, driver)
    finally:
        await bot.stop()


async def test_instances_starting_together_migrate_once(pg_url: str) -> None:
    await asyncio.gather(*(upgrade(pg_url) for _ in range(4)))
    assert await current_revision(pg_url) == head_revision()
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


@pytest.mark.parametrize("fault", ["none", "applied-then-timeout"])
async def test_same_submission_reaching_two_instances_creates_one_opportunity(
    pg_url: str, fault: str
) -> None:
    async with (
        running_sandbox(database_url=pg_url, close_timeout_seconds=0.3, **FAST) as sb,
        second_instance(sb) as other,
    ):
        view_id = await open_modal(sb, "Acme Corp 12k annual")
        if fault == "applied-then-timeout":
            sb.close.apply_then_hang(1, 1.0)  # past the client's 0.3 s: it looks in Close
        body = frozen_submission(sb.slack, view_id)
        acks = await asyncio.gather(
            *(send(driver, body) for driver in (sb.driver, other.driver) for _ in range(3))
        )
        assert all(ack["response_action"] == "update" for ack in acks)
        await wait_summaries(sb.slack, 1)
        await wait_until(lambda: all_told(sb))
        assert len(sb.close.opportunities) == 1
        assert len(opportunity_posts(sb.close)) == 1
        assert len(summaries(sb.slack)) == 1
        [row] = await sb.services.store.recent()
        assert row.state == SubmissionState.CREATED
        assert row.opportunity_id == sb.close.opportunities[0]["id"]


async def test_a_burst_across_two_instances_creates_each_once(pg_url: str) -> None:
    deals = 12
    async with (
        running_sandbox(database_url=pg_url, **FAST) as sb,
        second_instance(sb) as other,
    ):
        sb.close.path_latency["/opportunity/"] = 0.05  # so both workers have work in flight
        bodies = []
        for n in range(deals):
            view_id = await open_modal(sb, f"Acme Corp {n + 1}k annual note: deal {n}")
            bodies.append(frozen_submission(sb.slack, view_id))
        # Every submission reaches both instances (a retry through the load balancer).
        await asyncio.gather(
            *(send(driver, body) for body in bodies for driver in (sb.driver, other.driver))
        )
        await wait_summaries(sb.slack, deals, timeout=20)
        await wait_until(lambda: all_told(sb))
        notes = sorted(o["note"] for o in sb.close.opportunities)
        assert notes == sorted(f"deal {n}" for n in range(deals))
        assert len(opportunity_posts(sb.close)) == deals
        assert len(summaries(sb.slack)) == deals
        rows = await sb.services.store.recent(limit=100)
        assert len(rows) == deals
        assert {row.state for row in rows} == {SubmissionState.CREATED}
        assert {row.claimed_by for row in rows} <= {
            sb.services.worker.name,
            other.services.worker.name,
        }


async def test_claims_are_disjoint_when_workers_race(pg_url: str) -> None:
    await upgrade(pg_url)
    engines = [create_engine(pg_url) for _ in range(4)]
    stores = [SubmissionStore(session_factory(e), dialect="postgresql") for e in engines]
    now = datetime.now(UTC)
    try:
        for n in range(40):
            await stores[0].accept(
                idempotency_key=f"k{n}",
                request=DealRequest(lead=LeadChoice(id="lead_acme"), lead_name="Acme", value=n),
                reply_to=ReplyTarget(user_id="U0ALICE"),
                slack_user_id="U0ALICE",
                team_id=None,
                now=now,
            )

        async def drain(store: SubmissionStore, owner: str) -> list[str]:
            taken: list[str] = []
            while claimed := await store.claim_due(
                now=now, lease=timedelta(minutes=5), limit=3, owner=owner
            ):
                taken += [s.id for s in claimed]
                await asyncio.sleep(0)
            return taken

        results = await asyncio.gather(*(drain(s, f"w{i}") for i, s in enumerate(stores)))
        every = [sid for taken in results for sid in taken]
        assert len(every) == 40 and len(set(every)) == 40  # each claimed exactly once
        assert sum(1 for taken in results if taken) > 1  # and they really raced
    finally:
        for engine in engines:
            await engine.dispose()


async def test_an_instance_that_stops_mid_work_is_finished_by_the_other(pg_url: str) -> None:
    """One instance claims and goes away (its claim left behind); the other takes over."""
    async with running_sandbox(database_url=pg_url, **FAST) as sb:
        view_id = await open_modal(sb, "Acme Corp 12k annual")
        await sb.services.worker.stop()  # this instance will not work it…
        await send(sb.driver, frozen_submission(sb.slack, view_id))
        # …but claims it, as a worker that dies right after claiming would.
        [claimed] = await sb.services.store.claim_due(
            now=datetime.now(UTC), lease=timedelta(seconds=1), owner="dead"
        )
        async with second_instance(sb) as other:
            await wait_summaries(sb.slack, 1, timeout=10)
            await wait_until(lambda: len(sb.close.opportunities) == 1)
            [row] = await other.services.store.recent()
            assert row.claimed_by == other.services.worker.name
            assert row.attempts == claimed.attempts + 1
        assert len(opportunity_posts(sb.close)) == 1


async def schema_tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()


async def test_serve_workers_refused_credential_ends_in_one_line_having_started_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    """The server processes build the app while the supervisor's checks are in flight, but
    touch neither the schema nor Close's catalog until they pass; a refusal ends them all."""
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        bot = Bot(close, slack, pg_url, tmp_path, "serve", "--workers", "2")
        bot.env["CLOSE_API_KEY"] = "api_wrongkey.wrongsecretpart"
        close.path_latency["/me/"] = 1.5  # the server processes are up and waiting by then
        try:
            await bot.spawn()
            code = await bot.exit_code(timeout=30)
        finally:
            bot.stop()
        lines = [line for line in bot.stderr().splitlines() if line.strip()]
        assert code == 1
        assert len(lines) == 1, lines
        assert "CLOSE_API_KEY" in lines[0] and "HTTP 401" in lines[0]
        assert close.count("GET", "/pipeline/") == 0
        assert await schema_tables(pg_url) == []


async def test_serve_workers_stopped_before_the_checks_answer_exits_at_once(
    pg_url: str, tmp_path: Path
) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        bot = Bot(close, slack, pg_url, tmp_path, "serve", "--workers", "2")
        close.path_latency["/me/"] = 20.0  # waiting for the checks would take 17.5 s more
        try:
            await bot.spawn()
            # The server processes are built and waiting. Nothing outside them shows it (the
            # supervisor's checks are all Close and Slack see): a sleep, as long as building
            # takes on a loaded machine.
            await asyncio.sleep(2.5)
            code, took = await bot.signal_and_wait(signal.SIGTERM)
        finally:
            bot.stop()
        assert code == 0, bot.stderr()
        assert took < 8  # ~1 s; under a loaded CI (4 test processes on 2 cores) up to 5 s
        assert close.count("GET", "/pipeline/") == 0
        assert await schema_tables(pg_url) == []


async def test_serve_workers_2_no_worker_and_two_worker_processes_create_each_once(
    pg_url: str, tmp_path: Path
) -> None:
    """The production layout as real processes: `serve --workers 2 --no-worker` (two server
    processes on one port) and two `worker` processes, one PostgreSQL queue. Every submission,
    each sent twice (a retry landing on either server process), is created and told once."""
    deals = 10
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        web = Bot(close, slack, pg_url, tmp_path, "serve", "--workers", "2", "--no-worker")
        workers = [Bot(close, slack, pg_url, tmp_path, "worker") for _ in range(2)]
        close.path_latency["/opportunity/"] = 0.05  # so both workers have work in flight
        try:
            await web.start()
            async with SlackDriver(slack, web.url + "slack/events", SIGNING_SECRET) as driver:
                bodies = []
                for n in range(deals):
                    command = await driver.slash_command(f"Acme Corp {n + 1}k annual note: d{n}")
                    view = await driver.wait_for_view(command.trigger_id)
                    # The lead is preselected by a views.update once the search answers.
                    await wait_until(lambda n=n: len(slack.calls("views.update")) > n, 10)
                    bodies.append(frozen_submission(slack, view["id"]))
                acks = await asyncio.gather(*(send(driver, b) for b in bodies for _ in range(2)))
            assert all(ack["response_action"] == "update" for ack in acks), acks
            # Stored by the web processes (before their acks), and not created: no marker can
            # show work that never starts, so a short sleep (a worker there would have claimed
            # within its 0.05 s poll and sent the creates).
            await asyncio.sleep(0.3)
            assert opportunity_posts(close) == []
            await asyncio.gather(*(worker.start() for worker in workers))
            await wait_until(lambda: len(summaries(slack)) == deals, 20)
            await wait_until(lambda: ask(pg_url, ALL_TOLD), 10)  # every one told and marked
            await wait_until(lambda: all(r.status is not None for r in opportunity_posts(close)))
            assert sorted(o["note"] for o in close.opportunities) == sorted(
                f"d{n}" for n in range(deals)
            )
            assert len(opportunity_posts(close)) == deals
            assert len(summaries(slack)) == deals
            for bot in (web, *workers):
                code, _took = await bot.signal_and_wait(signal.SIGTERM)
                assert code == 0, bot.stderr()
        finally:
            for bot in (web, *workers):
                bot.stop()


async def test_connections_the_server_closed_while_idle_are_replaced_before_use(
    pg_url: str,
) -> None:
    """Pooled connections are pinged only after `idle_ping_seconds` unused (not on every
    checkout): a server that dropped them meanwhile (a restart, an idle timeout) costs no
    failed write."""
    await upgrade(pg_url)
    engine = create_engine(pg_url, idle_ping_seconds=0.2)
    store = SubmissionStore(session_factory(engine), dialect="postgresql")
    admin = create_engine(pg_url).execution_options(isolation_level="AUTOCOMMIT")
    now = datetime.now(UTC)

    async def accept(key: str) -> None:
        await store.accept(
            idempotency_key=key,
            request=DealRequest(lead=LeadChoice(id="lead_acme"), lead_name="Acme", value=1),
            reply_to=ReplyTarget(user_id="U0ALICE"),
            slack_user_id="U0ALICE",
            team_id=None,
            now=now,
        )

    try:
        await asyncio.gather(*(accept(f"before-{n}") for n in range(4)))  # several pooled
        async with admin.connect() as connection:
            killed = await connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert len(killed.all()) >= 1
        # Idle past the 0.2 s threshold (time itself is the condition): pinged, found dead,
        # reconnected.
        await asyncio.sleep(0.3)
        await asyncio.gather(*(accept(f"after-{n}") for n in range(4)))
        assert len(await store.recent(limit=20)) == 8
    finally:
        await admin.dispose()
        await engine.dispose()
