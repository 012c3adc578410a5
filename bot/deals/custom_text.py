"""Custom fields typed as `Field Name: value` in the text, read out before the general parse."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field
from rapidfuzz import fuzz

from bot.blocks.custom_fields import HIDDEN_TYPES
from bot.close.models import CustomField, User
from bot.parsing.confidence import confidence_pattern
from bot.parsing.lead import key_value_end, unquote
from bot.parsing.lexicon import fold, lexicon_for, word_alternation
from bot.parsing.locales import DEFAULT_LOCALE, LocaleInfo, locale_info
from bot.parsing.money import find_money, read_figure
from bot.parsing.periods import period_pattern

# Names the parser reads itself (`lead: …`, `status: …`, `note: …`): a custom field named
# like them is left to the parser rather than read twice.
RESERVED_NAMES = frozenset(
    {"lead", "company", "account", "customer", "client", "status", "stage", "note", "notes"}
)
FUZZY_CHOICE = 85.0  # rapidfuzz ratio for "Referal" -> "Referral", not "Inbound" -> "Outbound"

# A figure as the user's locale writes it (`1,250.5`, `1.250,5`, `12'500`).
_NUMBER = re.compile(r"\s*(-?)(\d+(?:[,.'\u00a0\u202f]\d+)*)(?![\w%$€£])")
_DATE = re.compile(r"\s*(\d{4}-\d{2}-\d{2})(?![\w:])")
_DATETIME = re.compile(r"\s*(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:?\d{2})?)")
_WORD = re.compile(r"\S+")
_LIST_SEPARATOR = re.compile(r"\s*(?:,|/|\+|&|\band\b)\s*", re.IGNORECASE)
_TRAILING_DELIMITER = re.compile(r"\s*[,;|]")


class CustomFieldText(BaseModel):
    """The text with the custom field parts taken out, and what they said (cf_id -> value)."""

    text: str
    custom: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


def _name_key(name: str) -> str:
    """A field name for matching: accents folded, lower case, single spaces (`Größe`, `Region`
    typed for `Région`). Not casefold: `ß` must stay one character, as typed."""
    return " ".join(fold(name).lower().split())


@lru_cache(maxsize=8)
def _language_keys(language: str) -> tuple[frozenset[str], re.Pattern[str]]:
    """The keys the parser reads itself in `language` (and English), and its note keys."""
    words = lexicon_for(language).words
    reserved = RESERVED_NAMES | {
        _name_key(k) for k in (*words.lead_keys, *words.status_keys, *words.note_keys)
    }
    note = re.compile(rf"(?<![\w])(?:{word_alternation(words.note_keys)})\s*:", re.IGNORECASE)
    return frozenset(reserved), note


def read_custom_fields(
    text: str,
    fields: Sequence[CustomField],
    *,
    users: Sequence[User] = (),
    tz: str = "UTC",
    locale: str = DEFAULT_LOCALE,
) -> CustomFieldText:
    """Find `Name: value` for the org's custom fields in `text`, names as Close spells them
    in whatever language (case and accents optional: `quelle:` for "Quelle").

    Each recognised part is removed so the general parse does not read it as the lead or
    the value; a value that does not fit its field is removed too, with a warning.
    Everything after `note:` (or the user's language's word for it) is the note's and is
    left alone; a name the parser reads as a key in that language (`Kunde:`) is left to it.
    Numbers and the deal's own fields that end a value are read in the user's `locale`; a
    date and time without an offset in their zone `tz`.
    """
    try:
        zone: tzinfo = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    if not fields or ":" not in text:
        return CustomFieldText(text=text)
    info = locale_info(locale)
    reserved, note_pattern = _language_keys(info.language)
    by_name = {
        _name_key(f.name): f
        for f in fields
        if f.type not in HIDDEN_TYPES and f.name.strip() and _name_key(f.name) not in reserved
    }
    if not by_name:
        return CustomFieldText(text=text)
    pattern = _names_pattern(by_name)
    folded = fold(text)  # same length as `text`: positions line up
    note = note_pattern.search(folded)
    limit = note.start() if note else len(text)
    custom: dict[str, Any] = {}
    warnings: list[str] = []
    cuts: list[tuple[int, int]] = []
    matches = list(pattern.finditer(folded, 0, limit))
    for index, match in enumerate(matches):
        if cuts and match.start() < cuts[-1][1]:
            continue  # inside the (quoted) value of the previous field
        field = by_name[_name_key(match.group("name"))]
        start = match.end()
        # A value ends at a delimiter, at `word:`, or where the next field's name begins
        # (names of several words: "Competitor: Initrode Contract start: …").
        following = matches[index + 1].start() if index + 1 < len(matches) else limit
        end = min(key_value_end(text, start), following, limit)
        value, used_end = _read_value(
            field, text, start, end, _Reading(users, zone, info), min(following, limit)
        )
        if value is None:
            # Take out what was typed for it, but not the deal's value or date after it.
            typed, used_end = _read_text(text, start, end, info)
            if field.type == "contact":
                warnings.append(f"{field.name}: pick the contact once the lead is chosen")
            elif typed:
                warnings.append(
                    f"{field.name}: “{typed[:60]}” does not fit the field; pick it below"
                )
        elif field.id not in custom:
            custom[field.id] = value
        trailing = _TRAILING_DELIMITER.match(text, used_end)
        cuts.append((match.start(), trailing.end() if trailing else used_end))
    if not cuts:
        return CustomFieldText(text=text)
    return CustomFieldText(text=_without(text, cuts), custom=custom, warnings=warnings)


def _names_pattern(by_name: dict[str, CustomField]) -> re.Pattern[str]:
    """`Name:` for each field, the longest names first (a name may contain a shorter one)."""
    names = sorted(by_name, key=len, reverse=True)
    return re.compile(
        r"(?<![\w])(?P<name>"
        + "|".join(r"\s+".join(map(re.escape, n.split())) for n in names)
        + r")\s*:\s*",
        re.IGNORECASE,
    )


def _without(text: str, cuts: list[tuple[int, int]]) -> str:
    """`text` without the (start, end) spans in `cuts`, spaces folded."""
    kept, position = [], 0
    for start, end in cuts:
        kept.append(text[position:start])
        position = end
    kept.append(text[position:])
    return " ".join(" ".join(kept).split())


@dataclass(frozen=True, slots=True)
class _Reading:
    """Who is typing: the org's users (for user fields), their zone and their locale."""

    users: Sequence[User]
    zone: tzinfo
    info: LocaleInfo


def _read_value(
    field: CustomField, text: str, start: int, end: int, reading: _Reading, hard_end: int
) -> tuple[Any, int]:
    """(the value as Close takes it, where it ends in `text`), or (None, end) if it does not fit.

    `end` is where a free-text value stops (a comma…); `hard_end` where the next field begins,
    for values with a shape of their own ("1,250", a date and time).
    """
    kind = field.type
    if kind == "choices":
        return _read_choices(field, text, start, end)
    if kind == "number":
        return _read_number(text, start, end, hard_end, reading.info)
    if kind == "date":
        found = _DATE.match(text, start, hard_end)
        return (found.group(1), found.end()) if found else (None, end)
    if kind == "datetime":
        found = _DATETIME.match(text, start, hard_end)
        if found is None:
            return None, end
        when = datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))
        aware = when if when.tzinfo else when.replace(tzinfo=reading.zone)
        return aware.isoformat(), found.end()
    if kind == "user":
        labels = [(user.display_name, user.id) for user in reading.users]
        labels += [(user.first_name, user.id) for user in reading.users if user.first_name]
        return _best_phrase(labels, text, start, end)
    if kind == "contact":
        return None, end  # the lead's contacts are known only once the lead is chosen
    return _read_text(text, start, end, reading.info)


def _read_number(
    text: str, start: int, end: int, hard_end: int, info: LocaleInfo
) -> tuple[int | float | None, int]:
    """A number as the user's locale writes it: `1.250` is 1250 in de-DE, 1.25 in en-US."""
    number = _NUMBER.match(text, start, hard_end)
    if number is None:
        return None, end
    figure = read_figure(number.group(2), info, strict=True)
    if figure is None:
        return None, end
    value = -figure.value if number.group(1) else figure.value
    whole = value == value.to_integral_value()
    return (int(value) if whole else float(value)), number.end()


def _read_choices(field: CustomField, text: str, start: int, end: int) -> tuple[Any, int]:
    pairs = [(choice, choice) for choice in field.choices]
    first, position = _best_phrase(pairs, text, start, end)
    if first is None or not field.accepts_multiple_values:
        return first, position
    chosen = [first]
    while (separator := _LIST_SEPARATOR.match(text, position)) is not None:
        following, after = _best_phrase(pairs, text, separator.end(), _list_end(text, separator))
        if following is None:
            break
        if following not in chosen:
            chosen.append(following)
        position = after
    return chosen, position


def _list_end(text: str, separator: re.Match[str]) -> int:
    """A multi-value list continues past the comma that ends a single value."""
    return key_value_end(text, separator.end())


def _best_phrase(
    pairs: Sequence[tuple[str, str]], text: str, start: int, end: int
) -> tuple[str | None, int]:
    """The label (returning its value) that the words at `start` spell, exactly or nearly."""
    words = list(_WORD.finditer(text, start, end))
    best: tuple[float, int, int, str] | None = None  # score, words used, end, value
    for label, value in pairs:
        size = len(label.split())
        if not size or size > len(words):
            continue
        typed = text[words[0].start() : words[size - 1].end()]
        typed_folded = " ".join(fold(unquote(typed)).split()).casefold().rstrip(".!")
        wanted = " ".join(fold(label).split()).casefold()
        score = 100.0 if typed_folded == wanted else fuzz.ratio(typed_folded, wanted)
        if score >= FUZZY_CHOICE and (best is None or (score, size) > best[:2]):
            best = (score, size, words[size - 1].end(), value)
    if best is None:
        return None, end
    return best[3], best[2]


def _read_text(text: str, start: int, end: int, info: LocaleInfo) -> tuple[str | None, int]:
    """Free text up to the next delimiter, or to where the deal's own fields begin (in the
    user's language: `Wettbewerber: Schmidt jährlich` stops before `jährlich`)."""
    segment = text[start:end]
    folded = fold(segment)
    stops = [len(segment)]
    for pattern in (confidence_pattern(info.language), period_pattern(info.language)):
        found = pattern.search(folded)
        if found:
            stops.append(found.start())
    stops += [c.start for c in find_money(folded, info) if c.strong]
    stop = min(s for s in stops if s > 0) if any(s > 0 for s in stops) else len(segment)
    typed = segment[:stop].strip()
    value = unquote(typed)
    if value == typed:  # a quoted value is kept as quoted, its final period included
        value = value.strip(" .")
    return (value or None), start + stop
