"""Reading how often a value recurs: `/mo`, `per year`, `ARR`, `one-time` -> Close's value_period."""

from __future__ import annotations

import re

from bot.close.models import ValuePeriod

_MONTHLY = r"/\s?(?:mo|mos|mon|mth|month|m)\b|per\s+(?:month|mo|mth)\b|(?<!in\s)\ba\s+month\b|\bmonthly\b|\bmrr\b|\bp/m\b"
_ANNUAL = (
    r"/\s?(?:yr|yrs|year|y|annum)\b|per\s+(?:year|yr|annum)\b|(?<!in\s)\ba\s+year\b"
    r"|\bannual(?:ly)?\b|\byearly\b|\barr\b|\bp\.?a\.?(?!\w)|\bper\s+anum\b"
)
_ONE_TIME = r"\bone[\s-]?(?:time|off)\b|\bonce[\s-]off\b|\bnon[\s-]recurring\b"

PERIOD_RE = re.compile(
    rf"(?P<monthly>{_MONTHLY})|(?P<annual>{_ANNUAL})|(?P<one_time>{_ONE_TIME})", re.IGNORECASE
)


def period_of(match: re.Match[str]) -> ValuePeriod:
    """The value_period a PERIOD_RE match stands for."""
    if match.group("monthly"):
        return "monthly"
    if match.group("annual"):
        return "annual"
    return "one_time"


def period_right_after(text: str, end: int) -> re.Match[str] | None:
    """A period written straight after a figure (`1.5k/mo`, `12k ARR`, `40k one-time`)."""
    pos = end
    while pos < len(text) and text[pos] == " ":
        pos += 1
    return PERIOD_RE.match(text, pos)


_LABELS: dict[ValuePeriod, str] = {"annual": "annual", "monthly": "monthly", "one_time": "one-time"}


def period_label(period: ValuePeriod | None) -> str:
    """How a value_period reads to people: "annual", "monthly", "one-time" ("" when unset)."""
    return _LABELS[period] if period else ""
