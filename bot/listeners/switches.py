"""`/opportunity <word> on|off`: the person's own switches (nudges, alerts), read alike."""

from __future__ import annotations


def is_switch_command(text: str, word: str) -> bool:
    """`word`, `word on`, `word off` (a capitalized "Nudges Inc 12k" is a lead)."""
    words = text.split()
    return bool(words) and words[0] == word and len(words) <= 2


def switch_value(text: str) -> bool | None:
    """`word on` → True, `word off` → False; anything else (the word alone too) → None."""
    words = text.strip().lower().split()
    if len(words) != 2 or words[1] not in ("on", "off"):
        return None
    return words[1] == "on"
