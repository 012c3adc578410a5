"""Two process types, as a Procfile runs them: `serve --no-worker` answers Slack and stores,
`worker` creates in Close, tells the outcome and applies Close's changes (event log)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx
import pytest

from sandbox.close_sim import CloseSimulator
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET
from tests.flows import wait_until
from tests.process import Bot
from tests.test_durability import frozen_submission, opportunity_posts, send, summaries

pytestmark = pytest.mark.asyncio


async def test_serve_no_worker_stores_and_a_worker_process_does_the_rest(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        web = Bot(close, slack, database_url, tmp_path, "serve", "--no-worker")
        worker = Bot(close, slack, database_url, tmp_path, "worker")
        for bot in (web, worker):
            bot.env["CLOSE_EVENTS_POLL_SECONDS"] = "0.3"
        try:
            await web.start()
            async with SlackDriver(slack, web.url + "slack/events", SIGNING_SECRET) as driver:
                command = await driver.slash_command("Acme Corp 12k annual")
                view = await driver.wait_for_view(command.trigger_id)
                await wait_until(lambda: len(slack.calls("views.update")) >= 1)
                ack = await send(driver, frozen_submission(slack, view["id"]))
            assert ack["response_action"] == "update"  # stored before the ack…
            # …and left for a worker. No marker shows work that never starts: a short sleep (a
            # worker in the web process would have claimed it within its 0.05 s poll).
            await asyncio.sleep(0.3)
            assert opportunity_posts(close) == []

            await worker.start()
            await wait_until(lambda: len(summaries(slack)) == 1, 10)
            [opportunity] = close.opportunities
            # A change made in Close: the worker reads the event log and tells the thread.
            root = summaries(slack)[0]["ts"]
            close.change_opportunity(opportunity["id"], {"confidence": 80}, automation=True)
            await wait_until(lambda: any(told(m) for m in slack.thread("C0SALES", root)), 10)
            # The worker's /metrics (on METRICS_PORT) counts it once it is fully told.
            applied = 'opportunity_bot_close_changes_total{source="poll",state="applied"} 1.0'
            metrics = ""
            async with httpx.AsyncClient() as http:
                for _ in range(100):
                    metrics = (await http.get(worker.url + "metrics")).text
                    if applied in metrics:
                        break
                    await asyncio.sleep(0.05)
            assert applied in metrics
            assert 'opportunity_bot_close_sync_mode{mode="poll"} 1.0' in metrics
            for bot in (web, worker):
                code, took = await bot.signal_and_wait(signal.SIGTERM)
                assert code == 0, bot.stderr()
                assert took < 3.0
            assert len(close.opportunities) == 1
            assert len(summaries(slack)) == 1
        finally:
            web.stop()
            worker.stop()


def told(message: dict[str, object]) -> bool:
    return "changed it in Close" in json.dumps(message, ensure_ascii=False)
