"""Never lose a deal, never log it twice: faults injected into Close over real HTTP (SQLite).

Every case checks the two promises: exactly one opportunity in Close per submission, and
the user told the outcome. PostgreSQL and several instances: tests/test_durability_pg.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from bot.blocks.messages import RETRY_ACTION_ID
from bot.deals.models import DealRequest, LeadChoice, ReplyTarget, SubmissionState
from bot.deals.store import SubmissionStore
from bot.store.db import create_engine, session_factory
from bot.store.migrate import HEAD, current_revision, head_revision, upgrade
from bot.store.tables import Base
from sandbox import blockkit
from sandbox.close_sim import CloseSimulator
from sandbox.server import port_for_a_child
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import (
    BOT_TOKEN,
    CLOSE_API_KEY,
    SIGNING_SECRET,
    Sandbox,
    running_sandbox,
)
from tests.flows import REQUIRED_CUSTOM, open_modal, submit, wait_opportunities, wait_until

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parents[1]
FORM = "application/x-www-form-urlencoded"
# Snappy retries and short leases: every wait in this file is well under a second.
FAST: dict[str, Any] = {
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "worker_poll_seconds": 0.05,
    "worker_lease_seconds": 1.0,
}


def frozen_submission(
    slack: SlackSimulator, view_id: str, values: dict[str, Any] | None = None
) -> bytes:
    """The exact body Slack sends when Create is pressed on `view_id` now.

    Sending these bytes twice is a re-sent request (or a double tap reaching two instances):
    same view, same private_metadata, so the same idempotency key.
    """
    for block_id, choice in {**REQUIRED_CUSTOM, **(values or {})}.items():
        element = slack.find_element(view_id, block_id)
        state = blockkit.state_for(element, choice)
        slack.set_state(view_id, block_id, element["action_id"], state)
    user_id = slack.view_user(view_id)
    view = {**slack.views[view_id], "state": {"values": slack.state_values(view_id)}}
    payload = {
        "type": "view_submission",
        "token": "sandbox-verification-token",
        "api_app_id": "A0SANDBOX",
        "team": {"id": "T0SANDBOX", "domain": "sandbox"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0SANDBOX"},
        "is_enterprise_install": False,
        "trigger_id": slack.issue_trigger(user_id),
        "view": view,
        "response_urls": [],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


async def send(driver: SlackDriver, body: bytes) -> dict[str, Any]:
    response = await driver.raw(body, FORM)
    assert response.status_code == 200, response.text
    ack: dict[str, Any] = response.json() if response.content else {}
    return ack


def opportunity_posts(close: CloseSimulator) -> list[Any]:
    """Every POST /opportunity/ that reached the simulator (answered or not)."""
    return [r for r in close.requests if r.method == "POST" and r.path == "/opportunity/"]


def summaries(slack: SlackSimulator, channel: str = "C0SALES") -> list[dict[str, Any]]:
    """Top-level messages in `channel` that say an opportunity was logged."""
    return [
        m
        for m in slack.messages(channel)
        if not m.get("thread_ts") or m.get("thread_ts") == m["ts"]
        if "logged an opportunity" in json.dumps(m.get("blocks"))
    ]


def queued_notices(slack: SlackSimulator, channel: str = "C0SALES") -> list[Any]:
    return [
        c
        for c in slack.calls("chat.postMessage")
        if c.ok and c.params.get("channel") == channel and "Queued" in str(c.params.get("text"))
    ]


async def wait_summaries(
    slack: SlackSimulator,
    count: int,
    channel: str = "C0SALES",
    timeout: float = 10.0,  # noqa: ASYNC109
) -> list[dict[str, Any]]:
    await wait_until(lambda: len(summaries(slack, channel)) >= count, timeout)
    return summaries(slack, channel)


@asynccontextmanager
async def fast_sandbox(tmp_path: Path, **overrides: Any) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", **{**FAST, **overrides}
    ) as sb:
        yield sb


async def stored(sb: Sandbox) -> list[Any]:
    return list(await sb.services.store.recent(limit=50))


async def wait_state(sb: Sandbox, state: SubmissionState, timeout: float = 5.0) -> Any:  # noqa: ASYNC109
    """The only submission, once it reaches `state` (the user is told just before it is marked)."""
    deadline = time.monotonic() + timeout
    while True:
        [row] = await stored(sb)
        if row.state == state or time.monotonic() > deadline:
            assert row.state == state
            return row
        await asyncio.sleep(0.02)


async def all_told(sb: Sandbox) -> bool:
    """Every submission stored is told and marked (none left to work), and every create sent
    to Close has had its answer: past this, nothing more is created or said."""
    rows = await stored(sb)
    return (
        bool(rows)
        and all(row.confirmed_at is not None for row in rows)
        and all(post.status is not None for post in opportunity_posts(sb.close))
    )


# Questions a test asks of a bot process's store from outside (SQLite and PostgreSQL alike):
# every submission stored is told and marked (none left to work), every change from Close ended.
ALL_TOLD = "SELECT count(*) > 0 AND count(*) = count(confirmed_at) FROM submissions"
CHANGES_ENDED = (
    "SELECT count(*) = 0 FROM close_events WHERE state IN ('pending', 'applying', 'telling')"
)


async def ask(url: str, sql: str) -> bool:
    """The answer to `sql` (one true-or-false value) from the database at `url`."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return bool((await connection.exec_driver_sql(sql)).scalar_one())
    finally:
        await engine.dispose()


# --- the schema ---------------------------------------------------------------------------


async def test_migrations_build_exactly_the_tables_and_run_twice(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}"
    await upgrade(url)
    await upgrade(url)  # a restart: nothing to do, nothing broken
    assert await current_revision(url) == head_revision()
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
            journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
    finally:
        await engine.dispose()
    assert diff == []
    assert journal == "wal"


async def test_a_database_at_head_is_started_on_without_importing_alembic(tmp_path: Path) -> None:
    """Alembic costs a start ~0.1 s and ~11 MB: a database already at HEAD is only read."""
    assert head_revision() == HEAD  # a new migration moves HEAD
    url = f"sqlite+aiosqlite:///{tmp_path / 'head.sqlite3'}"
    script = (
        "import asyncio, sys\n"
        "from bot.store.migrate import upgrade\n"
        "asyncio.run(upgrade(sys.argv[1]))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako'}))\n"
    )
    imported = []
    for _ in range(2):  # fresh, then at head
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, url, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        out, _ = await process.communicate()
        assert process.returncode == 0
        imported.append(out.decode().strip())
    assert imported == ["['alembic', 'mako']", "[]"]
    assert await current_revision(url) == HEAD


async def test_database_from_before_migrations_is_adopted_and_upgraded(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'legacy.sqlite3'}"
    await upgrade(url, "0001")  # the spine's create_all schema…
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE alembic_version"))  # …without Alembic
    finally:
        await engine.dispose()
    await upgrade(url)
    assert await current_revision(url) == head_revision()


async def test_migrate_and_history_commands_work_from_any_directory(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "PYTHONPATH": str(ROOT),
    }
    for args, expected in (
        (["migrate"], f"revision {head_revision()}"),
        (["history"], "No submissions"),
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert expected in out.decode()


# --- Close misbehaving ----------------------------------------------------------------------


async def test_429_burst_then_success_creates_once_and_confirms(tmp_path: Path) -> None:
    async with fast_sandbox(tmp_path) as sb:
        view_id = await open_modal(sb, "Acme Corp 12k annual")
        sb.close.rate_limit(4, reset=0.05, paths=["/opportunity/"])
        await submit(sb, view_id)
        [summary] = await wait_summaries(sb.slack, 1)
        assert len(sb.close.opportunities) == 1
        assert [r.status for r in opportunity_posts(sb.close)].count(200) == 1
        assert "Acme Corp" in summary["text"]
        [row] = await stored(sb)
        assert row.state == SubmissionState.CREATED and row.opportunity_id


async def test_500s_for_a_while_then_queued_notice_becomes_the_confirmation(
    tmp_path: Path,
) -> None:
    async with fast_sandbox(tmp_path) as sb:
        view_id = await open_modal(sb, "Acme Corp 12k annual")
        sb.close.fail(5, 500, paths=["/opportunity/"], methods=["POST"])
        await submit(sb, view_id)
        [opportunity] = await wait_opportunities(sb, 1, timeout=10)
        [summary] = await wait_summaries(sb.slack, 1)
        [queued] = queued_notices(sb.slack)
        assert "Close is not answering, I will keep trying" in json.dumps(queued.params["blocks"])
        # The "Queued" message itself became the confirmation (chat.update), not a second post.
        assert summary["ts"] == queued.response["ts"]
        assert sb.slack.calls("chat.update")
        assert opportunity["lead_id"] == "lead_acme"
        assert [r.status for r in opportunity_posts(sb.close)] == [500] * 5 + [200]
        [row] = await stored(sb)
        assert row.state == SubmissionState.CREATED and row.attempts == 6
        assert row.opportunity_id == opportunity["id"]


async def test_post_applied_then_timeout_is_reconciled_never_posted_again(
    tmp_path: Path,
) -> None:
    async with fast_sandbox(tmp_path, close_timeout_seconds=0.3) as sb:
        view_id = await open_modal(sb, "Acme Corp 12k annual note: signed on the train")
        sb.close.apply_then_hang(1, 3.0)
        await submit(sb, view_id)
        [summary] = await wait_summaries(sb.slack, 1)
        assert len(sb.close.opportunities) == 1
        assert len(opportunity_posts(sb.close)) == 1  # found by looking, not re-sent
        lists = [r for r in sb.close.requests if r.method == "GET" and r.path == "/opportunity/"]
        assert lists and lists[-1].query["lead_id"] == "lead_acme"
        assert queued_notices(sb.slack)  # the user saw it was queued, then the confirmation
        [row] = await stored(sb)
        assert row.opportunity_id == sb.close.opportunities[0]["id"]
        assert row.sent is not None and row.sent["json"]["lead_id"] == "lead_acme"
        assert row.sent["json"]["note"] == "signed on the train"
        # The details land in the summary's thread, note included.
        await wait_until(
            lambda: "signed on the train" in json.dumps(sb.slack.thread("C0SALES", summary["ts"]))
        )


async def test_reconcile_does_not_take_an_identical_deal_another_submission_owns(
    tmp_path: Path,
) -> None:
    """Two identical deals logged on purpose stay two, even when the second one's POST hangs."""
    async with fast_sandbox(tmp_path, close_timeout_seconds=0.3) as sb:
        first = await open_modal(sb, "Acme Corp 12k annual")
        await submit(sb, first)
        await wait_summaries(sb.slack, 1)
        second = await open_modal(sb, "Acme Corp 12k annual")
        sb.close.fail(1, 500, paths=["/opportunity/"], methods=["POST"])
        await submit(sb, second)
        await wait_summaries(sb.slack, 2)
        assert len(sb.close.opportunities) == 2
        rows = await stored(sb)
        assert len({row.opportunity_id for row in rows}) == 2


async def test_close_down_past_the_deadline_fails_clearly_with_try_again(
    tmp_path: Path,
) -> None:
    async with fast_sandbox(tmp_path, retry_give_up_seconds=0.6) as sb:
        view_id = await open_modal(sb, "Acme Corp 12k annual")
        sb.close.fail(10_000, 500, paths=["/opportunity/"], methods=["POST"])
        await submit(sb, view_id)
        await wait_until(
            lambda: any(
                "Try again" in json.dumps(m.get("blocks")) for m in sb.slack.messages("C0SALES")
            ),
            10,
        )
        [message] = [
            m for m in sb.slack.messages("C0SALES") if "Try again" in json.dumps(m.get("blocks"))
        ]
        assert "Close did not accept it" in message["text"]
        [queued] = queued_notices(sb.slack)
        assert message["ts"] == queued.response["ts"]  # the Queued notice now says it failed
        assert sb.close.opportunities == []
        row = await wait_state(sb, SubmissionState.FAILED)
        assert "500" in (row.error or "")


async def test_close_400_after_the_modal_closed_says_why_and_try_again_reopens_it_filled(
    tmp_path: Path,
) -> None:
    async with fast_sandbox(tmp_path) as sb:
        view_id = await open_modal(sb, "Acme Corp 12k annual 60% status: Demo Scheduled")
        # Deleted in Close after the catalog loaded; Close answers after the user closed the modal.
        sb.close.org.statuses[:] = [s for s in sb.close.org.statuses if s["id"] != "stat_demo"]
        sb.close.path_latency["/opportunity/"] = 0.3
        await submit(sb, view_id)
        await sb.driver.close_view(view_id)
        await wait_until(
            lambda: any(
                "Try again" in json.dumps(m.get("blocks")) for m in sb.slack.messages("C0SALES")
            ),
            10,
        )
        [message] = [
            m for m in sb.slack.messages("C0SALES") if "Try again" in json.dumps(m.get("blocks"))
        ]
        assert "stat_demo does not exist" in message["text"]  # says why
        assert sb.close.opportunities == []
        row = await wait_state(sb, SubmissionState.FAILED)
        assert row.response and row.response["status"] == 400

        mark = sb.slack.mark()
        pressed = await sb.driver.press_button(
            channel_id="C0SALES", message_ts=message["ts"], action_id=RETRY_ACTION_ID
        )
        assert pressed.response.status_code == 200
        view = await sb.driver.wait_for_view(pressed.trigger_id)
        assert sb.slack.mark() > mark
        blocks = {b.get("block_id"): b for b in view["blocks"]}
        assert blocks["lead"]["element"]["initial_option"]["value"] == "lead_acme"
        assert "12,000" in blocks["value"]["element"]["initial_value"]
        assert blocks["confidence"]["element"]["initial_value"] == "60"
        assert json.loads(view["private_metadata"])  # a fresh form, ready to submit


# --- the same submission more than once -----------------------------------------------------


async def test_same_submission_resent_sequentially_creates_one_opportunity(
    tmp_path: Path,
) -> None:
    async with fast_sandbox(tmp_path) as sb:
        view_id = await open_modal(sb, "Acme Corp 12k annual")
        body = frozen_submission(sb.slack, view_id)
        first = await send(sb.driver, body)
        await wait_summaries(sb.slack, 1)
        second = await send(sb.driver, body)  # Slack re-sends it after the deal landed
        assert first["response_action"] == second["response_action"] == "update"
        assert "Creating the opportunity" in json.dumps(first["view"])
        # The repeat shows the outcome Close already gave, not a "Creating…" that never ends.
        assert "Created the opportunity" in json.dumps(second["view"])
        await wait_until(lambda: all_told(sb))
        assert len(sb.close.opportunities) == 1
        assert len(opportunity_posts(sb.close)) == 1
        assert len(summaries(sb.slack)) == 1
        assert len(await stored(sb)) == 1


async def test_double_tap_sent_concurrently_creates_one_opportunity(tmp_path: Path) -> None:
    async with fast_sandbox(tmp_path) as sb:
        view_id = await open_modal(sb, "Acme Corp 12k annual")
        body = frozen_submission(sb.slack, view_id)
        acks = await asyncio.gather(*(send(sb.driver, body) for _ in range(5)))
        assert all(ack["response_action"] == "update" for ack in acks)
        await wait_summaries(sb.slack, 1)
        await wait_until(lambda: all_told(sb))
        assert len(sb.close.opportunities) == 1
        assert len(opportunity_posts(sb.close)) == 1
        assert len(summaries(sb.slack)) == 1


# --- the worker's claims --------------------------------------------------------------------


def _request() -> DealRequest:
    return DealRequest(lead=LeadChoice(id="lead_acme"), lead_name="Acme", value=100)


async def test_a_stalled_worker_cannot_write_over_the_one_that_took_over(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'claims.sqlite3'}")
    await upgrade(engine)
    store = SubmissionStore(session_factory(engine), dialect="sqlite")
    now = datetime.now(UTC)
    try:
        await store.accept(
            idempotency_key="k1",
            request=_request(),
            reply_to=ReplyTarget(user_id="U0ALICE"),
            slack_user_id="U0ALICE",
            team_id=None,
            now=now,
        )
        lease = timedelta(seconds=1)
        [stalled] = await store.claim_due(now=now, lease=lease, owner="a")
        assert await store.claim_due(now=now, lease=lease, owner="b") == []  # held
        later = now + timedelta(seconds=2)
        [taken] = await store.claim_due(now=later, lease=lease, owner="b")  # lease ran out
        assert taken.attempts == stalled.attempts + 1
        # The stalled worker wakes up: every write of its claim is refused.
        assert not await store.renew(stalled, now=later, lease=lease)
        assert not await store.record_sent(stalled, {"json": {}}, now=later)
        assert not await store.record_created(
            stalled, lead_id="lead_acme", opportunity_id="oppo_x", response={}, now=later
        )
        assert not await store.retry_at(stalled, at=later, error="x", now=later)
        assert not await store.mark_failed(stalled, error="x", response=None, now=later)
        # The new holder's writes go through; created-but-untold is work until confirmed.
        assert await store.record_created(
            taken, lead_id="lead_acme", opportunity_id="oppo_1", response={}, now=later
        )
        much_later = later + timedelta(seconds=5)
        [untold] = await store.claim_due(now=much_later, lease=lease, owner="c")
        assert untold.state == SubmissionState.CREATED and untold.opportunity_id == "oppo_1"
        assert await store.mark_confirmed(untold, now=much_later)
        assert await store.claim_due(now=much_later + timedelta(hours=1), lease=lease) == []
        [entry] = await store.recent()
        assert entry.claimed_by == "c" and entry.confirmed_at is not None
    finally:
        await engine.dispose()


# --- kill -9 --------------------------------------------------------------------------------


class BotProcess:
    """`python -m bot serve` in a child process, talking to simulators in this one."""

    def __init__(
        self, close: CloseSimulator, slack: SlackSimulator, database_url: str, cwd: Path
    ) -> None:
        self.port = port_for_a_child()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLOSE_"))},
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "CLOSE_API_KEY": CLOSE_API_KEY,
            "CLOSE_API_URL": close.base_url,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": database_url,
            "WORKER_POLL_SECONDS": "0.05",
            "WORKER_LEASE_SECONDS": "1",
            "RETRY_BASE_SECONDS": "0.05",
            "RETRY_MAX_SECONDS": "0.2",
            # A worker taking over a create another one sent waits this (+2 s) before it looks
            # in Close: long enough for the tests' hanging creates, short for their restarts.
            "CLOSE_TIMEOUT_SECONDS": "5",
            "LOG_LEVEL": "WARNING",
        }
        self.cwd = cwd
        self.process: asyncio.subprocess.Process | None = None
        # Set to a path to keep the process's log (e.g. while debugging a test).
        self.log_path: Path | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self.log_path.open("ab") if self.log_path else asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                assert self.process.returncode is None, "the bot exited"
                try:
                    health = (await http.get(self.url + "healthz")).json()
                    if health.get("catalog_loaded"):
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("the bot did not become healthy")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    def stop(self) -> None:
        """At a test's end: killed if it is still running (SIGCONT first, in case it was
        frozen with SIGSTOP)."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)
            self.kill()

    async def wait(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.process.wait()

    async def stopped(self) -> None:
        self.stop()
        await self.wait()

    async def run(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        return out.decode()


@pytest.mark.parametrize("moment", ["before-close-has-it", "after-close-has-it"])
async def test_sigkill_between_ack_and_create_then_restart_creates_once(
    tmp_path: Path, moment: str
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'crash.sqlite3'}"
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        first = BotProcess(close, slack, database_url, tmp_path)
        second = BotProcess(close, slack, database_url, tmp_path)
        try:
            await first.start()
            async with SlackDriver(slack, first.url + "slack/events", SIGNING_SECRET) as driver:
                mark = slack.mark()
                command = await driver.slash_command("Acme Corp 12k annual", channel_id="C0SALES")
                view = await driver.wait_for_view(command.trigger_id)
                await slack.wait_for(  # the lead preselection lands
                    "views.update", lambda c: c.params["view_id"] == view["id"], since=mark
                )
                if moment == "before-close-has-it":
                    # Close keeps answering 429 to the create: the worker is stuck waiting.
                    close.fail(10_000, 429, paths=["/opportunity/"], methods=["POST"])
                else:
                    # Close stores it and never answers before the kill.
                    close.apply_then_hang(1, 60)
                ack = await send(driver, frozen_submission(slack, view["id"]))
                assert ack["response_action"] == "update"  # stored, acked: now it must land
            await wait_until(lambda: len(opportunity_posts(close)) >= 1, 10)
            first.kill()
            await first.wait()
            assert len(close.opportunities) == (0 if moment == "before-close-has-it" else 1)
            close.clear_faults()

            await second.start()  # a new process on the same file finishes the job
            await wait_summaries(slack, 1, timeout=15)
            # Told and marked: the submission has ended, nothing more is created or said.
            await wait_until(lambda: ask(database_url, ALL_TOLD), 10)
            assert len(close.opportunities) == 1
            answered = [r for r in opportunity_posts(close) if r.status == 200]
            if moment == "after-close-has-it":
                assert len(opportunity_posts(close)) == 1  # reconciled, never re-posted
            else:
                assert len(answered) == 1
            assert len(summaries(slack)) == 1

            history = [
                json.loads(line) for line in (await second.run("history", "--json")).splitlines()
            ]
            [entry] = history
            assert entry["state"] == "created" and entry["attempts"] >= 2
            assert entry["opportunity_id"] == close.opportunities[0]["id"]
            assert entry["sent"]["json"]["lead_id"] == "lead_acme"
            assert entry["slack_user_id"] == "U0ALICE"
            assert "created" in await second.run("history", "--user", "U0ALICE", "--limit", "5")
        finally:
            for bot in (first, second):
                await bot.stopped()


def attempts(path: Path) -> int:
    """How many times the only submission in the SQLite file at `path` was claimed."""
    db = sqlite3.connect(path)
    try:
        [(count,)] = db.execute("SELECT attempts FROM submissions").fetchall()
    finally:
        db.close()
    return int(count)


async def test_a_frozen_worker_whose_create_is_still_on_its_way_is_not_created_twice(
    tmp_path: Path,
) -> None:
    """The duplicate seen under saturation: a worker stalls past its lease while its create is
    still travelling to Close; the worker that takes over must not look in Close (and send
    again) before that request has settled."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'frozen.sqlite3'}"
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        first = BotProcess(close, slack, database_url, tmp_path)
        second = BotProcess(close, slack, database_url, tmp_path)
        try:
            await first.start()
            await second.start()
            async with SlackDriver(slack, first.url + "slack/events", SIGNING_SECRET) as driver:
                mark = slack.mark()
                command = await driver.slash_command("Acme Corp 12k annual", channel_id="C0SALES")
                view = await driver.wait_for_view(command.trigger_id)
                await slack.wait_for(  # the lead preselection lands
                    "views.update", lambda c: c.params["view_id"] == view["id"], since=mark
                )
                # Close takes 4 s before it creates anything: the create is on its way.
                close.create_latency = 4.0
                ack = await send(driver, frozen_submission(slack, view["id"]))
                assert ack["response_action"] == "update"
            await wait_until(lambda: len(opportunity_posts(close)) >= 1, 10)
            # The process that sent it stalls mid-request past its 1 s lease; the other one
            # takes the submission over while Close has not created it yet.
            with sqlite3.connect(tmp_path / "frozen.sqlite3") as db:
                [(claimed_by,)] = db.execute("SELECT claimed_by FROM submissions").fetchall()
            sender_pid = int(str(claimed_by).split(":")[1])
            [sender] = [b for b in (first, second) if b.process and b.process.pid == sender_pid]
            assert sender.process is not None
            sender.process.send_signal(signal.SIGSTOP)
            # Frozen until the other process has claimed it (a claim counts an attempt).
            await wait_until(lambda: attempts(tmp_path / "frozen.sqlite3") >= 2, 10)
            sender.process.send_signal(signal.SIGCONT)
            await wait_summaries(slack, 1, timeout=20)
            # Told and marked, and Close has answered the create: nothing more is under way.
            await wait_until(lambda: ask(database_url, ALL_TOLD), 10)
            await wait_until(
                lambda: all(r.status is not None for r in opportunity_posts(close)), 10
            )
            assert len(close.opportunities) == 1
            assert len(summaries(slack)) == 1
        finally:
            for bot in (first, second):
                await bot.stopped()
