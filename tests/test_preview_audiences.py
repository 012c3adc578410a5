"""Link previews by who will read them, and Slack's retries across processes (issue #23
leftovers, issue #25 item 5).

A link still in the message composer has no channel Slack tells (`"channel": "COMPOSER"`):
its preview shows the lead's name only unless EXTERNAL_CHANNELS=allow, and with
ALLOWED_CHANNEL_IDS it is still previewed (name only) for people allowed to use the bot. Under
EXTERNAL_CHANNELS=off a link in a channel shared with another organization gets no preview
and its sharer a private note. A `link_shared` retry reaching another process sharing the
database previews nothing. End to end over HTTP against the Slack and Close simulators.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.blocks.previews import (
    COMPOSER_NAME_ONLY_TEXT,
    NAME_ONLY_TEXT,
    PREVIEW_DECLINED_TEXT,
)
from bot.slack.errors import NotForThisAudience
from bot.store.db import create_engine, session_factory
from bot.store.migrate import upgrade
from bot.unfurl.deliveries import KEEP, PREFIX, Deliveries, receipt_key
from sandbox.slack_driver import PastedLinks
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import BOT_TOKEN, Sandbox, running_sandbox
from tests.flows import wait_until
from tests.test_durability_pg import second_instance
from tests.test_link_previews import ACME, APP, lead_reads, seed, unfurl_calls, unfurled
from tests.test_slack_connect import SHARED, gateway, shared_workspace

GLOBEX = f"{APP}lead/lead_globex/"
CLOSE_DATA = ("Status:", "open opportunit", "Log an opportunity", "Bob Baker")


def sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"


def shown(sb: Sandbox, pasted: PastedLinks, url: str = ACME) -> str:
    return json.dumps(sb.slack.unfurls(pasted.shared)[url])


def name_only(sb: Sandbox, pasted: PastedLinks, note: str) -> bool:
    preview = shown(sb, pasted)
    return (
        "Acme Corp" in preview
        and json.dumps(note)[1:-1] in preview
        and not any(data in preview for data in CLOSE_DATA)
    )


async def previewed_later(sb: Sandbox, **paste: Any) -> None:
    """A later paste previewed: whatever the bot was going to do with earlier ones is done
    (the events are taken in order), without a fixed wait."""
    later = await sb.driver.paste_links([GLOBEX], **paste)
    await unfurled(sb, later)


# --- a link still in the composer ---------------------------------------------------------------


async def test_a_link_in_the_composer_shows_the_leads_name_only_under_private(
    sandbox: Sandbox,
) -> None:
    seed(sandbox, "lead_acme")
    pasted = await sandbox.driver.paste_links([ACME], user_id="U0BOB", source="composer")
    call = await unfurled(sandbox, pasted)
    assert call.ok, call.response
    assert call.params["unfurl_id"] == pasted.shared.unfurl_id
    assert name_only(sandbox, pasted, COMPOSER_NAME_ONLY_TEXT)
    assert sandbox.slack.calls("conversations.info") == []  # no channel to ask about


async def test_a_link_in_the_composer_shows_close_data_under_allow(tmp_path: Path) -> None:
    async with running_sandbox(database_url=sqlite(tmp_path), external_channels="allow") as sb:
        seed(sb, "lead_acme")
        pasted = await sb.driver.paste_links([ACME], user_id="U0BOB", source="composer")
        await unfurled(sb, pasted)
        preview = shown(sb, pasted)
        assert "Status:" in preview and "Bob Baker" in preview and "Log an opportunity" in preview


@pytest.mark.parametrize("policy", ["private", "allow"])
async def test_with_allowed_channels_a_link_in_the_composer_is_previewed_name_only(
    tmp_path: Path, policy: str
) -> None:
    """Issue #25 item 5: Slack does not say where the message will be posted, so the channel
    list cannot decide: an allowed person gets the lead's name only (whatever
    EXTERNAL_CHANNELS), never Close data for a channel the bot may not be used in."""
    async with running_sandbox(
        database_url=sqlite(tmp_path),
        allowed_channel_ids=["C0SALES"],
        allowed_user_ids=["U0ALICE", "U0BOB"],
        external_channels=policy,
    ) as sb:
        seed(sb, "lead_acme")
        pasted = await sb.driver.paste_links([ACME], user_id="U0BOB", source="composer")
        await unfurled(sb, pasted)
        assert name_only(sb, pasted, COMPOSER_NAME_ONLY_TEXT)
        # Someone not allowed to use the bot gets none; a posted link goes by its channel.
        stranger = await sb.driver.paste_links([ACME], user_id="U0CAROL", source="composer")
        elsewhere = await sb.driver.paste_links([ACME], channel_id="C0GENERAL", user_id="U0BOB")
        await previewed_later(sb, channel_id="C0SALES", user_id="U0BOB")
        assert unfurl_calls(sb, stranger) == [] and unfurl_calls(sb, elsewhere) == []


async def test_the_gateway_refuses_close_data_to_a_link_in_the_composer_unless_allow() -> None:
    async with SlackSimulator(BOT_TOKEN) as sim:
        typing = sim.share_links("C0SALES", [ACME], user="U0BOB", source="composer")
        at = {"unfurl_id": typing.unfurl_id, "source": "composer"}
        preview = {ACME: {"blocks": []}}
        for policy in ("private", "off"):
            with pytest.raises(NotForThisAudience):
                await gateway(sim, policy).unfurl(preview, **at)
        assert sim.calls("chat.unfurl") == []
        await gateway(sim, "private").unfurl(preview, **at, close_data=False)
        await gateway(sim, "allow").unfurl(preview, **at)
        assert [c.ok for c in sim.calls("chat.unfurl")] == [True, True]
        assert sim.calls("conversations.info") == []


# --- EXTERNAL_CHANNELS=off ----------------------------------------------------------------------


@pytest.fixture
async def off(tmp_path: Path) -> AsyncIterator[Sandbox]:
    slack = SlackSimulator(bot_token=BOT_TOKEN)
    shared_workspace(slack)
    async with running_sandbox(
        database_url=sqlite(tmp_path), slack=slack, external_channels="off"
    ) as sb:
        yield sb


async def paste_unflagged(sb: Sandbox, channel: str, user: str = "U0BOB") -> PastedLinks:
    """A paste whose event envelope does not say the channel is shared (the bot learns it
    from conversations.info after the ack)."""
    shared = sb.slack.share_links(channel, [ACME], user=user)
    body = sb.driver.event_body(shared.event(bot_is_member=True))
    body.pop("is_ext_shared_channel", None)
    response = await sb.driver.raw(json.dumps(body).encode(), "application/json")
    assert response.status_code == 200
    return PastedLinks(shared, body["event_id"], response)


@pytest.mark.parametrize("envelope_says", [True, False])
async def test_off_declines_a_preview_in_an_external_channel_with_a_private_note(
    off: Sandbox, envelope_says: bool
) -> None:
    seed(off, "lead_acme")
    if envelope_says:  # known before the ack (the envelope's is_ext_shared_channel)
        pasted = await off.driver.paste_links([ACME], channel_id=SHARED, user_id="U0BOB")
    else:  # learned after it, from conversations.info
        pasted = await paste_unflagged(off, SHARED)
    note = await off.slack.wait_for("chat.postEphemeral", lambda c: c.params["user"] == "U0BOB")
    assert note.ok and note.params["channel"] == SHARED
    assert note.params["text"] == PREVIEW_DECLINED_TEXT
    await previewed_later(off, channel_id="C0SALES", user_id="U0BOB")
    assert unfurl_calls(off, pasted) == []
    assert lead_reads(off, "lead_acme") == 0  # Close not even asked
    # The same channel again within the hour: still no preview, no second note.
    again = await off.driver.paste_links([ACME], channel_id=SHARED, user_id="U0BOB")
    await previewed_later(off, channel_id="C0SALES", user_id="U0BOB")
    assert unfurl_calls(off, again) == []
    assert len(off.slack.ephemerals(SHARED, "U0BOB")) == 1


async def test_off_tells_the_sharer_by_dm_when_slack_refuses_the_ephemeral(off: Sandbox) -> None:
    off.slack.fail_method("chat.postEphemeral", "channel_not_found")
    pasted = await off.driver.paste_links([ACME], channel_id=SHARED, user_id="U0BOB")
    await wait_until(
        lambda: any(m.get("text") == PREVIEW_DECLINED_TEXT for m in off.slack.messages("U0BOB"))
    )
    assert unfurl_calls(off, pasted) == []
    assert all(PREVIEW_DECLINED_TEXT not in json.dumps(m) for m in off.slack.messages(SHARED))


async def test_off_still_previews_internal_channels_and_composer_links_by_name(
    off: Sandbox,
) -> None:
    inside = await off.driver.paste_links([ACME], channel_id="C0SALES", user_id="U0BOB")
    typing = await off.driver.paste_links([ACME], user_id="U0BOB", source="composer")
    for pasted in (inside, typing):
        await unfurled(off, pasted)
    assert "Status:" in shown(off, inside)
    assert name_only(off, typing, COMPOSER_NAME_ONLY_TEXT)
    assert off.slack.ephemerals() == []


async def test_a_channel_slack_will_not_describe_gets_the_leads_name_only(
    sandbox: Sandbox,
) -> None:
    sandbox.slack.fail_method("conversations.info", "channel_not_found")
    pasted = await paste_unflagged(sandbox, "C0SALES")
    await unfurled(sandbox, pasted)
    assert sandbox.slack.calls("conversations.info")  # asked, and refused
    assert name_only(sandbox, pasted, NAME_ONLY_TEXT)


# --- Slack's retries across processes -------------------------------------------------------


async def test_a_retry_reaching_another_process_is_not_previewed_again(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two `serve` instances on one database: Slack sends the event to one, then (it did not
    see the ack in time) the same event, twice at once, to the other."""
    caplog.set_level(logging.INFO, logger="bot.listeners.unfurl")
    async with running_sandbox(database_url=database_url) as sb, second_instance(sb) as other:
        sb.close.latency = 0.3
        pasted = await sb.driver.paste_links([ACME], user_id="U0BOB")
        retries = await asyncio.gather(
            *(
                other.driver.link_shared(pasted.shared, event_id=pasted.event_id, retry_num=n)
                for n in (1, 2)
            )
        )
        assert [r.status_code for r in retries] == [200, 200]
        await unfurled(sb, pasted)

        def redelivered() -> int:
            return sum(
                f"link_shared {pasted.event_id} redelivered" in r.getMessage()
                for r in caplog.records
            )

        await wait_until(lambda: redelivered() == 2, timeout=10)
        assert len(unfurl_calls(sb, pasted)) == 1
        assert lead_reads(sb, "lead_acme") == 1
        # Each process still previews the events it is the first to take.
        mine = await other.driver.paste_links([GLOBEX], user_id="U0BOB")
        assert (await unfurled(sb, mine)).ok


# --- the receipts' store ------------------------------------------------------------------------


async def test_a_delivery_is_recorded_once_and_forgotten_after_keep(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        one, two = Deliveries(session_factory(engine)), Deliveries(session_factory(engine))
        now = datetime(2031, 1, 15, 9, tzinfo=UTC)
        taken = await asyncio.gather(*(d.first("Ev0ONCE", now=now) for d in (one, two, one)))
        assert sorted(taken) == [False, False, True]
        long_id = "Ev" + "X" * 80
        assert await one.first(long_id, now=now) and not await two.first(long_id, now=now)
        assert len(receipt_key(long_id)) == 64 and receipt_key(long_id).startswith(PREFIX)
        assert await one.prune(now=now + KEEP - timedelta(seconds=1)) == 0
        assert await one.prune(now=now + KEEP + timedelta(seconds=1)) == 2
        assert await two.first("Ev0ONCE", now=now + KEEP * 2)  # forgotten: a new receipt
    finally:
        await engine.dispose()
