"""One line of text -> Draft: runs the field readers in an order where each one's text is safe from the next."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.close.models import ValuePeriod
from bot.parsing.confidence import CONFIDENCE_RE, confidence_value
from bot.parsing.dates import DateContext, find_date, warm_up_dateparser
from bot.parsing.draft import Draft
from bot.parsing.lead import (
    KEY_RE,
    QUOTED_RE,
    STATUS_KEYS,
    key_value_end,
    leftover_lead,
    tidy_name,
    trim_lead_in,
    unquote,
)
from bot.parsing.locales import DEFAULT_LOCALE, LocaleInfo, locale_info
from bot.parsing.money import MoneyCandidate, find_money, format_money
from bot.parsing.periods import PERIOD_RE, period_of
from bot.parsing.tokens import Workspace, normalize

__all__ = ["parse", "warm_up"]

_NOTE_RE = re.compile(r"(?<![\w])notes?\s*:\s*", re.IGNORECASE)
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
        tuple(sorted({" ".join(label.split()) for label in labels if label.strip()}))
    )


@lru_cache(maxsize=32)
def _status_regex(labels: tuple[str, ...]) -> re.Pattern[str] | None:
    if not labels:
        return None
    words = sorted(labels, key=len, reverse=True)
    alternatives = "|".join(r"\s+".join(map(re.escape, label.split())) for label in words)
    return re.compile(rf"(?<![\w])(?:{alternatives})(?![\w])", re.IGNORECASE)


def _label_as_close_spells(typed: str, labels: Sequence[str]) -> str:
    wanted = " ".join(typed.split()).casefold()
    return next((label for label in labels if " ".join(label.split()).casefold() == wanted), typed)


def _first_field_start(segment: str, ctx: DateContext) -> int:
    """Where, inside a `key:` value, another field begins (`lead: Acme 12k` stops before 12k)."""
    starts = [len(segment)]
    for pattern in (CONFIDENCE_RE, PERIOD_RE):
        found = pattern.search(segment)
        if found:
            starts.append(found.start())
    # A bare figure with grouping (`40,000`) is an amount, not part of a name (`Studio 54`).
    starts += [
        c.start
        for c in find_money(segment, ctx.locale)
        if c.strong or (c.plausible_bare and not c.text.isdigit() and c.cents >= 100_000)
    ]
    hit, _ = find_date(Workspace(segment), ctx)
    if hit is not None:
        starts.append(hit.start)
    later = [s for s in starts if s > 0]
    return min(later) if later else len(segment)


def _read_keys(
    ws: Workspace, draft: dict[str, object], ctx: DateContext, labels: Sequence[str]
) -> None:
    """`lead: …` and `status: …`: the value as typed, up to the next delimiter or field."""
    for match in list(ws.finditer(KEY_RE)):
        if not ws.free(match.start(), match.end()):
            continue
        key = "status" if match.group("key").lower() in STATUS_KEYS else "lead"
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
        value = unquote(ws.original[value_start:value_end])
        if key == "lead" and before_field:
            value = trim_lead_in(value)  # `lead: Acme for 40k`: "for" leads into the value
        value = tidy_name(value) if key == "lead" else value.strip(" .")
        ws.take(match.start(), value_end)
        if value and draft.get(key) is None:
            draft[key] = value


def _read_confidence(ws: Workspace, warnings: list[str]) -> int | None:
    found: list[tuple[str, int]] = []
    for match in list(ws.finditer(CONFIDENCE_RE)):
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


def _money_warning(chosen: MoneyCandidate, others: list[MoneyCandidate]) -> list[str]:
    if all(o.cents == chosen.cents for o in others):
        return []
    typed = ", ".join(repr(c.text) for c in [chosen, *others])
    return [f"several amounts ({typed}): used {chosen.text!r}"]


def _read_strong_money(ws: Workspace, info: LocaleInfo) -> tuple[MoneyCandidate | None, list[str]]:
    """Figures with a sign, code, suffix, scale word or period: the first is the value."""
    strong = [c for c in find_money(ws.text, info) if c.strong]
    for candidate in strong:
        ws.take(candidate.start, candidate.end)
    if not strong:
        return None, []
    return strong[0], _money_warning(strong[0], strong[1:])


def _read_periods(ws: Workspace, warnings: list[str]) -> ValuePeriod | None:
    found: list[tuple[str, ValuePeriod]] = []
    for match in list(ws.finditer(PERIOD_RE)):
        found.append((ws.take(*match.span()), period_of(match)))
    if len({p for _, p in found}) > 1:
        warnings.append(
            f"several periods ({', '.join(repr(t) for t, _ in found)}): used {found[0][0]!r}"
        )
    return found[0][1] if found else None


def _read_bare_money(ws: Workspace, info: LocaleInfo, warnings: list[str]) -> MoneyCandidate | None:
    """A plain figure is the value only when nothing else was (see `money.bare_amount_rule`)."""
    bare = [c for c in find_money(ws.text, info) if c.plausible_bare]
    if not bare:
        return None
    for candidate in bare:
        ws.take(candidate.start, candidate.end)
    chosen = bare[0]
    warnings.append(
        f"{chosen.text!r} read as the value ({format_money(chosen.cents, locale=info.name)})"
    )
    warnings.extend(_money_warning(chosen, bare[1:]))
    return chosen


def _parse(text: str, now: datetime, tz: str, locale: str, status_labels: Sequence[str]) -> Draft:
    warnings: list[str] = []
    ctx = _context(now, tz, locale, warnings)
    text = normalize(text)
    if len(text) > _MAX_CHARS:
        warnings.append(f"text longer than {_MAX_CHARS} characters; read the start only")
        text = text[:_MAX_CHARS]
    fields: dict[str, object] = {}

    note_match = _NOTE_RE.search(text)
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

    _read_keys(ws, fields, ctx, status_labels)
    if fields.get("lead") is None:
        quoted = QUOTED_RE.search(ws.text)
        if quoted:
            ws.take(*quoted.span())
            fields["lead"] = unquote(quoted.group(0)) or None

    fields["confidence"] = _read_confidence(ws, warnings)

    money, money_warnings = _read_strong_money(ws, ctx.locale)
    warnings += money_warnings
    period = _read_periods(ws, warnings)

    hit, date_warnings = find_date(ws, ctx)
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

    if fields.get("lead") is None:
        lead, lead_warnings = leftover_lead(ws.text)
        fields["lead"] = lead
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
    user's IANA zone `tz`; `locale` decides `3/4` and number separators; `status_labels`
    are the org's Close status labels, recognised when typed as they are. Never raises:
    odd input gives a Draft with warnings.
    """
    try:
        return _parse(text, now, tz, locale, status_labels)
    except Exception as exc:  # the contract is "never raises"; a bug must not cost the modal
        return Draft(warnings=[f"could not read the text ({type(exc).__name__}); fill in the form"])


def warm_up() -> None:
    """Load dateparser's English data, babel's locale data and the zone database now.

    Call once at startup so the first request does not pay for it.
    """
    warm_up_dateparser()
    for locale in (DEFAULT_LOCALE, "en-GB"):
        format_money(1_200_000, None, locale)
    _zone("UTC")
    parse("Acme $12k ARR 60% close next friday", now=datetime(2025, 1, 1, tzinfo=UTC))
