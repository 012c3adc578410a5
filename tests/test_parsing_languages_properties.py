"""Properties of the one-liner in each language: what Babel writes for a locale reads back, every phrase in the vocabularies works, dates stay in the future."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date, get_day_names, get_month_names
from babel.numbers import format_compact_currency, format_percent
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from bot.parsing import format_money, parse, parse_money
from bot.parsing.dates import DateContext, dateparser_parse
from bot.parsing.lexicon import LANGUAGES
from bot.parsing.locales import locale_info
from bot.parsing.parser import _parse  # the unguarded core: a bug must fail here, not be swallowed

# Locales of each language, with their own number and date conventions.
LOCALES = {
    "de": ["de-DE", "de-AT", "de-CH"],
    "fr": ["fr-FR", "fr-BE", "fr-CA", "fr-CH"],
    "es": ["es-ES", "es-MX", "es-419"],
    "pt": ["pt-BR", "pt-PT"],
    "it": ["it-IT", "it-CH"],
    "nl": ["nl-NL", "nl-BE"],
}
ALL_LOCALES = [locale for locales in LOCALES.values() for locale in locales]
INTRODUCER = {
    "de": "Abschluss",
    "fr": "clôture",
    "es": "cierre",
    "pt": "fechamento",
    "it": "chiusura",
    "nl": "sluiting",
}
ZONES = ["UTC", "Europe/Berlin", "Europe/Lisbon", "America/Sao_Paulo", "America/Mexico_City"]
NOW = datetime(2025, 11, 12, 15, 0, tzinfo=UTC)
instants = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2089, 1, 1), timezones=st.just(UTC)
)


def _language(locale: str) -> str:
    return locale.split("-")[0]


# --- money: what Babel writes, we read ---------------------------------------------------


@settings(max_examples=600, deadline=None)
@given(
    cents=st.integers(min_value=0, max_value=10**13),
    currency=st.sampled_from([None, "EUR", "USD", "GBP", "CHF", "BRL", "MXN"]),
    locale=st.sampled_from(ALL_LOCALES),
)
@example(cents=1_250_050, currency=None, locale="de-DE")
@example(cents=1_250_050, currency="EUR", locale="fr-FR")
@example(cents=150_000, currency=None, locale="de-DE")
def test_babel_formatted_amount_reads_back_in_the_field_and_in_a_line(
    cents: int, currency: str | None, locale: str
) -> None:
    formatted = format_money(cents, currency, locale)
    # Babel 2.x groups Swiss figures of ten digits or more oddly (`1234567'890`): not typed.
    assume(not re.search(r"\d{4}'", formatted))
    expected_currency = currency or locale_info(locale).currency
    money = parse_money(formatted, locale=locale)
    assert money is not None, formatted
    assert (money.cents, money.currency) == (cents, expected_currency), formatted
    draft = parse(f"Acme {formatted}", now=NOW, locale=locale)
    assert (draft.value, draft.value_currency) == (cents, expected_currency), (formatted, draft)
    assert draft.lead == "Acme"
    assert not any("decimals" in w for w in draft.warnings), (formatted, draft.warnings)


# Babel's short forms: `1,2 Mio. €`, `1,5 k €`, `12,5 mil €`, `€ 1,2 mi`, `1,2 Mln €`, `€ 1,2 mln.`.
# pt-PT writes a thousand million `mM`, which reads as the Brazilian `MM` (a million): left out.
@settings(max_examples=600, deadline=None)
@given(
    tenths=st.integers(min_value=10, max_value=9_999),
    scale=st.sampled_from([1_000, 1_000_000, 1_000_000_000]),
    currency=st.sampled_from(["EUR", "USD", "BRL", "CHF"]),
    locale=st.sampled_from(ALL_LOCALES),
)
@example(tenths=12, scale=1_000_000, currency="EUR", locale="de-DE")
@example(tenths=80, scale=1_000, currency="EUR", locale="fr-FR")
@example(tenths=125, scale=1_000, currency="EUR", locale="es-ES")
@example(tenths=15, scale=1_000_000, currency="BRL", locale="pt-BR")
def test_babel_compact_amount_reads_back(
    tenths: int, scale: int, currency: str, locale: str
) -> None:
    if locale == "pt-PT" and scale == 1_000_000_000:
        return
    value = Decimal(tenths) / 10 * scale
    formatted = format_compact_currency(
        value, currency, locale=locale.replace("-", "_"), fraction_digits=1
    )
    draft = parse(f"Acme {formatted}", now=NOW, locale=locale)
    assert draft.value == int(value * 100), (formatted, draft)
    assert draft.value_currency == currency, (formatted, draft)
    assert draft.lead == "Acme", (formatted, draft)


@settings(max_examples=300, deadline=None)
@given(percent=st.integers(0, 100), locale=st.sampled_from(ALL_LOCALES))
def test_babel_formatted_percentage_is_the_confidence(percent: int, locale: str) -> None:
    formatted = format_percent(Decimal(percent) / 100, locale=locale.replace("-", "_"))
    draft = parse(f"Acme 12k {formatted}", now=NOW, locale=locale)
    assert draft.confidence == percent, (formatted, draft)
    assert draft.lead == "Acme"


@settings(max_examples=300, deadline=None)
@given(
    whole=st.integers(min_value=1_000, max_value=999_999_999),
    locale=st.sampled_from(ALL_LOCALES),
)
def test_a_figure_grouped_as_the_locale_groups_is_never_ambiguous(whole: int, locale: str) -> None:
    """`12.500` in de-DE, `12 500` in fr-FR (typed with a plain space), `12'500` in de-CH."""
    info = locale_info(locale)
    group = info.group_symbol if info.group_symbol.strip() else " "
    typed = f"{whole:,}".replace(",", group)
    draft = parse(f"Acme {typed} EUR", now=NOW, locale=locale)
    assert draft.value == whole * 100, (typed, draft)
    assert not any("decimals" in w for w in draft.warnings)


# --- dates: what Babel writes, we read ---------------------------------------------------


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    days_ahead=st.integers(min_value=0, max_value=3 * 366),
    style=st.sampled_from(["short", "medium", "long", "full"]),
    locale=st.sampled_from(ALL_LOCALES),
    with_introducer=st.booleans(),
)
@example(days_ahead=33, style="full", locale="de-DE", with_introducer=False)
@example(days_ahead=33, style="medium", locale="pt-BR", with_introducer=True)
def test_babel_formatted_date_is_the_close_date(
    days_ahead: int, style: str, locale: str, with_introducer: bool
) -> None:
    day = NOW.date() + timedelta(days=days_ahead)
    formatted = format_date(day, style, locale=locale.replace("-", "_"))
    introducer = INTRODUCER[_language(locale)] + " " if with_introducer else ""
    draft = parse(f"Acme 12k {introducer}{formatted}", now=NOW, locale=locale)
    assert draft.date_won == day, (formatted, draft)
    assert draft.lead == "Acme", (formatted, draft)
    assert not any("several dates" in w or "is a" in w for w in draft.warnings), draft.warnings


def _babel_names(kind: str, locale: str) -> list[tuple[str, int]]:
    names: list[tuple[str, int]] = []
    for width in ("wide", "abbreviated"):
        for context in ("format", "stand-alone"):
            getter = get_month_names if kind == "month" else get_day_names
            for index, name in getter(width, context, locale.replace("-", "_")).items():
                names.append((name, index))
    return sorted(set(names))


# `mar` is Tuesday (martes, martedì) and March in Spanish and Italian: read as March.
AMBIGUOUS_WEEKDAYS = {("es", "mar"), ("it", "mar")}


@pytest.mark.parametrize("locale", ALL_LOCALES)
def test_every_babel_month_name_is_understood(locale: str) -> None:
    for name, month in _babel_names("month", locale):
        text = f"Acme {INTRODUCER[_language(locale)]} 15 {name} 2027"
        assert parse(text, now=NOW, locale=locale).date_won == date(2027, month, 15), text
        text = f"Acme {INTRODUCER[_language(locale)]} {name} 2027"
        got = parse(text, now=NOW, locale=locale).date_won
        assert got is not None and (got.year, got.month) == (2027, month), text


@pytest.mark.parametrize("locale", ALL_LOCALES)
def test_every_babel_weekday_name_is_understood(locale: str) -> None:
    for name, weekday in _babel_names("weekday", locale):
        if (_language(locale), name.rstrip(".").lower()) in AMBIGUOUS_WEEKDAYS:
            continue
        text = f"Acme 12k {INTRODUCER[_language(locale)]} {name}"
        draft = parse(text, now=NOW, locale=locale)
        assert draft.date_won is not None, text
        assert draft.date_won.weekday() == weekday, text
        assert 1 <= (draft.date_won - NOW.date()).days <= 7, text
        assert draft.lead == "Acme", (text, draft)


# --- every phrase the vocabularies list is read, whole, as a date in the future -------------


def _forward_phrases(code: str) -> list[str]:
    words = LANGUAGES[code]
    phrases = [p for phrases in words.sales.values() for p in phrases]
    phrases += list(words.next_periods)
    phrases += [w for w, days in words.relative_days.items() if days >= 0]
    phrases += list(words.weekdays)
    phrases += [
        f"{m} {w}"
        for m, kind in words.weekday_before.items()
        if kind != "last"
        for w in words.weekdays
    ]
    phrases += [
        f"{w} {m}"
        for m, kind in words.weekday_after.items()
        if kind != "last"
        for w in words.weekdays
    ]
    phrases += [f"{i} 3 {u}" for i in words.in_words for u in words.units]
    phrases += [
        f"{i} {n} {u}" for i in words.in_words for n in words.counts for u in list(words.units)[:4]
    ]
    phrases += [
        f"{e}{'' if e.endswith(('-', chr(39))) else ' '}{m}"
        for e in (*words.end_prefixes, *words.mid_prefixes)
        for m in list(words.months)[:3]
    ]
    phrases += [f"{o} {n}" for o in words.quarter_ordinals for n in words.quarter_nouns]
    phrases += [
        f"{e} {o} {n}"
        for e in words.end_prefixes
        for o in list(words.quarter_ordinals)[:1]
        for n in words.quarter_nouns
    ]
    phrases += [
        f"{q}{s} {n}"
        for q in "1234"
        for s in words.quarter_number_suffixes
        for n in words.quarter_nouns
    ]
    phrases += [f"{letter.upper()}{q}" for letter in words.quarter_letters for q in "1234"]
    phrases += [f"{q}{letter.upper()}" for letter in words.quarter_letters_after for q in "1234"]
    return phrases


@pytest.mark.parametrize("code", [c for c in LANGUAGES if c != "en"])
def test_every_listed_date_phrase_is_read_whole_and_lies_ahead(code: str) -> None:
    locale = LOCALES[code][0]
    introducer = INTRODUCER[code]
    for now in (NOW, datetime(2025, 12, 31, 22, tzinfo=UTC), datetime(2026, 3, 31, 12, tzinfo=UTC)):
        today = now.astimezone(ZoneInfo("Europe/Berlin")).date()
        for phrase in _forward_phrases(code):
            for text in (f"Acme 12k {introducer} {phrase}", f"Acme 12k {phrase}"):
                draft = _parse(text, now, "Europe/Berlin", locale, ())
                if phrase in LANGUAGES[code].weekday_abbreviations and text.endswith(f"k {phrase}"):
                    continue  # an abbreviation alone may be a word
                assert draft.date_won is not None, (text, draft.warnings)
                assert draft.date_won >= today, (text, today, draft.date_won)
                assert draft.lead == "Acme", (text, draft)
                assert draft.value == 1_200_000, (text, draft)


@pytest.mark.parametrize("code", [c for c in LANGUAGES if c != "en"])
def test_every_listed_period_and_confidence_word_is_read(code: str) -> None:
    words = LANGUAGES[code]
    locale = LOCALES[code][0]
    for kind, phrases in (
        ("monthly", words.monthly),
        ("annual", words.annual),
        ("one_time", words.one_time),
    ):
        for phrase in phrases:
            assert isinstance(phrase, str)
            for text in (f"Acme 12k {phrase}", f"Acme {phrase} 12k"):
                draft = parse(text, now=NOW, locale=locale)
                assert (draft.value_period, draft.value, draft.lead) == (kind, 1_200_000, "Acme"), (
                    text
                )
    for phrase in words.one_time_after_amount:
        assert parse(f"Acme 12k {phrase}", now=NOW, locale=locale).value_period == "one_time"
    for word in words.percent_words:
        assert parse(f"Acme 12k 60 {word}", now=NOW, locale=locale).confidence == 60, word
    for word in words.confidence_before:
        draft = parse(f"Acme 12k {word} 60 %", now=NOW, locale=locale)
        assert (draft.confidence, draft.lead) == (60, "Acme"), word
    for word in words.confidence_after:
        draft = parse(f"Acme 12k 60 % {word}", now=NOW, locale=locale)
        assert (draft.confidence, draft.lead) == (60, "Acme"), word


@pytest.mark.parametrize("code", [c for c in LANGUAGES if c != "en"])
def test_every_listed_scale_word_and_key_is_read(code: str) -> None:
    words = LANGUAGES[code]
    locale = LOCALES[code][0]
    for word, factor in words.scale_words.items():
        draft = parse(f"Acme 12 {word}", now=NOW, locale=locale)
        assert (draft.value, draft.lead) == (12 * factor * 100, "Acme"), word
    for suffix, factor in words.sign_suffixes.items():
        for typed in (f"Acme 3 {suffix}€", f"Acme 3{suffix.upper()} EUR"):
            draft = parse(typed, now=NOW, locale=locale)
            assert (draft.value, draft.value_currency) == (3 * factor * 100, "EUR"), typed
    for word, currency in words.currency_words.items():
        draft = parse(f"Acme 12.500 {word}", now=NOW, locale=locale)
        assert draft.value == 1_250_000 and draft.value_currency == (currency or "USD"), word
    for key in words.note_keys:
        assert parse(f"Acme 12k {key}: hello", now=NOW, locale=locale).note == "hello", key
    for key in words.lead_keys:
        assert parse(f"Globex 3 {key}: Acme SA 12k", now=NOW, locale=locale).lead == "Acme SA", key
    for key in words.status_keys:
        assert parse(f"Acme 12k {key}: Won", now=NOW, locale=locale).status == "Won", key


# --- the fast path agrees with dateparser where dateparser reads the phrase -----------------

AGREEING = {
    "de": ["Freitag", "Montag", "morgen", "übermorgen", "heute", "in 2 Wochen", "in zwei Wochen",
           "in einem Monat", "nächste Woche", "nächsten Monat", "nächstes Jahr", "15. Dezember",
           "3. März", "in 10 Tagen"],
    "fr": ["vendredi", "lundi", "demain", "après-demain", "aujourd'hui", "dans 2 semaines",
           "dans deux semaines", "dans un mois", "la semaine prochaine", "le mois prochain",
           "l'année prochaine", "15 décembre", "1er mars", "dans 10 jours"],
    "es": ["viernes", "lunes", "mañana", "hoy", "en 2 semanas", "dentro de 2 semanas", "en un mes",
           "la próxima semana", "el próximo mes", "15 de diciembre", "en 10 días"],
    "pt": ["sexta-feira", "segunda-feira", "amanhã", "hoje", "em 2 semanas", "em um mês",
           "próxima semana", "próximo mês", "15 de dezembro", "em 10 dias"],
    "it": ["venerdì", "lunedì", "domani", "oggi", "tra 2 settimane", "settimana prossima",
           "15 dicembre", "1° marzo", "tra 10 giorni"],
    "nl": ["vrijdag", "maandag", "morgen", "overmorgen", "vandaag", "over 2 weken",
           "volgende week", "volgende maand", "volgend jaar", "15 december", "over 10 dagen"],
}  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    pick=st.sampled_from(
        [(code, phrase) for code, phrases in AGREEING.items() for phrase in phrases]
    ),
    now=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2089, 1, 1)),
)
def test_fast_path_reads_each_language_as_dateparser_does(
    pick: tuple[str, str], now: datetime
) -> None:
    code, phrase = pick
    locale = LOCALES[code][0]
    expected = dateparser_parse(phrase, DateContext(now=now, locale=locale_info(locale)))
    assert expected is not None, phrase
    ours = parse(f"Acme {phrase}", now=now, locale=locale).date_won
    assert ours is not None, phrase
    if ours == now.date() and (expected.year, expected.month, expected.day) == (
        ours.year + 1,
        ours.month,
        ours.day,
    ):
        return  # documented difference: a day and month without a year that is today stays today
    assert ours == expected, (phrase, now)


# --- any text, any locale: never raises; fragments of each language mixed with English ---------

FRAGMENTS = [
    "Müller GmbH", "Société Générale", "Telefónica", "Padaria Real", "Rossi Srl", "De Vries BV",
    "12.500 €", "12 500 €", "€ 12.500", "12,5k", "1,2 Mio.", "2 M€", "8 k€", "120 TEUR", "15 mil",
    "R$ 15 mil", "15mila", "1,2 mln", "12.500,- €", "1.500", "1,500", "12'500 CHF",
    "jährlich", "monatlich", "einmalig", "par mois", "annuel", "mensual", "anual", "único",
    "por mês", "mensile", "annuale", "maandelijks", "jaarlijks", "una tantum",
    "60 %", "60 Prozent", "60 pour cent", "probabilidad del 40 %", "kans 40%",
    "Abschluss", "bis", "clôture", "d'ici", "cierre", "para el", "fecho", "chiusura", "sluiting",
    "nächsten Freitag", "Ende des Monats", "Monatsende", "fin du mois", "fin de mes", "fim do mês",
    "fine mese", "eind van de maand", "Q1", "1. Quartal", "T1", "1er trimestre", "Jahresende",
    "am 15.", "le 15", "el 15", "dia 15", "il 15", "15e", "15.12.", "15 de diciembre",
    "Notiz:", "remarque :", "nota:", "für", "mit", "pour", "avec", "para", "con", "per", "voor",
    "met", "close next friday", "EOQ", "ARR", "$12k", "<@U123>", "status:", "Kunde:", "’", ",",
    "-", "\u202f", "\n", "Dienstag,", "sexta", "domingo", "mar", "Do", "So", "24/7",
]  # fmt: skip


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(st.sampled_from(FRAGMENTS), max_size=12),
    now=instants,
    tz=st.sampled_from(ZONES),
    locale=st.sampled_from([*ALL_LOCALES, "en-US", "es-LA"]),
)
def test_any_mix_of_languages_never_raises(
    words: list[str], now: datetime, tz: str, locale: str
) -> None:
    draft = _parse(" ".join(words), now, tz, locale, ("Won", "Proposal Sent"))
    assert draft.confidence is None or 0 <= draft.confidence <= 100
    assert draft.value is None or draft.value >= 0


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80), now=instants, locale=st.sampled_from(ALL_LOCALES))
def test_any_text_in_any_language_never_raises(text: str, now: datetime, locale: str) -> None:
    _parse(text, now, "Europe/Paris", locale, ())


@settings(max_examples=300, deadline=None)
@given(
    english=st.lists(
        st.sampled_from(
            ["$12k", "ARR", "60%", "close next friday", "EOQ", "by EOM", "one-time", "in 2 weeks"]
        ),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    locale=st.sampled_from(ALL_LOCALES),
)
def test_english_is_understood_in_every_language(english: list[str], locale: str) -> None:
    """A German rep may still type "EOQ": English words read the same in every locale."""
    text = "Acme " + " ".join(english)
    ours = parse(text, now=NOW, locale=locale).to_contract()
    reference = parse(text, now=NOW, locale="en-GB").to_contract()
    for field in ("lead", "value", "value_period", "confidence", "date_won"):
        assert ours[field] == reference[field], (text, field, ours, reference)
