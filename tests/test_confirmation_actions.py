"""The confirmation's Edit / Won / Lost buttons over real HTTP: who may, what Close gets, what the thread says."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.blocks.messages import EDIT_ACTION_ID, LOST_ACTION_ID, WON_ACTION_ID
from bot.blocks.modal import EDIT_CALLBACK_ID
from sandbox.slack_sim import Call
from sandbox.stack import Sandbox, running_sandbox
from tests.flows import open_modal, submit, thread_reply, wait_opportunities, wait_until


async def log_deal(
    sb: Sandbox, text: str = "Acme Corp 12k", *, channel_id: str = "C0SALES"
) -> tuple[dict[str, Any], Call]:
    """Log one opportunity with /opportunity; returns it (as Close holds it) and its details post."""
    count = len(sb.close.opportunities)
    view_id = await open_modal(sb, text, channel_id=channel_id)
    mark = sb.slack.mark()
    await submit(sb, view_id)
    opportunities = await wait_opportunities(sb, count + 1)
    details = await sb.slack.wait_for(
        "chat.postMessage",
        lambda c: c.ok and EDIT_ACTION_ID in json.dumps(c.params.get("blocks")),
        since=mark,
    )
    return opportunities[-1], details


async def press(sb: Sandbox, details: Call, action_id: str, user_id: str = "U0ALICE") -> Any:
    result = await sb.driver.press_button(
        channel_id=details.response["channel"],
        message_ts=details.response["ts"],
        action_id=action_id,
        user_id=user_id,
    )
    assert result.response.status_code == 200, result.response.text
    return result


async def open_edit(sb: Sandbox, details: Call) -> str:
    """Press Edit on a logged deal; returns the modal's view id once Close's values are in."""
    result = await press(sb, details, EDIT_ACTION_ID)
    view = await sb.driver.wait_for_view(result.trigger_id)
    view_id: str = view["id"]
    await sb.slack.wait_for("views.update", lambda c: c.params.get("view_id") == view_id)
    return view_id


def puts(sb: Sandbox) -> list[Any]:
    return [r for r in sb.close.requests if r.method == "PUT"]


def message(sb: Sandbox, channel: str, ts: str) -> dict[str, Any]:
    return next(m for m in sb.slack.messages(channel) if m["ts"] == ts)


def buttons(msg: dict[str, Any]) -> list[str]:
    return [
        e.get("action_id")
        for b in msg.get("blocks") or []
        if b.get("type") == "actions"
        for e in b["elements"]
    ]


async def test_details_offer_edit_won_and_lost(sandbox: Sandbox) -> None:
    _opportunity, details = await log_deal(sandbox)
    shown = buttons(message(sandbox, "C0SALES", details.response["ts"]))
    assert shown == ["open_in_close", EDIT_ACTION_ID, WON_ACTION_ID, LOST_ACTION_ID]


async def test_edit_round_trip_puts_only_what_changed_and_tells_the_thread(
    sandbox: Sandbox,
) -> None:
    opportunity, details = await log_deal(sandbox, "Acme Corp 12k annual note: first call")
    summary_ts = details.params["thread_ts"]
    result = await press(sandbox, details, EDIT_ACTION_ID)
    view = await sandbox.driver.wait_for_view(result.trigger_id)
    # Opened at once, then filled from GET /opportunity/{id}/.
    await sandbox.slack.wait_for("views.update", lambda c: c.params.get("view_id") == view["id"])
    view = sandbox.slack.views[view["id"]]
    assert view["callback_id"] == EDIT_CALLBACK_ID and view["title"]["text"] == "Edit opportunity"
    by_id = {b.get("block_id"): b for b in view["blocks"]}
    assert by_id["lead"]["element"]["initial_option"]["value"] == "lead_acme"
    assert by_id["value"]["element"]["initial_value"] == "$12,000"
    assert by_id["owner"]["element"]["initial_user"] == "U0ALICE"
    assert "Close has it now" in json.dumps(view["blocks"])
    assert [r.path for r in sandbox.close.requests if r.method == "GET" and "oppo_" in r.path]

    mark = sandbox.slack.mark()
    response = await sandbox.driver.submit_view(
        view["id"], values={"value": "15k", "status": "stat_proposal"}
    )
    assert response.status_code == 200
    await wait_until(lambda: bool(puts(sandbox)))
    [put] = puts(sandbox)
    assert put.path.endswith(f"/opportunity/{opportunity['id']}/")
    assert put.json == {
        "value": 1_500_000,
        "status_id": "stat_proposal",
        "pipeline_id": "pipe_sales",
    }
    assert put.headers.get("x-tz-offset") == "-8"

    line = await thread_reply(sandbox, since=mark)
    assert line.params["thread_ts"] == summary_ts
    text = json.dumps(line.params["blocks"])
    assert "<@U0ALICE> edited it" in text
    assert "$12,000 annual \\u2192 $15,000 annual" in text and "Proposal Sent" in text
    summary = message(sandbox, "C0SALES", summary_ts)
    assert "$15,000" in json.dumps(summary["blocks"]) and "edited" in summary
    refreshed = message(sandbox, "C0SALES", details.response["ts"])
    assert "$15,000" in json.dumps(refreshed["blocks"])
    await wait_until(lambda: "Saved" in json.dumps(sandbox.slack.views[view["id"]]["blocks"]))


async def test_edit_that_changes_nothing_sends_nothing(sandbox: Sandbox) -> None:
    _opportunity, details = await log_deal(sandbox)
    response = await sandbox.driver.submit_view(await open_edit(sandbox, details))
    assert response.status_code == 200 and not response.content.strip()
    assert puts(sandbox) == []


async def test_won_uses_the_pipelines_won_status_and_close_sets_date_won(
    sandbox: Sandbox,
) -> None:
    opportunity, details = await log_deal(sandbox)
    assert opportunity["date_won"] is None
    mark = sandbox.slack.mark()
    await press(sandbox, details, WON_ACTION_ID)
    await wait_until(lambda: opportunity["status_id"] == "stat_won")
    [put] = puts(sandbox)
    assert put.json == {"status_id": "stat_won"}
    assert put.headers.get("x-tz-offset") == "-8"  # Alice is in Los Angeles
    assert opportunity["date_won"] is not None
    line = await thread_reply(sandbox, since=mark)
    assert "marked it *Won*" in json.dumps(line.params["blocks"])
    await wait_until(
        lambda: WON_ACTION_ID not in buttons(message(sandbox, "C0SALES", details.response["ts"]))
    )


async def test_lost_uses_the_lost_status_of_the_opportunitys_own_pipeline(
    sandbox: Sandbox,
) -> None:
    opportunity, details = await log_deal(sandbox, "Acme Corp 12k status: Renewal Due")
    assert opportunity["status_id"] == "stat_renewal_due"
    await press(sandbox, details, LOST_ACTION_ID, user_id="U0CAROL")  # an admin
    await wait_until(lambda: opportunity["status_id"] == "stat_churned")


async def test_someone_else_is_refused_with_an_ephemeral_explanation(sandbox: Sandbox) -> None:
    opportunity, details = await log_deal(sandbox)
    await press(sandbox, details, WON_ACTION_ID, user_id="U0BOB")
    await wait_until(lambda: bool(sandbox.slack.ephemerals("C0SALES", "U0BOB")))
    result = await press(sandbox, details, EDIT_ACTION_ID, user_id="U0BOB")
    await wait_until(lambda: len(sandbox.slack.ephemerals("C0SALES", "U0BOB")) == 2)
    first, second = sandbox.slack.ephemerals("C0SALES", "U0BOB")
    assert "Only <@U0ALICE>" in first["text"] and "admins" in first["text"]
    assert first["thread_ts"] == details.params["thread_ts"]
    assert second["text"] == first["text"]
    assert puts(sandbox) == [] and opportunity["status_id"] == "stat_lead"
    assert not [
        c
        for c in sandbox.slack.calls("views.open")
        if c.params.get("trigger_id") == result.trigger_id
    ]


async def test_the_owner_in_close_may_act_even_if_someone_else_logged_it(
    sandbox: Sandbox,
) -> None:
    opportunity, details = await log_deal(sandbox, "Acme Corp 12k <@U0BOB>")
    assert opportunity["user_id"] == "user_bob"
    await press(sandbox, details, LOST_ACTION_ID, user_id="U0BOB")
    await wait_until(lambda: opportunity["status_id"] == "stat_lost")


@pytest.fixture
async def with_deals_channel(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", deals_channel="C0GENERAL"
    ) as sb:
        yield sb


async def test_deals_channel_gets_one_announcement_and_threaded_updates(
    with_deals_channel: Sandbox,
) -> None:
    sb = with_deals_channel
    _opportunity, details = await log_deal(sb)
    [announcement] = sb.slack.messages("C0GENERAL")
    assert "Acme Corp" in json.dumps(announcement["blocks"]) and "<#C0SALES>" in json.dumps(
        announcement["blocks"]
    )
    await press(sb, details, WON_ACTION_ID)

    def under_announcement() -> list[dict[str, Any]]:
        return [
            m
            for m in sb.slack.messages("C0GENERAL")
            if m.get("thread_ts") == announcement["ts"] and m["ts"] != announcement["ts"]
        ]

    # Threaded under the announcement (the won deal's own cheer follows at the top level).
    await wait_until(under_announcement)
    [update] = under_announcement()
    assert "marked it *Won*" in json.dumps(update["blocks"])


async def test_logged_in_the_deals_channel_is_not_announced_twice(
    with_deals_channel: Sandbox,
) -> None:
    sb = with_deals_channel
    sb.slack.workspace.channel("C0GENERAL").members.append("U0BOT")  # type: ignore[union-attr]
    await log_deal(sb, channel_id="C0GENERAL")
    top_level = [m for m in sb.slack.messages("C0GENERAL") if m.get("thread_ts") in (None, m["ts"])]
    assert len(top_level) == 1
