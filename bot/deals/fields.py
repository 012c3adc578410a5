"""Pure: the rules for a deal's typed fields, kept once for the modal and the workflow step."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import get_args

from bot.close.models import ValuePeriod
from bot.parsing.locales import DEFAULT_LOCALE
from bot.parsing.money import Money, parse_money
from bot.parsing.periods import PERIOD_RE, period_of

PERIODS: tuple[ValuePeriod, ...] = get_args(ValuePeriod)
# Words a person types for a one-time value that the period pattern (recurring words) lacks.
_ONE_TIME_WORDS = frozenset({"one_time", "one-time", "one time", "once"})
# "60", "60%", "60.0 %", "60,0": people copy a percentage from a sheet as often as they type it.
_CONFIDENCE = re.compile(r"^\s*(\d{1,3})(?:[.,]0+)?\s*%?\s*$")


@dataclass(frozen=True, slots=True)
class Invalid:
    """A field that breaks its rule, said for each place a user mends it: under the modal's
    field (`in_modal`, where they pick with a widget) and after a workflow step input's title
    (`in_step`, where they typed text in Workflow Builder)."""

    in_modal: str
    in_step: str


def read_value(text: str, *, locale: str = DEFAULT_LOCALE) -> Money | Invalid:
    """An amount ("12k", "$12,500", "1.5m/yr") as cents, with any currency and period typed."""
    money = parse_money(text, locale=locale)
    if money is None:
        said = f"“{text[:50]}” is not an amount. Try 12k, $12,500 or 1.5m."
        return Invalid(in_modal=said, in_step=said)
    return money


def read_period_choice(value: str) -> ValuePeriod | Invalid:
    """One of Close's periods exactly, as the modal's select sends it: anything else was not
    an option Slack showed, so it is refused rather than read as a word."""
    return _exact_period(value) or _not_a_period(value)


def read_period(text: str) -> ValuePeriod | Invalid:
    """one_time, monthly, annual, or any word the parser knows for them ("ARR", "per month")."""
    folded = " ".join(text.split()).casefold()
    exact = _exact_period(folded)
    if exact is not None:
        return exact
    if folded in _ONE_TIME_WORDS:
        return "one_time"
    match = PERIOD_RE.fullmatch(folded)
    return period_of(match) if match else _not_a_period(text)


def _exact_period(text: str) -> ValuePeriod | None:
    return next((period for period in PERIODS if period == text), None)


def _not_a_period(text: str) -> Invalid:
    return Invalid(
        in_modal="Pick one-time, monthly or annual.",
        in_step=f"“{text[:40]}” is not a period: use one_time, monthly or annual.",
    )


def read_confidence(text: str) -> int | Invalid:
    """A whole percentage from 0 to 100 ("60", "60%", "60.0")."""
    match = _CONFIDENCE.match(text)
    if not match or not 0 <= int(match.group(1)) <= 100:
        return Invalid(
            in_modal="Confidence is a whole number from 0 to 100.",
            in_step="a whole number from 0 to 100, e.g. 60.",
        )
    return int(match.group(1))


def read_date(text: str) -> date | Invalid:
    """A date as YYYY-MM-DD (the form the modal's date picker sends)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        return Invalid(
            in_modal="Pick a date with the date picker.",
            in_step=f"“{text[:40]}” is not a date: use YYYY-MM-DD.",
        )
