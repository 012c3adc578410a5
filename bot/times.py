"""Times the configuration names, read purely (no package of the bot needed): a time of day
(NUDGE_TIME), a weekday and time (DIGEST_TIME), and how long a workflow step's token lives
(the ceiling of WORKFLOW_STEP_GIVE_UP_SECONDS)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta

# Slack's `bot_access_token` of an execution, the only token functions.complete* take, lives
# about 15 minutes from the step's start (SLACK.md; bolt-python issue #1075): after it, a
# completion is refused with `token_expired` / `invalid_auth`, and nothing can tell the workflow.
STEP_TOKEN_LIFE = timedelta(minutes=15)
# The most WORKFLOW_STEP_GIVE_UP_SECONDS may be: the token's life less a minute for what comes
# after the deadline (the last attempt and the last look in Close, CLOSE_TIMEOUT_SECONDS each
# by default 15 s, then the completion itself).
STEP_GIVE_UP_LIMIT_SECONDS = STEP_TOKEN_LIFE.total_seconds() - 60


def parse_time_of_day(text: str) -> time | None:
    """`"09:00"` → 09:00; empty → None (never). Raises ValueError on anything else."""
    text = text.strip()
    if not text:
        return None
    hours, sep, minutes = text.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"{text!r} is not a time of day like 09:00")
    return time(int(hours), int(minutes))


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class WeeklyTime:
    """A weekday (0 = Monday) and a local time of day: `mon 09:00`."""

    weekday: int
    at: time


def parse_weekly(text: str) -> WeeklyTime | None:
    """`"mon 09:00"` (a weekday's English name or its first three letters or more, then a
    time of day) → WeeklyTime; empty → None (never). Raises ValueError on anything else."""
    text = text.strip().lower()
    if not text:
        return None
    day, _, clock = text.partition(" ")
    days = [n for n, name in enumerate(_WEEKDAYS) if len(day) >= 3 and name.startswith(day)]
    if len(days) != 1:
        raise ValueError(f"{text!r} is not a weekday and a time like 'mon 09:00'")
    at = parse_time_of_day(clock)
    if at is None:
        raise ValueError(f"{text!r} has no time of day: say e.g. 'mon 09:00'")
    return WeeklyTime(days[0], at)
