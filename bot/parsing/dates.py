"""Finding the close date in a line (`next friday`, `Dec 15`, `3/4`, `EOQ`, `Q1`, `nächsten Freitag`, `fin du mois`) in the user's zone.

Common phrases are found and resolved by patterns built from each language's words
(`bot/parsing/languages/`): that is fast (well under the per-line budget, where one
`dateparser.parse` call alone costs ~0.5–1.5 ms) and never over-eager (a `60%` or a year
in a lead name is not a date). They follow dateparser's own readings with
`PREFER_DATES_FROM=future` (tests compare them), with two deliberate differences: a date
without a year is never in the past (`Nov 14` typed on Nov 14 is today, `the 13th` typed
on the 14th is next month's 13th), and a month alone (`by March`, `im März`) is the last
day of that month. Sales phrases dateparser does not know (EOM, EOQ, Q1–Q4, EOY,
`Monatsende`, `fin du trimestre`, `1. Quartal`…) are resolved here, and any other phrase
after an introducer (`close`, `by`, `bis`, `d'ici`…) goes to dateparser, restricted to the
user's language and English and loaded once by `warm_up`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from dateutil.relativedelta import relativedelta

from bot.parsing.lexicon import LANGUAGES, Lexicon, fold_key, lexicon_for, word_alternation
from bot.parsing.locales import DateOrder, LocaleInfo, locale_info
from bot.parsing.tokens import MASK, Workspace

__all__ = [
    "DateContext",
    "DateHit",
    "dateparser_parse",
    "dateparser_warming",
    "find_date",
    "warm_up_dateparser",
]


@dataclass(frozen=True, slots=True)
class DateContext:
    """The user's "now" in their own zone, and their locale."""

    now: datetime
    """Naive wall-clock time in the user's zone: dateparser's RELATIVE_BASE."""
    locale: LocaleInfo

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def lexicon(self) -> Lexicon:
        return lexicon_for(self.locale.language)


@dataclass(frozen=True, slots=True)
class DateHit:
    """A date phrase found in the text: where it is (connector included) and what it means."""

    start: int
    end: int
    phrase: str
    value: date
    connector: bool
    warnings: tuple[str, ...] = field(default=())
    kind: str = ""
    """The resolver that read it (`_weekday`, `_named`…)."""


Resolved = tuple[date, list[str]] | None
Resolver = Callable[[re.Match[str], DateContext, bool, str], Resolved]

_START = r"(?<![\w/.\-:$€£])"
_END = r"(?!\w|[/.\-:]\d)"


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


def _alternatives(*parts: str) -> str:
    """`a|b|c` of the parts a language has (an empty part is left out)."""
    return "|".join(p for p in parts if p) or "(?!)"


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


def _sales_re(lex: Lexicon) -> str:
    sales = lex.words.sales
    groups = [
        f"(?P<{kind}>{word_alternation(sales.get(kind, ()))})"
        for kind in ("eonm", "eom", "nextq", "eoq", "eony", "eoy", "eonw", "eow")
    ]
    return rf"(?<![\w'])(?:{'|'.join(groups)})(?!\w)"


def _quarter(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    groups = match.groupdict()
    number = next((groups.get(g) for g in ("q", "q2", "q3", "q4") if groups.get(g)), None)
    quarter = int(number) if number else ctx.lexicon.words.quarter_ordinals[fold_key(groups["qw"])]
    years = ("yy", "yy2", "yyyy", "yyyy2", "yyyy3")
    year_text = next((groups.get(g) for g in years if groups.get(g)), None)
    if year_text:
        value = _quarter_end(_year(year_text), quarter)
        return value, _past(phrase, value, ctx)
    value = _quarter_end(ctx.today.year, quarter)
    if value < ctx.today:
        value = _quarter_end(ctx.today.year + 1, quarter)
    return value, []


def _quarter_re(lex: Lexicon) -> str:
    words = lex.words
    end = word_alternation(words.end_prefixes)
    letters = word_alternation(words.quarter_letters)
    after = word_alternation(words.quarter_letters_after)
    nouns = word_alternation(words.quarter_nouns)
    suffixes = word_alternation(words.quarter_number_suffixes)
    ordinals = word_alternation(words.quarter_ordinals)
    year_links = word_alternation(words.year_links)
    prefix = rf"(?:(?:{end})\s+)?"
    return (
        r"(?<![\w'])(?:"
        + _alternatives(
            rf"{prefix}(?:{letters})(?P<q>[1-4])"
            rf"(?:\s*'(?P<yy>\d{{2}})|\s*/\s*(?P<yy2>\d{{2}})(?!\d)|[\s/]+(?P<yyyy>20\d{{2}}))?",
            rf"(?P<yyyy2>20\d{{2}})[\s-]?(?:{letters})(?P<q2>[1-4])",
            rf"{prefix}(?:(?P<q3>[1-4])(?:{suffixes})\s*|(?P<qw>{ordinals})\s+)(?:{nouns})"
            rf"(?:\s+(?:(?:{year_links})\s+)?(?P<yyyy3>20\d{{2}}))?"
            if "(?!)" not in nouns
            else "",
            rf"{prefix}(?P<q4>[1-4])(?:{after})" if "(?!)" not in after else "",
        )
        + r")(?!\w)"
    )


def _iso(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    return _explicit(int(match["y"]), int(match["m"]), int(match["d"]), ctx, phrase)


_ISO_RE = rf"{_START}(?P<y>\d{{4}})([-/.])(?P<m>\d{{1,2}})\2(?P<d>\d{{1,2}}){_END}"


def _numeric(match: re.Match[str], ctx: DateContext, connector: bool, phrase: str) -> Resolved:
    """`3/4`, `12/15/2026`, `15.12.2026`, `15.12.`: month or day first as the user's locale writes it."""
    a, b, sep, year_text = int(match["a"]), int(match["b"]), match["sep"], match["year"]
    dotted = sep == "." and match.string[match.end() : match.end() + 1] == "."
    if not year_text and sep != "/" and not connector and not dotted:
        return None  # "3.5" or "3-5" without "close"/"by" is more likely a number or a range
    if (a, b, sep, year_text, connector) == (24, 7, "/", None, False):
        return None  # "24/7 Fitness": around the clock, even where 24/7 is also 24 July
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


_NUMERIC_RE = (
    rf"{_START}(?P<a>\d{{1,2}})(?P<sep>[/.\-])(?P<b>\d{{1,2}})"
    rf"(?:(?P=sep)(?P<year>\d{{4}}|\d{{2}}))?{_END}"
)


def _named(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    month = ctx.lexicon.words.months[fold_key(match["month"])]
    day = int(match["day"])
    if match["year"]:
        return _explicit(int(match["year"]), month, day, ctx, phrase)
    return _on_or_after(ctx, month, day, phrase)


def _month_day_re(lex: Lexicon) -> str:
    months = word_alternation(lex.words.months)
    suffixes = word_alternation(lex.words.day_suffixes)
    return (
        rf"{_START}(?P<month>{months})\.?\s+(?P<day>\d{{1,2}})(?:{suffixes})?"
        rf"(?:,?\s+(?P<year>\d{{4}}))?{_END}"
    )


def _day_month_re(lex: Lexicon) -> str:
    words = lex.words
    months = word_alternation(words.months)
    suffixes = word_alternation(words.day_suffixes)
    links = word_alternation(words.month_links)
    year_links = word_alternation(words.year_links)
    return (
        rf"{_START}(?P<day>\d{{1,2}})(?:(?:{suffixes})\s*|\s+)(?:(?:{links})\s+)?"
        rf"(?P<month>{months})(?!\w)\.?"
        rf"(?:,?\s+(?:(?:{year_links})\s+)?(?P<year>\d{{4}}))?{_END}"
    )


def _month_only(match: re.Match[str], ctx: DateContext, connector: bool, phrase: str) -> Resolved:
    """`by March` (end of March), `mid March` (the 15th), `December 2026`, `Ende Januar`."""
    if not (connector or match["year"] or match["end"] or match["mid"]):
        return None  # "may" alone is a verb far more often than a month
    month = ctx.lexicon.words.months[fold_key(match["month"])]
    mid = bool(match["mid"])
    if match["year"]:
        year = int(match["year"])
        value = date(year, month, 15) if mid else _month_end(year, month)
        return value, _past(phrase, value, ctx)
    if mid:
        return _on_or_after(ctx, month, 15, phrase)
    year = ctx.today.year if month >= ctx.today.month else ctx.today.year + 1
    return _month_end(year, month), []


def _prefix_alternation(phrases: tuple[str, ...]) -> str:
    """`mid-`, `fin d'` glue to the next word; `end of`, `Mitte` need a space after them."""
    glued = [p for p in phrases if p.endswith(("-", "'"))]
    spaced = [p for p in phrases if not p.endswith(("-", "'"))]
    return _alternatives(
        rf"(?:{word_alternation(glued)})" if glued else "",
        rf"(?:{word_alternation(spaced)})\s+" if spaced else "",
    )


def _month_only_re(lex: Lexicon) -> str:
    words = lex.words
    months = word_alternation(words.months)
    year_links = word_alternation(words.year_links)
    end = _prefix_alternation(words.end_prefixes)
    mid = _prefix_alternation(words.mid_prefixes)
    return (
        rf"{_START}(?:(?P<end>{end})|(?P<mid>{mid}))?(?P<month>{months})(?!\w)\.?"
        rf"(?:\s+(?:(?:{year_links})\s+)?(?P<year>\d{{4}}))?(?!\w|\s*\d)"
    )


def _ordinal(match: re.Match[str], ctx: DateContext, connector: bool, phrase: str) -> Resolved:
    """`the 15th`, `am 15.`, `le 15`, `el día 15`: the next such day on or after today."""
    day = int(match["day"])
    if not 1 <= day <= 31:
        return None
    words = ctx.lexicon.words
    suffix = fold_key(match["suffix"] or "")
    alone = suffix and suffix in {fold_key(s) for s in words.day_suffixes_alone}
    if not (alone or match["lead"] or (connector and suffix)):
        return None
    if not suffix and _word_follows(match, ctx.lexicon):
        return None  # "el 15 usuarios": a count, not a day
    start = ctx.today.replace(day=1)
    for months in range(0, 13):
        first = start + relativedelta(months=months)
        if day <= calendar.monthrange(first.year, first.month)[1]:
            value = first.replace(day=day)
            if value >= ctx.today:
                return value, []
    return None


_NEXT_WORD = re.compile(r"\s+([^\W\d_]+)")


def _word_follows(match: re.Match[str], lex: Lexicon) -> bool:
    found = _NEXT_WORD.match(match.string, match.end())
    return found is not None and fold_key(found.group(1)) not in lex.connectors


def _ordinal_re(lex: Lexicon) -> str:
    words = lex.words
    months = word_alternation(words.months)
    links = word_alternation(words.month_links)
    leads = word_alternation(words.day_lead_ins)
    suffixes = word_alternation(words.day_suffixes)
    return (
        rf"{_START}(?:(?P<lead>{leads})\s+)?(?P<day>\d{{1,2}})(?P<suffix>{suffixes})?"
        rf"(?!\w|[.,/:\-]\d|\s*%|\s*(?:(?:{links})\s+)?(?:{months})(?!\w))"
    )


def _weekday(match: re.Match[str], ctx: DateContext, connector: bool, phrase: str) -> Resolved:
    """`friday`/`next friday`: the next one after today; `this friday`: today or later;
    `Freitag nächste Woche`: that day in next week."""
    words = ctx.lexicon.words
    name = fold_key(match["wd"])
    index = words.weekdays.get(name, words.weekday_abbreviations.get(name))
    if index is None:
        return None
    modifier = (
        words.weekday_after[fold_key(match["after"])]
        if match["after"]
        else words.weekday_before[fold_key(match["before"])]
        if match["before"]
        else None
    )
    if not modifier and not connector and name not in words.weekdays:
        return None  # "Sun" alone may be Sun Microsystems
    ahead = (index - ctx.today.weekday()) % 7
    if modifier == "last":
        value = ctx.today - timedelta(days=(7 - ahead) if ahead else 7)
        return value, _past(phrase, value, ctx)
    if modifier == "next_week":
        monday = ctx.today + timedelta(days=7 - ctx.today.weekday())
        return monday + timedelta(days=index), []
    if modifier != "this" and ahead == 0:
        ahead = 7
    return ctx.today + timedelta(days=ahead), []


def _weekday_re(lex: Lexicon) -> str:
    words = lex.words
    names = word_alternation((*words.weekdays, *words.weekday_abbreviations))
    before = word_alternation(words.weekday_before)
    after = word_alternation(words.weekday_after)
    return (
        rf"{_START}(?:(?P<before>{before})\s+)?(?P<wd>{names})(?:(?<=\.)|(?!\w))\.?"
        rf"(?:\s+(?P<after>{after})(?!\w))?"
    )


def _relative_word(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    days = ctx.lexicon.words.relative_days[fold_key(match["word"])]
    value = ctx.today + timedelta(days=days)
    return value, _past(phrase, value, ctx) if days < 0 else []


def _relative_word_re(lex: Lexicon) -> str:
    return rf"(?<![\w'])(?P<word>{word_alternation(lex.words.relative_days)})(?!\w)"


def _shift(ctx: DateContext, count: int, unit: str) -> date:
    if unit == "business_day":
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


def _count(text: str, lex: Lexicon) -> int:
    key = fold_key(text)
    return int(key) if key.isdigit() else lex.words.counts[key]


def _in_n(match: re.Match[str], ctx: DateContext, _c: bool, phrase: str) -> Resolved:
    """`in 2 weeks`, `within a month`, `3 days from now`, `next week` (+7 days, as dateparser),
    `in zwei Wochen`, `dans un mois`, `la semana que viene`."""
    words = ctx.lexicon.words
    groups = match.groupdict()
    if groups.get("next"):
        return _shift(ctx, 1, words.next_periods[fold_key(groups["next"])]), []
    count_text, unit_text = (
        (groups["n"], groups["unit"]) if groups.get("n") else (groups["n2"], groups["unit2"])
    )
    count = _count(count_text, ctx.lexicon)
    if count > 1200:
        return None
    return _shift(ctx, count, words.units[fold_key(unit_text)]), []


def _in_n_re(lex: Lexicon) -> str:
    words = lex.words
    count = rf"\d{{1,3}}|{word_alternation(words.counts)}"
    units = word_alternation(words.units)
    return (
        r"(?<![\w'])(?:"
        + _alternatives(
            rf"(?:{word_alternation(words.in_words)})\s+(?P<n>{count})\s+(?P<unit>{units})",
            rf"(?P<n2>{count})\s+(?P<unit2>{units})\s+(?:{word_alternation(words.from_now)})",
            rf"(?P<next>{word_alternation(words.next_periods)})",
        )
        + r")(?!\w)"
    )


@dataclass(frozen=True, eq=False)
class _DateWords:
    """A language's date patterns, compiled once."""

    patterns: tuple[tuple[re.Pattern[str], Resolver], ...]
    connector_tail: re.Pattern[str]
    """On the reversed text before a date: the introducers (and articles) that lead to it."""
    article_tail: re.Pattern[str]
    after_connector: re.Pattern[str]
    dateish: re.Pattern[str]


def _connectors(lex: Lexicon) -> tuple[str, ...]:
    words = lex.words
    return (*words.date_introducers, *words.date_prepositions)


@lru_cache(maxsize=8)
def date_words(language: str) -> _DateWords:
    """The compiled date reader for `language` (English included)."""
    lex = lexicon_for(language)
    words = lex.words
    flags = re.IGNORECASE
    builders: tuple[tuple[str, Resolver], ...] = (
        # Order matters only for ties: of two hits starting at the same place the longer wins.
        (_sales_re(lex), _sales),
        (_quarter_re(lex), _quarter),
        (_ISO_RE, _iso),
        (_NUMERIC_RE, _numeric),
        (_month_day_re(lex), _named),
        (_day_month_re(lex), _named),
        (_month_only_re(lex), _month_only),
        (_ordinal_re(lex), _ordinal),
        (_weekday_re(lex), _weekday),
        (_relative_word_re(lex), _relative_word),
        (_in_n_re(lex), _in_n),
    )
    connectors = _connectors(lex)
    # The words before a date are matched backwards, on the reversed text before it: one
    # anchored match instead of a search through the whole window (`cierre el |viernes`).
    glued = [c[::-1] for c in connectors if c.endswith("'")]
    spaced = [c[::-1] for c in connectors if not c.endswith("'")]
    articles = word_alternation(a[::-1] for a in words.date_articles)
    one = _alternatives(
        rf"[ :]+(?:{word_alternation(spaced)})" if spaced else "",
        rf"(?:{word_alternation(glued)})" if glued else "",
    )
    dateish_words = word_alternation(
        (
            *words.months,
            *words.weekdays,
            *words.weekday_abbreviations,
            *words.relative_days,
            *words.units,
            "weekend",
        )
    )
    suffixes = word_alternation(words.day_suffixes)
    return _DateWords(
        patterns=tuple((re.compile(source, flags), resolve) for source, resolve in builders),
        connector_tail=re.compile(rf"(?:(?:\s+(?:{articles}))?(?:{one})(?![\w']))+", flags),
        article_tail=re.compile(rf"\s+(?:{articles})(?![\w'])", flags),
        after_connector=re.compile(
            rf"(?<![\w'])(?:{word_alternation(connectors)})\s+((?:[^\s{MASK},;|]+ ?){{1,4}})",
            flags,
        ),
        dateish=re.compile(
            rf"(?<![\w'])(?:{dateish_words}|\d{{1,2}}(?:{suffixes})|\d+[/.\-]\d+"
            rf"|\d+\s?(?:d|w|wks?|mos?|y|yrs?))(?!\w)",
            flags,
        ),
    )


def _connector_before(words: _DateWords, text: str, start: int) -> tuple[int, bool] | None:
    """Where the introducer words right before `start` begin ("closing on " in "closing on the
    15th"), and whether there were any; else where a lone article before it begins
    ("el" in "el próximo viernes"), or None."""
    before = text[max(0, start - 40) : start][::-1]
    match = words.connector_tail.match(before)
    if match:
        return start - match.end(), True
    article = words.article_tail.match(before)
    return (start - article.end(), False) if article else None


def find_date(ws: Workspace, ctx: DateContext) -> tuple[DateHit | None, list[str]]:
    """The close date in the unread text, with warnings; a connector-led phrase wins over others."""
    text = ws.text
    words = date_words(ctx.locale.language)
    hits: list[DateHit] = []
    for pattern, resolve in words.patterns:
        for match in pattern.finditer(text):
            start, end = match.span()
            before = _connector_before(words, text, start)
            connector = before is not None and before[1]
            phrase = ws.original[start:end]
            resolved = resolve(match, ctx, connector, phrase)
            if resolved is None:
                continue
            value, warnings = resolved
            hits.append(
                DateHit(
                    start=start if before is None else before[0],
                    end=end,
                    phrase=phrase,
                    value=value,
                    connector=connector,
                    warnings=tuple(warnings),
                    kind=resolve.__name__,
                )
            )
    if not hits:
        fallback = _dateparser_fallback(ws, ctx, words)
        return fallback, list(fallback.warnings) if fallback else []
    hits = _weekdays_naming_dates(hits, ws)
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


_BETWEEN_WEEKDAY_AND_DATE = re.compile(r"[ ,]*")


def _weekdays_naming_dates(hits: list[DateHit], ws: Workspace) -> list[DateHit]:
    """`Dienstag, 15. Dezember 2026`, `mardi 15 décembre`, `Tuesday, Dec 15`: one date, the
    weekday only naming it (said when it does not match)."""
    result = list(hits)
    for weekday in [h for h in hits if h.kind == "_weekday"]:
        dated = [
            h
            for h in result
            if h.kind not in ("_weekday", "_relative_word", "_in_n")
            and h.start >= weekday.end
            and _BETWEEN_WEEKDAY_AND_DATE.fullmatch(ws.text, weekday.end, h.start)
        ]
        if not dated or weekday not in result:
            continue
        target = max(dated, key=lambda h: h.end - h.start)
        phrase = ws.original[weekday.end - len(weekday.phrase) : target.end]
        warnings = list(target.warnings)
        if target.value.weekday() != weekday.value.weekday():
            warnings.append(
                f"{phrase!r}: {target.value.isoformat()} is a "
                f"{calendar.day_name[target.value.weekday()]}; used the date"
            )
        result = [h for h in result if h is not weekday and h.start != target.start]
        result.append(
            DateHit(
                start=weekday.start,
                end=target.end,
                phrase=phrase,
                value=target.value,
                connector=weekday.connector or target.connector,
                warnings=tuple(warnings),
                kind=target.kind,
            )
        )
    return result


# --- dateparser, for phrases the patterns above do not know -----------------------------

_SETTINGS: dict[DateOrder, dict[str, Any]] = {
    order: {
        "PREFER_DATES_FROM": "future",
        "DATE_ORDER": order,
        "RETURN_AS_TIMEZONE_AWARE": False,
        "PREFER_LOCALE_DATE_ORDER": False,
    }
    for order in ("MDY", "DMY", "YMD")
}


def dateparser_parse(phrase: str, ctx: DateContext) -> date | None:
    """dateparser's reading of one phrase, relative to the user's local now, in the user's
    language and English only (fewer languages: faster, and no reading from a third one)."""
    import dateparser  # loaded by warm_up; imported here so importing this module stays cheap

    settings = {**_SETTINGS[ctx.locale.date_order], "RELATIVE_BASE": ctx.now}
    languages = list(ctx.lexicon.dateparser_languages)
    try:
        result = dateparser.parse(phrase, languages=languages, settings=settings)
    except Exception:  # dateparser raises assorted errors on odd input; a non-date is fine
        return None
    return result.date() if result is not None else None


def _dateparser_fallback(ws: Workspace, ctx: DateContext, words: _DateWords) -> DateHit | None:
    for match in words.after_connector.finditer(ws.text):
        parts = match.group(1).split()
        for size in range(len(parts), 0, -1):
            folded = " ".join(parts[:size]).rstrip(".!?")
            if not words.dateish.search(folded):
                continue
            end = match.start(1) + len(" ".join(parts[:size]))
            typed = ws.original[match.start(1) : end]
            value = dateparser_parse(typed.rstrip(".!?"), ctx)
            if value is None:
                continue
            return DateHit(
                start=match.start(),
                end=end,
                phrase=typed,
                value=value,
                connector=True,
                warnings=tuple(_past(typed, value, ctx)),
            )
    return None


def warm_up_dateparser(languages: tuple[str, ...] = ("en",)) -> None:
    """Import dateparser and load its data for these languages now, not on the first request
    (English in each of its date orders; another language is always read with English)."""
    for _ in dateparser_warming(languages):
        pass


def dateparser_warming(languages: tuple[str, ...] = ("en",)) -> Iterator[None]:
    """`warm_up_dateparser` one piece at a time: it yields after each date order and language."""
    if "en" in languages:
        for order, locale in (("MDY", "en-US"), ("DMY", "en-GB"), ("YMD", "en-CA")):
            ctx = DateContext(now=datetime(2025, 1, 1, 12), locale=locale_info(locale))
            assert ctx.locale.date_order == order
            dateparser_parse("in 2 weeks", ctx)
            dateparser_parse("December 15th", ctx)
            yield
    for language in languages:
        if language != "en":
            ctx = DateContext(now=datetime(2025, 1, 1, 12), locale=locale_info(language))
            dateparser_parse(f"15 {next(iter(LANGUAGES[language].months))}", ctx)
            dateparser_parse("in 2 weeks", ctx)
            yield
