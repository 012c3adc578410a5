"""CloseClient against the Close simulator over real HTTP: round trips, retries, rate limits."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from bot.close.client import CloseClient
from bot.close.errors import (
    CloseAuthError,
    CloseNotFound,
    CloseOutcomeUnknown,
    CloseRateLimited,
    CloseUnavailable,
    CloseValidationError,
)
from bot.close.models import OpportunityCreate
from sandbox.close_sim import CloseSimulator
from sandbox.server import bind_free_port
from tests.close_spec import close_spec, create_opportunity_schema

KEY = "api_sandbox.key"


@pytest.fixture
async def sim() -> AsyncIterator[CloseSimulator]:
    simulator = CloseSimulator(api_key=KEY)
    await simulator.start()
    yield simulator
    await simulator.stop()


def make_client(sim: CloseSimulator, **kwargs: Any) -> CloseClient:
    options: dict[str, Any] = {"retry_backoff": 0.02, "default_rate_limit_wait": 0.1}
    options.update(kwargs)
    return CloseClient(KEY, sim.base_url, **options)


@pytest.fixture
async def close(sim: CloseSimulator) -> AsyncIterator[CloseClient]:
    client = make_client(sim)
    yield client
    await client.aclose()


def sourced(**fields: Any) -> OpportunityCreate:
    """A create body with the sandbox's required custom field filled."""
    custom = {"cf_source": "Inbound", **fields.pop("custom", {})}
    return OpportunityCreate(**{"lead_id": "lead_acme", **fields}, custom=custom)


# --- round trips ---------------------------------------------------------------------------


async def test_metadata_round_trips(close: CloseClient) -> None:
    me = await close.me()
    assert me.id == "user_alice"
    assert me.organizations[0]["id"] == "orga_sandbox"

    pipelines = await close.list_pipelines()
    assert [p.name for p in pipelines] == ["Sales", "Renewals"]
    assert [s.label for s in pipelines[0].statuses][:2] == ["Lead", "Contacted"]
    assert {s.pipeline_id for s in pipelines[1].statuses} == {"pipe_renewals"}

    statuses = await close.list_opportunity_statuses()
    assert len(statuses) == 9
    assert next(s for s in statuses if s.id == "stat_won").type == "won"

    users = await close.list_users()
    assert "bob@example.com" in {u.email for u in users}

    fields = await close.list_opportunity_custom_fields()
    source = next(f for f in fields if f.id == "cf_source")
    assert source.required and source.type == "choices" and "Referral" in source.choices
    assert next(f for f in fields if f.id == "cf_products").accepts_multiple_values


async def test_memberships_mark_people_who_left(close: CloseClient) -> None:
    members = {m.user_id: m.active for m in await close.list_memberships()}
    assert members == {"user_alice": True, "user_bob": True, "user_carol": True, "user_dave": False}


async def test_users_are_read_across_pages(sim: CloseSimulator, close: CloseClient) -> None:
    sim.org.users.extend(
        {"id": f"user_extra{i:03d}", "email": f"extra{i}@example.com"} for i in range(246)
    )
    users = await close.list_users()
    assert len(users) == 250
    assert len({u.id for u in users}) == 250
    pages = [r for r in sim.requests if r.path == "/user/"]
    assert [r.query["_skip"] for r in pages] == ["0", "100", "200"]
    assert {r.query["_limit"] for r in pages} == {"100"}


async def test_custom_fields_fall_back_to_the_older_endpoint(
    sim: CloseSimulator, close: CloseClient
) -> None:
    sim.fail(1, status=404, paths=["/custom_field_schema/"])
    fields = await close.list_opportunity_custom_fields()
    assert {f.id for f in fields} >= {"cf_source", "cf_seats"}
    assert sim.count("GET", "/custom_field/opportunity/") == 1


async def test_search_leads_sends_a_phrase_query(sim: CloseSimulator, close: CloseClient) -> None:
    leads = await close.search_leads("acme", limit=5)
    assert [(lead.id, lead.display_name) for lead in leads] == [("lead_acme", "Acme Corp")]
    body = sim.requests[-1].json
    condition = body["query"]["queries"][1]["condition"]
    assert condition == {"type": "text", "mode": "phrase", "value": "acme"}
    assert body["_fields"] == {"lead": ["id", "display_name"]}
    assert body["_limit"] == 5


@pytest.mark.parametrize("status", [404, 400])
async def test_a_refused_search_finds_nothing_and_asks_nothing_else(
    sim: CloseSimulator, close: CloseClient, status: int
) -> None:
    # The older `GET /lead/?query=` is deprecated and gone from Close's docs: no fallback.
    sim.fail(1, status=status, paths=["/data/search/"])
    assert await close.search_leads("Globex") == []
    assert [(r.method, r.path) for r in sim.requests] == [("POST", "/data/search/")]
    # Asked again, Close is asked again.
    assert [lead.id for lead in await close.search_leads("Globex")] == ["lead_globex"]


async def test_pipelines_and_statuses_are_one_plain_request_each(
    sim: CloseSimulator, close: CloseClient
) -> None:
    await close.list_pipelines()
    await close.list_opportunity_statuses()
    assert [(r.path, r.query) for r in sim.requests] == [
        ("/pipeline/", {}),
        ("/status/opportunity/", {}),
    ]


async def test_leads_and_contacts_round_trip(close: CloseClient) -> None:
    lead = await close.create_lead("Cyberdyne Systems")
    assert lead.display_name == "Cyberdyne Systems"
    assert lead.html_url == f"https://app.close.com/lead/{lead.id}/"
    assert (await close.get_lead(lead.id)).display_name == "Cyberdyne Systems"
    contacts = await close.list_contacts("lead_acme")
    assert len(contacts) == 3
    assert {c.lead_id for c in contacts} == {"lead_acme"}
    with pytest.raises(CloseNotFound):
        await close.get_lead("lead_nope")


async def test_create_opportunity_round_trips_with_custom_fields_and_tz(
    sim: CloseSimulator, close: CloseClient
) -> None:
    body = sourced(
        status_id="stat_proposal",
        value=1_200_000,
        value_period="annual",
        confidence=60,
        date_won=date(2031, 3, 14),
        contact_id="cont_acme_road",
        user_id="user_bob",
        note="from Slack",
        custom={"cf_products": ["Core", "Support"], "cf_seats": 25},
    )
    opp = await close.create_opportunity(body, tz_offset_hours=-5)
    assert opp.id.startswith("oppo_")
    assert (opp.lead_name, opp.status_label, opp.pipeline_name) == (
        "Acme Corp",
        "Proposal Sent",
        "Sales",
    )
    assert opp.value_formatted == "$12,000 annual"
    assert (opp.user_name, opp.contact_name) == ("Bob Baker", "Road Runner")
    assert opp.date_won == date(2031, 3, 14)
    assert opp.custom == {
        "cf_source": "Inbound",
        "cf_products": ["Core", "Support"],
        "cf_seats": 25,
    }
    assert sim.requests[-1].headers["x-tz-offset"] == "-5"
    assert sim.opportunities[-1]["_tz_offset"] == "-5"

    again = await close.get_opportunity(opp.id)
    assert again == opp


@pytest.mark.parametrize(("hours", "sent"), [(-5, "-5"), (5.5, "5.5"), (0, "0"), (-3.5, "-3.5")])
async def test_tz_offset_header_is_formatted_as_close_expects(
    sim: CloseSimulator, close: CloseClient, hours: float, sent: str
) -> None:
    await close.create_opportunity(sourced(), tz_offset_hours=hours)
    assert sim.requests[-1].headers["x-tz-offset"] == sent


async def test_update_to_won_sets_date_won_and_list_filters(
    sim: CloseSimulator, close: CloseClient
) -> None:
    opp = await close.create_opportunity(sourced(user_id="user_carol"))
    assert opp.status_id == "stat_lead" and opp.date_won is None
    won = await close.update_opportunity(
        opp.id, {"status_id": "stat_won", "custom": {"cf_competitor": "Globex"}}, tz_offset_hours=0
    )
    assert won.status_type == "won"
    assert won.date_won == datetime.now(UTC).date()
    assert won.custom["cf_competitor"] == "Globex"
    assert sim.requests[-1].json == {"status_id": "stat_won", "custom.cf_competitor": "Globex"}

    await close.create_opportunity(sourced(lead_id="lead_globex", user_id="user_bob"))
    mine = await close.list_opportunities(lead_id="lead_acme", user_id="user_carol")
    assert [o.id for o in mine] == [opp.id]
    later = await close.list_opportunities(date_created_gte=datetime.now(UTC) + timedelta(hours=1))
    assert later == []
    recent = await close.list_opportunities(date_created_gte=datetime.now(UTC) - timedelta(hours=1))
    assert len(recent) == 2


def test_create_body_fits_closes_create_opportunity_schema() -> None:
    # No format checker: the spec says date-time for date_won, Close answers YYYY-MM-DD.
    validator = Draft202012Validator(create_opportunity_schema())
    known = set(close_spec()["components"]["schemas"]["CreateOpportunity"]["properties"])
    bodies = [
        OpportunityCreate(lead_id="lead_acme").to_close(),
        sourced(
            status_id="stat_won",
            pipeline_id="pipe_sales",
            value=500,
            value_period="monthly",
            confidence=100,
            date_won=date(2030, 1, 31),
            contact_id="cont_acme_wile",
            user_id="user_alice",
            note="n",
            custom={"cf_products": ["Core"]},
        ).to_close(),
    ]
    for body in bodies:
        validator.validate(body)
        assert {k for k in body if not k.startswith("custom.")} <= known
    assert not validator.is_valid({**bodies[1], "value_period": "weekly"})
    assert not validator.is_valid({**bodies[1], "value": 12.5})


# --- errors ----------------------------------------------------------------------------------


async def test_field_errors_are_mapped_unchanged(close: CloseClient) -> None:
    body = OpportunityCreate(
        lead_id="lead_acme",
        status_id="stat_nope",
        custom={"cf_products": ["Teleporter"]},
    )
    with pytest.raises(CloseValidationError) as caught:
        await close.create_opportunity(body)
    assert caught.value.status_code == 400
    assert set(caught.value.field_errors) == {"status", "custom.cf_products", "custom.cf_source"}
    assert caught.value.field_errors["custom.cf_source"] == "This field is required."

    opp = await close.create_opportunity(sourced())
    with pytest.raises(CloseValidationError) as caught:
        await close.update_opportunity(opp.id, {"value": 12.5})
    assert list(caught.value.field_errors) == ["value"]


async def test_bad_key_is_an_auth_error_without_the_key(sim: CloseSimulator) -> None:
    secret = "api_live_SECRET123.abcdef"
    async with CloseClient(secret, sim.base_url) as close:
        with pytest.raises(CloseAuthError) as caught:
            await close.me()
    assert caught.value.status_code == 401
    assert caught.value.message
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)


# --- rate limits -----------------------------------------------------------------------------


async def timed(coro: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = await coro
    return result, time.monotonic() - started


async def test_429_waits_for_the_ratelimit_header_reset(
    sim: CloseSimulator, close: CloseClient
) -> None:
    sim.rate_limit(1, reset=0.2)
    me, elapsed = await timed(close.me())
    assert me.id == "user_alice"
    assert 0.19 <= elapsed < 0.5
    assert [r.status for r in sim.requests] == [429, 200]


async def test_429_with_only_retry_after(sim: CloseSimulator, close: CloseClient) -> None:
    sim.rate_limit(1, reset=None, retry_after=0.25, with_header=False)
    _, elapsed = await timed(close.list_pipelines())
    assert 0.24 <= elapsed < 0.6
    assert sim.requests[0].status == 429


async def test_429_without_headers_reads_the_body_then_the_default(
    sim: CloseSimulator, close: CloseClient
) -> None:
    sim.rate_limit(1, reset=0.15, with_header=False)
    _, elapsed = await timed(close.me())
    assert 0.14 <= elapsed < 0.45

    sim.rate_limit(1, reset=None, with_header=False)  # nothing to read: default (0.1 here)
    _, elapsed = await timed(close.me())
    assert 0.09 <= elapsed < 0.4


async def test_429_beyond_the_wait_budget_raises_rate_limited(sim: CloseSimulator) -> None:
    sim.rate_limit(10, reset=0.2)
    async with make_client(sim, max_wait_seconds=0.5) as close:
        with pytest.raises(CloseRateLimited) as caught:
            await close.me()
    assert caught.value.retry_after == pytest.approx(0.2)
    assert sim.count("GET", "/me/") == 3  # waited 0.2 + 0.2, a third wait would pass 0.5


async def test_pacing_waits_out_an_exhausted_window_instead_of_hitting_429(
    sim: CloseSimulator, close: CloseClient
) -> None:
    sim.enforce_rate_limit = (1, 0.3)
    await close.me()
    assert sim.requests[-1].status == 200
    _, elapsed = await timed(close.me())
    assert 0.25 <= elapsed < 0.6
    assert [r.status for r in sim.requests] == [200, 200]
    # Other endpoint groups have their own budget and are not held.
    _, elapsed = await timed(close.list_users())
    assert elapsed < 0.2


# --- transient failures ----------------------------------------------------------------------


async def test_503_on_a_read_is_retried(sim: CloseSimulator, close: CloseClient) -> None:
    sim.fail(2, status=503, paths=["/pipeline/"])
    pipelines = await close.list_pipelines()
    assert len(pipelines) == 2
    assert [r.status for r in sim.requests] == [503, 503, 200]


async def test_reads_give_up_as_unavailable(sim: CloseSimulator) -> None:
    sim.fail(10, status=502)
    async with make_client(sim, retry_attempts=3) as close:
        with pytest.raises(CloseUnavailable):
            await close.me()
    assert sim.count("GET", "/me/") == 3


async def test_500_on_a_create_is_unavailable_and_not_resent(
    sim: CloseSimulator, close: CloseClient
) -> None:
    sim.fail(1, status=500, paths=["/opportunity/"], methods=["POST"])
    with pytest.raises(CloseUnavailable) as caught:
        await close.create_opportunity(sourced())
    assert caught.value.status_code == 500
    assert sim.count("POST", "/opportunity/") == 1


async def test_502_on_a_create_is_outcome_unknown(sim: CloseSimulator, close: CloseClient) -> None:
    sim.fail(1, status=502, paths=["/opportunity/"], methods=["POST"])
    with pytest.raises(CloseOutcomeUnknown):
        await close.create_opportunity(sourced())
    assert sim.count("POST", "/opportunity/") == 1


async def test_503_on_a_create_is_retried_because_close_refused_it(
    sim: CloseSimulator, close: CloseClient
) -> None:
    sim.fail(1, status=503, paths=["/opportunity/"], methods=["POST"])
    opp = await close.create_opportunity(sourced())
    assert sim.count("POST", "/opportunity/") == 2
    assert [o["id"] for o in sim.opportunities] == [opp.id]


async def test_create_that_times_out_is_outcome_unknown_and_sent_once(sim: CloseSimulator) -> None:
    sim.apply_then_hang(1, seconds=2.0)
    since = datetime.now(UTC) - timedelta(seconds=1)
    timeout = httpx.Timeout(5.0, read=0.3)
    async with make_client(sim, timeout=timeout) as close:
        started = time.monotonic()
        with pytest.raises(CloseOutcomeUnknown):
            await close.create_opportunity(sourced(note="maybe"))
        assert time.monotonic() - started < 1.0
        assert sim.count("POST", "/opportunity/") == 1
        # The caller looks before retrying: the create did land.
        found = await close.list_opportunities(lead_id="lead_acme", date_created_gte=since)
    assert [o.note for o in found] == ["maybe"]
    assert len(sim.opportunities) == 1


async def test_nothing_listening_is_unavailable_even_for_writes() -> None:
    sock = bind_free_port()
    port = sock.getsockname()[1]
    sock.close()
    async with CloseClient(KEY, f"http://127.0.0.1:{port}/api/v1/", retry_backoff=0.01) as close:
        with pytest.raises(CloseUnavailable):
            await close.me()
        # Refused before anything was sent: not "outcome unknown".
        with pytest.raises(CloseUnavailable):
            await close.create_opportunity(sourced())


async def test_a_connection_dropped_after_the_request_is_outcome_unknown_for_writes() -> None:
    """A server that reads the whole request, then hangs up without answering: the create may
    have landed, so it is not sent again (aiohttp repeats only idempotent methods); a read is
    retried."""
    received: list[bytes] = []

    async def read_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        received.append(head + await reader.readexactly(length))
        writer.close()

    server = await asyncio.start_server(read_then_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with (
        server,
        CloseClient(
            KEY, f"http://127.0.0.1:{port}/api/v1/", retry_backoff=0.01, retry_attempts=3
        ) as close,
    ):
        with pytest.raises(CloseOutcomeUnknown):
            await close.create_opportunity(sourced(note="maybe"))
        assert [r.split(b" ")[:2] for r in received] == [[b"POST", b"/api/v1/opportunity/"]]
        assert b'"note":"maybe"' in received[0]
        received.clear()
        with pytest.raises(CloseUnavailable):
            await close.me()
        # Our 3 attempts, each of which aiohttp repeats once (a GET is idempotent, RFC 9112).
        assert len(received) == 6


async def test_answers_are_decoded_as_httpx_would() -> None:
    """The aiohttp transport hands httpx the raw body: gzip from Close is still read."""
    body = gzip.compress(json.dumps({"id": "user_x", "organizations": []}).encode())

    async def gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(gzipped, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, CloseClient(KEY, f"http://127.0.0.1:{port}/api/v1/") as gz:
        assert (await gz.me()).id == "user_x"
