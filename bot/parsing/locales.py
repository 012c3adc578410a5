"""What a locale decides for parsing and formatting: language, date order, number symbols, home currency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Literal

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    get_territory_currencies,
)

from bot.parsing.lexicon import LANGUAGES

DEFAULT_LOCALE = "en-US"
# Slack's own locale names that are not CLDR's: its Latin American Spanish.
_SLACK_LOCALES = {"es-la": "es_419", "es_la": "es_419"}
DateOrder = Literal["MDY", "DMY", "YMD"]

# babel answers "which currency does this territory use" for a given day; a fixed day
# keeps formatting pure (no clock read) and currencies change too rarely to matter.
_CURRENCY_DAY = date(2025, 1, 1)


@dataclass(frozen=True, slots=True)
class LocaleInfo:
    """The parts of a babel locale the parser and formatter need."""

    name: str
    babel: Locale
    language: str
    """The language the line is read in (`de` for de-AT); `en` when we have no words for it."""
    date_order: DateOrder
    decimal_symbol: str
    group_symbol: str
    currency: str
    """The locale's home currency (USD for en-US, GBP for en-GB)."""
    known: bool
    """False when the locale could not be read and en-US stood in for it."""

    def currency_for_sign(self, sign: str) -> str | None:
        """The home currency if the locale writes it with `sign` (`$` in en-CA is CAD)."""
        return self.currency if get_currency_symbol(self.currency, self.babel) == sign else None


def _date_order(loc: Locale) -> DateOrder:
    pattern = loc.date_formats["short"].pattern
    positions = {c: pattern.find(c) for c in "dMy"}
    if min(positions.values()) < 0:
        return "MDY"
    order = "".join(sorted("dMy", key=lambda c: positions[c])).upper()
    if order == "MDY":
        return "MDY"
    if order.startswith("Y"):
        return "YMD"
    return "DMY"


@lru_cache(maxsize=64)
def locale_info(name: str) -> LocaleInfo:
    """Locale facts for `en-US`, `en_GB`, `de`…; an unreadable name falls back to en-US."""
    known = True
    try:
        loc = Locale.parse(_SLACK_LOCALES.get(name.lower(), name.replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        known = False
        loc = Locale.parse(DEFAULT_LOCALE.replace("-", "_"))
    currencies = (
        get_territory_currencies(loc.territory, start_date=_CURRENCY_DAY) if loc.territory else []
    )
    return LocaleInfo(
        name=name,
        babel=loc,
        language=loc.language if loc.language in LANGUAGES else "en",
        date_order=_date_order(loc),
        decimal_symbol=get_decimal_symbol(loc),
        group_symbol=get_group_symbol(loc),
        currency=currencies[0] if currencies else "USD",
        known=known,
    )
