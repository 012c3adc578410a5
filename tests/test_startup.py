"""Starting with a token or key that Slack or Close refuses ends the process at once with one line
naming the variable; Slack or Close merely unreachable is no refusal: the bot starts anyway.
`doctor` checks the app token (Socket Mode) the same way."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path

import httpx
import pytest

from bot.runtime.doctor import run_doctor
from bot.settings import Settings
from sandbox.close_sim import CloseSimulator
from sandbox.server import bind_free_port
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY
from tests.flows import wait_until
from tests.process import APP_TOKEN, Bot

pytestmark = pytest.mark.asyncio

WRONG_BOT_TOKEN = "xoxb-1111-2222-wrongwrongwrong"
WRONG_APP_TOKEN = "xapp-1-A0WRONG-3333-wrongwrongwrong"
WRONG_CLOSE_KEY = "api_wrongkey.wrongsecretpart"


@pytest.mark.parametrize(
    ("command", "env", "variable", "why"),
    [
        (("serve",), {"SLACK_BOT_TOKEN": WRONG_BOT_TOKEN}, "SLACK_BOT_TOKEN", "invalid_auth"),
        (("serve",), {"CLOSE_API_KEY": WRONG_CLOSE_KEY}, "CLOSE_API_KEY", "HTTP 401"),
        (("worker",), {"SLACK_BOT_TOKEN": WRONG_BOT_TOKEN}, "SLACK_BOT_TOKEN", "invalid_auth"),
        (("worker",), {"CLOSE_API_KEY": WRONG_CLOSE_KEY}, "CLOSE_API_KEY", "HTTP 401"),
        (("socket",), {"SLACK_APP_TOKEN": WRONG_APP_TOKEN}, "SLACK_APP_TOKEN", "invalid_auth"),
        # The bot token where the app token belongs: Slack says not_allowed_token_type.
        (("socket",), {"SLACK_APP_TOKEN": BOT_TOKEN}, "SLACK_APP_TOKEN", "not_allowed_token_type"),
        (("socket",), {"CLOSE_API_KEY": WRONG_CLOSE_KEY}, "CLOSE_API_KEY", "HTTP 401"),
    ],
)
async def test_a_refused_credential_ends_the_start_with_one_line_naming_it(
    tmp_path: Path, command: tuple[str, ...], env: dict[str, str], variable: str, why: str
) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack,
    ):
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, *command
        )
        bot.env.update(env)
        try:
            await bot.spawn()
            code = await bot.exit_code(timeout=20)
        finally:
            bot.stop()
        lines = [line for line in bot.stderr().splitlines() if line.strip()]
        assert code == 1
        assert len(lines) == 1, lines
        [line] = lines
        assert variable in line and why in line
        assert (
            "Basic Information" in line or "OAuth" in line or "Developer" in line
        )  # where to get it
        for secret in (WRONG_BOT_TOKEN, WRONG_APP_TOKEN, WRONG_CLOSE_KEY, BOT_TOKEN):
            assert secret not in line
        # Nothing was started: no schema, no Close catalog reads.
        assert not (tmp_path / "bot.sqlite3").exists()
        assert close.count("GET", "/pipeline/") == 0


@pytest.mark.parametrize("unreachable", ["SLACK_API_URL", "CLOSE_API_URL"])
async def test_slack_or_close_unreachable_at_start_is_no_refusal(
    tmp_path: Path, unreachable: str
) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        bot = Bot(close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path)
        with bind_free_port() as closed:  # bound, never listening: connections are refused
            port = closed.getsockname()[1]
            bot.env[unreachable] = f"http://127.0.0.1:{port}/api/"
            try:
                await bot.spawn()
                # Close unreachable: watched for 2 s; Slack unreachable: until ready.
                watch = 2.0 if unreachable == "CLOSE_API_URL" else 15.0
                statuses = await readiness_over(bot, seconds=watch)
            finally:
                bot.stop()
        assert statuses, bot.stderr()  # it came up
        if unreachable == "CLOSE_API_URL":
            # Up, never ready: Close's catalog has not loaded (a load balancer keeps waiting).
            assert set(statuses) == {503}
        else:
            assert statuses[-1] == 200
        assert "starting anyway" in bot.stderr()


async def test_the_start_asks_close_who_the_key_is_once(tmp_path: Path) -> None:
    """The credential check's GET /me/ names the key's organization: the catalog's loads (the
    first and every refresh) read its members without asking again."""
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        bot = Bot(close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path)
        bot.env["CATALOG_REFRESH_SECONDS"] = "0.2"
        try:
            await bot.start()
            await wait_until(lambda: close.count("GET", "/pipeline/") >= 3, timeout=15)
        finally:
            bot.stop()
        loads = close.count("GET", "/pipeline/")
        assert close.count("GET", "/me/") == 1
        assert close.count("GET", "/organization/") >= loads - 1  # the one in flight, maybe


async def readiness_over(bot: Bot, *, seconds: float) -> list[int]:
    """/readyz's answers for `seconds` from its first (stopping early once it is ready)."""
    statuses: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    async with httpx.AsyncClient() as http:
        while loop.time() < deadline:
            assert bot.process is not None and bot.process.returncode is None, bot.stderr()
            with contextlib.suppress(httpx.TransportError):
                statuses.append((await http.get(bot.url + "readyz")).status_code)
                if len(statuses) == 1:
                    deadline = loop.time() + seconds
            if statuses and statuses[-1] == 200:
                break
            await asyncio.sleep(0.1)
    return statuses


# --- doctor -------------------------------------------------------------------------------------


def doctor_settings(
    close: CloseSimulator, slack: SlackSimulator, tmp_path: Path, **extra: str
) -> Settings:
    values = {
        "slack_bot_token": BOT_TOKEN,
        "close_api_key": CLOSE_API_KEY,
        "slack_api_url": slack.api_url,
        "close_api_url": close.base_url,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("app_token", "expected"),
    [
        (APP_TOKEN, "✓ App token works"),
        (WRONG_APP_TOKEN, "✗ Slack refused the app token (invalid_auth)"),
        (BOT_TOKEN, "✗ Slack refused the app token (not_allowed_token_type) (that is a bot"),
    ],
)
async def test_doctor_checks_the_app_token(tmp_path: Path, app_token: str, expected: str) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack,
    ):
        out = io.StringIO()
        code = await run_doctor(
            doctor_settings(close, slack, tmp_path, slack_app_token=app_token), out=out
        )
    text = out.getvalue()
    assert expected in text
    assert app_token not in text
    assert (code == 0) == expected.startswith("✓")
    assert "SLACK_APP_TOKEN" in text or code == 0
