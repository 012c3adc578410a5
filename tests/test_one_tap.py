"""A complete one-liner logs the right opportunity with one tap on Create (issue 9)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sandbox.stack import Sandbox, running_sandbox
from tests.flows import open_modal, submit, wait_opportunities

pytestmark = pytest.mark.asyncio


def block(sb: Sandbox, view_id: str, block_id: str) -> dict:
    return next(b for b in sb.slack.views[view_id]["blocks"] if b.get("block_id") == block_id)


ONE_LINERS = [
    (
        "Acme Corp 12k annual 60% close 2027-01-15",
        {
            "lead_id": "lead_acme",
            "value": 1_200_000,
            "value_period": "annual",
            "confidence": 60,
            "date_won": "2027-01-15",
            "status_id": "stat_lead",
        },
    ),
    (
        "acme corp $12,500 ARR 75% closing 2027-02-01",
        {
            "lead_id": "lead_acme",
            "value": 1_250_000,
            "value_period": "annual",
            "confidence": 75,
            "date_won": "2027-02-01",
        },
    ),
    (
        "Soylent 8k/mo 70% close 2027-02-01 status: Proposal Sent",
        {
            "lead_id": "lead_soylent",
            "value": 800_000,
            "value_period": "monthly",
            "confidence": 70,
            "status_id": "stat_proposal",
            "pipeline_id": "pipe_sales",
        },
    ),
    (
        "Umbrella Limited 40k one-time 90% by 2027-03-31",
        {
            "lead_id": "lead_umbrella",
            "value": 4_000_000,
            "value_period": "one_time",
            "confidence": 90,
            "date_won": "2027-03-31",
        },
    ),
    (
        "Globex Corporation 25k annual 50% close 2027-01-20 status: renewal due",
        {
            "lead_id": "lead_globex",
            "value": 2_500_000,
            "status_id": "stat_renewal_due",
            "pipeline_id": "pipe_renewals",
        },
    ),
    (
        "Hooli 30k annual 40% close 2027-01-20 note: met at the conference",
        {
            "value": 3_000_000,
            "confidence": 40,
            "note": "met at the conference",
            "new_lead": "Hooli",
        },
    ),
]


@pytest.mark.parametrize(("text", "expected"), ONE_LINERS, ids=[t for t, _ in ONE_LINERS])
async def test_complete_one_liner_creates_exactly_what_it_said(
    sandbox: Sandbox, text: str, expected: dict
) -> None:
    view_id = await open_modal(sandbox, text)
    await submit(sandbox, view_id)  # only the org's required custom field is touched
    [opportunity] = await wait_opportunities(sandbox, 1)
    new_lead = expected.pop("new_lead", None)
    for field, value in expected.items():
        assert opportunity[field] == value, field
    assert opportunity["user_id"] == "user_alice"
    if new_lead:
        lead = next(
            lead for lead in sandbox.close.org.leads if lead["id"] == opportunity["lead_id"]
        )
        assert lead["name"] == new_lead
        assert len(sandbox.close.org.leads) == 9  # one new lead, no duplicate


async def test_understood_summary_is_shown_at_the_top(sandbox: Sandbox) -> None:
    view_id = await open_modal(sandbox, "Acme Corp 12k annual 60% close 2027-01-15")
    first = sandbox.slack.views[view_id]["blocks"][0]
    assert first["type"] == "context"
    assert first["elements"][0]["text"] == (
        "Acme Corp · $12,000 annual · 60% · closes Fri 15 Jan 2027 · Lead"
    )


async def test_close_candidates_are_named_in_the_lead_hint(sandbox: Sandbox) -> None:
    sandbox.close.org.leads.append(
        {
            **sandbox.close.org.leads[0],
            "id": "lead_acme2",
            "name": "Acme Corp.",
            "display_name": "Acme Corp.",
        }
    )
    view_id = await open_modal(sandbox, "Acme Corp 5k")
    lead = block(sandbox, view_id, "lead")
    assert lead["element"]["initial_option"]["value"] == "lead_acme"
    assert "Acme Corp." in lead["hint"]["text"]


async def test_late_lead_lookup_does_not_overwrite_what_the_user_changed(sandbox: Sandbox) -> None:
    sandbox.close.path_latency["/data/search/"] = 0.6
    mark = sandbox.slack.mark()
    result = await sandbox.driver.slash_command("Acme Corp 12k annual 60%")
    view = await sandbox.driver.wait_for_view(result.trigger_id)
    view_id = view["id"]
    # The user retypes the value before the lookup comes back.
    sandbox.slack.set_state(view_id, "value", "value", {"type": "plain_text_input", "value": "15k"})
    await sandbox.slack.wait_for(
        "views.update", lambda c: c.params.get("view_id") == view_id, since=mark
    )
    assert block(sandbox, view_id, "lead")["element"]["initial_option"]["value"] == "lead_acme"
    await submit(sandbox, view_id)
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["value"] == 1_500_000
    assert opportunity["lead_id"] == "lead_acme"


async def test_lead_picked_by_the_user_is_not_replaced_by_the_lookup(sandbox: Sandbox) -> None:
    sandbox.close.path_latency["/data/search/"] = 0.6
    mark = sandbox.slack.mark()
    result = await sandbox.driver.slash_command("Acme Corp 12k")
    view_id = (await sandbox.driver.wait_for_view(result.trigger_id))["id"]
    await sandbox.driver.select_in_view(
        view_id,
        "lead",
        {"text": {"type": "plain_text", "text": "Initech"}, "value": "lead_initech"},
    )
    # The lookup answers meanwhile; its stale-hash update is refused.
    await sandbox.slack.wait_for(
        "views.update",
        lambda c: c.params.get("view_id") == view_id and c.response.get("error") == "hash_conflict",
        since=mark,
    )
    await submit(sandbox, view_id)
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["lead_id"] == "lead_initech"


async def test_modal_opens_within_trigger_life_when_close_search_is_slow(sandbox: Sandbox) -> None:
    sandbox.close.path_latency["/data/search/"] = 5.0
    started = time.perf_counter()
    result = await sandbox.driver.slash_command("Acme Corp 12k annual 60%")
    view = await sandbox.driver.wait_for_view(result.trigger_id, timeout=2.5)
    assert time.perf_counter() - started < 1.0
    assert "Looking up" in block(sandbox, view["id"], "lead")["hint"]["text"]


async def test_last_used_status_and_period_are_preselected(sandbox: Sandbox) -> None:
    view_id = await open_modal(sandbox, "Initech 2k/mo status: Proposal Sent")
    await submit(sandbox, view_id)
    await wait_opportunities(sandbox, 1)
    view_id = await open_modal(sandbox, "Stark Industries 9k")
    assert (
        block(sandbox, view_id, "status")["element"]["initial_option"]["value"] == "stat_proposal"
    )
    assert (
        block(sandbox, view_id, "value_period")["element"]["initial_option"]["value"] == "monthly"
    )
    assert "initial_date" not in block(sandbox, view_id, "date_won")["element"]  # never guessed


async def test_default_pipeline_setting_picks_its_first_status(tmp_path: Path) -> None:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.sqlite3'}", default_pipeline="Renewals"
    ) as sb:
        view_id = await open_modal(sb, "Wayne Enterprises 50k")
        assert (
            block(sb, view_id, "status")["element"]["initial_option"]["value"] == "stat_renewal_due"
        )
