"""Overdue nudges (issue #24 part 3) over real HTTP against the Slack and Close simulators, on
SQLite and PostgreSQL: each owner nudged once at their own NUDGE_TIME (Tokyo, Los Angeles), a
deal fixed in Close before the send not listed, one DM across two app instances and across a
restart, one-tap Won / +1 week / Pick a date changing Close as the person and the DM line, the
deal's thread told, nudges off, "and N more", and nobody of another organization nudged.

The app's clock is injected (a plain function the test moves on): "now" is the only thing the
test controls; the planner, the job runner and the database run as in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.app import build_app
from bot.schedule.store import Planned, ScheduledSend
from bot.services import Services
from bot.transport.http import create_http_app
from sandbox.close_sim import CloseSimulator
from sandbox.server import start_server
from sandbox.slack_sim import Call, SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, Sandbox, running_sandbox
from tests.flows import (
    REQUIRED_CUSTOM,
    open_modal,
    submit,
    thread_reply,
    wait_opportunities,
    wait_until,
)

# At 15:30 UTC on 7 Dec it is 07:30 in Los Angeles (Alice) and 00:30 on the 8th in Tokyo
# (Carol): both before their 09:00. London (Bob) is past it, with no deal to nudge about.
START = datetime(2026, 12, 7, 15, 30, tzinfo=UTC)
LA_NINE = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)  # Alice's 09:00 on the 7th
TOKYO_NINE = datetime(2026, 12, 8, 0, 0, tzinfo=UTC)  # Carol's 09:00 on the 8th
FAST = {"nudge_time": "09:00", "schedule_plan_seconds": 0.05}


class Clock:
    """The app's "now", moved on by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def stack(clock: Clock, database_url: str, **overrides: Any) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=database_url, clock=clock, **{**FAST, **overrides}
    ) as sb:
        yield sb


def overdue(sb: Sandbox | CloseSimulator, user: str, lead_id: str, day: str = "2026-12-01") -> str:
    """An active opportunity of `user` expected to close on `day`, made in Close's app."""
    close = sb.close if isinstance(sb, Sandbox) else sb
    fields = {"status_id": "stat_proposal", "date_won": day, "value": 1_200_000, **REQUIRED_CUSTOM}
    return str(
        close.create_opportunity_as(lead_id, {**fields, "value_period": "annual"}, user_id=user)[
            "id"
        ]
    )


def dms(slack: SlackSimulator, user: str) -> list[Call]:
    """The bot's posts to `user`'s DM (addressed by their user id, as nudges are)."""
    return [c for c in slack.calls("chat.postMessage") if c.ok and c.params.get("channel") == user]


async def done(sb: Sandbox, user: str, period: str, timeout: float = 10.0) -> ScheduledSend:  # noqa: ASYNC109
    """The nudge of `user` for `period`, once it is sent or skipped."""

    async def finished() -> ScheduledSend | None:
        send = await sb.services.scheduled_sends.find("nudge", user, period)
        return send if send is not None and send.state != "pending" else None

    found: ScheduledSend = await wait_until(finished, timeout)
    return found


def opportunity(sb: Sandbox, opportunity_id: str) -> dict[str, Any]:
    found = sb.close.org.find(sb.close.org.opportunities, opportunity_id)
    assert found is not None
    return found


def texts(message: dict[str, Any]) -> str:
    """Every text of a message's blocks, joined (what a person reads)."""
    found: list[str] = []
    for block in message.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            found.append(str(text.get("text", "")))
        for element in block.get("elements") or []:
            if isinstance(element, dict) and isinstance(element.get("text"), str):
                found.append(element["text"])
    return "\n".join(found)


def dm_message(sb: Sandbox, send: ScheduledSend) -> dict[str, Any]:
    assert send.message_channel and send.message_ts
    return next(m for m in sb.slack.messages(send.message_channel) if m["ts"] == send.message_ts)


async def test_owners_in_tokyo_and_los_angeles_are_nudged_at_their_own_nine(
    database_url: str,
) -> None:
    clock = Clock(START)
    async with stack(clock, database_url) as sb:
        overdue(sb, "user_alice", "lead_globex")
        overdue(sb, "user_carol", "lead_acme")
        # Before anyone's 09:00 but Bob's: his has nothing overdue, so it sends nothing.
        bob = await done(sb, "U0BOB", "2026-12-07")
        assert bob.state == "skipped"
        assert await sb.services.planner.tick() == 0  # nobody else is due yet
        assert sb.slack.calls("chat.postMessage") == []

        clock.now = LA_NINE
        alice = await done(sb, "U0ALICE", "2026-12-07")
        assert alice.state == "sent"
        assert len(dms(sb.slack, "U0ALICE")) == 1
        assert "Globex" in texts(dm_message(sb, alice))
        assert "expected Tue 1 Dec 2026" in texts(dm_message(sb, alice))
        # Carol's 09:00 has not come (02:00 on the 8th in Tokyo): nothing stored for her.
        assert await sb.services.scheduled_sends.find("nudge", "U0CAROL", "2026-12-08") is None

        clock.now = TOKYO_NINE
        carol = await done(sb, "U0CAROL", "2026-12-08")
        assert carol.state == "sent"
        assert len(dms(sb.slack, "U0CAROL")) == 1
        assert "Acme" in texts(dm_message(sb, carol))
        assert len(dms(sb.slack, "U0ALICE")) == 1  # her day's nudge went already


async def test_a_deal_fixed_in_close_before_the_nudge_goes_is_not_listed(
    database_url: str,
) -> None:
    clock = Clock(START)
    async with stack(clock, database_url) as sb:
        moved = overdue(sb, "user_carol", "lead_acme")
        won = overdue(sb, "user_carol", "lead_umbrella")
        still = overdue(sb, "user_carol", "lead_soylent")
        overdue(sb, "user_carol", "lead_globex", day="2026-12-08")  # due today: not overdue
        overdue(sb, "user_alice", "lead_globex", day="2026-12-01")  # someone else's
        sb.close.change_opportunity(moved, {"date_won": "2026-12-20"}, user_id="user_carol")
        sb.close.change_opportunity(won, {"status_id": "stat_won"}, user_id="user_carol")
        clock.now = TOKYO_NINE
        send = await done(sb, "U0CAROL", "2026-12-08")
        assert send.payload is not None
        assert [line["opportunity_id"] for line in send.payload["lines"]] == [still]
        assert "*1 of your deals is past the expected close date.*" in texts(dm_message(sb, send))
        # Close was asked once, for her active deals past her today, soonest first.
        [read] = [
            r
            for r in sb.close.requests
            if r.method == "GET"
            and r.path == "/opportunity/"
            and r.query.get("user_id") == "user_carol"
        ]
        assert read.query["status_type"] == "active"
        assert read.query["_order_by"] == "date_won"
        assert read.query["date_won__lt"] == "2026-12-08"


async def test_two_app_instances_on_one_database_send_one_dm(database_url: str) -> None:
    clock = Clock(START)
    async with stack(clock, database_url) as sb:
        overdue(sb, "user_carol", "lead_acme")
        other = Services.create(sb.settings, clock=clock)
        server = await start_server(create_http_app(other, build_app(sb.settings, other)))
        try:
            await other.catalog.wait_loaded(5.0)
            clock.now = TOKYO_NINE
            send = await done(sb, "U0CAROL", "2026-12-08")
            # Both planners look again: it is planned, and sent, once.
            assert await other.planner.tick() == 0
            assert await sb.services.planner.tick() == 0
            assert send.state == "sent"
            assert len(dms(sb.slack, "U0CAROL")) == 1
        finally:
            await server.stop()


async def test_a_restart_the_same_day_sends_no_second_nudge(database_url: str) -> None:
    # The app was down at her 09:00 and comes back at 11:00: that day's nudge goes at once.
    clock = Clock(TOKYO_NINE + timedelta(hours=2))
    close, slack = CloseSimulator(api_key=CLOSE_API_KEY), SlackSimulator(bot_token=BOT_TOKEN)
    overdue(close, "user_carol", "lead_acme")
    async with running_sandbox(
        database_url=database_url, clock=clock, close=close, slack=slack, **FAST
    ) as sb:
        send = await done(sb, "U0CAROL", "2026-12-08")
        assert send.state == "sent" and send.due_at == TOKYO_NINE
    clock.now = TOKYO_NINE + timedelta(hours=3)
    async with running_sandbox(
        database_url=database_url, clock=clock, close=close, slack=slack, **FAST
    ) as sb:
        assert await sb.services.planner.tick() == 0
        assert len(dms(slack, "U0CAROL")) == 1


async def test_won_on_the_nudge_updates_close_as_the_person_and_the_dm_line(
    database_url: str,
) -> None:
    clock = Clock(TOKYO_NINE)
    async with stack(clock, database_url) as sb:
        deal = overdue(sb, "user_carol", "lead_acme")
        later = overdue(sb, "user_carol", "lead_soylent")
        send = await done(sb, "U0CAROL", "2026-12-08")
        assert send.message_channel and send.message_ts
        mark = sb.slack.mark()
        result = await sb.driver.press_button(
            channel_id=send.message_channel,
            message_ts=send.message_ts,
            action_id="nudge_won",
            block_id=f"nudge:{send.id}|{deal}",
            user_id="U0CAROL",
        )
        assert result.response.status_code == 200
        await sb.slack.wait_for("chat.update", since=mark)
        assert opportunity(sb, deal)["status_id"] == "stat_won"
        # Through the key here (CLOSE_ACCESS=key): its user in the simulator is Alice.
        assert opportunity(sb, deal)["updated_by"] == "user_alice"
        shown = texts(dm_message(sb, send))
        assert "Acme Corp>*: marked *Won*" in shown
        assert opportunity(sb, later)["status_id"] == "stat_proposal"
        # The other line still has its buttons.
        blocks = dm_message(sb, send)["blocks"]
        assert any(b.get("block_id") == f"nudge:{send.id}|{later}" for b in blocks)
        assert not any(b.get("block_id") == f"nudge:{send.id}|{deal}" for b in blocks)


async def test_plus_one_week_and_a_picked_date_move_the_expected_close(database_url: str) -> None:
    clock = Clock(TOKYO_NINE)
    async with stack(clock, database_url) as sb:
        week = overdue(sb, "user_carol", "lead_acme", day="2026-12-01")
        picked = overdue(sb, "user_carol", "lead_soylent", day="2026-12-03")
        send = await done(sb, "U0CAROL", "2026-12-08")
        assert send.message_channel and send.message_ts
        await sb.driver.press_button(
            channel_id=send.message_channel,
            message_ts=send.message_ts,
            action_id="nudge_week",
            block_id=f"nudge:{send.id}|{week}",
            user_id="U0CAROL",
        )
        await wait_until(lambda: opportunity(sb, week)["date_won"] == "2026-12-08")
        await sb.driver.press_button(
            channel_id=send.message_channel,
            message_ts=send.message_ts,
            action_id="nudge_date",
            block_id=f"nudge:{send.id}|{picked}",
            user_id="U0CAROL",
            selected_date="2027-01-15",
        )
        await wait_until(lambda: opportunity(sb, picked)["date_won"] == "2027-01-15")

        def both_lines_told() -> bool:
            shown = texts(dm_message(sb, send))
            return "moved to Tue 8 Dec 2026" in shown and "moved to Fri 15 Jan 2027" in shown

        await wait_until(both_lines_told)


async def test_a_tap_on_a_deal_logged_here_is_told_in_its_thread(database_url: str) -> None:
    clock = Clock(TOKYO_NINE)
    async with stack(clock, database_url) as sb:
        view_id = await open_modal(
            sb, "Acme Corp 12k annual 60% close 2026-12-01", user_id="U0CAROL"
        )
        await submit(sb, view_id)
        [deal] = await wait_opportunities(sb, 1)
        assert deal["user_id"] == "user_carol"
        await thread_reply(sb)  # the confirmation is out
        await sb.services.planner.tick()
        send = await done(sb, "U0CAROL", "2026-12-08")
        assert send.message_channel and send.message_ts
        mark = sb.slack.mark()
        await sb.driver.press_button(
            channel_id=send.message_channel,
            message_ts=send.message_ts,
            action_id="nudge_lost",
            block_id=f"nudge:{send.id}|{deal['id']}",
            user_id="U0CAROL",
        )
        reply = await sb.slack.wait_for(
            "chat.postMessage",
            lambda c: c.params.get("channel") == "C0SALES" and bool(c.params.get("thread_ts")),
            since=mark,
        )
        assert "marked it *Lost*" in str(reply.params)
        assert opportunity(sb, deal["id"])["status_id"] == "stat_lost"


async def test_nudges_off_sends_nothing_and_on_brings_them_back(database_url: str) -> None:
    clock = Clock(START)
    async with stack(clock, database_url) as sb:
        overdue(sb, "user_carol", "lead_acme")
        result = await sb.driver.slash_command("nudges off", user_id="U0CAROL")
        assert result.response.status_code == 200
        answer = await sb.slack.wait_for("response_url")
        assert "Nudges are off" in str(answer.params)
        clock.now = TOKYO_NINE
        await sb.services.planner.tick()
        assert await sb.services.scheduled_sends.find("nudge", "U0CAROL", "2026-12-08") is None
        # The App Home says so, and its switch turns them back on.
        await sb.driver.app_home_opened("U0CAROL")
        home = await sb.slack.wait_for(
            "views.publish", lambda c: c.params.get("user_id") == "U0CAROL"
        )
        assert "Overdue nudges are off" in str(home.params)
        view_id = sb.slack.home_views["U0CAROL"]
        mark = sb.slack.mark()
        await sb.driver.press_in_view(view_id, "nudges_switch", user_id="U0CAROL")
        await sb.slack.wait_for("views.publish", since=mark)
        send = await done(sb, "U0CAROL", "2026-12-08")
        assert send.state == "sent"
        assert len(dms(sb.slack, "U0CAROL")) == 1


async def test_more_than_ten_overdue_deals_list_ten_and_n_more(database_url: str) -> None:
    clock = Clock(TOKYO_NINE)
    async with stack(clock, database_url) as sb:
        for n in range(13):
            sb.close.org.add_lead(f"Lead {n:02d}", lead_id=f"lead_many{n:02d}")
            overdue(sb, "user_carol", f"lead_many{n:02d}", day=f"2026-11-{n + 1:02d}")
        send = await done(sb, "U0CAROL", "2026-12-08")
        assert send.payload is not None
        assert len(send.payload["lines"]) == 10
        assert send.payload["lines"][0]["lead_name"] == "Lead 00"  # the oldest first
        shown = texts(dm_message(sb, send))
        assert "*13 of your deals are past the expected close date.*" in shown
        assert "and 3 more" in shown


async def test_people_of_another_organization_are_never_nudged(tmp_path: Path) -> None:
    clock = Clock(TOKYO_NINE)
    close = CloseSimulator(api_key=CLOSE_API_KEY)
    # Someone of a customer's workspace whose email a Close user of ours happens to have.
    close.org.users.append(
        {"id": "user_ed", "email": "ed@acme.example", "first_name": "Ed", "last_name": "X"}
    )
    overdue(close, "user_ed", "lead_acme")
    slack = SlackSimulator(bot_token=BOT_TOKEN)
    slack.add_external_user("U0EXTERN", name="ed", channels=["C0SALES"])
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    async with running_sandbox(
        database_url=url, clock=clock, close=close, slack=slack, **FAST
    ) as sb:
        await sb.services.planner.tick()
        await done(sb, "U0ALICE", "2026-12-07")  # the planner has looked at everyone
        assert await sb.services.scheduled_sends.find("nudge", "U0EXTERN", "2026-12-08") is None
        assert dms(slack, "U0EXTERN") == []


async def test_a_nudge_slack_refused_once_is_sent_once_later(database_url: str) -> None:
    clock = Clock(TOKYO_NINE)
    async with stack(clock, database_url) as sb:
        sb.slack.fail_method("chat.postMessage", "ratelimited", retry_after=0.05)
        overdue(sb, "user_carol", "lead_acme")
        store = sb.services.scheduled_sends

        async def put_off() -> bool:
            send = await store.find("nudge", "U0CAROL", "2026-12-08")
            return send is not None and send.error == "Slack: ratelimited"

        await wait_until(put_off)
        assert dms(sb.slack, "U0CAROL") == []
        clock.now = TOKYO_NINE + timedelta(seconds=1)  # past Slack's Retry-After
        send = await done(sb, "U0CAROL", "2026-12-08")
        assert send.state == "sent"
        assert len(dms(sb.slack, "U0CAROL")) == 1


async def test_a_nudge_whose_sender_died_mid_post_is_never_posted_again(
    database_url: str,
) -> None:
    clock = Clock(START)  # before Carol's 09:00: the app leaves her nudge alone for now
    async with stack(clock, database_url) as sb:
        overdue(sb, "user_carol", "lead_acme")
        store = sb.services.scheduled_sends
        planned = Planned(kind="nudge", recipient="U0CAROL", period="2026-12-08", due_at=TOKYO_NINE)
        assert await store.plan([planned], now=START) == 1
        # Another process claims it at 09:00, is about to post it, and dies.
        lease = timedelta(seconds=sb.settings.worker_lease_seconds)
        [dying] = await store.claim_due(now=TOKYO_NINE, lease=lease, owner="dying")
        assert await store.posting(dying, now=TOKYO_NINE)
        clock.now = TOKYO_NINE + lease + timedelta(seconds=1)  # its lease runs out
        send = await done(sb, "U0CAROL", "2026-12-08")
        assert send.state == "skipped"
        assert dms(sb.slack, "U0CAROL") == []
