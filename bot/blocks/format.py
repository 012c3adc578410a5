"""How values read to people in Slack: money with its period, dates like "Fri 15 Jan 2027"."""

from __future__ import annotations

from datetime import date

from bot.close.models import ValuePeriod
from bot.parsing.money import format_money
from bot.parsing.periods import period_label


def format_money_period(
    cents: int, currency: str | None = None, period: ValuePeriod | None = None
) -> str:
    amount = format_money(cents, currency)
    return f"{amount} {period_label(period)}" if period else amount


def format_date(value: date) -> str:
    return f"{value:%a} {value.day} {value:%b %Y}"
