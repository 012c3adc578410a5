"""The command line as a newcomer meets it: help, missing configuration, parse, demo, serve."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandbox.close_sim import CloseSimulator
from sandbox.server import port_for_a_child
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_KEYS = {
    "lead", "value", "value_currency", "value_period", "confidence", "date_won", "owner",
    "status", "note", "warnings",
}  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLOSE_"))}
    env.update(extra)
    return env


def run_bot(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=env or clean_env(),
        cwd=cwd or ROOT,
        timeout=60,
    )


def test_help_lists_every_command() -> None:
    result = run_bot("--help")
    assert result.returncode == 0
    for command in ("serve", "socket", "parse", "doctor", "demo", "migrate", "history"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("serve", ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "CLOSE_API_KEY"]),
        ("socket", ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "CLOSE_API_KEY"]),
    ],
)
def test_missing_configuration_is_named_with_where_to_get_it(
    command: str, missing: list[str], tmp_path: Path
) -> None:
    result = run_bot(command, cwd=tmp_path, env=clean_env(PYTHONPATH=str(ROOT)))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for name in missing:
        assert name in result.stderr
    assert "api.slack.com" in result.stderr or "Slack app settings" in result.stderr
    assert "demo" in result.stderr


def test_parse_prints_the_contract_json() -> None:
    result = run_bot(
        "parse", "Acme Corp $12k ARR 60% close next friday", "--tz", "America/Los_Angeles",
        "--now", "2026-11-27T20:00:00Z",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert set(parsed) == CONTRACT_KEYS
    assert parsed["lead"] == "Acme Corp"
    assert parsed["value"] == 1_200_000
    assert parsed["value_period"] == "annual"
    assert parsed["confidence"] == 60
    assert parsed["date_won"] == "2026-12-04"


def test_parse_rejects_a_bad_now_without_traceback() -> None:
    result = run_bot("parse", "Acme 5k", "--now", "yesterday-ish")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "--now" in result.stderr


def test_demo_runs_the_whole_flow_without_accounts(tmp_path: Path) -> None:
    result = run_bot("demo", cwd=tmp_path, env=clean_env(PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    assert "/opportunity Acme Corp 12k annual 60% close next friday" in result.stdout
    assert "https://app.close.com/lead/lead_acme/" in result.stdout
    assert '"value": 1200000' in result.stdout
    # A person connects their own Close; a deal logged in a shared channel stays out of it.
    assert "Connected as Alice Anders (alice@example.com)" in result.stdout
    assert "No Close value (8,000, 40%) reached #acme-shared." in result.stdout
    assert "Demo complete" in result.stdout


async def test_serve_command_runs_the_flow_against_lookalikes(tmp_path: Path) -> None:
    """`python -m bot serve` pointed at the simulators does the whole flow (the Procfile's web)."""
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        port = port_for_a_child()
        env = clean_env(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            CLOSE_API_KEY=CLOSE_API_KEY,
            CLOSE_API_URL=close.base_url,
            SLACK_API_URL=slack.api_url,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'serve.sqlite3'}",
            PYTHONPATH=str(ROOT),
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", "--port", str(port), "--host", "127.0.0.1",
            env=env, cwd=tmp_path,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient() as http:
                for _ in range(200):
                    try:
                        health = await http.get(f"http://127.0.0.1:{port}/healthz")
                        if health.status_code == 200 and health.json()["catalog_loaded"]:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)
                assert health.json() == {"ok": True, "catalog_loaded": True}
            async with SlackDriver(
                slack, f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET
            ) as driver:
                result = await driver.slash_command("Initech 3k/mo 70%")
                assert result.response.status_code == 200
                view = await driver.wait_for_view(result.trigger_id)
                await slack.wait_for("views.update")
                await driver.submit_view(view["id"], values={"custom.cf_source": "Referral"})
                await slack.wait_for(
                    "chat.postMessage", lambda c: bool(c.params.get("thread_ts")), timeout=10
                )
            [opportunity] = close.opportunities
            assert opportunity["lead_id"] == "lead_initech" and opportunity["value"] == 300_000
        finally:
            process.terminate()
            await process.wait()


def test_serve_workers_refuses_sqlite_in_one_line(tmp_path: Path) -> None:
    env = clean_env(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        CLOSE_API_KEY=CLOSE_API_KEY,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
    )
    done = run_bot("serve", "--workers", "2", env=env, cwd=tmp_path)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: serve --workers 2 needs PostgreSQL"), done.stderr
