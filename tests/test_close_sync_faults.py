"""Close -> Slack when things go wrong: Slack rate limits, deleted messages, a channel left,
Close failing while the event log is read, a burst of changes — told once, never dropped."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sync.webhook import STATE_KEY
from sandbox.stack import Sandbox, running_sandbox
from tests.flows import wait_until
from tests.test_close_sync import FAST_POLL, _text, read_again, replies, settled
from tests.test_confirmation_actions import log_deal, message


@pytest.fixture
async def hooked(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", webhook=True
    ) as sb:
        for _ in range(250):
            if await sb.services.changes.get_state(STATE_KEY):
                break
            await asyncio.sleep(0.02)
        yield sb


async def test_slack_rate_limits_are_waited_out_and_the_change_told_once(hooked: Sandbox) -> None:
    sb = hooked
    opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
    channel, root = details.response["channel"], details.params["thread_ts"]
    sb.slack.rate_limit("chat.postMessage", 2, retry_after=0.2)
    sb.slack.rate_limit("chat.update", 3, retry_after=0.2)
    sb.close.change_opportunity(opportunity["id"], {"value": 1800000})
    await wait_until(lambda: len(replies(sb, channel, root)) == 1, timeout=10)
    await settled(sb, timeout=10)
    assert len(replies(sb, channel, root)) == 1
    assert "18,000" in _text(message(sb, channel, root))
    limited = [c for c in sb.slack.calls("chat.postMessage") if not c.ok]
    assert len(limited) == 2  # both 429s were met, then it went through


async def test_a_summary_deleted_in_slack_is_left_alone_and_the_thread_still_told(
    hooked: Sandbox,
) -> None:
    sb = hooked
    opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
    channel, root = details.response["channel"], details.params["thread_ts"]
    sb.slack.delete_message(channel, root)
    sb.close.change_opportunity(opportunity["id"], {"value": 1800000})
    await wait_until(lambda: len(replies(sb, channel, root)) == 1)
    await settled(sb)
    updates = len(sb.slack.calls("chat.update"))
    sb.close.change_opportunity(opportunity["id"], {"value": 1900000})
    await wait_until(lambda: len(replies(sb, channel, root)) == 2)
    await settled(sb)
    summary_updates = [
        c for c in sb.slack.calls("chat.update")[updates:] if c.params.get("ts") == root
    ]
    assert summary_updates == []  # message_not_found once: not tried again


async def test_a_channel_the_app_left_is_skipped_without_a_crash(hooked: Sandbox) -> None:
    sb = hooked
    opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
    channel = details.response["channel"]
    for method in ("chat.postMessage", "chat.update"):
        sb.slack.fail_method(method, "not_in_channel", n=10)
    sb.close.change_opportunity(opportunity["id"], {"value": 1800000})
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    counts = await sb.services.changes.counts()
    assert counts.get("applied") == 1 and channel
    # The next change does not knock on the channel again.
    sb.slack.clear_faults()
    calls = len(sb.slack.calls())
    sb.close.change_opportunity(opportunity["id"], {"value": 1900000})
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    touched = [c for c in sb.slack.calls()[calls:] if c.params.get("channel") == channel]
    assert touched == []


async def test_close_failing_while_the_event_log_is_read_delays_but_loses_nothing(
    tmp_path: Path,
) -> None:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        close_events_poll_seconds=FAST_POLL,
    ) as sb:
        opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
        channel, root = details.response["channel"], details.params["thread_ts"]
        sb.close.fail(6, 503, paths=["/event/"])
        sb.close.rate_limit(3, reset=0.1, paths=["/event/"])
        sb.close.change_opportunity(opportunity["id"], {"value": 1800000})
        await wait_until(lambda: len(replies(sb, channel, root)) == 1, timeout=10)
        await read_again(sb)  # the rescan finds it again
        await settled(sb)
        assert len(replies(sb, channel, root)) == 1
        failed = [r for r in sb.close.requests if r.path == "/event/" and r.status != 200]
        assert len(failed) >= 9


async def test_a_burst_of_100_changes_on_20_deals_is_told_once_each_in_order(
    hooked: Sandbox,
) -> None:
    sb = hooked
    deals = [await log_deal(sb, f"Acme Corp {10 + i}k annual") for i in range(20)]
    logged = {opportunity["id"]: opportunity["value"] for opportunity, _ in deals}
    sb.close.hold_deliveries()
    for step in range(1, 6):
        for opportunity, _details in deals:
            value = logged[opportunity["id"]] + step * 100_000
            sb.close.change_opportunity(opportunity["id"], {"value": value})
    sb.close.duplicate_deliveries(30)  # and some come twice
    sb.close.release_deliveries(reverse=True)
    await sb.close.wait_deliveries_idle(timeout=20)
    await settled(sb, timeout=30)
    for opportunity, details in deals:
        channel, root = details.response["channel"], details.params["thread_ts"]
        told = [_text(m) for m in replies(sb, channel, root)]
        assert 1 <= len(told) <= 5
        # Each reply starts where the previous one ended: nothing told twice, nothing skipped.
        values = [re.findall(r"\$([\d,]+) annual → \$([\d,]+) annual", t)[0] for t in told]
        for (_, new), (old, _) in itertools.pairwise(values):
            assert new == old
        final = f"{(logged[opportunity['id']] + 500_000) // 100:,}"
        assert values[-1][1] == final
        assert final in _text(message(sb, channel, root))


async def test_text_from_close_is_never_live_mrkdwn(hooked: Sandbox) -> None:
    sb = hooked
    opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
    channel, root = details.response["channel"], details.params["thread_ts"]
    hostile = "<!channel> <https://evil.example|click me> <@U0ALICE>"
    sb.close.change_opportunity(
        opportunity["id"], {"custom.cf_competitor": hostile, "note": hostile}
    )
    await wait_until(lambda: len(replies(sb, channel, root)) == 1)
    await settled(sb)
    told = _text(replies(sb, channel, root)[0])
    assert "Competitor" in told and "&lt;!channel&gt;" in told
    assert "<!channel>" not in told and "<https://evil" not in told and "<@U0ALICE>" not in told
    assert "*Note*: updated" in told  # a note is not echoed at all
    for m in sb.slack.thread(channel, root):
        assert "<!channel>" not in _text(m)
