"""Pure time arithmetic of scheduled sends: when a person's local time of day falls, by zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.times import WeeklyTime
from bot.times import parse_time_of_day as parse_time_of_day  # re-exported

# A wall time skipped by a DST change lies in a gap of at most this long (Lord Howe's is
# 30 minutes, the usual one an hour; none is longer than two).
_LONGEST_GAP = timedelta(hours=3)


@dataclass(frozen=True, slots=True)
class Due:
    """A send that is due: the local day it is for, and the instant it fell due."""

    period: date
    due_at: datetime


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone `name` (as Slack's users.info gives it), UTC when unknown or empty."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_day(now: datetime, tz: ZoneInfo) -> date:
    """The date it is in `tz` at the instant `now`."""
    return now.astimezone(tz).date()


def at_local(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant (UTC) the wall clock in `tz` shows `at` on `day`.

    A wall time shown twice (the hour repeated when DST ends) is its first showing; one never
    shown (skipped when DST starts) is the end of the skipped stretch: the first minute after
    it that the clock does show, so the send goes as soon as the day has reached it.
    """
    wall = datetime.combine(day, at)
    step = timedelta(minutes=1)
    probe = wall
    while probe - wall <= _LONGEST_GAP:
        if _exists(probe, tz):
            return probe.replace(tzinfo=tz, fold=0).astimezone(UTC)
        probe += step
    return wall.replace(tzinfo=tz).astimezone(UTC)  # pragma: no cover - no zone has such a gap


def _exists(wall: datetime, tz: ZoneInfo) -> bool:
    """Whether the clock in `tz` ever shows `wall` (naive): it survives a round trip via UTC."""
    instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    return instant.astimezone(tz).replace(tzinfo=None) == wall


def due_today(now: datetime, tz: ZoneInfo, at: time) -> Due | None:
    """Today's send (in `tz`) once the local time of day `at` has come, else None.

    Only today: a start after `at` sends today's at once, never a missed day before it.
    """
    today = local_day(now, tz)
    due_at = at_local(today, at, tz)
    return Due(period=today, due_at=due_at) if now >= due_at else None


def due_this_week(now: datetime, tz: ZoneInfo, when: WeeklyTime) -> Due | None:
    """This week's send (Monday to Sunday in `tz`) once its weekday and time have come, else
    None; `period` is the Monday of the week it is due in. Like `due_today`, only this week's:
    an app down over the whole of last week's does not send that one late."""
    today = local_day(now, tz)
    monday = today - timedelta(days=today.weekday())
    due_at = at_local(monday + timedelta(days=when.weekday), when.at, tz)
    return Due(period=monday, due_at=due_at) if now >= due_at else None
