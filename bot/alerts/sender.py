"""Sends an alert window's DM: every change noted for the person since the last one, once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.alerts.store import AlertChanges
from bot.blocks.alerts import alert_message, merged
from bot.schedule.people import People
from bot.schedule.posting import Posting
from bot.schedule.store import ScheduledSend, ScheduledSends

log = logging.getLogger(__name__)

# The changes a DM took are kept this long, then forgotten at the person's next DM.
KEEP_TAKEN = timedelta(days=7)


class AlertSender:
    """The alert kind of scheduled send: what one claimed (alert, person, window) does."""

    def __init__(
        self,
        *,
        posting: Posting,
        sends: ScheduledSends,
        changes: AlertChanges,
        people: People,
        close_app_url: str,
        window: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._posting = posting
        self._sends = sends
        self._changes = changes
        self._people = people
        self._close_app_url = close_app_url
        self._window = window
        self._clock = clock

    async def send(self, job: ScheduledSend) -> None:
        """At most one DM: nothing when alerts are off or another window took the changes."""
        if job.posting_at is not None:
            await self._posting.skip(job, "its post's outcome is unknown")  # never twice
            return
        # Closed first (a change noted from now on opens the next window), then the changes
        # taken: every one noted before the close is in this DM or an earlier one.
        start = (job.due_at - self._window).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if not await self._sends.settle_period(job, start, now=self._clock()):
            return  # another worker took it over
        # Taken even when off: a change made while off is never told later.
        alerts = await self._changes.take(job.recipient, job.id)
        await self._changes.forget(job.recipient, before=self._clock() - KEEP_TAKEN)
        if not (await self._people.get(job.recipient)).alerts:
            await self._posting.skip(job, "alerts off")
            return
        if not alerts:
            await self._posting.skip(job, "nothing left to tell")
            return
        message = alert_message(alerts, close_app_url=self._close_app_url)
        payload = {
            "changes": [
                {"opportunity_id": a.opportunity_id, "event_id": a.event_id, "kind": a.kind}
                for a in merged(alerts)
            ]
        }
        # To the person's id: their DM with the app, no conversations.open needed.
        await self._posting.post(job, job.recipient, message, payload)
