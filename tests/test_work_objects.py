"""Deal cards as Work Objects (issue #24 part 2, WORK_OBJECTS=on): a Close lead link unfurls as
a Slack `item` card (chat.unfurl `metadata`), and opening it shows the person's own view of
the lead from Close in the flexpane (`entity_details_requested` → `entity.presentDetails`).

End to end over real HTTP (and once over Socket Mode): the Slack driver posts links and opens
cards, the real bot answers through the Slack and Close simulators.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.previews import NOT_FOUND_TEXT
from bot.listeners.entity_edit import NOT_LOGGED_HERE
from bot.slack.errors import NotForThisAudience
from sandbox.close_sim import CloseSimulator
from sandbox.slack_driver import OpenedCard, PastedLinks, SlackDriver
from sandbox.slack_sim import Call, SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET, Sandbox, running_sandbox
from tests.oauth_flows import connect_link, consent
from tests.process import APP_TOKEN, Bot
from tests.test_link_previews import ACME, APP, lead_reads, seed, texts, unfurled
from tests.test_slack_connect import SHARED, gateway, shared_workspace

GLOBEX = f"{APP}lead/lead_globex/"
ACME_TAB = f"{APP}lead/lead_acme/contact/cont_acme_road/?tab=activity"
NOPE = f"{APP}lead/lead_nope123/"
# What a card may carry only where Close data may be shown.
CLOSE_DATA = ("Potential", "open_opportunities", "Open opportunities", "12,000", "Proposal")


@asynccontextmanager
async def on(tmp_path: Path, **settings: Any) -> AsyncIterator[Sandbox]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    async with running_sandbox(database_url=url, work_objects="on", **settings) as sb:
        yield sb


def entities(call: Call) -> list[dict[str, Any]]:
    metadata = call.params.get("metadata")
    return list((metadata or {}).get("entities") or [])


def field_values(entity: dict[str, Any]) -> dict[str, Any]:
    fields = entity["entity_payload"].get("custom_fields") or []
    return {f["key"]: f.get("value") for f in fields}


async def pane(sb: Sandbox, opened: OpenedCard) -> dict[str, Any]:
    """The bot's entity.presentDetails for the flexpane `opened`."""
    call = await sb.slack.wait_for(
        "entity.presentDetails", lambda c: c.params.get("trigger_id") == opened.trigger_id, 5.0
    )
    assert call.ok, call.response
    answer = sb.slack.work_objects.flexpanes[opened.trigger_id].answer
    assert answer is not None
    return answer


async def cards(sb: Sandbox, urls: list[str], **paste: Any) -> PastedLinks:
    pasted = await sb.driver.paste_links(urls, **paste)
    assert pasted.response.status_code == 200
    await unfurled(sb, pasted)
    return pasted


# --- WORK_OBJECTS=off: today's previews -----------------------------------------------------------


async def test_off_previews_stay_block_kit(sandbox: Sandbox) -> None:
    assert sandbox.settings.work_objects == "off"
    seed(sandbox, "lead_acme")
    pasted = await sandbox.driver.paste_links([ACME], user_id="U0BOB")
    call = await unfurled(sandbox, pasted)
    assert call.ok and "metadata" not in call.params
    assert "Status: *Potential*" in texts(sandbox.slack.unfurls(pasted.shared)[ACME])
    assert sandbox.slack.entities(pasted.shared) == {}


# --- WORK_OBJECTS=on: the card ---------------------------------------------------------------------


async def test_a_lead_link_in_an_internal_channel_is_a_card_with_its_status_and_open_count(
    tmp_path: Path,
) -> None:
    async with on(tmp_path) as sb:
        seed(sb, "lead_acme")
        seed(sb, "lead_acme", value=500_000, date_won="2031-03-01")
        seed(sb, "lead_acme", status_id="stat_won", value=9_900)  # closed: not counted
        pasted = await cards(sb, [ACME, ACME_TAB, NOPE], user_id="U0BOB")
        [call] = [c for c in sb.slack.calls("chat.unfurl") if c.ok]
        # One item per link of a lead Close has, under the URL exactly as it was shared.
        assert [e["app_unfurl_url"] for e in entities(call)] == [ACME, ACME_TAB]
        for entity in entities(call):
            assert entity["entity_type"] == "slack#/entities/item"
            assert entity["url"] == ACME  # the lead's page
            assert entity["external_ref"] == {"id": "lead_acme", "type": "lead"}
            attributes = entity["entity_payload"]["attributes"]
            assert attributes["title"] == {"text": "Acme Corp"}
            assert attributes["display_type"] == "Close lead"
            assert field_values(entity) == {"status": "Potential", "open_opportunities": 2}
        # A lead Close does not have keeps the neutral Block Kit preview, in the same call.
        assert list(call.params["unfurls"]) == [NOPE]
        assert NOT_FOUND_TEXT in texts(sb.slack.unfurls(pasted.shared)[NOPE])
        assert set(sb.slack.entities(pasted.shared)) == {ACME, ACME_TAB}
        assert lead_reads(sb, "lead_acme") == 1  # one read for both links


@pytest.mark.parametrize("where", ["shared channel", "composer"])
async def test_an_external_channel_or_the_composer_gets_the_title_only(
    tmp_path: Path, where: str
) -> None:
    async with on(tmp_path) as sb:
        shared_workspace(sb.slack)
        seed(sb, "lead_acme")
        if where == "composer":
            pasted = await cards(sb, [ACME], user_id="U0BOB", source="composer")
        else:
            pasted = await cards(sb, [ACME], user_id="U0BOB", channel_id=SHARED)
        [call] = [c for c in sb.slack.calls("chat.unfurl") if c.ok]
        [entity] = entities(call)
        assert entity["app_unfurl_url"] == ACME and entity["external_ref"]["id"] == "lead_acme"
        assert entity["entity_payload"] == {
            "attributes": {
                "title": {"text": "Acme Corp"},
                "display_type": "Close lead",
                "product_name": "Close",
            }
        }
        sent = json.dumps(call.params)
        assert not [data for data in CLOSE_DATA if data in sent]
        assert "unfurls" not in call.params
        assert sb.slack.entities(pasted.shared)[ACME] == entity


async def test_off_in_a_shared_channel_declines_the_card_too(tmp_path: Path) -> None:
    async with on(tmp_path, external_channels="off") as sb:
        shared_workspace(sb.slack)
        pasted = await sb.driver.paste_links([ACME], user_id="U0BOB", channel_id=SHARED)
        await sb.slack.wait_for("chat.postEphemeral", lambda c: c.params["user"] == "U0BOB")
        later = await cards(sb, [GLOBEX], user_id="U0BOB")  # taken after the first
        assert sb.slack.entities(later.shared)
        assert sb.slack.entities(pasted.shared) == {}
        assert lead_reads(sb, "lead_acme") == 0


async def test_the_gateway_sends_cards_with_close_data_only_where_it_may_be_read() -> None:
    """The card's audience rule is the blocks' (SlackGateway.unfurl, `close_data`)."""
    async with SlackSimulator(BOT_TOKEN) as sim:
        shared_workspace(sim)
        card = {
            "app_unfurl_url": ACME,
            "url": ACME,
            "entity_type": "slack#/entities/item",
            "external_ref": {"id": "lead_acme", "type": "lead"},
            "entity_payload": {"attributes": {"title": {"text": "Acme Corp"}}},
        }
        typing = sim.share_links("C0SALES", [ACME], user="U0BOB", source="composer")
        outside = sim.share_links(SHARED, [ACME], user="U0BOB")
        places = [
            {"unfurl_id": typing.unfurl_id, "source": "composer"},
            {"channel": SHARED, "ts": outside.message_ts},
        ]
        for at in places:
            with pytest.raises(NotForThisAudience):
                await gateway(sim, "private").unfurl(metadata={"entities": [card]}, **at)
        assert sim.calls("chat.unfurl") == []
        for at in places:
            await gateway(sim, "private").unfurl(
                metadata={"entities": [card]}, **at, close_data=False
            )
        assert [c.ok for c in sim.calls("chat.unfurl")] == [True, True]
        assert sim.entities(typing)[ACME] == card == sim.entities(outside)[ACME]


# --- the flexpane ----------------------------------------------------------------------------------


@asynccontextmanager
async def personal(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with on(tmp_path, oauth=True, close_access="personal") as sb:
        # Bob's Close role sees only his own leads: Globex, not Acme (Carol's).
        sb.close.restrict("user_bob")
        sb.close.own_lead("lead_globex", "user_bob")
        sb.close.own_lead("lead_acme", "user_carol")
        for slack_user, close_user in (("U0ALICE", "user_alice"), ("U0BOB", "user_bob")):
            walk = await consent(sb.close, await connect_link(sb, slack_user), user=close_user)
            assert walk.page.status_code == 200, walk.page.text
        yield sb


async def test_the_flexpane_shows_a_restricted_rep_only_what_close_lets_them_see(
    tmp_path: Path,
) -> None:
    async with personal(tmp_path) as sb:
        sb.close.create_opportunity_as(
            "lead_acme",
            {"value": 1_234_500, "value_period": "annual", "custom.cf_source": "Inbound"},
            user_id="user_carol",
        )
        sb.close.create_opportunity_as(
            "lead_globex",
            {
                "value": 1_200_000,
                "value_period": "annual",
                "status_id": "stat_proposal",
                "confidence": 60,
                "date_won": "2031-01-15",
                "custom.cf_source": "Inbound",
            },
            user_id="user_bob",
        )
        # Alice (who sees every lead) shares both; the cards are everyone's.
        pasted = await cards(sb, [ACME, GLOBEX], user_id="U0ALICE")
        assert set(sb.slack.entities(pasted.shared)) == {ACME, GLOBEX}

        # Bob opens Acme's card: Close will not show him Acme, so neither does the pane.
        acme = await pane(sb, await sb.driver.open_card(pasted.shared, ACME, user_id="U0BOB"))
        assert acme == {"error": {"status": "not_found"}}
        # Bob opens Globex's: his own view of it, read as him.
        globex = await pane(sb, await sb.driver.open_card(pasted.shared, GLOBEX, user_id="U0BOB"))
        entity = globex["metadata"]
        assert "entities" not in entity and "app_unfurl_url" not in entity
        assert entity["external_ref"] == {"id": "lead_globex", "type": "lead"}
        assert entity["url"] == GLOBEX
        assert entity["entity_payload"]["attributes"]["title"]["text"] == "Globex Corporation"
        values = field_values(entity)
        assert values["status"] == "Potential"
        assert [i["value"] for i in values["opportunities"]] == [
            "$12,000 annual · Proposal Sent · Bob Baker · closes Wed 15 Jan 2031 · 60%"
        ]
        assert [i["value"] for i in values["contacts"]] == ["Hank Scorpio (CEO)"]
        reads = [r for r in sb.close.requests if r.path == "/lead/lead_globex/"]
        assert reads[-1].headers["authorization"].startswith("Bearer ")
        # Nothing of Acme (Carol's) in anything Bob was shown.
        bob_saw = json.dumps([acme, globex])
        assert "Acme" not in bob_saw and "12,345" not in bob_saw and "Carol" not in bob_saw


async def test_under_personal_someone_not_connected_is_asked_to_connect_in_the_pane(
    tmp_path: Path,
) -> None:
    async with personal(tmp_path) as sb:
        pasted = await cards(sb, [GLOBEX], user_id="U0ALICE")
        before = len(sb.close.requests)
        answer = await pane(sb, await sb.driver.open_card(pasted.shared, GLOBEX, user_id="U0CAROL"))
        assert answer["user_auth_required"] is True
        url = answer["user_auth_url"]
        assert url.startswith(f"{sb.settings.public_url}close/oauth/start")
        assert set(answer) == {"user_auth_required", "user_auth_url"}  # no data of the lead
        assert sb.close.requests[before:] == []  # nothing asked of Close for Carol
        # The link is hers: following it connects Carol, and her next look shows the lead.
        walk = await consent(sb.close, url, user="user_carol")
        assert walk.page.status_code == 200, walk.page.text
        again = await pane(sb, await sb.driver.open_card(pasted.shared, GLOBEX, user_id="U0CAROL"))
        assert again["metadata"]["entity_payload"]["attributes"]["title"]["text"] == (
            "Globex Corporation"
        )


@pytest.mark.parametrize("who", ["U0DAVE", "U0GUEST"])
async def test_under_the_key_someone_who_is_not_a_close_user_gets_restricted(
    tmp_path: Path, who: str
) -> None:
    async with on(tmp_path) as sb:
        seed(sb, "lead_acme")
        pasted = await cards(sb, [ACME], user_id="U0ALICE")
        reads = lead_reads(sb, "lead_acme")
        answer = await pane(sb, await sb.driver.open_card(pasted.shared, ACME, user_id=who))
        assert answer == {"error": {"status": "restricted"}}
        assert lead_reads(sb, "lead_acme") == reads  # Close not asked on their behalf
        # A Close user opening the same card sees the lead (the key's view).
        bob = await pane(sb, await sb.driver.open_card(pasted.shared, ACME, user_id="U0BOB"))
        assert field_values(bob["metadata"])["status"] == "Potential"


async def test_someone_the_bot_is_not_for_gets_restricted_not_a_pane_left_loading(
    tmp_path: Path,
) -> None:
    async with on(tmp_path, allowed_user_ids=["U0ALICE", "U0BOB"]) as sb:
        shared_workspace(sb.slack)  # Ed (U0EXTERN) is of Acme's organization, in #sales too
        pasted = await cards(sb, [GLOBEX], user_id="U0ALICE")
        reads = lead_reads(sb)
        for who in ("U0CAROL", "U0EXTERN"):
            opened = await sb.driver.open_card(pasted.shared, GLOBEX, user_id=who)
            assert await pane(sb, opened) == {"error": {"status": "restricted"}}
        assert lead_reads(sb) == reads


async def test_the_event_is_acked_at_once_and_close_read_after(tmp_path: Path) -> None:
    async with on(tmp_path) as sb:
        pasted = await cards(sb, [GLOBEX], user_id="U0ALICE")
        sb.close.path_latency["/lead/lead_globex/"] = 1.0
        started = time.monotonic()
        opened = await sb.driver.open_card(pasted.shared, GLOBEX, user_id="U0BOB")
        acked_in = time.monotonic() - started
        assert opened.response.status_code == 200 and acked_in < 0.5, acked_in
        answer = await pane(sb, opened)
        assert time.monotonic() - started >= 1.0  # Close's answer came after the ack
        assert field_values(answer["metadata"])["status"] == "Potential"


async def test_a_card_of_a_lead_deleted_since_says_not_found(tmp_path: Path) -> None:
    async with on(tmp_path) as sb:
        pasted = await cards(sb, [GLOBEX], user_id="U0ALICE")
        sb.close.org.leads = [lead for lead in sb.close.org.leads if lead["id"] != "lead_globex"]
        answer = await pane(sb, await sb.driver.open_card(pasted.shared, GLOBEX, user_id="U0BOB"))
        assert answer == {"error": {"status": "not_found"}}


async def test_close_failing_answers_the_pane_with_an_error_in_time(tmp_path: Path) -> None:
    async with on(tmp_path) as sb:
        pasted = await cards(sb, [GLOBEX], user_id="U0ALICE")
        sb.close.fail(100, status=500, paths=["/lead/lead_globex/"], methods=["GET"])
        answer = await pane(sb, await sb.driver.open_card(pasted.shared, GLOBEX, user_id="U0BOB"))
        assert answer["error"]["status"] in ("internal_error", "timeout")


# --- Socket Mode -----------------------------------------------------------------------------------


async def test_socket_mode_unfurls_a_card_and_answers_its_flexpane(tmp_path: Path) -> None:
    close = CloseSimulator(api_key=CLOSE_API_KEY)
    slack = SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    async with close, slack:
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, "socket"
        )
        bot.env["WORK_OBJECTS"] = "on"
        try:
            await bot.start()
            await slack.socket_mode.wait_connections(1)
            async with SlackDriver(slack, "", SIGNING_SECRET, socket_mode=True) as driver:
                shared = slack.share_links("C0SALES", [ACME], user="U0BOB")
                await driver.link_shared(shared)
                call = await slack.wait_for("chat.unfurl", timeout=10)
                assert call.ok and [e["app_unfurl_url"] for e in entities(call)] == [ACME]
                opened = await driver.open_card(shared, ACME, user_id="U0BOB")
                await slack.wait_for(
                    "entity.presentDetails",
                    lambda c: c.params.get("trigger_id") == opened.trigger_id,
                    timeout=10,
                )
                answer = slack.work_objects.flexpanes[opened.trigger_id].answer
                assert answer is not None
                entity = answer["metadata"]
                assert entity["entity_payload"]["attributes"]["title"]["text"] == "Acme Corp"
                assert [c["value"] for c in field_values(entity)["contacts"]] == [
                    "Wile E. Coyote (Head of Procurement)",
                    "Road Runner (CTO)",
                    "Marvin Martian (CFO)",
                ]
                # A flexpane's save (a view without a callback_id) reaches its listener too.
                card = {**entity, "external_ref": {"id": "oppo_x", "type": "opportunity"}}
                values = {"confidence": {"type": "number_input", "value": "140"}}
                saved = await driver.save_entity_edit(card, values, user_id="U0BOB")
                assert saved.response.json() == {
                    "response_action": "errors",
                    "errors": {"confidence": NOT_LOGGED_HERE},
                }
        finally:
            bot.stop()


# --- the Slack simulator's side --------------------------------------------------------------------


async def test_the_simulators_work_objects_answer_with_slacks_errors() -> None:
    async with SlackSimulator(bot_token=BOT_TOKEN) as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        shared = slack.share_links("C0SALES", [ACME], user="U0BOB")
        card = {
            "app_unfurl_url": ACME,
            "url": ACME,
            "entity_type": "slack#/entities/item",
            "external_ref": {"id": "lead_acme"},
            "entity_payload": {"attributes": {"title": {"text": "Acme Corp"}}},
        }

        async def error(method: str, **kwargs: Any) -> str:
            with pytest.raises(SlackApiError) as raised:
                await client.api_call(method, json=kwargs)
            return str(raised.value.response["error"])

        where = {"channel": "C0SALES", "ts": shared.message_ts}
        assert await error("chat.unfurl", **where) == "missing_unfurls"
        untitled = {**card, "entity_payload": {"attributes": {}}}
        assert await error("chat.unfurl", **where, metadata={"entities": [untitled]}) == (
            "invalid_metadata"
        )
        elsewhere = {**card, "app_unfurl_url": GLOBEX}
        assert await error("chat.unfurl", **where, metadata={"entities": [elsewhere]}) == (
            "cannot_unfurl_url"
        )
        await client.chat_unfurl(**where, metadata={"entities": [card]})
        assert slack.entities(shared) == {ACME: card}

        opened = slack.work_objects.open("U0BOB", card)
        assert await error("entity.presentDetails", trigger_id="nope") == "invalid_trigger_id"
        other = {**card, "external_ref": {"id": "lead_globex"}}
        assert await error(
            "entity.presentDetails", trigger_id=opened.trigger_id, metadata=other
        ) == ("entity_metadata_does_not_match_trigger")
        assert await error(
            "entity.presentDetails", trigger_id=opened.trigger_id, error={"status": "oops"}
        ) == ("invalid_arguments")
        await client.entity_presentDetails(
            trigger_id=opened.trigger_id, error={"status": "restricted"}
        )
        assert opened.answer == {"error": {"status": "restricted"}}
        assert await error(
            "entity.presentDetails", trigger_id=opened.trigger_id, error={"status": "restricted"}
        ) == ("exchanged_trigger_id")
