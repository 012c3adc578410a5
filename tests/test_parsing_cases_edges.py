"""The one-liners issue #25 found still reading wrong, in every language: each line parses to exactly these fields (the rest null)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from bot.parsing import parse
from tests.test_cli import run_bot
from tests.test_parsing_cases import FIELDS, LABELS, NOW
from tests.test_parsing_cases_languages import DEFAULTS, NNBSP

LOCALES: dict[str, dict[str, str]] = {"en": {"locale": "en-US", "tz": "UTC"}, **DEFAULTS}


def d(text: str) -> date:
    return date.fromisoformat(text)


# (language, id, text, expected non-null fields, options): as in the other tables, "warns"
# lists substrings that must each appear in some warning and "quiet" asserts there is none.
Case = tuple[str, str, str, dict[str, Any], dict[str, Any]]

# fmt: off
SETUP_FEES: list[Case] = [
    ("en", "setup-fee-after", "Acme 18k setup fee close Q2", {"lead": "Acme", "value": 1_800_000, "value_period": "one_time", "date_won": d("2026-06-30"), "quiet": True}, {}),
    ("en", "setup-fee-before", "Acme setup fee $18,000", {"lead": "Acme", "value": 1_800_000, "value_currency": "USD", "value_period": "one_time", "quiet": True}, {}),
    ("en", "set-up-fee-hyphen", "Globex 5k set-up fee", {"lead": "Globex", "value": 500_000, "value_period": "one_time", "quiet": True}, {}),
    ("en", "implementation-fee", "Initech implementation fee 25k, 80%", {"lead": "Initech", "value": 2_500_000, "value_period": "one_time", "confidence": 80, "quiet": True}, {}),
    ("en", "onboarding-fee", "Hooli $7,500 onboarding fee", {"lead": "Hooli", "value": 750_000, "value_currency": "USD", "value_period": "one_time", "quiet": True}, {}),
    ("en", "setup-right-after-amount", "Acme 18k setup", {"lead": "Acme", "value": 1_800_000, "value_period": "one_time", "quiet": True}, {}),
    ("en", "setup-in-a-name-is-a-name", "Setup Inc 12k", {"lead": "Setup Inc", "value": 1_200_000, "quiet": True}, {}),
    ("en", "recurring-value-with-a-fee-is-said", "Acme 12k ARR plus 3k setup fee", {"lead": "Acme", "value": 1_200_000, "value_period": "annual", "warns": ["several amounts", "several periods"]}, {}),
    ("pt", "taxa-de-implantacao-after", "Padaria Real R$ 8 mil de implantação", {"lead": "Padaria Real", "value": 800_000, "value_currency": "BRL", "value_period": "one_time", "quiet": True}, {}),
    ("pt", "taxa-de-implantacao-before", "Padaria Real taxa de implantação R$ 8 mil", {"lead": "Padaria Real", "value": 800_000, "value_currency": "BRL", "value_period": "one_time", "quiet": True}, {}),
    ("pt", "taxa-de-setup-without-accents", "Padaria Real R$ 5.000 taxa de instalacao", {"lead": "Padaria Real", "value": 500_000, "value_currency": "BRL", "value_period": "one_time", "quiet": True}, {}),
    ("de", "einrichtungsgebuehr-after", "Müller GmbH 5.000 € Einrichtungsgebühr", {"lead": "Müller GmbH", "value": 500_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
    ("de", "einrichtungsgebuehr-before", "Müller GmbH Einrichtungsgebühr 5.000 € Abschluss Freitag", {"lead": "Müller GmbH", "value": 500_000, "value_currency": "EUR", "value_period": "one_time", "date_won": d("2025-11-14"), "quiet": True}, {}),
    ("de", "implementierungskosten", "Becker KG 12 T€ Implementierungskosten", {"lead": "Becker KG", "value": 1_200_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
    ("fr", "frais-de-mise-en-service-after", f"Dupont SA 3 000{NNBSP}€ de frais de mise en service", {"lead": "Dupont SA", "value": 300_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
    ("fr", "frais-de-mise-en-service-before", "Dupont SA frais de mise en service 3 000 €", {"lead": "Dupont SA", "value": 300_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
    ("fr", "frais-d-installation-curly", "Dupont SA 2 k€ frais d’installation", {"lead": "Dupont SA", "value": 200_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
    ("es", "cuota-de-alta", "Talleres García 2.000 € de cuota de alta", {"lead": "Talleres García", "value": 200_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
    ("es", "cuota-de-instalacion-before", "Talleres García cuota de instalación 1.500 €", {"lead": "Talleres García", "value": 150_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
    ("es", "de-implantacion-after-amount", "Talleres García 6.000 € de implantación", {"lead": "Talleres García", "value": 600_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
    ("it", "costo-di-attivazione", "Rossi Srl 2.000 € costo di attivazione", {"lead": "Rossi Srl", "value": 200_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
    ("it", "di-setup-after-amount", "Rossi Srl 4.000 € di setup", {"lead": "Rossi Srl", "value": 400_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
    ("nl", "installatiekosten", "Jansen BV 2.000 € installatiekosten", {"lead": "Jansen BV", "value": 200_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
    ("nl", "opstartkosten-before", "Jansen BV opstartkosten € 3.500", {"lead": "Jansen BV", "value": 350_000, "value_currency": "EUR", "value_period": "one_time", "quiet": True}, {}),
]

DASH_NOTES: list[Case] = [
    ("en", "double-dash-note", "Acme 12k ARR 60% close Q2 -- champion is the CTO", {"lead": "Acme", "value": 1_200_000, "value_period": "annual", "confidence": 60, "date_won": d("2026-06-30"), "note": "champion is the CTO", "quiet": True}, {}),
    ("en", "em-dash-note", "Acme 12k ARR 60% close Q2 — champion is the CTO", {"lead": "Acme", "value": 1_200_000, "value_period": "annual", "confidence": 60, "date_won": d("2026-06-30"), "note": "champion is the CTO", "quiet": True}, {}),
    ("en", "en-dash-note", "Acme 12k ARR close Q2 – champion is the CTO", {"lead": "Acme", "value": 1_200_000, "value_period": "annual", "date_won": d("2026-06-30"), "note": "champion is the CTO", "quiet": True}, {}),
    ("en", "phone-em-dash-glued", "Acme 12k ARR close Q2—champion is the CTO", {"lead": "Acme", "value": 1_200_000, "value_period": "annual", "date_won": d("2026-06-30"), "note": "champion is the CTO", "quiet": True}, {}),
    ("en", "phone-em-dash-glued-before-a-capital", "Acme 12k Q2—CTO is the champion", {"lead": "Acme", "value": 1_200_000, "date_won": d("2026-06-30"), "note": "CTO is the champion", "quiet": True}, {}),
    ("en", "em-dash-glued-in-a-name", "12k Smith—Jones", {"lead": "Smith—Jones", "value": 1_200_000, "quiet": True}, {}),
    ("en", "note-mentions-a-day", "Acme 12k close Q2 -- CTO signs off next week", {"lead": "Acme", "value": 1_200_000, "date_won": d("2026-06-30"), "note": "CTO signs off next week", "quiet": True}, {}),
    ("en", "note-mentions-seats", "Acme 12k -- CTO wants 3 seats", {"lead": "Acme", "value": 1_200_000, "note": "CTO wants 3 seats", "quiet": True}, {}),
    ("en", "dashes-between-fields-are-not-a-note", "Acme — 12k ARR — 60% — close Q2", {"lead": "Acme", "value": 1_200_000, "value_period": "annual", "confidence": 60, "date_won": d("2026-06-30"), "quiet": True}, {}),
    ("en", "lead-after-a-dash-is-the-lead", "12k ARR — Acme Corp", {"lead": "Acme Corp", "value": 1_200_000, "value_period": "annual", "quiet": True}, {}),
    ("en", "dash-with-nothing-after", "Acme 12k --", {"lead": "Acme", "value": 1_200_000, "quiet": True}, {}),
    ("en", "note-key-wins", "Acme 12k -- maybe note: ping Peter", {"lead": "Acme", "value": 1_200_000, "note": "ping Peter", "quiet": True}, {}),
    ("en", "hyphenated-name-is-a-name", "Hewlett-Packard 12k -- via the reseller", {"lead": "Hewlett-Packard", "value": 1_200_000, "note": "via the reseller", "quiet": True}, {}),
    ("de", "double-dash-note", "Müller GmbH 12.500 € jährlich -- Einkauf sitzt in Wien", {"lead": "Müller GmbH", "value": 1_250_000, "value_currency": "EUR", "value_period": "annual", "note": "Einkauf sitzt in Wien", "quiet": True}, {}),
    ("fr", "em-dash-note", "Dupont SA 12 k€ clôture fin mars — le DAF valide", {"lead": "Dupont SA", "value": 1_200_000, "value_currency": "EUR", "date_won": d("2026-03-31"), "note": "le DAF valide", "quiet": True}, {}),
    ("es", "em-dash-note", "Talleres García 8.000 € — el gerente decide", {"lead": "Talleres García", "value": 800_000, "value_currency": "EUR", "note": "el gerente decide", "quiet": True}, {}),
    ("pt", "double-dash-note", "Padaria Real R$ 15 mil por mês -- o dono decide", {"lead": "Padaria Real", "value": 1_500_000, "value_currency": "BRL", "value_period": "monthly", "note": "o dono decide", "quiet": True}, {}),
    ("it", "en-dash-note", "Rossi Srl 2.000 € al mese – decide il titolare", {"lead": "Rossi Srl", "value": 200_000, "value_currency": "EUR", "value_period": "monthly", "note": "decide il titolare", "quiet": True}, {}),
    ("nl", "phone-em-dash-glued", "Jansen BV 2.000 € per maand—de directeur beslist", {"lead": "Jansen BV", "value": 200_000, "value_currency": "EUR", "value_period": "monthly", "note": "de directeur beslist", "quiet": True}, {}),
]

SPACED_SUFFIXES: list[Case] = [
    ("en", "space-k-period", "Acme 10 k ARR", {"lead": "Acme", "value": 1_000_000, "value_period": "annual", "quiet": True}, {}),
    ("en", "space-k-alone", "Acme 10 k", {"lead": "Acme", "value": 1_000_000, "quiet": True}, {}),
    ("en", "space-k-upper-comma", "Acme 10 K, 60%", {"lead": "Acme", "value": 1_000_000, "confidence": 60, "quiet": True}, {}),
    ("en", "space-mm-date", "Acme 1.2 mm close Q2", {"lead": "Acme", "value": 120_000_000, "date_won": d("2026-06-30"), "quiet": True}, {}),
    ("en", "space-k-weekday", "Acme 10 k next friday", {"lead": "Acme", "value": 1_000_000, "date_won": d("2025-11-14"), "quiet": True}, {}),
    ("en", "space-k-code", "Acme 10 k USD", {"lead": "Acme", "value": 1_000_000, "value_currency": "USD", "quiet": True}, {}),
    ("en", "space-m-name-after", "1.5 m Acme Corp", {"lead": "Acme Corp", "value": 150_000_000, "quiet": True}, {}),
    ("en", "space-k-before-a-noun-counts", "Acme 10 k seats", {"lead": "Acme 10 k seats"}, {}),
    ("en", "space-m-before-a-noun-counts", "Acme 12 m term 50k", {"lead": "Acme 12 m term", "value": 5_000_000, "quiet": True}, {}),
    ("en", "km-is-not-thousands", "Acme 10 km", {"lead": "Acme 10 km"}, {}),
    ("en", "space-bn", "Acme 1.5 bn", {"lead": "Acme", "value": 150_000_000_000, "quiet": True}, {}),
    ("en", "lone-b-after-a-space-is-a-name", "Hall 5 B 12k", {"lead": "Hall 5 B", "value": 1_200_000, "quiet": True}, {}),
    ("de", "space-m-euro", "Müller 2,5 M€ jährlich", {"lead": "Müller", "value": 250_000_000, "value_currency": "EUR", "value_period": "annual", "quiet": True}, {}),
    ("de", "space-m-period", "Müller 2,5 M jährlich", {"lead": "Müller", "value": 250_000_000, "value_period": "annual", "quiet": True}, {}),
    ("de", "space-k-introducer", "Müller 10 k Abschluss Freitag", {"lead": "Müller", "value": 1_000_000, "date_won": d("2025-11-14"), "quiet": True}, {}),
    ("fr", "space-k-period", "Dupont SA 10 k par mois", {"lead": "Dupont SA", "value": 1_000_000, "value_period": "monthly", "quiet": True}, {}),
    ("fr", "mn-is-minutes", "Dupont SA 10 mn", {"lead": "Dupont SA 10 mn"}, {}),
    ("es", "space-k-euro-word", "Talleres García 15 k euros", {"lead": "Talleres García", "value": 1_500_000, "value_currency": "EUR", "quiet": True}, {}),
    ("pt", "space-k-period", "Padaria Real 15 k por mês", {"lead": "Padaria Real", "value": 1_500_000, "value_period": "monthly", "quiet": True}, {}),
    ("it", "space-k-period", "Rossi Srl 12 k all'anno", {"lead": "Rossi Srl", "value": 1_200_000, "value_period": "annual", "quiet": True}, {}),
    ("nl", "space-k-period", "Jansen BV 12 k per jaar", {"lead": "Jansen BV", "value": 1_200_000, "value_period": "annual", "quiet": True}, {}),
]

NAMES_BEFORE_A_COLON: list[Case] = [
    ("en", "opp-for-company-colon", "opp for Bluth Company: $18,000/yr, 35 %, close next friday", {"lead": "Bluth Company", "value": 1_800_000, "value_currency": "USD", "value_period": "annual", "confidence": 35, "date_won": d("2025-11-14"), "quiet": True}, {}),
    ("en", "deal-with-company-colon", "deal with Bluth Company: 18k", {"lead": "Bluth Company", "value": 1_800_000, "quiet": True}, {}),
    ("en", "company-colon-confidence-first", "opp for Bluth Company: 35%, $18k", {"lead": "Bluth Company", "value": 1_800_000, "value_currency": "USD", "confidence": 35, "quiet": True}, {}),
    ("en", "name-colon-at-line-start", "Bluth Company: 18k ARR", {"lead": "Bluth Company", "value": 1_800_000, "value_period": "annual", "quiet": True}, {}),
    ("en", "other-name-colon", "deal with Bluth Corp: $18,000/yr, 35 %", {"lead": "Bluth Corp", "value": 1_800_000, "value_currency": "USD", "value_period": "annual", "confidence": 35, "quiet": True}, {}),
    ("en", "company-key-still-a-key", "Company: Bluth 18k", {"lead": "Bluth", "value": 1_800_000, "quiet": True}, {}),
    ("en", "lead-key-after-fields-still-a-key", "Acme 12k lead: Bluth", {"lead": "Bluth", "value": 1_200_000, "quiet": True}, {}),
    ("es", "oportunidad-con-empresa-colon", "oportunidad con Bluth Empresa: 18.000 € al año", {"lead": "Bluth Empresa", "value": 1_800_000, "value_currency": "EUR", "value_period": "annual", "quiet": True}, {}),
]
# fmt: on

CASES: list[Case] = [*SETUP_FEES, *DASH_NOTES, *SPACED_SUFFIXES, *NAMES_BEFORE_A_COLON]


@pytest.mark.parametrize(
    ("code", "text", "expected", "options"),
    [(c[0], *c[2:]) for c in CASES],
    ids=[f"{c[0]}-{c[1]}" for c in CASES],
)
def test_edge_line_parses_to_exactly_these_fields(
    code: str, text: str, expected: dict[str, Any], options: dict[str, Any]
) -> None:
    kwargs: dict[str, Any] = {"now": NOW, "status_labels": LABELS, **LOCALES[code], **options}
    draft = parse(text, **kwargs)
    got = {field: getattr(draft, field) for field in FIELDS}
    want = {field: expected.get(field) for field in FIELDS}
    assert got == want, draft.warnings
    for fragment in expected.get("warns", []):
        assert any(fragment in w for w in draft.warnings), (fragment, draft.warnings)
    if expected.get("quiet"):
        assert draft.warnings == []
    assert not any("could not read" in w for w in draft.warnings)


def test_edge_ids_are_unique() -> None:
    assert len({(c[0], c[1]) for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["opp for Bluth Company: $18,000/yr, 35 %, close Q2 -- champion is the CTO"],
            {"lead": "Bluth Company", "value": 1_800_000, "value_currency": "USD", "value_period": "annual", "confidence": 35, "date_won": "2026-06-30", "note": "champion is the CTO"},
        ),
        (
            ["Padaria Real R$ 8 mil de implantação", "--locale", "pt-BR"],
            {"lead": "Padaria Real", "value": 800_000, "value_currency": "BRL", "value_period": "one_time"},
        ),
    ],
)  # fmt: skip
def test_python_m_bot_parse_prints_the_edge_lines_read_right(
    argv: list[str], expected: dict[str, Any]
) -> None:
    result = run_bot("parse", *argv, "--now", "2025-11-12T15:00:00Z")
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert {k: v for k, v in parsed.items() if v not in (None, [])} == expected
