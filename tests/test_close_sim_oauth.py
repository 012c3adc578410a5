"""The Close simulator's OAuth, seen with a plain HTTP client: consent (grant, decline, another
organization), the code exchange, refresh with rotation, revocation, Bearer calls acting as the
person, and a restricted person seeing only their own leads. The API key path is unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from sandbox.close_sim import CloseSimulator

KEY = "api_sandbox.key"
REDIRECT = "https://bot.example.com/close/oauth/callback"


@pytest.fixture
async def sim() -> AsyncIterator[CloseSimulator]:
    async with CloseSimulator(api_key=KEY) as simulator:
        yield simulator


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def authorize(sim: CloseSimulator, **choice: str) -> dict[str, str]:
    """The consent page answered: the query Close sends the browser back with."""
    params = {
        "client_id": sim.oauth.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "state": "st4te",
        **choice,
    }
    async with httpx.AsyncClient() as http:
        answer = await http.get(sim.oauth_authorize_url + "?" + urlencode(params))
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return _query(location)


async def token(sim: CloseSimulator, **fields: str) -> httpx.Response:
    form = {"client_id": sim.oauth.client_id, "client_secret": sim.oauth.client_secret, **fields}
    async with httpx.AsyncClient() as http:
        return await http.post(sim.oauth_token_url, data=form)


async def connect(sim: CloseSimulator, user: str) -> dict[str, Any]:
    back = await authorize(sim, user=user, decision="grant")
    answer = await token(
        sim, grant_type="authorization_code", code=back["code"], redirect_uri=REDIRECT
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def bearer(sim: CloseSimulator, access_token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=sim.base_url, headers={"Authorization": f"Bearer {access_token}"}
    )


async def test_consent_page_offers_the_org_members_and_both_answers(sim: CloseSimulator) -> None:
    params = {"client_id": sim.oauth.client_id, "response_type": "code", "redirect_uri": REDIRECT}
    async with httpx.AsyncClient() as http:
        page = await http.get(sim.oauth_authorize_url + "?" + urlencode(params))
        unknown = await http.get(
            sim.oauth_authorize_url + "?" + urlencode({**params, "client_id": "nope"})
        )
        posted = await http.post(
            sim.oauth_authorize_url,
            data={**params, "state": "s", "user": "user_bob", "decision": "grant"},
        )
    assert page.status_code == 200 and "bob@example.com" in page.text and "Deny" in page.text
    assert unknown.status_code == 400
    assert posted.status_code == 302 and "code=" in posted.headers["location"]
    declined = await authorize(sim, decision="deny")
    assert declined == {"error": "access_denied", "state": "st4te"}


async def test_code_exchange_answers_close_s_token_shape_once(sim: CloseSimulator) -> None:
    back = await authorize(sim, user="user_bob", decision="grant")
    assert back["state"] == "st4te"
    answer = await token(sim, grant_type="authorization_code", code=back["code"])
    body = answer.json()
    assert answer.status_code == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "all.full_access offline_access"
    assert (body["user_id"], body["organization_id"]) == ("user_bob", "orga_sandbox")
    assert body["access_token"] and body["refresh_token"]
    again = await token(sim, grant_type="authorization_code", code=back["code"])
    assert again.status_code == 400 and again.json() == {"error": "invalid_grant"}
    wrong_secret = await token(
        sim, grant_type="authorization_code", code="x", client_secret="not-it"
    )
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"


async def test_another_organization_s_tokens_name_it(sim: CloseSimulator) -> None:
    back = await authorize(sim, user="user_zoe", organization="orga_elsewhere", decision="grant")
    body = (await token(sim, grant_type="authorization_code", code=back["code"])).json()
    assert (body["user_id"], body["organization_id"]) == ("user_zoe", "orga_elsewhere")
    async with bearer(sim, body["access_token"]) as http:
        assert (await http.get("me/")).status_code == 401  # not a token of this org


async def test_refresh_rotates_and_the_old_refresh_token_then_fails(sim: CloseSimulator) -> None:
    first = await connect(sim, "user_alice")
    second = await token(sim, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second.status_code == 200
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"]
    assert new["access_token"] != first["access_token"]
    reused = await token(sim, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert reused.status_code == 400 and reused.json() == {"error": "invalid_grant"}
    assert sim.refresh_count() == 2 and sim.refresh_count("invalid_grant") == 1


async def test_short_lived_tokens_expire_and_revocation_ends_them_all(sim: CloseSimulator) -> None:
    sim.oauth.expires_in = 0.2
    body = await connect(sim, "user_alice")
    assert body["expires_in"] == 0.2
    async with bearer(sim, body["access_token"]) as http:
        assert (await http.get("me/")).status_code == 200
        sim.expire_access_tokens()
        refused = await http.get("me/")
    assert refused.status_code == 401
    sim.revoke("user_alice")
    refresh = await token(sim, grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert refresh.json() == {"error": "invalid_grant"}


async def test_bearer_calls_act_as_the_person_who_connected(sim: CloseSimulator) -> None:
    body = await connect(sim, "user_carol")
    async with bearer(sim, body["access_token"]) as http:
        me = (await http.get("me/")).json()
        created = await http.post(
            "opportunity/", json={"lead_id": "lead_acme", "custom.cf_source": "Referral"}
        )
        opp = created.json()
        updated = await http.put(f"opportunity/{opp['id']}/", json={"confidence": 40})
    assert me["id"] == "user_carol" and me["organizations"][0]["id"] == "orga_sandbox"
    assert created.status_code == 200, created.text
    assert opp["created_by"] == "user_carol" and opp["user_id"] == "user_carol"
    assert updated.json()["updated_by"] == "user_carol"
    events = [e for e in sim.events if e["object_id"] == opp["id"]]
    assert {e["user_id"] for e in events} == {"user_carol"}
    assert {e["api_key_id"] for e in events} == {None}
    # The key still acts as its owner, as before.
    async with httpx.AsyncClient(base_url=sim.base_url, auth=(KEY, "")) as http:
        keyed = await http.post(
            "opportunity/", json={"lead_id": "lead_acme", "custom.cf_source": "Referral"}
        )
    assert keyed.json()["created_by"] == sim.org.me_user_id


async def test_a_restricted_person_sees_only_the_leads_they_own(sim: CloseSimulator) -> None:
    sim.restrict("user_bob")
    sim.own_lead("lead_acme", "user_bob")
    body = await connect(sim, "user_bob")
    other_lead = next(lead["id"] for lead in sim.org.leads if lead["id"] != "lead_acme")
    async with httpx.AsyncClient(base_url=sim.base_url, auth=(KEY, "")) as keyed:
        everything = (await keyed.get("lead/", params={"query": ""})).json()["data"]
        mine_by_key = await keyed.post(
            "opportunity/", json={"lead_id": other_lead, "custom.cf_source": "Referral"}
        )
    assert len(everything) > 1 and mine_by_key.status_code == 200
    async with bearer(sim, body["access_token"]) as http:
        listed = (await http.get("lead/", params={"query": ""})).json()["data"]
        searched = (
            await http.post(
                "data/search/",
                json={
                    "query": {"type": "object_type", "object_type": "lead"},
                    "_fields": {"lead": ["id", "name"]},
                },
            )
        ).json()["data"]
        own = await http.get("lead/lead_acme/")
        hidden = await http.get(f"lead/{other_lead}/")
        hidden_opp = await http.get(f"opportunity/{mine_by_key.json()['id']}/")
        opps = (await http.get("opportunity/")).json()["data"]
        refused = await http.post(
            "opportunity/", json={"lead_id": other_lead, "custom.cf_source": "Referral"}
        )
        new_lead = (await http.post("lead/", json={"name": "Bob's Own Co"})).json()
        sees_new = await http.get(f"lead/{new_lead['id']}/")
    assert [lead["id"] for lead in listed] == ["lead_acme"]
    assert [lead["id"] for lead in searched] == ["lead_acme"]
    assert own.status_code == 200
    assert hidden.status_code == 404 and hidden_opp.status_code == 404
    assert all(o["lead_id"] == "lead_acme" for o in opps)
    assert refused.status_code == 400
    assert sees_new.status_code == 200  # what they create is theirs
