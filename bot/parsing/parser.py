"""One line of text -> Draft: runs the field readers in an order where each one's text is safe from the next."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.close.models import ValuePeriod
from bot.parsing.confidence import confidence_pattern, confidence_value
from bot.parsing.dates import (
    DateContext,
    DateHit,
    date_words,
    dateparser_warming,
    find_date,
    warm_up_dateparser,
)
from bot.parsing.draft import Draft
from bot.parsing.lead import (
    QUOTED_RE,
    key_pattern,
    key_value_end,
    leftover_lead,
    tidy_name,
    trim_lead_in,
    unquote,
)
from bot.parsing.lexicon import LANGUAGES, fold, fold_key, lexicon_for, word_alternation
from bot.parsing.locales import DEFAULT_LOCALE, LocaleInfo, locale_info
from bot.parsing.money import (
    MoneyCandidate,
    ambiguity_warning,
    find_money,
    format_money,
    money_words,
)
from bot.parsing.periods import period_of, period_pattern
from bot.parsing.tokens import MASK, Workspace, normalize

__all__ = ["is_warm", "parse", "warm_up", "warming"]


@lru_cache(maxsize=8)
def _note_pattern(language: str) -> re.Pattern[str]:
    """`note:` and its words in `language` (`Notiz:`, `remarque :`, `nota:`)."""
    keys = word_alternation(lexicon_for(language).words.note_keys)
    return re.compile(rf"(?<![\w])(?:{keys})\s*:\s*", re.IGNORECASE)


# A note after a dash, as reps type it on phones: ` -- `, ` — `, ` – `, or a `—` glued to the
# words around it (phones turn `--` into `—`). Reps also use dashes between fields, so a dash
# starts the note only when nothing after it is a field (see `_dash_note`).
_NOTE_DASH = re.compile(r"\s(?:--+|[—–])(?:\s+|$)|(?<=\S)—(?=\S)")
_MENTION_RE = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_OTHER_SLACK_MARKUP = re.compile(r"<[#!][^>]*>|<(?:https?|mailto|tel):[^>]*>")
_MAX_CHARS = 4000  # Slack caps a command at 4,000 characters; longer text is not a deal line


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return None


def _context(now: datetime, tz: str, locale: str, warnings: list[str]) -> DateContext:
    zone = _zone(tz)
    if zone is None:
        warnings.append(f"unknown time zone {tz!r}; dates read in UTC")
        zone = UTC
    info = locale_info(locale)
    if not info.known:
        warnings.append(f"unknown locale {locale!r}; read as {DEFAULT_LOCALE}")
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return DateContext(now=aware.astimezone(zone).replace(tzinfo=None), locale=info)


def _status_pattern(labels: tuple[str, ...]) -> re.Pattern[str] | None:
    return _status_regex(
        tuple(sorted({" ".join(fold(label).split()) for label in labels if label.strip()}))
    )


@lru_cache(maxsize=32)
def _status_regex(labels: tuple[str, ...]) -> re.Pattern[str] | None:
    if not labels:
        return None
    words = sorted(labels, key=len, reverse=True)
    alternatives = "|".join(r"\s+".join(map(re.escape, label.split())) for label in words)
    return re.compile(rf"(?<![\w])(?:{alternatives})(?![\w])", re.IGNORECASE)


def _label_as_close_spells(typed: str, labels: Sequence[str]) -> str:
    """The status label as Close spells it (`negociation` typed -> `Négociation`)."""
    wanted = fold_key(typed)
    return next((label for label in labels if fold_key(label) == wanted), typed)


def _first_field_start(segment: str, ctx: DateContext) -> int:
    """Where, inside a `key:` value, another field begins (`lead: Acme 12k` stops before 12k)."""
    later = [s for s in _field_starts(segment, ctx) if s > 0]
    return min(later) if later else len(segment)


def _field_starts(segment: str, ctx: DateContext) -> list[int]:
    """Where fields begin in `segment`: a confidence, a period, an amount, a date."""
    starts = [len(segment)]
    language = ctx.locale.language
    for pattern in (confidence_pattern(language), period_pattern(language)):
        found = pattern.search(segment)
        if found:
            starts.append(found.start())
    # A bare figure with grouping (`40,000`) is an amount, not part of a name (`Studio 54`).
    starts += [
        c.start
        for c in find_money(segment, ctx.locale, strict=True)
        if c.strong
        or (
            c.plausible_bare
            and not c.text.isdigit()
            and max(c.cents, c.other_cents or 0) >= 100_000
        )
    ]
    hit, _ = find_date(Workspace(segment), ctx)
    if hit is not None:
        starts.append(hit.start)
    return starts


def _read_keys(
    ws: Workspace, draft: dict[str, object], ctx: DateContext, labels: Sequence[str]
) -> list[tuple[int, int]]:
    """`lead: …` and `status: …`: the value as typed, up to the next delimiter or field.

    Returns where lead words typed as the end of a name were (`Bluth Company: 18k`)."""
    lexicon = ctx.lexicon
    name_ends: list[tuple[int, int]] = []
    for match in list(ws.finditer(key_pattern(ctx.locale.language))):
        if not ws.free(match.start(), match.end()):
            continue
        key = "status" if fold_key(match.group("key")) in lexicon.status_keys else "lead"
        value_start = match.end()
        value_end = key_value_end(ws.text, value_start)
        segment = ws.text[value_start:value_end]
        before_field = False
        if not segment.lstrip().startswith(('"', "“", "„", "«")):
            pattern = _status_pattern(tuple(labels)) if key == "status" else None
            known = pattern.match(segment) if pattern else None
            cut = known.end() if known else _first_field_start(segment, ctx)
            before_field = known is None and cut < len(segment)
            value_end = value_start + cut
        if key == "lead" and _ends_a_name(ws, match, segment, ctx):
            # `opp for Bluth Company: $18,000/yr`: the colon ends the name.
            name_ends.append((match.start("key"), match.end("key")))
            ws.take(match.start(), match.end())
            continue
        value = unquote(ws.original[value_start:value_end])
        if key == "lead" and before_field:
            value = trim_lead_in(value, lexicon)  # `lead: Acme for 40k`: "for" leads into the value
        value = tidy_name(value) if key == "lead" else value.strip(" .")
        ws.take(match.start(), value_end)
        if value and draft.get(key) is None:
            draft[key] = value
    return name_ends


def _with_name_end(lead: str | None, ws: Workspace, name_ends: list[tuple[int, int]]) -> str | None:
    """The lead with the key word that ended it, when it is the words right before one."""
    for start, end in name_ends:
        if lead and ws.original[:start].rstrip().endswith(lead):
            return f"{lead} {ws.original[start:end]}"
    return lead


def _ends_a_name(ws: Workspace, key: re.Match[str], value: str, ctx: DateContext) -> bool:
    """A lead key after words of the line, with a field right after its colon, is the last
    word of a name (`deal with Bluth Company: 18k`), not a key."""
    before = ws.text[: key.start()]
    if not before.strip() or not before[-1:].isspace() or MASK in before[-2:]:
        return False
    stripped = value.lstrip()
    return bool(stripped) and 0 in _field_starts(stripped, ctx)


def _read_confidence(ws: Workspace, language: str, warnings: list[str]) -> int | None:
    found: list[tuple[str, int]] = []
    for match in list(ws.finditer(confidence_pattern(language))):
        typed = ws.take(*match.span())
        value = confidence_value(match)
        if value is None:
            warnings.append(f"{typed!r} is not a confidence between 0 and 100; ignored")
        else:
            found.append((typed, value))
    if len({value for _, value in found}) > 1:
        warnings.append(
            f"several confidences ({', '.join(repr(t) for t, _ in found)}): used {found[0][0]!r}"
        )
    return found[0][1] if found else None


def _money_warnings(
    ws: Workspace, info: LocaleInfo, chosen: MoneyCandidate, others: list[MoneyCandidate]
) -> list[str]:
    warnings = []
    typed = ws.original[chosen.start : chosen.end]
    if chosen.other_cents is not None:
        # `1.500` in en-US: read as the locale writes numbers, and said, not silently guessed.
        warnings.append(ambiguity_warning(typed, chosen.cents, chosen.other_cents, info.name))
    if any(o.cents != chosen.cents for o in others):
        listed = ", ".join(repr(ws.original[c.start : c.end]) for c in [chosen, *others])
        warnings.append(f"several amounts ({listed}): used {typed!r}")
    return warnings


def _read_strong_money(ws: Workspace, info: LocaleInfo) -> tuple[MoneyCandidate | None, list[str]]:
    """Figures with a sign, code, suffix, scale word or period: the first is the value."""
    strong = [c for c in find_money(ws.text, info, strict=True) if c.strong]
    for candidate in strong:
        ws.take(candidate.start, candidate.end)
    if not strong:
        return None, []
    return strong[0], _money_warnings(ws, info, strong[0], strong[1:])


def _read_periods(ws: Workspace, language: str, warnings: list[str]) -> ValuePeriod | None:
    found: list[tuple[str, ValuePeriod]] = []
    for match in list(ws.finditer(period_pattern(language))):
        found.append((ws.take(*match.span()), period_of(match)))
    if len({p for _, p in found}) > 1:
        warnings.append(
            f"several periods ({', '.join(repr(t) for t, _ in found)}): used {found[0][0]!r}"
        )
    return found[0][1] if found else None


def _read_bare_money(ws: Workspace, info: LocaleInfo, warnings: list[str]) -> MoneyCandidate | None:
    """A plain figure is the value only when nothing else was (see `money.bare_amount_rule`)."""
    bare = [c for c in find_money(ws.text, info, strict=True) if c.plausible_bare]
    if not bare:
        return None
    chosen = bare[0]
    if chosen.other_cents is None:  # else the ambiguity warning says how it was read
        typed = ws.original[chosen.start : chosen.end]
        warnings.append(
            f"{typed!r} read as the value ({format_money(chosen.cents, locale=info.name)})"
        )
    warnings.extend(_money_warnings(ws, info, chosen, bare[1:]))
    for candidate in bare:
        ws.take(candidate.start, candidate.end)
    return chosen


def _find_date_before_note(ws: Workspace, ctx: DateContext) -> tuple[DateHit | None, list[str]]:
    """The close date; one before a dash that may start a note is not in doubt because the
    note mentions a day too (`close Q2 -- CTO signs off next week`)."""
    hit, warnings = find_date(ws, ctx)
    if hit is None or not warnings:
        return hit, warnings
    dash = _NOTE_DASH.search(ws.text, max(hit.end, ws.text.rfind(MASK) + 1))
    if dash is None:
        return hit, warnings
    head_hit, head_warnings = find_date(ws.up_to(dash.start()), ctx)
    same = head_hit is not None and (head_hit.start, head_hit.end) == (hit.start, hit.end)
    return (head_hit, head_warnings) if same else (hit, warnings)


def _name_like(words: str) -> bool:
    """Every word starts with a capital or a digit (`Jones`, `Jones Partners`), as names do
    and notes, which are sentences, do not."""
    return all(not word[:1].islower() for word in words.split())


def _dash_note(ws: Workspace, ctx: DateContext, *, lead_known: bool) -> str | None:
    """The note after a dash (`… close Q2 -- champion is the CTO`), taken out of `ws`.

    Only a dash with no field read after it starts a note (`Acme — 12k — close Q2` keeps its
    fields), and only when the words before it still hold a lead (`12k ARR — Acme Corp`: the
    words after the dash are the lead).
    """
    dash = _NOTE_DASH.search(ws.text, ws.text.rfind(MASK) + 1)
    if dash is None:
        return None
    note = ws.original[dash.end() :].strip()
    if not any(ch.isalnum() for ch in note):
        return None
    if dash.group() == "—" and _name_like(note):
        return None  # `Smith—Jones`: a glued dash between capitalised words joins a name
    if not lead_known and leftover_lead(ws.unread()[: dash.start()], ctx.lexicon)[0] is None:
        return None
    ws.take(dash.start(), len(ws.text))
    return note


def _parse(text: str, now: datetime, tz: str, locale: str, status_labels: Sequence[str]) -> Draft:
    warnings: list[str] = []
    ctx = _context(now, tz, locale, warnings)
    text = normalize(text)
    if len(text) > _MAX_CHARS:
        warnings.append(f"text longer than {_MAX_CHARS} characters; read the start only")
        text = text[:_MAX_CHARS]
    fields: dict[str, object] = {}
    language = ctx.locale.language

    note_match = _note_pattern(language).search(fold(text))
    if note_match:
        fields["note"] = text[note_match.end() :].strip() or None
        text = text[: note_match.start()]
    ws = Workspace(text)

    owners = [ws.take(*m.span()) and m.group(1) for m in list(ws.finditer(_MENTION_RE))]
    if owners:
        fields["owner"] = owners[0]
        if len(set(owners)) > 1:
            warnings.append(f"several people mentioned: {owners[0]} is the owner")
    for markup in list(ws.finditer(_OTHER_SLACK_MARKUP)):
        ws.take(*markup.span())

    name_ends = _read_keys(ws, fields, ctx, status_labels)
    if fields.get("lead") is None:
        quoted = QUOTED_RE.search(ws.text)
        if quoted:
            fields["lead"] = unquote(ws.take(*quoted.span())) or None

    fields["confidence"] = _read_confidence(ws, language, warnings)

    money, money_warnings = _read_strong_money(ws, ctx.locale)
    warnings += money_warnings
    period = _read_periods(ws, language, warnings)

    hit, date_warnings = _find_date_before_note(ws, ctx)
    if hit is not None:
        ws.take(hit.start, hit.end)
        fields["date_won"] = hit.value
        warnings += date_warnings

    if money is None:
        money = _read_bare_money(ws, ctx.locale, warnings)
    if money is not None:
        fields["value"] = money.cents
        fields["value_currency"] = money.currency
    fields["value_period"] = money.period if money is not None and money.period else period

    pattern = _status_pattern(tuple(status_labels))
    if fields.get("status") is None and pattern is not None:
        labels = [m for m in ws.finditer(pattern)]
        if labels:
            typed = ws.take(*labels[0].span())
            fields["status"] = _label_as_close_spells(typed, status_labels)

    if fields.get("note") is None:
        fields["note"] = _dash_note(ws, ctx, lead_known=fields.get("lead") is not None)

    if fields.get("lead") is None:
        lead, lead_warnings = leftover_lead(ws.unread(), ctx.lexicon)
        fields["lead"] = _with_name_end(lead, ws, name_ends)
        warnings += lead_warnings

    return Draft.model_validate({**fields, "warnings": warnings})


def parse(
    text: str,
    *,
    now: datetime,
    tz: str = "UTC",
    locale: str = DEFAULT_LOCALE,
    status_labels: Sequence[str] = (),
) -> Draft:
    """Read a line like `Acme Corp $12k ARR 60% close next friday` into a Draft.

    Pure: `now` (aware, or naive meaning UTC) is the reference instant, seen from the
    user's IANA zone `tz`; `locale` picks the language the line is read in besides English
    (`de-DE`: `Müller GmbH 12.500 € jährlich Abschluss nächsten Freitag`, see
    `bot/parsing/languages/`) and decides `3/4` and number separators; `status_labels` are
    the org's Close status labels, recognised when typed as they are (accents optional).
    Never raises: odd input gives a Draft with warnings.
    """
    try:
        return _parse(text, now, tz, locale, status_labels)
    except Exception as exc:  # the contract is "never raises"; a bug must not cost the modal
        return Draft(warnings=[f"could not read the text ({type(exc).__name__}); fill in the form"])


def warm_up(languages: Sequence[str] = ("en",)) -> None:
    """Load now what parsing these languages needs: dateparser's data, babel's locale data,
    the zone database, each language's patterns, so that no request pays for it.

    Start-up warms English (the default, and read alongside every other language); another
    language loads on its first line instead (15-40 ms, once per process), which spares a
    process the ~12 MB of the six it may never see. `warming` does English a piece at a time.
    """
    for _ in warming():
        pass
    now = datetime(2025, 1, 1, tzinfo=UTC)
    for language in languages:
        if language != "en":
            warm_up_dateparser((language,))
            _warm_language(language, now)


def warming() -> Iterator[None]:
    """English's warm-up a piece at a time (a date order each, tens of ms), for a caller that
    has other things to do in between. Every caller continues where the last one stopped; it
    ends at once when English is warm."""
    global _pending
    if _pending is None:
        _pending = _warm_pieces()
    return _pending


def warm_a_piece() -> bool:
    """One piece of `warming` (tens of ms); False once English is warm."""
    return next(warming(), _OVER) is not _OVER


def is_warm() -> bool:
    """True once English is warm (`warm_up`, or `warming` to its end) in this process."""
    return _warm


_pending: Iterator[None] | None = None
_warm = False
_OVER = object()  # what `next(warming(), _OVER)` gives once it is over (its pieces yield None)


def _warm_pieces() -> Iterator[None]:
    global _warm
    yield from dateparser_warming(("en",))
    now = datetime(2025, 1, 1, tzinfo=UTC)
    _warm_language("en", now)
    format_money(1_200_000, None, "en-GB")
    _zone("UTC")
    parse("Acme $12k ARR 60% close next friday", now=now)
    _warm = True


def _warm_language(language: str, now: datetime) -> None:
    locale = DEFAULT_LOCALE if language == "en" else language
    format_money(1_200_000, None, locale)
    money_words(language)
    date_words(language)
    month = next(iter(LANGUAGES[language].months))
    parse(f"Acme 12k 60% {month} 15 note: x", now=now, locale=locale, status_labels=("Won",))
