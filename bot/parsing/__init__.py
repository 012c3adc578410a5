"""Pure parsing of what users type: one line of text -> a Draft. No network, no clock reads."""

from bot.parsing.draft import Draft
from bot.parsing.money import Money, format_money, parse_money
from bot.parsing.parser import is_warm, parse, warm_a_piece, warm_up, warming
from bot.parsing.periods import period_label

__all__ = [
    "Draft",
    "Money",
    "format_money",
    "is_warm",
    "parse",
    "parse_money",
    "period_label",
    "warm_a_piece",
    "warm_up",
    "warming",
]
