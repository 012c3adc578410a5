"""Sends a planned nudge: the owner's overdue deals read from Close (one request), one DM."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

import aiohttp

from bot.close.client import CloseClient
from bot.close.errors import CloseError
from bot.identity import Identity
from bot.jobs import Backoff
from bot.nudges.message import LISTED, NudgeLine, NudgePayload, nudge_message
from bot.schedule.people import People
from bot.schedule.store import ScheduledSend, ScheduledSends
from bot.schedule.timing import local_day, zone
from bot.slack.errors import Gone, NotAllowed, RateLimited, SlackError
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
        self._backoff = backoff
        self._clock = clock

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
        """One DM, never two: a post whose outcome is unknown (the process died, or Slack
        stopped answering mid-request) is not made again — a nudge missed beats a nudge twice."""
        if job.posting_at is not None:
            log.warning("Nudge %s may have been posted by a holder that died: not again", job.id)
            await self._skip(job, "its post's outcome is unknown")
            return
        if not await self._sends.posting(job, now=self._clock()):
            return  # another worker took it over
        message = nudge_message(job.id, payload, close_app_url=self._close_app_url)
        try:
            # To the person's id: their DM with the app, no conversations.open needed.
            posted = await self._slack.post_message(job.recipient, message)
        except (Gone, NotAllowed) as error:
            await self._skip(job, f"Slack: {error.code}")
            return
        except SlackError as error:  # Slack answered: nothing was posted
            wait = error.retry_after if isinstance(error, RateLimited) else None
            await self._retry(job, f"Slack: {error.code}", wait)
            return
        except aiohttp.ClientConnectorError:  # never reached Slack: nothing was posted
            await self._retry(job, "Slack: unreachable", None)
            return
        stored = await self._sends.sent(
            job,
            channel=posted.channel,
            ts=posted.ts,
            payload=payload.model_dump(mode="json"),
            now=self._clock(),
        )
        if not stored:
            log.warning("Nudge %s was posted but its claim was lost meanwhile", job.id)

    async def _skip(self, job: ScheduledSend, why: str) -> None:
        await self._sends.skipped(job, why=why, now=self._clock())

    async def _retry(self, job: ScheduledSend, error: str, wait: float | None) -> None:
        now = self._clock()
        delay = wait if wait is not None else self._backoff.delay(job.attempts)
        log.info("Nudge %s not sent (%s); again in %.0f s", job.id, error, delay)
        await self._sends.retry_at(job, at=now + timedelta(seconds=delay), error=error, now=now)
