"""Matching a lead name typed in text to the leads Close found: exact-ish wins, fuzzy suggests."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from pydantic import BaseModel
from rapidfuzz import fuzz

from bot.close.models import Lead

_LEGAL_SUFFIXES = {
    "inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation", "co", "company",
    "gmbh", "ag", "sa", "sas", "sarl", "bv", "nv", "plc", "pty", "oy", "ab", "as", "srl", "spa",
    "kk", "lp", "llp",
}  # fmt: skip
_WORD = re.compile(r"[a-z0-9]+")


def normalize_company(name: str) -> str:
    """Casefolded, accents and punctuation removed, legal suffixes dropped: "Acme, Inc." -> "acme"."""
    folded = unicodedata.normalize("NFKD", name.casefold())
    ascii_only = "".join(ch for ch in folded if not unicodedata.combining(ch))
    # "S.A." and "N.V." are one word each; "&" reads as "and".
    words = _WORD.findall(ascii_only.replace(".", "").replace("&", " and "))
    while len(words) > 1 and words[-1] in _LEGAL_SUFFIXES:
        words.pop()
    return " ".join(words)


def search_term(name: str) -> str:
    """What to ask Close for: the name without a trailing legal suffix ("Umbrella Limited" ->
    "Umbrella"), so Close's phrase search also finds "Umbrella Ltd"."""
    words = name.split()
    while len(words) > 1 and normalize_company(words[-1]) in ("", *_LEGAL_SUFFIXES):
        words.pop()
    return " ".join(words).strip(" ,.")


class LeadMatch(BaseModel):
    """The lead to preselect (None: create a new one), and other close candidates to mention."""

    lead: Lead | None = None
    others: list[Lead] = []


def match_lead(name: str, candidates: Sequence[Lead], *, threshold: float = 90.0) -> LeadMatch:
    wanted = normalize_company(name)
    if not wanted:
        return LeadMatch()
    scored: list[tuple[float, int, Lead]] = []
    for index, lead in enumerate(candidates):
        normalized = normalize_company(lead.label)
        score = 100.0 if normalized == wanted else fuzz.ratio(wanted, normalized)
        scored.append((score, -index, lead))
    scored.sort(key=lambda item: (item[0], item[1]), reverse=True)
    good = [lead for score, _, lead in scored if score >= threshold]
    if not good:
        return LeadMatch()
    return LeadMatch(lead=good[0], others=good[1:4])
