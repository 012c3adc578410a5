"""When a person's local NUDGE_TIME falls: owners in Tokyo and Los Angeles at their own 09:00,
DST change days, a start after NUDGE_TIME (today's at once, never yesterday's)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from bot.schedule.timing import at_local, due_today, parse_time_of_day, zone

LA, TOKYO = zone("America/Los_Angeles"), zone("Asia/Tokyo")
NINE = time(9, 0)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("now", "tz", "expected"),
    [
        # Tokyo is UTC+9: its 09:00 on the 7th is midnight UTC.
        (utc(2026, 12, 6, 23, 59), TOKYO, None),
        (utc(2026, 12, 7, 0, 0), TOKYO, (date(2026, 12, 7), utc(2026, 12, 7, 0, 0))),
        # Los Angeles is UTC-8 in December: its 09:00 on the 7th is 17:00 UTC; at that moment
        # Tokyo is already on the 8th, before its own 09:00.
        (utc(2026, 12, 7, 16, 59), LA, None),
        (utc(2026, 12, 7, 17, 0), LA, (date(2026, 12, 7), utc(2026, 12, 7, 17, 0))),
        (utc(2026, 12, 7, 17, 0), TOKYO, None),
        # Started after 09:00: today's, at once (due since 09:00), never the day before's.
        (utc(2026, 12, 7, 23, 30), LA, (date(2026, 12, 7), utc(2026, 12, 7, 17, 0))),
        (utc(2026, 12, 8, 7, 59), LA, (date(2026, 12, 7), utc(2026, 12, 7, 17, 0))),
        # LA after local midnight, before 09:00: nothing (the 7th's is past, the 8th's not yet).
        (utc(2026, 12, 8, 8, 0), LA, None),
    ],
)
def test_due_at_each_owners_own_nudge_time(
    now: datetime, tz: object, expected: tuple[date, datetime] | None
) -> None:
    due = due_today(now, tz, NINE)  # type: ignore[arg-type]
    assert (None if due is None else (due.period, due.due_at)) == expected


def test_dst_start_in_los_angeles_nine_is_an_hour_earlier_in_utc() -> None:
    # 2027-03-14: clocks go 02:00 PST -> 03:00 PDT. The day before 09:00 is 17:00 UTC, that
    # day and after 16:00 UTC.
    assert at_local(date(2027, 3, 13), NINE, LA) == utc(2027, 3, 13, 17, 0)
    assert at_local(date(2027, 3, 14), NINE, LA) == utc(2027, 3, 14, 16, 0)


def test_dst_end_in_los_angeles_nine_is_an_hour_later_in_utc() -> None:
    # 2026-11-01: clocks go 02:00 PDT -> 01:00 PST.
    assert at_local(date(2026, 10, 31), NINE, LA) == utc(2026, 10, 31, 16, 0)
    assert at_local(date(2026, 11, 1), NINE, LA) == utc(2026, 11, 1, 17, 0)


def test_a_nudge_time_skipped_by_dst_start_falls_when_the_clock_jumps() -> None:
    # 02:30 never shows on 2027-03-14 in LA: the send falls at 03:00 PDT (10:00 UTC), the end
    # of the skipped hour, not an hour late and not the day before.
    assert at_local(date(2027, 3, 14), time(2, 30), LA) == utc(2027, 3, 14, 10, 0)
    assert due_today(utc(2027, 3, 14, 9, 59), LA, time(2, 30)) is None
    due = due_today(utc(2027, 3, 14, 10, 0), LA, time(2, 30))
    assert due is not None and due.period == date(2027, 3, 14)


def test_a_nudge_time_repeated_by_dst_end_falls_once_at_its_first_showing() -> None:
    # 01:30 shows twice on 2026-11-01 in LA: first at 08:30 UTC (PDT), again at 09:30 (PST).
    first = at_local(date(2026, 11, 1), time(1, 30), LA)
    assert first == utc(2026, 11, 1, 8, 30)
    # At the second showing it is still the same period: the unique key keeps it one send.
    due = due_today(utc(2026, 11, 1, 9, 30), LA, time(1, 30))
    assert due is not None and (due.period, due.due_at) == (date(2026, 11, 1), first)


@pytest.mark.parametrize(
    ("text", "expected"), [("09:00", NINE), ("9:30", time(9, 30)), ("", None), ("  ", None)]
)
def test_nudge_time_is_read(text: str, expected: time | None) -> None:
    assert parse_time_of_day(text) == expected


@pytest.mark.parametrize("text", ["9", "09:0", "25:00", "nine", "09:00:00"])
def test_a_nudge_time_that_is_no_time_of_day_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_of_day(text)


def test_an_unknown_zone_reads_as_utc() -> None:
    assert zone("Mars/Olympus") == zone("UTC") == zone(None)
