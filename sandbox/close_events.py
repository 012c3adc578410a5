"""The Close simulator's event log, webhook subscriptions and signed webhook deliveries."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from sandbox.close_sim import Org

Json = dict[str, Any]
Handler = Callable[[Request, Any], Awaitable[Json | Response]]

API_KEY_ID = "api_simSandboxKey0000000000"
EVENT_PAGE_MAX = 50
EVENT_FILTERS = ("object_type", "object_id", "action", "lead_id", "user_id", "request_id")
# GET /event/'s supported filter combinations, exactly as Close's API reference lists them.
SUPPORTED_FILTERS = frozenset(
    frozenset(combination)
    for combination in (
        ("object_type", "object_id"),
        ("object_type", "action"),
        ("object_id", "action"),
        ("lead_id", "object_type"),
        ("lead_id", "object_type", "action"),
        ("lead_id", "user_id", "object_type"),
        ("lead_id", "user_id", "object_type", "action"),
        ("lead_id", "user_id"),
        ("user_id", "object_id"),
        ("user_id", "object_id", "action"),
        ("user_id", "object_type"),
        ("user_id", "object_type", "action"),
        ("lead_id",),
        ("user_id",),
        ("request_id",),
    )
)
DATE_FILTERS: dict[str, Callable[[datetime, datetime], bool]] = {
    "date_updated__gte": lambda when, bound: when >= bound,
    "date_updated__gt": lambda when, bound: when > bound,
    "date_updated__lte": lambda when, bound: when <= bound,
    "date_updated__lt": lambda when, bound: when < bound,
}
WEBHOOK_STATUSES = ("active", "paused")
# Every write moves these, so they alone do not make an update worth an event.
BOOKKEEPING_FIELDS = frozenset({"date_updated", "updated_by", "updated_by_name"})


# --- wire errors and time (shared with close_sim) ---------------------------------------


class SimError(Exception):
    """Answer with this status and Close-shaped JSON body."""

    def __init__(self, status: int, body: Json, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def bad_request(field_errors: dict[str, str] | None = None, *errors: str) -> SimError:
    return SimError(400, {"errors": list(errors), "field-errors": field_errors or {}})


def not_found(kind: str) -> SimError:
    return SimError(404, {"error": f"Empty query: {kind} matching query does not exist."})


def parse_when(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def iso(when: datetime) -> str:
    """Close's event timestamps: always microseconds and `+00:00`."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def _when(event: Json) -> datetime:
    return parse_when(str(event.get("date_updated"))) or datetime.min.replace(tzinfo=UTC)


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who made a change, as its event tells: a user (None for automations), maybe an API key."""

    user_id: str | None
    api_key_id: str | None = None
    request_id: str | None = None
    request_method: str | None = None
    request_path: str | None = None


@dataclass
class Delivery:
    """One webhook delivery attempt; `status` is None when the connection failed."""

    subscription_id: str
    event_id: str
    date_updated: str
    status: int | None
    attempt: int
    at: datetime


@dataclass
class _Job:
    subscription_id: str
    event: Json  # a snapshot: a later merge is a delivery of its own


def signature(signature_key: str, timestamp: str, body: bytes) -> str:
    """`close-sig-hash`: hex HMAC-SHA256 keyed by the hex key, over timestamp + raw body."""
    message = timestamp.encode() + body
    return hmac.new(bytes.fromhex(signature_key), message, hashlib.sha256).hexdigest()


# --- the mixin ----------------------------------------------------------------------------


class CloseEvents:
    """The event log and webhooks half of CloseSimulator (mixed in; it provides `org`).

    Knobs, settable at any time: `events_merge_window`, `events_visible_after` (seconds),
    `webhook_delay`, `webhook_retry_seconds` (doubling per retry), `webhook_max_attempts`,
    `webhook_pause_after` (consecutive failed attempts before a subscription is paused).
    """

    org: Org

    def _init_events(self) -> None:
        self.events: list[Json] = []
        self.webhooks: list[Json] = []
        self.deliveries: list[Delivery] = []
        self.dropped_deliveries: list[Delivery] = []
        self.api_key_id: str = API_KEY_ID
        self.events_merge_window: float = 0.0
        self.events_visible_after: float = 0.0
        self.webhook_delay: float = 0.0
        self.webhook_retry_seconds: float = 0.2
        self.webhook_max_attempts: int = 5
        self.webhook_pause_after: int = 10
        self._event_order: dict[str, int] = {}
        self._event_seq = itertools.count(1)
        self._last_tick: datetime | None = None
        # Inside `same_instant`: every change is stamped with the block's first instant.
        self._same_instant = False
        self._instant: datetime | None = None
        self._drop = 0
        self._duplicate = 0
        self._holding = False
        self._held: list[_Job] = []
        self._failures: dict[str, int] = {}
        self._delivery_tasks: set[asyncio.Task[None]] = set()
        self._webhook_clients: dict[bool, httpx.AsyncClient] = {}
        self._deliveries_closed = False

    # --- recording ---

    def _tick(self) -> datetime:
        """Now, but strictly after the previous tick, so events for one object keep their order
        (inside `same_instant`, the block's first tick again)."""
        if self._same_instant and self._instant is not None:
            return self._instant
        now = datetime.now(UTC)
        if self._last_tick is not None and now <= self._last_tick:
            now = self._last_tick + timedelta(microseconds=1)
        self._last_tick = now
        if self._same_instant:
            self._instant = now
        return now

    @contextlib.contextmanager
    def same_instant(self) -> Iterator[None]:
        """Changes made inside are stamped alike (one `date_updated`), as Close stamps writes
        that land together: each still its own event, with its own data."""
        self._same_instant, self._instant = True, None
        try:
            yield
        finally:
            self._same_instant, self._instant = False, None

    def _api_actor(self, request: Request) -> Actor:
        return Actor(
            user_id=self.org.me_user_id,
            api_key_id=self.api_key_id,
            request_id=_token("req"),
            request_method=request.method,
            request_path=request.url.path,
        )

    def _person_actor(self, user_id: str | None, method: str, path: str) -> Actor:
        """A change made in Close's app (request ids, no API key) or, with None, by automation."""
        if user_id is None:
            return Actor(user_id=None)
        return Actor(user_id, None, _token("req"), method, path)

    def _record_event(
        self,
        *,
        object_type: str,
        object_id: str,
        lead_id: str | None,
        action: str,
        actor: Actor,
        data: Json,
        when: datetime,
        changed_fields: Iterable[str] = (),
        previous_data: Json | None = None,
    ) -> Json:
        """Append an event (or merge it into the object's newest one) and deliver it."""
        changed, previous = sorted(changed_fields), dict(previous_data or {})
        newest = self._mergeable(object_type, object_id, action, actor, when)
        if newest is not None:
            newest.update(
                date_updated=iso(when),
                lead_id=lead_id,
                request_id=actor.request_id,
                api_key_id=actor.api_key_id,
                changed_fields=sorted({*newest["changed_fields"], *changed}),
                previous_data={**previous, **newest["previous_data"]},
                data=copy.deepcopy(data),
                meta=_meta(actor),
            )
            event = newest
        else:
            event = {
                "id": _token("ev"),
                "object_type": object_type,
                "object_id": object_id,
                "lead_id": lead_id,
                "action": action,
                "date_created": iso(when),
                "date_updated": iso(when),
                "organization_id": self.org.id,
                "user_id": actor.user_id,
                "request_id": actor.request_id,
                "api_key_id": actor.api_key_id,
                "changed_fields": changed,
                "previous_data": copy.deepcopy(previous),
                "data": copy.deepcopy(data),
                "meta": _meta(actor),
            }
            self.events.append(event)
        self._event_order[event["id"]] = next(self._event_seq)
        self._dispatch(event)
        return event

    def _mergeable(
        self, object_type: str, object_id: str, action: str, actor: Actor, when: datetime
    ) -> Json | None:
        if action != "updated" or self.events_merge_window <= 0:
            return None
        mine = [
            e
            for e in self.events
            if e["object_type"] == object_type and e["object_id"] == object_id
        ]
        if not mine:
            return None
        newest = max(mine, key=self._event_key)
        recent = (when - _when(newest)).total_seconds() <= self.events_merge_window
        same_user = newest.get("user_id") == actor.user_id
        return newest if newest["action"] == "updated" and same_user and recent else None

    def _event_key(self, event: Json) -> tuple[datetime, int]:
        return _when(event), self._event_order.get(str(event.get("id")), 0)

    def _visible(self, event: Json, now: datetime) -> bool:
        return (now - _when(event)).total_seconds() >= self.events_visible_after

    # --- GET /event/ ---

    async def _list_events(self, request: Request, body: Any) -> Json:
        q = request.query_params
        if "_skip" in q:
            raise bad_request({"_skip": "_skip is not supported, use _cursor."})
        filters = {key: q[key] for key in EVENT_FILTERS if q.get(key)}
        if frozenset(filters) not in SUPPORTED_FILTERS:
            given = ", ".join(sorted(filters)) or "none"
            raise bad_request(
                None,
                f"Unsupported combination of filters ({given}). Supported: object_type and "
                "object_id or action, object_id and action, lead_id (with user_id, object_type, "
                "action), user_id (with object_id or object_type, and action), or request_id.",
            )
        limit = _event_limit(q.get("_limit"))
        bounds: list[tuple[Callable[[datetime, datetime], bool], datetime]] = []
        for key, compare in DATE_FILTERS.items():
            if q.get(key):
                bound = parse_when(q[key])
                if bound is None:
                    raise bad_request({key: "Enter a valid date/time."})
                bounds.append((compare, bound))
        cursor = _decode_cursor(q["_cursor"]) if q.get("_cursor") else None
        now = datetime.now(UTC)
        matching = sorted(
            (
                e
                for e in self.events
                if self._visible(e, now)
                and all(e.get(k) == v for k, v in filters.items())
                and all(compare(_when(e), bound) for compare, bound in bounds)
            ),
            key=self._event_key,
            reverse=True,
        )
        keys = [self._event_key(e) for e in matching]
        if cursor is not None and cursor[0] == "previous":
            newer = [i for i, k in enumerate(keys) if k > cursor[1]]
            chosen = newer[-limit:]
            more_newer = len(newer) > limit
        else:
            older = [i for i, k in enumerate(keys) if cursor is None or k < cursor[1]]
            chosen = older[:limit]
            more_newer = bool(chosen) and chosen[0] > 0
        page = [matching[i] for i in chosen]
        more_older = bool(chosen) and chosen[-1] < len(matching) - 1
        return {
            "data": copy.deepcopy(page),
            "cursor_next": _encode_cursor("next", keys[chosen[-1]]) if more_older else None,
            "cursor_previous": _encode_cursor("previous", keys[chosen[0]]) if more_newer else None,
        }

    async def _get_event(self, request: Request, body: Any) -> Json:
        event_id = request.path_params["event_id"]
        now = datetime.now(UTC)
        for event in self.events:
            if event["id"] == event_id and self._visible(event, now):
                return copy.deepcopy(event)
        raise not_found("Event")

    # --- webhook subscriptions ---

    async def _create_webhook(self, request: Request, body: Any) -> Response:
        fields = _webhook_fields(body, creating=True)
        now = iso(datetime.now(UTC))
        subscription: Json = {
            "id": _token("whsub"),
            "url": fields["url"],
            "events": fields["events"],
            "status": "active",
            "verify_ssl": fields.get("verify_ssl", True),
            "date_created": now,
            "date_updated": now,
            "signature_key": secrets.token_hex(32),
        }
        self.webhooks.append(subscription)
        return JSONResponse(copy.deepcopy(subscription), status_code=201)

    async def _list_webhooks(self, request: Request, body: Any) -> Json:
        return {"data": [_without_key(s) for s in self.webhooks], "has_more": False}

    async def _get_webhook(self, request: Request, body: Any) -> Json:
        return _without_key(self._webhook(request.path_params["sub_id"]))

    async def _update_webhook(self, request: Request, body: Any) -> Json:
        subscription = self._webhook(request.path_params["sub_id"])
        fields = _webhook_fields(body, creating=False)
        if fields.get("status") == "active":
            self._failures.pop(subscription["id"], None)  # a fresh start after a pause
        subscription.update(fields, date_updated=iso(datetime.now(UTC)))
        return _without_key(subscription)

    async def _delete_webhook(self, request: Request, body: Any) -> Json:
        subscription = self._webhook(request.path_params["sub_id"])
        self.webhooks.remove(subscription)
        return {}

    def _webhook(self, sub_id: str) -> Json:
        found = next((s for s in self.webhooks if s["id"] == sub_id), None)
        if found is None:
            raise not_found("WebhookSubscription")
        return found

    def _event_routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/event/", self._list_events),
            ("GET", "/event/{event_id}/", self._get_event),
            ("GET", "/webhook/", self._list_webhooks),
            ("POST", "/webhook/", self._create_webhook),
            ("GET", "/webhook/{sub_id}/", self._get_webhook),
            ("PUT", "/webhook/{sub_id}/", self._update_webhook),
            ("DELETE", "/webhook/{sub_id}/", self._delete_webhook),
        ]

    # --- delivery knobs ---

    def drop_deliveries(self, n: int) -> None:
        """The next `n` deliveries are silently not sent (listed in `dropped_deliveries`)."""
        self._drop = n

    def duplicate_deliveries(self, n: int) -> None:
        """The next `n` deliveries are each sent twice."""
        self._duplicate = n

    def hold_deliveries(self) -> None:
        """Queue deliveries instead of sending them, until `release_deliveries`."""
        self._holding = True

    def release_deliveries(self, reverse: bool = True) -> None:
        """Stop holding and send the queue, one after another; reversed = out of order."""
        self._holding = False
        jobs, self._held = self._held, []
        if reverse:
            jobs.reverse()
        if jobs:
            self._spawn(self._send_in_order(jobs))

    async def redeliver(self, event_id: str) -> None:
        """Send the event's current state again, now, to every active matching subscription.

        Bypasses the drop/duplicate/hold/delay knobs; a failed attempt is retried as usual.
        """
        event = next((e for e in self.events if e["id"] == event_id), None)
        if event is None:
            raise ValueError(f"No event {event_id} in the simulator's log.")
        await self._send_in_order(
            [_Job(s["id"], copy.deepcopy(event)) for s in self._subscribers(event)]
        )

    # A plain `timeout` argument, not asyncio.timeout: tests call this as a one-liner.
    async def wait_deliveries_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once no delivery is under way (held ones do not count); TimeoutError past it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending := {t for t in self._delivery_tasks if not t.done()}:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(pending)} webhook deliveries still under way")
            await asyncio.wait(pending, timeout=remaining)

    # --- delivery machinery ---

    def _subscribers(self, event: Json) -> list[Json]:
        wanted = (event["object_type"], event["action"])
        return [
            s
            for s in self.webhooks
            if s["status"] == "active"
            and any((e.get("object_type"), e.get("action")) == wanted for e in s["events"])
        ]

    def _dispatch(self, event: Json) -> None:
        if self._deliveries_closed or not self.webhooks:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop, nothing could receive: only async tests subscribe
        for subscription in self._subscribers(event):
            job = _Job(subscription["id"], copy.deepcopy(event))
            if self._drop > 0:
                self._drop -= 1
                self.dropped_deliveries.append(self._delivery(job, None, 0))
                continue
            copies = 1
            if self._duplicate > 0:
                self._duplicate -= 1
                copies = 2
            for _ in range(copies):
                if self._holding:
                    self._held.append(job)
                else:
                    self._spawn(self._deliver(job, delay=self.webhook_delay))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._delivery_tasks.add(task)
        task.add_done_callback(self._delivery_tasks.discard)

    async def _send_in_order(self, jobs: list[_Job]) -> None:
        for job in jobs:
            if await self._attempt(job, 1) is False:
                self._spawn(self._deliver(job, delay=0.0, first=2))

    async def _deliver(self, job: _Job, *, delay: float, first: int = 1) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        for attempt in range(first, self.webhook_max_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.webhook_retry_seconds * 2 ** (attempt - 2))
            if await self._attempt(job, attempt) is not False:
                return

    async def _attempt(self, job: _Job, attempt: int) -> bool | None:
        """POST one signed delivery: True on 2xx, False on failure, None if no longer wanted."""
        subscription = next((s for s in self.webhooks if s["id"] == job.subscription_id), None)
        if subscription is None or subscription["status"] != "active":
            return None
        body = json.dumps({"subscription_id": subscription["id"], "event": job.event}).encode()
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "close-sig-hash": signature(subscription["signature_key"], timestamp, body),
            "close-sig-timestamp": timestamp,
            "user-agent": "Close-Webhooks-Simulator",
        }
        client = self._webhook_client(bool(subscription.get("verify_ssl", True)))
        status: int | None
        try:
            response = await client.post(subscription["url"], content=body, headers=headers)
            status = response.status_code
        except httpx.HTTPError:
            status = None
        self.deliveries.append(self._delivery(job, status, attempt))
        if status is not None and 200 <= status < 300:
            self._failures[subscription["id"]] = 0
            return True
        failures = self._failures.get(subscription["id"], 0) + 1
        self._failures[subscription["id"]] = failures
        if failures >= self.webhook_pause_after:
            subscription.update(status="paused", date_updated=iso(datetime.now(UTC)))
        return False

    def _delivery(self, job: _Job, status: int | None, attempt: int) -> Delivery:
        return Delivery(
            subscription_id=job.subscription_id,
            event_id=job.event["id"],
            date_updated=job.event["date_updated"],
            status=status,
            attempt=attempt,
            at=datetime.now(UTC),
        )

    def _webhook_client(self, verify: bool) -> httpx.AsyncClient:
        if verify not in self._webhook_clients:
            self._webhook_clients[verify] = httpx.AsyncClient(
                verify=verify, timeout=httpx.Timeout(5.0), follow_redirects=False
            )
        return self._webhook_clients[verify]

    def _open_deliveries(self) -> None:
        self._deliveries_closed = False

    async def _close_deliveries(self) -> None:
        """Cancel every pending delivery and close the HTTP clients (the simulator stops)."""
        self._deliveries_closed = True
        tasks = list(self._delivery_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        clients, self._webhook_clients = list(self._webhook_clients.values()), {}
        for client in clients:
            await client.aclose()


# --- helpers ------------------------------------------------------------------------------


def _token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(11)}"


def _meta(actor: Actor) -> Json:
    return {"request_method": actor.request_method, "request_path": actor.request_path}


def _event_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return EVENT_PAGE_MAX
    try:
        limit = int(raw)
    except ValueError as exc:
        raise bad_request({"_limit": "Enter a whole number."}) from exc
    if limit < 1:
        raise bad_request({"_limit": "Ensure this value is greater than or equal to 1."})
    return min(limit, EVENT_PAGE_MAX)


def _encode_cursor(direction: str, key: tuple[datetime, int]) -> str:
    raw = json.dumps([direction, iso(key[0]), key[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[str, tuple[datetime, int]]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        direction, when_text, seq = json.loads(raw)
        when = parse_when(when_text)
        if direction not in ("next", "previous") or when is None or not isinstance(seq, int):
            raise ValueError(text)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise bad_request({"_cursor": "Invalid cursor."}) from exc
    return direction, (when, seq)


def _without_key(subscription: Json) -> Json:
    return {k: copy.deepcopy(v) for k, v in subscription.items() if k != "signature_key"}


def _webhook_fields(body: Any, *, creating: bool) -> Json:
    """Validate a subscription body like Close (all fields optional on PUT)."""
    if not isinstance(body, dict):
        raise bad_request(None, "Expected a JSON object.")
    errors: dict[str, str] = {}
    fields: Json = {}
    for key in ("url", "events"):
        if creating and key not in body:
            errors[key] = "This field is required."
    if "url" in body:
        url = body["url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            errors["url"] = "Enter a valid URL."
        else:
            fields["url"] = url
    if "events" in body:
        events = body["events"]
        if not isinstance(events, list) or not events:
            errors["events"] = "Enter a non-empty list of events."
        elif not all(
            isinstance(e, dict)
            and isinstance(e.get("object_type"), str)
            and isinstance(e.get("action"), str)
            for e in events
        ):
            errors["events"] = "Each event needs an object_type and an action."
        elif any(e.get("extra_filter") is not None for e in events):
            errors["events"] = "The sandbox does not apply webhook filters (extra_filter)."
        else:
            fields["events"] = [
                {"object_type": e["object_type"], "action": e["action"]} for e in events
            ]
    if body.get("event_filter") is not None:
        errors["event_filter"] = "The sandbox does not apply webhook filters (event_filter)."
    if "verify_ssl" in body:
        if isinstance(body["verify_ssl"], bool):
            fields["verify_ssl"] = body["verify_ssl"]
        else:
            errors["verify_ssl"] = "Must be a valid boolean."
    if not creating and "status" in body:
        if body["status"] in WEBHOOK_STATUSES:
            fields["status"] = body["status"]
        else:
            errors["status"] = "Status must be active or paused."
    if errors:
        raise bad_request(errors)
    return fields


__all__ = [
    "API_KEY_ID",
    "Actor",
    "CloseEvents",
    "Delivery",
    "SimError",
    "bad_request",
    "not_found",
    "parse_when",
    "signature",
]
