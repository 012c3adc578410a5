"""The start-up warm-up (bot.runtime.warm_up) on real processes: /readyz answers 503 "warm-up"
while it runs and /healthz answers at once; then /readyz answers 200, and the first command pays
for nothing the warm-up was for (no auth.test before its ack, no read of Close's catalog). The
warm-up is bounded: Close unreachable ends it with one line, and /readyz then says why."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.close_sim import CloseSimulator
from sandbox.server import bind_free_port
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET
from tests.flows import wait_until
from tests.process import APP_TOKEN, Bot

pytestmark = pytest.mark.asyncio

# What the catalog reads from Close (every load, the first and each refresh).
CATALOG_READS = (
    "/pipeline/",
    "/status/opportunity/",
    "/user/",
    "/custom_field/opportunity/",
    "/organization/",
)
# Close answers the catalog's pipelines this slowly at start: the warm-up lasts that long.
SLOW_CATALOG_SECONDS = 1.5


@dataclass
class Answer:
    readyz: int
    problems: dict[str, Any]
    healthz: int


async def answers_until_ready(bot: Bot, timeout: float = 30) -> list[Answer]:  # noqa: ASYNC109
    """/readyz (with /healthz right after) from the first answer until /readyz says 200."""
    answers: list[Answer] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient() as http:
        while loop.time() < deadline:
            assert bot.process is not None and bot.process.returncode is None, bot.stderr()
            with contextlib.suppress(httpx.TransportError):
                ready = await http.get(bot.url + "readyz")
                health = await http.get(bot.url + "healthz")
                problems = ready.json().get("problems", {})
                answers.append(Answer(ready.status_code, problems, health.status_code))
                if ready.status_code == 200:
                    return answers
            await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never answered 200: {answers[-3:]}\n{bot.stderr()}")


def catalog_reads(close: CloseSimulator) -> int:
    return sum(close.count("GET", path) for path in CATALOG_READS)


@pytest.mark.parametrize("command", ["serve", "worker", "socket"])
async def test_readyz_says_warm_up_until_the_process_is_warm(tmp_path: Path, command: str) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack,
    ):
        close.path_latency["/pipeline/"] = SLOW_CATALOG_SECONDS
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, command
        )
        try:
            await bot.spawn()
            answers = await answers_until_ready(bot)
        finally:
            bot.stop()
    *warming, ready = answers
    assert ready.readyz == 200 and ready.healthz == 200
    # Up (healthz) from its first answer, and not ready while it warms up.
    assert warming, "the warm-up was over before /readyz first answered"
    assert all(answer.readyz == 503 and answer.healthz == 200 for answer in warming)
    assert "warm-up" in warming[0].problems
    # It was the catalog's read that it waited for: the warm-up ended once the catalog had loaded.
    assert close.count("GET", "/pipeline/") >= 1
    assert any("catalog" in answer.problems for answer in warming)


async def test_the_first_command_after_ready_pays_for_no_warm_up(tmp_path: Path) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        bot = Bot(close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path)
        try:
            await bot.start()  # until /readyz 200
            auth_tests, reads = len(slack.calls("auth.test")), catalog_reads(close)
            async with SlackDriver(slack, bot.url + "slack/events", SIGNING_SECRET) as driver:
                command = await driver.slash_command("Acme Corp 12k ARR 60% close next friday")
                assert command.response.status_code == 200
                view = await driver.wait_for_view(command.trigger_id)
        finally:
            bot.stop()
    assert view["callback_id"]
    # Bolt asks Slack who the token is on its first request, before that request's ack, unless
    # the warm-up told it; the catalog was read before ready, not on the request's path.
    assert len(slack.calls("auth.test")) == auth_tests
    assert catalog_reads(close) == reads
    assert "rehearsal" not in bot.stderr()  # the modal and its submission were rehearsed


async def test_close_unreachable_ends_the_warm_up_with_one_line_and_readyz_says_why(
    tmp_path: Path,
) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        bot = Bot(close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path)
        bot.env["WARM_UP_SECONDS"] = "1"
        with bind_free_port() as closed:  # bound, never listening: connections are refused
            bot.env["CLOSE_API_URL"] = f"http://127.0.0.1:{closed.getsockname()[1]}/api/"
            try:
                await bot.spawn()
                over = await problems_once(bot, lambda problems: "warm-up" not in problems)
            finally:
                bot.stop()
    # Still not ready, for the reason an operator can act on: Close's catalog never loaded.
    assert set(over) == {"catalog"}
    [line] = [line for line in bot.stderr().splitlines() if "Warm-up over" in line]
    assert "Close's catalog" in line and "/readyz" in line


async def problems_once(bot: Bot, wanted: Any, timeout: float = 20) -> dict[str, Any]:  # noqa: ASYNC109
    """/readyz's problems, polled until `wanted(problems)` is true (after its first answer)."""
    async with httpx.AsyncClient() as http:

        async def problems() -> dict[str, Any] | None:
            assert bot.process is not None and bot.process.returncode is None, bot.stderr()
            with contextlib.suppress(httpx.TransportError):
                answer: dict[str, Any] = (await http.get(bot.url + "readyz")).json()
                found: dict[str, Any] = answer.get("problems", {})
                return found if wanted(found) else None
            return None

        found: dict[str, Any] = await wait_until(problems, timeout=timeout, interval=0.05)
        return found
