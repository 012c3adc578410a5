"""Noting a Close change for its owner's alert DM: the change kept, and a window opened for it
(a scheduled send due `window` after the first change) unless one is open already."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.alerts.derive import Names, alert_for, alert_for_change
from bot.alerts.store import AlertChanges
from bot.blocks.alerts import Alert
from bot.close.catalog import Catalog
from bot.close.models import Opportunity, parse_close_time
from bot.identity import Identity
from bot.schedule.people import People
from bot.schedule.store import Planned, ScheduledSends
from bot.sync.events import CloseEvent

log = logging.getLogger(__name__)

ALERT = "alert"
# The period of a person's window until its DM takes the changes (then: the window's start).
OPEN = "open"


class CatalogNames:
    """Names from the catalog in memory (no Close call)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def status_label(self, status_id: str) -> str | None:
        status = self._catalog.status(status_id)
        return status.label if status is not None else None

    def user_name(self, user_id: str) -> str | None:
        user = self._catalog.user(user_id)
        return user.display_name if user is not None else None

    def field_names(self) -> dict[str, str]:
        return {field.id: field.name for field in self._catalog.custom_fields}


class AlertNotes:
    """What the Close -> Slack applier calls for each change it takes as news."""

    def __init__(
        self,
        *,
        changes: AlertChanges,
        sends: ScheduledSends,
        people: People,
        identity: Identity,
        names: Names,
        window: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._changes = changes
        self._sends = sends
        self._people = people
        self._identity = identity
        self._names = names
        self._window = window
        self._clock = clock

    async def note(self, event: CloseEvent) -> None:
        """Keep `event` for its owner's next DM if it is news to them. Noting it again (a
        retry, another process) changes nothing. Raises only what is worth a retry."""
        alert = alert_for(event, self._names)
        if alert is not None:
            await self._keep(alert)

    async def note_app_change(self, actor: str, before: Opportunity, after: Opportunity) -> None:
        """A change Slack user `actor` made through the app (Edit, Won, Lost, a nudge's tap):
        news to the deal's owner when that is someone else. Its echo from Close is the app's
        own write (not noted again), whoever Close says made it (the key's user, or them)."""
        mapping = await self._identity.close_user_for(actor)
        by = mapping.close_user.id if mapping.close_user is not None else f"slack:{actor}"
        at = parse_close_time(after.date_updated or "") or self._clock()
        key = f"app:{after.id}:{at.isoformat()}"[:64]
        alert = alert_for_change(before, after, self._names, key=key, at=at, by=by, by_slack=actor)
        if alert is not None:
            await self._keep(alert)

    async def _keep(self, alert: Alert) -> None:
        recipient = await self._identity.slack_user_for(alert.owner)
        if recipient is None:
            log.info(
                "Change %s: its owner %s has no Slack user, no alert", alert.event_id, alert.owner
            )
            return
        if alert.by_slack == recipient:
            return  # mapped otherwise, but them all the same
        if not (await self._people.get(recipient)).alerts:
            log.info("Change %s: %s turned alerts off", alert.event_id, recipient)
            return
        now = self._clock()
        await self._changes.note(recipient, alert, now=now)
        # Noted before the window is planned: one that closes meanwhile takes it, or the next.
        # While open, a person's window is (alert, person, OPEN) in every process, so however
        # many note their first change at once, one window is stored: due `window` from now.
        window = Planned(kind=ALERT, recipient=recipient, period=OPEN, due_at=now + self._window)
        await self._sends.plan([window], now=now)
