"""Connect your Close (OAuth) end to end over real HTTP: `/opportunity connect` → the start
route → Close's consent page (the simulator's) → the callback's page and DM → `whoami`; every
failure path stores nothing; states are single-use, short-lived and bound to who asked; tokens
are sealed at rest and never logged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from bot.connections import Sealer
from bot.listeners.connect import NOT_CONFIGURED
from bot.settings import Settings
from sandbox.stack import TOKEN_ENCRYPTION_KEY, Sandbox, running_sandbox
from tests.oauth_flows import (
    button_url,
    command_answer,
    connect_link,
    connection_rows,
    consent,
    every_row,
    posted,
    query_of,
)
from tests.test_cli import ROOT, clean_env, run_bot


class Clock:
    """A clock the test moves (the bot's `Services.clock`)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def oauth_sandbox(tmp_path: Path, clock: Clock) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        oauth=True,
        clock=clock,
        admin_user_ids=["U0ALICE"],
    ) as sb:
        yield sb


async def whoami(sb: Sandbox, user_id: str = "U0ALICE") -> str:
    return str((await command_answer(sb.slack, sb.driver, "whoami", user_id=user_id))["text"])


# --- the whole flow ---------------------------------------------------------------------------


async def test_connect_over_http_stores_sealed_tokens_says_who_and_becomes_the_mapping(
    oauth_sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sb = oauth_sandbox
    caplog.set_level(logging.DEBUG)
    # An admin link to someone else first: the connection must outrank it.
    linked = await command_answer(sb.slack, sb.driver, "link <@U0ALICE|alice> carol@example.com")
    assert "Carol Chen" in linked["text"]

    answer = await command_answer(sb.slack, sb.driver, "connect")
    assert "Connect your Close account" in answer["text"]
    start = next(e["url"] for b in answer["blocks"] for e in b.get("elements", []) if e.get("url"))
    assert start.startswith(sb.settings.public_url + "close/oauth/start?state=")
    mark = sb.slack.mark()

    walk = await consent(sb.close, start, user="user_alice")

    sent = query_of(walk.consent_url)
    assert sent["client_id"] == sb.close.oauth.client_id
    assert sent["response_type"] == "code"
    assert sent["redirect_uri"] == sb.settings.public_url + "close/oauth/callback"
    assert sent["state"] == query_of(start)["state"]
    assert walk.page.status_code == 200
    assert "Connected as Alice Anders (alice@example.com)" in walk.page.text
    assert walk.page.headers["content-type"].startswith("text/html")
    dm = await sb.slack.wait_for(
        "chat.postMessage", lambda c: "connected to Close as" in c.params["text"], since=mark
    )
    assert "Alice Anders (alice@example.com)" in dm.params["text"]
    assert dm.params["channel"].startswith("D")

    said = await whoami(sb)
    assert "connected as *Alice Anders (alice@example.com)*" in said
    assert "Carol" not in said

    # At rest: neither token in any row of any table, in any form someone could use.
    [access] = sb.close.tokens_of("user_alice")
    [refresh] = sb.close.refresh_tokens_of("user_alice")
    everything = await every_row(sb.services.engine)
    assert "user_alice" in everything  # the connection is there…
    assert access not in everything and refresh not in everything  # …sealed
    [row] = await connection_rows(sb.services.engine)
    assert row[0:4] == ("T0SANDBOX", "U0ALICE", "user_alice", "orga_sandbox")
    # Nor in anything logged, nor in anything Slack was sent.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert access not in logged and refresh not in logged
    slack_sent = repr([c.params for c in sb.slack.calls()])
    assert access not in slack_sent and refresh not in slack_sent
    assert access not in walk.page.text
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(sb.bot.url + "metrics")).text
    assert access not in metrics and refresh not in metrics

    # The access service hands out the stored token (fresh: no refresh).
    assert sb.services.access is not None
    assert await sb.services.access.token_for("T0SANDBOX", "U0ALICE") == access
    assert sb.close.refresh_count() == 0


async def test_the_connection_goes_to_the_slack_user_the_link_was_minted_for(
    oauth_sandbox: Sandbox,
) -> None:
    """The state is bound to who asked: whoever's browser finishes it, Bob's link connects Bob."""
    sb = oauth_sandbox
    start = await connect_link(sb, user_id="U0BOB")
    walk = await consent(sb.close, start, user="user_bob")
    assert walk.page.status_code == 200
    rows = await connection_rows(sb.services.engine)
    assert [(r[1], r[2]) for r in rows] == [("U0BOB", "user_bob")]
    assert "connected as *Bob Baker" in await whoami(sb, "U0BOB")
    assert "connected as" not in await whoami(sb, "U0ALICE")


async def test_disconnect_forgets_the_tokens_and_whoami_goes_back_to_email(
    oauth_sandbox: Sandbox,
) -> None:
    sb = oauth_sandbox
    walk = await consent(sb.close, await connect_link(sb))
    assert walk.page.status_code == 200
    answer = await command_answer(sb.slack, sb.driver, "disconnect")
    assert "Disconnected" in answer["text"]
    assert await connection_rows(sb.services.engine) == []
    said = await whoami(sb)
    assert "connected as" not in said and "Alice Anders" in said
    again = await command_answer(sb.slack, sb.driver, "disconnect")
    assert "no Close connection" in again["text"]


async def test_connect_when_already_connected_says_as_whom_and_offers_a_new_link(
    oauth_sandbox: Sandbox,
) -> None:
    sb = oauth_sandbox
    await consent(sb.close, await connect_link(sb))
    answer = await command_answer(sb.slack, sb.driver, "connect")
    assert "You are connected to Close as *Alice Anders" in answer["text"]
    walk = await consent(sb.close, button_url(answer), user="user_carol")
    assert walk.page.status_code == 200
    [row] = await connection_rows(sb.services.engine)
    assert row[2] == "user_carol"


# --- every failure stores nothing ---------------------------------------------------------------


def _drop_codes(sb: Sandbox) -> Callable[[], None]:
    return lambda: sb.close.oauth.codes.clear()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("access_denied", "You declined"),
        ("other_organization", "other than the one this app works with"),
        ("exchange_failed", "Close did not accept this sign-in"),
    ],
)
async def test_a_failed_connect_answers_a_clear_400_page_and_stores_nothing(
    oauth_sandbox: Sandbox, case: str, expected: str
) -> None:
    sb = oauth_sandbox
    start = await connect_link(sb)
    mark = sb.slack.mark()
    if case == "access_denied":
        walk = await consent(sb.close, start, decision="deny")
        assert query_of(walk.callback_url)["error"] == "access_denied"
    elif case == "other_organization":
        walk = await consent(sb.close, start, user="user_zoe", organization="orga_elsewhere")
    else:
        walk = await consent(sb.close, start, before_callback=_drop_codes(sb))
    assert walk.page.status_code == 400
    assert expected in walk.page.text
    assert "/opportunity connect" in walk.page.text  # what to do
    assert await connection_rows(sb.services.engine) == []
    assert not [c for c in posted(sb, since=mark) if "connected" in str(c.params)]
    # The state is spent: the same callback again is refused as used, still storing nothing.
    async with httpx.AsyncClient() as http:
        replay = await http.get(walk.callback_url)
    assert replay.status_code == 400 and "already used" in replay.text
    assert await connection_rows(sb.services.engine) == []


async def test_a_replayed_callback_is_refused_and_changes_nothing(oauth_sandbox: Sandbox) -> None:
    sb = oauth_sandbox
    walk = await consent(sb.close, await connect_link(sb))
    assert walk.page.status_code == 200
    before = await connection_rows(sb.services.engine)
    async with httpx.AsyncClient() as http:
        replay = await http.get(walk.callback_url)
        started_again = await http.get(
            sb.settings.public_url
            + "close/oauth/start?state="
            + query_of(walk.callback_url)["state"]
        )
    assert replay.status_code == 400 and "already used" in replay.text
    assert started_again.status_code == 400 and "already used" in started_again.text
    assert await connection_rows(sb.services.engine) == before


@pytest.mark.parametrize(
    "path",
    [
        "close/oauth/start?state=made-up-state",
        "close/oauth/callback?state=made-up-state&code=code_x",
        "close/oauth/callback?code=code_x",
        "close/oauth/start",
    ],
)
async def test_an_unknown_or_missing_state_is_refused(oauth_sandbox: Sandbox, path: str) -> None:
    async with httpx.AsyncClient() as http:
        page = await http.get(oauth_sandbox.settings.public_url + path)
    assert page.status_code == 400
    assert "/opportunity connect" in page.text
    assert await connection_rows(oauth_sandbox.services.engine) == []
    assert oauth_sandbox.close.oauth.token_requests == []


async def test_a_state_older_than_10_minutes_has_expired(
    oauth_sandbox: Sandbox, clock: Clock
) -> None:
    sb = oauth_sandbox
    start = await connect_link(sb)
    async with httpx.AsyncClient() as http:
        clock.offset = timedelta(minutes=10, seconds=1)
        page = await http.get(start)
        assert page.status_code == 400 and "has expired" in page.text
        clock.offset = timedelta(minutes=9)
        assert (await http.get(start)).status_code == 302  # still good just before
    clock.offset = timedelta(minutes=9, seconds=59)
    walk = await consent(sb.close, start, before_callback=lambda: _later(clock))
    assert walk.page.status_code == 400 and "has expired" in walk.page.text
    assert await connection_rows(sb.services.engine) == []
    assert sb.close.oauth.token_requests == []  # no code exchanged for an expired state


def _later(clock: Clock) -> None:
    clock.offset = timedelta(minutes=10, seconds=30)


# --- without OAuth configured ---------------------------------------------------------------------


async def test_without_oauth_connect_explains_the_admin_must_configure_it(tmp_path: Path) -> None:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    ) as sb:
        answer = await command_answer(sb.slack, sb.driver, "connect")
        assert answer["text"] == NOT_CONFIGURED
        assert "CLOSE_OAUTH_CLIENT_ID" in answer["text"]
        async with httpx.AsyncClient() as http:
            page = await http.get(sb.bot.url + "close/oauth/start?state=x")
        assert page.status_code == 400 and "not set up" in page.text


# --- sealed at rest -----------------------------------------------------------------------------


def test_a_token_sealed_with_an_old_key_opens_after_a_new_key_is_put_first() -> None:
    old = Sealer(TOKEN_ENCRYPTION_KEY)
    sealed = old.seal("sim_at_secret-token")
    assert "sim_at_secret-token" not in sealed
    new_key = Fernet.generate_key().decode()
    rotated = Sealer(f"{new_key}, {TOKEN_ENCRYPTION_KEY}")
    assert rotated.open(sealed) == "sim_at_secret-token"
    resealed = rotated.reseal(sealed)
    assert Sealer(new_key).open(resealed) == "sim_at_secret-token"  # the old key no longer needed
    assert rotated.seal("x") != rotated.seal("x")  # random IVs: equal tokens do not look equal


async def test_a_connection_made_before_a_key_rotation_still_serves_its_token(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    async with running_sandbox(database_url=url, oauth=True) as sb:
        await consent(sb.close, await connect_link(sb))
        [access] = sb.close.tokens_of("user_alice")
        close = sb.close
    rotated = f"{Fernet.generate_key().decode()},{TOKEN_ENCRYPTION_KEY}"
    async with running_sandbox(
        database_url=url, oauth=True, close=close, token_encryption_key=rotated
    ) as sb:
        assert sb.services.access is not None
        assert await sb.services.access.token_for("T0SANDBOX", "U0ALICE") == access
        assert close.refresh_count() == 0


# --- a half-configured OAuth refuses to start ---------------------------------------------------


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"CLOSE_OAUTH_CLIENT_ID": "c"}, "CLOSE_OAUTH_CLIENT_SECRET is not set"),
        (
            {"CLOSE_OAUTH_CLIENT_ID": "c", "CLOSE_OAUTH_CLIENT_SECRET": "s"},
            "Close OAuth needs PUBLIC_URL",
        ),
        (
            {
                "CLOSE_OAUTH_CLIENT_ID": "c",
                "CLOSE_OAUTH_CLIENT_SECRET": "s",
                "PUBLIC_URL": "https://bot.example.com",
            },
            "Close OAuth needs TOKEN_ENCRYPTION_KEY",
        ),
        (
            {
                "CLOSE_OAUTH_CLIENT_ID": "c",
                "CLOSE_OAUTH_CLIENT_SECRET": "s",
                "PUBLIC_URL": "https://bot.example.com",
                "TOKEN_ENCRYPTION_KEY": f"{TOKEN_ENCRYPTION_KEY},not-a-key",
            },
            "TOKEN_ENCRYPTION_KEY must be one or more comma-separated Fernet keys",
        ),
        ({"CLOSE_ACCESS": "personal"}, "CLOSE_ACCESS=personal needs Close OAuth"),
    ],
)
def test_a_half_configured_oauth_refuses_to_start_with_one_clear_line(
    env: dict[str, str], said: str, tmp_path: Path
) -> None:
    result = run_bot(
        "serve",
        cwd=tmp_path,
        env=clean_env(
            PYTHONPATH=str(ROOT),
            SLACK_BOT_TOKEN="xoxb-x",
            SLACK_SIGNING_SECRET="s",
            CLOSE_API_KEY="api_x",
            **env,
        ),
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert said in result.stderr
    assert "not-a-key" not in result.stderr and TOKEN_ENCRYPTION_KEY not in result.stderr


def test_close_access_defaults_to_either_with_oauth_and_key_without() -> None:
    oauth = Settings(
        _env_file=None,  # type: ignore[call-arg]
        close_oauth_client_id="c",
        close_oauth_client_secret="s",
        public_url="https://bot.example.com",
        token_encryption_key=TOKEN_ENCRYPTION_KEY,
    )
    assert oauth.access == "either"
    assert oauth.close_oauth_redirect_uri == "https://bot.example.com/close/oauth/callback"
    assert TOKEN_ENCRYPTION_KEY in oauth.secret_values()  # redacted from every log line
    assert TOKEN_ENCRYPTION_KEY not in repr(oauth)
    assert Settings(_env_file=None).access == "key"  # type: ignore[call-arg]
