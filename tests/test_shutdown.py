"""SIGTERM and SIGINT on real processes (`serve`, `worker`, `socket`): they exit 0 within 10 s,
finish or hand back what they hold, and the next start finishes it — nothing lost, nothing
doubled. Socket Mode runs against the Slack simulator's websocket end."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from bot.deals.models import SubmissionState
from bot.deals.store import AuditEntry, SubmissionStore
from bot.store.db import create_engine, session_factory
from sandbox.close_sim import CloseSimulator
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET
from tests.flows import REQUIRED_CUSTOM, wait_until
from tests.process import APP_TOKEN, Bot
from tests.test_durability import frozen_submission, opportunity_posts, send, summaries

pytestmark = pytest.mark.asyncio

EXIT_WITHIN = 10.0


async def audit(database_url: str) -> list[AuditEntry]:
    engine = create_engine(database_url)
    try:
        store = SubmissionStore(session_factory(engine), dialect=engine.dialect.name)
        return list(await store.recent(limit=500))
    finally:
        await engine.dispose()


async def open_views(driver: SlackDriver, slack: SlackSimulator, count: int) -> list[str]:
    """`count` modals, each for a different value, with the lead preselected in each."""
    views: list[str] = []
    for number in range(count):
        command = await driver.slash_command(f"Acme Corp {number + 1}k annual")
        views.append((await driver.wait_for_view(command.trigger_id))["id"])
    await wait_until(
        lambda: {c.params.get("view_id") for c in slack.calls("views.update")} >= set(views)
    )
    return views


async def test_sigterm_mid_load_hands_back_what_it_holds_and_the_next_start_finishes_it_once(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        first = Bot(close, slack, database_url, tmp_path)
        second = Bot(close, slack, database_url, tmp_path)
        for bot in (first, second):
            # A claim only frees by being handed back: its lease would outlast the test.
            bot.env["WORKER_LEASE_SECONDS"] = "120"
            # The hanging creates stay in flight until the signal (no client timeout first).
            bot.env["CLOSE_TIMEOUT_SECONDS"] = "30"
        try:
            await first.start()
            async with SlackDriver(slack, first.url + "slack/events", SIGNING_SECRET) as driver:
                bodies = [
                    frozen_submission(slack, view) for view in await open_views(driver, slack, 40)
                ]
                # The first six creates reach Close, whose answers never come before the signal:
                # in flight past the grace, they are cut short and must be handed back.
                close.apply_then_hang(6, 60)
                acked: list[bytes] = []

                async def submit_all() -> None:
                    for body in bodies:
                        try:
                            ack = await send(driver, body)
                        except (httpx.TransportError, AssertionError):
                            return  # the server stopped taking requests
                        assert ack["response_action"] == "update"  # stored before the ack
                        acked.append(body)
                        await asyncio.sleep(0.01)

                submitting = asyncio.create_task(submit_all())
                await wait_until(lambda: len(acked) >= 20, 10)
                code, took = await first.signal_and_wait(signal.SIGTERM)
                await submitting

            assert code == 0, first.stderr()
            assert took < EXIT_WITHIN
            entries = await audit(database_url)
            assert len(entries) == len(acked)
            unfinished = [e for e in entries if e.confirmed_at is None]
            assert len(unfinished) >= 6
            # Handed back, not left to expire: nobody holds them, they are due now.
            assert all(e.claimed_by is None for e in unfinished)
            assert all(
                e.state in (SubmissionState.PENDING, SubmissionState.CREATED) for e in unfinished
            )

            close.clear_faults()
            await second.start()
            await wait_until(lambda: len(summaries(slack)) >= len(acked), 15)

            async def all_told() -> bool:  # every submission told and marked: none left to work
                return all(entry.confirmed_at is not None for entry in await audit(database_url))

            await wait_until(all_told, 10)
            # Every acked submission in Close exactly once, told exactly once; the six cut short
            # after reaching Close were found there, never posted again.
            assert len(close.opportunities) == len(acked)
            assert len(opportunity_posts(close)) == len(acked)
            assert len(summaries(slack)) == len(acked)
            code, took = await second.signal_and_wait(signal.SIGINT)
            assert code == 0
            assert took < EXIT_WITHIN
        finally:
            first.stop()
            second.stop()


@pytest.mark.parametrize(
    ("command", "sig"),
    [
        (("serve",), signal.SIGTERM),
        (("serve", "--no-worker"), signal.SIGINT),
        (("worker",), signal.SIGTERM),
        (("worker",), signal.SIGINT),
    ],
)
async def test_idle_process_exits_0_at_once(
    tmp_path: Path, command: tuple[str, ...], sig: signal.Signals
) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, *command
        )
        try:
            await bot.start()
            code, took = await bot.signal_and_wait(sig)
            assert code == 0, bot.stderr()
            assert took < 3.0
        finally:
            bot.stop()


# --- Socket Mode -------------------------------------------------------------------------------


def socket_sims() -> tuple[CloseSimulator, SlackSimulator]:
    return CloseSimulator(api_key=CLOSE_API_KEY), SlackSimulator(
        bot_token=BOT_TOKEN, app_token=APP_TOKEN
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_socket_mode_finishes_what_it_acked_then_closes_the_websocket_properly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    close, slack = socket_sims()
    async with close, slack:
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, "socket"
        )
        try:
            await bot.start()
            connection = await slack.socket_mode.wait_connections(1)
            async with SlackDriver(slack, "", SIGNING_SECRET, socket_mode=True) as driver:
                command = await driver.slash_command("Acme Corp 12k annual")
                view = await driver.wait_for_view(command.trigger_id)
                await wait_until(lambda: len(slack.calls("views.update")) >= 1)
                # Slack is slow now: the confirmation is still being posted when the signal comes.
                slack.latency = 0.5
                ack = await driver.submit_view(view["id"], values=REQUIRED_CUSTOM)
                assert ack.json()["response_action"] == "update"
                await wait_until(lambda: len(close.opportunities) == 1)
                code, took = await bot.signal_and_wait(sig)
            assert code == 0, bot.stderr()
            assert took < EXIT_WITHIN
            # The websocket was closed with a close frame (1000), not dropped.
            await slack.socket_mode.wait_closed(connection)
            assert connection.close_code == 1000
            # What was acked before the signal was finished: created once and told.
            [entry] = await audit(bot.env["DATABASE_URL"])
            assert entry.confirmed_at is not None
            assert len(summaries(slack)) == 1
        finally:
            bot.stop()


async def test_socket_mode_exits_0_promptly_while_slack_refuses_the_connection(
    tmp_path: Path,
) -> None:
    close, slack = socket_sims()
    async with close, slack:
        await slack.socket_mode.start()
        slack.socket_mode.refuse = True  # the websocket handshake fails: it keeps retrying
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, "socket"
        )
        try:
            await bot.start()  # ready: the rest of the app does not wait for the websocket
            await wait_until(lambda: len(slack.calls("apps.connections.open")) >= 2, 5)
            code, took = await bot.signal_and_wait(signal.SIGTERM)
            assert code == 0, bot.stderr()
            assert took < 3.0
        finally:
            bot.stop()


async def test_a_dead_socket_mode_connection_is_replaced_within_seconds(tmp_path: Path) -> None:
    close, slack = socket_sims()
    async with close, slack:
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, "socket"
        )
        try:
            await bot.start()
            first = await slack.socket_mode.wait_connections(1)
            await wait_until(lambda: first.pings >= 1, 5)  # it pings
            slack.socket_mode.silent = True  # the network dies: no pong, nothing
            gone_at = asyncio.get_running_loop().time()
            second = await slack.socket_mode.wait_connections(2, 10)
            noticed = asyncio.get_running_loop().time() - gone_at
            assert noticed < 7.0  # was up to 25 s with Bolt's default ping interval
            slack.socket_mode.silent = False
            # The new connection works.
            async with SlackDriver(slack, "", SIGNING_SECRET, socket_mode=True) as driver:
                command = await driver.slash_command("Acme Corp 12k annual")
                await driver.wait_for_view(command.trigger_id)
            assert second.open
        finally:
            bot.stop()
