"""Formatting injection: typed or Close-supplied text never pings, mentions or hides a link in Slack."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest

from bot.blocks import messages
from bot.blocks.changes import change_message, describe_changes, saved_view, saving_view
from bot.blocks.home import HomeEntry, home_view
from bot.blocks.modal import (
    LeadOption,
    ModalForm,
    ModalMetadata,
    build_opportunity_modal,
    lead_options,
)
from bot.blocks.status_views import created_view, creating_view, queued_view
from bot.blocks.text import escape, fit_mrkdwn
from bot.close.models import Contact, CustomField, Opportunity, Pipeline, Status, User
from bot.deals.announce import announcement
from sandbox.stack import Sandbox
from tests.blockkit_walk import DANGEROUS, HOSTILE, injected, mrkdwn_texts
from tests.flows import open_modal, submit, thread_reply, wait_opportunities

URL = "https://app.close.com/"


def _opportunity(text: str) -> Opportunity:
    return Opportunity(
        id="oppo_1",
        lead_id="lead_1",
        lead_name=f"Acme {text}",
        status_id="stat_1",
        status_label=f"Won {text}",
        status_type="active",
        pipeline_name=f"Sales {text}",
        value=1_200_000,
        value_period="annual",
        value_currency="USD",
        confidence=60,
        date_won=date(2027, 1, 15),
        user_name=f"Alice {text}",
        contact_name=f"Bob {text}",
        note=f"note {text}",
        custom={"cf_source": f"Inbound {text}"},
    )


@dataclass
class _Org:
    """A Close org as the modal sees it (the Catalog's read side), with hostile names."""

    text: str
    pipelines: list[tuple[Pipeline, list[Status]]] = field(default_factory=list)

    def statuses_by_pipeline(self) -> list[tuple[Pipeline, list[Status]]]:
        pipeline = Pipeline(id="pipe_1", name=f"Sales {self.text}")
        return [(pipeline, [Status(id="stat_1", label=f"Demo {self.text}", pipeline_id="pipe_1")])]

    @property
    def custom_fields(self) -> list[CustomField]:
        return [
            CustomField(
                id="cf_source",
                name=f"Source {self.text}",
                required=True,
                description=f"Where {self.text}",
            ),
            CustomField(
                id="cf_kind",
                name=f"Kind {self.text}",
                type="choices",
                choices=[f"A {self.text}", "B"],
            ),
        ]

    @property
    def users(self) -> list[User]:
        return [User(id="user_1", first_name=f"Eve {self.text}")]


def _everything(text: str) -> dict[str, dict[str, Any]]:
    """Every message and view the bot builds, each carrying `text` wherever data goes."""
    opp = _opportunity(text)
    before = _opportunity("before")
    ref = messages.ConfirmationRef(submission_id="sub_1")
    form = ModalForm(
        metadata=ModalMetadata(key="k"),
        lead=LeadOption(value=f"new:{text}", label=f"Create new lead: {text}"),
        lead_hint=f"No lead named “{text}” in Close yet",
        note=f"note {text}",
        value_text=text[:20],
        summary=f"{text} · $12,000 annual",
        warnings=[f"Close has no status “{text}”"],
        errors={"value": f"“{text}” is not an amount."},
        contacts=[Contact(id="cont_1", name=f"Bob {text}")],
        custom={"cf_source": f"Inbound {text}"},
    )
    lines = describe_changes(before, opp, {"cf_source": f"Source {text}"})
    return {
        "summary": messages.summary(opp, creator="U0ALICE").model_dump(),
        "details": messages.details(opp, close_app_url=URL, ref=ref).model_dump(),
        "queued": messages.queued(f"Acme {text}").model_dump(),
        "failed": messages.failed(
            f"Acme {text}", f"Close says: {text}", submission_id="s"
        ).model_dump(),
        "announcement": announcement(
            opp, creator="U0ALICE", close_app_url=URL, logged_in="C0SALES"
        ).model_dump(),
        "change": change_message("U0ALICE", "edited the opportunity", lines).model_dump(),
        "creating_view": creating_view(f"Acme {text}"),
        "created_view": created_view(opp, close_app_url=URL, where=""),
        "queued_view": queued_view(f"Acme {text}"),
        "saving_view": saving_view(f"Acme {text}"),
        "saved_view": saved_view(opp, lines, close_app_url=URL),
        "home": home_view([HomeEntry(opportunity=opp)], close_app_url=URL),
        "modal": build_opportunity_modal(form, _Org(text)),
        "lead_options": {"options": lead_options([LeadOption(value="lead_1", label=text)], text)},
    }


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("surface", sorted(_everything("x")))
def test_typed_markup_stays_inert_in_every_message_and_view(surface: str, text: str) -> None:
    built = _everything(text)[surface]
    assert injected(built) == [], json.dumps(built)[:2000]


@pytest.mark.parametrize("text", HOSTILE)
def test_typed_markup_shows_as_typed_once_escaped(text: str) -> None:
    summary = messages.summary(_opportunity(text), creator="U0ALICE")
    shown = "\n".join(mrkdwn_texts(summary.model_dump()))
    assert escape(text) in shown
    assert "<@U0ALICE>" in shown  # our own mention of the creator still works


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("AT&T", "AT&amp;T"),
        ("&lt;!here&gt;", "&amp;lt;!here&amp;gt;"),  # typed entities show as typed, not decoded
        ("<https://evil.example|Close>", "&lt;https://evil.example|Close&gt;"),
    ],
)
def test_escape_table(typed: str, shown: str) -> None:
    assert escape(typed) == shown


def test_trimming_never_cuts_an_entity_in_half() -> None:
    text = "a" * 9 + "<" * 10
    for limit in range(1, 40):
        cut = fit_mrkdwn(text, limit)
        assert len(cut) <= limit
        tail = cut.rstrip("…")
        amp = tail.rfind("&")
        assert amp == -1 or tail[amp:].startswith("&lt;"), cut


LEAD = "<!channel> Evil <https://evil.example/phish|Open in Close> <@U0BOB>"


async def test_a_hostile_lead_and_note_reach_slack_inert_end_to_end(sandbox: Sandbox) -> None:
    """A full flow with markup in the lead, note and custom field: no Slack call carries it raw."""
    view_id = await open_modal(sandbox, "", wait_for_lead=False)
    mark = sandbox.slack.mark()
    await submit(
        sandbox,
        view_id,
        {
            "lead": {"text": f"Create new lead: {LEAD}", "value": f"new:{LEAD}"},
            "note": "<!here> call <@U0BOB> at <https://evil.example|close.com>",
            "value": "12k",
        },
    )
    await wait_opportunities(sandbox, 1)
    await thread_reply(sandbox, since=mark)
    assert sandbox.close.opportunities[-1]["note"].startswith("<!here>")  # stored as typed
    calls = [call for call in sandbox.slack.calls() if call.method.startswith(("chat.", "views."))]
    assert any("Evil" in json.dumps(call.params) for call in calls)
    for call in calls:
        params = dict(call.params)
        for key in ("blocks", "view"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        assert injected(params) == [], (call.method, params)
    for bad in DANGEROUS:
        assert all(bad not in text for call in calls for text in mrkdwn_texts(call.params))
