"""The Close simulator's event log, webhook subscriptions and signed deliveries, over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.close_sim import PERSON_USER_ID, CloseSimulator
from sandbox.server import RunningServer, bind_free_port, start_server

KEY = "api_sandbox.key"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


@pytest.fixture
async def sim() -> AsyncIterator[CloseSimulator]:
    async with CloseSimulator(api_key=KEY) as simulator:
        yield simulator


@pytest.fixture
async def http(sim: CloseSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url, auth=(KEY, "")) as client:
        yield client


@dataclass
class Receiver:
    """A webhook endpoint: records each delivery, answers `statuses` in turn (then 200)."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # time.monotonic() of each
    server: RunningServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "hook"

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body)["event"] for _, body in self.received]

    async def endpoint(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        self.received_at.append(time.monotonic())
        status = self.statuses.pop(0) if self.statuses else 200
        return JSONResponse({}, status_code=status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    hook.server = await start_server(
        Starlette(routes=[Route("/hook", hook.endpoint, methods=["POST"])])
    )
    try:
        yield hook
    finally:
        await hook.server.stop()


def deal(**fields: Any) -> dict[str, Any]:
    return {"lead_id": "lead_acme", "custom.cf_source": "Referral", **fields}


async def create(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await http.post("opportunity/", json=deal(**fields))
    assert response.status_code == 200
    return dict(response.json())


async def subscribe(
    http: httpx.AsyncClient, url: str, *actions: str, object_type: str = "opportunity"
) -> dict[str, Any]:
    events = [{"object_type": object_type, "action": a} for a in actions or ("updated",)]
    response = await http.post("webhook/", json={"url": url, "events": events})
    assert response.status_code == 201
    return dict(response.json())


def verify(headers: dict[str, str], body: bytes, key: str) -> bool:
    """The receiver's side of Close's documented scheme."""
    message = headers["close-sig-timestamp"].encode() + body
    expected = hmac.new(bytes.fromhex(key), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["close-sig-hash"])


# --- the event log ----------------------------------------------------------------------------


async def test_api_writes_record_closes_events(
    sim: CloseSimulator, http: httpx.AsyncClient
) -> None:
    opp = await create(http, note="first")
    patched = (await http.put(f"opportunity/{opp['id']}/", json={"value": 700})).json()
    assert (await http.delete(f"opportunity/{opp['id']}/")).json() == {}
    assert (await http.get(f"opportunity/{opp['id']}/")).status_code == 404
    assert (await http.delete(f"opportunity/{opp['id']}/")).status_code == 404

    created, updated, deleted = sim.events
    assert [e["action"] for e in sim.events] == ["created", "updated", "deleted"]
    for event in sim.events:
        assert event["id"].startswith("ev_") and event["object_type"] == "opportunity"
        assert (event["object_id"], event["lead_id"]) == (opp["id"], "lead_acme")
        assert STAMP.match(event["date_created"]) and STAMP.match(event["date_updated"])
        assert (event["user_id"], event["api_key_id"]) == ("user_alice", sim.api_key_id)
        assert event["organization_id"] == "orga_sandbox"
        assert event["request_id"].startswith("req_")
    assert len({e["request_id"] for e in sim.events}) == 3
    assert created["data"] == opp and created["changed_fields"] == []
    assert created["meta"] == {"request_method": "POST", "request_path": "/api/v1/opportunity/"}
    assert updated["data"] == patched
    assert {"value", "value_formatted"} <= set(updated["changed_fields"])
    assert (
        updated["previous_data"]["value"] is None
        and updated["previous_data"]["value_formatted"] == ""
    )
    assert updated["meta"]["request_method"] == "PUT"
    assert deleted["data"] == patched
    assert deleted["meta"] == {
        "request_method": "DELETE",
        "request_path": f"/api/v1/opportunity/{opp['id']}/",
    }

    listed = (
        await http.get("event/", params={"object_type": "opportunity", "object_id": opp["id"]})
    ).json()
    assert [e["id"] for e in listed["data"]] == [deleted["id"], updated["id"], created["id"]]
    assert listed["cursor_next"] is None and listed["cursor_previous"] is None
    one = await http.get(f"event/{updated['id']}/")
    assert one.json() == updated
    assert (await http.get("event/ev_nope/")).status_code == 404


async def test_an_update_that_changes_nothing_records_nothing(
    sim: CloseSimulator, http: httpx.AsyncClient
) -> None:
    opp = await create(http, note="same", value=100)
    same = await http.put(f"opportunity/{opp['id']}/", json={"note": "same", "value": 100})
    assert same.status_code == 200 and same.json() == opp
    assert [e["action"] for e in sim.events] == ["created"]


async def test_a_status_change_also_logs_a_status_change_object(
    sim: CloseSimulator, http: httpx.AsyncClient
) -> None:
    opp = await create(http)
    await http.put(f"opportunity/{opp['id']}/", json={"status_id": "stat_won"})
    updated, change = sim.events[1:]
    assert {"status_id", "status_label", "status_type", "date_won"} <= set(
        updated["changed_fields"]
    )
    assert updated["previous_data"]["status_id"] == "stat_lead"
    assert (change["object_type"], change["action"]) == ("status_change.opportunity", "created")
    assert change["data"]["opportunity_id"] == opp["id"]
    assert (change["data"]["old_status_id"], change["data"]["new_status_id"]) == (
        "stat_lead",
        "stat_won",
    )
    by_request = (await http.get("event/", params={"request_id": updated["request_id"]})).json()
    assert {e["id"] for e in by_request["data"]} == {updated["id"], change["id"]}


async def test_filter_combinations_like_close(sim: CloseSimulator, http: httpx.AsyncClient) -> None:
    first = await create(http)
    await create(http, lead_id="lead_globex")
    sim.change_opportunity(first["id"], {"value": 5})

    alone = await http.get("event/", params={"object_type": "opportunity"})
    assert alone.status_code == 400 and alone.json()["errors"] and "field-errors" in alone.json()
    assert (await http.get("event/")).status_code == 400
    assert (await http.get("event/", params={"action": "created"})).status_code == 400

    async def actions(**params: str) -> list[str]:
        response = await http.get("event/", params=params)
        assert response.status_code == 200, response.json()
        return [f"{e['action']}:{e['lead_id']}" for e in response.json()["data"]]

    assert await actions(object_type="opportunity", action="created") == [
        "created:lead_globex",
        "created:lead_acme",
    ]
    assert await actions(lead_id="lead_acme") == ["updated:lead_acme", "created:lead_acme"]
    assert await actions(user_id=PERSON_USER_ID) == ["updated:lead_acme"]
    assert await actions(user_id="user_alice", object_type="opportunity", action="updated") == []
    assert await actions(object_id=first["id"], action="updated") == ["updated:lead_acme"]

    second_created = sim.events[1]["date_updated"]
    since = {"object_type": "opportunity", "action": "created", "date_updated__gte": second_created}
    assert await actions(**since) == ["created:lead_globex"]
    since["date_updated__gt"] = since.pop("date_updated__gte")
    assert await actions(**since) == []
    before = {"lead_id": "lead_acme", "date_updated__lt": sim.events[2]["date_updated"]}
    assert await actions(**before) == ["created:lead_acme"]
    assert await actions(lead_id="lead_acme", date_updated__lte=sim.events[2]["date_updated"]) == [
        "updated:lead_acme",
        "created:lead_acme",
    ]

    bad_date = await http.get(
        "event/", params={"lead_id": "lead_acme", "date_updated__gte": "soon"}
    )
    assert "date_updated__gte" in bad_date.json()["field-errors"]
    skip = await http.get("event/", params={"lead_id": "lead_acme", "_skip": 0})
    assert skip.status_code == 400 and "_skip is not supported" in json.dumps(skip.json())
    assert (
        await http.get("event/", params={"lead_id": "lead_acme", "_limit": 0})
    ).status_code == 400
    cursor = await http.get("event/", params={"lead_id": "lead_acme", "_cursor": "garbage"})
    assert cursor.status_code == 400


async def test_cursor_paging_has_no_gaps_or_duplicates(
    sim: CloseSimulator, http: httpx.AsyncClient
) -> None:
    for n in range(120):
        sim.create_opportunity_as("lead_initech", {"custom.cf_source": "Inbound", "value": n})
    params = {"object_type": "opportunity", "action": "created", "_limit": "500"}
    seen: list[str] = []
    pages = []
    cursor: str | None = None
    while True:
        page = (
            await http.get("event/", params={**params, **({"_cursor": cursor} if cursor else {})})
        ).json()
        pages.append(page)
        seen += [e["id"] for e in page["data"]]
        cursor = page["cursor_next"]
        if cursor is None:
            break
        if len(pages) == 1:
            # A newer event between pages must not leak into the older pages.
            sim.create_opportunity_as("lead_initech", {"custom.cf_source": "Inbound"})
    assert [len(p["data"]) for p in pages] == [50, 50, 20]
    assert len(seen) == len(set(seen)) == 120
    expected = [e["id"] for e in reversed(sim.events[:120])]
    assert seen == expected  # latest first, by date_updated
    assert pages[0]["cursor_previous"] is None and pages[1]["cursor_previous"] is not None

    back = (
        await http.get("event/", params={**params, "_cursor": pages[2]["cursor_previous"]})
    ).json()
    assert [e["id"] for e in back["data"]] == [e["id"] for e in pages[1]["data"]]


async def test_quick_successive_updates_merge_into_one_event(
    sim: CloseSimulator, http: httpx.AsyncClient
) -> None:
    sim.events_merge_window = 5.0
    opp = await create(http, value=100)
    await http.put(f"opportunity/{opp['id']}/", json={"value": 200})
    first_state = dict(sim.events[-1])
    await http.put(f"opportunity/{opp['id']}/", json={"value": 300, "note": "later"})
    assert [e["action"] for e in sim.events] == ["created", "updated"]
    merged = sim.events[-1]
    assert merged["id"] == first_state["id"]
    assert merged["date_created"] == first_state["date_created"]
    assert merged["date_updated"] > first_state["date_updated"]
    assert {"value", "note"} <= set(merged["changed_fields"])
    assert merged["previous_data"]["value"] == 100 and merged["previous_data"]["note"] == ""
    assert merged["data"]["value"] == 300

    sim.change_opportunity(opp["id"], {"value": 400})  # another user: an event of its own
    assert [e["user_id"] for e in sim.events[1:]] == ["user_alice", PERSON_USER_ID]


async def test_recent_events_show_up_late(sim: CloseSimulator, http: httpx.AsyncClient) -> None:
    sim.events_visible_after = 0.3
    started = time.monotonic()
    opp = await create(http)
    params = {"object_type": "opportunity", "object_id": opp["id"]}
    assert (await http.get("event/", params=params)).json()["data"] == []
    assert (await http.get(f"event/{sim.events[0]['id']}/")).status_code == 404

    async def listed() -> list[str]:
        return [e["action"] for e in (await http.get("event/", params=params)).json()["data"]]

    for _ in range(250):  # polled for up to ~5 s
        if shown := await listed():
            break
        await asyncio.sleep(0.02)
    assert shown == ["created"]
    assert time.monotonic() - started >= 0.3  # shown once it is 0.3 s old, not before
    assert (await http.get(f"event/{sim.events[0]['id']}/")).status_code == 200


# --- webhook subscriptions ----------------------------------------------------------------


async def test_webhook_subscription_crud(http: httpx.AsyncClient) -> None:
    missing = await http.post("webhook/", json={})
    assert missing.status_code == 400
    assert set(missing.json()["field-errors"]) == {"url", "events"}
    bad = await http.post("webhook/", json={"url": "ftp://x", "events": [{"object_type": "lead"}]})
    assert set(bad.json()["field-errors"]) == {"url", "events"}

    events = [{"object_type": "opportunity", "action": "updated"}]
    created = await http.post("webhook/", json={"url": "https://example.com/h", "events": events})
    sub = created.json()
    assert created.status_code == 201 and sub["id"].startswith("whsub_")
    assert re.fullmatch(r"[0-9a-f]{64}", sub["signature_key"])
    assert (sub["status"], sub["verify_ssl"], sub["events"]) == ("active", True, events)
    listed = (await http.get("webhook/")).json()
    assert listed["has_more"] is False and [s["id"] for s in listed["data"]] == [sub["id"]]
    assert "signature_key" not in listed["data"][0]
    one = (await http.get(f"webhook/{sub['id']}/")).json()
    assert "signature_key" not in one and one["url"] == "https://example.com/h"

    paused = await http.put(f"webhook/{sub['id']}/", json={"status": "paused", "verify_ssl": False})
    assert (paused.json()["status"], paused.json()["verify_ssl"]) == ("paused", False)
    assert "signature_key" not in paused.json()
    wrong = await http.put(f"webhook/{sub['id']}/", json={"status": "sleeping"})
    assert wrong.status_code == 400 and "status" in wrong.json()["field-errors"]
    more = [*events, {"object_type": "opportunity", "action": "deleted"}]
    moved = (await http.put(f"webhook/{sub['id']}/", json={"events": more})).json()
    assert moved["events"] == more and moved["status"] == "paused"

    assert (await http.delete(f"webhook/{sub['id']}/")).json() == {}
    assert (await http.get(f"webhook/{sub['id']}/")).status_code == 404
    assert (await http.put("webhook/whsub_nope/", json={})).status_code == 404


async def test_a_delivery_is_signed_as_documented(
    sim: CloseSimulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    sub = await subscribe(http, receiver.url, "created", "updated")
    opp = await create(http)
    await sim.wait_deliveries_idle(2.0)  # deliveries run concurrently: keep this test's order
    await http.put(f"opportunity/{opp['id']}/", json={"status_id": "stat_won"})
    await sim.wait_deliveries_idle(2.0)

    assert len(receiver.received) == 2  # the status_change object is not subscribed to
    for (headers, body), event in zip(receiver.received, sim.events, strict=False):
        assert headers["content-type"] == "application/json"
        assert verify(headers, body, sub["signature_key"])
        assert abs(int(headers["close-sig-timestamp"]) - time.time()) < 5
        assert json.loads(body) == {"subscription_id": sub["id"], "event": event}
    assert not verify(receiver.received[0][0], receiver.received[0][1] + b" ", sub["signature_key"])
    assert [(d.subscription_id, d.status, d.attempt) for d in sim.deliveries] == [
        (sub["id"], 200, 1),
        (sub["id"], 200, 1),
    ]
    assert sim.deliveries[0].event_id == sim.events[0]["id"]
    assert sim.deliveries[0].date_updated == sim.events[0]["date_updated"]


async def test_paused_subscription_gets_nothing_and_merges_are_delivered_again(
    sim: CloseSimulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    sub = await subscribe(http, receiver.url, "updated")
    opp = await create(http)
    await http.put(f"webhook/{sub['id']}/", json={"status": "paused"})
    sim.change_opportunity(opp["id"], {"value": 1})
    await sim.wait_deliveries_idle(2.0)
    assert receiver.received == []

    await http.put(f"webhook/{sub['id']}/", json={"status": "active"})
    sim.events_merge_window = 5.0
    sim.change_opportunity(opp["id"], {"value": 2})  # merges into the event above
    await sim.wait_deliveries_idle(2.0)
    sim.change_opportunity(opp["id"], {"value": 3})
    await sim.wait_deliveries_idle(2.0)
    first, second = receiver.events
    assert first["id"] == second["id"] and first["date_updated"] < second["date_updated"]
    assert (first["data"]["value"], second["data"]["value"]) == (2, 3)


async def test_drop_and_duplicate_knobs(
    sim: CloseSimulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(http, receiver.url, "updated")
    opp = await create(http)
    sim.drop_deliveries(1)
    sim.duplicate_deliveries(1)
    for value in (1, 2, 3):
        sim.change_opportunity(opp["id"], {"value": value})
    await sim.wait_deliveries_idle(2.0)
    assert sorted(e["data"]["value"] for e in receiver.events) == [2, 2, 3]
    assert [d.event_id for d in sim.dropped_deliveries] == [sim.events[1]["id"]]


async def test_held_deliveries_are_released_out_of_order(
    sim: CloseSimulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(http, receiver.url, "created", "updated", "deleted")
    sim.hold_deliveries()
    opp = await create(http)
    sim.change_opportunity(opp["id"], {"value": 9})
    sim.delete_opportunity(opp["id"])
    await sim.wait_deliveries_idle(2.0)
    assert receiver.received == []
    sim.release_deliveries()
    await sim.wait_deliveries_idle(2.0)
    assert [e["action"] for e in receiver.events] == ["deleted", "updated", "created"]


async def test_redeliver_sends_the_current_state_again(
    sim: CloseSimulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(http, receiver.url, "created")
    await create(http)
    await sim.wait_deliveries_idle(2.0)
    await sim.redeliver(sim.events[0]["id"])
    assert [e["id"] for e in receiver.events] == [sim.events[0]["id"]] * 2
    with pytest.raises(ValueError, match="ev_nope"):
        await sim.redeliver("ev_nope")


async def test_webhook_delay_holds_a_delivery_back(
    sim: CloseSimulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(http, receiver.url, "created")
    sim.webhook_delay = 0.3
    started = time.monotonic()
    await create(http)
    assert time.monotonic() - started < 0.25  # the API answer does not wait for deliveries
    assert receiver.received == []
    await sim.wait_deliveries_idle(2.0)
    assert len(receiver.received) == 1 and receiver.received_at[0] - started >= 0.3


async def test_failures_are_retried_then_the_subscription_is_paused(
    sim: CloseSimulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    sim.webhook_retry_seconds = 0.01
    sim.webhook_max_attempts = 3
    sim.webhook_pause_after = 5
    sub = await subscribe(http, receiver.url, "updated")
    opp = await create(http)

    receiver.statuses = [500]
    sim.change_opportunity(opp["id"], {"value": 1})
    await sim.wait_deliveries_idle(2.0)
    assert [(d.status, d.attempt) for d in sim.deliveries] == [(500, 1), (200, 2)]

    receiver.statuses = [500] * 10
    sim.change_opportunity(opp["id"], {"value": 2})
    await sim.wait_deliveries_idle(2.0)  # one at a time: no attempt is in flight at the pause
    sim.change_opportunity(opp["id"], {"value": 3})
    await sim.wait_deliveries_idle(2.0)
    failed = sim.deliveries[2:]
    assert all(d.status == 500 for d in failed)
    assert [d.attempt for d in failed] == [1, 2, 3, 1, 2]  # paused at the fifth failure
    assert (await http.get(f"webhook/{sub['id']}/")).json()["status"] == "paused"
    sim.change_opportunity(opp["id"], {"value": 4})
    await sim.wait_deliveries_idle(2.0)
    assert len(sim.deliveries) == 7


async def test_an_unreachable_receiver_counts_as_a_failure(
    sim: CloseSimulator, http: httpx.AsyncClient
) -> None:
    with bind_free_port() as sock:  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
        sim.webhook_retry_seconds = 0.01
        sim.webhook_max_attempts = 2
        await subscribe(http, url, "created")
        await create(http)
        await sim.wait_deliveries_idle(2.0)
    assert [(d.status, d.attempt) for d in sim.deliveries] == [(None, 1), (None, 2)]


async def test_stop_cancels_pending_deliveries(receiver: Receiver) -> None:
    simulator = CloseSimulator(api_key=KEY)
    await simulator.start()
    async with httpx.AsyncClient(base_url=simulator.base_url, auth=(KEY, "")) as http:
        await subscribe(http, receiver.url, "created")
        simulator.webhook_delay = 30.0
        await create(http)
    started = time.monotonic()
    await simulator.stop()
    assert time.monotonic() - started < 2.0
    assert receiver.received == [] and simulator.deliveries == []


# --- a person working in Close ---------------------------------------------------------------


async def test_a_person_changes_the_deal_in_close(
    sim: CloseSimulator, http: httpx.AsyncClient
) -> None:
    opp = await create(http)
    changed = sim.change_opportunity(opp["id"], {"status_id": "stat_demo", "confidence": 40})
    assert (changed["updated_by"], changed["updated_by_name"]) == (PERSON_USER_ID, "Bob Baker")
    assert changed["date_updated"] > opp["date_updated"]
    assert (await http.get(f"opportunity/{opp['id']}/")).json() == changed
    event, status_change = sim.events[1:]
    assert (event["user_id"], event["api_key_id"]) == (PERSON_USER_ID, None)
    assert event["request_id"].startswith("req_") and event["data"] == changed
    assert {"status_id", "confidence"} <= set(event["changed_fields"])
    assert status_change["object_type"] == "status_change.opportunity"

    robot = sim.change_opportunity(opp["id"], {"note": "from a workflow"}, automation=True)
    assert robot["updated_by"] is None and robot["updated_by_name"] is None
    assert (sim.events[-1]["user_id"], sim.events[-1]["api_key_id"]) == (None, None)

    with pytest.raises(ValueError, match="confidence"):
        sim.change_opportunity(opp["id"], {"confidence": 500})
    with pytest.raises(ValueError, match="user_dave"):
        sim.change_opportunity(opp["id"], {"value": 1}, user_id="user_dave")
    with pytest.raises(ValueError, match="oppo_nope"):
        sim.change_opportunity("oppo_nope", {"value": 1})

    theirs = sim.create_opportunity_as(
        "lead_globex", {"custom.cf_source": "Partner"}, user_id="user_carol"
    )
    assert (theirs["created_by"], theirs["user_id"], theirs["updated_by"]) == ("user_carol",) * 3
    assert (sim.events[-1]["action"], sim.events[-1]["user_id"]) == ("created", "user_carol")

    last = sim.delete_opportunity(opp["id"])
    assert last == robot and sim.org.find(sim.opportunities, opp["id"]) is None
    deleted = sim.events[-1]
    assert (deleted["action"], deleted["user_id"], deleted["data"]) == (
        "deleted",
        PERSON_USER_ID,
        robot,
    )
