"""No secret leaves the process: not in logs (even DEBUG, even tracebacks), Slack calls or the demo."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import logs
from sandbox import demo, stack
from sandbox.close_oauth import OAUTH_CLIENT_SECRET
from sandbox.close_sim import CloseSimulator
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import Sandbox, running_sandbox
from tests.flows import open_modal, submit, thread_reply, wait_opportunities

MARK = "SECRETMARKER"
BOT_TOKEN = f"xoxb-{MARK}-bot-0123456789"
APP_TOKEN = f"xapp-{MARK}-app-0123456789"
SIGNING_SECRET = f"{MARK}-signing-secret-0123"
CLOSE_KEY = f"api_{MARK}close.key0123456789"
SECRETS = [BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, CLOSE_KEY]
# How the Close key travels: HTTP Basic, key as the username.
CLOSE_BASIC = base64.b64encode(f"{CLOSE_KEY}:".encode()).decode()
NOISY = ("", "bot", "slack_bolt", "slack_sdk", "httpx", "httpcore", "uvicorn", "sqlalchemy")


def leaks(text: str) -> list[str]:
    return [s for s in (*SECRETS, MARK, CLOSE_BASIC, CLOSE_BASIC.rstrip("=")) if s in text]


@pytest.fixture
async def marked(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """The sandbox with recognisable credentials everywhere a real deployment has its own."""
    async with (
        running_sandbox(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
            close=CloseSimulator(api_key=CLOSE_KEY),
            slack=SlackSimulator(bot_token=BOT_TOKEN),
            slack_bot_token=BOT_TOKEN,
            slack_app_token=APP_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            close_api_key=CLOSE_KEY,
        ) as sb,
        SlackDriver(sb.slack, sb.events_url, SIGNING_SECRET) as driver,
    ):
        yield dataclasses.replace(sb, driver=driver)


def _all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


async def test_a_full_flow_at_debug_leaks_no_secret(
    marked: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    for name in NOISY:
        caplog.set_level(logging.DEBUG, logger=name)
    view_id = await open_modal(marked, "Acme Corp 12k annual 60% close next friday")
    mark = marked.slack.mark()
    await submit(marked, view_id)
    await wait_opportunities(marked, 1)
    await thread_reply(marked, since=mark)
    # An error path with a traceback, and a request that is refused before Bolt.
    marked.slack.fail_method("views.open", "internal_error")
    await marked.driver.slash_command("Initech 5k")
    await marked.driver.raw(b"payload=%7Bnot-json", "application/x-www-form-urlencoded")
    # A careless log line and a traceback that carry the secrets themselves.
    log = logging.getLogger("bot.test_secrets")
    log.warning("token=%s key=%s headers=%s", BOT_TOKEN, CLOSE_KEY, {"Authorization": "Basic x"})
    try:
        raise RuntimeError(f"Close refused {CLOSE_KEY} / {SIGNING_SECRET}")
    except RuntimeError:
        log.exception("failure with %s", APP_TOKEN)

    text = _all_log_text(caplog)
    assert len(caplog.records) > 20  # DEBUG from Bolt, slack_sdk, httpx and the bot was captured
    assert leaks(text) == [], [line for line in text.splitlines() if leaks(line)][:5]
    assert logs.REDACTED in text  # the careless lines were there, redacted
    for call in marked.slack.calls():
        assert leaks(json.dumps(call.params, default=str)) == [], call.method
        assert leaks(json.dumps(call.response, default=str)) == [], call.method


def test_the_redactor_covers_every_form_a_secret_travels_in() -> None:
    redactor = logs.RedactSecrets([CLOSE_KEY, BOT_TOKEN])
    samples = [
        f"Authorization: Basic {CLOSE_BASIC}",
        f"{{'Authorization': 'Bearer {BOT_TOKEN}'}}",
        f"[(b'Authorization', b'Basic {CLOSE_BASIC}')]",
        f"https://api.example/?token={BOT_TOKEN}",
        "xoxb-FAKEFAKE-abcdefabcdef",  # any token shape, known or not
        "xapp-1-A0000000-0000000000-abcdef",
    ]
    for sample in samples:
        redacted = redactor.redact(sample)
        assert logs.REDACTED in redacted
        assert leaks(redacted) == [] and "xoxb-1111" not in redacted and "xapp-1-A" not in redacted


async def test_the_demo_prints_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert await demo.run_demo() == 0
    out = capsys.readouterr()
    printed = out.out + out.err
    assert "Demo complete" in printed
    secrets = (stack.BOT_TOKEN, stack.SIGNING_SECRET, stack.CLOSE_API_KEY)
    # The demo connects a person's Close too: the OAuth app's secret and the sealing key.
    for secret in (*secrets, OAUTH_CLIENT_SECRET, stack.TOKEN_ENCRYPTION_KEY):
        assert secret not in printed


def test_the_slack_client_builds_debug_lines_only_when_debug_is_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """slack_sdk formats each call's request and answer when `logger.level <= DEBUG`."""
    from bot.metrics import Metrics
    from bot.slack.client import ObservedSlackClient

    client = ObservedSlackClient(token="xoxb-test", metrics=Metrics())
    caplog.set_level(logging.WARNING, logger="slack_sdk")
    assert client.logger.level == logging.WARNING
    caplog.set_level(logging.DEBUG, logger="slack_sdk")
    assert client.logger.level == logging.DEBUG
