"""The Close simulator's wire format, validation and fault switches, seen with a plain HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from sandbox.close_sim import CloseSimulator, default_org, value_formatted

KEY = "api_sandbox.key"


@pytest.fixture
async def sim() -> AsyncIterator[CloseSimulator]:
    async with CloseSimulator(api_key=KEY) as simulator:
        yield simulator


@pytest.fixture
async def http(sim: CloseSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url, auth=(KEY, "")) as client:
        yield client


SPEC = Path(__file__).resolve().parent / "specs" / "close-openapi.yml"


def opportunity_validator() -> Draft202012Validator:
    """Close's published `Opportunity` schema (tests/specs/close-openapi.yml)."""
    spec = yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:close", resource)
    # No format checker: Close answers date_won as a date where the spec says date-time.
    return Draft202012Validator(
        {"$ref": "urn:close#/components/schemas/Opportunity"}, registry=registry
    )


def deal(**fields: Any) -> dict[str, Any]:
    return {"lead_id": "lead_acme", "custom.cf_source": "Referral", **fields}


async def test_base_url_and_auth(sim: CloseSimulator) -> None:
    assert sim.base_url.startswith("http://127.0.0.1:") and sim.base_url.endswith("/api/v1/")
    async with httpx.AsyncClient(base_url=sim.base_url) as anonymous:
        response = await anonymous.get("me/")
        assert response.status_code == 401
        assert isinstance(response.json()["error"], str)
        wrong = await anonymous.get("me/", auth=("api_other.key", ""))
        assert wrong.status_code == 401
        unknown = await anonymous.get("nothing/here/", auth=(KEY, ""))
        assert unknown.status_code == 404 and "error" in unknown.json()


async def test_metadata_shapes(http: httpx.AsyncClient) -> None:
    pipelines = (await http.get("pipeline/")).json()
    assert pipelines["has_more"] is False
    sales = pipelines["data"][0]
    assert sales["name"] == "Sales"
    assert [(s["label"], s["type"]) for s in sales["statuses"]][-2:] == [
        ("Won", "won"),
        ("Lost", "lost"),
    ]
    statuses = (await http.get("status/opportunity/")).json()["data"]
    assert {"id", "label", "type", "pipeline_id"} <= set(statuses[0])
    schema = (await http.get("custom_field_schema/opportunity/")).json()
    names = {f["name"]: f for f in schema["fields"]}
    assert set(names) >= {"Source", "Products", "Competitor", "Seats", "Contract start"}
    assert names["Sales engineer"]["type"] == "user" and names["Internal ref"]["type"] == "hidden"
    old = (await http.get("custom_field/opportunity/")).json()
    assert old["data"] == schema["fields"]
    me = (await http.get("me/")).json()
    assert me["organizations"][0]["id"] == "orga_sandbox"
    org = (await http.get("organization/orga_sandbox/")).json()
    assert [m["user_id"] for m in org["inactive_memberships"]] == ["user_dave"]


async def test_user_paging(sim: CloseSimulator, http: httpx.AsyncClient) -> None:
    first = (await http.get("user/", params={"_limit": 3})).json()
    assert len(first["data"]) == 3 and first["has_more"] is True
    rest = (await http.get("user/", params={"_limit": 3, "_skip": 3})).json()
    assert len(rest["data"]) == 1 and rest["has_more"] is False
    too_many = await http.get("user/", params={"_limit": 1000})
    assert too_many.status_code == 400 and "_limit" in too_many.json()["field-errors"]


def search_body(value: str, limit: int = 10) -> dict[str, Any]:
    name = {"type": "regular_field", "object_type": "lead", "field_name": "name"}
    return {
        "query": {
            "type": "and",
            "queries": [
                {"type": "object_type", "object_type": "lead"},
                {
                    "type": "field_condition",
                    "field": name,
                    "condition": {"type": "text", "mode": "phrase", "value": value},
                },
            ],
        },
        "_fields": {"lead": ["id", "display_name"]},
        "_limit": limit,
    }


async def test_lead_search_and_deprecated_query(http: httpx.AsyncClient) -> None:
    found = (await http.post("data/search/", json=search_body("CORP"))).json()
    assert found["cursor"] is None
    assert [(d["id"], d["display_name"]) for d in found["data"]] == [
        ("lead_acme", "Acme Corp"),
        ("lead_globex", "Globex Corporation"),
    ]
    assert (await http.post("data/search/", json=search_body("x", limit=201))).status_code == 400
    old = await http.get("lead/", params={"query": 'name:"initech"', "_fields": "id,display_name"})
    assert old.json()["data"] == [{"id": "lead_initech", "display_name": "Initech"}]
    assert (await http.get("lead/", params={"_limit": 201})).status_code == 400


async def test_create_lead(http: httpx.AsyncClient) -> None:
    missing = await http.post("lead/", json={"name": "  "})
    assert missing.status_code == 400
    assert missing.json()["field-errors"] == {"name": "This field is required."}
    lead = (
        await http.post("lead/", json={"name": "Tyrell", "contacts": [{"name": "Eldon"}]})
    ).json()
    assert lead["html_url"] == f"https://app.close.com/lead/{lead['id']}/"
    assert lead["display_name"] == "Tyrell"
    contacts = (await http.get("contact/", params={"lead_id": lead["id"]})).json()["data"]
    assert [c["name"] for c in contacts] == ["Eldon"]
    assert len((await http.get("contact/", params={"lead_id": "lead_acme"})).json()["data"]) == 3


async def test_created_opportunity_has_closes_shape(
    sim: CloseSimulator, http: httpx.AsyncClient
) -> None:
    body = deal(value=1_200_000, value_period="annual", contact_id="cont_acme_wile")
    response = await http.post("opportunity/", json=body, headers={"x-tz-offset": "5.5"})
    assert response.status_code == 200
    opp = response.json()
    assert opp["status_id"] == "stat_lead" and opp["pipeline_name"] == "Sales"
    assert opp["value_formatted"] == "$12,000 annual" and opp["value_currency"] == "USD"
    assert (opp["lead_name"], opp["contact_name"]) == ("Acme Corp", "Wile E. Coyote")
    assert opp["user_id"] == "user_alice" and opp["user_name"] == "Alice Anders"
    assert opp["custom.cf_source"] == "Referral"
    assert datetime.fromisoformat(opp["date_created"]).tzinfo is not None
    assert "_tz_offset" not in opp
    assert sim.opportunities[0]["_tz_offset"] == "5.5"

    opportunity_validator().validate(opp)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lead_id": None}, "lead"),
        ({"lead_id": "lead_nope"}, "lead"),
        ({"status_id": "stat_nope"}, "status"),
        ({"status_id": "stat_won", "pipeline_id": "pipe_renewals"}, "status"),
        ({"pipeline_id": "pipe_nope"}, "pipeline"),
        ({"value": 12.5}, "value"),
        ({"value": "1200"}, "value"),
        ({"value_period": "weekly"}, "value_period"),
        ({"confidence": 101}, "confidence"),
        ({"confidence": 50.5}, "confidence"),
        ({"date_won": "2030-02-30"}, "date_won"),
        ({"date_won": "next friday"}, "date_won"),
        ({"user_id": "user_nope"}, "user"),
        ({"user_id": "user_dave"}, "user"),
        ({"contact_id": "cont_globex_hank"}, "contact"),
        ({"custom.cf_source": "Carrier pigeon"}, "custom.cf_source"),
        ({"custom.cf_source": None}, "custom.cf_source"),
        ({"custom.cf_products": "Core"}, "custom.cf_products"),
        ({"custom.cf_products": ["Core", "Nope"]}, "custom.cf_products"),
        ({"custom.cf_seats": "many"}, "custom.cf_seats"),
        ({"custom.cf_contract_start": "soon"}, "custom.cf_contract_start"),
        ({"custom.cf_sales_engineer": "user_nope"}, "custom.cf_sales_engineer"),
        ({"custom.cf_nope": "x"}, "custom.cf_nope"),
    ],
)
async def test_create_validation_like_close(
    sim: CloseSimulator, http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await http.post("opportunity/", json=deal(**body))
    assert response.status_code == 400
    assert set(response.json()["field-errors"]) == {field}
    assert sim.opportunities == []


async def test_missing_lead_id_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("opportunity/", json={"custom.cf_source": "Inbound"})
    assert response.status_code == 400
    assert "lead" in response.json()["field-errors"]


async def test_default_status_follows_the_pipeline(http: httpx.AsyncClient) -> None:
    opp = (await http.post("opportunity/", json=deal(pipeline_id="pipe_renewals"))).json()
    assert (opp["status_id"], opp["pipeline_id"]) == ("stat_renewal_due", "pipe_renewals")
    valid = deal(value=500, value_period="monthly", confidence=0, custom={"x": 1})
    opp = (await http.post("opportunity/", json=valid)).json()
    assert opp["status_label"] == "Lead" and opp["value_formatted"] == "$5 monthly"


@pytest.mark.parametrize("offset", [14, -12])
async def test_won_sets_date_won_today_at_the_users_offset(
    http: httpx.AsyncClient, offset: int
) -> None:
    expected = (datetime.now(UTC) + timedelta(hours=offset)).date().isoformat()
    headers = {"x-tz-offset": str(offset)}
    opp = (await http.post("opportunity/", json=deal(), headers=headers)).json()
    assert opp["date_won"] is None
    won = await http.put(
        f"opportunity/{opp['id']}/", json={"status_id": "stat_won"}, headers=headers
    )
    assert won.json()["date_won"] == expected
    lost = await http.put(f"opportunity/{opp['id']}/", json={"status_id": "stat_lost"})
    assert lost.json()["date_won"] == expected and lost.json()["status_type"] == "lost"
    explicit = deal(status_id="stat_won", date_won="2031-01-01")
    assert (await http.post("opportunity/", json=explicit)).json()["date_won"] == "2031-01-01"


async def test_put_patches_and_validates(http: httpx.AsyncClient) -> None:
    opp = (await http.post("opportunity/", json=deal(note="first"))).json()
    patched = (await http.put(f"opportunity/{opp['id']}/", json={"value": 700})).json()
    assert patched["note"] == "first" and patched["value"] == 700
    bad = await http.put(f"opportunity/{opp['id']}/", json={"custom.cf_source": None})
    assert bad.json()["field-errors"] == {"custom.cf_source": "This field is required."}
    assert (await http.put("opportunity/oppo_nope/", json={})).status_code == 404
    assert (await http.get(f"opportunity/{opp['id']}/")).json()["value"] == 700


async def test_list_opportunities_filters(http: httpx.AsyncClient) -> None:
    await http.post("opportunity/", json=deal(user_id="user_bob"))
    await http.post("opportunity/", json=deal(lead_id="lead_globex"))
    by_lead = (await http.get("opportunity/", params={"lead_id": "lead_acme"})).json()
    assert len(by_lead["data"]) == 1 and by_lead["has_more"] is False
    by_user = (await http.get("opportunity/", params={"user_id": "user_alice"})).json()
    assert [o["lead_id"] for o in by_user["data"]] == ["lead_globex"]
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    later = (await http.get("opportunity/", params={"date_created__gte": future})).json()
    assert later["data"] == []


# --- fault switches ------------------------------------------------------------------------


async def test_rate_limit_switch_shapes(sim: CloseSimulator, http: httpx.AsyncClient) -> None:
    sim.rate_limit(1, reset=0.2)
    first = await http.get("me/")
    assert first.status_code == 429
    assert first.headers["RateLimit"] == "limit=60, remaining=0, reset=0.2"
    sim.rate_limit(1, reset=None, retry_after=1, with_header=False)
    second = await http.get("me/")
    assert second.headers["Retry-After"] == "1" and "RateLimit" not in second.headers
    sim.rate_limit(1, reset=0.7, with_header=False)
    third = await http.get("me/")
    assert "RateLimit" not in third.headers and third.json()["error"]["rate_reset"] == 0.7
    assert (await http.get("me/")).status_code == 200


async def test_fail_targets_paths_and_methods(sim: CloseSimulator, http: httpx.AsyncClient) -> None:
    sim.fail(1, status=503, paths=["/opportunity/"], methods=["POST"])
    assert (await http.get("opportunity/")).status_code == 200
    assert (await http.get("me/")).status_code == 200
    failed = await http.post("opportunity/", json=deal())
    assert failed.status_code == 503 and "error" in failed.json()
    assert (await http.post("opportunity/", json=deal())).status_code == 200
    assert len(sim.opportunities) == 1


async def test_apply_then_hang_stores_before_answering(sim: CloseSimulator) -> None:
    sim.apply_then_hang(1, seconds=2.0)
    timeout = httpx.Timeout(5.0, read=0.2)
    async with httpx.AsyncClient(base_url=sim.base_url, auth=(KEY, ""), timeout=timeout) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("opportunity/", json=deal())
        assert len(sim.opportunities) == 1
        assert (await http.post("opportunity/", json=deal())).status_code == 200


async def test_enforced_budget_announces_remaining(
    sim: CloseSimulator, http: httpx.AsyncClient
) -> None:
    sim.enforce_rate_limit = (2, 5.0)
    first, second, third = [await http.get("me/") for _ in range(3)]
    assert "remaining=1" in first.headers["RateLimit"]
    assert "remaining=0" in second.headers["RateLimit"]
    assert third.status_code == 429 and "remaining=0" in third.headers["RateLimit"]
    assert (await http.get("user/")).status_code == 200  # another endpoint group


async def test_rate_limit_every_and_random_are_deterministic(
    sim: CloseSimulator, http: httpx.AsyncClient
) -> None:
    sim.rate_limit_every(3)
    codes = [(await http.get("me/")).status_code for _ in range(6)]
    assert codes == [200, 200, 429, 200, 200, 429]
    sim.rate_limit_every(None)

    async def pattern() -> list[int]:
        sim.rate_limit_randomly(0.5, seed=7)
        return [(await http.get("me/")).status_code for _ in range(12)]

    runs = [await pattern(), await pattern()]
    assert runs[0] == runs[1] and 429 in runs[0] and 200 in runs[0]


async def test_latency_and_request_log(sim: CloseSimulator, http: httpx.AsyncClient) -> None:
    sim.path_latency["/data/search/"] = 0.2
    started = datetime.now(UTC)
    await http.get("me/")
    assert datetime.now(UTC) - started < timedelta(seconds=0.15)
    await http.post("data/search/", json=search_body("acme"))
    assert datetime.now(UTC) - started >= timedelta(seconds=0.2)
    assert sim.count("POST", "/data/search/") == 1 and sim.count("GET", "/api/v1/me/") == 1
    assert sim.requests[-1].json["_limit"] == 10 and sim.requests[-1].status == 200
    sim.reset_requests()
    assert sim.requests == []


def test_default_org_is_seeded_with_ids() -> None:
    org = default_org()
    assert (org.find(org.leads, "lead_acme") or {}).get("name") == "Acme Corp"
    assert len([c for c in org.contacts if c["lead_id"] == "lead_acme"]) == 3
    assert [s["label"] for s in org.statuses_of("pipe_renewals")] == [
        "Renewal Due",
        "Renewed",
        "Churned",
    ]
    assert value_formatted(4_000_000, "one_time") == "$40,000"
    assert value_formatted(1050, "monthly") == "$10.50 monthly"
