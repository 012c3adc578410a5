"""End to end over real HTTP: /opportunity -> modal -> Close -> threaded confirmation."""

from __future__ import annotations

import json
import time
import urllib.parse

import jsonschema
import pytest

from sandbox.stack import Sandbox
from tests.close_spec import create_opportunity_schema
from tests.flows import open_modal, submit, thread_reply, wait_opportunities

pytestmark = pytest.mark.asyncio


async def test_untouched_modal_creates_what_the_text_said(sandbox: Sandbox) -> None:
    view_id = await open_modal(sandbox, "Acme Corp 12k annual 60% close 2027-01-15")
    mark = sandbox.slack.mark()
    ack = await submit(sandbox, view_id)
    assert ack.get("response_action") == "update"  # "Creating…" while Close answers

    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["lead_id"] == "lead_acme"
    assert opportunity["value"] == 1_200_000  # cents
    assert opportunity["value_period"] == "annual"
    assert opportunity["confidence"] == 60
    assert opportunity["date_won"] == "2027-01-15"
    assert opportunity["user_id"] == "user_alice"
    assert opportunity["status_id"] == "stat_lead"  # the org default, preselected
    assert opportunity["pipeline_id"] == "pipe_sales"
    assert opportunity["_tz_offset"] == "-8"  # Alice is in Los Angeles (sim offset -28800 s)

    [post] = [
        r for r in sandbox.close.requests if r.method == "POST" and r.path.endswith("/opportunity/")
    ]
    jsonschema.validate(post.json, create_opportunity_schema())

    details = await thread_reply(sandbox, since=mark)
    [summary] = [
        m for m in sandbox.slack.messages("C0SALES") if m["ts"] == details.params["thread_ts"]
    ]
    assert "Acme Corp" in summary["text"]
    summary_text = json.dumps(summary["blocks"])
    assert "$12,000 annual" in summary_text and "<@U0ALICE>" in summary_text
    buttons = [
        element
        for block in details.params["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    [open_in_close] = [b for b in buttons if b["text"]["text"] == "Open in Close"]
    assert open_in_close["url"] == f"{sandbox.settings.close_app_url}lead/lead_acme/"


async def test_new_lead_is_created_by_name_never_untitled(sandbox: Sandbox) -> None:
    view_id = await open_modal(sandbox, "Brand New Prospects GmbH 5k one-time")
    view = sandbox.slack.views[view_id]
    lead_block = next(b for b in view["blocks"] if b.get("block_id") == "lead")
    assert lead_block["element"]["initial_option"]["value"] == "new:Brand New Prospects GmbH"
    await submit(sandbox, view_id)
    [opportunity] = await wait_opportunities(sandbox, 1)
    lead = next(lead for lead in sandbox.close.org.leads if lead["id"] == opportunity["lead_id"])
    assert lead["name"] == "Brand New Prospects GmbH"
    assert opportunity["value"] == 500_000 and opportunity["value_period"] == "one_time"


@pytest.mark.parametrize(
    ("values", "block", "words"),
    [
        ({"value": "twelve-ish"}, "value", "not an amount"),
        ({"confidence": "150"}, "confidence", "0 to 100"),
        ({"confidence": "sixty"}, "confidence", "0 to 100"),
        ({"lead": None}, "lead", "Pick a lead"),
        ({"owner": "U0DAVE"}, "owner", "no Close account"),
        ({"owner": "U0POLLY"}, "owner", "Bots cannot own"),
    ],
    ids=[
        "value-not-money",
        "confidence-over-100",
        "confidence-words",
        "no-lead",
        "unmapped-owner",
        "bot-owner",
    ],
)
async def test_bad_field_gets_inline_error_and_nothing_is_created(
    sandbox: Sandbox, values: dict, block: str, words: str
) -> None:
    view_id = await open_modal(sandbox, "Acme Corp 12k")
    ack = await submit(sandbox, view_id, values)
    assert ack["response_action"] == "errors"
    assert words in ack["errors"][block]
    # A deal is stored before its ack, and only a stored one is ever created: none is.
    assert list(await sandbox.services.store.recent()) == []
    assert sandbox.close.opportunities == []


async def test_close_400_lands_on_its_block_in_the_open_modal(sandbox: Sandbox) -> None:
    view_id = await open_modal(sandbox, "Acme Corp 12k status: Demo Scheduled")
    # The status is deleted in Close after the catalog loaded: only Close can tell.
    sandbox.close.org.statuses[:] = [
        s for s in sandbox.close.org.statuses if s["id"] != "stat_demo"
    ]
    mark = sandbox.slack.mark()
    await submit(sandbox, view_id)
    update = await sandbox.slack.wait_for(
        "views.update", lambda c: c.params.get("view_id") == view_id, since=mark
    )
    status_block = next(b for b in update.params["view"]["blocks"] if b.get("block_id") == "status")
    assert "Close says" in status_block["hint"]["text"]
    assert sandbox.close.opportunities == []


async def test_confirmation_falls_back_to_response_url_when_bot_is_not_in_channel(
    sandbox: Sandbox,
) -> None:
    view_id = await open_modal(sandbox, "Initech 3k/mo", channel_id="C0PRIVATE")
    await submit(sandbox, view_id)
    await wait_opportunities(sandbox, 1)
    posted = await sandbox.slack.wait_for("response_url", timeout=5)
    assert "Initech" in json.dumps(posted.params)
    assert sandbox.slack.messages("C0PRIVATE") == []


@pytest.mark.parametrize("how", ["bad-signature", "stale-timestamp", "unsigned"])
async def test_unverified_requests_are_refused_and_create_nothing(
    sandbox: Sandbox, how: str
) -> None:
    trigger = sandbox.slack.issue_trigger("U0ALICE")
    body = urllib.parse.urlencode(
        {
            "command": "/opportunity",
            "text": "Acme 5k",
            "user_id": "U0ALICE",
            "channel_id": "C0SALES",
            "team_id": "T0SANDBOX",
            "trigger_id": trigger,
            "response_url": "http://127.0.0.1:9/x",
        }
    ).encode()
    form = "application/x-www-form-urlencoded"
    if how == "bad-signature":
        response = await sandbox.driver.raw(body, form, signature="v0=" + "0" * 64)
    elif how == "stale-timestamp":
        response = await sandbox.driver.raw(body, form, timestamp=int(time.time()) - 600)
    else:
        response = await sandbox.driver.raw(body, form, sign=False)
    assert response.status_code == 401
    # A signed command sent after it has its modal open: the refused one is long past, and
    # opened nothing.
    later = await sandbox.driver.slash_command("Acme 5k")
    await sandbox.driver.wait_for_view(later.trigger_id)
    opened = [c.params.get("trigger_id") for c in sandbox.slack.calls("views.open")]
    assert opened == [later.trigger_id]


async def test_command_acks_within_3s_while_close_takes_2s(sandbox: Sandbox) -> None:
    sandbox.close.latency = 2.0
    started = time.perf_counter()
    result = await sandbox.driver.slash_command("Acme Corp 12k 60%")
    elapsed = time.perf_counter() - started
    assert result.response.status_code == 200
    assert elapsed < 1.0, f"ack took {elapsed:.2f}s"
    view = await sandbox.driver.wait_for_view(result.trigger_id, timeout=2.5)
    assert view["callback_id"] == "opportunity_modal"
