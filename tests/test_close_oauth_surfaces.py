"""Where "Connect your Close" shows: App Home (a *Connect Close* button, then "connected as"),
`doctor` (configured, how many connected), `/opportunity help`, and Socket Mode serving the
connect routes on PORT when PUBLIC_URL is set (a real child process)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.runtime.doctor import run_doctor
from sandbox.close_sim import CloseSimulator
from sandbox.server import port_for_a_child
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import (
    BOT_TOKEN,
    CLOSE_API_KEY,
    SIGNING_SECRET,
    Sandbox,
    oauth_settings,
    running_sandbox,
)
from tests.oauth_flows import button_url, command_answer, connect_link, consent
from tests.process import APP_TOKEN, Bot
from tests.test_app_home import settled


@pytest.fixture
async def oauth_sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", oauth=True
    ) as sb:
        yield sb


async def published_home(sb: Sandbox, user_id: str = "U0ALICE") -> dict[str, Any]:
    mark = sb.slack.mark()
    await sb.driver.app_home_opened(user_id)
    call = await sb.slack.wait_for("views.publish", lambda c: settled(c, user_id), since=mark)
    view: dict[str, Any] = call.params["view"]
    if isinstance(view, str):
        view = json.loads(view)
    return view


async def test_app_home_offers_connect_close_then_says_who_you_are_connected_as(
    oauth_sandbox: Sandbox,
) -> None:
    sb = oauth_sandbox
    home = await published_home(sb)
    [line] = [b for b in home["blocks"] if b.get("block_id") == "close_connection"]
    assert "Connect your Close account" in line["text"]["text"]
    url = line["accessory"]["url"]
    assert url.startswith(sb.settings.public_url + "close/oauth/start?state=")

    walk = await consent(sb.close, url)  # the Home tab's own link works
    assert walk.page.status_code == 200

    home = await published_home(sb)
    [line] = [b for b in home["blocks"] if b.get("block_id") == "close_connection"]
    assert line["type"] == "context"
    assert "Connected to Close as *Alice Anders (alice@example.com)*" in repr(line)


async def test_app_home_without_oauth_has_no_connect_line(sandbox: Sandbox) -> None:
    home = await published_home(sandbox)
    assert not [b for b in home["blocks"] if b.get("block_id") == "close_connection"]


async def test_doctor_says_oauth_is_configured_and_how_many_people_are_connected(
    oauth_sandbox: Sandbox,
) -> None:
    sb = oauth_sandbox
    await consent(sb.close, await connect_link(sb))
    out = io.StringIO()
    await run_doctor(sb.settings, out=out)
    report = out.getvalue()
    assert "People's own Close (OAuth)" in report
    assert f"client {sb.close.oauth.client_id}" in report
    assert "redirect URI " + sb.settings.public_url + "close/oauth/callback" in report
    assert "1 person connected their own Close account" in report
    assert sb.close.oauth.client_secret not in report


async def test_doctor_without_oauth_says_everything_goes_through_the_key(
    sandbox: Sandbox,
) -> None:
    out = io.StringIO()
    await run_doctor(sandbox.settings, out=out)
    assert "Not configured (CLOSE_ACCESS=key)" in out.getvalue()


async def test_help_tells_how_to_connect_and_disconnect(sandbox: Sandbox) -> None:
    answer = await command_answer(sandbox.slack, sandbox.driver, "help")
    assert "`/opportunity connect`" in answer["text"]
    assert "`/opportunity disconnect`" in answer["text"]


async def test_socket_mode_with_public_url_serves_the_connect_routes(tmp_path: Path) -> None:
    close = CloseSimulator(api_key=CLOSE_API_KEY)
    slack = SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    async with close, slack:
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, "socket"
        )
        port = port_for_a_child()
        bot.env.update(
            {
                "PORT": str(port),
                "PUBLIC_URL": f"http://127.0.0.1:{port}/",
                **{k.upper(): str(v) for k, v in oauth_settings(close).items()},
            }
        )
        try:
            await bot.start()
            await slack.socket_mode.wait_connections(1)
            async with SlackDriver(slack, "", SIGNING_SECRET, socket_mode=True) as driver:
                answer = await command_answer(slack, driver, "connect")
                url = button_url(answer)
                assert url.startswith(f"http://127.0.0.1:{port}/close/oauth/start?state=")
                mark = slack.mark()
                walk = await consent(close, url, user="user_alice")
                assert walk.page.status_code == 200, bot.stderr()
                assert "Connected as Alice Anders" in walk.page.text
                await slack.wait_for(
                    "chat.postMessage",
                    lambda c: "connected to Close as" in c.params["text"],
                    since=mark,
                )
                said = await command_answer(slack, driver, "whoami")
                assert "connected as *Alice Anders" in said["text"]
        finally:
            bot.stop()
