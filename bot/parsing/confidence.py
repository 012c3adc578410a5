"""Reading the win confidence: `60%`, `60 %`, `60 percent`, `confidence 60`, `60 Prozent`, `probabilité 60 %`."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from bot.parsing.lexicon import lexicon_for, phrase_alternation, word_alternation

__all__ = ["CONFIDENCE_RE", "confidence_pattern", "confidence_value"]

_NUMBER = r"(?P<n>\d{1,4}(?:[.,]\d+)?)"


@lru_cache(maxsize=8)
def confidence_pattern(language: str) -> re.Pattern[str]:
    """`60 %` and its words in `language` (and English)."""
    words = lexicon_for(language).words
    percent = rf"(?:%|{phrase_alternation(words.percent_words)})"
    after = word_alternation(words.confidence_after)
    before = word_alternation(words.confidence_before)
    links = word_alternation(words.confidence_links)
    return re.compile(
        rf"(?<![\w.,]){_NUMBER}\s?{percent}(?:\s+(?:{after})(?!\w))?"
        rf"|(?<!\w)(?:{before})\s*(?:[:=]|(?:{links})(?!\w))?\s*"
        rf"{_NUMBER.replace('<n>', '<n2>')}(?:\s?{percent})?(?![\w]|[.,]\d)",
        re.IGNORECASE,
    )


CONFIDENCE_RE = confidence_pattern("en")
"""English only, for callers outside the line parser."""


def confidence_value(match: re.Match[str]) -> int | None:
    """The percentage a confidence match states, rounded; None when it is over 100."""
    number = Decimal((match.group("n") or match.group("n2")).replace(",", "."))
    value = int(number.quantize(Decimal(1), ROUND_HALF_UP))
    return value if 0 <= value <= 100 else None
