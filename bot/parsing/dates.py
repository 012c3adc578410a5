"""Finding the close date in a line (`next friday`, `Dec 15`, `3/4`, `EOQ`, `Q1`) and resolving it in the user's zone.

Common phrases are found and resolved by the patterns below: that is fast (well under
the per-line budget, where one `dateparser.parse` call alone costs ~0.5 ms) and never
over-eager (a `60%` or a year in a lead name is not a date). They follow dateparser's
own readings with `PREFER_DATES_FROM=future` (tests compare them), with two deliberate
differences: a date without a year is never in the past (`Nov 14` typed on Nov 14 is
today, `the 13th` typed on the 14th is next month's 13th), and a month alone (`by March`)
is the last day of that month. Sales phrases dateparser does not know (EOM, EOQ, Q1–Q4,
EOY…) are resolved here, and any other phrase after a connector (`close`, `by`, `on`…)
goes to dateparser, restricted to English and loaded once by `warm_up`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta

from bot.parsing.locales import DateOrder, LocaleInfo
from bot.parsing.tokens import (
    DATE_INTRODUCERS,
    FULL_WEEKDAYS,
    MASK,
    MONTHS,
    WEEKDAYS,
    Workspace,
    alternation,
)

__all__ = ["DateContext", "DateHit", "find_date", "warm_up_dateparser"]


@dataclass(frozen=True, slots=True)
class DateContext:
    """The user's "now" in their own zone, and their locale."""

    now: datetime
    """Naive wall-clock time in the user's zone: dateparser's RELATIVE_BASE."""
    locale: LocaleInfo

    @property
    def today(self) -> date:
        return self.now.date()


@dataclass(frozen=True, slots=True)
class DateHit:
    """A date phrase found in the text: where it is (connector included) and what it means."""

    start: int
    end: int
    phrase: str
    value: date
    connector: bool
    warnings: tuple[str, ...] = field(default=())


Resolved = tuple[date, list[str]] | None
Resolver = Callable[[re.Match[str], DateContext, bool, str], Resolved]

_M = alternation(MONTHS)
_WD = alternation(WEEKDAYS)
_START = r"(?<![\w/.\-:$€£])"
_END = r"(?!\w|[/.\-:]\d)"
_NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "couple": 2,
    "a couple": 2,
    "a couple of": 2,
    "couple of": 2,
}
_COUNT = rf"(?:\d{{1,3}}|{alternation(_NUMBER_WORDS)})"
_UNIT = r"(?P<unit>business\s+day|day|week|wk|fortnight|month|mo|year|yr)s?"

# Words that introduce a close date; they are taken with it so the lead does not keep them.
_CONNECTORS = [
    *DATE_INTRODUCERS,
    "until",
    "before",
    "target",
    "targeting",
    "eta",
    "est",
    "in",
    "around",
    "within",
    "for",
]
_CONNECTOR_TAIL = re.compile(
    rf"(?:(?<![\w])(?:{alternation(_CONNECTORS)})[ :]+(?:the\s+)?)+$", re.IGNORECASE
)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _quarter_end(year: int, quarter: int) -> date:
    return _month_end(year, quarter * 3)


def _quarter_of(day: date) -> int:
    return (day.month - 1) // 3 + 1


def _past(phrase: str, value: date, ctx: DateContext) -> list[str]:
    return [f"{phrase!r} is in the past ({value.isoformat()})"] if value < ctx.today else []


def _on_or_after(ctx: DateContext, month: int, day: int, phrase: str) -> Resolved:
    """The next `month`/`day` on or after today; warns when that skipped a recent date."""
    for year in range(ctx.today.year, ctx.today.year + 9):
        try:
            value = date(year, month, day)
        except ValueError:
            continue
        if value >= ctx.today:
            warnings = []
            if year > ctx.today.year and _recently_passed(ctx.today, month, day):
                warnings.append(
                    f"{phrase!r} read as {value.isoformat()} (next year); type the year for a past date"
                )
            return value, warnings
    return None


def _recently_passed(today: date, month: int, day: int) -> bool:
    """Whether this year's `month`/`day` was within the last month (a past date, mistyped?)."""
    try:
        this_year = date(today.year, month, day)
    except ValueError:
        return False
    return 0 < (today - this_year).days <= 31


def _explicit(year: int, month: int, day: int, ctx: DateContext, phrase: str) -> Resolved:
    try:
        value = date(year, month, day)
    except ValueError:
        return None
    return value, _past(phrase, value, ctx)


def _year(text: str) -> int:
    number = int(text)
    return 2000 + number if len(text) <= 2 else number


# --- resolvers: (match, context, has_connector, phrase) -> (date, warnings) | None --------


def _sales(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    today = ctx.today
    kind = match.lastgroup
    if kind == "eom":
        return _month_end(today.year, today.month), []
    if kind == "eonm":
        nxt = today + relativedelta(months=1)
        return _month_end(nxt.year, nxt.month), []
    if kind == "eoq":
        return _quarter_end(today.year, _quarter_of(today)), []
    if kind == "nextq":
        nxt = today + relativedelta(months=3)
        return _quarter_end(nxt.year, _quarter_of(nxt)), []
    if kind == "eoy":
        return date(today.year, 12, 31), []
    if kind == "eony":
        return date(today.year + 1, 12, 31), []
    if kind in ("eow", "eonw"):
        friday = today + timedelta(days=(4 - today.weekday()) % 7)
        return friday + timedelta(days=7 if kind == "eonw" else 0), []
    return None


_SALES_RE = re.compile(
    r"(?<!\w)(?:"
    r"(?P<eonm>end\s+of\s+next\s+month)"
    r"|(?P<eom>eom|end\s+of\s+(?:the\s+|this\s+)?month|(?:this\s+)?month[\s-]end|this\s+month)"
    r"|(?P<nextq>(?:end\s+of\s+)?next\s+quarter)"
    r"|(?P<eoq>eoq|end\s+of\s+(?:the\s+|this\s+)?quarter|(?:this\s+)?quarter[\s-]end|this\s+quarter)"
    r"|(?P<eony>end\s+of\s+next\s+year)"
    r"|(?P<eoy>eoy|end\s+of\s+(?:the\s+|this\s+)?year|(?:this\s+)?year[\s-]end|this\s+year)"
    r"|(?P<eonw>end\s+of\s+next\s+week)"
    r"|(?P<eow>eow|end\s+of\s+(?:the\s+|this\s+)?week|this\s+week)"
    r")(?!\w)",
    re.IGNORECASE,
)


def _quarter(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    quarter = int(match.group("q") or match.group("q2"))
    year_text = match.group("yy") or match.group("yyyy") or match.group("yyyy2")
    if year_text:
        value = _quarter_end(_year(year_text), quarter)
        return value, _past(phrase, value, ctx)
    value = _quarter_end(ctx.today.year, quarter)
    if value < ctx.today:
        value = _quarter_end(ctx.today.year + 1, quarter)
    return value, []


_QUARTER_RE = re.compile(
    r"(?<![\w'])(?:(?:end\s+of\s+)?q(?P<q>[1-4])(?:\s*['’](?P<yy>\d{2})|\s+(?P<yyyy>20\d{2}))?"
    r"|(?P<yyyy2>20\d{2})[\s-]?q(?P<q2>[1-4]))(?!\w)",
    re.IGNORECASE,
)


def _iso(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    return _explicit(int(match["y"]), int(match["m"]), int(match["d"]), ctx, phrase)


_ISO_RE = re.compile(rf"{_START}(?P<y>\d{{4}})([-/.])(?P<m>\d{{1,2}})\2(?P<d>\d{{1,2}}){_END}")

_ORDER_NAMES: dict[DateOrder, str] = {
    "MDY": "month first",
    "DMY": "day first",
    "YMD": "month first",
}


def _numeric(match: re.Match[str], ctx: DateContext, connector: bool, phrase: str) -> Resolved:
    """`3/4`, `12/15/2026`, `15.12.2026`: month or day first as the user's locale writes it."""
    a, b, sep, year_text = int(match["a"]), int(match["b"]), match["sep"], match["year"]
    if not year_text and sep != "/" and not connector:
        return None  # "3.5" or "3-5" without "close"/"by" is more likely a number or a range
    month_first = ctx.locale.date_order != "DMY"
    month, day = (a, b) if month_first else (b, a)
    warnings: list[str] = []
    if not 1 <= month <= 12:
        if not (connector or year_text) or not 1 <= day <= 12:
            return None  # "24/7" in a lead name
        month, day = day, month
        warnings.append(f"{phrase!r} read with the {'day' if month_first else 'month'} first")
    elif a != b and a <= 12 and b <= 12:
        spelled = (
            f"{calendar.month_name[month]} {day}"
            if month_first
            else f"{day} {calendar.month_name[month]}"
        )
        warnings.append(f"{phrase} read as {spelled} ({ctx.locale.name})")
    if year_text:
        resolved = _explicit(_year(year_text), month, day, ctx, phrase)
    else:
        resolved = _on_or_after(ctx, month, day, phrase) if 1 <= day <= 31 else None
    if resolved is None:
        return None
    return resolved[0], warnings + resolved[1]


_NUMERIC_RE = re.compile(
    rf"{_START}(?P<a>\d{{1,2}})(?P<sep>[/.\-])(?P<b>\d{{1,2}})(?:(?P=sep)(?P<year>\d{{4}}|\d{{2}}))?{_END}"
)


def _named(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    month = MONTHS[match["month"].lower()]
    day = int(match["day"])
    if match["year"]:
        return _explicit(int(match["year"]), month, day, ctx, phrase)
    return _on_or_after(ctx, month, day, phrase)


_ORD = r"(?:st|nd|rd|th)"
_MONTH_DAY_RE = re.compile(
    rf"{_START}(?P<month>{_M})\.?\s+(?:the\s+)?(?P<day>\d{{1,2}}){_ORD}?"
    rf"(?:,?\s+(?P<year>\d{{4}}))?{_END}",
    re.IGNORECASE,
)
_DAY_MONTH_RE = re.compile(
    rf"{_START}(?:the\s+)?(?P<day>\d{{1,2}}){_ORD}?\s+(?:of\s+)?(?P<month>{_M})(?!\w)\.?"
    rf"(?:,?\s+(?P<year>\d{{4}}))?{_END}",
    re.IGNORECASE,
)


def _month_only(match: re.Match[str], ctx: DateContext, connector: bool, phrase: str) -> Resolved:
    """`by March` (end of March), `mid March` (the 15th), `December 2026`, `end of Jan`."""
    if not (connector or match["year"] or match["prefix"]):
        return None  # "may" alone is a verb far more often than a month
    month = MONTHS[match["month"].lower()]
    mid = bool(match["prefix"]) and match["prefix"].lower().startswith("mid")
    if match["year"]:
        year = int(match["year"])
        value = date(year, month, 15) if mid else _month_end(year, month)
        return value, _past(phrase, value, ctx)
    if mid:
        return _on_or_after(ctx, month, 15, phrase)
    year = ctx.today.year if month >= ctx.today.month else ctx.today.year + 1
    return _month_end(year, month), []


_MONTH_ONLY_RE = re.compile(
    rf"{_START}(?P<prefix>end\s+of\s+|mid[\s-]?)?(?P<month>{_M})(?!\w)\.?"
    rf"(?:\s+(?P<year>\d{{4}}))?(?!\w|\s*\d)",
    re.IGNORECASE,
)


def _ordinal(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    """`the 15th`: the next 15th on or after today (skipping months too short for it)."""
    day = int(match["day"])
    if not 1 <= day <= 31:
        return None
    start = ctx.today.replace(day=1)
    for months in range(0, 13):
        first = start + relativedelta(months=months)
        if day <= calendar.monthrange(first.year, first.month)[1]:
            value = first.replace(day=day)
            if value >= ctx.today:
                return value, []
    return None


_ORDINAL_RE = re.compile(rf"{_START}(?:the\s+)?(?P<day>\d{{1,2}}){_ORD}(?!\w)", re.IGNORECASE)


def _weekday(match: re.Match[str], ctx: DateContext, connector: bool, phrase: str) -> Resolved:
    """`friday`/`next friday`: the next one after today; `this friday`: today or later."""
    name = match["wd"].lower()
    modifier = (match["mod"] or "").lower()
    if not modifier and not connector and name not in FULL_WEEKDAYS:
        return None  # "Sun" alone may be Sun Microsystems
    ahead = (WEEKDAYS[name] - ctx.today.weekday()) % 7
    if modifier == "last":
        value = ctx.today - timedelta(days=(7 - ahead) if ahead else 7)
        return value, _past(phrase, value, ctx)
    if modifier != "this" and ahead == 0:
        ahead = 7
    return ctx.today + timedelta(days=ahead), []


_WEEKDAY_RE = re.compile(
    rf"{_START}(?:(?P<mod>next|this|coming|last)\s+)?(?P<wd>{_WD})(?!\w)\.?", re.IGNORECASE
)


def _relative_word(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    word = match["word"].lower()
    if word == "yesterday":
        value = ctx.today - timedelta(days=1)
        return value, _past(phrase, value, ctx)
    if "after" in word:
        return ctx.today + timedelta(days=2), []
    if word in ("tomorrow", "tmrw", "tmr", "tmw", "tmrrw"):
        return ctx.today + timedelta(days=1), []
    return ctx.today, []


_RELATIVE_WORD_RE = re.compile(
    r"(?<!\w)(?P<word>(?:the\s+)?day\s+after\s+tomorrow|today|tonight|eod|cob|tomorrow|tmrw|tmrrw|tmr|tmw|yesterday)(?!\w)",
    re.IGNORECASE,
)


def _shift(ctx: DateContext, count: int, unit: str) -> date:
    unit = {"wk": "week", "mo": "month", "yr": "year"}.get(unit.lower(), unit.lower())
    if unit.startswith("business"):
        value = ctx.today
        while count > 0:
            value += timedelta(days=1)
            count -= value.weekday() < 5
        return value
    if unit == "day":
        return ctx.today + timedelta(days=count)
    if unit in ("week", "fortnight"):
        return ctx.today + timedelta(weeks=count * (2 if unit == "fortnight" else 1))
    if unit == "month":
        return ctx.today + relativedelta(months=count)
    return ctx.today + relativedelta(years=count)


def _in_n(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    """`in 2 weeks`, `within a month`, `3 days from now`, `next week` (+7 days, as dateparser)."""
    count_text = re.sub(r"\s+", " ", match["n"] or "1").lower()
    count = int(count_text) if count_text.isdigit() else _NUMBER_WORDS[count_text]
    unit = re.sub(r"\s+", " ", match["unit"])
    if count > 1200:
        return None
    return _shift(ctx, count, unit), []


_IN_N_RE = re.compile(
    rf"(?<!\w)(?:(?:in|within)\s+(?P<n>{_COUNT})\s+{_UNIT}"
    rf"|(?P<n2>{_COUNT})\s+{_UNIT.replace('unit', 'unit2')}\s+(?:from\s+(?:now|today)|out)"
    rf"|next\s+(?P<unit3>week|month|year))(?!\w)",
    re.IGNORECASE,
)


def _in_n_any(match: re.Match[str], ctx: DateContext, c: bool, phrase: str) -> Resolved:
    if match["unit3"]:
        return _shift(ctx, 1, match["unit3"]), []
    if match["n2"]:
        count_text = re.sub(r"\s+", " ", match["n2"]).lower()
        count = int(count_text) if count_text.isdigit() else _NUMBER_WORDS[count_text]
        if count > 1200:
            return None
        return _shift(ctx, count, re.sub(r"\s+", " ", match["unit2"])), []
    return _in_n(match, ctx, c, phrase)


# Order matters only for ties: of two hits starting at the same place the longer wins.
_PATTERNS: tuple[tuple[re.Pattern[str], Resolver], ...] = (
    (_SALES_RE, _sales),
    (_QUARTER_RE, _quarter),
    (_ISO_RE, _iso),
    (_NUMERIC_RE, _numeric),
    (_MONTH_DAY_RE, _named),
    (_DAY_MONTH_RE, _named),
    (_MONTH_ONLY_RE, _month_only),
    (_ORDINAL_RE, _ordinal),
    (_WEEKDAY_RE, _weekday),
    (_RELATIVE_WORD_RE, _relative_word),
    (_IN_N_RE, _in_n_any),
)


def _connector_before(text: str, start: int) -> int | None:
    """Where the connector words right before `start` begin ("closing on " in "closing on the 15th")."""
    window_start = max(0, start - 40)
    match = _CONNECTOR_TAIL.search(text, window_start, start)
    return match.start() if match else None


def find_date(ws: Workspace, ctx: DateContext) -> tuple[DateHit | None, list[str]]:
    """The close date in the unread text, with warnings; a connector-led phrase wins over others."""
    text = ws.text
    hits: list[DateHit] = []
    for pattern, resolve in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            connector_start = _connector_before(text, start)
            phrase = ws.original[start:end]
            resolved = resolve(match, ctx, connector_start is not None, phrase)
            if resolved is None:
                continue
            value, warnings = resolved
            hits.append(
                DateHit(
                    start=start if connector_start is None else connector_start,
                    end=end,
                    phrase=phrase,
                    value=value,
                    connector=connector_start is not None,
                    warnings=tuple(warnings),
                )
            )
    if not hits:
        fallback = _dateparser_fallback(ws, ctx)
        return fallback, list(fallback.warnings) if fallback else []
    hits.sort(key=lambda h: (h.start, -(h.end - h.start)))
    distinct: list[DateHit] = []
    for hit in hits:
        if not distinct or hit.start >= distinct[-1].end:
            distinct.append(hit)
    chosen = next((h for h in distinct if h.connector), distinct[0])
    warnings = list(chosen.warnings)
    others = [h.phrase for h in distinct if h is not chosen]
    if others:
        warnings.append(
            f"several dates ({', '.join(repr(p) for p in [chosen.phrase, *others])}): "
            f"used {chosen.phrase!r}"
        )
    return chosen, warnings


# --- dateparser, for phrases the patterns above do not know -----------------------------

_DATEISH = re.compile(
    rf"(?<!\w)(?:{_M}|{_WD}|today|tomorrow|tonight|yesterday|weekend|fortnight|"
    rf"days?|weeks?|months?|years?|\d{{1,2}}{_ORD}|\d+[/.\-]\d+|\d+\s?(?:d|w|wks?|mos?|y|yrs?))(?!\w)",
    re.IGNORECASE,
)
_AFTER_CONNECTOR = re.compile(
    rf"(?<![\w])(?:{alternation(_CONNECTORS)})\s+((?:[^\s{MASK},;|]+ ?){{1,4}})", re.IGNORECASE
)
_SETTINGS: dict[DateOrder, dict[str, Any]] = {
    order: {
        "PREFER_DATES_FROM": "future",
        "DATE_ORDER": order,
        "RETURN_AS_TIMEZONE_AWARE": False,
        "PREFER_LOCALE_DATE_ORDER": False,
    }
    for order in ("MDY", "DMY", "YMD")
}
_LANGUAGES = ["en"]


def dateparser_parse(phrase: str, ctx: DateContext) -> date | None:
    """dateparser's reading of one phrase, relative to the user's local now."""
    import dateparser  # loaded by warm_up; imported here so importing this module stays cheap

    settings = {**_SETTINGS[ctx.locale.date_order], "RELATIVE_BASE": ctx.now}
    try:
        result = dateparser.parse(phrase, languages=_LANGUAGES, settings=settings)
    except Exception:  # dateparser raises assorted errors on odd input; a non-date is fine
        return None
    return result.date() if result is not None else None


def _dateparser_fallback(ws: Workspace, ctx: DateContext) -> DateHit | None:
    for match in _AFTER_CONNECTOR.finditer(ws.text):
        words = match.group(1).split()
        for size in range(len(words), 0, -1):
            phrase = " ".join(words[:size]).rstrip(".!?")
            if not _DATEISH.search(phrase):
                continue
            value = dateparser_parse(phrase, ctx)
            if value is None:
                continue
            start = match.start()
            end = match.start(1) + len(" ".join(words[:size]))
            typed = ws.original[match.start(1) : end]
            return DateHit(
                start=start,
                end=end,
                phrase=typed,
                value=value,
                connector=True,
                warnings=tuple(_past(typed, value, ctx)),
            )
    return None


def warm_up_dateparser() -> None:
    """Import dateparser and load its English data now, not on the first request."""
    from bot.parsing.locales import locale_info

    for order, locale in (("MDY", "en-US"), ("DMY", "en-GB"), ("YMD", "en-CA")):
        ctx = DateContext(now=datetime(2025, 1, 1, 12), locale=locale_info(locale))
        assert ctx.locale.date_order == order
        dateparser_parse("in 2 weeks", ctx)
        dateparser_parse("December 15th", ctx)
