"""Reading the win confidence: `60%`, `60 %`, `60 percent`, `confidence 60`."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

_NUMBER = r"(?P<n>\d{1,4}(?:[.,]\d+)?)"
_PERCENT = r"(?:%|percent\b|per\s?cent\b|pct\b)"
_WORDS = r"(?:confidence|confident|likely|likelihood|chance|probability|prob|sure|odds)"

CONFIDENCE_RE = re.compile(
    rf"(?<![\w.,]){_NUMBER}\s?{_PERCENT}(?:\s+(?:of\s+)?{_WORDS}\b)?"
    rf"|(?<!\w)(?:confidence|conf|probability|prob|likelihood|chance)\s*(?:[:=]|of|at|is)?\s*"
    rf"{_NUMBER.replace('<n>', '<n2>')}(?:\s?{_PERCENT})?(?![\w]|[.,]\d)",
    re.IGNORECASE,
)


def confidence_value(match: re.Match[str]) -> int | None:
    """The percentage a CONFIDENCE_RE match states, rounded; None when it is over 100."""
    number = Decimal((match.group("n") or match.group("n2")).replace(",", "."))
    value = int(number.quantize(Decimal(1), ROUND_HALF_UP))
    return value if 0 <= value <= 100 else None
