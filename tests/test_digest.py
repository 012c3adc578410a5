"""The weekly digest (issue #24 part 5) over real HTTP against the Slack and Close simulators, on
SQLite and PostgreSQL: posted once in its channel when DIGEST_TIME comes in DIGEST_TZ, with last
week's figures as Close has them; never twice (two instances, a restart), sent late the same
week by an app that was down, never in a channel shared with another organization.

The app's clock is injected (a plain function the test moves on); the opportunities are seeded
in the Close simulator with the dates the figures read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.schedule.store import ScheduledSend
from sandbox import blockkit
from sandbox.close_sim import CloseSimulator
from sandbox.slack_sim import Call, SlackSimulator
from sandbox.stack import CLOSE_API_KEY, Sandbox, running_sandbox
from tests.flows import wait_until
from tests.test_nudges import Clock, texts

# Monday 7 Dec 2026: 09:00 in Berlin is 08:00 UTC.
BEFORE = datetime(2026, 12, 7, 7, 59, tzinfo=UTC)
AFTER = datetime(2026, 12, 7, 8, 0, 30, tzinfo=UTC)
WEEK = "2026-W49"  # Mon 30 Nov – Sun 6 Dec, the week the digest of the 7th reports
CHANNEL = "C0GENERAL"
DIGEST = {
    "digest_time": "mon 09:00",
    "digest_tz": "Europe/Berlin",
    "deals_channel": CHANNEL,
    "schedule_plan_seconds": 0.05,
}


def seeded_close() -> CloseSimulator:
    """Last week: one deal won ($12,000/yr), one lost, two created; now open: one closing this
    week at 50 %, one overdue; and a deal won two weeks ago (not last week's)."""
    close = CloseSimulator(api_key=CLOSE_API_KEY)
    seed = close.seed_opportunity
    seed("lead_acme", {"status_id": "stat_won", "value": 1_200_000, "value_period": "annual",
                       "date_won": "2026-12-02", "date_created": "2026-11-02T10:00:00+00:00"},
         user_id="user_alice")  # fmt: skip
    seed("lead_acme", {"status_id": "stat_won", "value": 9_900_000, "date_won": "2026-11-25"},
         user_id="user_alice")  # fmt: skip
    seed("lead_acme", {"status_id": "stat_lost", "value": 50_000,
                       "date_lost": "2026-12-03T12:00:00+00:00",
                       "date_updated": "2026-12-03T12:00:00+00:00"}, user_id="user_bob")  # fmt: skip
    seed("lead_acme", {"status_id": "stat_proposal", "value": 100_000, "value_period": "monthly",
                       "confidence": 50, "date_won": "2026-12-10",
                       "date_created": "2026-12-01T09:00:00+00:00"}, user_id="user_bob")  # fmt: skip
    seed("lead_acme", {"status_id": "stat_demo", "value": 2_000_000, "confidence": 10,
                       "date_won": "2026-11-20", "date_created": "2026-12-06T22:30:00+00:00"},
         user_id="user_carol")  # fmt: skip
    return close


@asynccontextmanager
async def stack(clock: Clock, database_url: str, **overrides: Any) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=database_url, clock=clock, close=seeded_close(), **{**DIGEST, **overrides}
    ) as sb:
        yield sb


def digests(slack: SlackSimulator, channel: str = CHANNEL) -> list[Call]:
    return [
        c
        for c in slack.calls("chat.postMessage")
        if c.ok and c.params.get("channel") == channel and "Pipeline digest" in str(c.params)
    ]


async def finished(sb: Sandbox, channel: str = CHANNEL) -> ScheduledSend:
    async def done() -> ScheduledSend | None:
        send = await sb.services.scheduled_sends.find("digest", channel, WEEK)
        return send if send is not None and send.state != "pending" else None

    found: ScheduledSend = await wait_until(done, 10.0)
    return found


async def test_the_digest_is_posted_once_when_its_time_comes_with_last_weeks_figures(
    database_url: str,
) -> None:
    clock = Clock(BEFORE)
    async with stack(clock, database_url) as sb:
        await sb.services.planner.tick()
        assert await sb.services.scheduled_sends.find("digest", CHANNEL, WEEK) is None
        clock.now = AFTER
        send = await finished(sb)
        assert send.state == "sent", send.error
        [post] = digests(sb.slack)
        message = {"text": post.params["text"], "blocks": post.params["blocks"]}
        assert blockkit.problems(message, surface="message") == []
        shown = texts(message)
        assert "Pipeline digest — week of Mon 30 Nov 2026" in shown
        assert "Won: 1 deal · $12,000" in shown  # not the one won the week before
        assert "Lost: 1 deal · $500" in shown
        # Created Tue 1 Dec, and Sun 6 Dec 23:30 in Berlin (22:30 UTC): both last week.
        assert "New: 2 deals · $32,000" in shown
        assert "Expected to close this week* (1)" in shown and "Thu 10 Dec 2026" in shown
        assert "Open pipeline:* $32,000 in 2 deals, weighted $8,000" in shown
        assert "*Overdue:* 1 deal past" in shown
        assert "/lead/lead_acme/" in str(post.params["blocks"])
        # Looked for again, and by a restarted app: nothing more.
        await sb.services.planner.tick()
        assert len(digests(sb.slack)) == 1


async def test_two_instances_and_a_restart_post_one_digest_and_a_late_start_still_sends_it(
    database_url: str,
) -> None:
    clock = Clock(AFTER + timedelta(days=2))  # Wednesday: down on Monday, back this week
    async with stack(clock, database_url) as first:
        assert (await finished(first)).state == "sent"
        async with running_sandbox(
            database_url=database_url,
            clock=clock,
            close=first.close,
            slack=first.slack,
            **DIGEST,
        ) as second:
            await second.services.planner.tick()
            assert len(digests(first.slack)) == 1


async def test_a_digest_week_over_is_not_sent_and_no_digest_goes_to_a_shared_channel(
    database_url: str,
) -> None:
    # Next Monday morning before 09:00: last Monday's digest was never planned (the app was
    # down all week), and it is not sent now.
    clock = Clock(AFTER + timedelta(days=7) - timedelta(hours=1))
    async with stack(clock, database_url) as sb:
        await sb.services.planner.tick()
        assert await sb.services.scheduled_sends.find("digest", CHANNEL, WEEK) is None
        assert digests(sb.slack) == []
    clock = Clock(AFTER)
    async with stack(clock, database_url, external_channels="private") as sb:
        sb.slack.share_channel(CHANNEL, "T0ACME")
        send = await finished(sb)
        assert send.state == "skipped" and "shared with another organization" in (send.error or "")
        assert digests(sb.slack) == []
