"""Matching a typed lead name to Close's leads: near-exact preselects, fuzzy suggests."""

from __future__ import annotations

import pytest

from bot.close.models import Lead
from bot.leads.match import match_lead, normalize_company, search_term

LEADS = [
    Lead(id="lead_acme", display_name="Acme Corp"),
    Lead(id="lead_acme_labs", display_name="Acme Labs"),
    Lead(id="lead_umbrella", display_name="Umbrella Ltd"),
    Lead(id="lead_soylent", display_name="Soylent Inc."),
    Lead(id="lead_sg", display_name="Société Générale S.A."),
]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Acme Corp", "lead_acme"),
        ("acme corp", "lead_acme"),
        ("ACME, Inc.", "lead_acme"),
        ("Acme", "lead_acme"),
        ("Umbrella Limited", "lead_umbrella"),
        ("Soylent", "lead_soylent"),
        ("Societe Generale", "lead_sg"),
        ("Initrode", None),
        ("Acme Labs", "lead_acme_labs"),
    ],
)
def test_best_match_is_preselected(typed: str, expected: str | None) -> None:
    match = match_lead(typed, LEADS)
    assert (match.lead.id if match.lead else None) == expected


def test_other_close_candidates_are_offered() -> None:
    leads = [Lead(id="a", display_name="Acme Corp"), Lead(id="b", display_name="Acme Corp.")]
    match = match_lead("Acme", leads)
    assert match.lead is not None and match.lead.id == "a"
    assert [lead.id for lead in match.others] == ["b"]


@pytest.mark.parametrize(
    ("name", "term"),
    [
        ("Umbrella Limited", "Umbrella"),
        ("Acme, Inc.", "Acme"),
        ("Inc", "Inc"),
        ("Stark Industries", "Stark Industries"),
    ],
)
def test_search_term_drops_legal_suffixes(name: str, term: str) -> None:
    assert search_term(name) == term


def test_normalization_folds_case_accents_and_punctuation() -> None:
    assert normalize_company("Société Générale S.A.") == "societe generale"
    assert normalize_company("Procter & Gamble Co.") == "procter and gamble"
