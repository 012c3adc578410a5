"""A deal logged in a channel shared with another organization (Slack Connect) under
EXTERNAL_CHANNELS=private: the person gets one ephemeral note there, the confirmation and its
thread live in their DM (Edit/Won/Lost and Close -> Slack changes told there too), and nothing
the channel can read carries Close data; under `allow` it is confirmed in the channel as ever."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.messages import (
    EDIT_ACTION_ID,
    LOST_ACTION_ID,
    RETRY_ACTION_ID,
    WON_ACTION_ID,
    Message,
)
from bot.deals.models import Submission
from bot.listeners.guard import NOT_IN_SHARED_CHANNELS
from bot.listeners.shortcuts import MESSAGE_SHORTCUT
from bot.slack.audience import Audience
from bot.slack.errors import NotForThisAudience
from bot.slack.gateway import SlackGateway
from bot.sync.webhook import STATE_KEY
from sandbox.close_sim import CloseSimulator
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import Call, SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET, Sandbox, running_sandbox
from tests.flows import REQUIRED_CUSTOM, open_modal, submit, wait_opportunities, wait_until
from tests.process import APP_TOKEN, Bot
from tests.test_close_sync import settled
from tests.test_confirmation_actions import buttons, log_deal, message, press
from tests.test_slack_connect import EXTERNAL_USER, SHARED, shared_workspace

ONE_LINER = "Acme 12k 60% close friday"
DM = "D0ALICE"  # Alice's DM with the app
# What the shared channel must never read: the value, confidence, status, owner (Close's name).
CLOSE_DATA = ("12,000", "$12", "15,000", "60%", "Proposal Sent", "Won", "Alice Anders")
PROPOSAL = {"status": "stat_proposal"}


async def connect_sandbox(
    policy: str, database_url: str, **settings: Any
) -> AsyncIterator[Sandbox]:
    """The bot with #acme-shared (shared with Acme's organization), Close changes by webhook."""
    slack = SlackSimulator(bot_token=BOT_TOKEN)
    shared_workspace(slack)
    async with running_sandbox(
        database_url=database_url, slack=slack, webhook=True, external_channels=policy, **settings
    ) as sb:
        await wait_until(lambda: sb.services.changes.get_state(STATE_KEY))
        yield sb


@pytest.fixture
async def private(database_url: str) -> AsyncIterator[Sandbox]:
    async for sb in connect_sandbox("private", database_url):
        yield sb


@pytest.fixture
async def allow(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async for sb in connect_sandbox("allow", f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"):
        yield sb


def read_by(slack: SlackSimulator, channel: str) -> list[str]:
    """Everything the Slack simulator recorded for `channel`: each post, update and unfurl
    the bot sent there (whether Slack took it or not), the messages as they stand, and every
    ephemeral message in it."""
    sent = [
        json.dumps(c.params, ensure_ascii=False)
        for c in slack.calls()
        if c.method in ("chat.postMessage", "chat.update", "chat.unfurl")
        and c.params.get("channel") == channel
    ]
    shown = [json.dumps(m, ensure_ascii=False) for m in slack.messages(channel)]
    ephemeral = [json.dumps(e, ensure_ascii=False) for e in slack.ephemerals(channel)]
    return sent + shown + ephemeral


def assert_no_close_data(slack: SlackSimulator, channel: str) -> None:
    for seen in read_by(slack, channel):
        for close_data in CLOSE_DATA:
            assert close_data not in seen, (close_data, seen)


async def details_in(slack: SlackSimulator, channel: str, *, since: int = 0) -> Call:
    """The details message (with Edit/Won/Lost) the bot posted in `channel`."""
    return await slack.wait_for(
        "chat.postMessage",
        lambda c: (
            c.ok
            and c.response.get("channel") == channel
            and EDIT_ACTION_ID in json.dumps(c.params.get("blocks"))
        ),
        since=since,
    )


async def confirmed(sb: Sandbox, opportunity_id: str) -> Submission | None:
    """The submission, once its confirmation is stored with it."""
    submission = await sb.services.deals.store.by_opportunity(opportunity_id)
    return submission if submission is not None and submission.confirmed_at else None


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(m.get("blocks") or m.get("text"), ensure_ascii=False) for m in messages]


async def log_in_shared(sb: Sandbox) -> tuple[dict[str, Any], Call]:
    """`/opportunity Acme 12k 60% close friday` in #acme-shared, Create pressed."""
    view_id = await open_modal(sb, ONE_LINER, channel_id=SHARED)
    mark = sb.slack.mark()
    await submit(sb, view_id, PROPOSAL)
    [opportunity] = await wait_opportunities(sb, 1)
    return opportunity, await details_in(sb.slack, DM, since=mark)


# --- the gateway: an update is read like a post ------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "refused"), [("private", True), ("off", True), ("allow", False)]
)
async def test_the_gateway_refuses_an_update_with_close_data_in_an_external_channel(
    policy: str, refused: bool
) -> None:
    async with SlackSimulator(BOT_TOKEN) as sim:
        shared_workspace(sim)
        client = AsyncWebClient(token=BOT_TOKEN, base_url=sim.api_url)
        slack = SlackGateway(client, external_channels=cast(Any, policy))
        posted = await slack.post_message(
            SHARED, Message(text="Acme Corp", blocks=[]), close_data=False
        )
        summary = Message(text="Acme Corp: $12,000, 60%", blocks=[])
        if refused:
            with pytest.raises(NotForThisAudience) as error:
                await slack.update_message(SHARED, posted.ts, summary)
            assert error.value.method == "chat.update"
            assert sim.calls("chat.update") == []
        else:
            await slack.update_message(SHARED, posted.ts, summary)
        # Without Close data it goes through; internal channels and DMs take Close data.
        line = Message(text="The opportunity for Acme Corp is logged", blocks=[])
        await slack.update_message(SHARED, posted.ts, line, close_data=False)
        assert [m["text"] for m in sim.messages(SHARED)] == [line.text]
        inside = await slack.post_message("C0SALES", line)
        await slack.update_message("C0SALES", inside.ts, summary)
        assert [m["text"] for m in sim.messages("C0SALES")] == [summary.text]


async def test_a_channel_the_app_cannot_see_keeps_its_place_for_the_usual_fallback() -> None:
    """A private channel the app is not in: conversations.info says channel_not_found, and so
    would chat.postMessage; the confirmation is not moved (the person hears through the
    response_url, then a DM, as for any channel that refuses the app: tests/test_spine.py)."""
    async with SlackSimulator(BOT_TOKEN) as sim:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=sim.api_url)
        slack = SlackGateway(client, external_channels="private")
        place = await slack.confirmation_place("C0PRIVATE", "U0ALICE", thread_ts="1.2")
        assert (place.channel, place.thread_ts, place.moved_from) == ("C0PRIVATE", "1.2", None)


# --- EXTERNAL_CHANNELS=private: the confirmation lives in the DM -------------------------------


async def test_under_private_the_confirmation_is_in_the_dm_and_the_channel_gets_one_note(
    private: Sandbox,
) -> None:
    sb = private
    opportunity, details = await log_in_shared(sb)
    assert opportunity["value"] == 1200000 and opportunity["confidence"] == 60
    root = details.params["thread_ts"]
    # The DM: the summary with its values, and in its thread the details with Edit/Won/Lost.
    summary = message(sb, DM, root)
    assert "12,000" in texts([summary])[0] and "Proposal Sent" in texts([summary])[0]
    shown = message(sb, DM, details.response["ts"])
    assert buttons(shown) == ["open_in_close", EDIT_ACTION_ID, WON_ACTION_ID, LOST_ACTION_ID]
    assert "60%" in texts([shown])[0]
    # The channel: one ephemeral note for Alice, nothing posted for everyone.
    [note] = sb.slack.ephemerals(SHARED, "U0ALICE")
    assert "your DMs" in note["text"] and "Acme Corp" in note["text"]
    assert sb.slack.messages(SHARED) == []
    assert sb.slack.calls("response_url") == []  # nothing fell back
    # The modal says where it went.
    [created] = [
        c
        for c in sb.slack.calls("views.update")
        if "Created the opportunity" in json.dumps(c.params)
    ]
    assert "in your DMs" in json.dumps(created.params)
    # Stored: the confirmation points at the DM (changes are told there).
    submission = await wait_until(lambda: confirmed(sb, opportunity["id"]))
    assert (submission.notice_channel, submission.thread_channel) == (DM, DM)
    assert submission.details_ts == details.response["ts"]

    # Won pressed on the DM's details: saved in Close, told in the DM's thread.
    await press(sb, details, WON_ACTION_ID)
    await wait_until(lambda: any("marked it" in t for t in texts(sb.slack.thread(DM, root))))
    [won] = [o for o in sb.close.opportunities if o["id"] == opportunity["id"]]
    assert won["status_type"] == "won"
    assert WON_ACTION_ID not in buttons(message(sb, DM, details.response["ts"]))

    # A change made in Close: told in the DM's thread too, the DM's summary follows it.
    sb.close.change_opportunity(opportunity["id"], {"value": 1500000})
    await wait_until(
        lambda: any("changed it in Close" in t for t in texts(sb.slack.thread(DM, root)))
    )
    # (Close -> Slack tells the news first, then refreshes the summary.)
    await wait_until(lambda: "15,000" in texts([message(sb, DM, root)])[0])

    await sb.close.wait_deliveries_idle()
    assert_no_close_data(sb.slack, SHARED)
    assert len(sb.slack.ephemerals(SHARED)) == 1


async def test_under_private_a_queued_deal_is_queued_and_confirmed_in_the_dm_with_one_note(
    private: Sandbox,
) -> None:
    sb = private
    view_id = await open_modal(sb, ONE_LINER, channel_id=SHARED)
    sb.close.fail(2, 500, paths=["/opportunity/"], methods=["POST"])
    await submit(sb, view_id, PROPOSAL)
    await wait_opportunities(sb, 1, timeout=10)
    details = await details_in(sb.slack, DM)
    queued = await sb.slack.wait_for("chat.postMessage", lambda c: "Queued" in str(c.params))
    assert queued.response["channel"] == DM
    # The queued notice became the summary, in place, in the DM.
    assert details.params["thread_ts"] == queued.response["ts"]
    assert "12,000" in texts([message(sb, DM, queued.response["ts"])])[0]
    [note] = sb.slack.ephemerals(SHARED, "U0ALICE")  # said once, when it was queued
    assert "your DMs" in note["text"]
    assert sb.slack.messages(SHARED) == []
    assert_no_close_data(sb.slack, SHARED)


async def test_a_notice_in_a_channel_shared_since_becomes_a_line_without_close_data(
    private: Sandbox,
) -> None:
    """Queued in #sales; #sales is shared with Acme's organization before Close answers: the
    notice is not updated with the summary but replaced by a line naming the lead only, and
    the confirmation goes to the DM."""
    sb = private
    view_id = await open_modal(sb, ONE_LINER, channel_id="C0SALES")
    # Close stays down until the channel is shared.
    sb.close.fail(1000, 500, paths=["/opportunity/"], methods=["POST"])
    await submit(sb, view_id, PROPOSAL)
    queued = await sb.slack.wait_for(
        "chat.postMessage", lambda c: "Queued" in str(c.params), timeout=10
    )
    assert queued.response["channel"] == "C0SALES"
    await sb.driver.event(sb.slack.share_channel("C0SALES", "T0ACME"))
    audiences = sb.services.slack_gateway.audiences
    await wait_until(lambda: audiences.known("C0SALES") is Audience.EXTERNAL)
    mark = sb.slack.mark()
    sb.close.clear_faults()
    await wait_opportunities(sb, 1, timeout=10)
    details = await details_in(sb.slack, DM, since=mark)
    [line] = [m for m in sb.slack.messages("C0SALES") if m["ts"] == queued.response["ts"]]
    assert "is logged in Close" in texts([line])[0] and "Acme Corp" in texts([line])[0]
    assert "12,000" in texts([message(sb, DM, details.params["thread_ts"])])[0]
    [note] = sb.slack.ephemerals("C0SALES", "U0ALICE")
    assert "your DMs" in note["text"]
    # Nothing with Close data went to #sales since it was shared.
    for call in sb.slack.calls()[mark:]:
        if call.params.get("channel") == "C0SALES":
            assert not any(data in json.dumps(call.params) for data in CLOSE_DATA), call.params


async def test_from_a_message_in_a_shared_channels_thread_the_note_is_in_that_thread(
    private: Sandbox,
) -> None:
    sb = private
    parent = sb.slack.add_message(SHARED, "How did the call go?", user=EXTERNAL_USER)
    reply = sb.slack.add_message(SHARED, "Signed! Acme Corp 12k ARR", thread_ts=parent["ts"])
    mark = sb.slack.mark()
    result = await sb.driver.message_shortcut(MESSAGE_SHORTCUT, message=reply, channel_id=SHARED)
    view = await sb.driver.wait_for_view(result.trigger_id)
    await sb.slack.wait_for(
        "views.update", lambda c: c.params.get("view_id") == view["id"], since=mark
    )
    await submit(sb, view["id"])
    await wait_opportunities(sb, 1)
    details = await details_in(sb.slack, DM, since=mark)
    # In the DM, the thread is the DM summary's own (not the channel's thread).
    assert "12,000" in texts([message(sb, DM, details.params["thread_ts"])])[0]
    [note] = sb.slack.ephemerals(SHARED, "U0ALICE")
    assert note["thread_ts"] == parent["ts"] and "your DMs" in note["text"]
    assert [m["ts"] for m in sb.slack.messages(SHARED)] == [parent["ts"], reply["ts"]]
    assert_no_close_data(sb.slack, SHARED)


async def test_under_private_a_failure_is_told_in_the_dm_with_one_note(private: Sandbox) -> None:
    sb = private
    view_id = await open_modal(sb, ONE_LINER, channel_id=SHARED)
    sb.close.fail(1, 402, paths=["/opportunity/"], methods=["POST"])
    mark = sb.slack.mark()
    await submit(sb, view_id, PROPOSAL)
    failed = await sb.slack.wait_for(
        "chat.postMessage", lambda c: "could not create" in str(c.params), since=mark
    )
    assert failed.response["channel"] == DM and RETRY_ACTION_ID in json.dumps(failed.params)
    await wait_until(lambda: sb.slack.ephemerals(SHARED, "U0ALICE"))
    [note] = sb.slack.ephemerals(SHARED, "U0ALICE")
    assert "could not log" in note["text"] and "your DMs" in note["text"]
    assert sb.slack.messages(SHARED) == [] and sb.close.opportunities == []
    assert_no_close_data(sb.slack, SHARED)


async def test_a_workflow_step_told_to_confirm_in_a_shared_channel_says_the_lead_only(
    private: Sandbox,
) -> None:
    """A workflow step never DMs: the channel it names gets a line naming the lead only."""
    sb = private
    text = "Acme Corp $12k ARR 60% close 2027-03-31 Source: Inbound"
    run = await sb.driver.function_executed({"owner": "U0ALICE", "text": text, "channel": SHARED})
    assert run.response.status_code == 200, run.response.text
    execution = await sb.slack.functions.wait_done(run.execution.id, 10)
    assert execution.state == "completed", execution.error
    [line] = sb.slack.messages(SHARED)
    assert "Acme Corp" in texts([line])[0] and "is logged in Close" in texts([line])[0]
    assert sb.slack.messages(DM) == [] and sb.slack.ephemerals(SHARED) == []
    assert_no_close_data(sb.slack, SHARED)


# --- a deal whose thread is in a channel shared since: its changes are told in the DM -----------


async def share(sb: Sandbox, channel: str) -> None:
    """`channel` is shared with Acme's organization, and the bot has heard (channel_shared)."""
    await sb.driver.event(sb.slack.share_channel(channel, "T0ACME"))
    audiences = sb.services.slack_gateway.audiences
    await wait_until(lambda: audiences.known(channel) is Audience.EXTERNAL)


def sent_to(sb: Sandbox, channel: str, since: int) -> list[Call]:
    return [c for c in sb.slack.calls()[since:] if c.params.get("channel") == channel]


async def test_changes_of_a_deal_logged_before_its_channel_was_shared_are_told_in_the_dm(
    private: Sandbox,
) -> None:
    sb = private
    opportunity, details = await log_deal(sb, ONE_LINER)  # in #sales, internal then
    assert details.response["channel"] == "C0SALES"
    await share(sb, "C0SALES")
    mark = sb.slack.mark()

    # Changed in Close: a new message in Alice's DM names the deal and says what changed.
    sb.close.change_opportunity(opportunity["id"], {"value": 1500000})
    told = await sb.slack.wait_for(
        "chat.postMessage",
        lambda c: (
            c.ok and c.response.get("channel") == DM and "changed it in Close" in str(c.params)
        ),
        since=mark,
    )
    assert "Acme Corp" in json.dumps(told.params) and "15,000" in json.dumps(told.params)
    await sb.close.wait_deliveries_idle()
    await settled(sb)

    # Won pressed on the details left in #sales: saved in Close, told in the DM too.
    await press(sb, details, WON_ACTION_ID)
    await sb.slack.wait_for(
        "chat.postMessage",
        lambda c: c.ok and c.response.get("channel") == DM and "marked it" in str(c.params),
        since=mark,
    )
    [won] = [o for o in sb.close.opportunities if o["id"] == opportunity["id"]]
    assert won["status_type"] == "won"
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    # #sales, shared now, got nothing more: its summary and details are left as they were.
    assert sent_to(sb, "C0SALES", mark) == []
    assert "15,000" not in json.dumps(sb.slack.messages("C0SALES"))


# --- EXTERNAL_CHANNELS=allow and off ------------------------------------------------------------


async def test_under_allow_the_deal_is_confirmed_in_the_shared_channel(allow: Sandbox) -> None:
    sb = allow
    view_id = await open_modal(sb, ONE_LINER, channel_id=SHARED)
    mark = sb.slack.mark()
    await submit(sb, view_id, PROPOSAL)
    await wait_opportunities(sb, 1)
    details = await details_in(sb.slack, SHARED, since=mark)
    assert "12,000" in texts([message(sb, SHARED, details.params["thread_ts"])])[0]
    assert sb.slack.ephemerals(SHARED) == []
    assert sb.slack.messages(DM) == []


async def test_under_off_nothing_is_created_from_a_shared_channel(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    async for sb in connect_sandbox("off", url):
        result = await sb.driver.slash_command(ONE_LINER, channel_id=SHARED)
        assert result.response.json()["text"] == NOT_IN_SHARED_CHANNELS
        assert sb.slack.calls("views.open") == []
        assert sb.close.opportunities == [] and sb.slack.messages(DM) == []


# --- Socket Mode ----------------------------------------------------------------------------------


async def test_socket_mode_under_private_the_confirmation_is_in_the_dm(tmp_path: Path) -> None:
    close = CloseSimulator(api_key=CLOSE_API_KEY)
    slack = SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    async with close, slack:
        shared_workspace(slack)
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, "socket"
        )
        try:
            await bot.start()
            await slack.socket_mode.wait_connections(1)
            async with SlackDriver(slack, "", SIGNING_SECRET, socket_mode=True) as driver:
                result = await driver.slash_command(ONE_LINER, channel_id=SHARED)
                view = await driver.wait_for_view(result.trigger_id, timeout=10)
                await slack.wait_for(
                    "views.update", lambda c: c.params.get("view_id") == view["id"], 10
                )
                response = await driver.submit_view(
                    view["id"], values={**REQUIRED_CUSTOM, **PROPOSAL}
                )
                assert response.status_code == 200, response.text
                await wait_until(lambda: len(close.opportunities) == 1, timeout=10)
                details = await slack.wait_for(
                    "chat.postMessage",
                    lambda c: (
                        c.ok
                        and c.response.get("channel") == DM
                        and EDIT_ACTION_ID in json.dumps(c.params.get("blocks"))
                    ),
                    10,
                )
                summary = message_in(slack, DM, details.params["thread_ts"])
                assert "12,000" in json.dumps(summary)
                await wait_until(lambda: slack.ephemerals(SHARED, "U0ALICE"), timeout=10)
                assert slack.messages(SHARED) == []
                assert_no_close_data(slack, SHARED)
        finally:
            bot.stop()


def message_in(slack: SlackSimulator, channel: str, ts: str) -> dict[str, Any]:
    return next(m for m in slack.messages(channel) if m["ts"] == ts)
