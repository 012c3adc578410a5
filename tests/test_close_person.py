"""The Close client per person (`CloseClients.for_person`), against the Close simulator's OAuth:
under `key` it is the key's client, untouched; a connected person's requests carry their Bearer
token (over the key client's pool) and see what Close lets them see; a 401 refreshes once and
sends the request again; a second 401 marks the connection broken (CloseAccessBroken); under
`personal` someone not connected gets CloseNotConnected with nothing sent; under `either` a
broken connection never falls back to the key; no token reaches a log or an error text. And
`created_by` with the key: the person the deal is for, unless Close refuses it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.close.client import KEY_VIEW, CloseClient
from bot.close.errors import CloseAccessBroken, CloseError, CloseNotConnected
from bot.close.models import OpportunityCreate
from bot.connections import CloseClients, PersonClose
from sandbox.close_sim import RecordedRequest
from sandbox.stack import Sandbox, running_sandbox
from tests.oauth_flows import connect_link, consent

TEAM = "T0SANDBOX"


@asynccontextmanager
async def sandbox(access: str, *, oauth: bool = True, **overrides: Any) -> AsyncIterator[Sandbox]:
    async with running_sandbox(oauth=oauth, close_access=access, **overrides) as sb:
        yield sb


async def connect(sb: Sandbox, slack_user: str, close_user: str) -> None:
    walk = await consent(sb.close, await connect_link(sb, slack_user), user=close_user)
    assert walk.page.status_code == 200, walk.page.text


def clients(sb: Sandbox) -> CloseClients:
    return sb.services.close_clients


def sent_since(sb: Sandbox, mark: int) -> list[RecordedRequest]:
    """What was sent to Close since `mark`, but the app's own webhook subscription (made in the
    background at start, with the key, as it should be)."""
    return [r for r in sb.close.requests[mark:] if not r.path.startswith("/webhook/")]


def authorization(request: RecordedRequest) -> str:
    return request.headers.get("authorization", "")


def every_token(sb: Sandbox) -> set[str]:
    oauth = sb.close.oauth
    return set(oauth.access) | set(oauth.refresh)


def restrict_bob(sb: Sandbox) -> None:
    """Bob's Close role sees only his own leads: Globex, not Acme (Carol's)."""
    sb.close.restrict("user_bob")
    sb.close.own_lead("lead_globex", "user_bob")
    sb.close.own_lead("lead_acme", "user_carol")


async def test_under_key_everyone_gets_the_key_client_and_no_lookup() -> None:
    async with sandbox("key") as sb:
        await connect(sb, "U0BOB", "user_bob")  # connected, but CLOSE_ACCESS=key
        assert sb.services.access is not None
        looked: list[str] = []
        access = sb.services.access
        # Every way the clients read a connection: what they remember, and the store.
        known, connection = access.known, access.connection

        async def counted_known(slack_user_id: str, *args: Any, **kwargs: Any) -> Any:
            looked.append(slack_user_id)
            return await known(slack_user_id, *args, **kwargs)

        async def counted(slack_user_id: str) -> Any:
            looked.append(slack_user_id)
            return await connection(slack_user_id)

        access.known = counted_known  # type: ignore[method-assign]
        access.connection = counted  # type: ignore[method-assign]
        close = await clients(sb).for_person(TEAM, "U0BOB")
        assert close is sb.services.close and close.view == KEY_VIEW
        mark = len(sb.close.requests)
        assert [lead.id for lead in await close.search_leads("Acme")] == ["lead_acme"]
        assert authorization(sent_since(sb, mark)[0]).startswith("Basic ")
        assert looked == []  # decided without reading anything


async def test_without_oauth_the_default_is_the_key() -> None:
    async with sandbox("key", oauth=False) as sb:
        assert sb.settings.access == "key" and not clients(sb).per_person
        assert await clients(sb).for_person(TEAM, "U0ALICE") is sb.services.close


@pytest.mark.parametrize("access", ["personal", "either"])
async def test_a_connected_person_acts_with_their_bearer_token_over_the_keys_pool(
    access: str,
) -> None:
    async with sandbox(access) as sb:
        restrict_bob(sb)
        await connect(sb, "U0BOB", "user_bob")
        close = await clients(sb).for_person(TEAM, "U0BOB")
        assert isinstance(close, PersonClose) and close.view != KEY_VIEW
        assert close._http is sb.services.close._http  # one pool, not one per person
        assert await clients(sb).for_person(TEAM, "U0BOB") is close  # reused
        mark = len(sb.close.requests)
        assert [lead.id for lead in await close.search_leads("Acme")] == []
        assert [lead.id for lead in await close.search_leads("Globex")] == ["lead_globex"]
        assert await close.list_contacts("lead_acme") == []
        [live] = sb.close.tokens_of("user_bob")
        assert {authorization(r) for r in sent_since(sb, mark)} == {f"Bearer {live}"}
        # The key is untouched: it still sees every lead.
        assert [lead.id for lead in await sb.services.close.search_leads("Acme")] == ["lead_acme"]


async def test_a_401_refreshes_once_and_the_request_goes_again(database_url: str) -> None:
    async with sandbox("personal", database_url=database_url) as sb:
        await connect(sb, "U0BOB", "user_bob")
        close = await clients(sb).for_person(TEAM, "U0BOB")
        await close.me()
        sb.close.revoke_access_only("user_bob")  # Close stops taking the access token early
        mark = len(sb.close.requests)
        me = await close.me()
        assert me.id == "user_bob"
        assert sb.close.refresh_count() == 1
        statuses = [r.status for r in sent_since(sb, mark)]
        assert statuses == [401, 200]
        created = await close.create_opportunity(
            OpportunityCreate(lead_id="lead_globex", custom={"cf_source": "Inbound"}),
            on_behalf_of="user_carol",  # ignored: the token says who creates it
        )
        assert opportunity(sb, created.id)["created_by"] == "user_bob"
        assert "created_by" not in (sent_since(sb, mark)[-1].json or {})


async def test_a_write_close_answered_401_to_is_sent_again_once_and_lands_once() -> None:
    async with sandbox("personal") as sb:
        await connect(sb, "U0BOB", "user_bob")
        close = await clients(sb).for_person(TEAM, "U0BOB")
        await close.me()
        sb.close.revoke_access_only("user_bob")
        before = len(sb.close.opportunities)
        mark = len(sb.close.requests)
        created = await close.create_opportunity(
            OpportunityCreate(lead_id="lead_globex", custom={"cf_source": "Inbound"})
        )
        writes = [r for r in sent_since(sb, mark) if r.path == "/opportunity/"]
        assert [r.status for r in writes] == [401, 200]
        assert len(sb.close.opportunities) == before + 1
        assert opportunity(sb, created.id)["created_by"] == "user_bob"
        assert sb.close.refresh_count() == 1


async def test_a_401_after_the_refresh_breaks_the_connection_with_a_typed_error(
    caplog: pytest.LogCaptureFixture, database_url: str
) -> None:
    caplog.set_level(logging.DEBUG)
    async with sandbox("personal", database_url=database_url) as sb:
        await connect(sb, "U0BOB", "user_bob")
        close = await clients(sb).for_person(TEAM, "U0BOB")
        await close.me()
        sb.close.revoke_access_only("user_bob")
        sb.close.oauth.expires_in = -60  # what the refresh gives is refused too
        mark = len(sb.close.requests)
        with pytest.raises(CloseAccessBroken) as broken:
            await close.search_leads("Globex")
        assert sb.close.refresh_count() == 1  # once, not in a loop
        assert [r.status for r in sent_since(sb, mark)] == [401, 401]
        assert all(authorization(r).startswith("Bearer ") for r in sent_since(sb, mark))
        # Broken now: the next ask says so at once, and nothing goes with the key instead.
        mark = len(sb.close.requests)
        with pytest.raises(CloseAccessBroken):
            await clients(sb).for_person(TEAM, "U0BOB")
        assert sent_since(sb, mark) == []
        texts = caplog.text + str(broken.value) + repr(broken.value) + repr(close)
        assert not [token for token in every_token(sb) if token in texts]
        assert "Refreshed the Close token" in caplog.text  # the log was captured
        assert "sim_at_" not in texts and "sim_rt_" not in texts  # no token, spent or live


async def test_under_personal_someone_not_connected_gets_a_typed_error_and_nothing_is_sent() -> (
    None
):
    async with sandbox("personal") as sb:
        mark = len(sb.close.requests)
        with pytest.raises(CloseNotConnected) as refused:
            await clients(sb).for_person(TEAM, "U0CAROL")
        assert refused.value.slack_user_id == "U0CAROL"
        assert sent_since(sb, mark) == []


async def test_under_either_not_connected_is_the_key_and_broken_is_never_the_key(
    database_url: str,
) -> None:
    async with sandbox("either", database_url=database_url) as sb:
        assert await clients(sb).for_person(TEAM, "U0CAROL") is sb.services.close
        await connect(sb, "U0BOB", "user_bob")
        close = await clients(sb).for_person(TEAM, "U0BOB")
        assert isinstance(close, PersonClose)
        sb.close.revoke("user_bob")  # refresh token too: invalid_grant
        sb.close.revoke_access_only("user_bob")
        mark = len(sb.close.requests)
        with pytest.raises(CloseAccessBroken):
            await close.search_leads("Acme")
        with pytest.raises(CloseAccessBroken):
            await clients(sb).for_person(TEAM, "U0BOB")
        assert not [r for r in sent_since(sb, mark) if authorization(r).startswith("Basic ")]
        # Disconnecting (not the breakage) is what returns them to the key.
        assert sb.services.access is not None
        await sb.services.access.disconnect(TEAM, "U0BOB")
        assert await clients(sb).for_person(TEAM, "U0BOB") is sb.services.close


async def test_the_key_creates_on_a_persons_behalf_with_created_by() -> None:
    async with sandbox("key", oauth=False) as sb:
        close: CloseClient = await clients(sb).for_person(TEAM, "U0BOB")
        body = OpportunityCreate(lead_id="lead_acme", custom={"cf_source": "Inbound"})
        created = await close.create_opportunity(body, on_behalf_of="user_bob")
        assert opportunity(sb, created.id)["created_by"] == "user_bob"
        assert sb.close.requests[-1].json["created_by"] == "user_bob"
        assert close.attribution.accepted is True
        plain = await close.create_opportunity(body)  # nobody named: the key's owner
        assert opportunity(sb, plain.id)["created_by"] == "user_alice"


async def test_when_close_refuses_created_by_from_the_key_the_deal_goes_without_it() -> None:
    async with sandbox("key", oauth=False) as sb:
        sb.close.refuse_created_by_with_key = True
        close = sb.services.close
        body = OpportunityCreate(lead_id="lead_acme", custom={"cf_source": "Inbound"})
        mark = len(sb.close.requests)
        created = await close.create_opportunity(body, on_behalf_of="user_bob")
        assert opportunity(sb, created.id)["created_by"] == "user_alice"
        sent = sent_since(sb, mark)
        assert [r.status for r in sent] == [400, 200]
        assert "created_by" in sent[0].json and "created_by" not in sent[1].json
        assert close.attribution.accepted is False
        # Not tried again by this process: one request per deal from now on.
        mark = len(sb.close.requests)
        await close.create_opportunity(body, on_behalf_of="user_bob")
        assert [r.status for r in sent_since(sb, mark)] == [200]
        # Other field errors are the caller's, as before.
        with pytest.raises(CloseError):
            await close.create_opportunity(
                body.model_copy(update={"confidence": None, "lead_id": "lead_nope"}),
                on_behalf_of="user_bob",
            )


def opportunity(sb: Sandbox, opportunity_id: str) -> dict[str, Any]:
    [found] = [o for o in sb.close.opportunities if o["id"] == opportunity_id]
    return found


@pytest.mark.parametrize("access", ["key", "either", "personal"])
async def test_the_create_seam_creates_as_the_person_whatever_their_access(access: str) -> None:
    async with sandbox(access) as sb:
        body = OpportunityCreate(lead_id="lead_acme", custom={"cf_source": "Inbound"})
        if access == "personal":
            mark = len(sb.close.requests)
            with pytest.raises(CloseNotConnected):
                await clients(sb).create_opportunity(TEAM, "U0BOB", body, close_user_id="user_bob")
            assert sent_since(sb, mark) == []
        else:  # with the key: Bob as its creator
            created = await clients(sb).create_opportunity(
                TEAM, "U0BOB", body, close_user_id="user_bob", tz_offset_hours=-5
            )
            assert opportunity(sb, created.id)["created_by"] == "user_bob"
            assert sb.close.requests[-1].headers["authorization"].startswith("Basic ")
        await connect(sb, "U0BOB", "user_bob")
        created = await clients(sb).create_opportunity(
            TEAM, "U0BOB", body, close_user_id="user_bob"
        )
        assert opportunity(sb, created.id)["created_by"] == "user_bob"
        sent = sb.close.requests[-1]
        expected = "Basic " if access == "key" else "Bearer "
        assert sent.headers["authorization"].startswith(expected)
        assert ("created_by" in sent.json) == (access == "key")
