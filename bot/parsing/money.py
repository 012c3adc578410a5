"""Reading amounts people type (`12k`, `$12,500`, `40000 EUR`, `12.500,50 €`, `1,2 Mio.`) as integer cents, and formatting them back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import format_currency, format_decimal, list_currencies
from pydantic import BaseModel, ConfigDict

from bot.close.models import ValuePeriod
from bot.parsing.lexicon import Lexicon, fold, fold_key, lexicon_for, word_alternation
from bot.parsing.locales import DEFAULT_LOCALE, LocaleInfo, locale_info
from bot.parsing.periods import period_label, period_of, period_right_after
from bot.parsing.tokens import alternation, normalize

__all__ = [
    "Money",
    "MoneyCandidate",
    "ambiguity_warning",
    "find_money",
    "format_money",
    "money_words",
    "parse_money",
    "parse_money_in_locale",
    "period_label",
]


class Money(BaseModel):
    """An amount as Close stores it: integer cents, the currency if one was typed, the period."""

    model_config = ConfigDict(frozen=True)

    cents: int
    currency: str | None = None
    period: ValuePeriod | None = None


# Signs that name one currency wherever they are typed. A plain `$` (and `¥`) is
# resolved through the user's locale: `$` is CAD for en-CA, USD where no dollar is home.
_SIGNS: dict[str, str | None] = {
    "US$": "USD",
    "$US": "USD",
    "$ US": "USD",  # fr-CA writes the country after a (no-break) space
    "$ CA": "CAD",
    "$ AU": "AUD",
    "$ NZ": "NZD",
    "$ HK": "HKD",
    "$ SG": "SGD",
    "C$": "CAD",
    "CA$": "CAD",
    "$CA": "CAD",
    "A$": "AUD",
    "AU$": "AUD",
    "$AU": "AUD",
    "NZ$": "NZD",
    "$NZ": "NZD",
    "S$": "SGD",
    "SG$": "SGD",
    "HK$": "HKD",
    "$HK": "HKD",
    "R$": "BRL",
    "BR$": "BRL",
    "$MX": "MXN",
    "$SG": "SGD",
    "JP¥": "JPY",
    "CN¥": "CNY",
    "元": "CNY",
    "MX$": "MXN",
    "£GB": "GBP",
    "€": "EUR",
    "£": "GBP",
    "₹": "INR",
    "₩": "KRW",
    "₽": "RUB",
    "₺": "TRY",
    "₪": "ILS",
    "₱": "PHP",
    "₦": "NGN",
    "฿": "THB",
    "₫": "VND",
    "￥": "JPY",
    "¥": None,
    "$": None,
}
_SIGN_DEFAULTS = {"$": "USD", "¥": "JPY"}
_ISO_CODES = frozenset(list_currencies())
# Lower-case three-letter words are codes only for currencies people actually type that
# way; otherwise "for 250k" would read `for`… and "bob 12k" would be Bolivian.
_LOWERCASE_CODES = frozenset(
    [
        "usd",
        "eur",
        "gbp",
        "cad",
        "aud",
        "nzd",
        "chf",
        "jpy",
        "cny",
        "inr",
        "sek",
        "nok",
        "dkk",
        "sgd",
        "hkd",
        "brl",
        "mxn",
        "zar",
        "pln",
        "czk",
        "ils",
    ]
)
_MAX_DIGITS = 15  # a trillion dollars and change: anything longer is not a deal value

_GROUPS = ",.'\u00a0\u202f"  # ’ is folded to ' before matching


@dataclass(frozen=True, slots=True)
class _MoneyWords:
    """A language's money patterns: the figure regex, scale words and currency words."""

    pattern: re.Pattern[str]
    scales: dict[str, Decimal]
    currency_words: dict[str, str | None]
    connectors: frozenset[str]
    language: str
    line_words: frozenset[str]


def _links(links: tuple[str, ...]) -> str:
    """`d'euros` is glued, `de euros` is not."""
    parts = [
        re.escape(fold(link).lower()) + ("" if link.endswith("'") else r"\ ")
        for link in sorted(set(links), key=len, reverse=True)
    ]
    return f"(?:{'|'.join(parts)})?" if parts else ""


@lru_cache(maxsize=8)
def money_words(language: str) -> _MoneyWords:
    """The compiled money reader for `language` (English included)."""
    lexicon = lexicon_for(language)
    words = lexicon.words
    signs = alternation(_SIGNS)
    codes = word_alternation(_LOWERCASE_CODES)
    # `10 k`, `1.2 mm`: a suffix after a space too, but only if the words after it carry on
    # the deal line (see `_spaced_suffix_ends_figure`); `mn` is also minutes (`10 mn`), and a
    # lone `B` a building or a plan (`Hall 5 B`): those two stay glued.
    spaced = {key: factor for key, factor in words.suffixes.items() if key not in ("mn", "b")}
    number = r"\d+(?:[" + _GROUPS + r"]\d+)*"
    if words.space_groups:
        # `12 500 €` typed with plain spaces: groups of exactly three digits only.
        number = r"\d{1,3}(?:\ \d{3}(?!\d))+(?:[.,]\d+)?|" + number
    pattern = re.compile(
        rf"""
        (?<![\w.,/:'\-])
        (?:(?P<code1>[A-Za-z]{{3}})\ ?)?
        (?:(?P<sign1>{signs})\ ?)?
        (?P<num>{number})
        (?P<dash>[.,][-–]{{1,2}}(?![\d\w]))?
        (?:
            (?P<suffix>{word_alternation(words.suffixes)})(?!\w)
          | \ ?(?P<ssuffix>{word_alternation(words.sign_suffixes)})(?=\ ?(?:{signs}|(?:{codes})(?!\w)))
          | \ (?P<psuffix>{word_alternation({**words.suffixes, **words.sign_suffixes})})
            (?(sign1)(?!\w)|(?(code1)(?!\w)|(?!)))
          | \ ?(?P<word>{word_alternation(words.scale_words)})(?!\w)
          | \ (?P<xsuffix>{word_alternation(spaced)})(?!\w)
          | (?![\d\w]|[/\-:.,]\d)
        )
        (?:\ ?(?P<sign2>{signs}))?
        (?:\ ?(?P<code2>[A-Za-z]{{3}})(?!\w))?
        (?:\ {_links(words.currency_links)}(?P<cword>{word_alternation(words.currency_words)})(?!\w))?
        """,
        re.VERBOSE | re.IGNORECASE,
    )
    scales = {
        key: Decimal(factor)
        for mapping in (words.suffixes, words.sign_suffixes, words.scale_words)
        for key, factor in mapping.items()
    }
    return _MoneyWords(
        pattern=pattern,
        scales=scales,
        currency_words=dict(words.currency_words),
        connectors=lexicon.connectors,
        language=lexicon.language,
        line_words=_line_words(lexicon),
    )


def _line_words(lexicon: Lexicon) -> frozenset[str]:
    """Folded words that carry on a deal line after a figure: connectors, date words, chatter."""
    words = lexicon.words
    phrases: list[str] = [
        *words.weekday_before,
        *words.weekdays,
        *words.weekday_abbreviations,
        *words.months,
        *words.relative_days,
        *words.in_words,
        *words.end_prefixes,
        *words.mid_prefixes,
        *words.quarter_letters,
        *words.next_periods,
        *(phrase for phrases in words.sales.values() for phrase in phrases),
    ]
    firsts = {fold_key(phrase).split(" ")[0].rstrip(".") for phrase in phrases if phrase.strip()}
    return frozenset(firsts) | lexicon.connectors | lexicon.chatter


MONEY_RE = money_words("en").pattern
"""English only, for callers outside the line parser."""


@dataclass(frozen=True, slots=True)
class Reading:
    """A figure's value, and its other reading when the figure is ambiguous (`1.500`: 1.5 or 1,500)."""

    value: Decimal
    other: Decimal | None = None


def _groups_ok(whole: str) -> bool:
    groups = re.split(f"[{_GROUPS} ]", whole)
    return len(groups) == 1 or (
        1 <= len(groups[0]) <= 3
        and len(groups[-1]) == 3
        and all(len(g) in (2, 3) for g in groups[1:-1])
    )


def _value(digits: str, decimal_mark: str | None) -> Decimal | None:
    whole, fraction = digits.rsplit(decimal_mark, 1) if decimal_mark else (digits, "")
    if not _groups_ok(whole):
        return None
    return Decimal(re.sub(r"\D", "", whole) + ("." + fraction if fraction else ""))


def read_figure(
    digits: str, info: LocaleInfo, *, scaled: bool = False, strict: bool = False
) -> Reading | None:
    """`12,500` / `12.500,50` / `12 500` / `12,00,000` / `1.5` -> its value, or None if it is not one number.

    With two kinds of separator the last is the decimal mark. Spaces and apostrophes only
    ever group. One kind used once before exactly three digits is the ambiguous case: a
    mark the locale groups with (`1.500` in de-DE, `1,500` in en-US) or does not use
    groups; before a k/m/b suffix (`1.250m`) the locale's decimal mark is a decimal mark.
    Otherwise (`1.500` in en-US) a value field reads a group, since amounts do not have
    three decimals, while `strict` (the one-liner) reads it as the locale does, a
    decimal, and keeps the group reading as `other` so the user is told. Groups after the
    first have 2 (Indian lakh) or 3 digits, the last 3.
    """
    separators = [c for c in digits if not c.isdigit()]
    if not separators:
        return Reading(Decimal(digits))
    kinds = list(dict.fromkeys(separators))
    if len(kinds) > 2:
        return None
    decimal_mark: str | None = None
    if len(kinds) == 2:
        decimal_mark = kinds[1]
        if separators.count(decimal_mark) > 1 or decimal_mark not in ".,":
            return None
    elif len(separators) == 1:
        mark = kinds[0]
        tail = digits.rsplit(mark, 1)[1]
        if mark not in ".,":
            decimal_mark = None
        elif len(tail) != 3:
            decimal_mark = mark
        elif mark == info.decimal_symbol and (scaled or strict):
            value = _value(digits, mark)
            other = None if scaled else _value(digits, None)
            return Reading(value, other) if value is not None else None
    value = _value(digits, decimal_mark)
    return Reading(value) if value is not None else None


def read_number(digits: str, info: LocaleInfo, *, scaled: bool = False) -> Decimal | None:
    """A value field's figure (see `read_figure`): `1.500` is 1,500 in any locale."""
    reading = read_figure(digits, info, scaled=scaled)
    return reading.value if reading is not None else None


@dataclass(frozen=True, slots=True)
class MoneyCandidate:
    """A figure in the text that may be the value, with what marks it as money."""

    start: int
    end: int
    text: str
    cents: int
    currency: str | None
    period: ValuePeriod | None
    period_end: int
    strong: bool
    """It has a sign, a code, a k/m/b suffix, a scale word or a period right after it."""
    plausible_bare: bool
    """Without any of those marks it still reads as an amount (see `bare_amount_rule`)."""
    other_cents: int | None = None
    """The other reading of an ambiguous figure (`1.500` in en-US is 1.5, or 1,500)."""


def _currency(
    match: re.Match[str], info: LocaleInfo, words: _MoneyWords
) -> tuple[str | None, int, int]:
    """The currency named around the figure, and the span of the figure with its valid marks."""
    start = match.start("num")
    end = max(
        match.end(g) for g in ("num", "dash", "suffix", "ssuffix", "psuffix", "word", "xsuffix")
    )
    currency: str | None = None
    for group in ("sign1", "sign2"):
        sign = match.group(group)
        if sign:
            currency = currency or _SIGNS[sign] or info.currency_for_sign(sign)
            currency = currency or _SIGN_DEFAULTS[sign]
            start, end = min(start, match.start(group)), max(end, match.end(group))
    for group in ("code1", "code2"):
        code = match.group(group)
        if code and (code in _ISO_CODES or code.lower() in _LOWERCASE_CODES):
            currency = currency or code.upper()
            start, end = min(start, match.start(group)), max(end, match.end(group))
        elif code and group == "code2":
            break  # "12k for …": the letters are a word, so no currency word follows either
    else:
        word = match.group("cword")
        if word:
            currency = currency or words.currency_words[fold_key(word)]
            currency = currency or info.currency_for_sign("$") or "USD"
            end = max(end, match.end("cword"))
    return currency, start, end


def bare_amount_rule(
    candidate_digits: str,
    value: Decimal,
    next_word: str,
    connectors: frozenset[str] | None = None,
) -> bool:
    """Whether a figure with no sign, code, suffix or period still reads as the value.

    Reps write small numbers for other things ("12 seats", "3 users", "Studio 54") and
    years in names ("Vision 2027"), so a bare figure counts only if it has grouping or
    exactly two decimals ("12,500", "99.50") or is a whole number of at least 1,000 that
    is not year-like (1900–2099); and never if a word other than a connector follows it
    ("5000 seats" counts seats).
    """
    if connectors is None:
        connectors = lexicon_for("en").connectors
    if next_word and fold_key(next_word) not in connectors:
        return False
    if not candidate_digits.isdigit():
        return value >= 1000 or value.as_tuple().exponent == -2
    return value >= 1000 and not 1900 <= value <= 2099


_NEXT_WORD = re.compile(r" ?([^\W\d_]+)")


def _spaced_suffix_ends_figure(text: str, end: int, words: _MoneyWords) -> bool:
    """After `10 k`: the line ends, punctuation or a figure follows, or a word that carries on
    a deal line (`close`, `Friday`, `Q2`, a capitalised name); not a noun (`10 k seats`)."""
    found = _NEXT_WORD.match(text, end)
    if found is None:
        return True
    word = found.group(1)
    return word[:1].isupper() or fold_key(word) in words.line_words


def _cents(number: Decimal, scale: Decimal) -> int | None:
    try:
        return int((number * scale * 100).quantize(Decimal(1), ROUND_HALF_UP))
    except InvalidOperation:
        return None


def _candidate(
    match: re.Match[str], text: str, info: LocaleInfo, words: _MoneyWords, *, strict: bool
) -> MoneyCandidate | None:
    digits = match.group("num")
    if sum(c.isdigit() for c in digits) > _MAX_DIGITS:
        return None
    if len(digits) > 1 and digits.startswith("0") and digits[1:2].isdigit():
        # "000" in "40 000 USD" is the tail of a space-grouped figure, never an amount of 0.
        return None
    scale_word = next(
        (
            match.group(g)
            for g in ("suffix", "ssuffix", "psuffix", "word", "xsuffix")
            if match.group(g)
        ),
        "",
    )
    reading = read_figure(digits, info, scaled=bool(scale_word), strict=strict)
    if reading is None:
        return None
    scale = words.scales.get(fold_key(scale_word), Decimal(1)) if scale_word else Decimal(1)
    cents = _cents(reading.value, scale)
    if cents is None:
        return None
    other_cents = _cents(reading.other, scale) if reading.other is not None else None
    currency, start, end = _currency(match, info, words)
    period_match = period_right_after(text, end, words.language)
    period = period_of(period_match) if period_match else None
    if match.group("xsuffix") and not (
        currency or period or _spaced_suffix_ends_figure(text, end, words)
    ):
        return None  # `10 k seats`, `12 m term`: a count or a length, not an amount
    strong = bool(currency or scale_word or period)
    plausible = False
    if not strong:
        found = _NEXT_WORD.match(text, end)
        next_word = found.group(1) if found else ""
        plausible = bare_amount_rule(digits, reading.value, next_word, words.connectors) or (
            reading.other is not None
            and bare_amount_rule(digits, reading.other, next_word, words.connectors)
        )
    return MoneyCandidate(
        start=start,
        end=end,
        text=text[start:end],
        cents=cents,
        currency=currency,
        period=period,
        period_end=period_match.end() if period_match else end,
        strong=strong,
        plausible_bare=plausible,
        other_cents=other_cents,
    )


def find_money(text: str, info: LocaleInfo, *, strict: bool = False) -> list[MoneyCandidate]:
    """Every figure in `text` that could be an amount, in order (percentages are read first).

    `text` is matched as is: the line parser folds accents first (`bot.parsing.lexicon.fold`).
    `strict` reads an ambiguous figure as the locale does (see `read_figure`).
    """
    words = money_words(info.language)
    found = []
    for match in words.pattern.finditer(text):
        candidate = _candidate(match, text, info, words, strict=strict)
        if candidate is not None:
            found.append(candidate)
    return found


def parse_money(text: str, *, locale: str = DEFAULT_LOCALE) -> Money | None:
    """The amount in a value field ("12k", "$12,500", "1.5k/mo", "40000 EUR"), else None.

    The whole text must be one amount (a period may follow); a bare number is fine here
    because the field says it is money. Negative or percent figures are not amounts.
    """
    candidate = _whole_amount(text, locale, strict=False)
    if candidate is None:
        return None
    return Money(cents=candidate.cents, currency=candidate.currency, period=candidate.period)


def parse_money_in_locale(text: str, *, locale: str) -> tuple[Money, int | None] | None:
    """`parse_money`, with the figure read as `locale` writes numbers, as the one-liner does
    (`1,500` is 1,5 in de-DE), and the other reading's cents when the figure is ambiguous."""
    candidate = _whole_amount(text, locale, strict=True)
    if candidate is None:
        return None
    money = Money(cents=candidate.cents, currency=candidate.currency, period=candidate.period)
    return money, candidate.other_cents


def _whole_amount(text: str, locale: str, *, strict: bool) -> MoneyCandidate | None:
    cleaned = fold(normalize(text).strip().rstrip("."))
    info = locale_info(locale)
    words = money_words(info.language)
    match = words.pattern.match(cleaned)
    if match is None:
        return None
    candidate = _candidate(match, cleaned, info, words, strict=strict)
    if candidate is None or candidate.start != 0 or cleaned[candidate.period_end :].strip():
        return None
    return candidate


def ambiguity_warning(typed: str, cents: int, other_cents: int, locale: str) -> str:
    """What the one-liner says of a figure it read one of two ways (`1.500` in en-US)."""
    info = locale_info(locale)
    mark = info.decimal_symbol
    read = format_decimal(Decimal(cents) / 100, locale=info.babel)
    other = Decimal(other_cents) / 100
    meant = format_decimal(other, locale=info.babel)
    return (
        f"{typed!r} read as {read} ({info.name} writes {mark!r} before decimals); "
        f"if you meant {meant}, type {other.normalize():f}"
    )


def format_money(cents: int, currency: str | None = None, locale: str = DEFAULT_LOCALE) -> str:
    """Cents as people read them in their locale: 1200000 -> "$12,000", 1250 -> "$12.50".

    Whole amounts drop the ".00"; without a currency the locale's home currency is used.
    """
    info = locale_info(locale)
    pattern = info.babel.currency_formats["standard"].pattern
    if cents % 100 == 0:
        pattern = pattern.replace(".00", "")
    return str(
        format_currency(
            Decimal(cents) / 100,
            currency or info.currency,
            format=pattern,
            locale=info.babel,
            currency_digits=False,
        )
    )


_ = period_label  # re-exported: the modal formats a value and its period together
