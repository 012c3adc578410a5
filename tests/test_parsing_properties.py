"""Properties of parsing that must hold for any text, amount, instant and zone (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.parsing import format_money, parse, parse_money
from bot.parsing.dates import DateContext, dateparser_parse
from bot.parsing.locales import locale_info
from bot.parsing.parser import _parse  # the unguarded core: a bug must fail here, not be swallowed

ZONES = [
    "UTC",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Europe/London",
]
LOCALES = ["en-US", "en-GB", "de-DE", "fr-FR", "en-IN", "en-CA", "ja-JP"]
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)

FRAGMENTS = [
    "Acme",
    "Corp",
    "$12k",
    "12K",
    "1.5k/mo",
    "€40,000",
    "40000 EUR",
    "£99.99",
    "60%",
    "60 percent",
    "confidence 70",
    "ARR",
    "one-time",
    "per month",
    "close",
    "closing",
    "by",
    "on",
    "next friday",
    "friday",
    "EOM",
    "EOQ",
    "Q1",
    "Q4 2026",
    "next quarter",
    "end of next month",
    "EOY",
    "3/4",
    "12/15/2026",
    "2026-01-20",
    "the 15th",
    "Dec 15",
    "15 December",
    "in 2 weeks",
    "tomorrow",
    "<@U123|alice>",
    "status: Won",
    "lead: Globex",
    '"Acme, Inc."',
    "“Initech”",
    "note: hi",
    "notes:",
    "Müller",
    "株式会社",
    "2027",
    "24/7",
    "12 seats",
    ",",
    ";",
    "!",
    "-",
    "&amp;",
    "<",
    ">",
    ":",
    "'",
    "\u202f",
    "\n",
    "0%",
    "100%",
    "999%",
    "Feb 29",
    "the 31st",
    "9" * 40,
    "1,2,3",
    "k",
    "$",
    "Q5",
]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    text=st.text(max_size=120),
    now=instants,
    tz=st.sampled_from([*ZONES, "Not/AZone", ""]),
    locale=st.sampled_from([*LOCALES, "xx"]),
)
def test_parsing_any_text_never_raises(text: str, now: datetime, tz: str, locale: str) -> None:
    draft = _parse(text, now, tz, locale, ("Won", "Lost", "Proposal Sent"))
    assert draft.confidence is None or 0 <= draft.confidence <= 100
    assert draft.value is None or draft.value >= 0


@settings(max_examples=400, deadline=None)
@given(
    words=st.lists(st.sampled_from(FRAGMENTS), max_size=12),
    now=instants,
    tz=st.sampled_from(ZONES),
    locale=st.sampled_from(LOCALES),
)
def test_parsing_grammar_soup_never_raises(
    words: list[str], now: datetime, tz: str, locale: str
) -> None:
    text = " ".join(words)
    _parse(text, now, tz, locale, ("Won", "Proposal Sent"))
    assert not any(
        "could not read" in w for w in parse(text, now=now, tz=tz, locale=locale).warnings
    )


@settings(max_examples=500, deadline=None)
@given(
    cents=st.integers(min_value=0, max_value=10**14),
    currency=st.sampled_from([None, "USD", "EUR", "GBP", "INR", "JPY"]),
    locale=st.sampled_from(["en-US", "en-GB", "de-DE", "fr-FR", "en-IN", "ja-JP"]),
)
@example(cents=1_200_000, currency=None, locale="en-US")
@example(cents=1_234_567_50, currency="EUR", locale="fr-FR")
def test_formatted_amount_parses_back_to_the_same_cents(
    cents: int, currency: str | None, locale: str
) -> None:
    formatted = format_money(cents, currency, locale)
    money = parse_money(formatted, locale=locale)
    assert money is not None, formatted
    assert money.cents == cents, formatted
    assert money.currency == (currency or locale_info(locale).currency), formatted


FORWARD_PHRASES = st.one_of(
    st.sampled_from(
        [
            "today",
            "tomorrow",
            "EOM",
            "end of month",
            "end of next month",
            "EOQ",
            "end of quarter",
            "this quarter",
            "next quarter",
            "Q1",
            "Q2",
            "Q3",
            "Q4",
            "EOY",
            "end of year",
            "EOW",
            "next week",
            "next month",
            "next year",
            "by March",
            "in December",
            "mid January",
            "end of February",
            "day after tomorrow",
        ]
    ),
    st.builds(
        "{} {}".format,
        st.sampled_from(["", "next", "this", "coming"]),
        st.sampled_from(
            ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        ),
    ),
    st.builds(
        "in {} {}".format,
        st.integers(1, 60),
        st.sampled_from(["days", "weeks", "months", "business days"]),
    ),
    st.builds("the {}th".format, st.integers(4, 20)),
    st.builds("on the {}".format, st.sampled_from(["1st", "2nd", "3rd", "29th", "30th", "31st"])),
    st.builds(
        "{} {}".format,
        st.sampled_from(["Jan", "February", "Mar", "Sept", "Dec"]),
        st.integers(1, 28),
    ),
    st.builds("{}/{}".format, st.integers(1, 12), st.integers(1, 28)),
)


@settings(max_examples=500, deadline=None)
@given(
    phrase=FORWARD_PHRASES,
    now=instants,
    tz=st.sampled_from(ZONES),
    locale=st.sampled_from(["en-US", "en-GB"]),
)
def test_relative_dates_never_land_in_the_past(
    phrase: str, now: datetime, tz: str, locale: str
) -> None:
    draft = parse(f"Acme close {phrase}", now=now, tz=tz, locale=locale)
    assert draft.date_won is not None, (phrase, draft.warnings)
    today = now.astimezone(ZoneInfo(tz)).date()
    assert draft.date_won >= today, (phrase, today, draft.date_won)
    assert draft.lead == "Acme"
    assert not any("is in the past" in w for w in draft.warnings)


AGREEING_PHRASES = st.one_of(
    st.sampled_from(
        ["tomorrow", "today", "next week", "in a week", "in 2 weeks", "day after tomorrow"]
    ),
    st.builds(
        "{} {}".format,
        st.sampled_from(["", "next"]),
        st.sampled_from(
            ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        ),
    ),
    st.builds("in {} {}".format, st.integers(1, 30), st.sampled_from(["days", "weeks"])),
    st.builds(
        "{} {}".format,
        st.sampled_from(["January", "Mar", "July", "Oct", "December"]),
        st.integers(1, 28),
    ),
    st.builds("{}/{}".format, st.integers(1, 12), st.integers(13, 28)),
    st.builds(
        "{}-{:02d}-{:02d}".format, st.integers(2000, 2090), st.integers(1, 12), st.integers(1, 28)
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    phrase=AGREEING_PHRASES,
    now=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2089, 1, 1)),
)
def test_fast_path_reads_dates_as_dateparser_does(phrase: str, now: datetime) -> None:
    """The patterns that spare us dateparser's cost give its answer, outside documented differences."""
    ctx = DateContext(now=now, locale=locale_info("en-US"))
    expected = dateparser_parse(phrase, ctx)
    assert expected is not None
    ours = parse(f"Acme {phrase}", now=now).date_won
    if ours == now.date() and expected == ours.replace(year=ours.year + 1):
        return  # documented difference: a day and month without a year that is today stays today
    assert ours == expected, (phrase, now)


def test_q1_asked_in_november_is_next_year() -> None:
    for hour in range(0, 24, 5):
        now = datetime(2025, 11, 20, hour, tzinfo=UTC)
        assert parse("Acme Q1", now=now, tz="Asia/Tokyo").date_won == date(2026, 3, 31)


def test_weekday_alone_is_within_the_next_seven_days() -> None:
    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    for offset in range(14):
        now = start + timedelta(days=offset)
        got = parse("Acme friday", now=now).date_won
        assert got is not None and got.weekday() == 4
        assert 1 <= (got - now.date()).days <= 7


def test_result_does_not_depend_on_the_wall_clock() -> None:
    """`now` is an argument: moving the machine's clock (and its zone) changes nothing."""
    import time_machine

    lines = [
        "Acme $12k close next friday",
        "Acme 12k closing in 10d",
        "Acme Q1 60%",
        "Acme 3/4 EOM",
    ]
    now = datetime(2025, 11, 12, 15, tzinfo=UTC)
    results = []
    for wall_clock in (datetime(2031, 6, 1, 23, tzinfo=UTC), datetime(2019, 1, 1, 1, tzinfo=UTC)):
        with time_machine.travel(wall_clock, tick=False):
            results.append([parse(line, now=now, tz="Asia/Tokyo").to_contract() for line in lines])
    assert results[0] == results[1]
    assert results[0][1]["date_won"] == "2025-11-23"  # already the 13th in Tokyo, +10 days
