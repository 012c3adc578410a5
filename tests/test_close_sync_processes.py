"""Close -> Slack across real `serve` processes: killed mid-telling and restarted, and two
processes behind one PUBLIC_URL on PostgreSQL (one subscription, webhook and event log both)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from sandbox.close_sim import CloseSimulator
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET
from tests.flows import wait_until
from tests.test_durability import (
    CHANGES_ENDED,
    BotProcess,
    ask,
    frozen_submission,
    send,
    summaries,
    wait_summaries,
)


def change_replies(slack: SlackSimulator, root: str, channel: str = "C0SALES") -> list[str]:
    return [
        json.dumps(m.get("blocks"), ensure_ascii=False)
        for m in slack.thread(channel, root)
        if m.get("text", "").endswith("changed it in Close")
    ]


async def log_through(bot: BotProcess, slack: SlackSimulator) -> None:
    async with SlackDriver(slack, bot.url + "slack/events", SIGNING_SECRET) as driver:
        mark = slack.mark()
        command = await driver.slash_command("Acme Corp 12k annual", channel_id="C0SALES")
        view = await driver.wait_for_view(command.trigger_id)
        # The lead preselection lands (a views.update of this view).
        await slack.wait_for(
            "views.update", lambda c: c.params["view_id"] == view["id"], since=mark
        )
        await send(driver, frozen_submission(slack, view["id"]))
    await wait_summaries(slack, 1, timeout=15)


async def test_killed_mid_telling_the_restart_finishes_without_telling_twice(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'sync.sqlite3'}"
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        first = BotProcess(close, slack, database_url, tmp_path)
        second = BotProcess(close, slack, database_url, tmp_path)
        second.port, second.url = first.port, first.url  # the same public address after a restart
        for bot in (first, second):
            bot.env.update({"PUBLIC_URL": first.url, "CLOSE_EVENTS_POLL_SECONDS": "0"})
        try:
            await first.start()
            await wait_until(lambda: bool(close.webhooks), timeout=10)
            await log_through(first, slack)
            root = summaries(slack)[0]["ts"]
            # The reply goes out, then Slack keeps refusing the summary's update: killed there.
            slack.rate_limit("chat.update", 10_000, retry_after=0.5)
            close.change_opportunity(close.opportunities[0]["id"], {"value": 1_800_000})
            await wait_until(lambda: len(change_replies(slack, root)) == 1, timeout=10)
            # Killed once the reply is recorded as told (the summary's update was tried after
            # it): the few milliseconds between Slack taking a reply and that record are the
            # one window where a crash repeats a reply.
            await wait_until(lambda: any(not c.ok for c in slack.calls("chat.update")), timeout=10)
            first.kill()
            await first.wait()
            slack.clear_faults()

            await second.start()
            await wait_until(
                lambda: "18,000" in json.dumps(summaries(slack)[0].get("blocks")), timeout=15
            )
            # Nothing more under way: every delivery answered, every change stored has ended.
            await close.wait_deliveries_idle()
            await wait_until(lambda: ask(database_url, CHANGES_ENDED), timeout=10)
            assert len(change_replies(slack, root)) == 1
            assert len(close.webhooks) == 1 and close.count("POST", "/webhook/") == 1
        finally:
            for bot in (first, second):
                await bot.stopped()


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set")
async def test_two_processes_behind_one_url_keep_one_subscription_and_tell_each_change_once(
    tmp_path: Path,
    pg_url: str,
) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        a = BotProcess(close, slack, pg_url, tmp_path)
        b = BotProcess(close, slack, pg_url, tmp_path)
        # Behind one load balancer: both know the same public URL (Close delivers to `a`), and
        # with the webhook each also reads the event log now and then (every 10 x 0.1 s here).
        for bot in (a, b):
            bot.env.update({"PUBLIC_URL": a.url, "CLOSE_EVENTS_POLL_SECONDS": "0.1"})
        try:
            await asyncio.gather(a.start(), b.start())
            await wait_until(lambda: bool(close.webhooks), timeout=10)
            # Both keepers have run: each listed Close's subscriptions (one after the other,
            # under the setup lease); the second found the first one's.
            await wait_until(lambda: close.count("GET", "/webhook/") >= 2, timeout=10)
            assert len(close.webhooks) == 1 and close.count("POST", "/webhook/") == 1
            await log_through(a, slack)
            root = summaries(slack)[0]["ts"]
            opportunity_id = close.opportunities[0]["id"]
            close.duplicate_deliveries(3)
            for value in (1_300_000, 1_400_000, 1_500_000):
                close.change_opportunity(opportunity_id, {"value": value})
                await asyncio.sleep(0.05)
            await wait_until(lambda: len(change_replies(slack, root)) == 3, timeout=15)
            await wait_until(lambda: close.count("GET", "/event/") >= 6, timeout=10)
            # The event log read again after the replies: a read is one GET per action in turn
            # (created, updated, deleted), stored as each answers, and reads never overlap; 5
            # more GETs hold a read begun after this point that has stored its `updated` page.
            # Then nothing is left to tell.
            reads = close.count("GET", "/event/")
            await wait_until(lambda: close.count("GET", "/event/") >= reads + 5, timeout=10)
            await close.wait_deliveries_idle()
            await wait_until(lambda: ask(pg_url, CHANGES_ENDED), timeout=10)
            told = change_replies(slack, root)
            assert len(told) == 3
            assert "$12,000 annual → $13,000 annual" in told[0]
            assert "$14,000 annual → $15,000 annual" in told[2]
            assert "15,000" in json.dumps(summaries(slack)[0].get("blocks"))
            assert len(close.webhooks) == 1 and close.count("POST", "/webhook/") == 1
        finally:
            for bot in (a, b):
                await bot.stopped()
