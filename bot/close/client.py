"""Async Close REST client (httpx over one aiohttp pool): typed results and errors, bounded retries."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Literal, Protocol

import httpx

from bot.close.errors import (
    CloseAuthError,
    CloseError,
    CloseHTTPError,
    CloseNotFound,
    CloseOutcomeUnknown,
    CloseRateLimited,
    CloseUnavailable,
    CloseValidationError,
)
from bot.close.models import (
    Contact,
    CustomField,
    EventPage,
    Lead,
    LeadWithOpportunities,
    Me,
    Membership,
    Opportunity,
    OpportunityCreate,
    OpportunityPage,
    Pipeline,
    Status,
    StatusType,
    User,
    WebhookSubscription,
)
from bot.close.transport import AiohttpTransport
from bot.tasks import remote_call

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0, pool=5.0)
MAX_SEARCH_LIMIT = 200  # Close answers 400 past this for leads
MAX_EVENT_LIMIT = 50  # the event log's page size cap
# What a link preview shows of a lead: asked for by name, so Close leaves out the rest
# (contacts, tasks, addresses…) that a full lead carries.
LEAD_PREVIEW_FIELDS = (
    "id",
    "display_name",
    "name",
    "html_url",
    "status_id",
    "status_label",
    "opportunities",
)
TRANSIENT_STATUSES = frozenset({502, 503, 504})
# While the first call of an endpoint group is out, others wait this long at most to learn
# the group's budget from its `RateLimit` header (a hung first call must not hold them all).
# Short: Close usually answers well within it, and with Close at 1 s a whole second here made
# a message with several lead links the first time wait 2 s for its previews.
PROBE_WAIT = 0.25

_RATELIMIT_FIELD = re.compile(r"(limit|remaining|reset)\s*=\s*([0-9.]+)")
# Path segments that are object ids (lead_…, oppo_…) are folded so one endpoint is one group.
_ID_SEGMENT = re.compile(r"^[a-z]+_[A-Za-z0-9]+$")
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

Method = Literal["GET", "POST", "PUT", "DELETE"]
# Whose view of Close a client has (caches of what Close answered are kept per view).
KEY_VIEW = "key"


class CloseObserver(Protocol):
    """Told about every request to Close (bot.metrics.Metrics is one)."""

    def close_request(self, endpoint: str, status: str, seconds: float) -> None:
        """One HTTP exchange with Close: its endpoint group, status (or "unreachable")."""

    def close_waited(self, endpoint: str, seconds: float) -> None:
        """A request waited `seconds` before going out (a 429's reset, or the rate budget)."""


@dataclass
class Attribution:
    """Whether Close takes `created_by` from the key (None: not tried yet, False: refused)."""

    accepted: bool | None = None


@dataclass
class _Budget:
    """One endpoint group's rate-limit window as Close's `RateLimit` header describes it.

    `remaining` counts down locally as calls go out (None: Close never said, do not pace);
    `span` is the longest `reset` seen, our estimate of the window's length.
    """

    limit: float | None = None
    remaining: float | None = None
    reset_at: float = 0.0
    span: float = 0.0
    in_flight: int = 0
    learned: bool = False
    probe_since: float = 0.0
    probe_done: asyncio.Event = field(default_factory=asyncio.Event)


class CloseClient:
    """Talks to Close's REST API (`https://api.close.com/api/v1/`) with an API key.

    Reads (GET and `POST /data/search/`) retry transport errors and 502/503/504; writes
    never re-send once the request may have reached Close (→ :class:`CloseOutcomeUnknown`).
    429s are waited out up to `max_wait_seconds` in total per call.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.close.com/api/v1/",
        *,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_wait_seconds: float = 30.0,
        default_rate_limit_wait: float = 2.0,
        user_agent: str = "close-opportunity-bot",
        retry_attempts: int = 4,
        retry_backoff: float = 0.25,
        observer: CloseObserver | None = None,
    ) -> None:
        self._api_key = api_key
        self._observer = observer
        self.attribution = Attribution()
        self.max_wait_seconds = max_wait_seconds
        self.default_rate_limit_wait = default_rate_limit_wait
        self.retry_attempts = max(1, retry_attempts)
        self.retry_backoff = retry_backoff
        # Monotonic instant before which no request of an endpoint group should go out.
        self._not_before: dict[str, float] = {}
        self._budgets: dict[str, _Budget] = {}
        self._http = httpx.AsyncClient(
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            auth=httpx.BasicAuth(api_key, ""),
            timeout=timeout or DEFAULT_TIMEOUT,
            # The worker's creates (one per submission in flight, Close taking ~1 s each) and
            # the modal's lead searches share this pool: enough connections for both.
            transport=transport or AiohttpTransport(limit=200),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def view(self) -> str:
        """Whose view of Close this client has: the key's (the whole org's) here."""
        return KEY_VIEW

    @property
    def acts_with_key(self) -> bool:
        """True: Close records the key's owner as the actor (so `created_by` is worth sending)."""
        return True

    def _borrow(self, other: CloseClient) -> None:
        """Speak through `other`'s HTTP client (its connection pool and settings), with rate
        budgets of our own: Close counts each credential's requests separately."""
        self._api_key = other._api_key
        self._observer = other._observer
        self.attribution = other.attribution
        self.max_wait_seconds = other.max_wait_seconds
        self.default_rate_limit_wait = other.default_rate_limit_wait
        self.retry_attempts = other.retry_attempts
        self.retry_backoff = other.retry_backoff
        self._not_before = {}
        self._budgets = {}
        self._http = other._http

    async def __aenter__(self) -> CloseClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- metadata -------------------------------------------------------------------

    async def me(self) -> Me:
        return Me.model_validate(await self._request("GET", "me/"))

    async def list_pipelines(self) -> list[Pipeline]:
        # One plain request: Close's description of GET /pipeline/ declares no paging.
        pipelines = []
        for item in (await self._request("GET", "pipeline/")).get("data", []):
            # Nested statuses omit their pipeline_id; fill it so each Status stands alone.
            statuses = [
                {**status, "pipeline_id": item["id"]} for status in item.get("statuses", [])
            ]
            pipelines.append(Pipeline.model_validate({**item, "statuses": statuses}))
        return pipelines

    async def list_opportunity_statuses(self) -> list[Status]:
        # One plain request: Close's description of GET /status/opportunity/ declares no paging.
        body = await self._request("GET", "status/opportunity/")
        return [Status.model_validate(item) for item in body.get("data", [])]

    async def list_users(self) -> list[User]:
        return [User.model_validate(item) for item in await self._paginate("user/")]

    async def list_memberships(self, organization_id: str | None = None) -> list[Membership]:
        """Members of the org (default: the key's first org), inactive ones with active=False."""
        if organization_id is None:
            organizations = (await self.me()).organizations
            if not organizations:
                return []
            organization_id = str(organizations[0]["id"])
        org = await self._request("GET", f"organization/{organization_id}/")
        members = [{**m, "active": True} for m in org.get("memberships") or []]
        members += [{**m, "active": False} for m in org.get("inactive_memberships") or []]
        return [Membership.model_validate(m) for m in members]

    async def list_opportunity_custom_fields(self) -> list[CustomField]:
        try:
            body = await self._request("GET", "custom_field_schema/opportunity/")
            items = body.get("fields", [])
        except CloseNotFound:
            # Older orgs/API versions only have the per-object custom field endpoint.
            items = await self._paginate("custom_field/opportunity/")
        return [CustomField.model_validate(item) for item in items]

    # --- leads and contacts ---------------------------------------------------------

    async def search_leads(self, name: str, limit: int = 20) -> list[Lead]:
        """Leads whose name contains `name` (Close's phrase match), best first.

        Only `POST /data/search/` (Close's Advanced Filtering): the older `GET /lead/?query=` is
        deprecated and gone from Close's docs. When Close refuses the search (404, or 400 for
        this query), there are no results.
        """
        query = {
            "query": {
                "type": "and",
                "queries": [
                    {"type": "object_type", "object_type": "lead"},
                    {
                        "type": "field_condition",
                        "field": {
                            "type": "regular_field",
                            "object_type": "lead",
                            "field_name": "name",
                        },
                        "condition": {"type": "text", "mode": "phrase", "value": name},
                    },
                ],
            },
            "_fields": {"lead": ["id", "display_name"]},
            "_limit": min(limit, MAX_SEARCH_LIMIT),
        }
        try:
            body = await self._request("POST", "data/search/", json=query, read=True)
        except (CloseNotFound, CloseValidationError):
            return []
        return [Lead.model_validate(item) for item in body.get("data", [])][:limit]

    async def get_lead(self, lead_id: str) -> Lead:
        return Lead.model_validate(await self._request("GET", f"lead/{lead_id}/"))

    async def get_lead_with_opportunities(self, lead_id: str) -> LeadWithOpportunities:
        """The lead, its status and its opportunities in one read (Close embeds them in the
        lead); `_fields` keeps the answer to what a preview shows. An embedded opportunity
        Close sends malformed is left out rather than failing the whole lead."""
        data = await self._request(
            "GET", f"lead/{lead_id}/", params={"_fields": ",".join(LEAD_PREVIEW_FIELDS)}
        )
        opportunities: list[Opportunity] = []
        for item in data.get("opportunities") or []:
            if isinstance(item, dict):
                with contextlib.suppress(ValueError):  # pydantic's ValidationError is one
                    opportunities.append(parse_opportunity(item))
        return LeadWithOpportunities.model_validate({**data, "opportunities": opportunities})

    async def create_lead(self, name: str) -> Lead:
        return Lead.model_validate(await self._request("POST", "lead/", json={"name": name}))

    async def list_contacts(self, lead_id: str) -> list[Contact]:
        items = await self._paginate("contact/", {"lead_id": lead_id})
        return [Contact.model_validate(item) for item in items]

    # --- opportunities --------------------------------------------------------------

    async def create_opportunity(
        self,
        body: OpportunityCreate,
        *,
        tz_offset_hours: float | None = None,
        on_behalf_of: str | None = None,
    ) -> Opportunity:
        """Create it. `on_behalf_of`: the Close user it is created for; with the key it goes as
        `created_by`, so Close shows them as its creator (a person's own token needs none:
        Close records them). If Close refuses `created_by` from the key, the deal is created
        without it (a 400 applied nothing) and it is not sent again by this process."""
        if on_behalf_of and self.acts_with_key and self.attribution.accepted is not False:
            attributed = body.model_copy(update={"created_by": on_behalf_of})
            try:
                created = await self._create_opportunity(attributed, tz_offset_hours)
            except CloseValidationError as error:
                if not _refuses_created_by(error):
                    raise
                self.attribution.accepted = False
                log.warning("Close refused created_by from the API key: deals show its owner")
            else:
                self.attribution.accepted = True
                return created
        return await self._create_opportunity(body, tz_offset_hours)

    async def _create_opportunity(
        self, body: OpportunityCreate, tz_offset_hours: float | None
    ) -> Opportunity:
        data = await self._request(
            "POST", "opportunity/", json=body.to_close(), headers=_tz_header(tz_offset_hours)
        )
        return parse_opportunity(data)

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        return parse_opportunity(await self._request("GET", f"opportunity/{opportunity_id}/"))

    async def update_opportunity(
        self,
        opportunity_id: str,
        changes: Mapping[str, Any],
        *,
        tz_offset_hours: float | None = None,
    ) -> Opportunity:
        """Patch an opportunity; `changes` may hold `custom.cf_…` keys or a `custom` dict."""
        data = await self._request(
            "PUT",
            f"opportunity/{opportunity_id}/",
            json=_changes_to_close(changes),
            headers=_tz_header(tz_offset_hours),
        )
        return parse_opportunity(data)

    async def list_opportunities(
        self,
        *,
        lead_id: str | None = None,
        user_id: str | None = None,
        date_created_gte: datetime | None = None,
        date_created_lte: datetime | None = None,
        date_updated_gte: datetime | None = None,
        status_type: StatusType | None = None,
        date_won_lt: date | None = None,
        date_won_gte: date | None = None,
        date_won_lte: date | None = None,
        order_by: str | None = None,
        limit: int = 100,
    ) -> list[Opportunity]:
        params = _opportunity_filters(
            lead_id=lead_id,
            user_id=user_id,
            date_created_gte=date_created_gte,
            date_created_lte=date_created_lte,
            date_updated_gte=date_updated_gte,
            status_type=status_type,
            date_won_lt=date_won_lt,
            date_won_gte=date_won_gte,
            date_won_lte=date_won_lte,
            order_by=order_by,
        )
        items = await self._paginate("opportunity/", params, max_items=limit)
        return [parse_opportunity(item) for item in items]

    async def first_opportunities(
        self,
        *,
        user_id: str | None = None,
        status_type: StatusType | None = None,
        date_won_lt: date | None = None,
        date_won_lte: date | None = None,
        order_by: str | None = None,
        limit: int = 10,
    ) -> OpportunityPage:
        """The first `limit` matching opportunities and how many match in all (Close's
        `total_results`): one request, however many there are."""
        params = _opportunity_filters(
            user_id=user_id,
            status_type=status_type,
            date_won_lt=date_won_lt,
            date_won_lte=date_won_lte,
            order_by=order_by,
        )
        page = await self._request("GET", "opportunity/", params={**params, "_limit": limit})
        data = [parse_opportunity(item) for item in page.get("data", [])]
        total = page.get("total_results")
        return OpportunityPage(
            data=data, total_results=total if isinstance(total, int) else len(data)
        )

    # --- changes: the event log and webhook subscriptions ----------------------------

    async def list_events(
        self,
        *,
        object_type: str,
        action: str,
        date_updated_gte: datetime | None = None,
        cursor: str | None = None,
        limit: int = MAX_EVENT_LIMIT,
    ) -> EventPage:
        """One page of the event log, latest first; `cursor_next` pages to older events.

        Close pages this endpoint by cursor only (no `_skip`) and supports `object_type` only
        together with another filter, hence one query per action.
        """
        params: dict[str, Any] = {
            "object_type": object_type,
            "action": action,
            "_limit": min(limit, MAX_EVENT_LIMIT),
        }
        if date_updated_gte is not None:
            params["date_updated__gte"] = date_updated_gte.astimezone(UTC).isoformat()
        if cursor:
            params["_cursor"] = cursor
        return EventPage.model_validate(await self._request("GET", "event/", params=params))

    async def list_webhooks(self) -> list[WebhookSubscription]:
        body = await self._request("GET", "webhook/")
        return [WebhookSubscription.model_validate(item) for item in body.get("data", [])]

    async def create_webhook(
        self, url: str, events: list[dict[str, str]], *, verify_ssl: bool = True
    ) -> WebhookSubscription:
        body = {"url": url, "events": events, "verify_ssl": verify_ssl}
        return WebhookSubscription.model_validate(
            await self._request("POST", "webhook/", json=body)
        )

    async def update_webhook(
        self, subscription_id: str, changes: Mapping[str, Any]
    ) -> WebhookSubscription:
        data = await self._request("PUT", f"webhook/{subscription_id}/", json=dict(changes))
        return WebhookSubscription.model_validate(data)

    async def delete_webhook(self, subscription_id: str) -> None:
        await self._request("DELETE", f"webhook/{subscription_id}/")

    # --- plumbing -------------------------------------------------------------------

    async def _paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = 100,
        max_items: int | None = None,
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            size = page_size if max_items is None else min(page_size, max_items - len(items))
            page = await self._request(
                "GET", path, params={**(params or {}), "_skip": len(items), "_limit": size}
            )
            data = page.get("data", [])
            items.extend(data)
            if not page.get("has_more") or not data:
                return items
            if max_items is not None and len(items) >= max_items:
                return items[:max_items]

    async def _request(
        self,
        method: Method,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        read: bool | None = None,
        auth: httpx.Auth | None = None,
    ) -> dict[str, Any]:
        """Send one logical request, retrying only where that cannot duplicate a write.

        `auth`: other credentials than the key for this request (a person's Bearer token)."""
        is_read = method == "GET" if read is None else read
        group = _endpoint_group(method, path)
        waited_for_rate_limit = 0.0
        attempt = 0
        while True:
            attempt += 1
            async with remote_call():
                response = await self._attempt(
                    method,
                    path,
                    group,
                    params=params,
                    json=json,
                    headers=headers,
                    is_read=is_read,
                    attempt=attempt,
                    auth=auth,
                )
            if response is None:
                continue  # no answer, and sending again cannot duplicate anything: backed off
            status = response.status_code
            if status == 429:
                waited_for_rate_limit += self._hold_for_rate_limit(
                    response, method, path, group, waited=waited_for_rate_limit
                )
                continue
            if status in TRANSIENT_STATUSES:
                await self._back_off_transient(
                    status, method, path, is_read=is_read, attempt=attempt
                )
                continue
            return self._answer(response, method, path)

    async def _attempt(
        self,
        method: Method,
        path: str,
        group: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        is_read: bool,
        attempt: int,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response | None:
        """Send once within the group's budget: Close's response, or None after the backoff
        when the request failed in transport and may be sent again. Raises when it may not
        (a write that may have reached Close) or when the attempts are spent."""
        paced_at = time.monotonic()
        await self._pace(group)
        sent_at = time.monotonic()
        if self._observer is not None and sent_at - paced_at > 0.001:
            self._observer.close_waited(group, sent_at - paced_at)
        try:
            response = await self._http.request(
                method,
                path,
                params=params,
                json=json,
                headers=headers,
                auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth,
            )
        except httpx.TransportError as exc:
            self._settle(group, None)
            self._observe(group, "unreachable", sent_at)
            if isinstance(exc, _NOT_SENT):
                # Nothing reached Close: safe to try again, even for writes.
                await self._backoff_or_raise(attempt, f"cannot reach Close ({_describe(exc)})")
                return None
            if not is_read:
                raise CloseOutcomeUnknown(
                    f"{method} /{path} was sent but no answer came ({_describe(exc)}); "
                    "check Close before sending it again"
                ) from exc
            await self._backoff_or_raise(attempt, f"Close did not answer ({_describe(exc)})")
            return None
        except BaseException:
            self._settle(group, None)
            raise
        self._settle(group, response)
        self._observe(group, str(response.status_code), sent_at)
        return response

    def _hold_for_rate_limit(
        self, response: httpx.Response, method: Method, path: str, group: str, *, waited: float
    ) -> float:
        """Hold the group for as long as Close's 429 asks (the seconds held), or raise when
        that would take the request past `max_wait_seconds` of waiting in all."""
        # A floor keeps a server that says "reset=0" from spinning us forever.
        wait = max(self._rate_limit_wait(response), 0.05)
        if waited + wait > self.max_wait_seconds:
            raise CloseRateLimited(
                f"rate limited on {method} /{path} after waiting {waited:.1f}s",
                retry_after=wait,
            )
        self._hold(group, wait)
        return wait

    async def _back_off_transient(
        self, status: int, method: Method, path: str, *, is_read: bool, attempt: int
    ) -> None:
        """Back off before sending again after a 502/503/504, or raise when it may not be."""
        if not is_read and status != 503:
            # A gateway error on a write says nothing about whether Close applied it.
            raise CloseOutcomeUnknown(
                f"{method} /{path} got {status}; check Close before sending it again",
                status_code=status,
            )
        await self._backoff_or_raise(
            attempt, f"Close answered {status} to {method} /{path}", status
        )

    def _answer(self, response: httpx.Response, method: Method, path: str) -> dict[str, Any]:
        """A final response's JSON body (a list is wrapped as `data`), or its typed error."""
        status = response.status_code
        if status >= 500:
            raise CloseUnavailable(
                f"Close answered {status} to {method} /{path}", status_code=status
            )
        if status >= 400:
            raise self._http_error(response)
        try:
            body = response.json()
        except ValueError as exc:
            raise CloseUnavailable(
                f"Close sent a non-JSON answer to {method} /{path}", status_code=status
            ) from exc
        return body if isinstance(body, dict) else {"data": body}

    def _observe(self, group: str, status: str, sent_at: float) -> None:
        if self._observer is not None:
            self._observer.close_request(group, status, time.monotonic() - sent_at)

    async def _backoff_or_raise(self, attempt: int, what: str, status: int | None = None) -> None:
        if attempt >= self.retry_attempts:
            raise CloseUnavailable(
                self._scrub(f"{what}; gave up after {attempt} attempts"), status_code=status
            )
        delay = self.retry_backoff * 2 ** (attempt - 1)
        await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    async def _pace(self, group: str) -> None:
        """Wait until a call of `group` fits Close's budget, and count it as sent.

        Until Close has answered one call of a group, the others wait (up to PROBE_WAIT) for
        its `RateLimit` header, so a burst of first calls does not become a burst of 429s.
        """
        budget = self._budgets.setdefault(group, _Budget())
        # Loop: other tasks change the budget (or push the hold) while we sleep.
        while True:
            now = time.monotonic()
            held = self._not_before.get(group, 0.0) - now
            if held > 0:
                await asyncio.sleep(held)
                continue
            if not budget.learned:
                if budget.in_flight == 0:
                    budget.probe_since = now
                    break
                left = budget.probe_since + PROBE_WAIT - now
                if left > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(budget.probe_done.wait(), left)
                    continue
                break  # the first call hangs: do not hold everyone behind it
            if budget.remaining is not None and budget.limit is not None:
                if now >= budget.reset_at:
                    # A new window began; its first answer will correct the estimate.
                    budget.remaining = budget.limit
                    budget.reset_at = now + budget.span
                if budget.remaining < 1:
                    # Jitter so the waiters of one window do not all wake in the same instant.
                    await asyncio.sleep(budget.reset_at - now + random.uniform(0.0, 0.02))
                    continue
                budget.remaining -= 1
            break
        budget.in_flight += 1

    def _settle(self, group: str, response: httpx.Response | None) -> None:
        """A call of `group` is done: learn its budget from the `RateLimit` header, if any."""
        budget = self._budgets.setdefault(group, _Budget())
        budget.in_flight = max(0, budget.in_flight - 1)
        fields = _parse_ratelimit(response.headers.get("RateLimit")) if response else {}
        remaining, reset = fields.get("remaining"), fields.get("reset")
        if remaining is not None and reset is not None:
            now = time.monotonic()
            reset_at = now + reset
            budget.span = max(budget.span, reset)
            budget.limit = fields.get("limit") or max(budget.limit or 0.0, remaining + 1)
            tolerance = max(0.01, budget.span / 4)
            if budget.remaining is None or reset_at > budget.reset_at + tolerance:
                # A window we had not seen: calls still out will count against it too.
                budget.remaining = max(0.0, remaining - budget.in_flight)
            else:
                budget.remaining = min(budget.remaining, remaining)
            budget.reset_at = reset_at
        if response is not None and not budget.learned:
            budget.learned = True
            budget.probe_done.set()
        elif response is None and not budget.learned:
            # The first call failed without an answer: let a waiting call try instead.
            budget.probe_done.set()
            budget.probe_done = asyncio.Event()

    def _hold(self, group: str, seconds: float) -> None:
        # A little jitter so a burst of callers does not come back in lockstep.
        jitter = random.uniform(0.0, min(0.05, seconds * 0.1))
        until = time.monotonic() + seconds + jitter
        self._not_before[group] = max(self._not_before.get(group, 0.0), until)

    def _rate_limit_wait(self, response: httpx.Response) -> float:
        reset = _parse_ratelimit(response.headers.get("RateLimit")).get("reset")
        if reset is not None:
            return reset
        retry_after = _parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None:
            return retry_after
        body = _json_or_none(response)
        if isinstance(body, dict):
            error = body.get("error")
            for holder in (error, body):
                if isinstance(holder, dict) and _is_number(holder.get("rate_reset")):
                    return max(0.0, float(holder["rate_reset"]))
        return self.default_rate_limit_wait

    def _http_error(self, response: httpx.Response) -> CloseHTTPError:
        body = _json_or_none(response)
        message, errors, field_errors = "", [], {}
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, str):
                message = error
            elif isinstance(error, dict):
                message = str(error.get("message", ""))
            errors = [str(item) for item in body.get("errors") or []]
            raw_fields = body.get("field-errors") or {}
            if isinstance(raw_fields, dict):
                field_errors = {str(k): _flatten(v) for k, v in raw_fields.items()}
        elif response.text:
            message = response.text[:200]
        if not message:
            message = response.reason_phrase
        status = response.status_code
        message = self._scrub(message)
        errors = [self._scrub(text) for text in errors]
        field_errors = {key: self._scrub(text) for key, text in field_errors.items()}
        kind: type[CloseHTTPError] = CloseHTTPError
        if status == 400:
            kind = CloseValidationError
        elif status in (401, 403):
            kind = CloseAuthError
        elif status == 404:
            kind = CloseNotFound
        return kind(status, message, errors=errors, field_errors=field_errors)

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "[api key]") if self._api_key else text


def parse_opportunity(data: Mapping[str, Any]) -> Opportunity:
    """An :class:`Opportunity` from Close's JSON, its `custom.cf_…` keys folded into `custom`."""
    fields: dict[str, Any] = {}
    custom: dict[str, Any] = dict(data.get("custom") or {})
    for key, value in data.items():
        if key.startswith("custom."):
            custom[key.removeprefix("custom.")] = value
        elif key != "custom":
            fields[key] = value
    if isinstance(fields.get("date_won"), str):
        # Close sends YYYY-MM-DD, but tolerate a full timestamp.
        fields["date_won"] = fields["date_won"][:10]
    return Opportunity.model_validate({**fields, "custom": custom})


def _changes_to_close(changes: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "custom" and isinstance(value, Mapping):
            for field_id, field_value in value.items():
                body[f"custom.{field_id}"] = _jsonable(field_value)
        else:
            body[key] = _jsonable(value)
    return body


def _jsonable(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _tz_header(hours: float | None) -> dict[str, str] | None:
    if hours is None:
        return None
    text = f"{hours:g}" if hours != int(hours) else str(int(hours))
    return {"x-tz-offset": text}


def _endpoint_group(method: str, path: str) -> str:
    segments = ["{id}" if _ID_SEGMENT.match(seg) else seg for seg in path.strip("/").split("/")]
    return f"{method} /{'/'.join(segments)}/"


def _parse_ratelimit(header: str | None) -> dict[str, float]:
    if not header:
        return {}
    return {name: float(value) for name, value in _RATELIMIT_FIELD.findall(header)}


def _parse_retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _flatten(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return str(value)


def _refuses_created_by(error: CloseValidationError) -> bool:
    """Close's 400 is about `created_by` (a field error on it, or an error text naming it)."""
    return "created_by" in error.field_errors or any("created_by" in e for e in error.errors)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = ["KEY_VIEW", "Attribution", "CloseClient", "CloseError", "parse_opportunity"]


def _opportunity_filters(
    *,
    lead_id: str | None = None,
    user_id: str | None = None,
    date_created_gte: datetime | None = None,
    date_created_lte: datetime | None = None,
    date_updated_gte: datetime | None = None,
    status_type: StatusType | None = None,
    date_won_lt: date | None = None,
    date_won_gte: date | None = None,
    date_won_lte: date | None = None,
    order_by: str | None = None,
) -> dict[str, Any]:
    """`GET /opportunity/`'s filters as Close names them (`date_won__lt`, `_order_by`…)."""
    params: dict[str, Any] = {}
    if lead_id:
        params["lead_id"] = lead_id
    if user_id:
        params["user_id"] = user_id
    for name, when in (
        ("date_created__gte", date_created_gte),
        ("date_created__lte", date_created_lte),
        ("date_updated__gte", date_updated_gte),
    ):
        if when is not None:
            params[name] = (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
    if status_type:
        params["status_type"] = status_type
    for name, day in (
        ("date_won__lt", date_won_lt),
        ("date_won__gte", date_won_gte),
        ("date_won__lte", date_won_lte),
    ):
        if day is not None:
            params[name] = day.isoformat()
    if order_by:
        params["_order_by"] = order_by
    return params
