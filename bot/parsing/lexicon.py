"""The words a user's line is read with: their language's vocabulary merged with English's, folded for matching."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bot.parsing.languages import Phrase, Re, Vocabulary, de, en, es, fr, it, nl, pt

__all__ = [
    "LANGUAGES",
    "Lexicon",
    "fold",
    "fold_key",
    "lexicon_for",
    "phrase_alternation",
    "word_alternation",
]

LANGUAGES: dict[str, Vocabulary] = {
    v.code: v
    for v in (
        en.VOCABULARY,
        de.VOCABULARY,
        fr.VOCABULARY,
        es.VOCABULARY,
        pt.VOCABULARY,
        it.VOCABULARY,
        nl.VOCABULARY,
    )
}


def _fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0xC0, 0x250):
        decomposed = unicodedata.normalize("NFD", chr(code))
        base, marks = decomposed[0], decomposed[1:]
        if (
            base.isascii()
            and base.isalpha()
            and marks
            and all(unicodedata.combining(m) for m in marks)
        ):
            table[code] = base
    for apostrophe in "’‘ʼ":
        table[ord(apostrophe)] = "'"
    return table


_FOLD = _fold_table()


def fold(text: str) -> str:
    """`Clôture` -> `Cloture`, `mañana` -> `manana`, `d’ici` -> `d'ici`: same length, so positions line up.

    People often type without accents (or their phone adds a curly apostrophe); matching
    folded text against folded words accepts both spellings.
    """
    return text.translate(_FOLD)


def fold_key(text: str) -> str:
    """A typed word or phrase as a dictionary key: folded, lower case, single spaces."""
    return " ".join(fold(text).casefold().split())


def _merge(vocabularies: tuple[Vocabulary, ...]) -> Vocabulary:
    """One vocabulary: tuples in order (the user's language first); mappings with folded keys,
    where the user's language wins a word both use (`mil` is a thousand in Spanish)."""
    merged: dict[str, Any] = {"code": "+".join(v.code for v in vocabularies), "name": ""}
    for spec in dataclasses.fields(Vocabulary):
        if spec.name in ("code", "name", "dateparser"):
            continue
        values = [getattr(v, spec.name) for v in vocabularies]
        if spec.name == "space_groups":
            merged[spec.name] = any(values)
        elif spec.name == "sales":
            sales: dict[str, tuple[str, ...]] = {}
            for value in values:
                for kind, phrases in value.items():
                    sales[kind] = (*sales.get(kind, ()), *phrases)
            merged[spec.name] = sales
        elif isinstance(values[0], Mapping):
            mapping: dict[str, Any] = {}
            for value in reversed(values):
                mapping.update({fold_key(k): v for k, v in value.items()})
            merged[spec.name] = mapping
        else:
            merged[spec.name] = tuple(dict.fromkeys(item for value in values for item in value))
    return Vocabulary(**merged)


_DATE_NAMES = ("months", "weekdays", "weekday_abbreviations")


def _without_english_clashes(own: Vocabulary, merged: Vocabulary) -> Vocabulary:
    """The user's language wins a date name English uses otherwise: French `mar.` is Tuesday
    (mardi), not English `Mar` (March)."""
    english = LANGUAGES["en"]
    own_names = {
        fold_key(name).rstrip("."): getattr(own, field)[name]
        for field in _DATE_NAMES
        for name in getattr(own, field)
    }
    changes: dict[str, Any] = {}
    for field in _DATE_NAMES:
        mapping = dict(getattr(merged, field))
        for name in getattr(english, field):
            key = fold_key(name)
            if key.rstrip(".") in own_names and key not in {
                fold_key(n) for n in getattr(own, field)
            }:
                mapping.pop(key, None)
        changes[field] = mapping
    return dataclasses.replace(merged, **changes)


@dataclass(frozen=True, eq=False)
class Lexicon:
    """What a line in `language` is read with (English is always understood too)."""

    language: str
    words: Vocabulary
    dateparser_languages: tuple[str, ...]
    connectors: frozenset[str]
    """Folded words dropped from the ends of a lead: the connectors and the date introducers."""
    articles: frozenset[str]
    particles: frozenset[str]
    inner_connectors: frozenset[str]
    chatter: frozenset[str]
    status_keys: frozenset[str]


def _keys(words: Iterable[str]) -> frozenset[str]:
    return frozenset(fold_key(w) for w in words)


@lru_cache(maxsize=len(LANGUAGES))
def lexicon_for(language: str) -> Lexicon:
    """The lexicon for a language code (`de`); a language we have no words for reads as English."""
    own = LANGUAGES.get(language)
    vocabularies = (own, LANGUAGES["en"]) if own and own.code != "en" else (LANGUAGES["en"],)
    words = _merge(vocabularies)
    if len(vocabularies) > 1:
        words = _without_english_clashes(vocabularies[0], words)
    return Lexicon(
        language=vocabularies[0].code,
        words=words,
        dateparser_languages=tuple(v.dateparser for v in vocabularies if v.dateparser),
        connectors=_keys((*words.connectors, *words.date_introducers)),
        articles=_keys(words.articles),
        particles=_keys(words.particles),
        inner_connectors=_keys(words.inner_connectors),
        chatter=_keys(words.chatter),
        status_keys=_keys(words.status_keys),
    )


_NOTHING = (
    "(?!)"  # an empty list of words matches nothing (an empty alternation would match anywhere)
)


def _phrase(phrase: Phrase) -> str:
    """A regex for a typed phrase, bounded on the sides that are word characters."""
    if isinstance(phrase, Re):
        return phrase.source
    text = fold(phrase).lower()
    if text.startswith("/"):
        body = r"/\s?" + r"\s+".join(re.escape(w) for w in text[1:].split())
    else:
        body = r"\s+".join(re.escape(w) for w in text.split())
    head = r"(?<!\w)" if text[:1].isalnum() else ""
    tail = r"(?!\w)" if text[-1:].isalnum() else ""
    return head + body + tail


def phrase_alternation(phrases: Iterable[Phrase]) -> str:
    """Phrases as one alternation (longest first), each bounded where it starts or ends with a letter."""
    items = list(dict.fromkeys(phrases))
    plain = sorted((p for p in items if isinstance(p, str)), key=len, reverse=True)
    ordered: list[Phrase] = [*plain, *(p for p in items if isinstance(p, Re))]
    return "|".join(_phrase(p) for p in ordered) or _NOTHING


def word_alternation(words: Iterable[str]) -> str:
    """Words for use inside a larger regex (the caller bounds them): folded, longest first."""
    folded = {fold(w).lower() for w in words}
    if not folded:
        return _NOTHING
    return "|".join(
        r"\s+".join(re.escape(part) for part in w.split())
        for w in sorted(folded, key=len, reverse=True)
    )
