"""The per-person access service: a valid token for (team, Slack user), refreshed first when it
expires within 5 minutes or after a 401 — one refresh per connection across processes (two
services on one database, and two real processes, on SQLite and PostgreSQL); `invalid_grant`
marks the connection broken and the person is told once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.connections import AccessBroken, AccessUnavailable, CloseAccess, build_access
from bot.store.db import create_engine
from sandbox.stack import Sandbox, oauth_settings, running_sandbox
from tests.oauth_flows import button_url, connect_link, connection_rows, consent, posted
from tests.test_durability import ROOT

TEAM, USER = "T0SANDBOX", "U0ALICE"


@asynccontextmanager
async def connected_sandbox(database_url: str) -> AsyncIterator[Sandbox]:
    """Alice connected, with a token that is already within the 5-minute refresh margin."""
    async with running_sandbox(database_url=database_url, oauth=True) as sb:
        sb.close.oauth.expires_in = 60
        walk = await consent(sb.close, await connect_link(sb))
        assert walk.page.status_code == 200
        sb.close.oauth.expires_in = 3600  # what refreshes get: fresh
        yield sb


@asynccontextmanager
async def other_service(sb: Sandbox) -> AsyncIterator[CloseAccess]:
    """Another process's CloseAccess in all but pid: its own engine (pool, SQLite writer)."""
    engine: AsyncEngine = create_engine(sb.settings.database_url)
    access = build_access(
        sb.settings,
        engine=engine,
        close=sb.services.close,
        catalog=sb.services.catalog,
        slack=sb.services.slack_gateway,
    )
    assert access is not None
    try:
        yield access
    finally:
        await access.aclose()
        await engine.dispose()


def mine(sb: Sandbox) -> CloseAccess:
    assert sb.services.access is not None
    return sb.services.access


async def test_two_services_refreshing_the_same_expiring_connection_make_one_refresh(
    database_url: str,
) -> None:
    async with connected_sandbox(database_url) as sb, other_service(sb) as other:
        [first_refresh] = sb.close.refresh_tokens_of("user_alice")
        sb.close.oauth.refresh_latency = 0.3  # both are waiting while the one refresh is out
        tokens = await asyncio.gather(
            *(service.token_for(TEAM, USER) for service in [mine(sb), other] * 3)
        )
        assert sb.close.refresh_count() == 1
        live = sb.close.tokens_of("user_alice")[-1]  # the newest (the first lives on a minute)
        assert set(tokens) == {live}
        assert first_refresh not in sb.close.oauth.refresh  # spent, once
        [row] = await connection_rows(sb.services.engine)
        assert row[7] == 2  # version: connected (1), refreshed once (2)
        # Fresh now: neither service refreshes again.
        assert await other.token_for(TEAM, USER) == live
        assert sb.close.refresh_count() == 1


async def test_a_401_refreshes_once_and_a_process_whose_token_was_replaced_rereads_it(
    database_url: str,
) -> None:
    async with connected_sandbox(database_url) as sb, other_service(sb) as other:
        first = await mine(sb).token_for(TEAM, USER)  # refreshed: fresh for an hour
        assert sb.close.refresh_count() == 1
        sb.close.oauth.refresh_latency = 0.3
        # Close answered 401 to `first` in both processes at once (revoked server-side, say).
        again = await asyncio.gather(
            mine(sb).token_for(TEAM, USER, rejected=first),
            other.token_for(TEAM, USER, rejected=first),
        )
        assert sb.close.refresh_count() == 2  # one more, not two
        assert again[0] == again[1] != first
        # A process that learns late that `first` was refused rereads instead of refreshing.
        assert await other.token_for(TEAM, USER, rejected=first) == again[0]
        assert sb.close.refresh_count() == 2


async def test_two_processes_refreshing_the_same_connection_at_once_make_one_refresh(
    database_url: str, tmp_path: Path
) -> None:
    async with connected_sandbox(database_url) as sb:
        sb.close.oauth.refresh_latency = 0.3
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLOSE_"))},
            "PYTHONPATH": str(ROOT),
            **{k.upper(): str(v) for k, v in _env(sb).items()},
        }
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                CHILD,
                TEAM,
                USER,
                cwd=tmp_path,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for child in children:  # both built and connected to the database, then both go
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line == b"ready\n", (line, await _stderr(child))
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        answers = [await asyncio.wait_for(child.communicate(), 30) for child in children]
        assert [c.returncode for c in children] == [0, 0], [a[1][-2000:] for a in answers]
        digests = {d for out, _ in answers for d in out.decode().split()}
        assert sb.close.refresh_count() == 1
        live = sb.close.tokens_of("user_alice")[-1]  # the newest (the first lives on a minute)
        assert digests == {hashlib.sha256(live.encode()).hexdigest()}


def _env(sb: Sandbox) -> dict[str, object]:
    settings = sb.settings
    return {
        "slack_bot_token": "xoxb-sandbox-bot-token",
        "close_api_key": "api_sandbox.closekey",
        "close_api_url": settings.close_api_url,
        "slack_api_url": settings.slack_api_url,
        "database_url": settings.database_url,
        "public_url": settings.public_url,
        "log_level": "WARNING",
        **oauth_settings(sb.close),
    }


async def _stderr(child: asyncio.subprocess.Process) -> str:
    if child.returncode is None:
        child.kill()
    assert child.stderr is not None
    return (await child.stderr.read()).decode(errors="replace")[-2000:]


# A process that builds the app's CloseAccess from the environment, says "ready", waits for
# "go", then asks for the person's token three times at once; prints each token's SHA-256
# (never the token).
CHILD = """
import asyncio, hashlib, sys
from slack_sdk.web.async_client import AsyncWebClient
from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.connections import build_access
from bot.settings import Settings
from bot.slack.gateway import SlackGateway
from bot.store.db import create_engine


async def main() -> None:
    settings = Settings(_env_file=None)
    engine = create_engine(settings.database_url)
    close = CloseClient(settings.close_api_key.get_secret_value(), settings.close_api_url)
    slack = SlackGateway(AsyncWebClient(token="xoxb-unused", base_url=settings.slack_api_url))
    access = build_access(settings, engine=engine, close=close, catalog=Catalog(close), slack=slack)
    async with engine.connect():
        pass
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    team, user = sys.argv[1], sys.argv[2]
    tokens = await asyncio.gather(*(access.token_for(team, user) for _ in range(3)))
    print(" ".join(hashlib.sha256(t.encode()).hexdigest() for t in tokens), flush=True)
    await access.aclose()
    await close.aclose()
    await engine.dispose()


asyncio.run(main())
"""


async def test_a_refused_refresh_marks_the_connection_broken_and_the_person_is_told_once(
    tmp_path: Path,
) -> None:
    async with connected_sandbox(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}") as sb:
        sb.close.revoke("user_alice")  # removed the app in Close
        with pytest.raises(AccessBroken):
            await mine(sb).token_for(TEAM, USER)
        assert sb.close.refresh_count("invalid_grant") == 1
        with pytest.raises(AccessBroken):  # broken stays broken: Close is not asked again
            await mine(sb).token_for(TEAM, USER)
        assert sb.close.refresh_count() == 1
        [row] = await connection_rows(sb.services.engine)
        assert row[12] is not None and "invalid_grant" in row[13]  # broken_at, broken_reason

        mark = sb.slack.mark()
        assert await mine(sb).tell_broken(TEAM, USER) is True
        assert await mine(sb).tell_broken(TEAM, USER) is False  # once per breakage
        told = [c for c in posted(sb, since=mark) if "no longer accepts" in c.params["text"]]
        assert len(told) == 1
        reconnect = button_url(told[0].params)
        assert "Reconnect" in repr(told[0].params["blocks"])
        # Clicking the link button also reaches the app (Slack sends it): acked, nothing else.
        dm = told[0].params["channel"]
        [message] = [m for m in sb.slack.messages(dm) if "no longer accepts" in m.get("text", "")]
        click = await sb.driver.press_button(
            channel_id=dm, message_ts=message["ts"], action_id="close_connect"
        )
        assert click.response.status_code == 200 and not click.response.content

        # Reconnecting through the DM's button mends it; a later breakage is told again.
        walk = await consent(sb.close, reconnect)
        assert walk.page.status_code == 200
        token = await mine(sb).token_for(TEAM, USER)
        assert sb.close.bearer_user(token) == "user_alice"
        [row] = await connection_rows(sb.services.engine)
        assert row[12] is None and row[14] is None


async def test_the_token_handed_out_acts_as_the_person_on_close_s_api(
    tmp_path: Path,
) -> None:
    """The token the service hands out acts as the person on Close's REST API."""
    async with connected_sandbox(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}") as sb:
        token = await mine(sb).token_for(TEAM, USER)
        async with httpx.AsyncClient(base_url=sb.settings.close_api_url) as http:
            me = await http.get("me/", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["id"] == "user_alice"


async def test_two_callbacks_with_one_state_at_once_connect_once(database_url: str) -> None:
    """The state is consumed atomically: of two browsers racing with it, one connects."""
    async with running_sandbox(database_url=database_url, oauth=True) as sb:
        start = await connect_link(sb)
        async with httpx.AsyncClient(timeout=10) as http:
            consent_url = (await http.get(start)).headers["location"]
            back = await http.get(consent_url + "&user=user_alice&decision=grant")
            callback = back.headers["location"]
            pages = await asyncio.gather(http.get(callback), http.get(callback))
        assert sorted(p.status_code for p in pages) == [200, 400]
        assert "already used" in next(p.text for p in pages if p.status_code == 400)
        assert len(await connection_rows(sb.services.engine)) == 1
        exchanges = [
            r for r in sb.close.oauth.token_requests if r["grant_type"] == "authorization_code"
        ]
        assert len(exchanges) == 1


async def test_a_refresh_refused_for_the_app_s_own_credentials_breaks_no_one(
    tmp_path: Path,
) -> None:
    """invalid_client is the admin's to fix: the person is not asked to reconnect."""
    async with connected_sandbox(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}") as sb:
        sb.close.oauth.client_secret = "rotated-in-close-but-not-here"
        with pytest.raises(AccessUnavailable):
            await mine(sb).token_for(TEAM, USER)
        [row] = await connection_rows(sb.services.engine)
        assert row[12] is None and row[9] is None  # not broken; the refresh lease given back
        sb.close.oauth.client_secret = sb.settings.close_oauth_client_secret.get_secret_value()  # type: ignore[union-attr]
        assert sb.close.bearer_user(await mine(sb).token_for(TEAM, USER)) == "user_alice"
