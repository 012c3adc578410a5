"""Close's webhook: one subscription kept for PUBLIC_URL/close/webhook, and deliveries verified
(HMAC-SHA256 over timestamp + body, 5-minute window) and stored before Close gets its 200."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from bot.close.client import CloseClient
from bot.close.models import WebhookSubscription
from bot.sync.events import ACTIONS, OBJECT_TYPE, WebhookDelivery
from bot.sync.store import ChangeStore
from bot.tasks import cancel

log = logging.getLogger(__name__)

STATE_KEY = "webhook_subscription"
LEASE_KEY = "webhook_setup"
EVENTS = [{"object_type": OBJECT_TYPE, "action": action} for action in ACTIONS]
MAX_CLOCK_SKEW_SECONDS = 5 * 60
# How long a signature key read from the database is trusted before it is read again.
KEY_CACHE_SECONDS = 30.0


class Rejected(Exception):
    """A delivery answered with `status` (401 unsigned/stale/forged, 400 unreadable)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(key_hex: str, timestamp: str, body: bytes) -> str:
    """Close's `close-sig-hash`: hex HMAC-SHA256, key = the hex-decoded signature key."""
    return hmac.new(bytes.fromhex(key_hex), timestamp.encode() + body, hashlib.sha256).hexdigest()


class WebhookKeeper:
    """Keeps exactly one subscription for `url`, found or created under a lease (so several
    processes never create two), re-activated if Close paused it; its key lives in the database."""

    def __init__(
        self,
        *,
        close: CloseClient,
        store: ChangeStore,
        url: str,
        holder: str,
        check_seconds: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._close = close
        self._store = store
        self.url = url
        self._holder = holder
        self._check_seconds = check_seconds
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._keys: list[str] = []
        self._keys_read_at = -1e9
        self.on_created: Callable[[], None] = lambda: None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="close-webhook-keeper")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _loop(self) -> None:
        delay = 1.0
        while True:
            try:
                done = await self.ensure()
            except Exception as error:  # Close down or refusing: keep serving, try again
                log.warning("Could not set up Close's webhook for %s: %s", self.url, error)
                done = False
            if done:
                delay = 1.0
                await asyncio.sleep(self._check_seconds)
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def state(self) -> dict[str, Any] | None:
        return await self._store.get_state(STATE_KEY)

    async def ensure(self) -> bool:
        """One pass; False when another process holds the setup lease (try again soon)."""
        now = self._clock()
        if not await self._store.acquire(
            LEASE_KEY, self._holder, now=now, ttl=timedelta(seconds=60)
        ):
            return False
        try:
            stored = await self.state() or {}
            mine = [s for s in await self._close.list_webhooks() if s.url == self.url]
            keep = next(
                (
                    s
                    for s in mine
                    if s.id == stored.get("subscription_id") and stored.get("signature_key")
                ),
                None,
            )
            for extra in mine:
                if extra is not keep:
                    # A duplicate, or one whose key is not ours to verify with: deliveries to it
                    # could only be refused.
                    log.info("Removing Close webhook %s (duplicate or unknown key)", extra.id)
                    await self._close.delete_webhook(extra.id)
            if keep is None:
                created = await self._close.create_webhook(self.url, EVENTS)
                if not created.signature_key:
                    raise RuntimeError("Close created the webhook without a signature_key")
                await self._remember(created, created.signature_key)
                log.info("Close webhook %s created for %s", created.id, self.url)
                self.on_created()
            else:
                if keep.status != "active" or not _covers(keep.events):
                    log.info("Close webhook %s was %s: re-activating it", keep.id, keep.status)
                    keep = await self._close.update_webhook(
                        keep.id, {"status": "active", "events": EVENTS}
                    )
                await self._remember(keep, str(stored["signature_key"]))
        finally:
            await self._store.release(LEASE_KEY, self._holder, now=self._clock())
        return True

    async def _remember(self, subscription: WebhookSubscription, key: str) -> None:
        await self._store.put_state(
            STATE_KEY,
            {
                "subscription_id": subscription.id,
                "url": self.url,
                "signature_key": key,
                "status": subscription.status,
                "checked_at": self._clock().isoformat(),
            },
            now=self._clock(),
        )
        self._keys, self._keys_read_at = [key], time.monotonic()

    async def keys(self, *, fresh: bool = False) -> list[str]:
        """The signature key(s) to verify with: cached briefly, read again on a mismatch (another
        process may have made a new subscription)."""
        if fresh or time.monotonic() - self._keys_read_at > KEY_CACHE_SECONDS:
            state = await self.state() or {}
            key = state.get("signature_key")
            self._keys = [str(key)] if key and state.get("url") == self.url else []
            self._keys_read_at = time.monotonic()
        return self._keys

    async def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: Callable[[], float] = time.time
    ) -> None:
        """Raise Rejected(401) unless the delivery is signed with our key within 5 minutes."""
        stamp = (headers.get("close-sig-timestamp") or "").strip()
        signature = (headers.get("close-sig-hash") or "").strip().lower()
        if not stamp or not signature:
            raise Rejected(401, "unsigned")
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            raise Rejected(401, "bad_timestamp")
        if abs(now() - int(stamp)) > MAX_CLOCK_SKEW_SECONDS:
            raise Rejected(401, "stale_timestamp")
        for fresh in (False, True):
            for key in await self.keys(fresh=fresh):
                try:
                    expected = sign(key, stamp, body)
                except ValueError:
                    continue  # not hex: cannot be the key Close signs with
                if hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
                    return
        raise Rejected(401, "bad_signature")


def read_delivery(body: bytes) -> WebhookDelivery | None:
    """The delivery's event, or None for one the app does not follow; Rejected(400) if unreadable."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise Rejected(400, "bad_json") from error
    if not isinstance(parsed, dict) or not isinstance(parsed.get("event"), dict):
        raise Rejected(400, "not_an_event")
    event = parsed["event"]
    if event.get("object_type") != OBJECT_TYPE or event.get("action") not in ACTIONS:
        return None  # e.g. status_change.opportunity, or a lead: not ours to show
    try:
        return WebhookDelivery.model_validate(parsed)
    except ValidationError as error:
        raise Rejected(400, "bad_event") from error


def _covers(events: list[dict[str, Any]]) -> bool:
    have = {(e.get("object_type"), e.get("action")) for e in events}
    return all((e["object_type"], e["action"]) in have for e in EVENTS)
