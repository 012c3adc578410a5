"""Plans the weekly digest once its weekday and time have come in DIGEST_TZ: a look with no
Close call that stores (digest, channel, week) once, whichever process looks first."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.digest.figures import Week
from bot.schedule.store import Planned, ScheduledSends
from bot.schedule.timing import due_this_week
from bot.times import WeeklyTime

log = logging.getLogger(__name__)

DIGEST = "digest"


class DigestPlanner:
    """`tick`: the digest of last week, planned for `channel` once this week's DIGEST_TIME has
    come (an app started later in the week sends it then; never last week's)."""

    def __init__(
        self,
        *,
        sends: ScheduledSends,
        channel: str | None,
        at: WeeklyTime | None,
        zone: ZoneInfo,
        clock: Callable[[], datetime],
        on_planned: Callable[[], None],
    ) -> None:
        self._sends = sends
        self._channel = channel
        self._at = at
        self._zone = zone
        self._clock = clock
        self._on_planned = on_planned
        self._planned: str | None = None  # the week this process stored already

    async def tick(self) -> int:
        if self._at is None or self._channel is None:
            return 0
        now = self._clock()
        due = due_this_week(now, self._zone, self._at)
        if due is None:
            return 0
        reported = Week.before(due.period)
        if self._planned == reported.key:
            return 0
        planned = Planned(
            kind=DIGEST, recipient=self._channel, period=reported.key, due_at=due.due_at
        )
        count = await self._sends.plan([planned], now=now)
        self._planned = reported.key
        if count:
            log.info("Planned the digest of %s for %s", reported.key, self._channel)
            self._on_planned()
        return count
