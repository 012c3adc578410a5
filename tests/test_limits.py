"""Whatever the data, every view and message the bot builds stays within Slack's Block Kit limits."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from bot.blocks import messages
from bot.blocks.changes import change_message, describe_changes, saved_view, saving_view
from bot.blocks.custom_fields import search_options
from bot.blocks.home import HomeEntry, home_view
from bot.blocks.modal import (
    LeadOption,
    ModalForm,
    ModalMetadata,
    build_opportunity_modal,
    lead_options,
)
from bot.blocks.status_views import created_view, creating_view, queued_view
from bot.blocks.text import PRIVATE_METADATA
from bot.close.models import Contact, CustomField, Opportunity, Pipeline, Status, User
from bot.deals.announce import announcement
from bot.deals.changes import form_from_opportunity
from sandbox.blockkit import MAX_OPTIONS, Surface
from tests.blockkit_walk import limit_problems

URL = "https://app.close.com/"
LONG_LEAD = "Acme <&> " + "L" * 291  # 300 characters, with characters that grow when escaped
NOTE = ("A very long note & <details> " * 200)[:5000]
# Close custom field ids are long: "cf_" and 43 more characters.
CF_IDS = [f"cf_{i:02d}" + "x" * 41 for i in range(60)]
KINDS = ["text", "number", "date", "choices", "user", "datetime"]


class BigOrg:
    """An oversized Close org: 150 statuses in 3 pipelines, 60 custom fields with 300-char names."""

    def statuses_by_pipeline(self) -> list[tuple[Pipeline, list[Status]]]:
        found = []
        for p in range(3):
            pipeline = Pipeline(id=f"pipe_{p}", name=f"Pipeline {p} " + "P" * 290)
            statuses = [
                Status(
                    id=f"stat_{p}_{s}", label=f"Status {s} " + "S" * 290, pipeline_id=pipeline.id
                )
                for s in range(50)
            ]
            found.append((pipeline, statuses))
        return found

    @property
    def custom_fields(self) -> list[CustomField]:
        return [
            CustomField(
                id=cf_id,
                name=f"Field {i} " + "N" * 290,
                type=KINDS[i % len(KINDS)],
                choices=[f"Choice {c} " + "C" * 290 for c in range(150 if i % 12 == 3 else 20)],
                accepts_multiple_values=i % 2 == 1,
                required=i % 5 == 0,
                description="D" * 3000,
            )
            for i, cf_id in enumerate(CF_IDS)
        ]

    @property
    def users(self) -> list[User]:
        return [User(id=f"user_{u}", first_name="U" * 300, last_name=str(u)) for u in range(150)]


def _opportunity() -> Opportunity:
    return Opportunity(
        id="oppo_" + "o" * 40,
        lead_id="lead_" + "l" * 40,
        lead_name=LONG_LEAD,
        status_label="S" * 300,
        pipeline_name="P" * 300,
        value=123_456_789_012,
        value_period="monthly",
        value_currency="EUR",
        confidence=100,
        date_won=date(2027, 12, 31),
        user_name="U" * 300,
        contact_name="C" * 300,
        note=NOTE,
        custom={cf_id: "V" * 300 for cf_id in CF_IDS},
    )


def _big_form(**metadata: Any) -> ModalForm:
    return ModalForm(
        metadata=ModalMetadata(
            key="k" * 32,
            channel_id="C0SALES",
            thread_ts="1700000000.000100",
            response_url="https://hooks.slack.com/commands/T0/" + "r" * 120,
            **metadata,
        ),
        lead=LeadOption(value="new:" + LONG_LEAD, label="Create new lead: " + LONG_LEAD),
        lead_hint="Also in Close: " + ", ".join([LONG_LEAD] * 20),
        value_text="9" * 4000,
        note=NOTE,
        summary=" · ".join([LONG_LEAD] * 20),
        warnings=["W" * 3000] * 5,
        errors={"value": "E" * 3000, "custom." + CF_IDS[1]: "E" * 3000},
        contacts=[Contact(id=f"cont_{c}", name="C" * 300) for c in range(150)],
        custom={cf_id: "V" * 4000 for cf_id in CF_IDS},
        status_id="stat_2_49",
    )


def test_the_modal_for_an_oversized_org_and_huge_input_is_within_limits() -> None:
    view = build_opportunity_modal(_big_form(), BigOrg())
    assert limit_problems(view, surface="modal") == []
    required = {"custom." + cf for i, cf in enumerate(CF_IDS) if i % 5 == 0}
    shown = {block.get("block_id") for block in view["blocks"]}
    assert required <= shown  # trimming to 100 blocks keeps the fields Close requires


def test_the_edit_modal_of_an_opportunity_with_every_field_filled_fits_private_metadata() -> None:
    metadata = _big_form(
        mode="edit",
        submission_id="s" * 36,
        opportunity_id="oppo_" + "o" * 40,
        details_ts="1700000000.000200",
        announce_channel="C0DEALS",
        announce_ts="1700000000.000300",
    ).metadata
    form = form_from_opportunity(
        _opportunity(), metadata=metadata, owner="U0ALICE", catalog=BigOrg(), contacts=[]
    )
    view = build_opportunity_modal(form, BigOrg())
    assert limit_problems(view, surface="modal") == []
    assert form.metadata.loaded and len(view["private_metadata"]) <= PRIVATE_METADATA


def _messages() -> dict[str, dict[str, Any]]:
    opp = _opportunity()
    before = opp.model_copy(update={"lead_name": "x", "status_label": "y", "custom": {}})
    lines = describe_changes(before, opp, {cf: "N" * 300 for cf in CF_IDS})
    ref = messages.ConfirmationRef(submission_id="s" * 36, announce_channel="C0", announce_ts="1.2")
    return {
        "summary": messages.summary(opp, creator="U0ALICE").model_dump(),
        "details": messages.details(opp, close_app_url=URL, ref=ref).model_dump(),
        "queued": messages.queued(LONG_LEAD * 20).model_dump(),
        "failed": messages.failed(LONG_LEAD * 20, NOTE * 2, submission_id="s").model_dump(),
        "announcement": announcement(
            opp, creator="U0ALICE", close_app_url=URL, logged_in="C0SALES"
        ).model_dump(),
        "change": change_message("U0ALICE", "edited the opportunity", lines).model_dump(),
    }


def _views() -> dict[str, dict[str, Any]]:
    opp = _opportunity()
    lines = describe_changes(opp.model_copy(update={"custom": {}}), opp, {})
    return {
        "creating": creating_view(LONG_LEAD * 20, private_metadata="m" * 3000),
        "created": created_view(opp, close_app_url=URL, where="W" * 3000),
        "queued": queued_view(LONG_LEAD * 20),
        "saving": saving_view(LONG_LEAD * 20),
        "saved": saved_view(opp, lines, close_app_url=URL),
        "home": home_view([HomeEntry(opportunity=opp)] * 30, close_app_url=URL),
    }


@pytest.mark.parametrize("name", sorted(_messages()))
def test_every_message_is_within_limits_whatever_the_data(name: str) -> None:
    assert limit_problems(_messages()[name], surface="message") == []


@pytest.mark.parametrize("name", sorted(_views()))
def test_every_status_view_is_within_limits_whatever_the_data(name: str) -> None:
    surface: Surface = "home" if name == "home" else "modal"
    assert limit_problems(_views()[name], surface=surface) == []


def test_option_lists_are_within_limits() -> None:
    leads = [LeadOption(value="lead_" + "i" * 200, label=LONG_LEAD) for _ in range(150)]
    options = lead_options(leads, LONG_LEAD)
    assert len(options) <= MAX_OPTIONS
    org = BigOrg()
    big_choices = next(f for f in org.custom_fields if len(f.choices) > MAX_OPTIONS)
    for found in (options, search_options(big_choices, org.users, "")):
        assert len(found) <= MAX_OPTIONS
        for opt in found:
            assert len(opt["text"]["text"]) <= 75 and len(opt["value"]) <= 150
