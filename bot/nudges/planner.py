"""Plans each person's nudge once their local NUDGE_TIME has come: a cheap look (no Close
call) that stores (nudge, person, local date) once, whichever process looks first."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta

from bot.identity import Identity
from bot.schedule.people import People, PersonSettings
from bot.schedule.store import Planned, ScheduledSends
from bot.schedule.timing import due_today, zone
from bot.slack.errors import SlackError
from bot.slack.gateway import SlackGateway

log = logging.getLogger(__name__)

NUDGE = "nudge"
# People's zones (and who may be nudged) are read from Slack at most this often.
ZONES_TTL = timedelta(days=1)


class NudgePlanner:
    """Who is nudged and when.

    The population is the workspace's members (users.list, 200 a call, zones included) whom
    the bot maps to an active Close user (admin links and email matches, the catalog in
    memory): every Close user who owns deals and has a Slack account, read in a handful of
    Slack calls a day, with no Close call. Whether they have overdue deals is the send's
    question (one Close read each). The zones are kept in person_settings, so every process
    plans from the same list and it is read at most once a day.
    """

    def __init__(
        self,
        *,
        sends: ScheduledSends,
        people: People,
        identity: Identity,
        slack: SlackGateway,
        at: time | None,
        clock: Callable[[], datetime],
        on_planned: Callable[[], None],
        zones_ttl: timedelta = ZONES_TTL,
    ) -> None:
        self._sends = sends
        self._people = people
        self._identity = identity
        self._slack = slack
        self._at = at
        self._clock = clock
        self._on_planned = on_planned
        self._zones_ttl = zones_ttl
        # The latest period stored for each person by this process: not asked again.
        self._planned: dict[str, str] = {}

    async def tick(self) -> int:
        """Store the nudges that fell due; how many were new (across every process)."""
        if self._at is None:
            return 0
        now = self._clock()
        await self._refresh_zones(now)
        due = [p for person in await self._people.everyone() if (p := self._due(person, now))]
        new = [p for p in due if self._planned.get(p.recipient) != p.period]
        if not new:
            return 0
        count = await self._sends.plan(new, now=now)
        for planned in new:
            self._planned[planned.recipient] = planned.period
        if count:
            log.info("Planned %s nudges", count)
            self._on_planned()
        return count

    def _due(self, person: PersonSettings, now: datetime) -> Planned | None:
        if not person.nudges or person.tz is None or self._at is None:
            return None
        due = due_today(now, zone(person.tz), self._at)
        if due is None:
            return None
        return Planned(
            kind=NUDGE,
            recipient=person.slack_user_id,
            period=due.period.isoformat(),
            due_at=due.due_at,
        )

    async def _refresh_zones(self, now: datetime) -> None:
        read_at = await self._people.zones_read_at()
        if read_at is not None and now - read_at < self._zones_ttl:
            return
        try:
            roster = await self.roster()
        except SlackError as error:  # the zones known so far still serve
            log.warning("Could not read the workspace's members: %s", error.code)
            return
        await self._people.remember_zones(roster, now=now)

    async def roster(self) -> list[tuple[str, str]]:
        """(Slack user id, zone) of each member of this workspace mapped to an active Close
        user; people of another organization (Slack Connect) are never nudged."""
        coverage = await self._identity.coverage()
        team = (await self._slack.auth_test()).team_id
        return [
            (row.profile.user_id, row.profile.tz)
            for row in coverage.mapped
            if team is None or row.profile.team_id in (None, team)
        ]
