"""Reading amounts people type (`12k`, `$12,500`, `40000 EUR`) as integer cents, and formatting them back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency, list_currencies
from pydantic import BaseModel, ConfigDict

from bot.close.models import ValuePeriod
from bot.parsing.locales import DEFAULT_LOCALE, LocaleInfo, locale_info
from bot.parsing.periods import period_label, period_of, period_right_after
from bot.parsing.tokens import CONNECTORS, alternation, normalize

__all__ = ["Money", "MoneyCandidate", "find_money", "format_money", "parse_money", "period_label"]


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
_WORD_CURRENCIES: dict[str, str | None] = {
    "dollar": None,
    "dollars": None,
    "bucks": None,
    "euro": "EUR",
    "euros": "EUR",
    "pound": "GBP",
    "pounds": "GBP",
    "quid": "GBP",
}
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
_SCALES: dict[str, Decimal] = {
    "k": Decimal(1_000),
    "thousand": Decimal(1_000),
    "grand": Decimal(1_000),
    "m": Decimal(1_000_000),
    "mm": Decimal(1_000_000),
    "mn": Decimal(1_000_000),
    "mil": Decimal(1_000_000),
    "million": Decimal(1_000_000),
    "b": Decimal(1_000_000_000),
    "bn": Decimal(1_000_000_000),
    "billion": Decimal(1_000_000_000),
}
_MAX_DIGITS = 15  # a trillion dollars and change: anything longer is not a deal value

_GROUPS = ",.'’\u00a0\u202f"
MONEY_RE = re.compile(
    rf"""
    (?<![\w.,/:'’\-])
    (?:(?P<code1>[A-Za-z]{{3}})\ ?)?
    (?:(?P<sign1>{alternation(_SIGNS)})\ ?)?
    (?P<num>\d+(?:[{_GROUPS}]\d+)*)
    (?:
        (?P<suffix>k|mm|mn|m|bn|b)(?!\w)
      | \ ?(?P<word>thousand|million|billion|grand|mil)\b
      | (?![\d\w]|[/\-:.,]\d)
    )
    (?:\ ?(?P<sign2>{alternation(_SIGNS)}))?
    (?:\ ?(?P<code2>[A-Za-z]{{3}})(?!\w))?
    (?:\ (?P<cword>{alternation(_WORD_CURRENCIES)})\b)?
    """,
    re.VERBOSE | re.IGNORECASE,
)


def read_number(digits: str, info: LocaleInfo, *, scaled: bool = False) -> Decimal | None:
    """`12,500` / `12.500,50` / `12,00,000` / `1.5` -> Decimal, or None if it is not one number.

    With two kinds of separator the last is the decimal mark. One kind used once and
    followed by exactly three digits ("€40.000", "12,500") groups thousands, since amounts
    do not have three decimals; only before a k/m/b suffix ("1.250m") does the locale's
    decimal symbol keep its meaning. Spaces and apostrophes only ever group. Groups after
    the first have 2 (Indian lakh) or 3 digits, the last 3.
    """
    separators = [c for c in digits if not c.isdigit()]
    if not separators:
        return Decimal(digits)
    kinds = list(dict.fromkeys(separators))
    decimal_mark: str | None
    if len(kinds) > 2:
        return None
    if len(kinds) == 2:
        decimal_mark = kinds[1]
        if separators.count(decimal_mark) > 1:
            return None
    elif len(separators) > 1:
        decimal_mark = None
    else:
        mark = kinds[0]
        tail = digits.rsplit(mark, 1)[1]
        if mark not in ".,":
            decimal_mark = None
        elif len(tail) == 3:
            decimal_mark = mark if scaled and mark == info.decimal_symbol else None
        else:
            decimal_mark = mark
    if decimal_mark is not None and decimal_mark not in ".,":
        return None
    whole, fraction = digits.rsplit(decimal_mark, 1) if decimal_mark else (digits, "")
    groups = re.split(f"[{_GROUPS}]", whole)
    if len(groups) > 1 and (
        not 1 <= len(groups[0]) <= 3
        or len(groups[-1]) != 3
        or any(len(g) not in (2, 3) for g in groups[1:-1])
    ):
        return None
    return Decimal("".join(groups) + ("." + fraction if fraction else ""))


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


def _currency(match: re.Match[str], info: LocaleInfo) -> tuple[str | None, int, int]:
    """The currency named around the figure, and the span of the figure with its valid marks."""
    start, end = match.start("num"), match.end("suffix") if match.group("suffix") else -1
    if end < 0:
        end = match.end("word") if match.group("word") else match.end("num")
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
            currency = currency or _WORD_CURRENCIES[word.lower()]
            currency = currency or info.currency_for_sign("$") or "USD"
            end = max(end, match.end("cword"))
    return currency, start, end


def bare_amount_rule(candidate_digits: str, value: Decimal, next_word: str) -> bool:
    """Whether a figure with no sign, code, suffix or period still reads as the value.

    Reps write small numbers for other things ("12 seats", "3 users", "Studio 54") and
    years in names ("Vision 2027"), so a bare figure counts only if it has grouping or
    exactly two decimals ("12,500", "99.50") or is a whole number of at least 1,000 that
    is not year-like (1900–2099); and never if a word other than a connector follows it
    ("5000 seats" counts seats).
    """
    if next_word and next_word.lower() not in CONNECTORS:
        return False
    if not candidate_digits.isdigit():
        return value >= 1000 or value.as_tuple().exponent == -2
    return value >= 1000 and not 1900 <= value <= 2099


_NEXT_WORD = re.compile(r" ?([^\W\d_]+)")


def _candidate(match: re.Match[str], text: str, info: LocaleInfo) -> MoneyCandidate | None:
    digits = match.group("num")
    if sum(c.isdigit() for c in digits) > _MAX_DIGITS:
        return None
    if len(digits) > 1 and digits.startswith("0") and digits[1:2].isdigit():
        # "000" in "40 000 USD" is the tail of a space-grouped figure, never an amount of 0.
        return None
    scale_word = (match.group("suffix") or match.group("word") or "").lower()
    number = read_number(digits, info, scaled=bool(scale_word))
    if number is None:
        return None
    try:
        cents = int(
            (number * _SCALES.get(scale_word, Decimal(1)) * 100).quantize(Decimal(1), ROUND_HALF_UP)
        )
    except InvalidOperation:
        return None
    currency, start, end = _currency(match, info)
    period_match = period_right_after(text, end)
    period = period_of(period_match) if period_match else None
    strong = bool(currency or scale_word or period)
    plausible = False
    if not strong:
        next_word = _NEXT_WORD.match(text, end)
        plausible = bare_amount_rule(digits, number, next_word.group(1) if next_word else "")
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
    )


def find_money(text: str, info: LocaleInfo) -> list[MoneyCandidate]:
    """Every figure in `text` that could be an amount, in order (percentages are read first)."""
    found = []
    for match in MONEY_RE.finditer(text):
        candidate = _candidate(match, text, info)
        if candidate is not None:
            found.append(candidate)
    return found


def parse_money(text: str, *, locale: str = DEFAULT_LOCALE) -> Money | None:
    """The amount in a value field ("12k", "$12,500", "1.5k/mo", "40000 EUR"), else None.

    The whole text must be one amount (a period may follow); a bare number is fine here
    because the field says it is money. Negative or percent figures are not amounts.
    """
    cleaned = normalize(text).strip().rstrip(".")
    info = locale_info(locale)
    match = MONEY_RE.match(cleaned)
    if match is None:
        return None
    candidate = _candidate(match, cleaned, info)
    if candidate is None or candidate.start != 0 or cleaned[candidate.period_end :].strip():
        return None
    return Money(cents=candidate.cents, currency=candidate.currency, period=candidate.period)


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
