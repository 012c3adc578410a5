"""The weekly digest's figures: pure arithmetic over Close's opportunities for one week.

Values are annualized as Close annualizes them (`annualized_value`: monthly x 12, annual and
one-time as they are), so a $1,000/month deal and a $12,000/year one weigh the same; weighted
is the annualized value x confidence (Close's `annualized_expected_value`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.close.models import Opportunity

LARGEST = 5
_PER_YEAR = {"monthly": 12, "annual": 1, "one_time": 1, None: 1}


@dataclass(frozen=True, slots=True)
class Week:
    """A Monday–Sunday week in the digest's time zone."""

    monday: date

    @classmethod
    def of(cls, day: date) -> Week:
        return cls(day - timedelta(days=day.weekday()))

    @classmethod
    def before(cls, day: date) -> Week:
        """The last whole week before the one `day` is in."""
        return cls(cls.of(day).monday - timedelta(days=7))

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    @property
    def next(self) -> Week:
        return Week(self.monday + timedelta(days=7))

    @property
    def key(self) -> str:
        """ISO week, e.g. `2026-W49`: the period a digest is sent for, once."""
        year, week, _ = self.monday.isocalendar()
        return f"{year}-W{week:02d}"

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.monday <= day <= self.sunday

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """Its first instant and the next week's first instant, in `zone`."""
        start = datetime.combine(self.monday, datetime.min.time(), zone)
        return start, datetime.combine(self.next.monday, datetime.min.time(), zone)


def annualized(opportunity: Opportunity) -> int:
    """The yearly value in cents (0 without a value)."""
    if opportunity.annualized_value is not None:
        return opportunity.annualized_value
    return (opportunity.value or 0) * _PER_YEAR.get(opportunity.value_period, 1)


def weighted(opportunity: Opportunity) -> int:
    """The annualized value x confidence (no confidence: 0, as Close counts it)."""
    if opportunity.annualized_expected_value is not None:
        return opportunity.annualized_expected_value
    return annualized(opportunity) * (opportunity.confidence or 0) // 100


@dataclass(frozen=True, slots=True)
class Tally:
    count: int = 0
    value: int = 0  # annualized cents
    weighted: int = 0

    @classmethod
    def of(cls, opportunities: Iterable[Opportunity]) -> Tally:
        items = list(opportunities)
        return cls(
            count=len(items),
            value=sum(annualized(o) for o in items),
            weighted=sum(weighted(o) for o in items),
        )


@dataclass(frozen=True, slots=True)
class StatusTally:
    label: str
    tally: Tally


@dataclass(frozen=True, slots=True)
class Digest:
    """What the digest of `week` says, on `today` (the Monday after it, or later that week)."""

    week: Week
    today: date
    currency: str | None
    new: Tally
    won: Tally
    lost: Tally
    closing: list[Opportunity] = field(default_factory=list)  # this week, soonest first
    pipeline: list[StatusTally] = field(default_factory=list)  # by weighted value
    open_total: Tally = Tally()
    largest: list[Opportunity] = field(default_factory=list)  # by weighted value
    overdue: int = 0
    # Set when a listing stopped at this many opportunities: the figures count those only.
    limit: int | None = None

    def counted_from(self, limit: int) -> Digest:
        return replace(self, limit=limit)


def build(
    week: Week,
    today: date,
    zone: ZoneInfo,
    *,
    created: Sequence[Opportunity],
    won: Sequence[Opportunity],
    lost: Sequence[Opportunity],
    open_: Sequence[Opportunity],
) -> Digest:
    """The digest from what Close listed: opportunities created in the week (`created`), in a
    won status (`won`) and in a lost status (`lost`) — each filtered here to the week, so a
    wider read is fine — and every open one (`open_`)."""
    active = [o for o in open_ if o.status_type in ("active", None)]
    this_week = Week.of(today)
    closing = sorted(
        (o for o in active if o.date_won in this_week), key=lambda o: (o.date_won, o.id)
    )
    return Digest(
        week=week,
        today=today,
        currency=_currency([*created, *won, *lost, *active]),
        new=Tally.of(o for o in created if _local_day(o.date_created, zone) in week),
        won=Tally.of(o for o in won if o.status_type == "won" and o.date_won in week),
        lost=Tally.of(
            o for o in lost if o.status_type == "lost" and _local_day(o.date_lost, zone) in week
        ),
        closing=closing,
        pipeline=_by_status(active),
        open_total=Tally.of(active),
        largest=sorted(active, key=lambda o: (-weighted(o), -annualized(o), o.id))[:LARGEST],
        overdue=sum(1 for o in active if o.date_won is not None and o.date_won < today),
    )


def _by_status(active: Sequence[Opportunity]) -> list[StatusTally]:
    groups: dict[str, list[Opportunity]] = {}
    for opportunity in active:
        groups.setdefault(opportunity.status_label or "No status", []).append(opportunity)
    tallies = [StatusTally(label, Tally.of(items)) for label, items in groups.items()]
    return sorted(tallies, key=lambda s: (-s.tally.weighted, -s.tally.value, s.label))


def _local_day(stamp: str | None, zone: ZoneInfo) -> date | None:
    """The day in `zone` of one of Close's ISO timestamps (None when absent or unreadable)."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(zone).date()


def _currency(opportunities: Iterable[Opportunity]) -> str | None:
    """The org's currency, as its opportunities carry it (Close has one per org)."""
    return next((o.value_currency for o in opportunities if o.value_currency), None)
