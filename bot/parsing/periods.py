"""Reading how often a value recurs: `/mo`, `per year`, `ARR`, `jährlich`, `par mois` -> Close's value_period."""

from __future__ import annotations

import re
from functools import lru_cache

from bot.close.models import ValuePeriod
from bot.parsing.lexicon import lexicon_for, phrase_alternation

__all__ = ["PERIOD_RE", "period_label", "period_of", "period_pattern", "period_right_after"]


def _compile(monthly: str, annual: str, one_time: str) -> re.Pattern[str]:
    # Every period starts a word or with `/`: the guard skips the middle of words before
    # trying the dozens of phrases (a third of the time).
    return re.compile(
        rf"(?:(?<!\w)|(?=/))(?:(?P<monthly>{monthly})|(?P<annual>{annual})|(?P<one_time>{one_time}))",
        re.IGNORECASE,
    )


@lru_cache(maxsize=16)
def period_pattern(language: str, *, after_amount: bool = False) -> re.Pattern[str]:
    """The period words of `language` (and English). `after_amount` adds the words that are a
    period only right after a figure (`15k único`)."""
    words = lexicon_for(language).words
    one_time = (*words.one_time, *(words.one_time_after_amount if after_amount else ()))
    return _compile(
        phrase_alternation(words.monthly),
        phrase_alternation(words.annual),
        phrase_alternation(one_time),
    )


PERIOD_RE = period_pattern("en")
"""English only, for callers outside the line parser."""


def period_of(match: re.Match[str]) -> ValuePeriod:
    """The value_period a period pattern's match stands for."""
    if match.group("monthly"):
        return "monthly"
    if match.group("annual"):
        return "annual"
    return "one_time"


def period_right_after(text: str, end: int, language: str = "en") -> re.Match[str] | None:
    """A period written straight after a figure (`1.5k/mo`, `12k ARR`, `12.500 € jährlich`)."""
    pos = end
    while pos < len(text) and text[pos] == " ":
        pos += 1
    return period_pattern(language, after_amount=True).match(text, pos)


_LABELS: dict[ValuePeriod, str] = {"annual": "annual", "monthly": "monthly", "one_time": "one-time"}


def period_label(period: ValuePeriod | None) -> str:
    """How a value_period reads to people: "annual", "monthly", "one-time" ("" when unset)."""
    return _LABELS[period] if period else ""
