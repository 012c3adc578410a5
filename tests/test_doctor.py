"""`python -m bot doctor` against the simulators: what it prints and its exit code."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.identity.store import UserLinkStore
from bot.runtime.doctor import run_doctor
from bot.settings import Settings
from bot.store.db import create_engine, create_schema, session_factory
from bot.store.migrate import current_revision
from sandbox.close_sim import CloseSimulator
from sandbox.server import bind_free_port
from sandbox.slack_sim import SlackSimulator
from tests.test_identity import big_org, big_workspace

ROOT = Path(__file__).resolve().parents[1]
# Shaped like real secrets, so the log redactor's patterns would catch them too.
BOT_TOKEN = "xoxb-FAKE-doctor-secret-token"
CLOSE_KEY = "api_doctorkey.doctorsecretpart"


class Sims:
    def __init__(self, close: CloseSimulator, slack: SlackSimulator, database_url: str) -> None:
        self.close = close
        self.slack = slack
        self.database_url = database_url

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": BOT_TOKEN,
            "close_api_key": CLOSE_KEY,
            "slack_api_url": self.slack.api_url,
            "close_api_url": self.close.base_url,
            "database_url": self.database_url,
            **overrides,
        }
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLOSE_"))}
        env.update(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            CLOSE_API_KEY=CLOSE_KEY,
            SLACK_API_URL=self.slack.api_url,
            CLOSE_API_URL=self.close.base_url,
            DATABASE_URL=self.database_url,
            PYTHONPATH=str(ROOT),
        )
        env.update(overrides)
        return env


@pytest.fixture
async def sims(tmp_path: Path) -> AsyncIterator[Sims]:
    async with (
        CloseSimulator(api_key=CLOSE_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        yield Sims(close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")


async def doctor(settings: Settings) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_doctor(settings, out=out)
    text = out.getvalue()
    assert BOT_TOKEN not in text and CLOSE_KEY not in text
    return code, text


async def test_healthy_setup_exits_zero_and_lists_who_maps_to_whom(sims: Sims) -> None:
    code, text = await doctor(sims.settings(admin_user_ids="U0CAROL"))
    assert code == 0, text
    for expected in [
        "✓ Bot token works: @close_opportunity_bot in workspace Sandbox (T0SANDBOX)",
        "✓ Scopes: commands, chat:write, users:read, users:read.email, im:write",
        "✓ API key works: alice@example.com in Sandbox Inc.",
        "✓ Catalog: 2 pipelines, 9 opportunity statuses, 7 opportunity custom fields "
        "(required: Source)",
        "✓ Users: 3 active, 1 inactive (ignored)",
        "User mapping: 5 active Slack members; 3 mapped (3 by email, 0 by override), "
        "1 unmapped, 1 guest(s)",
        "✓ Alice Anders (@alice, U0ALICE) → Alice Anders (alice@example.com) [email]",
        "✓ Bob Baker (@bob, U0BOB) → Bob Baker (bob@example.com) [email]",
        "! Dave Diaz (@dave, U0DAVE) → unmapped: No active member of the Close organization "
        "has the email dave@personal.example.",
        "! Gina Guest (@gina, U0GUEST) → cannot own opportunities: Guests",
        "All good.",
    ]:
        assert expected in text, f"{expected!r} not in:\n{text}"
    # Bots and deactivated accounts are not members to map.
    assert "U0POLLY" not in text and "U0ERIN" not in text and "U0BOT)" not in text


async def test_overrides_show_as_such(sims: Sims) -> None:
    engine = create_engine(sims.database_url)
    await create_schema(engine)
    store = UserLinkStore(session_factory(engine), dialect=engine.dialect.name)
    now = datetime.now(UTC)
    await store.set_override(
        "U0DAVE", "user_carol", email="carol@example.com", set_by="U0CAROL", now=now
    )
    await engine.dispose()

    code, text = await doctor(sims.settings())
    assert code == 0, text
    assert "✓ Dave Diaz (@dave, U0DAVE) → Carol Chen (carol@example.com) [override]" in text
    assert "4 mapped (3 by email, 1 by override), 0 unmapped" in text


async def test_bad_close_key_exits_non_zero_with_what_to_do(sims: Sims) -> None:
    code, text = await doctor(sims.settings(close_api_key="api_wrongkey.wrongsecret"))
    assert code == 1, text
    assert "✗ Close rejected the API key: set CLOSE_API_KEY to a key from Close > Settings" in text
    assert "Skipped: it needs both a working Slack token and Close key." in text
    assert "1 problem(s) to fix:" in text and "wrongsecret" not in text


async def test_missing_email_scope_exits_non_zero_and_explains_the_fallback(sims: Sims) -> None:
    sims.slack.scopes.discard("users:read.email")
    code, text = await doctor(sims.settings())
    assert code == 1, text
    assert "✗ Missing Slack scopes: users:read.email — add them under OAuth & Permissions" in text
    assert "only admin links (`/opportunity link @user <close email>`) map people" in text
    assert "0 mapped (0 by email, 0 by override), 4 unmapped" in text
    assert "the app lacks the users:read.email scope" in text


async def test_missing_link_preview_scopes_are_a_warning_not_a_failure(sims: Sims) -> None:
    sims.slack.scopes.discard("links:write")
    code, text = await doctor(sims.settings())
    assert code == 0, text
    assert "! Link preview scopes not granted: links:write (pasted Close links stay bare)" in text


async def test_bad_slack_token_exits_non_zero(sims: Sims) -> None:
    code, text = await doctor(sims.settings(slack_bot_token="xoxb-FAKE-wrong-token"))
    assert code == 1, text
    assert "✗ Slack refused the bot token (invalid_auth): set SLACK_BOT_TOKEN" in text
    assert "✓ API key works" in text  # Close is still checked and reported


async def test_missing_configuration_says_where_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_BOT_TOKEN", "CLOSE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    code, text = await doctor(Settings(_env_file=None))  # type: ignore[call-arg]
    assert code == 1
    assert "✗ SLACK_BOT_TOKEN is not set: Slack app settings > OAuth & Permissions" in text
    assert "✗ CLOSE_API_KEY is not set: Close > Settings > Developer > API Keys" in text


async def test_a_thousand_members_take_five_slack_pages_and_two_close_pages(
    tmp_path: Path,
) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_KEY, org=big_org()) as close,
        SlackSimulator(bot_token=BOT_TOKEN, workspace=big_workspace()) as slack,
    ):
        sims = Sims(close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
        code, text = await doctor(sims.settings(admin_user_ids="U0CAROL"))
        assert code == 0, text
        assert "User mapping: 997 active Slack members; 199 mapped (199 by email" in text
        assert "✓ Rep 195 (@rep195, U10195) → Rep 195 (rep195@example.com) [email]" in text
        assert [c.method for c in slack.calls()] == ["auth.test"] + ["users.list"] * 5
        assert close.count("GET", "/user/") == 2


async def test_cli_exit_code_and_no_secret_in_any_output(sims: Sims, tmp_path: Path) -> None:
    async def run(**env: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "doctor",
            cwd=tmp_path,  # no stray .env is read
            env=sims.env(**env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        output = stdout.decode() + stderr.decode()
        assert process.returncode is not None
        return process.returncode, output

    sims.slack.scopes.discard("users:read.email")
    code, output = await run()
    assert code == 1, output
    assert "Missing Slack scopes: users:read.email" in output
    # Said in the log as well as in the report.
    assert "Slack did not grant users:read.email" in output
    for secret in (BOT_TOKEN, CLOSE_KEY, "doctorsecret"):
        assert secret not in output


async def test_doctor_reads_the_database_but_never_creates_or_migrates_it(sims: Sims) -> None:
    code, text = await doctor(sims.settings())
    assert code == 0, text
    assert "has no schema yet: the bot creates it when it starts" in text
    assert await current_revision(sims.database_url) is None


async def test_unreachable_database_is_a_problem_and_its_password_stays_hidden(
    sims: Sims,
) -> None:
    sock = bind_free_port()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    url = f"postgresql://bot:pg-secret-pw@127.0.0.1:{port}/bot"
    code, text = await doctor(sims.settings(database_url=url))
    assert code == 1, text
    assert f"✗ Cannot open DATABASE_URL postgresql://bot:***@127.0.0.1:{port}/bot" in text
    assert "pg-secret-pw" not in text
