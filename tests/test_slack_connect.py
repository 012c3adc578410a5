"""Who can read it (Slack Connect): a channel shared with another organization is external,
learned from Slack and cached; Close data stays out of it under EXTERNAL_CHANNELS=private; people
of another organization cannot use the bot; `off` declines there; an external DEALS_CHANNEL is
refused at start and named by doctor."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.messages import WON_ACTION_ID, Message
from bot.listeners.guard import NOT_IN_SHARED_CHANNELS
from bot.listeners.shortcuts import GLOBAL_SHORTCUT, MESSAGE_SHORTCUT
from bot.runtime.doctor import run_doctor
from bot.runtime.preflight import preflight
from bot.slack.audience import Audience, AudienceStore
from bot.slack.errors import Gone, NotForThisAudience
from bot.slack.gateway import SlackGateway
from bot.store.db import create_engine, session_factory
from bot.store.migrate import upgrade
from sandbox.close_sim import CloseSimulator
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import (
    BOT_TOKEN,
    CLOSE_API_KEY,
    SIGNING_SECRET,
    Sandbox,
    running_sandbox,
    sandbox_settings,
)
from tests.flows import open_modal, submit, wait_opportunities, wait_until
from tests.process import APP_TOKEN, Bot
from tests.test_confirmation_actions import log_deal, press

SHARED = "C0ACME"  # #acme-shared: shared with Acme's organization (T0ACME)
PENDING = "C0INVITE"  # a share with T0GLOBEX invited, not yet accepted
ORG_WIDE = "C0ORGWIDE"  # shared across our own Enterprise organization's workspaces
EXTERNAL_USER = "U0EXTERN"  # Ed, of Acme's organization, in #acme-shared
TOLD_STRANGER = "this app is for Sandbox members"
HELLO = Message(text="Acme Corp: $12,000, 60%", blocks=[])


def shared_workspace(slack: SlackSimulator) -> None:
    """#acme-shared (with an external member), a pending share, an org-wide channel."""
    slack.add_channel(SHARED, "acme-shared")
    slack.share_channel(SHARED, "T0ACME")
    slack.add_channel(PENDING, "globex-invite")
    slack.share_channel(PENDING, "T0GLOBEX", pending=True)
    slack.add_channel(ORG_WIDE, "all-sales")
    channel = slack.workspace.channel(ORG_WIDE)
    assert channel is not None
    channel.org_shared = True
    slack.add_external_user(EXTERNAL_USER, team_id="T0ACME", channels=[SHARED, "C0SALES"])


@pytest.fixture
async def sim() -> AsyncIterator[SlackSimulator]:
    async with SlackSimulator(BOT_TOKEN) as running:
        shared_workspace(running)
        yield running


def gateway(sim: SlackSimulator, policy: Any = "private", **kwargs: Any) -> SlackGateway:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=sim.api_url)
    return SlackGateway(client, external_channels=policy, **kwargs)


def infos(sim: SlackSimulator, since: int = 0) -> list[str]:
    return [str(c.params.get("channel")) for c in sim.calls("conversations.info")[since:]]


# --- the audience, from conversations.info --------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "audience"),
    [
        (SHARED, Audience.EXTERNAL),
        (PENDING, Audience.EXTERNAL),  # a pending share counts as shared
        (ORG_WIDE, Audience.INTERNAL),  # is_shared + is_org_shared: our own organization
        ("C0SALES", Audience.INTERNAL),
        ("D0ALICE", Audience.DM),
        ("U0ALICE", Audience.DM),  # a post to a user id lands in their DM
    ],
)
async def test_the_audience_of_a_channel_comes_from_conversations_info(
    sim: SlackSimulator, channel: str, audience: Audience
) -> None:
    slack = gateway(sim)
    assert await slack.audience(channel) is audience
    # DMs are told by their id: no call. Channels: one conversations.info, then memory.
    assert infos(sim) == ([] if audience is Audience.DM else [channel])
    assert await slack.audience(channel) is audience
    assert len(infos(sim)) == (0 if audience is Audience.DM else 1)


async def test_the_simulators_conversations_info_has_slacks_connect_fields(
    sim: SlackSimulator,
) -> None:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=sim.api_url)
    shared = (await client.conversations_info(channel=SHARED))["channel"]
    assert shared["is_shared"] and shared["is_ext_shared"] and not shared["is_org_shared"]
    assert shared["shared_team_ids"] == ["T0SANDBOX", "T0ACME"]
    assert shared["conversation_host_id"] == "T0SANDBOX"
    pending = (await client.conversations_info(channel=PENDING))["channel"]
    assert pending["is_pending_ext_shared"] and not pending["is_ext_shared"]
    assert pending["pending_connected_team_ids"] == ["T0GLOBEX"]
    org = (await client.conversations_info(channel=ORG_WIDE))["channel"]
    assert org["is_shared"] and org["is_org_shared"] and not org["is_ext_shared"]
    sim.scopes -= {"channels:read", "groups:read", "im:read", "mpim:read"}
    with pytest.raises(Exception, match="missing_scope"):
        await client.conversations_info(channel=SHARED)


# --- the gateway enforces EXTERNAL_CHANNELS -------------------------------------------------


async def test_the_gateway_refuses_close_data_to_an_external_channel_under_private(
    sim: SlackSimulator,
) -> None:
    slack = gateway(sim, "private")
    for channel in (SHARED, PENDING):
        with pytest.raises(NotForThisAudience) as refused:
            await slack.post_message(channel, HELLO)
        assert refused.value.channel == channel and refused.value.code == "external_channel"
    assert sim.messages(SHARED) == [] and sim.messages(PENDING) == []
    # What carries no Close data may go there; internal channels and DMs take Close data.
    await slack.post_message(SHARED, Message(text="See your DMs", blocks=[]), close_data=False)
    await slack.post_message("C0SALES", HELLO)
    await slack.post_message("D0ALICE", HELLO)
    assert [m["text"] for m in sim.messages(SHARED)] == ["See your DMs"]
    assert infos(sim) == [SHARED, PENDING, "C0SALES"]  # one call per channel, ever


async def test_the_gateway_posts_close_data_anywhere_under_allow(sim: SlackSimulator) -> None:
    slack = gateway(sim, "allow")
    await slack.post_message(SHARED, HELLO)
    assert [m["text"] for m in sim.messages(SHARED)] == [HELLO.text]


async def test_off_refuses_close_data_there_too(sim: SlackSimulator) -> None:
    with pytest.raises(NotForThisAudience):
        await gateway(sim, "off").post_message(SHARED, HELLO)


async def test_a_channel_slack_will_not_describe_gets_no_close_data(sim: SlackSimulator) -> None:
    sim.scopes -= {"channels:read", "groups:read", "im:read", "mpim:read"}
    slack = gateway(sim, "private")
    with pytest.raises(Exception, match="missing_scope"):
        await slack.post_message(SHARED, HELLO)
    assert sim.messages(SHARED) == []
    place = await slack.confirmation_place(SHARED, "U0ALICE", thread_ts="1.2")
    assert (place.channel, place.moved_from, place.in_dm) == ("U0ALICE", SHARED, True)


@pytest.mark.parametrize(
    ("policy", "channel", "expected"),
    [
        ("private", SHARED, ("U0ALICE", None, SHARED)),
        ("private", "C0SALES", ("C0SALES", "1.2", None)),
        ("allow", SHARED, (SHARED, "1.2", None)),
        ("private", None, ("U0ALICE", None, None)),
    ],
)
async def test_the_confirmation_goes_where_its_readers_may_see_close_data(
    sim: SlackSimulator, policy: str, channel: str | None, expected: tuple[Any, ...]
) -> None:
    place = await gateway(sim, policy).confirmation_place(channel, "U0ALICE", thread_ts="1.2")
    assert (place.channel, place.thread_ts, place.moved_from) == expected


async def test_concurrent_askers_of_one_channel_share_one_call(sim: SlackSimulator) -> None:
    slack = gateway(sim)
    found = await asyncio.gather(*(slack.audience(SHARED) for _ in range(5)))
    assert set(found) == {Audience.EXTERNAL} and infos(sim) == [SHARED]


# --- the stored cache: SQLite and PostgreSQL ------------------------------------------------


async def test_what_one_process_learned_another_reads_from_the_database(
    sim: SlackSimulator, database_url: str
) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        store = AudienceStore(sessions, dialect=engine.dialect.name)
        first, second = gateway(sim, audience_store=store), gateway(sim, audience_store=store)
        assert await first.audience(SHARED) is Audience.EXTERNAL
        assert await first.audience("C0SALES") is Audience.INTERNAL
        assert await second.audience(SHARED) is Audience.EXTERNAL  # from the table
        assert await second.audience("C0SALES") is Audience.INTERNAL
        assert infos(sim) == [SHARED, "C0SALES"]
        # channel_unshared as one process learns it: the other reads it once its memory is
        # past (a fresh process here).
        await first.audiences.learn(SHARED, Audience.INTERNAL, source="channel_unshared")
        third = gateway(sim, audience_store=store)
        assert await third.audience(SHARED) is Audience.INTERNAL
        assert infos(sim) == [SHARED, "C0SALES"]
        # Past the TTL, Slack is asked again.
        stale = gateway(sim, audience_store=store, audience_ttl_seconds=1e-9)
        assert await stale.audience(SHARED) is Audience.EXTERNAL
        assert infos(sim) == [SHARED, "C0SALES", SHARED]
    finally:
        await engine.dispose()


# --- the running app: events flip it ---------------------------------------------------------


@pytest.fixture
async def connect(tmp_path: Path) -> AsyncIterator[Sandbox]:
    slack = SlackSimulator(bot_token=BOT_TOKEN)
    shared_workspace(slack)
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", slack=slack
    ) as sb:
        yield sb


async def handled_alone(connect: Sandbox, event: dict[str, Any]) -> None:
    """Deliver `event` without the envelope's `is_ext_shared_channel`, so only its listener
    (not the guard reading the envelope) can teach the audience."""
    body = connect.driver.event_body(event)
    body.pop("is_ext_shared_channel", None)
    response = await connect.driver.raw(json.dumps(body).encode(), "application/json")
    assert response.status_code == 200


async def test_channel_shared_and_unshared_events_flip_the_audience(connect: Sandbox) -> None:
    slack, audiences = connect.slack, connect.services.slack_gateway.audiences
    assert await connect.services.slack_gateway.audience("C0SALES") is Audience.INTERNAL
    calls = len(infos(slack))
    await handled_alone(connect, slack.share_channel("C0SALES", "T0ACME"))
    await wait_until(lambda: audiences.known("C0SALES") is Audience.EXTERNAL)
    store = AudienceStore(
        session_factory(connect.services.engine), dialect=connect.services.engine.dialect.name
    )

    async def stored_external() -> bool:
        # Written through the store after the process's memory learned it: wait for it.
        stored = await store.get("C0SALES")
        return stored is not None and stored[0] is Audience.EXTERNAL

    await wait_until(stored_external)
    await handled_alone(connect, slack.unshare_channel("C0SALES", "T0ACME"))
    await wait_until(lambda: audiences.known("C0SALES") is Audience.INTERNAL)
    # Unshared from one organization while still shared with another: still external (first
    # believed internal here, so only the listener reading the event can say so).
    slack.share_channel(SHARED, "T0GLOBEX")
    audiences.note(SHARED, Audience.INTERNAL)
    await handled_alone(connect, slack.unshare_channel(SHARED, "T0ACME"))
    await wait_until(lambda: audiences.known(SHARED) is Audience.EXTERNAL)
    assert len(infos(slack)) == calls  # events told it all: no conversations.info


async def test_an_events_envelope_flag_teaches_the_channels_audience_without_a_call(
    connect: Sandbox,
) -> None:
    pasted = await connect.driver.paste_links(["https://example.com/x"], channel_id=SHARED)
    assert pasted.response.status_code == 200
    audiences = connect.services.slack_gateway.audiences
    await wait_until(lambda: audiences.known(SHARED) is Audience.EXTERNAL)
    assert SHARED not in infos(connect.slack)


async def test_under_private_the_command_in_an_external_channel_still_opens_the_modal(
    connect: Sandbox,
) -> None:
    view_id = await open_modal(connect, "Acme Corp 12k", channel_id=SHARED)
    assert connect.slack.views[view_id]["type"] == "modal"
    # Nothing was asked of Slack about the channel: private needs no decision before the ack.
    assert SHARED not in infos(connect.slack)


async def test_under_private_no_close_data_reaches_an_external_channel(connect: Sandbox) -> None:
    """The confirmation goes to the person's DM (tests/test_external_confirmation.py has the
    whole of it): the deal's value stays out of the shared channel."""
    view_id = await open_modal(connect, "Acme Corp 12k 60%", channel_id=SHARED)
    await submit(connect, view_id)
    await wait_opportunities(connect, 1)
    await connect.slack.wait_for(
        "chat.postMessage", lambda c: c.response.get("channel") == "D0ALICE"
    )
    assert SHARED in infos(connect.slack)
    assert all("12,000" not in json.dumps(m) for m in connect.slack.messages(SHARED))


# --- people of another organization ---------------------------------------------------------


async def test_a_person_of_another_organization_is_refused_the_command(connect: Sandbox) -> None:
    for channel in (SHARED, "C0SALES"):
        result = await connect.driver.slash_command(
            "Acme Corp 12k", user_id=EXTERNAL_USER, channel_id=channel
        )
        answer = result.response.json()
        assert answer["response_type"] == "ephemeral" and TOLD_STRANGER in answer["text"]
    assert connect.slack.calls("views.open") == []
    assert connect.close.opportunities == []


async def test_a_person_of_another_organization_is_refused_the_shortcuts(connect: Sandbox) -> None:
    message = connect.slack.add_message(SHARED, "Acme 12k signed", user=EXTERNAL_USER)
    for result in (
        await connect.driver.message_shortcut(
            MESSAGE_SHORTCUT, message=message, channel_id=SHARED, user_id=EXTERNAL_USER
        ),
        await connect.driver.global_shortcut(GLOBAL_SHORTCUT, user_id=EXTERNAL_USER),
    ):
        view = await connect.driver.wait_for_view(result.trigger_id)
        assert TOLD_STRANGER in json.dumps(view["blocks"])
        assert "lead" not in {b.get("block_id") for b in view["blocks"]}  # no form
    assert connect.close.opportunities == []


async def test_a_person_of_another_organization_cannot_press_a_button(connect: Sandbox) -> None:
    opportunity, details = await log_deal(connect)
    mark = connect.slack.mark()
    result = await press(connect, details, WON_ACTION_ID, user_id=EXTERNAL_USER)
    rid = connect.slack.response_url_id(result.response_url)
    told = await connect.slack.wait_for("response_url", lambda c: c.params["id"] == rid, since=mark)
    assert TOLD_STRANGER in json.dumps(told.params["body"])
    assert connect.close.count("PUT", f"/opportunity/{opportunity['id']}/") == 0


async def test_a_link_pasted_by_a_person_of_another_organization_gets_no_preview(
    connect: Sandbox,
) -> None:
    shared = connect.slack.share_links(
        SHARED, ["https://app.close.com/lead/lead_acme/"], user=EXTERNAL_USER
    )
    event = {**shared.event(bot_is_member=True), "user_team": "T0ACME"}
    assert (await connect.driver.event(event)).status_code == 200
    # A colleague's paste after it is previewed: the stranger's, long before, was not.
    mine = await connect.driver.paste_links(["https://app.close.com/lead/lead_globex/"])
    await connect.slack.wait_for(
        "chat.unfurl", lambda c: c.params.get("ts") == mine.shared.message_ts
    )
    assert [c.params.get("ts") for c in connect.slack.calls("chat.unfurl")] == [
        mine.shared.message_ts
    ]


async def test_a_close_link_in_an_external_channel_is_previewed_with_the_leads_name_only(
    connect: Sandbox,
) -> None:
    """The preview is read by everyone in #acme-shared, Acme's people included: the lead's name
    (linked), no status, no opportunities, no owner; the same link in #sales shows them."""
    url = "https://app.close.com/lead/lead_acme/"
    outside = await connect.driver.paste_links([url], channel_id=SHARED)
    inside = await connect.driver.paste_links([url], channel_id="C0SALES")
    for pasted in (outside, inside):
        await connect.slack.wait_for(
            "chat.unfurl", lambda c, ts=pasted.shared.message_ts: c.params.get("ts") == ts
        )
    shown_outside = json.dumps(connect.slack.unfurls(outside.shared))
    shown_inside = json.dumps(connect.slack.unfurls(inside.shared))
    assert "Acme Corp" in shown_outside and "lead_acme" in shown_outside
    assert "Shared with another organization" in shown_outside
    for close_data in ("Status:", "open opportunit", "No open opportunities", "Log an opportunity"):
        assert close_data not in shown_outside
    assert "Status:" in shown_inside and "Log an opportunity" in shown_inside


async def test_the_gateway_refuses_a_preview_with_close_data_in_an_external_channel(
    sim: SlackSimulator,
) -> None:
    slack = gateway(sim)
    with pytest.raises(NotForThisAudience):
        await slack.unfurl({"https://x": {"blocks": []}}, channel=SHARED, ts="1.2")
    assert sim.calls("chat.unfurl") == []
    with pytest.raises(Gone):  # without Close data it is sent (no such message here: Gone)
        await slack.unfurl(
            {"https://x": {"blocks": []}}, channel=SHARED, ts="1.2", close_data=False
        )
    assert len(sim.calls("chat.unfurl")) == 1


# --- EXTERNAL_CHANNELS=off --------------------------------------------------------------------


@pytest.fixture
async def off(tmp_path: Path) -> AsyncIterator[Sandbox]:
    slack = SlackSimulator(bot_token=BOT_TOKEN)
    shared_workspace(slack)
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        slack=slack,
        external_channels="off",
    ) as sb:
        yield sb


async def test_off_declines_the_command_in_an_external_channel_with_a_note(off: Sandbox) -> None:
    for channel in (SHARED, PENDING):
        result = await off.driver.slash_command("Acme Corp 12k", channel_id=channel)
        assert result.response.json() == {
            "response_type": "ephemeral",
            "text": NOT_IN_SHARED_CHANNELS,
        }
    assert off.slack.calls("views.open") == []
    # Known now: the next command there asks Slack nothing.
    calls = len(infos(off.slack))
    await off.driver.slash_command("Acme Corp 12k", channel_id=SHARED)
    assert len(infos(off.slack)) == calls
    # Internal channels work as ever.
    await open_modal(off, "", channel_id="C0SALES")


async def test_off_declines_the_message_shortcut_in_an_external_channel(off: Sandbox) -> None:
    message = off.slack.add_message(SHARED, "Acme 12k signed")
    result = await off.driver.message_shortcut(MESSAGE_SHORTCUT, message=message, channel_id=SHARED)
    view = await off.driver.wait_for_view(result.trigger_id)
    assert NOT_IN_SHARED_CHANNELS in json.dumps(view["blocks"])
    assert off.close.opportunities == []


# --- start-up and doctor -----------------------------------------------------------------------


async def test_an_external_deals_channel_is_refused_at_start_and_named(tmp_path: Path) -> None:
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack,
    ):
        shared_workspace(slack)
        bot = Bot(close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path)
        bot.env["DEALS_CHANNEL"] = SHARED
        try:
            await bot.spawn()
            code = await bot.exit_code(timeout=20)
        finally:
            bot.stop()
        lines = [line for line in bot.stderr().splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1, lines
        assert "DEALS_CHANNEL C0ACME" in lines[0] and "EXTERNAL_CHANNELS=private" in lines[0]
        assert not (tmp_path / "bot.sqlite3").exists()


@pytest.mark.parametrize(
    ("deals", "policy", "refused"),
    [(SHARED, "private", True), (PENDING, "off", True), (SHARED, "allow", False)],
)
async def test_preflight_refuses_an_external_deals_channel_unless_allowed(
    sim: SlackSimulator, deals: str, policy: str, refused: bool
) -> None:
    async with CloseSimulator(api_key=CLOSE_API_KEY) as close:
        settings = sandbox_settings(
            close_url=close.base_url,
            slack_url=sim.api_url,
            database_url="sqlite+aiosqlite://",
            deals_channel=deals,
            external_channels=policy,
        )
        checked = await preflight(settings)
    assert (checked.refusal is not None) is refused
    if refused:
        assert checked.refusal is not None and deals in checked.refusal


async def test_preflight_refuses_an_external_digest_channel_only_when_a_digest_is_scheduled(
    sim: SlackSimulator,
) -> None:
    async with CloseSimulator(api_key=CLOSE_API_KEY) as close:
        checks = []
        for digest_time in ("mon 09:00", ""):
            settings = sandbox_settings(
                close_url=close.base_url,
                slack_url=sim.api_url,
                database_url="sqlite+aiosqlite://",
                deals_channel="C0SALES",
                digest_channel=SHARED,
                digest_time=digest_time,
            )
            checks.append(await preflight(settings))
    scheduled, unscheduled = checks
    assert scheduled.refusal is not None and f"DIGEST_CHANNEL {SHARED}" in scheduled.refusal
    assert unscheduled.refusal is None


async def test_doctor_names_an_external_deals_channel_and_the_missing_scopes(
    sim: SlackSimulator, tmp_path: Path
) -> None:
    async with CloseSimulator(api_key=CLOSE_API_KEY) as close:
        settings = sandbox_settings(
            close_url=close.base_url,
            slack_url=sim.api_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'doctor.sqlite3'}",
            deals_channel=SHARED,
        )
        out = io.StringIO()
        assert await run_doctor(settings, out=out) == 1
        text = out.getvalue()
        assert "✗ DEALS_CHANNEL C0ACME is shared with another organization" in text
        settings = settings.model_copy(update={"deals_channel": "C0SALES"})
        sim.scopes.discard("groups:read")
        out = io.StringIO()
        await run_doctor(settings, out=out)
        assert "✓ DEALS_CHANNEL C0SALES is internal" in out.getvalue()
        assert "Missing Slack scopes: groups:read" in out.getvalue()


# --- Socket Mode ------------------------------------------------------------------------------


async def test_socket_mode_refuses_a_stranger_and_declines_under_off(tmp_path: Path) -> None:
    close = CloseSimulator(api_key=CLOSE_API_KEY)
    slack = SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    async with close, slack:
        shared_workspace(slack)
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, "socket"
        )
        bot.env["EXTERNAL_CHANNELS"] = "off"
        try:
            await bot.start()
            await slack.socket_mode.wait_connections(1)
            async with SlackDriver(slack, "", SIGNING_SECRET, socket_mode=True) as driver:
                stranger = await driver.slash_command(
                    "Acme 12k", user_id=EXTERNAL_USER, channel_id="C0SALES"
                )
                assert TOLD_STRANGER in stranger.response.json()["text"]
                declined = await driver.slash_command("Acme 12k", channel_id=SHARED)
                assert declined.response.json()["text"] == NOT_IN_SHARED_CHANNELS
                assert slack.calls("views.open") == []
                assert close.opportunities == []
                # channel_shared over the socket: C0SALES is declined from then on.
                await driver.event(slack.share_channel("C0SALES", "T0ACME"))
                await wait_until(lambda: _declined(driver, slack, "C0SALES"), timeout=10)
        finally:
            bot.stop()


async def _declined(driver: SlackDriver, slack: SlackSimulator, channel: str) -> bool:
    result = await driver.slash_command("", channel_id=channel)
    body = result.response.json() if result.response.content else {}
    return body.get("text") == NOT_IN_SHARED_CHANNELS
