"""A logged opportunity as a Work Object, edited in its flexpane (issue #24): the confirmation's
summary carries it as a card (WORK_OBJECTS=on), opening it shows the opportunity as the person
reads it in Close — its fields editable for who may edit the deal — and the `entity_detail`
save over real HTTP: the modal's rules as field errors, the PUT as the person, the change told
in the deal's thread like any Edit, the pane showing it saved; someone who may not edit the
deal is told so.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.blocks.messages import Message
from bot.blocks.opportunity_entity import opportunity_entity, summary_card
from bot.close.models import Opportunity, Status
from bot.listeners.entity_edit import NOT_LOGGED_HERE, NOT_YOURS
from bot.slack.errors import NotForThisAudience
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import BOT_TOKEN, Sandbox
from tests.flows import open_modal, submit, thread_reply, wait_opportunities, wait_until
from tests.oauth_flows import connect_link, consent
from tests.test_confirmation_actions import log_deal, message, puts
from tests.test_durability import fast_sandbox, queued_notices, wait_summaries
from tests.test_external_confirmation import (
    DM,
    assert_no_close_data,
    connect_sandbox,
    log_in_shared,
)
from tests.test_slack_connect import SHARED, gateway, shared_workspace
from tests.test_work_objects import field_values, on, pane

APP = "https://app.close.com/"


def entity_of(sb: Sandbox, opportunity: dict[str, Any], *, editable: bool = True) -> dict[str, Any]:
    [(_, statuses)] = [
        (g, s) for g, s in sb.services.catalog.statuses_by_pipeline() if g.id == "pipe_sales"
    ]
    return opportunity_entity(
        Opportunity.model_validate(opportunity),
        statuses,
        close_app_url=APP,
        editable=editable,
    )


def edits(
    status: str | None = None,
    value: str | None = None,
    confidence: str | None = None,
    date_won: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Each edited field's element state, as Block Kit holds it."""
    found: dict[str, dict[str, Any]] = {}
    if status is not None:
        found["status"] = {"type": "static_select", "selected_option": {"value": status}}
    if value is not None:
        found["value"] = {"type": "plain_text_input", "value": value}
    if confidence is not None:
        found["confidence"] = {"type": "number_input", "value": confidence}
    if date_won is not None:
        found["date_won"] = {"type": "datepicker", "selected_date": date_won}
    return found


def test_the_entity_offers_its_four_fields_for_editing_only_to_who_may_edit() -> None:
    opportunity = Opportunity(
        id="oppo_1",
        lead_id="lead_acme",
        lead_name="Acme Corp",
        value=1_200_000,
        value_period="annual",
        status_id="stat_proposal",
        status_label="Proposal Sent",
        confidence=60,
        date_won=date(2031, 1, 15),
        user_name="Bob Baker",
    )
    statuses = [
        Status(id="stat_proposal", label="Proposal Sent"),
        Status(id="stat_won", label="Won"),
    ]
    shown = opportunity_entity(opportunity, statuses, close_app_url=APP, editable=True)
    assert shown["external_ref"] == {"id": "oppo_1", "type": "opportunity"}
    assert shown["url"] == f"{APP}lead/lead_acme/"
    attributes = shown["entity_payload"]["attributes"]
    assert attributes["title"] == {"text": "Acme Corp — $12,000 annual"}
    fields = {f["key"]: f for f in shown["entity_payload"]["custom_fields"]}
    assert fields["status"]["edit"]["select"] == {
        "current_value": "stat_proposal",
        "static_options": [
            {"text": {"type": "plain_text", "text": "Proposal Sent"}, "value": "stat_proposal"},
            {"text": {"type": "plain_text", "text": "Won"}, "value": "stat_won"},
        ],
    }
    assert fields["value"]["value"] == "$12,000 annual" and fields["value"]["edit"]["enabled"]
    assert fields["confidence"]["edit"]["number"] == {"min_value": 0, "max_value": 100}
    assert fields["date_won"] == {
        "key": "date_won",
        "label": "Expected close",
        "type": "slack#/types/date",
        "value": "2031-01-15",
        "edit": {"enabled": True, "optional": True},
    }
    assert "edit" not in fields["owner"]
    read_only = opportunity_entity(opportunity, statuses, close_app_url=APP, editable=False)
    assert "edit" not in json.dumps(read_only)


async def test_a_save_in_the_pane_goes_to_close_is_told_in_the_thread_and_shown_saved(
    sandbox: Sandbox,
) -> None:
    opportunity, details = await log_deal(sandbox, "Acme Corp 12k annual")
    summary_ts = details.params["thread_ts"]
    mark = sandbox.slack.mark()
    saved = await sandbox.driver.save_entity_edit(
        entity_of(sandbox, opportunity),
        edits(status="stat_proposal", value="15k", confidence="80", date_won="2031-02-03"),
        user_id="U0ALICE",
        channel_id="C0SALES",
        message_ts=summary_ts,
    )
    assert saved.response.status_code == 200 and not saved.response.content.strip()
    await wait_until(lambda: bool(puts(sandbox)))
    [put] = puts(sandbox)
    assert put.path.endswith(f"/opportunity/{opportunity['id']}/")
    assert put.json == {
        "status_id": "stat_proposal",
        "pipeline_id": "pipe_sales",
        "value": 1_500_000,
        "confidence": 80,
        "date_won": "2031-02-03",
    }
    line = await thread_reply(sandbox, since=mark)
    assert line.params["thread_ts"] == summary_ts
    told = json.dumps(line.params["blocks"])
    assert "<@U0ALICE> edited it" in told and "$15,000 annual" in told
    assert "$15,000" in json.dumps(message(sandbox, "C0SALES", summary_ts)["blocks"])
    answer = await pane(sandbox, saved)
    entity = answer["metadata"]
    assert entity["external_ref"] == {"id": opportunity["id"], "type": "opportunity"}
    assert entity["entity_payload"]["attributes"]["title"]["text"] == ("Acme Corp — $15,000 annual")
    values = field_values(entity)
    assert values["status"] == "Proposal Sent" and values["confidence"] == 80
    assert values["date_won"] == "2031-02-03"


async def test_bad_values_come_back_under_their_fields_and_nothing_is_saved(
    sandbox: Sandbox,
) -> None:
    opportunity, _details = await log_deal(sandbox)
    saved = await sandbox.driver.save_entity_edit(
        entity_of(sandbox, opportunity),
        edits(status="stat_nope", value="lots", confidence="150", date_won="someday"),
    )
    ack = saved.response.json()
    assert ack["response_action"] == "errors"
    assert set(ack["errors"]) == {"status", "value", "confidence", "date_won"}
    assert "is not an amount" in ack["errors"]["value"]
    assert "0 to 100" in ack["errors"]["confidence"]
    assert puts(sandbox) == []
    assert sandbox.slack.calls("entity.presentDetails") == []


async def test_someone_who_may_not_edit_the_deal_is_told_in_the_pane(sandbox: Sandbox) -> None:
    opportunity, _details = await log_deal(sandbox)
    saved = await sandbox.driver.save_entity_edit(
        entity_of(sandbox, opportunity), edits(confidence="90"), user_id="U0BOB"
    )
    assert saved.response.status_code == 200
    answer = await pane(sandbox, saved)
    assert answer == {"error": {"status": "edit_error", "custom_message": NOT_YOURS}}
    assert puts(sandbox) == []


async def test_an_opportunity_not_logged_from_slack_is_not_edited_here(sandbox: Sandbox) -> None:
    made = sandbox.close.create_opportunity_as(
        "lead_acme", {"value": 500_000, "custom.cf_source": "Inbound"}
    )
    saved = await sandbox.driver.save_entity_edit(entity_of(sandbox, made), edits(confidence="90"))
    assert saved.response.json() == {
        "response_action": "errors",
        "errors": {"confidence": NOT_LOGGED_HERE},
    }
    assert puts(sandbox) == []


# --- on the confirmation: the summary's card, its flexpane, a save in it -----------------------


@asynccontextmanager
async def connected(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """WORK_OBJECTS=on under CLOSE_ACCESS=personal, Alice and Bob connected to Close."""
    async with on(tmp_path, oauth=True, close_access="personal") as sb:
        for slack_user, close_user in (("U0ALICE", "user_alice"), ("U0BOB", "user_bob")):
            walk = await consent(sb.close, await connect_link(sb, slack_user), user=close_user)
            assert walk.page.status_code == 200, walk.page.text
        yield sb


def card_of(sb: Sandbox, channel: str, ts: str) -> dict[str, Any]:
    """The one Work Object card on the message `ts` (its `metadata.entities`)."""
    [entity] = message(sb, channel, ts)["metadata"]["entities"]
    return dict(entity)


def in_close(sb: Sandbox, opportunity_id: str) -> dict[str, Any]:
    return dict(next(o for o in sb.close.opportunities if o["id"] == opportunity_id))


def editable(entity: dict[str, Any]) -> set[str]:
    return {f["key"] for f in entity["entity_payload"]["custom_fields"] if "edit" in f}


async def test_the_summary_carries_the_opportunity_as_a_card(tmp_path: Path) -> None:
    async with on(tmp_path) as sb:
        opportunity, details = await log_deal(sb, "Acme Corp 12k annual 60%")
        summary_ts = details.params["thread_ts"]
        card = card_of(sb, "C0SALES", summary_ts)
        assert card["entity_type"] == "slack#/entities/item"
        assert card["external_ref"] == {"id": opportunity["id"], "type": "opportunity"}
        assert card["url"] == f"{APP}lead/{opportunity['lead_id']}/"
        assert card["entity_payload"]["attributes"]["title"] == {
            "text": "Acme Corp — $12,000 annual"
        }
        assert field_values(card)["confidence"] == 60
        assert editable(card) == set()  # the card is everyone's: editing is in the pane
        # The details in its thread carry none.
        assert "metadata" not in message(sb, "C0SALES", details.response["ts"])


async def test_a_queued_notice_that_becomes_the_summary_gets_the_card(tmp_path: Path) -> None:
    async with fast_sandbox(tmp_path, work_objects="on") as sb:
        view_id = await open_modal(sb, "Acme Corp 12k annual")
        sb.close.fail(2, 500, paths=["/opportunity/"], methods=["POST"])
        await submit(sb, view_id)
        [opportunity] = await wait_opportunities(sb, 1, timeout=10)
        [summary] = await wait_summaries(sb.slack, 1)
        [queued] = queued_notices(sb.slack)
        assert summary["ts"] == queued.response["ts"]  # updated in place
        assert "metadata" not in queued.params or queued.params["metadata"] is None
        card = card_of(sb, "C0SALES", summary["ts"])
        assert card["external_ref"] == {"id": opportunity["id"], "type": "opportunity"}


async def test_off_the_summary_carries_no_card(sandbox: Sandbox) -> None:
    assert sandbox.settings.work_objects == "off"
    _opportunity, details = await log_deal(sandbox)
    summary_ts = details.params["thread_ts"]
    assert "metadata" not in message(sandbox, "C0SALES", summary_ts)
    posted = [
        c for c in sandbox.slack.calls("chat.postMessage") if c.response.get("ts") == summary_ts
    ]
    assert [c.params.get("metadata") for c in posted] == [None]


async def test_the_card_opens_editable_for_its_creator_and_saves_as_them(tmp_path: Path) -> None:
    async with connected(tmp_path) as sb:
        opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
        summary_ts = details.params["thread_ts"]
        reads = len(sb.close.requests)
        opened = await sb.driver.open_message_card("C0SALES", summary_ts, user_id="U0ALICE")
        assert opened.response.status_code == 200
        entity = (await pane(sb, opened))["metadata"]
        assert entity["external_ref"] == {"id": opportunity["id"], "type": "opportunity"}
        assert editable(entity) == {"status", "value", "confidence", "date_won"}
        [read] = [r for r in sb.close.requests[reads:] if r.method == "GET"]
        assert read.path == f"/opportunity/{opportunity['id']}/"
        assert read.headers["authorization"].startswith("Bearer ")  # as Alice, not the key

        mark = sb.slack.mark()
        saved = await sb.driver.save_entity_edit(
            entity,
            edits(value="15000", confidence="70"),
            user_id="U0ALICE",
            channel_id="C0SALES",
            message_ts=summary_ts,
        )
        assert saved.response.status_code == 200 and not saved.response.content.strip()
        await wait_until(lambda: bool(puts(sb)))
        [put] = puts(sb)
        assert put.json == {"value": 1_500_000, "confidence": 70}
        assert put.headers["authorization"].startswith("Bearer ")
        assert in_close(sb, opportunity["id"])["value"] == 1_500_000
        line = await thread_reply(sb, since=mark)
        assert line.params["thread_ts"] == summary_ts
        assert "<@U0ALICE> edited it" in json.dumps(line.params["blocks"])
        refreshed = (await pane(sb, saved))["metadata"]
        assert field_values(refreshed)["confidence"] == 70
        assert refreshed["entity_payload"]["attributes"]["title"]["text"] == (
            "Acme Corp — $15,000 annual"
        )
        # The summary's card shows it too.
        card = card_of(sb, "C0SALES", summary_ts)
        assert card["entity_payload"]["attributes"]["title"]["text"] == (
            "Acme Corp — $15,000 annual"
        )


async def test_a_bad_confidence_is_a_field_error_and_nothing_changes(tmp_path: Path) -> None:
    async with connected(tmp_path) as sb:
        opportunity, details = await log_deal(sb, "Acme Corp 12k annual 60%")
        summary_ts = details.params["thread_ts"]
        opened = await sb.driver.open_message_card("C0SALES", summary_ts, user_id="U0ALICE")
        entity = (await pane(sb, opened))["metadata"]
        saved = await sb.driver.save_entity_edit(
            entity, edits(confidence="140"), channel_id="C0SALES", message_ts=summary_ts
        )
        ack = saved.response.json()
        assert ack["response_action"] == "errors"
        assert set(ack["errors"]) == {"confidence"} and "0 to 100" in ack["errors"]["confidence"]
        assert puts(sb) == []
        assert in_close(sb, opportunity["id"])["confidence"] == 60


async def test_someone_who_may_not_edit_sees_it_read_only_and_is_refused(tmp_path: Path) -> None:
    async with connected(tmp_path) as sb:
        opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
        summary_ts = details.params["thread_ts"]
        opened = await sb.driver.open_message_card("C0SALES", summary_ts, user_id="U0BOB")
        entity = (await pane(sb, opened))["metadata"]
        assert entity["external_ref"]["id"] == opportunity["id"]
        assert editable(entity) == set()
        # Editing anyway (a pane opened before, say): refused in the pane, nothing saved.
        saved = await sb.driver.save_entity_edit(
            entity_of(sb, opportunity), edits(confidence="90"), user_id="U0BOB"
        )
        assert saved.response.status_code == 200
        answer = await pane(sb, saved)
        assert answer == {"error": {"status": "edit_error", "custom_message": NOT_YOURS}}
        assert puts(sb) == []


async def test_under_personal_someone_not_connected_is_asked_to_connect_first(
    tmp_path: Path,
) -> None:
    async with connected(tmp_path) as sb:
        _opportunity, details = await log_deal(sb)
        before = len(sb.close.requests)
        opened = await sb.driver.open_message_card(
            "C0SALES", details.params["thread_ts"], user_id="U0CAROL"
        )
        answer = await pane(sb, opened)
        assert set(answer) == {"user_auth_required", "user_auth_url"}
        assert sb.close.requests[before:] == []


async def test_under_the_key_someone_who_is_not_a_close_user_is_restricted(
    tmp_path: Path,
) -> None:
    async with on(tmp_path) as sb:
        _opportunity, details = await log_deal(sb)
        opened = await sb.driver.open_message_card(
            "C0SALES", details.params["thread_ts"], user_id="U0DAVE"
        )
        assert await pane(sb, opened) == {"error": {"status": "restricted"}}


async def test_in_a_shared_channel_the_card_goes_with_the_confirmation_to_the_dm(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    async for sb in connect_sandbox("private", url, work_objects="on"):
        opportunity, details = await log_in_shared(sb)
        card = card_of(sb, DM, details.params["thread_ts"])
        assert card["external_ref"] == {"id": opportunity["id"], "type": "opportunity"}
        assert_no_close_data(sb.slack, SHARED)
        assert all("metadata" not in m for m in sb.slack.messages(SHARED))


async def test_the_gateway_posts_a_card_only_where_close_data_may_be_read() -> None:
    """A message's card is everyone's in the conversation: always Close data, whatever the
    caller says of the blocks (SlackGateway.post_message / update_message `metadata`)."""
    card = summary_card(
        Opportunity(id="oppo_1", lead_id="lead_acme", lead_name="Acme Corp", value=1_200_000),
        close_app_url=APP,
    )
    line = Message(text="Logged", blocks=[])
    async with SlackSimulator(BOT_TOKEN) as sim:
        shared_workspace(sim)
        slack = gateway(sim, "private")
        with pytest.raises(NotForThisAudience):
            await slack.post_message(SHARED, line, close_data=False, metadata=card)
        posted = await slack.post_message(SHARED, line, close_data=False)
        with pytest.raises(NotForThisAudience):
            await slack.update_message(SHARED, posted.ts, line, close_data=False, metadata=card)
        assert all("metadata" not in m for m in sim.messages(SHARED))
        inside = await slack.post_message("C0SALES", line, metadata=card)
        [shown] = [m for m in sim.messages("C0SALES") if m["ts"] == inside.ts]
        assert shown["metadata"] == card
        # Metadata Slack cannot read is dropped (the message stays), with a warning.
        await slack.update_message("C0SALES", inside.ts, line, metadata={"entities": [{}]})
        [update] = sim.calls("chat.update")[-1:]
        assert update.response["warning"] == "invalid_metadata_format"
        [shown] = [m for m in sim.messages("C0SALES") if m["ts"] == inside.ts]
        assert shown["metadata"] == card
