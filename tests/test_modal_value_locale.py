"""The modal's Value read in the person's locale, with the one-liner's warning where a figure reads two ways (issue #25)."""

from __future__ import annotations

import pytest

from bot.blocks.modal import ModalMetadata
from bot.deals.fields import Invalid, read_typed_value
from bot.deals.prefill import form_from_draft
from bot.parsing import parse
from sandbox.stack import Sandbox
from tests.flows import open_modal, submit, wait_opportunities
from tests.test_parsing_cases import NOW
from tests.test_parsing_cases_languages import NBSP, NNBSP


@pytest.mark.parametrize(
    ("locale", "typed", "cents"),
    [
        ("de-DE", "12.500", 1_250_000),
        ("de-DE", "12.500 €", 1_250_000),
        ("de-DE", "12.500,50 €", 1_250_050),
        ("de-DE", "1,5k", 150_000),
        ("de-DE", "1.250k", 125_000_000),
        ("de-DE", "12,50", 1_250),
        ("fr-FR", "12 500 €", 1_250_000),
        ("en-US", "12,500", 1_250_000),
        ("en-US", "1.250k", 125_000),
        ("en-US", "$12.50", 1_250),
    ],
)
def test_value_reads_as_the_persons_locale_writes_numbers(
    locale: str, typed: str, cents: int
) -> None:
    money = read_typed_value(typed, locale=locale)
    assert not isinstance(money, Invalid), money
    assert money.cents == cents


@pytest.mark.parametrize(
    ("locale", "typed", "said"),
    [
        (
            "de-DE",
            "1,500",
            "'1,500' read as 1,5 (de-DE writes ',' before decimals); if you meant 1.500, "
            "type 1500, or 1,5 if you meant 1,5.",
        ),
        (
            "en-US",
            "1.500",
            "'1.500' read as 1.5 (en-US writes '.' before decimals); if you meant 1,500, "
            "type 1500, or 1.5 if you meant 1.5.",
        ),
    ],
)
def test_a_value_its_locale_reads_two_ways_is_asked_about_as_the_one_liner_warns(
    locale: str, typed: str, said: str
) -> None:
    result = read_typed_value(typed, locale=locale)
    assert isinstance(result, Invalid)
    assert result.in_modal == said
    one_liner = parse(f"Acme {typed}", now=NOW, locale=locale)
    assert any(said.startswith(w) for w in one_liner.warnings), one_liner.warnings


async def test_what_the_form_prefills_reads_back_one_way_in_its_locale(
    sandbox: Sandbox,
) -> None:
    """The Value the modal is opened with is written as the locale writes numbers, so an
    untouched submission is never asked about."""
    for locale, text, shown in [
        ("de-DE", "Müller GmbH 12.500 € jährlich", f"12.500{NBSP}€"),
        ("de-DE", "Müller GmbH 12k", f"12.000{NBSP}€"),
        ("fr-FR", "Dupont SA 1 500 €", f"1{NNBSP}500{NBSP}€"),
        ("en-US", "Acme 12k", "$12,000"),
    ]:
        draft = parse(text, now=NOW, locale=locale)
        metadata = ModalMetadata(key="k", locale=locale)
        form = form_from_draft(
            draft, sandbox.services.catalog, invoker="U0ALICE", metadata=metadata
        )
        assert form.value_text == shown
        money = read_typed_value(form.value_text or "", locale=locale)
        assert not isinstance(money, Invalid) and money.cents == draft.value


async def test_a_german_users_modal_reads_12_500_as_twelve_thousand_five_hundred(
    sandbox: Sandbox,
) -> None:
    alice = sandbox.slack.workspace.user("U0ALICE")
    assert alice is not None
    alice.locale, alice.tz = "de-DE", "Europe/Berlin"
    view_id = await open_modal(sandbox, "Acme Corp 12.500 € jährlich")
    value = next(b for b in sandbox.slack.views[view_id]["blocks"] if b.get("block_id") == "value")
    assert value["element"]["initial_value"] == f"12.500{NBSP}€"
    ack = await submit(sandbox, view_id, {"value": "12.500"})
    assert ack.get("response_action") == "update"
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["value"] == 1_250_000


async def test_a_value_read_two_ways_is_asked_about_under_the_field_before_anything_is_created(
    sandbox: Sandbox,
) -> None:
    alice = sandbox.slack.workspace.user("U0ALICE")
    assert alice is not None
    alice.locale = "de-DE"
    view_id = await open_modal(sandbox, "Acme Corp 12k")
    ack = await submit(sandbox, view_id, {"value": "1,500"})
    assert ack["response_action"] == "errors"
    assert "if you meant 1.500, type 1500" in ack["errors"]["value"]
    # Refused before the ack, so nothing was stored: nothing can reach Close later either.
    assert list(await sandbox.services.store.recent(limit=5)) == []
    assert sandbox.close.opportunities == []
    ack = await submit(sandbox, view_id, {"value": "1500"})  # typed so it reads one way
    assert ack.get("response_action") == "update"
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["value"] == 150_000
