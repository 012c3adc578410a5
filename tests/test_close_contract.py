"""Every request CloseClient sends, checked against Close's published OpenAPI description.

Each public method of the client is called (through CALLS) against the Close simulator; every
request the simulator recorded must then be an operation of tests/specs/close-openapi.yml:
a described path and method, described query parameters only, and a JSON body that fits the
operation's requestBody schema. A public method without an entry in CALLS fails the test, so a
method added later cannot skip the check.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from bot.close.client import CloseClient
from bot.close.models import Opportunity, OpportunityCreate, WebhookSubscription
from sandbox.close_sim import CloseSimulator, RecordedRequest
from tests.close_spec import close_spec, spec_schema

KEY = "api_sandbox.key"
WEBHOOK_URL = "http://127.0.0.1:9/close/webhook"  # nothing listens: no delivery gets far

# Public methods that never talk to Close.
SENDS_NOTHING = frozenset({"aclose"})

# What Close documents outside the description's parameter lists and paths. Each entry is
# checked to still be missing from the spec, so it goes once the spec catches up.
# `_cursor` is how GET /event/ pages: its description documents it, its parameters omit it.
UNLISTED_QUERY = {("GET", "/event/"): frozenset({"_cursor"})}
# Lead search is Close's Advanced Filtering API (`POST /data/search/`, on its own page of
# Close's docs; the description only links to it). Its body, as that page describes it:
UNLISTED_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/data/search/"): {
        "type": "object",
        "required": ["query"],
        "properties": {
            "query": {"type": "object", "required": ["type"]},
            "_fields": {"type": "object", "additionalProperties": {"type": "array"}},
            "_limit": {"type": "integer", "minimum": 1, "maximum": 200},
            "_cursor": {"type": ["string", "null"]},
            "results_limit": {"type": "integer", "minimum": 1},
            "sort": {"type": "array"},
            "include_counts": {"type": "boolean"},
        },
        "additionalProperties": False,
    }
}


# --- the calls -------------------------------------------------------------------------------

Call = Callable[[CloseClient, CloseSimulator], Awaitable[object]]


def sourced(**fields: Any) -> OpportunityCreate:
    """A create body with the sandbox's required custom field filled."""
    custom = {"cf_source": "Inbound", **fields.pop("custom", {})}
    return OpportunityCreate(**{"lead_id": "lead_acme", **fields}, custom=custom)


async def new_opportunity(close: CloseClient) -> Opportunity:
    return await close.create_opportunity(sourced())


async def call_list_memberships(close: CloseClient, sim: CloseSimulator) -> None:
    assert await close.list_memberships()
    assert await close.list_memberships("orga_sandbox")


async def call_list_opportunity_custom_fields(close: CloseClient, sim: CloseSimulator) -> None:
    assert await close.list_opportunity_custom_fields()
    sim.fail(1, status=404, paths=["/custom_field_schema/"])  # → the older endpoint
    assert await close.list_opportunity_custom_fields()


async def call_search_leads(close: CloseClient, sim: CloseSimulator) -> None:
    assert await close.search_leads("acme", limit=5)
    for status in (404, 400):  # refused: nothing found, and nothing else asked
        sim.fail(1, status=status, paths=["/data/search/"])
        assert await close.search_leads("acme") == []


async def call_get_lead_with_opportunities(close: CloseClient, sim: CloseSimulator) -> None:
    await new_opportunity(close)
    lead = await close.get_lead_with_opportunities("lead_acme")
    assert lead.opportunities and lead.status_label  # embedded, as `_fields` asked


async def call_create_opportunity(close: CloseClient, sim: CloseSimulator) -> None:
    await new_opportunity(close)
    every_field = sourced(
        status_id="stat_won",
        pipeline_id="pipe_sales",
        value=1_200_000,
        value_period="annual",
        confidence=60,
        date_won=date(2031, 3, 14),
        contact_id="cont_acme_road",
        user_id="user_bob",
        note="from Slack",
        custom={"cf_products": ["Core", "Support"], "cf_seats": 25},
    )
    await close.create_opportunity(every_field, tz_offset_hours=-5)
    # On a person's behalf with the key: `created_by` (CreateOpportunity lists it).
    await close.create_opportunity(sourced(), on_behalf_of="user_bob")
    assert any((r.json or {}).get("created_by") == "user_bob" for r in sim.requests)


async def call_get_opportunity(close: CloseClient, sim: CloseSimulator) -> None:
    await close.get_opportunity((await new_opportunity(close)).id)


async def call_update_opportunity(close: CloseClient, sim: CloseSimulator) -> None:
    opportunity = await new_opportunity(close)
    changes = {
        "status_id": "stat_won",
        "value": 500_000,
        "date_won": date(2031, 1, 31),
        "custom": {"cf_products": ["Core"], "cf_seats": 5},
    }
    await close.update_opportunity(opportunity.id, changes, tz_offset_hours=5.5)


async def call_list_opportunities(close: CloseClient, sim: CloseSimulator) -> None:
    await new_opportunity(close)
    await new_opportunity(close)
    since = datetime.now(UTC) - timedelta(hours=1)
    assert len(await close.list_opportunities(limit=1)) == 1
    await close.list_opportunities(
        lead_id="lead_acme", user_id="user_alice", date_created_gte=since
    )


async def call_first_opportunities(close: CloseClient, sim: CloseSimulator) -> None:
    await new_opportunity(close)
    page = await close.first_opportunities(
        user_id="user_alice",
        status_type="active",
        date_won_lt=date(2099, 1, 1),
        order_by="date_won",
        limit=1,
    )
    assert len(page.data) <= 1 and page.total_results >= len(page.data)


async def call_list_events(close: CloseClient, sim: CloseSimulator) -> None:
    await new_opportunity(close)
    await new_opportunity(close)
    since = datetime.now(UTC) - timedelta(minutes=5)
    first = await close.list_events(
        object_type="opportunity", action="created", date_updated_gte=since, limit=1
    )
    assert first.cursor_next, "two events, one per page: there must be a next page"
    await close.list_events(
        object_type="opportunity",
        action="created",
        date_updated_gte=since,
        cursor=first.cursor_next,
    )


async def new_webhook(close: CloseClient) -> WebhookSubscription:
    return await close.create_webhook(
        WEBHOOK_URL, [{"object_type": "opportunity", "action": "updated"}]
    )


async def call_create_webhook(close: CloseClient, sim: CloseSimulator) -> None:
    await new_webhook(close)
    events = [{"object_type": "opportunity", "action": "deleted"}]
    await close.create_webhook(WEBHOOK_URL, events, verify_ssl=False)


async def call_update_webhook(close: CloseClient, sim: CloseSimulator) -> None:
    subscription = await new_webhook(close)
    await close.update_webhook(subscription.id, {"status": "paused"})
    await close.update_webhook(subscription.id, {"status": "active", "url": WEBHOOK_URL})


async def call_delete_webhook(close: CloseClient, sim: CloseSimulator) -> None:
    await close.delete_webhook((await new_webhook(close)).id)


# Every public method of CloseClient → a coroutine that calls it (its branches that send
# something different, too). Run in this order against one simulator.
CALLS: dict[str, Call] = {
    "me": lambda close, sim: close.me(),
    "list_pipelines": lambda close, sim: close.list_pipelines(),
    "list_opportunity_statuses": lambda close, sim: close.list_opportunity_statuses(),
    "list_users": lambda close, sim: close.list_users(),
    "list_memberships": call_list_memberships,
    "list_opportunity_custom_fields": call_list_opportunity_custom_fields,
    "search_leads": call_search_leads,
    "get_lead": lambda close, sim: close.get_lead("lead_acme"),
    "get_lead_with_opportunities": call_get_lead_with_opportunities,
    "create_lead": lambda close, sim: close.create_lead("Cyberdyne Systems"),
    "list_contacts": lambda close, sim: close.list_contacts("lead_acme"),
    "create_opportunity": call_create_opportunity,
    "get_opportunity": call_get_opportunity,
    "update_opportunity": call_update_opportunity,
    "list_opportunities": call_list_opportunities,
    "first_opportunities": call_first_opportunities,
    "list_events": call_list_events,
    "list_webhooks": lambda close, sim: close.list_webhooks(),
    "create_webhook": call_create_webhook,
    "update_webhook": call_update_webhook,
    "delete_webhook": call_delete_webhook,
}


def public_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(CloseClient)
        if not name.startswith("_") and callable(member)
    }


# --- the checks ------------------------------------------------------------------------------


def template_pattern(template: str) -> re.Pattern[str]:
    """`/lead/{id}/` → a pattern for `/lead/lead_acme/` (a `{…}` is one path segment)."""
    pieces = re.split(r"(\{[^/{}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in pieces))


def find_template(paths: Mapping[str, Any], path: str) -> str | None:
    """The spec path `path` is an instance of; a literal path wins over a templated one."""
    matches = [t for t in paths if template_pattern(t).fullmatch(path)]
    return min(matches, key=lambda t: t.count("{"), default=None)


def problems_with(request: RecordedRequest, spec: Mapping[str, Any]) -> list[str]:
    """What in `request` Close's description does not declare (empty: it all fits)."""
    method, path = request.method, request.path
    unlisted = UNLISTED_OPERATIONS.get((method, path))
    if unlisted is not None:
        if request.query:
            return [f"query {sorted(request.query)} on an operation that takes none"]
        errors = Draft202012Validator(unlisted).iter_errors(request.json)
        return [f"body: {error.message}" for error in errors]

    template = find_template(spec["paths"], path)
    if template is None:
        return ["no such path in the description"]
    path_item = spec["paths"][template]
    operation = path_item.get(method.lower())
    if operation is None:
        return [f"{template} has no {method}"]

    problems = []
    parameters = [*path_item.get("parameters", []), *operation.get("parameters", [])]
    declared = {p["name"] for p in parameters if p.get("in") == "query"}
    declared |= UNLISTED_QUERY.get((method, template), frozenset())
    undeclared = sorted(set(request.query) - declared)
    if undeclared:
        problems.append(f"query parameters {undeclared} are not declared for {method} {template}")

    body = operation.get("requestBody")
    schema = ((body or {}).get("content", {}).get("application/json") or {}).get("schema")
    if request.json is None:
        if body is not None and body.get("required"):
            problems.append("no JSON body, the operation requires one")
        return problems
    if schema is None:
        return [*problems, f"a JSON body, {method} {template} takes none"]
    for error in Draft202012Validator(spec_schema(schema)).iter_errors(request.json):
        problems.append(f"body at {list(error.absolute_path)}: {error.message}")
    properties = resolved(schema, spec).get("properties")
    if properties is not None and isinstance(request.json, dict):
        # The schemas leave extra keys open; Close would ignore them, so flag them here.
        # Opportunities take their custom fields as top-level `custom.cf_…` keys.
        custom_ok = template.startswith("/opportunity/")
        extra = sorted(
            key
            for key in request.json
            if key not in properties and not (custom_ok and key.startswith("custom.cf_"))
        )
        if extra:
            problems.append(f"body keys {extra} are not in the schema")
    return problems


def resolved(schema: Mapping[str, Any], spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """`schema`, or what its top-level `#/components/…` reference points at."""
    while "$ref" in schema:
        target: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


# --- the tests -------------------------------------------------------------------------------


def test_every_public_method_has_a_contract_call() -> None:
    public = public_methods()
    missing = sorted(public - CALLS.keys() - SENDS_NOTHING)
    assert not missing, f"add CloseClient.{missing} to CALLS so their requests are checked"
    stale = sorted(CALLS.keys() - public)
    assert not stale, f"CALLS names methods CloseClient does not have: {stale}"


def test_the_default_base_url_is_the_described_server() -> None:
    server = close_spec()["servers"][0]["url"]
    default = inspect.signature(CloseClient).parameters["base_url"].default
    assert default == server.rstrip("/") + "/"


def test_the_allowances_are_still_needed() -> None:
    spec = close_spec()
    for (method, path), names in UNLISTED_QUERY.items():
        operation = spec["paths"][path][method.lower()]
        listed = {p["name"] for p in operation.get("parameters", [])}
        assert not names & listed, f"the spec now lists {names & listed}: drop the allowance"
    for method, path in UNLISTED_OPERATIONS:
        assert method.lower() not in spec["paths"].get(path, {}), (
            f"the spec now describes {method} {path}: check it against the spec instead"
        )


@pytest.fixture
async def sim() -> AsyncIterator[CloseSimulator]:
    async with CloseSimulator(api_key=KEY) as simulator:
        yield simulator


async def test_every_request_the_client_sends_is_in_closes_description(
    sim: CloseSimulator,
) -> None:
    spec = close_spec()
    sent: dict[str, list[RecordedRequest]] = {}
    async with CloseClient(KEY, sim.base_url, retry_backoff=0.02) as close:
        for name, call in CALLS.items():
            before = len(sim.requests)
            await call(close, sim)
            sent[name] = sim.requests[before:]
    silent = sorted(name for name in CALLS if not sent[name])
    assert not silent, f"these calls sent nothing, so nothing of theirs was checked: {silent}"

    problems = [
        f"{name}: {r.method} {r.path}?{r.query}: {problem}"
        for name, requests in sent.items()
        for r in requests
        for problem in problems_with(r, spec)
    ]
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_the_description_does_not_declare() -> None:
    spec = close_spec()

    def request(method: str, path: str, query: dict[str, str], json: Any = None) -> list[str]:
        return problems_with(RecordedRequest(method, path, query, json, {}), spec)

    assert request("GET", "/pipeline/", {}) == []
    assert request("GET", "/pipeline/", {"_skip": "0", "_limit": "100"})
    assert request("GET", "/lead/", {"query": 'name:"Acme"'})
    assert request("GET", "/event/", {"_cursor": "c", "_limit": "50"}) == []
    assert request("GET", "/user/", {"_cursor": "c"})
    assert request("GET", "/nothing/here/", {}) == ["no such path in the description"]
    assert request("PATCH", "/opportunity/oppo_1/", {}, {})
    good = {"lead_id": "lead_acme", "value_period": "annual", "custom.cf_source": "Inbound"}
    assert request("POST", "/opportunity/", {}, good) == []
    assert request("POST", "/opportunity/", {}, {**good, "value_period": "weekly"})
    assert request("POST", "/opportunity/", {}, {**good, "value": 12.5})
    assert request("POST", "/opportunity/", {}, {**good, "lead_name": "Acme"})
    assert request("POST", "/lead/", {}, {"custom.cf_source": "x"}) == []  # any type
    assert request("POST", "/webhook/", {}, {"url": WEBHOOK_URL})  # events are required
    assert request("POST", "/data/search/", {}, {"query": {"type": "and"}, "_limit": 5}) == []
    assert request("POST", "/data/search/", {}, {"query": {"type": "and"}, "limit": 5})
