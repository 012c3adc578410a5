"""`Field: value` custom fields typed in any language, with the field names as Close has them (issue #25)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.close.models import CustomField
from bot.deals.custom_text import read_custom_fields

# An org whose fields are named in German, French and English.
FIELDS = [
    CustomField(id="cf_quelle", name="Quelle", type="choices", choices=["Messe", "Empfehlung"]),
    CustomField(id="cf_region", name="Région", type="text"),
    CustomField(id="cf_groesse", name="Größe", type="text"),
    CustomField(id="cf_staff", name="Mitarbeiter", type="number"),
    CustomField(id="cf_source", name="Source", type="choices", choices=["Salon professionnel"]),
    CustomField(id="cf_rival", name="Wettbewerber", type="text"),
    CustomField(id="cf_kunde", name="Kunde", type="text"),
]


@pytest.mark.parametrize(
    ("locale", "text", "left", "custom"),
    [
        # The name as Close spells it, typed in a German line.
        (
            "de-DE",
            "Müller GmbH 12.500 € Quelle: Messe",
            "Müller GmbH 12.500 €",
            {"cf_quelle": "Messe"},
        ),
        ("de-DE", "Müller GmbH quelle: messe 12k", "Müller GmbH 12k", {"cf_quelle": "Messe"}),
        # An English (or French) field name in a German line.
        (
            "de-DE",
            "Müller GmbH Source: Salon professionnel 12k",
            "Müller GmbH 12k",
            {"cf_source": "Salon professionnel"},
        ),
        # Accents optional, as in the rest of the line; ß stays one letter.
        (
            "fr-FR",
            "Dupont SA Region : Bretagne 12 k€",
            "Dupont SA 12 k€",
            {"cf_region": "Bretagne"},
        ),
        (
            "fr-FR",
            "Dupont SA Source : salon professionel",
            "Dupont SA",
            {"cf_source": "Salon professionnel"},
        ),
        ("de-DE", "Müller GmbH Größe: XL 12k", "Müller GmbH 12k", {"cf_groesse": "XL"}),
        # Numbers as the user's locale writes them.
        ("de-DE", "Müller GmbH Mitarbeiter: 1.250 12k", "Müller GmbH 12k", {"cf_staff": 1250}),
        ("de-DE", "Müller GmbH Mitarbeiter: 2,5", "Müller GmbH", {"cf_staff": 2.5}),
        ("en-US", "Acme Mitarbeiter: 1,250 12k", "Acme 12k", {"cf_staff": 1250}),
        # A value ends where the deal's own fields begin, in the user's language.
        (
            "de-DE",
            "Müller 12k Wettbewerber: Schmidt jährlich",
            "Müller 12k jährlich",
            {"cf_rival": "Schmidt"},
        ),
        (
            "fr-FR",
            "Dupont 12 k€ Wettbewerber: Durand par mois",
            "Dupont 12 k€ par mois",
            {"cf_rival": "Durand"},
        ),
        # The user's own word for a note keeps what follows it for the note.
        ("de-DE", "Müller 12k Notiz: Quelle: Messe", "Müller 12k Notiz: Quelle: Messe", {}),
        # A name the parser reads as a key in the user's language is left to the parser.
        ("de-DE", "Kunde: Müller GmbH 12k", "Kunde: Müller GmbH 12k", {}),
        ("en-US", "Kunde: Müller GmbH 12k", "12k", {"cf_kunde": "Müller GmbH"}),
    ],
)
def test_custom_fields_are_read_in_the_users_language(
    locale: str, text: str, left: str, custom: dict[str, Any]
) -> None:
    found = read_custom_fields(text, FIELDS, locale=locale)
    assert (found.text, found.custom, found.warnings) == (left, custom, [])
