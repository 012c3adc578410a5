"""Sends a planned nudge: the owner's overdue deals read from Close (one request), one DM."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime

from bot.blocks.nudges import LISTED, NudgeLine, NudgePayload, nudge_message
from bot.close.client import CloseClient
from bot.close.errors import CloseError
from bot.identity import Identity
from bot.jobs import Backoff
from bot.schedule.people import People
from bot.schedule.posting import Posting
from bot.schedule.store import ScheduledSend, ScheduledSends
from bot.schedule.timing import local_day, zone
from bot.slack.gateway import SlackGateway

log = logging.getLogger(__name__)


class NudgeSender:
    """The nudge kind of scheduled send: what one claimed (nudge, person, local date) does."""

    def __init__(
        self,
        *,
        sends: ScheduledSends,
        people: People,
        identity: Identity,
        close: CloseClient,
        slack: SlackGateway,
        close_app_url: str,
        backoff: Backoff,
        clock: Callable[[], datetime],
    ) -> None:
        self._sends = sends
        self._people = people
        self._identity = identity
        self._close = close  # the org key: a background read of one owner's deals
        self._slack = slack
        self._close_app_url = close_app_url
        self._clock = clock
        self._posting = Posting(
            sends=sends, slack=slack, backoff=backoff, clock=clock, what="Nudge"
        )

    async def send(self, job: ScheduledSend) -> None:
        """At most one DM: nothing when switched off, unmapped or nothing is overdue."""
        person = await self._people.get(job.recipient)
        day = date.fromisoformat(job.period)
        if not person.nudges:
            await self._skip(job, "nudges off")
            return
        if local_day(self._clock(), zone(person.tz)) > day:
            await self._skip(job, "its day is over")  # a nudge about yesterday helps nobody
            return
        mapping = await self._identity.close_user_for(job.recipient)
        if mapping.close_user is None:
            await self._skip(job, "not a Close user")
            return
        try:
            page = await self._close.first_opportunities(
                user_id=mapping.close_user.id,
                status_type="active",
                date_won_lt=day,
                order_by="date_won",
                limit=LISTED,
            )
        except CloseError as error:
            await self._retry(job, f"Close: {type(error).__name__}", None)
            return
        listed = [o for o in page.data if o.date_won is not None and o.date_won < day]
        if not listed:
            await self._skip(job, "nothing overdue")
            return
        payload = NudgePayload(
            period=day,
            close_user_id=mapping.close_user.id,
            lines=[NudgeLine.of(o) for o in listed],
            more=max(page.total_results - len(listed), 0),
        )
        await self._post(job, payload)

    async def _post(self, job: ScheduledSend, payload: NudgePayload) -> None:
        message = nudge_message(job.id, payload, close_app_url=self._close_app_url)
        # To the person's id: their DM with the app, no conversations.open needed.
        await self._posting.post(job, job.recipient, message, payload.model_dump(mode="json"))

    async def _skip(self, job: ScheduledSend, why: str) -> None:
        await self._posting.skip(job, why)

    async def _retry(self, job: ScheduledSend, error: str, wait: float | None) -> None:
        await self._posting.retry(job, error, wait)
