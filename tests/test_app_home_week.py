"""App Home's *This week* and *Settings* (issue #24 part 6) over real HTTP against the Slack and
Close simulators: the person's own deals closing this week and their overdue ones, read from
Close as them in one request, with the nudge's one-tap buttons (a tap changes Close and
republishes Home); the nudge and alert switches; `/opportunity alerts off|on`; a restricted rep
under CLOSE_ACCESS=personal sees only what Close lets them see, and someone not connected is
offered to connect there. Every published Home is valid Block Kit.

The app's clock is injected: Monday 7 Dec 2026, 07:30 in Los Angeles (Alice), 15:30 in London
(Bob): their week is Mon 7 – Sun 13 Dec.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sandbox import blockkit
from sandbox.slack_driver import InteractionResult
from sandbox.slack_sim import Call
from sandbox.stack import Sandbox, running_sandbox
from tests.flows import REQUIRED_CUSTOM, wait_until
from tests.oauth_flows import command_answer, connect_link, consent
from tests.test_app_home import published_home, settled

NOW = datetime(2026, 12, 7, 15, 30, tzinfo=UTC)


def clock() -> datetime:
    return NOW


@asynccontextmanager
async def sandbox(**overrides: Any) -> AsyncIterator[Sandbox]:
    async with running_sandbox(clock=clock, **{"nudge_time": "09:00", **overrides}) as sb:
        yield sb


def deal(sb: Sandbox, user: str, lead_id: str, day: str, status: str = "stat_proposal") -> str:
    """An opportunity of `user` expected on `day`, made in Close's app."""
    fields = {"status_id": status, "date_won": day, "value": 1_200_000, **REQUIRED_CUSTOM}
    made = sb.close.create_opportunity_as(lead_id, fields, user_id=user)
    return str(made["id"])


def close_opportunity(sb: Sandbox, opportunity_id: str) -> dict[str, Any]:
    found = sb.close.org.find(sb.close.org.opportunities, opportunity_id)
    assert found is not None
    return found


def block(view: dict[str, Any], block_id: str) -> dict[str, Any] | None:
    return next((b for b in view["blocks"] if b.get("block_id") == block_id), None)


def text_of(view: dict[str, Any], block_id: str) -> str:
    found = block(view, block_id)
    assert found is not None, f"no block {block_id!r}"
    if found["type"] == "context":
        return " ".join(str(e.get("text", "")) for e in found["elements"])
    return str(found["text"]["text"])


def listed(view: dict[str, Any], name: str) -> list[str]:
    """The opportunity ids a list of *This week* shows with buttons, in order."""
    ids: list[str] = []
    blocks = view["blocks"]
    for n, b in enumerate(blocks):
        if (
            b.get("block_id", "").startswith(f"{name}_")
            and b["block_id"][len(name) + 1 :].isdigit()
        ):
            follower = blocks[n + 1]
            ids.append(str(follower["block_id"]).removeprefix("nudge:home|"))
    return ids


def valid(view: dict[str, Any]) -> dict[str, Any]:
    assert blockkit.problems(view, surface="home") == []
    return view


def publishes(sb: Sandbox, user_id: str, since: int = 0) -> list[Call]:
    return [
        c
        for c in sb.slack.calls()[since:]
        if c.method == "views.publish" and c.params.get("user_id") == user_id
    ]


async def republished(sb: Sandbox, user_id: str, mark: int) -> dict[str, Any]:
    call = await sb.slack.wait_for("views.publish", lambda c: settled(c, user_id), since=mark)
    return valid(dict(call.response["view"]))


def home_reads(sb: Sandbox, mark: int) -> list[Any]:
    return [
        r
        for r in sb.close.requests[mark:]
        if r.method == "GET" and r.path == "/opportunity/" and "date_won__lte" in r.query
    ]


async def press_on_home(
    sb: Sandbox, opportunity: str, action_id: str, **values: str
) -> InteractionResult:
    """Alice presses one of `opportunity`'s buttons (or picks its date) on her App Home."""
    return await sb.driver.press_in_view(
        sb.slack.home_views["U0ALICE"],
        f"nudge:home|{opportunity}",
        action_id=action_id,
        user_id="U0ALICE",
        **values,
    )


async def test_home_lists_this_weeks_and_overdue_deals_of_the_person_only() -> None:
    async with sandbox() as sb:
        week = deal(sb, "user_alice", "lead_acme", "2026-12-10")
        overdue = deal(sb, "user_alice", "lead_globex", "2026-12-01")
        deal(sb, "user_alice", "lead_soylent", "2026-12-20")  # next week: neither
        deal(sb, "user_alice", "lead_umbrella", "2026-12-09", status="stat_won")  # won
        deal(sb, "user_bob", "lead_initech", "2026-12-09")  # Bob's
        deal(sb, "user_bob", "lead_nakatomi", "2026-11-20")  # Bob's, overdue
        mark_close, mark = len(sb.close.requests), sb.slack.mark()
        view = valid(await published_home(sb, "U0ALICE"))
        assert listed(view, "closing") == [week]
        assert listed(view, "overdue") == [overdue]
        assert "Acme Corp" in text_of(view, "closing_0")
        assert "expected Thu 10 Dec 2026" in text_of(view, "closing_0")
        assert "Globex" in text_of(view, "overdue_0")
        assert "Mon 7 Dec 2026 – Sun 13 Dec 2026" in text_of(view, "closing_title")
        shown = json.dumps(view)
        for absent in ("Soylent", "Umbrella", "Initech", "Nakatomi"):
            assert absent not in shown
        # The same one-tap buttons as the nudge.
        actions = block(view, f"nudge:home|{week}")
        assert actions is not None
        assert [e["action_id"] for e in actions["elements"]] == [
            "nudge_won",
            "nudge_lost",
            "nudge_week",
            "nudge_date",
        ]
        # Settings: both switches and where Close is reached from.
        assert "Overdue nudges are on" in text_of(view, "nudges_switch")
        assert "Owner alerts are on" in text_of(view, "alerts_switch")
        assert block(view, "settings_header") is not None
        assert "the app's own key" in text_of(view, "close_via_key")  # no OAuth here
        # Published at once (reading Close), then with the deals; Close asked once, for her.
        first = publishes(sb, "U0ALICE", mark)[0]
        assert "week_loading" in json.dumps(first.params)
        valid(dict(first.response["view"]))
        [read] = home_reads(sb, mark_close)
        assert read.query["user_id"] == "user_alice"
        assert read.query["status_type"] == "active"
        assert read.query["date_won__lte"] == "2026-12-13"


async def test_home_is_published_before_close_answers() -> None:
    async with sandbox() as sb:
        deal(sb, "user_alice", "lead_acme", "2026-12-10")
        sb.close.path_latency["/opportunity/"] = 2.0
        mark = sb.slack.mark()
        response = await sb.driver.app_home_opened("U0ALICE")
        assert response.status_code == 200
        first = await sb.slack.wait_for(
            "views.publish", lambda c: c.params.get("user_id") == "U0ALICE", 1.5, since=mark
        )
        assert "Reading your deals from Close" in json.dumps(first.params)
        view = await republished(sb, "U0ALICE", mark)
        assert len(listed(view, "closing")) == 1


async def test_won_on_home_updates_close_and_home_no_longer_lists_it() -> None:
    async with sandbox() as sb:
        overdue = deal(sb, "user_alice", "lead_globex", "2026-12-01")
        view = await published_home(sb, "U0ALICE")
        assert listed(view, "overdue") == [overdue]
        mark = sb.slack.mark()
        result = await press_on_home(sb, overdue, "nudge_won")
        assert result.response.status_code == 200
        after = await republished(sb, "U0ALICE", mark)
        assert close_opportunity(sb, overdue)["status_id"] == "stat_won"
        assert listed(after, "overdue") == []
        assert overdue not in json.dumps(after)


async def test_plus_one_week_on_home_moves_the_expected_close_by_seven_days() -> None:
    async with sandbox() as sb:
        week = deal(sb, "user_alice", "lead_acme", "2026-12-11")
        overdue = deal(sb, "user_alice", "lead_globex", "2026-12-03")
        await published_home(sb, "U0ALICE")
        mark = sb.slack.mark()
        await press_on_home(sb, overdue, "nudge_week")
        after = await republished(sb, "U0ALICE", mark)
        assert close_opportunity(sb, overdue)["date_won"] == "2026-12-10"
        assert listed(after, "overdue") == []
        assert listed(after, "closing") == [overdue, week]  # now this week, soonest first
        await press_on_home(sb, week, "nudge_week")
        await wait_until(lambda: close_opportunity(sb, week)["date_won"] == "2026-12-18")


async def test_a_date_picked_on_home_moves_the_expected_close_there() -> None:
    async with sandbox() as sb:
        overdue = deal(sb, "user_alice", "lead_globex", "2026-12-03")
        await published_home(sb, "U0ALICE")
        mark = sb.slack.mark()
        await press_on_home(sb, overdue, "nudge_date", selected_date="2027-01-15")
        after = await republished(sb, "U0ALICE", mark)
        assert close_opportunity(sb, overdue)["date_won"] == "2027-01-15"
        assert listed(after, "overdue") == []
        assert listed(after, "closing") == []  # not this week any more


async def test_the_alerts_switch_and_command_flip_the_setting(database_url: str) -> None:
    async with sandbox(database_url=database_url) as sb:
        await published_home(sb, "U0BOB")
        mark = sb.slack.mark()
        await sb.driver.press_in_view(sb.slack.home_views["U0BOB"], "alerts_switch")
        view = await republished(sb, "U0BOB", mark)
        assert (await sb.services.people.get("U0BOB")).alerts is False
        assert "Owner alerts are off" in text_of(view, "alerts_switch")
        assert (await sb.services.people.get("U0BOB")).nudges is True  # the other one kept

        answer = await command_answer(sb.slack, sb.driver, "alerts on", user_id="U0BOB")
        assert "Owner alerts are on" in answer["text"]
        assert (await sb.services.people.get("U0BOB")).alerts is True
        answer = await command_answer(sb.slack, sb.driver, "alerts off", user_id="U0BOB")
        assert "Owner alerts are off" in answer["text"]
        assert (await sb.services.people.get("U0BOB")).alerts is False
        answer = await command_answer(sb.slack, sb.driver, "alerts maybe", user_id="U0BOB")
        assert "Usage: `/opportunity alerts off`" in answer["text"]
        assert (await sb.services.people.get("U0BOB")).alerts is False


async def test_a_home_read_earlier_never_covers_one_published_after_it() -> None:
    """Two switches pressed in a row: the first press's Home, still waiting for Close, must not
    land over the second's (it read the switches before the second press)."""
    async with sandbox() as sb:
        await published_home(sb, "U0BOB")
        home = sb.slack.home_views["U0BOB"]
        sb.close.path_latency["/opportunity/"] = 1.0  # the first press's Close read is slow
        mark, close_mark = sb.slack.mark(), len(sb.close.requests)
        await sb.driver.press_in_view(home, "alerts_switch")
        await wait_until(lambda: home_reads(sb, close_mark))  # its slow read is under way
        sb.close.path_latency.clear()
        second = sb.slack.mark()
        await sb.driver.press_in_view(home, "nudges_switch")
        view = await republished(sb, "U0BOB", second)
        assert "nudges are off" in text_of(view, "nudges_switch")
        refused = await sb.slack.wait_for(
            "views.publish",
            lambda c: c.params.get("user_id") == "U0BOB" and not c.ok,
            timeout=5,
            since=mark,
        )
        assert refused.response["error"] == "hash_conflict"
        shown = sb.slack.views[home]
        assert "nudges are off" in text_of(shown, "nudges_switch")
        assert "Owner alerts are off" in text_of(shown, "alerts_switch")


async def test_someone_not_matched_to_a_close_user_is_told_so() -> None:
    async with sandbox() as sb:
        view = valid(await published_home(sb, "U0DAVE"))
        assert "cannot tell which Close user you are" in text_of(view, "week_unmapped")


async def test_a_restricted_rep_sees_only_what_close_lets_them_see() -> None:
    async with sandbox(oauth=True, close_access="personal") as sb:
        sb.close.restrict("user_bob")
        sb.close.own_lead("lead_globex", "user_bob")
        sb.close.own_lead("lead_acme", "user_carol")
        his = deal(sb, "user_bob", "lead_globex", "2026-12-11")
        deal(sb, "user_bob", "lead_acme", "2026-12-11")  # his deal on a lead he may not see
        walk = await consent(sb.close, await connect_link(sb, "U0BOB"), user="user_bob")
        assert walk.page.status_code == 200, walk.page.text
        mark = len(sb.close.requests)
        view = valid(await published_home(sb, "U0BOB"))
        assert listed(view, "closing") == [his]
        assert "Acme Corp" not in json.dumps(view)
        [read] = home_reads(sb, mark)
        token = read.headers["authorization"].removeprefix("Bearer ")
        assert sb.close.bearer_user(token) == "user_bob"
        assert "Connected to Close as" in text_of(view, "close_connection")


async def test_not_connected_under_personal_this_week_offers_to_connect() -> None:
    async with sandbox(oauth=True, close_access="personal") as sb:
        deal(sb, "user_carol", "lead_acme", "2026-12-10")
        mark = len(sb.close.requests)
        view = valid(await published_home(sb, "U0CAROL"))
        connect = block(view, "week_connect")
        assert connect is not None and connect["accessory"]["text"]["text"] == "Connect Close"
        assert listed(view, "closing") == []
        assert home_reads(sb, mark) == []  # nothing read with the key on her behalf


async def test_more_than_ten_deals_list_ten_and_n_more() -> None:
    async with sandbox() as sb:
        for n in range(13):
            sb.close.org.add_lead(f"Lead {n:02d}", lead_id=f"lead_many{n:02d}")
            deal(sb, "user_alice", f"lead_many{n:02d}", f"2026-11-{n + 1:02d}")
        for n in range(11):
            sb.close.org.add_lead(f"Soon {n:02d}", lead_id=f"lead_soon{n:02d}")
            deal(sb, "user_alice", f"lead_soon{n:02d}", f"2026-12-{8 + n % 5:02d}")
        view = valid(await published_home(sb, "U0ALICE"))
        assert len(listed(view, "overdue")) == 10
        assert "Lead 12" in text_of(view, "overdue_0")  # the most recently overdue first
        assert "and 3 more" in text_of(view, "overdue_more")
        assert len(listed(view, "closing")) == 10
        assert "and 1 more" in text_of(view, "closing_more")
        assert "https://app.close.com/opportunities/" in text_of(view, "closing_more")
