"""What an operator watches, over real HTTP: GET /metrics (Prometheus text), /healthz and /readyz,
and LOG_FORMAT=json (one JSON object per line, context bound, secrets redacted)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.logs import bind, json_formatter, redact_secrets
from bot.metrics import Metrics
from sandbox.close_sim import CloseSimulator
from sandbox.slack_driver import FORM, SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET, Sandbox, running_sandbox
from tests.flows import open_modal, submit, wait_until
from tests.process import Bot
from tests.test_close_sync import replies, settled
from tests.test_confirmation_actions import log_deal
from tests.test_durability import frozen_submission, send, wait_summaries

pytestmark = pytest.mark.asyncio

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(sb: Sandbox) -> Samples:
    sb.services.metrics.store_cache_seconds = 0  # the store read now, not a few seconds ago
    async with httpx.AsyncClient() as http:
        response = await http.get(sb.bot.url + "metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def polling(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        close_events_poll_seconds=0.2,
    ) as sb:
        yield sb


async def test_metrics_follow_a_deal_from_the_command_to_close(sandbox: Sandbox) -> None:
    await log_deal(sandbox, "Acme Corp 12k annual")
    await wait_until(lambda: sandbox.services.worker.in_flight == 0)
    samples = await scrape(sandbox)
    acks = "opportunity_bot_slack_ack_seconds_count"
    assert value(samples, acks, kind="command", outcome="ok") == 1
    assert value(samples, acks, kind="view_submission", outcome="ok") == 1
    assert value(samples, "opportunity_bot_slack_api_seconds_count", method="views.open") == 1
    assert value(samples, "opportunity_bot_slack_api_seconds_count", method="chat.postMessage")
    close = "opportunity_bot_close_request_seconds_count"
    assert value(samples, close, endpoint="POST /opportunity/", status="200") == 1
    assert value(samples, close, endpoint="GET /pipeline/", status="200") >= 1
    assert value(samples, "opportunity_bot_submissions", state="created") == 1
    assert value(samples, "opportunity_bot_submissions", state="pending") == 0
    assert value(samples, "opportunity_bot_queue_depth") == 0
    assert value(samples, "opportunity_bot_queue_oldest_seconds") == 0
    assert value(samples, "opportunity_bot_catalog_loaded") == 1
    assert value(samples, "opportunity_bot_database_up") == 1
    assert value(samples, "opportunity_bot_close_sync_mode", mode="off") == 1
    # The ack histogram has Slack's 3 s as a bucket boundary: late acks are easy to alert on.
    assert (
        "opportunity_bot_slack_ack_seconds_bucket",
        frozenset({("kind", "command"), ("outcome", "ok"), ("le", "3.0")}),
    ) in samples


async def test_metrics_show_close_rate_limits_waits_and_a_queue_that_waits(
    sandbox: Sandbox,
) -> None:
    sb = sandbox
    # Two 429s, waited out inside the client: the deal still goes through.
    sb.close.rate_limit(2, reset=0.2, paths=["/opportunity/"])
    await log_deal(sb, "Acme Corp 12k annual")
    samples = await scrape(sb)
    close = "opportunity_bot_close_request_seconds_count"
    assert value(samples, close, endpoint="POST /opportunity/", status="429") == 2
    assert value(samples, close, endpoint="POST /opportunity/", status="200") == 1
    waited = value(
        samples, "opportunity_bot_close_wait_seconds_total", endpoint="POST /opportunity/"
    )
    assert waited >= 0.35  # two resets of 0.2 s
    # Close down: the next deal waits in the queue, and the queue says how long.
    sb.close.fail(10_000, 503, paths=["/opportunity/"], methods=["POST"])
    view_id = await open_modal(sb, "Globex 40k one-time")
    await submit(sb, view_id)
    await wait_until(lambda: last_post_failed(sb) is not None, 5)

    async def waited_a_while() -> Samples | None:
        samples = await scrape(sb)
        return samples if value(samples, "opportunity_bot_queue_oldest_seconds") > 0.2 else None

    samples = await wait_until(waited_a_while, 5)
    assert value(samples, "opportunity_bot_queue_depth") == 1
    assert value(samples, "opportunity_bot_queue_oldest_seconds") > 0.2
    assert value(samples, close, endpoint="POST /opportunity/", status="503") >= 1
    sb.close.clear_faults()


def last_post_failed(sb: Sandbox) -> object:
    posts = [r for r in sb.close.requests if r.method == "POST" and r.path == "/opportunity/"]
    return posts[-1] if posts and posts[-1].status == 503 else None


async def test_metrics_count_slack_errors_and_refused_requests(sandbox: Sandbox) -> None:
    sb = sandbox
    sb.slack.fail_method("views.open", "internal_error")
    await sb.driver.slash_command("Acme Corp 12k")
    await wait_until(lambda: any(not c.ok for c in sb.slack.calls("views.open")))
    unsigned = await sb.driver.raw(b"command=%2Fopportunity&text=hi", FORM, sign=False)
    assert unsigned.status_code == 401
    errors = "opportunity_bot_slack_api_errors_total"
    # The simulator logs the call as it answers; the bot counts it once the answer is read.
    for _ in range(50):
        samples = await scrape(sb)
        if value(samples, errors, method="views.open", error="internal_error"):
            break
        await asyncio.sleep(0.05)
    assert value(samples, errors, method="views.open", error="internal_error") == 1
    acks = "opportunity_bot_slack_ack_seconds_count"
    assert value(samples, acks, kind="other", outcome="refused") == 1


async def test_metrics_count_changes_from_close_by_outcome_and_source(polling: Sandbox) -> None:
    sb = polling
    opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
    channel, root = details.response["channel"], details.params["thread_ts"]
    sb.close.change_opportunity(opportunity["id"], {"confidence": 80}, automation=True)
    await wait_until(lambda: len(replies(sb, channel, root)) == 1)
    await settled(sb)
    samples = await scrape(sb)
    changes = "opportunity_bot_close_changes_total"
    assert value(samples, changes, state="applied", source="poll") == 1
    assert value(samples, "opportunity_bot_close_changes_waiting") == 0
    assert value(samples, "opportunity_bot_close_sync_mode", mode="poll") == 1
    assert value(samples, "opportunity_bot_close_event_log_last_read_timestamp_seconds") > 0


async def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()  # the global default registry would refuse the second
    first.ack("command", "ok", 0.01)
    assert (
        first.registry.get_sample_value(
            "opportunity_bot_slack_ack_seconds_count", {"kind": "command", "outcome": "ok"}
        )
        == 1
    )
    assert (
        second.registry.get_sample_value(
            "opportunity_bot_slack_ack_seconds_count", {"kind": "command", "outcome": "ok"}
        )
        is None
    )


# --- health ---------------------------------------------------------------------------------------


async def test_readyz_turns_503_when_the_database_is_unreachable_or_the_process_stops(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite+aiosqlite:///{data / 'bot.sqlite3'}"
    async with running_sandbox(database_url=url) as sb, httpx.AsyncClient() as http:
        assert (await http.get(sb.bot.url + "readyz")).json() == {"ok": True}
        # The database goes away (its directory with it): new connections fail.
        await sb.services.engine.dispose()
        shutil.move(data, tmp_path / "elsewhere")
        ready = await http.get(sb.bot.url + "readyz")
        assert ready.status_code == 503
        assert "database" in ready.json()["problems"]
        health = await http.get(sb.bot.url + "healthz")
        assert health.status_code == 200  # alive all the same: no reason to restart it
        shutil.move(tmp_path / "elsewhere", data)
        assert (await http.get(sb.bot.url + "readyz")).status_code == 200
        sb.services.begin_stop()
        stopping = await http.get(sb.bot.url + "readyz")
        assert stopping.status_code == 503
        assert stopping.json()["problems"] == {"process": "shutting down"}


# --- logs -----------------------------------------------------------------------------------------


async def test_json_log_lines_carry_their_context_and_never_a_secret() -> None:
    secret = "xoxb-9999-json-log-secret"
    redact_secrets([secret])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("tests.json_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    async def work() -> None:
        bind(submission_id="sub-1", slack_user="U0ALICE", slack_team="T0SANDBOX")
        logger.info("Working with %s", secret)
        try:
            raise RuntimeError(f"Slack said no to {secret}")
        except RuntimeError:
            logger.exception("It failed")

    try:
        await asyncio.create_task(work())
        logger.warning("Elsewhere")  # another task's context is not this one's
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "Working with [redacted]",
        "It failed",
        "Elsewhere",
    ]
    first, failed, elsewhere = lines
    assert first["level"] == "info" and first["logger"] == "tests.json_logs"
    assert first["submission_id"] == "sub-1"
    assert first["slack_user"] == "U0ALICE" and first["slack_team"] == "T0SANDBOX"
    assert "timestamp" in first
    assert "RuntimeError: Slack said no to [redacted]" in failed["exception"]
    assert "submission_id" not in elsewhere
    assert secret not in stream.getvalue()


async def test_serve_with_log_format_json_writes_only_json_lines(tmp_path: Path) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        bot = Bot(close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path)
        bot.env.update({"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"})
        try:
            await bot.start()
            async with SlackDriver(slack, bot.url + "slack/events", SIGNING_SECRET) as driver:
                command = await driver.slash_command("Acme Corp 12k annual")
                view = await driver.wait_for_view(command.trigger_id)
                await wait_until(lambda: len(slack.calls("views.update")) >= 1)
                await send(driver, frozen_submission(slack, view["id"]))
            await wait_summaries(slack, 1)
            code, _took = await bot.signal_and_wait()
        finally:
            bot.stop()
    assert code == 0
    text = bot.stderr()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)
    created = [line for line in lines if line["message"].startswith("Created oppo_")]
    assert len(created) == 1
    assert created[0]["submission_id"] and created[0]["slack_user"] == "U0ALICE"
    assert created[0]["slack_team"] == "T0SANDBOX"
    for secret in (BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET):
        assert secret not in text
