"""Opportunity custom fields end to end: modal element by type -> create body -> Close (issue 4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.blocks.modal import ModalMetadata, build_opportunity_modal
from bot.close.models import CustomField, User
from bot.deals.custom_text import read_custom_fields
from bot.deals.prefill import form_from_draft
from bot.parsing import parse
from sandbox import blockkit
from sandbox.close_sim import CloseSimulator, Org, default_org, every_field_type_org
from sandbox.stack import CLOSE_API_KEY, Sandbox, running_sandbox
from tests.flows import open_modal, submit, wait_opportunities
from tests.test_spine import create_opportunity_schema

ACME = {"text": "Acme Corp", "value": "lead_acme"}


@pytest.fixture
async def rich(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """The sandbox with an org holding every custom field type (see every_field_type_org)."""
    async with org_sandbox(tmp_path, every_field_type_org()) as sb:
        yield sb


def org_sandbox(tmp_path: Path, org: Org) -> Any:
    return running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        close=CloseSimulator(api_key=CLOSE_API_KEY, org=org),
    )


def blocks_of(sb: Sandbox, view_id: str) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in sb.slack.views[view_id]["blocks"] if "block_id" in b}


def opportunity_posts(sb: Sandbox) -> list[Any]:
    return [r.json for r in sb.close.requests if r.method == "POST" and r.path == "/opportunity/"]


async def pick_lead(sb: Sandbox, view_id: str, lead: dict[str, str] = ACME) -> dict[str, Any]:
    """Pick a lead in the open modal; returns the view once the bot has updated it."""
    mark = sb.slack.mark()
    result = await sb.driver.select_in_view(view_id, "lead", lead)
    assert result.response.status_code == 200
    await sb.slack.wait_for(
        "views.update", lambda c: c.ok and c.params.get("view_id") == view_id, since=mark
    )
    return sb.slack.views[view_id]


async def test_each_field_type_gets_its_element(rich: Sandbox) -> None:
    view_id = await open_modal(rich, "")
    blocks = blocks_of(rich, view_id)
    kinds = {
        block_id: block["element"]["type"]
        for block_id, block in blocks.items()
        if block_id.startswith("custom.")
    }
    assert kinds == {
        "custom.cf_source": "static_select",
        "custom.cf_products": "multi_static_select",
        "custom.cf_competitor": "plain_text_input",
        "custom.cf_seats": "plain_text_input",
        "custom.cf_contract_start": "datepicker",
        "custom.cf_sales_engineer": "static_select",
        "custom.cf_kickoff": "datetimepicker",
        "custom.cf_website": "plain_text_input",  # type "url": unknown to the bot -> text
        "custom.cf_industry": "external_select",  # 150 choices: past Slack's 100
        "custom.cf_regions": "multi_external_select",  # 120 choices, multi-value
    }
    # Hidden fields are never shown; a contact field waits for a lead with contacts.
    assert "custom.cf_internal_ref" not in blocks
    assert "custom.cf_champion" not in blocks
    assert blocks["custom.cf_source"]["optional"] is False
    assert blocks["custom.cf_products"]["optional"] is True
    assert "Where the deal came from" in blocks["custom.cf_source"]["hint"]["text"]
    engineers = [o["value"] for o in blocks["custom.cf_sales_engineer"]["element"]["options"]]
    assert "user_bob" in engineers
    assert blockkit.problems(rich.slack.views[view_id], surface="modal") == []


async def test_every_field_type_round_trips_into_the_create_body(rich: Sandbox) -> None:
    view_id = await open_modal(rich, "")
    view = await pick_lead(rich, view_id)
    champion = next(b for b in view["blocks"] if b.get("block_id") == "custom.cf_champion")
    assert [o["value"] for o in champion["element"]["options"]] == [
        "cont_acme_wile",
        "cont_acme_road",
        "cont_acme_marvin",
    ]
    kickoff = int(datetime(2027, 2, 3, 16, 30, tzinfo=UTC).timestamp())
    ack = await submit(
        rich,
        view_id,
        {
            "value": "12k",
            "contact": "cont_acme_wile",
            "custom.cf_source": "Referral",
            "custom.cf_products": ["Core", "Analytics"],
            "custom.cf_competitor": "Initrode",
            "custom.cf_seats": "1,250",
            "custom.cf_contract_start": "2027-03-01",
            "custom.cf_sales_engineer": "user_bob",
            "custom.cf_kickoff": kickoff,
            "custom.cf_champion": "cont_acme_road",
            "custom.cf_website": "https://acme.example",
            "custom.cf_industry": {"text": "Industry 042", "value": "Industry 042"},
            "custom.cf_regions": [
                {"text": "Region 007", "value": "Region 007"},
                {"text": "Region 101", "value": "Region 101"},
            ],
        },
    )
    assert ack.get("response_action") == "update", ack
    [opportunity] = await wait_opportunities(rich, 1)
    [body] = opportunity_posts(rich)
    assert {k: v for k, v in body.items() if k.startswith("custom.")} == {
        "custom.cf_source": "Referral",
        "custom.cf_products": ["Core", "Analytics"],
        "custom.cf_competitor": "Initrode",
        "custom.cf_seats": 1250,
        "custom.cf_contract_start": "2027-03-01",
        "custom.cf_sales_engineer": "user_bob",
        "custom.cf_kickoff": "2027-02-03T16:30:00+00:00",
        "custom.cf_champion": "cont_acme_road",
        "custom.cf_website": "https://acme.example",
        "custom.cf_industry": "Industry 042",
        "custom.cf_regions": ["Region 007", "Region 101"],
    }
    assert "custom.cf_internal_ref" not in body
    assert body["contact_id"] == "cont_acme_wile" and body["lead_id"] == "lead_acme"
    jsonschema.validate(body, create_opportunity_schema())
    # Close took every value as it is (the simulator validates each type like Close).
    assert opportunity["custom.cf_products"] == ["Core", "Analytics"]
    assert opportunity["contact_id"] == "cont_acme_wile"


async def test_one_choice_of_a_long_multi_value_field_is_still_a_list(rich: Sandbox) -> None:
    view_id = await open_modal(rich, "")
    await submit(
        rich,
        view_id,
        {
            "lead": ACME,
            "custom.cf_regions": [{"text": "Region 003", "value": "Region 003"}],
            "custom.cf_products": ["Support"],
        },
    )
    [opportunity] = await wait_opportunities(rich, 1)
    assert opportunity["custom.cf_regions"] == ["Region 003"]
    assert opportunity["custom.cf_products"] == ["Support"]


@pytest.mark.parametrize(
    ("values", "block", "words"),
    [
        ({"custom.cf_seats": "lots"}, "custom.cf_seats", "not a number"),
        ({"custom.cf_seats": "Infinity"}, "custom.cf_seats", "not a number"),
        ({"custom.cf_seats": "NaN"}, "custom.cf_seats", "not a number"),
        ({"custom.cf_source": None}, "custom.cf_source", "Source is required"),
    ],
    ids=["number-words", "number-infinity", "number-nan", "required-missing"],
)
async def test_bad_custom_value_gets_an_inline_error_and_nothing_is_created(
    sandbox: Sandbox, values: dict[str, Any], block: str, words: str
) -> None:
    view_id = await open_modal(sandbox, "")
    ack = await submit(sandbox, view_id, {"lead": ACME, **values})
    assert ack["response_action"] == "errors"
    assert words in ack["errors"][block]
    # A deal is stored before its ack, and only a stored one is ever created: none is.
    assert list(await sandbox.services.store.recent()) == []
    assert sandbox.close.opportunities == []


async def test_long_choice_list_is_searched_through_the_options_endpoint(rich: Sandbox) -> None:
    view_id = await open_modal(rich, "")
    everything = await rich.driver.block_suggestion(view_id, "custom.cf_industry", "")
    assert everything.status_code == 200
    assert len(everything.json()["options"]) == 100  # Slack's cap, of 150 choices
    narrowed = await rich.driver.block_suggestion(view_id, "custom.cf_industry", "04")
    values = [o["value"] for o in narrowed.json()["options"]]
    assert values == [f"Industry {n:03d}" for n in (4, *range(40, 50), 104)]
    multi = await rich.driver.block_suggestion(view_id, "custom.cf_regions", "region 11")
    assert [o["value"] for o in multi.json()["options"]] == [
        f"Region {n:03d}" for n in range(110, 120)
    ]


async def test_an_org_with_too_many_fields_shows_only_required_ones_with_a_note(
    tmp_path: Path,
) -> None:
    org = default_org()
    for n in range(120):
        org.add_custom_field(f"cf_extra{n:03d}", f"Extra {n}", "text")
    org.add_custom_field("cf_region", "Region", "choices", ["EMEA", "AMER"], required=True)
    async with org_sandbox(tmp_path, org) as sb:
        view_id = await open_modal(sb, "")
        view = sb.slack.views[view_id]
        assert blockkit.problems(view, surface="modal") == []
        assert len(view["blocks"]) <= 100
        custom = [
            b["block_id"] for b in view["blocks"] if b.get("block_id", "").startswith("custom.")
        ]
        assert custom == ["custom.cf_source", "custom.cf_region"]
        assert "optional custom fields are not shown" in str(view["blocks"])
        await submit(sb, view_id, {"lead": ACME, "custom.cf_region": "EMEA"})
        [opportunity] = await wait_opportunities(sb, 1)
        assert opportunity["custom.cf_region"] == "EMEA"
        assert opportunity["custom.cf_source"] == "Inbound"


# --- `Field Name: value` in the text ---------------------------------------------------------

RICH_ORG = every_field_type_org()
FIELDS = [CustomField.model_validate(f) for f in RICH_ORG.custom_fields]
USERS = [User.model_validate(u) for u in RICH_ORG.users]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "left", "custom", "warned"),
    [
        (
            "Acme 12k Source: Referral Seats: 25",
            "Acme 12k",
            {"cf_source": "Referral", "cf_seats": 25},
            "",
        ),
        ("Acme 12k source: REFERRAL", "Acme 12k", {"cf_source": "Referral"}, ""),
        ("Acme 12k Source: Referal", "Acme 12k", {"cf_source": "Referral"}, ""),  # rapidfuzz
        (
            "Acme 12k ARR products: Core, Analytics and Support 60%",
            "Acme 12k ARR 60%",
            {"cf_products": ["Core", "Analytics", "Support"]},
            "",
        ),
        ("Acme Seats: 1,250 12k", "Acme 12k", {"cf_seats": 1250}, ""),
        ("Acme Seats: 2.5", "Acme", {"cf_seats": 2.5}, ""),
        (
            "Acme Contract start: 2027-03-01 12k",
            "Acme 12k",
            {"cf_contract_start": "2027-03-01"},
            "",
        ),
        (
            "Acme Kickoff call: 2027-02-03 16:30",
            "Acme",
            {"cf_kickoff": "2027-02-03T16:30:00-08:00"},  # in the user's zone
            "",
        ),
        ("Acme Sales engineer: Bob 12k", "Acme 12k", {"cf_sales_engineer": "user_bob"}, ""),
        ("Acme sales engineer: carol chen", "Acme", {"cf_sales_engineer": "user_carol"}, ""),
        ("Acme Competitor: Initrode 12k 60%", "Acme 12k 60%", {"cf_competitor": "Initrode"}, ""),
        (
            'Acme Competitor: "Initrode, Inc." 5k',
            "Acme 5k",
            {"cf_competitor": "Initrode, Inc."},
            "",
        ),
        (
            "Acme Competitor: Initrode Contract start: 2027-03-01",
            "Acme",
            {"cf_competitor": "Initrode", "cf_contract_start": "2027-03-01"},
            "",
        ),
        ("Acme Website: https://acme.example", "Acme", {"cf_website": "https://acme.example"}, ""),
        ("Acme Industry: industry 042", "Acme", {"cf_industry": "Industry 042"}, ""),
        ("Acme Source: Blorp 5k", "Acme 5k", {}, "Source: “Blorp” does not fit"),
        ("Acme Seats: lots 5k", "Acme 5k", {}, "Seats: “lots” does not fit"),
        ("Acme Champion: Road Runner", "Acme", {}, "Champion: pick the contact"),
        # Not custom fields: hidden ones, the parser's own keys, and anything in the note.
        ("Acme Internal ref: X1", "Acme Internal ref: X1", {}, ""),
        ("Acme status: Won", "Acme status: Won", {}, ""),
        ("Acme 12k note: Source: Inbound", "Acme 12k note: Source: Inbound", {}, ""),
        ("Acme 12k at 10:30", "Acme 12k at 10:30", {}, ""),
    ],
)
def test_custom_fields_are_read_out_of_the_text(
    text: str, left: str, custom: dict[str, Any], warned: str
) -> None:
    found = read_custom_fields(text, FIELDS, users=USERS, tz="America/Los_Angeles")
    assert found.text == left
    assert found.custom == custom
    assert (warned in " ".join(found.warnings)) if warned else found.warnings == []


def test_read_out_parts_do_not_pollute_the_lead_or_the_note() -> None:
    text = "Source: Referral Acme Corp 12k Seats: 25 close 2027-01-15 note: call Wile"
    found = read_custom_fields(text, FIELDS, users=USERS)
    draft = parse(found.text, now=NOW)
    assert (draft.lead, draft.value, draft.date_won, draft.note) == (
        "Acme Corp",
        1_200_000,
        date(2027, 1, 15),
        "call Wile",
    )
    polluted = parse(text, now=NOW)  # what the parse alone makes of it
    assert polluted.lead == "Source: Referral Acme Corp"


async def test_custom_fields_typed_in_the_text_prefill_the_modal_and_reach_close(
    rich: Sandbox,
) -> None:
    """The app-layer path: read the fields, parse the rest, build the modal, submit it."""
    catalog = rich.services.catalog
    text = "Acme Corp 12k Source: Referral Seats: 25 Products: Core, Support Kickoff call: 2027-02-03 16:30"
    found = read_custom_fields(
        text, catalog.custom_fields, users=catalog.active_users, tz="America/Los_Angeles"
    )
    draft = parse(found.text, now=NOW, tz="America/Los_Angeles")
    form = form_from_draft(
        draft,
        catalog,
        invoker="U0ALICE",
        metadata=ModalMetadata(key="k-prefill", channel_id="C0SALES"),
        custom_text=found,
    )
    assert draft.lead == "Acme Corp" and draft.value == 1_200_000
    view = build_opportunity_modal(form, catalog)
    blocks = {b["block_id"]: b["element"] for b in view["blocks"] if "block_id" in b}
    assert blocks["custom.cf_source"]["initial_option"]["value"] == "Referral"
    assert blocks["custom.cf_seats"]["initial_value"] == "25"
    assert [o["value"] for o in blocks["custom.cf_products"]["initial_options"]] == [
        "Core",
        "Support",
    ]
    kickoff = int(datetime(2027, 2, 4, 0, 30, tzinfo=UTC).timestamp())  # 16:30 in LA
    assert blocks["custom.cf_kickoff"]["initial_date_time"] == kickoff
    # Open it in Slack as built, submit untouched: Close gets what the text said.
    opened = await rich.services.slack.views_open(
        trigger_id=rich.slack.issue_trigger("U0ALICE"), view=view
    )
    view_id = opened["view"]["id"]
    response = await rich.driver.submit_view(view_id, values={"lead": ACME})
    assert response.status_code == 200
    [opportunity] = await wait_opportunities(rich, 1)
    assert opportunity["custom.cf_source"] == "Referral"
    assert opportunity["custom.cf_seats"] == 25
    assert opportunity["custom.cf_products"] == ["Core", "Support"]
    assert opportunity["custom.cf_kickoff"] == "2027-02-04T00:30:00+00:00"


async def test_opportunity_command_prefills_custom_fields_typed_as_name_colon_value(
    sandbox: Sandbox,
) -> None:
    view_id = await open_modal(sandbox, "Acme Corp 12k Source: Referral Seats: 25")
    blocks = blocks_of(sandbox, view_id)
    assert blocks["lead"]["element"]["initial_option"]["value"] == "lead_acme"
    assert blocks["custom.cf_source"]["element"]["initial_option"]["value"] == "Referral"
    assert blocks["custom.cf_seats"]["element"]["initial_value"] == "25"
    response = await sandbox.driver.submit_view(view_id)  # untouched
    assert response.status_code == 200
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert (opportunity["custom.cf_source"], opportunity["custom.cf_seats"]) == ("Referral", 25)


async def test_a_user_field_of_a_big_org_is_searched_and_offers_only_active_users(
    tmp_path: Path,
) -> None:
    org = default_org()
    for n in range(120):
        org.users.append(
            {
                "id": f"user_rep{n:03d}",
                "email": f"rep{n}@example.com",
                "first_name": "Rep",
                "last_name": f"{n:03d}",
            }
        )
    async with org_sandbox(tmp_path, org) as sb:
        view_id = await open_modal(sb, "")
        element = blocks_of(sb, view_id)["custom.cf_sales_engineer"]["element"]
        assert element["type"] == "external_select"  # 124 users: past a static select's 100
        reps = await sb.driver.block_suggestion(view_id, "custom.cf_sales_engineer", "rep 11")
        assert [o["value"] for o in reps.json()["options"]] == [
            f"user_rep{n:03d}" for n in range(110, 120)
        ]
        # Dave left the org (an inactive membership in Close): not offered.
        dave = await sb.driver.block_suggestion(view_id, "custom.cf_sales_engineer", "dave")
        assert dave.json()["options"] == []
        await submit(
            sb,
            view_id,
            {"lead": ACME, "custom.cf_sales_engineer": {"text": "Rep 042", "value": "user_rep042"}},
        )
        [opportunity] = await wait_opportunities(sb, 1)
        assert opportunity["custom.cf_sales_engineer"] == "user_rep042"
