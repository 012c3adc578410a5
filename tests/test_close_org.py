"""A real Close org over real HTTP: contacts after the lead pick, statuses that change, rate limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.blocks.messages import RETRY_ACTION_ID
from bot.close.client import CloseClient
from sandbox.close_sim import CloseSimulator
from sandbox.slack_sim import Call
from sandbox.stack import CLOSE_API_KEY, Sandbox
from tests.flows import open_modal, submit, wait_opportunities, wait_until

pytestmark = pytest.mark.asyncio

ACME = {"text": "Acme Corp", "value": "lead_acme"}
GLOBEX = {"text": "Globex Corporation", "value": "lead_globex"}


def block_in(view: dict[str, Any], block_id: str) -> dict[str, Any] | None:
    return next((b for b in view["blocks"] if b.get("block_id") == block_id), None)


def options_of(block: dict[str, Any] | None) -> list[str]:
    assert block is not None
    element = block["element"]
    found = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        found += group["options"]
    return [o["value"] for o in found]


def labels_of(block: dict[str, Any] | None) -> list[str]:
    assert block is not None
    return [o["text"]["text"] for g in block["element"]["option_groups"] for o in g["options"]]


async def pick_lead(sb: Sandbox, view_id: str, lead: dict[str, str]) -> Call:
    """Pick a lead in the open modal; returns the bot's views.update of it."""
    mark = sb.slack.mark()
    result = await sb.driver.select_in_view(view_id, "lead", lead)
    assert result.response.status_code == 200
    return await sb.slack.wait_for(
        "views.update", lambda c: c.ok and c.params.get("view_id") == view_id, since=mark
    )


# --- contacts ------------------------------------------------------------------------------


async def test_picking_a_lead_offers_its_contacts_and_keeps_what_was_typed(
    sandbox: Sandbox,
) -> None:
    view_id = await open_modal(sandbox, "")
    assert block_in(sandbox.slack.views[view_id], "contact") is None
    # Typed before the lead was picked: must survive the bot's views.update.
    typed = {
        "value": "12k",
        "note": "met at the expo",
        "custom.cf_competitor": "Initrode",
    }
    for block_id, text in typed.items():
        sandbox.slack.set_state(
            view_id, block_id, block_id, {"type": "plain_text_input", "value": text}
        )
    sandbox.slack.set_state(
        view_id, "date_won", "date_won", {"type": "datepicker", "selected_date": "2027-04-30"}
    )

    update = await pick_lead(sandbox, view_id, ACME)
    sent = update.params["view"]
    assert update.params.get("hash"), "views.update must carry the view's hash"
    assert options_of(block_in(sent, "contact")) == [
        "cont_acme_wile",
        "cont_acme_road",
        "cont_acme_marvin",
    ]
    # The bot rebuilt the form from the typed state, not from the empty original.
    for block_id, text in typed.items():
        block = block_in(sent, block_id)
        assert block is not None and block["element"]["initial_value"] == text, block_id
    assert block_in(sent, "date_won")["element"]["initial_date"] == "2027-04-30"  # type: ignore[index]
    assert block_in(sent, "lead")["element"]["initial_option"]["value"] == "lead_acme"  # type: ignore[index]

    await submit(sandbox, view_id, {"contact": "cont_acme_road"})
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["contact_id"] == "cont_acme_road"
    assert opportunity["lead_id"] == "lead_acme"
    assert opportunity["value"] == 1_200_000
    assert opportunity["note"] == "met at the expo"
    assert opportunity["date_won"] == "2027-04-30"
    assert opportunity["custom.cf_competitor"] == "Initrode"


async def test_another_lead_replaces_the_contacts_and_clears_the_choice(sandbox: Sandbox) -> None:
    view_id = await open_modal(sandbox, "")
    await pick_lead(sandbox, view_id, ACME)
    await sandbox.driver.select_in_view(view_id, "contact", "cont_acme_marvin")
    update = await pick_lead(sandbox, view_id, GLOBEX)
    contact = block_in(update.params["view"], "contact")
    assert options_of(contact) == ["cont_globex_hank"]
    assert contact is not None and "initial_option" not in contact["element"]
    await submit(sandbox, view_id, {"contact": "cont_globex_hank"})
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert (opportunity["lead_id"], opportunity["contact_id"]) == (
        "lead_globex",
        "cont_globex_hank",
    )


async def test_a_new_lead_has_no_contacts_to_offer(sandbox: Sandbox) -> None:
    view_id = await open_modal(sandbox, "")
    mark = sandbox.slack.mark()
    await sandbox.driver.select_in_view(
        view_id, "lead", {"text": "Create new lead: Zeta", "value": "new:Zeta"}
    )
    update = await sandbox.slack.wait_for(
        "views.update", lambda c: c.params.get("view_id") == view_id, since=mark
    )
    assert block_in(update.params["view"], "contact") is None
    assert not [r for r in sandbox.close.requests if r.path == "/contact/"]


async def test_try_again_after_a_failure_keeps_the_chosen_contact(sandbox: Sandbox) -> None:
    view_id = await open_modal(sandbox, "")
    await pick_lead(sandbox, view_id, ACME)
    sandbox.close.fail(1, status=400, paths=["/opportunity/"], methods=["POST"])
    sandbox.slack.fail_method("views.update", "not_found")  # the user closed the modal
    mark = sandbox.slack.mark()
    await submit(sandbox, view_id, {"contact": "cont_acme_road", "value": "7k"})
    failed = await sandbox.slack.wait_for(
        "chat.postMessage", lambda c: c.ok and RETRY_ACTION_ID in str(c.params), since=mark
    )
    mark = sandbox.slack.mark()
    await sandbox.driver.press_button(
        channel_id=failed.response["channel"],
        message_ts=failed.response["ts"],
        action_id=RETRY_ACTION_ID,
    )
    opened = await sandbox.slack.wait_for("views.open", lambda c: c.ok, since=mark)
    retry_view = opened.response["view"]["id"]
    update = await sandbox.slack.wait_for(
        "views.update", lambda c: c.ok and c.params.get("view_id") == retry_view, since=mark
    )
    contact = block_in(update.params["view"], "contact")
    assert contact is not None and contact["element"]["initial_option"]["value"] == "cont_acme_road"
    await submit(sandbox, retry_view)
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert (opportunity["contact_id"], opportunity["value"]) == ("cont_acme_road", 700_000)


# --- statuses that changed in Close ----------------------------------------------------------


async def status_error_update(sb: Sandbox, view_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Submit, and return the view the bot puts back with Close's error."""
    mark = sb.slack.mark()
    await submit(sb, view_id, values)
    update = await sb.slack.wait_for(
        "views.update",
        lambda c: c.ok and c.params.get("view_id") == view_id and "errors" not in c.params,
        since=mark,
    )
    view: dict[str, Any] = update.params["view"]
    return view


async def test_deleted_status_refreshes_the_catalog_and_offers_current_statuses(
    sandbox: Sandbox,
) -> None:
    view_id = await open_modal(sandbox, "Acme Corp 12k status: Demo Scheduled")
    org = sandbox.close.org
    # Since the catalog loaded: one status deleted, one renamed, one added.
    org.statuses[:] = [s for s in org.statuses if s["id"] != "stat_demo"]
    next(s for s in org.statuses if s["id"] == "stat_proposal")["label"] = "Proposal Out"
    org.statuses.insert(
        4,
        {
            "id": "stat_negotiation",
            "label": "Negotiation",
            "type": "active",
            "pipeline_id": "pipe_sales",
            "organization_id": org.id,
        },
    )
    fetches_before = sandbox.close.count("GET", "/status/opportunity/")

    view = await status_error_update(sandbox, view_id, {})
    assert sandbox.close.count("GET", "/status/opportunity/") > fetches_before
    status = block_in(view, "status")
    assert status is not None
    assert "Close says this status no longer exists" in status["hint"]["text"]
    assert "initial_option" not in status["element"]  # the deleted status is not preselected
    labels = labels_of(status)
    assert "Demo Scheduled" not in labels
    assert "Proposal Out" in labels and "Negotiation" in labels
    assert sandbox.services.catalog.status("stat_demo") is None
    # Everything else the user had is still there.
    assert block_in(view, "value")["element"]["initial_value"] == "$12,000"  # type: ignore[index]
    assert block_in(view, "lead")["element"]["initial_option"]["value"] == "lead_acme"  # type: ignore[index]

    await submit(sandbox, view_id, {"status": "stat_negotiation"})
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["status_id"] == "stat_negotiation"
    assert opportunity["pipeline_id"] == "pipe_sales"


async def test_status_moved_to_another_pipeline_is_sent_with_its_new_pipeline(
    sandbox: Sandbox,
) -> None:
    view_id = await open_modal(sandbox, "Acme Corp 12k status: Proposal Sent")
    moved = next(s for s in sandbox.close.org.statuses if s["id"] == "stat_proposal")
    moved["pipeline_id"] = "pipe_renewals"

    view = await status_error_update(sandbox, view_id, {})
    status = block_in(view, "status")
    assert status is not None
    assert "now in the Renewals pipeline" in status["hint"]["text"]
    assert status["element"]["initial_option"]["value"] == "stat_proposal"
    renewals = next(
        g for g in status["element"]["option_groups"] if g["label"]["text"] == "Renewals"
    )
    assert "stat_proposal" in [o["value"] for o in renewals["options"]]

    await submit(sandbox, view_id)  # unchanged: the refreshed catalog knows the new pipeline
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert (opportunity["status_id"], opportunity["pipeline_id"]) == (
        "stat_proposal",
        "pipe_renewals",
    )


async def test_close_400_on_a_new_leads_opportunity_does_not_create_the_lead_twice(
    sandbox: Sandbox,
) -> None:
    view_id = await open_modal(sandbox, "Zeta Systems 5k status: Demo Scheduled")
    sandbox.close.org.statuses[:] = [
        s for s in sandbox.close.org.statuses if s["id"] != "stat_demo"
    ]
    view = await status_error_update(sandbox, view_id, {})
    [zeta] = [lead for lead in sandbox.close.org.leads if lead["name"] == "Zeta Systems"]
    assert block_in(view, "lead")["element"]["initial_option"]["value"] == zeta["id"]  # type: ignore[index]
    await submit(sandbox, view_id, {"status": "stat_lead"})
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["lead_id"] == zeta["id"]
    assert [lead["name"] for lead in sandbox.close.org.leads].count("Zeta Systems") == 1


async def test_close_400_on_the_contact_keeps_the_contacts_and_lands_on_the_contact_block(
    sandbox: Sandbox,
) -> None:
    view_id = await open_modal(sandbox, "")
    await pick_lead(sandbox, view_id, ACME)
    # The contact is deleted in Close while the form is open.
    sandbox.close.org.contacts[:] = [
        c for c in sandbox.close.org.contacts if c["id"] != "cont_acme_road"
    ]
    view = await status_error_update(sandbox, view_id, {"contact": "cont_acme_road"})
    contact = block_in(view, "contact")
    assert contact is not None and "Close says" in contact["hint"]["text"]
    assert options_of(contact) == ["cont_acme_wile", "cont_acme_marvin"]
    assert sandbox.close.opportunities == []


# --- a burst against a rate-limited Close ------------------------------------------------------


async def test_a_burst_against_a_rate_limited_close_creates_each_once_and_never_shows_a_429(
    sandbox: Sandbox,
) -> None:
    burst = 12
    views = [await open_modal(sandbox, "", user_id="U0ALICE") for _ in range(burst)]
    sandbox.close.reset_requests()
    # Close's budget: 3 calls per endpoint group per 0.4 s, announced in `RateLimit`.
    sandbox.close.enforce_rate_limit = (3, 0.4)
    mark = sandbox.slack.mark()
    started = time.perf_counter()
    acks = await asyncio.gather(
        *(
            submit(sandbox, view_id, {"lead": ACME, "value": f"{n + 1}k", "note": f"deal {n}"})
            for n, view_id in enumerate(views)
        )
    )
    assert all(ack.get("response_action") == "update" for ack in acks)
    opportunities = await wait_opportunities(sandbox, burst, timeout=20)
    elapsed = time.perf_counter() - started

    await wait_until(lambda: len(_created_views(sandbox, mark)) == burst, timeout=10)
    assert sorted(o["note"] for o in opportunities) == sorted(f"deal {n}" for n in range(burst))
    posts = [r for r in sandbox.close.requests if r.method == "POST" and r.path == "/opportunity/"]
    rejected = [r for r in posts if r.status == 429]
    assert len(posts) - len(rejected) == burst  # each created exactly once
    deadline = time.monotonic() + 5
    while True:  # the store marks each created right after its confirmation is out
        states = {s.state for s in await sandbox.services.store.recent(limit=burst * 2)}
        if states == {"created"} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert states == {"created"}
    # Nobody saw a 429: no failed or queued message, no "queued" view.
    texts = " ".join(
        str(c.params.get("text", "")) + str(c.params.get("view", ""))
        for c in sandbox.slack.calls()[mark:]
    ).lower()
    assert "queued" not in texts and "429" not in texts and "rate limit" not in texts

    def details() -> list[Call]:
        return [
            c
            for c in sandbox.slack.calls()[mark:]
            if c.method == "chat.postMessage" and c.ok and c.params.get("thread_ts")
        ]

    await wait_until(lambda: len(details()) >= burst, timeout=5)
    assert len(details()) == burst  # every confirmation posted in its thread, once
    print(
        f"\n{burst} submissions, Close budget 3/0.4 s: {len(rejected)} POSTs got 429, "
        f"all created in {elapsed:.2f}s"
    )


def _created_views(sb: Sandbox, since: int) -> list[Call]:
    return [
        c
        for c in sb.slack.calls()[since:]
        if c.method == "views.update" and c.ok and "Created the opportunity" in str(c.params)
    ]


# --- the client's own pacing -----------------------------------------------------------------


@pytest.fixture
async def bare_sim() -> AsyncIterator[CloseSimulator]:
    sim = CloseSimulator(api_key=CLOSE_API_KEY)
    await sim.start()
    yield sim
    await sim.stop()


async def test_concurrent_calls_are_paced_from_the_ratelimit_header_not_by_429s(
    bare_sim: CloseSimulator,
) -> None:
    bare_sim.enforce_rate_limit = (10, 0.25)
    async with CloseClient(CLOSE_API_KEY, bare_sim.base_url) as close:
        started = time.perf_counter()
        leads = await asyncio.gather(*(close.get_lead("lead_acme") for _ in range(30)))
        elapsed = time.perf_counter() - started
    assert {lead.id for lead in leads} == {"lead_acme"}
    statuses = [r.status for r in bare_sim.requests]
    assert statuses.count(200) == 30
    assert statuses.count(429) <= 1, statuses  # one may slip in at a window's edge
    assert 0.45 <= elapsed < 1.5  # three windows of 10: two waits of ~0.25 s


async def test_without_a_ratelimit_header_calls_are_not_held_back(
    bare_sim: CloseSimulator,
) -> None:
    bare_sim.latency = 0.2
    async with CloseClient(CLOSE_API_KEY, bare_sim.base_url) as close:
        started = time.perf_counter()
        await asyncio.gather(*(close.get_lead("lead_acme") for _ in range(10)))
        elapsed = time.perf_counter() - started
    # The first call learns there is no budget to respect; the other nine then go together.
    assert elapsed < 0.7, f"{elapsed:.2f}s"
