"""A local Close API simulator (Starlette) that speaks Close's wire format, with fault switches."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import random
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.close_events import (
    BOOKKEEPING_FIELDS,
    Actor,
    CloseEvents,
    Handler,
    Json,
    SimError,
    bad_request,
    iso,
    not_found,
    parse_when,
)
from sandbox.close_oauth import CloseOAuthSim
from sandbox.server import RunningServer, start_server

API_PREFIX = "/api/v1"
APP_URL = "https://app.close.com/"
# Who `change_opportunity` & co. act as by default: a person in the org, not the bot's key.
PERSON_USER_ID = "user_bob"
VALUE_PERIODS = ("one_time", "monthly", "annual")


# --- the organization's state ---------------------------------------------------------


@dataclass
class Org:
    """Everything the simulated organization holds, as Close would store it (plain JSON dicts).

    `statuses` carry their `pipeline_id` (None for orgs without pipelines); `GET /pipeline/`
    nests them in list order.
    """

    id: str
    name: str
    me_user_id: str
    currency: str = "USD"
    users: list[Json] = field(default_factory=list)
    inactive_user_ids: set[str] = field(default_factory=set)
    pipelines: list[Json] = field(default_factory=list)
    statuses: list[Json] = field(default_factory=list)
    custom_fields: list[Json] = field(default_factory=list)
    leads: list[Json] = field(default_factory=list)
    contacts: list[Json] = field(default_factory=list)
    opportunities: list[Json] = field(default_factory=list)

    def find(self, collection: list[Json], object_id: Any) -> Json | None:
        return next((item for item in collection if item["id"] == object_id), None)

    def user_name(self, user_id: str | None) -> str | None:
        user = self.find(self.users, user_id)
        if user is None:
            return None
        return " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p) or None

    def statuses_of(self, pipeline_id: str | None) -> list[Json]:
        return [s for s in self.statuses if s.get("pipeline_id") == pipeline_id]

    def add_lead(self, name: str, *, lead_id: str | None = None) -> Json:
        """Seed one more lead (tests: many leads matching a prefix, long names)."""
        lead = _lead(lead_id or f"lead_seed{len(self.leads) + 1:05d}", name, self.id, _SEEDED)
        self.leads.append(lead)
        return lead

    def add_custom_field(
        self,
        cf_id: str,
        name: str,
        kind: str,
        choices: list[str] | None = None,
        *,
        multiple: bool = False,
        required: bool = False,
        description: str | None = None,
    ) -> Json:
        """Seed one more opportunity custom field, shaped as `/custom_field_schema/` lists it."""
        field_json = _cf(
            cf_id,
            name,
            kind,
            choices,
            multiple=multiple,
            required=required,
            description=description,
        )
        self.custom_fields.append(field_json)
        return field_json


def default_org() -> Org:
    """A seeded org: two pipelines, four users (one inactive), eight leads, custom fields."""
    org_id = "orga_sandbox"
    users = [
        _user("user_alice", "alice@example.com", "Alice", "Anders"),
        _user("user_bob", "bob@example.com", "Bob", "Baker"),
        _user("user_carol", "carol@example.com", "Carol", "Chen"),
        _user("user_dave", "dave@example.com", "Dave", "Dormant"),
    ]
    statuses = [
        ("stat_lead", "Lead", "active", "pipe_sales"),
        ("stat_contacted", "Contacted", "active", "pipe_sales"),
        ("stat_demo", "Demo Scheduled", "active", "pipe_sales"),
        ("stat_proposal", "Proposal Sent", "active", "pipe_sales"),
        ("stat_won", "Won", "won", "pipe_sales"),
        ("stat_lost", "Lost", "lost", "pipe_sales"),
        ("stat_renewal_due", "Renewal Due", "active", "pipe_renewals"),
        ("stat_renewed", "Renewed", "won", "pipe_renewals"),
        ("stat_churned", "Churned", "lost", "pipe_renewals"),
    ]
    lead_names = {
        "lead_acme": "Acme Corp",
        "lead_globex": "Globex Corporation",
        "lead_initech": "Initech",
        "lead_nakatomi": "Nakatomi Trading",
        "lead_umbrella": "Umbrella Ltd",
        "lead_soylent": "Soylent Inc.",
        "lead_wayne": "Wayne Enterprises",
        "lead_stark": "Stark Industries",
    }
    contacts = [
        ("cont_acme_wile", "lead_acme", "Wile E. Coyote", "Head of Procurement"),
        ("cont_acme_road", "lead_acme", "Road Runner", "CTO"),
        ("cont_acme_marvin", "lead_acme", "Marvin Martian", "CFO"),
        ("cont_globex_hank", "lead_globex", "Hank Scorpio", "CEO"),
        ("cont_initech_bill", "lead_initech", "Bill Lumbergh", "VP Operations"),
    ]
    custom_fields = [
        _cf(
            "cf_source",
            "Source",
            "choices",
            ["Inbound", "Outbound", "Referral", "Partner"],
            required=True,
            description="Where the deal came from",
        ),
        _cf(
            "cf_products",
            "Products",
            "choices",
            ["Core", "Analytics", "Integrations", "Support"],
            multiple=True,
        ),
        _cf("cf_competitor", "Competitor", "text"),
        _cf("cf_seats", "Seats", "number"),
        _cf("cf_contract_start", "Contract start", "date"),
        _cf("cf_sales_engineer", "Sales engineer", "user"),
        _cf("cf_internal_ref", "Internal ref", "hidden"),
    ]
    created = "2024-01-02T09:00:00+00:00"
    return Org(
        id=org_id,
        name="Sandbox Inc.",
        me_user_id="user_alice",
        users=users,
        inactive_user_ids={"user_dave"},
        pipelines=[
            {"id": "pipe_sales", "name": "Sales", "organization_id": org_id},
            {"id": "pipe_renewals", "name": "Renewals", "organization_id": org_id},
        ],
        statuses=[
            {"id": i, "label": label, "type": kind, "pipeline_id": pipe, "organization_id": org_id}
            for i, label, kind, pipe in statuses
        ],
        custom_fields=custom_fields,
        leads=[_lead(lead_id, name, org_id, created) for lead_id, name in lead_names.items()],
        contacts=[
            {
                "id": i,
                "lead_id": lead,
                "name": name,
                "display_name": name,
                "title": title,
                "emails": [],
                "phones": [],
                "organization_id": org_id,
                "date_created": created,
            }
            for i, lead, name, title in contacts
        ],
    )


def other_org() -> Org:
    """Another Close organization (one person): the bot refuses connections made to it."""
    return Org(
        id="orga_elsewhere",
        name="Elsewhere Ltd",
        me_user_id="user_zoe",
        users=[_user("user_zoe", "zoe@elsewhere.example", "Zoe", "Zimmer")],
    )


def every_field_type_org() -> Org:
    """The seeded org plus the custom field types it lacks: datetime, contact, a type the bot
    does not know, and a choices field too long for one Slack select (150 choices)."""
    org = default_org()
    org.add_custom_field("cf_kickoff", "Kickoff call", "datetime")
    org.add_custom_field("cf_champion", "Champion", "contact")
    org.add_custom_field("cf_website", "Website", "url")
    org.add_custom_field(
        "cf_industry", "Industry", "choices", [f"Industry {n:03d}" for n in range(1, 151)]
    )
    org.add_custom_field(
        "cf_regions",
        "Regions",
        "choices",
        [f"Region {n:03d}" for n in range(1, 121)],
        multiple=True,
    )
    return org


_SEEDED = "2024-01-02T09:00:00+00:00"


def _user(user_id: str, email: str, first: str, last: str) -> Json:
    return {
        "id": user_id,
        "email": email,
        "first_name": first,
        "last_name": last,
        "image": f"https://example.com/avatars/{user_id}.png",
        "date_created": "2023-06-01T12:00:00+00:00",
    }


def _cf(
    cf_id: str,
    name: str,
    kind: str,
    choices: list[str] | None = None,
    *,
    multiple: bool = False,
    required: bool = False,
    description: str | None = None,
) -> Json:
    return {
        "id": cf_id,
        "name": name,
        "type": kind,
        "choices": choices or [],
        "accepts_multiple_values": multiple,
        "required": required,
        "description": description,
        "object_type": "opportunity",
        "is_shared": False,
        "editable_with_roles": [],
    }


# Every lead has a lead status (Close's defaults: Potential, Bad Fit, Qualified, Customer); the
# seeds start as Close's first one.
LEAD_STATUS = ("stat_lead_potential", "Potential")


def _lead(lead_id: str, name: str, org_id: str, created: str) -> Json:
    return {
        "id": lead_id,
        "name": name,
        "display_name": name,
        "status_id": LEAD_STATUS[0],
        "status_label": LEAD_STATUS[1],
        "html_url": f"{APP_URL}lead/{lead_id}/",
        "url": None,
        "description": "",
        "organization_id": org_id,
        "date_created": created,
    }


# --- wire helpers -----------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the simulator received it; `path` is relative to /api/v1."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    status: int | None = None


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}".rstrip("0").rstrip(".") or "0"


def _now() -> datetime:
    return datetime.now(UTC)


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


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


def value_formatted(value: int | None, period: str | None, currency: str = "USD") -> str:
    """Close's display string: `$12,000 annual`, `$5 monthly`, `$40,000` (one-time)."""
    if value is None:
        return ""
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency, currency + " ")
    amount = f"{value // 100:,}" if value % 100 == 0 else f"{value / 100:,.2f}"
    suffix = {"monthly": " monthly", "annual": " annual"}.get(period or "", "")
    return f"{symbol}{amount}{suffix}"


@dataclass
class _Fault:
    remaining: int
    paths: tuple[str, ...] | None
    methods: tuple[str, ...] | None
    build: Callable[[], SimError]

    def matches(self, method: str, path: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        return not self.paths or any(path.startswith(p) for p in self.paths)


def _relative(path: str) -> str:
    return path.removeprefix(API_PREFIX) or "/"


# --- the simulator ----------------------------------------------------------------------


class CloseSimulator(CloseEvents, CloseOAuthSim):
    """Close's REST API for one org, in memory; start it on 127.0.0.1 or mount `app`.

    Opportunity writes land in the event log (`events`) and go out to webhook subscriptions
    (`webhooks`, `deliveries`); see CloseEvents for those knobs. `change_opportunity`,
    `delete_opportunity` and `create_opportunity_as` play a person working in Close's app.

    OAuth (CloseOAuthSim): a consent page at `oauth_authorize_url`, the token endpoint at
    `oauth_token_url`; the REST API takes a user's Bearer token as well as the API key and then
    acts as that user (created_by, updated_by, events) and sees what they may see.
    """

    def __init__(self, api_key: str = "api_sandbox.key", org: Org | None = None) -> None:
        self.api_key = api_key
        self.org = org or default_org()
        self.requests: list[RecordedRequest] = []
        # Fault switches: set them at any time from a test.
        self.latency: float = 0.0
        self.path_latency: dict[str, float] = {}
        # Seconds a POST /opportunity/ waits before it is handled (a create on its way to Close).
        self.create_latency: float = 0.0
        self.enforce_rate_limit: tuple[int, float] | None = None
        # True: `created_by` sent with the API key is refused (400 on the field), as a Close
        # that keeps creators to the key's owner would. False: the key may name another user.
        self.refuse_created_by_with_key: bool = False
        self._faults: list[_Fault] = []
        self._hang: tuple[int, float] = (0, 0.0)
        self._every: tuple[int, float] | None = None
        self._random: tuple[float, random.Random, float] | None = None
        self._budget: dict[str, tuple[float, int]] = {}
        self._seen = 0
        self._ids = itertools.count(1)
        self._server: RunningServer | None = None
        self._stopping: asyncio.Event | None = None
        self._init_events()
        self._init_oauth()
        # Other Close organizations a person might sign in to on the consent page.
        self.other_orgs: list[Org] = [other_org()]
        self.app = Starlette(
            routes=[*self._routes(), *self._oauth_routes()],
            exception_handlers={HTTPException: self._http_exception},  # type: ignore[dict-item]
        )

    # --- lifecycle ---

    async def start(self, *, port: int = 0) -> str:
        """Serve on 127.0.0.1 and return the API base URL (ends in `/api/v1/`)."""
        self._stopping = asyncio.Event()
        self._open_deliveries()
        self._server = await start_server(self.app, port=port)
        return self.base_url

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return f"{self._server.url}api/v1/"

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()  # releases hung responses so shutdown is quick
        await self._close_deliveries()
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def __aenter__(self) -> CloseSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- inspection ---

    @property
    def opportunities(self) -> list[Json]:
        return self.org.opportunities

    def count(self, method: str, path_prefix: str = "/") -> int:
        prefix = _relative(path_prefix)
        return sum(1 for r in self.requests if r.method == method and r.path.startswith(prefix))

    def reset_requests(self) -> None:
        self.requests.clear()

    # --- fault switches ---

    def rate_limit(
        self,
        n: int,
        *,
        reset: float | None = 0.2,
        retry_after: float | None = None,
        with_header: bool = True,
        paths: Iterable[str] | None = None,
    ) -> None:
        """The next `n` matching requests answer 429.

        `with_header` sends `RateLimit: …reset=<reset>`; `retry_after` adds `Retry-After`;
        the body always carries Close's old `{"error": {"rate_reset": reset}}` when `reset` is set.
        """

        def build() -> SimError:
            headers: dict[str, str] = {}
            if with_header and reset is not None:
                headers["RateLimit"] = f"limit=60, remaining=0, reset={_seconds(reset)}"
            if retry_after is not None:
                headers["Retry-After"] = _seconds(retry_after)
            return self._too_many(reset, headers)

        self._add_fault(n, paths, None, build)

    def fail(
        self,
        n: int,
        status: int = 503,
        paths: Iterable[str] | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """The next `n` matching requests answer `status` with a Close-shaped error body."""

        def build() -> SimError:
            if status == 400:
                return bad_request(None, "Simulated bad request.")
            return SimError(status, {"error": f"Simulated {status}."})

        self._add_fault(n, paths, methods, build)

    def apply_then_hang(self, n: int, seconds: float) -> None:
        """The next `n` POST /opportunity/ are stored, then answered only after `seconds`."""
        self._hang = (n, seconds)

    def rate_limit_every(self, k: int | None, *, reset: float = 0.05) -> None:
        """Every `k`-th request answers 429 (None turns it off): a deterministic load pattern."""
        self._every = (k, reset) if k else None

    def rate_limit_randomly(
        self, probability: float, *, seed: int = 0, reset: float = 0.05
    ) -> None:
        """Each request answers 429 with `probability`, reproducible from `seed`."""
        self._random = (probability, random.Random(seed), reset) if probability > 0 else None

    def clear_faults(self) -> None:
        self.latency = 0.0
        self.create_latency = 0.0
        self.path_latency.clear()
        self.enforce_rate_limit = None
        self._faults.clear()
        self._hang = (0, 0.0)
        self._every = None
        self._random = None
        self._budget.clear()

    def _add_fault(
        self,
        n: int,
        paths: Iterable[str] | None,
        methods: Iterable[str] | None,
        build: Callable[[], SimError],
    ) -> None:
        path_tuple = tuple(_relative(p) for p in paths) if paths is not None else None
        method_tuple = tuple(m.upper() for m in methods) if methods is not None else None
        self._faults.append(_Fault(n, path_tuple, method_tuple, build))

    def _too_many(self, reset: float | None, headers: dict[str, str]) -> SimError:
        error: Json = {"message": "API call count exceeded for this period"}
        if reset is not None:
            error.update(rate_reset=reset, rate_limit=60, rate_window=1, rate_limit_type="key")
        return SimError(429, {"error": error}, headers)

    # --- request pipeline ---

    def _routes(self) -> list[Route]:
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/me/", self._me),
            ("GET", "/organization/{org_id}/", self._organization),
            ("GET", "/pipeline/", self._pipelines),
            ("GET", "/status/opportunity/", self._statuses),
            ("GET", "/user/", self._users),
            ("GET", "/custom_field_schema/opportunity/", self._cf_schema),
            ("GET", "/custom_field/opportunity/", self._cf_list),
            ("POST", "/data/search/", self._search),
            ("GET", "/lead/", self._lead_query),
            ("POST", "/lead/", self._create_lead),
            ("GET", "/lead/{lead_id}/", self._get_lead),
            ("GET", "/contact/", self._contacts),
            ("GET", "/opportunity/", self._list_opportunities),
            ("POST", "/opportunity/", self._create_opportunity),
            ("GET", "/opportunity/{opp_id}/", self._get_opportunity),
            ("PUT", "/opportunity/{opp_id}/", self._update_opportunity),
            ("DELETE", "/opportunity/{opp_id}/", self._delete_opportunity),
            *self._event_routes(),
        ]
        return [
            Route(API_PREFIX + path, self._endpoint(method, path, handler), methods=[method])
            for method, path, handler in table
        ]

    async def _http_exception(self, request: Request, exc: HTTPException) -> Response:
        message = "Not found." if exc.status_code == 404 else exc.detail
        return JSONResponse({"error": message}, status_code=exc.status_code)

    def _endpoint(
        self, method: str, template: str, handler: Handler
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
                parse_error = None
            except ValueError:
                body, parse_error = None, bad_request(None, "Invalid JSON body.")
            record = RecordedRequest(
                method=method,
                path=_relative(request.url.path),
                query=dict(request.query_params),
                json=body,
                headers=dict(request.headers),
            )
            self.requests.append(record)
            response = await self._respond(
                request, record, f"{method} {template}", handler, body, parse_error
            )
            record.status = response.status_code
            return response

        return endpoint

    async def _respond(
        self,
        request: Request,
        record: RecordedRequest,
        group: str,
        handler: Handler,
        body: Any,
        parse_error: SimError | None,
    ) -> Response:
        headers: dict[str, str] = {}
        try:
            self._check_auth(request)
            await self._sleep(self._latency_for(record.path))
            if record.method == "POST" and record.path == "/opportunity/":
                await self._sleep(self.create_latency)
            self._inject_faults(record)
            headers = self._charge_budget(group)
            if parse_error is not None:
                raise parse_error
            result = await handler(request, body)
        except SimError as err:
            return JSONResponse(
                err.body, status_code=err.status, headers={**headers, **err.headers}
            )
        if record.method == "POST" and record.path == "/opportunity/" and self._hang[0] > 0:
            # The write is stored; only the answer is late (what a client timeout looks like).
            self._hang = (self._hang[0] - 1, self._hang[1])
            await self._sleep(self._hang[1])
        if isinstance(result, Response):
            result.headers.update(headers)
            return result
        return JSONResponse(result, headers=headers)

    def _check_auth(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            user = self.bearer_user(token.strip())
            if user is None:
                raise SimError(401, {"error": "The access token is invalid or has expired."})
            request.state.oauth_user = user
            return
        username = ""
        if scheme.lower() == "basic":
            try:
                username = base64.b64decode(token).decode().partition(":")[0]
            except ValueError:
                username = ""
        if username != self.api_key:
            raise SimError(401, {"error": "The API key is missing or invalid."})

    def _latency_for(self, path: str) -> float:
        matches = [
            s for prefix, s in self.path_latency.items() if path.startswith(_relative(prefix))
        ]
        return max(matches) if matches else self.latency

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _inject_faults(self, record: RecordedRequest) -> None:
        self._seen += 1
        for fault in self._faults:
            if fault.remaining > 0 and fault.matches(record.method, record.path):
                fault.remaining -= 1
                raise fault.build()
        self._faults = [f for f in self._faults if f.remaining > 0]
        if self._every and self._seen % self._every[0] == 0:
            raise self._too_many(
                self._every[1],
                {"RateLimit": f"limit=60, remaining=0, reset={_seconds(self._every[1])}"},
            )
        if self._random and self._random[1].random() < self._random[0]:
            reset = self._random[2]
            raise self._too_many(
                reset, {"RateLimit": f"limit=60, remaining=0, reset={_seconds(reset)}"}
            )

    def _charge_budget(self, group: str) -> dict[str, str]:
        """A fixed-window budget per endpoint group, announced in `RateLimit` like Close does."""
        if self.enforce_rate_limit is None:
            return {}
        limit, window = self.enforce_rate_limit
        now = asyncio.get_running_loop().time()
        start, used = self._budget.get(group, (now, 0))
        if now - start >= window:
            start, used = now, 0
        reset = start + window - now
        if used >= limit:
            self._budget[group] = (start, used)
            header = {"RateLimit": f"limit={limit}, remaining=0, reset={_seconds(reset)}"}
            raise self._too_many(reset, header)
        self._budget[group] = (start, used + 1)
        return {
            "RateLimit": f"limit={limit}, remaining={limit - used - 1}, reset={_seconds(reset)}"
        }

    def _api_actor(self, request: Request) -> Actor:
        """The key acts as its owner; a Bearer token as the user who granted it."""
        actor = super()._api_actor(request)
        user = getattr(request.state, "oauth_user", None)
        if user is None:
            return actor
        return Actor(user, None, actor.request_id, actor.request_method, actor.request_path)

    # --- metadata endpoints ---

    async def _me(self, request: Request, body: Any) -> Json:
        user_id = getattr(request.state, "oauth_user", None) or self.org.me_user_id
        me = self.org.find(self.org.users, user_id) or {}
        orgs = [{"id": self.org.id, "name": self.org.name, "currency": self.org.currency}]
        return {**me, "organizations": orgs}

    async def _organization(self, request: Request, body: Any) -> Json:
        if request.path_params["org_id"] != self.org.id:
            raise not_found("Organization")

        def member(user: Json) -> Json:
            active = user["id"] not in self.org.inactive_user_ids
            return {
                "user_id": user["id"],
                "user_email": user["email"],
                "active": active,
                "user_full_name": self.org.user_name(user["id"]),
            }

        members = [member(u) for u in self.org.users]
        return {
            "id": self.org.id,
            "name": self.org.name,
            "currency": self.org.currency,
            "memberships": [m for m in members if m["active"]],
            "inactive_memberships": [m for m in members if not m["active"]],
        }

    async def _pipelines(self, request: Request, body: Any) -> Json:
        def nested(pipeline: Json) -> Json:
            statuses = [
                {k: s[k] for k in ("id", "label", "type")}
                for s in self.org.statuses_of(pipeline["id"])
            ]
            return {**pipeline, "statuses": statuses}

        return _page([nested(p) for p in self.org.pipelines], request)

    async def _statuses(self, request: Request, body: Any) -> Json:
        return _page(self.org.statuses, request)

    async def _users(self, request: Request, body: Any) -> Json:
        return _page(self.org.users, request)

    async def _cf_schema(self, request: Request, body: Any) -> Json:
        return {"fields": self.org.custom_fields}

    async def _cf_list(self, request: Request, body: Any) -> Json:
        return _page(self.org.custom_fields, request)

    # --- leads and contacts ---

    async def _search(self, request: Request, body: Any) -> Json:
        if not isinstance(body, dict) or not isinstance(body.get("query"), dict):
            raise bad_request({"query": "This field is required."})
        limit = body.get("_limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= 200:
            raise bad_request({"_limit": "Ensure this value is between 1 and 200."})
        object_types, conditions = _search_terms(body["query"])
        if object_types != {"lead"}:
            raise bad_request(None, "The sandbox only searches leads (object_type lead).")
        leads = [
            lead
            for lead in self.org.leads
            if all(c(lead) for c in conditions) and self.visible_lead(request, lead["id"])
        ]
        fields_wanted = (body.get("_fields") or {}).get("lead") or ["id"]
        data = [
            {"__object_type": "lead", **{k: lead.get(k) for k in fields_wanted}}
            for lead in _rank(leads)[:limit]
        ]
        return {"data": data, "cursor": None}

    async def _lead_query(self, request: Request, body: Any) -> Json:
        query = request.query_params.get("query", "").strip()
        match = re.fullmatch(r'name:\s*"(.*)"|name:\s*(\S+)|(.*)', query)
        needle = next((g for g in match.groups() if g is not None), "") if match else ""
        leads = [
            lead
            for lead in self.org.leads
            if needle.lower() in lead["name"].lower() and self.visible_lead(request, lead["id"])
        ]
        page = _page(_rank(leads), request, maximum=200)
        wanted = [f for f in request.query_params.get("_fields", "").split(",") if f]
        if wanted:
            page["data"] = [{k: lead.get(k) for k in wanted} for lead in page["data"]]
        else:
            page["data"] = [self._lead_out(lead) for lead in page["data"]]
        return page

    async def _get_lead(self, request: Request, body: Any) -> Json:
        lead = self.org.find(self.org.leads, request.path_params["lead_id"])
        if lead is None or not self.visible_lead(request, lead["id"]):
            raise not_found("Lead")
        out = self._lead_out(lead)
        # `_fields=id,opportunities`: only those (opportunities embedded, as Close does).
        wanted = [f for f in request.query_params.get("_fields", "").split(",") if f]
        return {k: out[k] for k in wanted if k in out} if wanted else out

    async def _create_lead(self, request: Request, body: Any) -> Json:
        body = body if isinstance(body, dict) else {}
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request({"name": "This field is required."})
        lead = _lead(self._new_id("lead"), name.strip(), self.org.id, _now().isoformat())
        self.org.leads.append(lead)
        creator = getattr(request.state, "oauth_user", None)
        if creator is not None:
            self.own_lead(lead["id"], creator)
        for contact in body.get("contacts") or []:
            if isinstance(contact, dict) and contact.get("name"):
                self.org.contacts.append(
                    {
                        "id": self._new_id("cont"),
                        "lead_id": lead["id"],
                        "name": contact["name"],
                        "display_name": contact["name"],
                        "title": contact.get("title"),
                        "emails": contact.get("emails", []),
                        "phones": contact.get("phones", []),
                        "organization_id": self.org.id,
                        "date_created": lead["date_created"],
                    }
                )
        return self._lead_out(lead)

    def _lead_out(self, lead: Json) -> Json:
        contacts = [c for c in self.org.contacts if c["lead_id"] == lead["id"]]
        opportunities = [
            self._opp_out(o) for o in self.org.opportunities if o["lead_id"] == lead["id"]
        ]
        return {**lead, "contacts": contacts, "opportunities": opportunities}

    async def _contacts(self, request: Request, body: Any) -> Json:
        lead_id = request.query_params.get("lead_id")
        contacts = [
            c
            for c in self.org.contacts
            if (lead_id is None or c["lead_id"] == lead_id)
            and self.visible_lead(request, c["lead_id"])
        ]
        return _page(contacts, request)

    # --- opportunities ---

    async def _list_opportunities(self, request: Request, body: Any) -> Json:
        q = request.query_params
        items = self.org.opportunities
        # The plain equality filters first, one pass each (an org of 20,000 deals is read once
        # per owner by the nudge bench), then who may see them.
        for key in ("lead_id", "user_id", "status_id", "status_type", "pipeline_id"):
            if q.get(key):
                items = [o for o in items if o.get(key) == q[key]]
        items = [o for o in items if self.visible_lead(request, o.get("lead_id"))]
        for key, sign in (
            ("date_created__gte", 1),
            ("date_created__lte", -1),
            ("date_updated__gte", 1),
        ):
            if q.get(key):
                bound = parse_when(q[key])
                if bound is None:
                    raise bad_request({key: "Enter a valid date/time."})
                field = key.partition("__")[0]
                items = [o for o in items if _after(o[field], bound, sign)]
        items = _by_date_won(items, q)
        page = _page(_ordered(items, q.get("_order_by")), request)
        page["data"] = [self._opp_out(o) for o in page["data"]]
        return page

    async def _get_opportunity(self, request: Request, body: Any) -> Json:
        return self._opp_out(self._visible_opportunity(request))

    def _visible_opportunity(self, request: Request) -> Json:
        opp = self._opportunity(request.path_params["opp_id"])
        if not self.visible_lead(request, opp.get("lead_id")):
            raise not_found("Opportunity")
        return opp

    async def _create_opportunity(self, request: Request, body: Any) -> Json:
        if not isinstance(body, dict):
            raise bad_request(None, "Expected a JSON object.")
        if not self.visible_lead(request, body.get("lead_id")):
            raise bad_request({"lead_id": "Object does not exist."})
        created_by = body.get("created_by")
        if created_by is not None:
            if getattr(request.state, "oauth_user", None) is not None:
                raise bad_request({"created_by": "Set by Close to the user of the token."})
            if self.refuse_created_by_with_key:
                raise bad_request({"created_by": "This field cannot be set."})
            if not self._is_active_user(created_by):
                raise bad_request({"created_by": "Not an active user of this organization."})
        actor = self._api_actor(request)
        opp = self._create(body, _tz_offset(request), actor, created_by=created_by)
        opp["_tz_offset"] = request.headers.get("x-tz-offset")
        return self._opp_out(opp)

    async def _update_opportunity(self, request: Request, body: Any) -> Json:
        opp = self._visible_opportunity(request)
        if not isinstance(body, dict):
            raise bad_request(None, "Expected a JSON object.")
        self._update(opp, body, _tz_offset(request), self._api_actor(request))
        if "x-tz-offset" in request.headers:
            opp["_tz_offset"] = request.headers["x-tz-offset"]
        return self._opp_out(opp)

    async def _delete_opportunity(self, request: Request, body: Any) -> Json:
        self._delete(self._visible_opportunity(request), self._api_actor(request))
        return {}

    # --- a person (or an automation) working in Close's app ---

    def change_opportunity(
        self,
        opp_id: str,
        changes: Json,
        *,
        user_id: str | None = PERSON_USER_ID,
        automation: bool = False,
    ) -> Json:
        """Change an opportunity as `user_id` would in Close's app (automation: no user).

        Validated exactly like `PUT /opportunity/{id}/`; field errors raise ValueError. Records
        the event (no API key) and delivers webhooks; returns the opportunity as the API shows it.
        """
        opp = self._person_target(opp_id)
        actor = self._person(user_id, automation, "PUT", f"{API_PREFIX}/opportunity/{opp_id}/")
        try:
            self._update(opp, changes, 0.0, actor)
        except SimError as err:
            raise ValueError(f"Close would refuse this change: {err.body}") from err
        return self._opp_out(opp)

    def delete_opportunity(
        self, opp_id: str, *, user_id: str | None = PERSON_USER_ID, automation: bool = False
    ) -> Json:
        """Delete an opportunity as a person (or automation) would; returns its last state."""
        opp = self._person_target(opp_id)
        actor = self._person(user_id, automation, "DELETE", f"{API_PREFIX}/opportunity/{opp_id}/")
        return self._delete(opp, actor)

    def create_opportunity_as(
        self, lead_id: str, fields: Json, *, user_id: str = PERSON_USER_ID
    ) -> Json:
        """Create an opportunity as a person in Close's app: one the bot did not make."""
        actor = self._person(user_id, False, "POST", f"{API_PREFIX}/opportunity/")
        body = {"user_id": user_id, **fields, "lead_id": lead_id}
        try:
            opp = self._create(body, 0.0, actor)
        except SimError as err:
            raise ValueError(f"Close would refuse this opportunity: {err.body}") from err
        return self._opp_out(opp)

    def seed_opportunity(self, lead_id: str, fields: Json, *, user_id: str) -> Json:
        """An opportunity that was in Close before anything watched it: no event, no webhook,
        no validation (seeding a large org fast, for a bench; the event log's merge look is
        linear, so 20,000 `create_opportunity_as` would take minutes)."""
        when = iso(self._tick())
        opp: Json = {
            "id": self._new_id("oppo"),
            "organization_id": self.org.id,
            "value_period": "one_time",
            "confidence": 0,
            "date_won": None,
            "date_lost": None,
            "note": "",
            "contact_id": None,
            "date_created": when,
            "date_updated": when,
            "created_by": user_id,
            "attachments": [],
            "integration_links": [],
            **fields,
            "lead_id": lead_id,
            "user_id": user_id,
        }
        self._derive(opp, user_id)
        self.org.opportunities.append(opp)
        return self._opp_out(opp)

    def _person_target(self, opp_id: str) -> Json:
        opp = self.org.find(self.org.opportunities, opp_id)
        if opp is None:
            raise ValueError(f"No opportunity {opp_id} in the simulated org.")
        return opp

    def _person(self, user_id: str | None, automation: bool, method: str, path: str) -> Actor:
        if automation or user_id is None:
            return self._person_actor(None, method, path)
        if not self._is_active_user(user_id):
            raise ValueError(f"{user_id} is not an active user of the simulated org.")
        return self._person_actor(user_id, method, path)

    # --- writes, each recorded in the event log ---

    def _create(
        self, body: Json, tz_offset: float, actor: Actor, *, created_by: str | None = None
    ) -> Json:
        changes = self._opportunity_changes(body, None, tz_offset)
        when = self._tick()
        creator = actor.user_id or self.org.me_user_id
        opp: Json = {
            "id": self._new_id("oppo"),
            "organization_id": self.org.id,
            "lead_id": None,
            "status_id": None,
            "pipeline_id": None,
            "value": None,
            "value_period": "one_time",
            "confidence": 0,
            "date_won": None,
            "date_lost": None,
            "note": "",
            "user_id": creator,
            "contact_id": None,
            "date_created": iso(when),
            "date_updated": iso(when),
            "created_by": created_by or actor.user_id,
            "attachments": [],
            "integration_links": [],
        }
        opp.update(changes)
        self._derive(opp, actor.user_id)
        self.org.opportunities.append(opp)
        self._opportunity_event("created", opp, self._opp_out(opp), actor, when)
        return opp

    def _update(self, opp: Json, body: Json, tz_offset: float, actor: Actor) -> None:
        """Apply a validated patch; one that changes nothing leaves `opp` and the log alone."""
        changes = self._opportunity_changes(body, opp, tz_offset)
        before = self._opp_out(opp)
        after = {**opp, **changes}
        self._derive(after, actor.user_id)
        changed = _changed_keys(before, self._opp_out(after))
        if all(k in BOOKKEEPING_FIELDS for k in changed):
            return
        when = self._tick()
        opp.update(after, date_updated=iso(when))
        self._opportunity_event("updated", opp, before, actor, when)
        if opp.get("status_id") != before.get("status_id"):
            self._status_change_event(opp, before, actor, when)

    def _delete(self, opp: Json, actor: Actor) -> Json:
        last = self._opp_out(opp)
        self.org.opportunities.remove(opp)
        self._opportunity_event("deleted", opp, last, actor, self._tick())
        return last

    def _opportunity_event(
        self, action: str, opp: Json, before: Json, actor: Actor, when: datetime
    ) -> None:
        now = self._opp_out(opp)
        changed = _changed_keys(before, now) if action == "updated" else []
        previous = {k: before.get(k) for k in changed}
        if action == "deleted":
            previous = before  # Close keeps a deleted object's last state here too
        self._record_event(
            object_type="opportunity",
            object_id=opp["id"],
            lead_id=opp.get("lead_id"),
            action=action,
            actor=actor,
            data=now,
            when=when,
            changed_fields=changed,
            previous_data=previous,
        )

    def _status_change_event(self, opp: Json, before: Json, actor: Actor, when: datetime) -> None:
        """Close also logs a status change as its own object, which the bot is to ignore."""
        change_id = self._new_id("acti")
        self._record_event(
            object_type="status_change.opportunity",
            object_id=change_id,
            lead_id=opp.get("lead_id"),
            action="created",
            actor=actor,
            data={
                "id": change_id,
                "_type": "OpportunityStatusChange",
                "opportunity_id": opp["id"],
                "lead_id": opp.get("lead_id"),
                "old_status_id": before.get("status_id"),
                "old_status_label": before.get("status_label"),
                "old_status_type": before.get("status_type"),
                "new_status_id": opp.get("status_id"),
                "new_status_label": opp.get("status_label"),
                "new_status_type": opp.get("status_type"),
                "opportunity_value": opp.get("value"),
                "opportunity_value_period": opp.get("value_period"),
                "user_id": actor.user_id,
                "organization_id": self.org.id,
                "date_created": iso(when),
            },
            when=when,
        )

    def _opportunity(self, opp_id: str) -> Json:
        opp = self.org.find(self.org.opportunities, opp_id)
        if opp is None:
            raise not_found("Opportunity")
        return opp

    def _opportunity_changes(self, body: Json, current: Json | None, tz_offset: float) -> Json:
        """Validate a create (`current` None) or patch body like Close; return what to store."""
        org, errors, changes = self.org, {}, {}
        creating = current is None
        old = current or {}
        if creating or "lead_id" in body:
            lead_id = body.get("lead_id")
            if not lead_id:
                errors["lead"] = "lead_id is required (Close would create an Untitled lead)."
            elif org.find(org.leads, lead_id) is None:
                errors["lead"] = f"Lead {lead_id} does not exist."
            else:
                changes["lead_id"] = lead_id
        pipeline_id, status_id = body.get("pipeline_id"), body.get("status_id")
        if pipeline_id is not None and org.find(org.pipelines, pipeline_id) is None:
            errors["pipeline"] = f"Pipeline {pipeline_id} does not exist."
        elif status_id is not None:
            status = org.find(org.statuses, status_id)
            if status is None:
                errors["status"] = f"Status {status_id} does not exist."
            elif pipeline_id is not None and status.get("pipeline_id") != pipeline_id:
                errors["status"] = f"Status {status_id} does not belong to pipeline {pipeline_id}."
            else:
                changes["status_id"] = status_id
        elif pipeline_id is not None:
            first = org.statuses_of(pipeline_id)
            if not first:
                errors["pipeline"] = f"Pipeline {pipeline_id} has no statuses."
            else:
                changes["status_id"] = first[0]["id"]
        elif creating:
            if not org.statuses:
                errors["status"] = "The organization has no opportunity statuses."
            else:
                changes["status_id"] = org.statuses[0]["id"]
        checks: dict[str, tuple[str, Callable[[Any], bool], str]] = {
            "value": (
                "value",
                lambda v: isinstance(v, int) and not isinstance(v, bool),
                "Value must be an integer (cents).",
            ),
            "value_period": (
                "value_period",
                lambda v: v in VALUE_PERIODS,
                "Value period must be one of one_time, monthly, annual.",
            ),
            "confidence": (
                "confidence",
                lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100,
                "Confidence must be an integer from 0 to 100.",
            ),
            "date_won": ("date_won", _is_date, "Enter a valid date (YYYY-MM-DD)."),
            "note": ("note", lambda v: isinstance(v, str), "Note must be text."),
            "user_id": ("user", self._is_active_user, "Not an active user of this organization."),
        }
        for key, (error_key, ok, message) in checks.items():
            if key in body:
                if body[key] is None or ok(body[key]):
                    changes[key] = body[key]
                else:
                    errors[error_key] = message
        if body.get("contact_id") is not None:
            contact = org.find(org.contacts, body["contact_id"])
            lead_id = changes.get("lead_id", old.get("lead_id"))
            if contact is None or contact["lead_id"] != lead_id:
                errors["contact"] = "Contact does not exist on this lead."
            else:
                changes["contact_id"] = contact["id"]
        elif "contact_id" in body:
            changes["contact_id"] = None
        for key, value in body.items():
            if key.startswith("custom."):
                problem = self._custom_problem(key.removeprefix("custom."), value)
                if problem:
                    errors[key] = problem
                else:
                    changes[key] = value
        for cf in org.custom_fields:
            key = f"custom.{cf['id']}"
            missing = changes.get(key, old.get(key)) in (None, "", [])
            if cf.get("required") and (creating or key in body) and missing:
                errors[key] = "This field is required."
        if errors:
            raise bad_request(errors)
        status = org.find(org.statuses, changes.get("status_id", old.get("status_id"))) or {}
        status_changed = creating or changes.get("status_id", old.get("status_id")) != old.get(
            "status_id"
        )
        no_date_won = changes.get("date_won", old.get("date_won")) is None
        if status_changed and status.get("type") == "won" and no_date_won:
            changes["date_won"] = (_now() + timedelta(hours=tz_offset)).date().isoformat()
        if status_changed and status.get("type") == "lost":
            changes["date_lost"] = _now().isoformat()
        return changes

    def _is_active_user(self, user_id: Any) -> bool:
        user = self.org.find(self.org.users, user_id)
        return user is not None and user_id not in self.org.inactive_user_ids

    def _custom_problem(self, cf_id: str, value: Any) -> str | None:
        cf = self.org.find(self.org.custom_fields, cf_id)
        if cf is None:
            return f"Unknown custom field {cf_id}."
        if value is None:
            return None
        values = value if cf.get("accepts_multiple_values") else [value]
        if cf.get("accepts_multiple_values") and not isinstance(value, list):
            return "This field takes a list of values."
        kind = cf.get("type")
        checks: dict[str, tuple[Callable[[Any], bool], str]] = {
            "choices": (lambda v: v in cf.get("choices", []), "Not one of the field's choices."),
            "number": (_is_number, "Enter a number."),
            "date": (_is_date, "Enter a valid date (YYYY-MM-DD)."),
            "datetime": (
                lambda v: isinstance(v, str) and parse_when(v) is not None,
                "Enter a valid date/time.",
            ),
            "user": (self._is_active_user, "Not an active user of this organization."),
            "contact": (
                lambda v: self.org.find(self.org.contacts, v) is not None,
                "Contact does not exist.",
            ),
        }
        ok, message = checks.get(kind or "", (lambda v: isinstance(v, str), "Enter text."))
        return None if all(ok(v) for v in values) else message

    def _derive(self, opp: Json, updated_by: str | None) -> None:
        """Recompute the denormalized names Close returns next to each id."""
        org = self.org
        status = org.find(org.statuses, opp.get("status_id")) or {}
        pipeline = org.find(org.pipelines, status.get("pipeline_id")) or {}
        lead = org.find(org.leads, opp.get("lead_id")) or {}
        contact = org.find(org.contacts, opp.get("contact_id")) or {}
        opp.update(
            lead_name=lead.get("display_name"),
            status_label=status.get("label"),
            status_display_name=status.get("label"),
            status_type=status.get("type"),
            pipeline_id=status.get("pipeline_id"),
            pipeline_name=pipeline.get("name"),
            user_name=org.user_name(opp.get("user_id")),
            contact_name=contact.get("display_name"),
            value_currency=org.currency,
            value_formatted=value_formatted(
                opp.get("value"), opp.get("value_period"), org.currency
            ),
            created_by_name=org.user_name(opp.get("created_by")),
            updated_by=updated_by,
            updated_by_name=org.user_name(updated_by),
        )
        value, confidence = opp.get("value"), opp.get("confidence") or 0
        yearly = (
            None if value is None else value * (12 if opp.get("value_period") == "monthly" else 1)
        )
        opp.update(
            expected_value=None if value is None else value * confidence // 100,
            annualized_value=yearly,
            annualized_expected_value=None if yearly is None else yearly * confidence // 100,
        )

    def _opp_out(self, opp: Json) -> Json:
        return {k: v for k, v in opp.items() if not k.startswith("_")}

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_sim{next(self._ids):06d}"


# --- module helpers ----------------------------------------------------------------------


# `date_won__lt=2026-12-07`…: a date compared as Close compares them (no date: never matches).
_DATE_WON_FILTERS: dict[str, Callable[[str, str], bool]] = {
    "date_won__lt": lambda won, bound: won < bound,
    "date_won__lte": lambda won, bound: won <= bound,
    "date_won__gt": lambda won, bound: won > bound,
    "date_won__gte": lambda won, bound: won >= bound,
}


def _by_date_won(items: list[Json], query: Any) -> list[Json]:
    for key, keep in _DATE_WON_FILTERS.items():
        raw = query.get(key)
        if not raw:
            continue
        try:
            bound = date.fromisoformat(raw[:10]).isoformat()
        except ValueError as exc:
            raise bad_request({key: "Enter a valid date."}) from exc
        items = [o for o in items if o.get("date_won") and keep(str(o["date_won"])[:10], bound)]
    return items


def _ordered(items: list[Json], order_by: str | None) -> list[Json]:
    """`_order_by=date_won` (or `-date_won`, `date_created`…): missing values last, as Close."""
    if not order_by:
        return items
    key = order_by.lstrip("-")
    present = [o for o in items if o.get(key) is not None]
    missing = [o for o in items if o.get(key) is None]
    present.sort(key=lambda o: str(o[key]), reverse=order_by.startswith("-"))
    return present + missing


def _page(items: list[Json], request: Request, *, maximum: int = 100) -> Json:
    """Close's `_skip`/`_limit` paging: `{"data": [...], "has_more": bool}`; past max → 400."""
    try:
        skip = int(request.query_params.get("_skip", 0))
        limit = int(request.query_params.get("_limit", 100))
    except ValueError as exc:
        raise bad_request({"_limit": "Enter a whole number."}) from exc
    if not 0 < limit <= maximum or skip < 0:
        raise bad_request({"_limit": f"Ensure this value is between 1 and {maximum}."})
    data = items[skip : skip + limit]
    return {"data": data, "has_more": skip + limit < len(items), "total_results": len(items)}


def _search_terms(query: Json) -> tuple[set[str], list[Callable[[Json], bool]]]:
    """The object types and lead-name conditions of a `/data/search/` query tree."""
    kinds: set[str] = set()
    conditions: list[Callable[[Json], bool]] = []
    kind = query.get("type")
    if kind == "and":
        for sub in query.get("queries") or []:
            sub_kinds, sub_conditions = _search_terms(sub)
            kinds |= sub_kinds
            conditions += sub_conditions
    elif kind == "object_type":
        kinds.add(str(query.get("object_type")))
    elif kind == "field_condition":
        field_spec, condition = query.get("field") or {}, query.get("condition") or {}
        if field_spec.get("field_name") != "name" or condition.get("type") != "text":
            raise bad_request(None, "The sandbox only understands text conditions on name.")
        needle = str(condition.get("value", "")).strip().lower()
        conditions.append(lambda lead: needle in lead["name"].lower())
    else:
        raise bad_request(None, f"Unsupported query type {kind!r}.")
    return kinds, conditions


def _after(created: str, bound: datetime, sign: int) -> bool:
    """`created >= bound` for sign 1, `created <= bound` for sign -1."""
    when = parse_when(created) or bound
    return (when - bound).total_seconds() * sign >= 0


def _rank(leads: list[Json]) -> list[Json]:
    return sorted(leads, key=lambda lead: lead["name"].lower())


def _changed_keys(before: Json, after: Json) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _tz_offset(request: Request) -> float:
    try:
        return float(request.headers.get("x-tz-offset", "0"))
    except ValueError:
        return 0.0


__all__ = [
    "CloseSimulator",
    "Org",
    "RecordedRequest",
    "default_org",
    "every_field_type_org",
    "other_org",
    "value_formatted",
]
