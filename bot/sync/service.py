"""Which way Close's changes come in (webhook, event log, or not at all) and their receiving end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from bot.close.client import CloseClient
from bot.settings import Settings
from bot.sync.poller import EventPoller
from bot.sync.store import ChangeStore
from bot.sync.webhook import Rejected, WebhookKeeper, read_delivery
from bot.tasks import cancel

log = logging.getLogger(__name__)

Mode = Literal["webhook", "poll", "off"]
# With a webhook, the event log is still read now and then: deliveries missed while the app was
# down past Close's retries, or while a subscription was paused, are picked up within this many
# poll intervals (a few requests every five minutes by default).
BACKSTOP_FACTOR = 10
# Close redelivers for up to 72 hours: a week covers any replay, and `history` shows them.
KEEP_FINISHED = timedelta(days=7)
PRUNE_EVERY_SECONDS = 3600.0


class CloseSync:
    def __init__(
        self,
        *,
        settings: Settings,
        close: CloseClient,
        store: ChangeStore,
        holder: str,
        on_new: Callable[[], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._close = close
        self.store = store
        self._holder = holder
        self._on_new = on_new
        self._clock = clock
        self.mode: Mode = "off"
        self.keeper: WebhookKeeper | None = None
        self.poller: EventPoller | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._backstop = False

    def planned_mode(self, *, serving_http: bool) -> Mode:
        """webhook with PUBLIC_URL in HTTP mode; else the event log unless polling is off."""
        if self._settings.close_webhook_url and serving_http:
            return "webhook"
        return "poll" if self._settings.close_events_poll_seconds > 0 else "off"

    def start(self, *, serving_http: bool, webhook_elsewhere: bool = False) -> None:
        """`webhook_elsewhere`: a `worker` process while `serve` processes take the webhook
        (PUBLIC_URL set): it reads the event log only as the backstop."""
        self.mode = self.planned_mode(serving_http=serving_http)
        every = self._settings.close_events_poll_seconds
        url = self._settings.close_webhook_url
        self._backstop = bool(url) and (self.mode == "webhook" or webhook_elsewhere)
        if self._backstop:
            every *= BACKSTOP_FACTOR
        if self.mode == "webhook" and url:
            self.keeper = WebhookKeeper(
                close=self._close,
                store=self.store,
                url=url,
                holder=self._holder,
                check_seconds=self._settings.catalog_refresh_seconds,
                clock=self._clock,
            )
        if every > 0:
            self.poller = EventPoller(
                close=self._close,
                store=self.store,
                every_seconds=every,
                holder=self._holder,
                on_new=self._on_new,
                clock=self._clock,
            )
            self.poller.start()
        if self.keeper is not None:
            self.keeper.start()
        if self.mode != "off":
            self._housekeeping = asyncio.create_task(
                self._prune_forever(), name="close-changes-prune"
            )
        log.info("Close -> Slack: %s", self.describe())

    async def _prune_forever(self) -> None:
        """Finished changes are kept a week (history shows them), then forgotten."""
        while True:
            try:
                pruned = await self.store.prune(before=self._clock() - KEEP_FINISHED)
                if pruned:
                    log.info("Forgot %s change(s) finished over a week ago", pruned)
            except Exception:
                log.warning("Could not prune old changes", exc_info=True)
            await asyncio.sleep(PRUNE_EVERY_SECONDS)

    def describe(self) -> str:
        if self.mode == "webhook":
            return f"webhook at {self._settings.close_webhook_url}"
        every = self._settings.close_events_poll_seconds
        if self.mode == "poll" and self._backstop:
            return (
                f"webhook taken by `serve` processes; event log read every "
                f"{every * BACKSTOP_FACTOR:g} s as a backstop"
            )
        if self.mode == "poll":
            return f"event log read every {every:g} s"
        return "off (no PUBLIC_URL and CLOSE_EVENTS_POLL_SECONDS=0)"

    async def stop(self) -> None:
        await cancel(self._housekeeping)
        self._housekeeping = None
        if self.keeper is not None:
            await self.keeper.stop()
        if self.poller is not None:
            await self.poller.stop()

    async def receive(self, body: bytes, headers: Mapping[str, str]) -> int:
        """A webhook delivery: verified, then stored (deduplicated) before the 200; returns how
        many changes were new. Raises Rejected for a delivery to refuse."""
        if self.keeper is None:
            raise Rejected(404, "webhook_not_configured")  # no PUBLIC_URL: nothing subscribed
        await self.keeper.verify(body, headers)
        delivery = read_delivery(body)
        if delivery is None:
            return 0
        new = await self.store.add([delivery.event], source="webhook", now=self._clock())
        if new:
            self._on_new()
        return new
