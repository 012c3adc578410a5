"""The worker creates a person's stored submission with their own Close access: Close shows
them as its creator, an expired token is refreshed once on the way, and a connection Close no
longer takes leaves the submission waiting — never created with the key, never lost — until
they connect again, after which it is created as them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.blocks.messages import EDIT_ACTION_ID, WON_ACTION_ID
from bot.deals.service import ACCESS_WAIT
from sandbox.slack_sim import Call
from sandbox.stack import Sandbox, running_sandbox
from tests.flows import open_modal, submit, wait_opportunities, wait_until
from tests.oauth_flows import connect_link, consent, posted


@asynccontextmanager
async def sandbox(access: str, **overrides: Any) -> AsyncIterator[Sandbox]:
    async with running_sandbox(oauth=True, close_access=access, **overrides) as sb:
        sb.close.restrict("user_bob")  # Bob's Close role sees only his own leads
        sb.close.own_lead("lead_globex", "user_bob")
        walk = await consent(sb.close, await connect_link(sb, "U0BOB"), user="user_bob")
        assert walk.page.status_code == 200, walk.page.text
        yield sb


@pytest.mark.parametrize("access", ["personal", "either"])
async def test_a_stored_submission_after_its_token_expired_is_created_as_the_rep_with_one_refresh(
    access: str,
) -> None:
    async with sandbox(access) as sb:
        view_id = await open_modal(sb, "Globex 5k", user_id="U0BOB")
        refreshes = sb.close.refresh_count()
        sb.close.expire_access_tokens("user_bob")  # expired while the submission waits
        await submit(sb, view_id, user_id="U0BOB")
        [opportunity] = await wait_opportunities(sb, 1)
        assert opportunity["lead_id"] == "lead_globex"
        assert opportunity["created_by"] == "user_bob"  # Close shows the rep, not the key
        assert sb.close.refresh_count() - refreshes == 1


async def test_a_revoked_connection_leaves_the_submission_waiting_then_it_goes_on_after_reconnecting() -> (
    None
):
    async with sandbox("either") as sb:
        view_id = await open_modal(sb, "Globex 5k", user_id="U0BOB")
        sb.close.revoke("user_bob")  # Bob removed the app in Close: no token of his works
        since = len(sb.slack.calls())
        await submit(sb, view_id, user_id="U0BOB")

        async def waiting() -> bool:
            [entry] = await sb.services.store.recent(slack_user_id="U0BOB", limit=1)
            return entry.state == "pending" and "connect Close again" in (entry.error or "")

        await wait_until(waiting)
        await sb.slack.wait_for("chat.postMessage", lambda c: "Reconnect" in str(c.params))

        async def looked_again() -> bool:
            [entry] = await sb.services.store.recent(slack_user_id="U0BOB", limit=1)
            return entry.attempts >= 3 and entry.state == "pending"

        # Looked at again while it waits (the retry ceiling is short here): still waiting.
        await wait_until(looked_again)
        assert sb.close.opportunities == []  # never with the key on his behalf
        walk = await consent(sb.close, await connect_link(sb, "U0BOB"), user="user_bob")
        assert walk.page.status_code == 200, walk.page.text
        [opportunity] = await wait_opportunities(sb, 1, timeout=10.0)
        assert opportunity["created_by"] == "user_bob"
        reconnect_prompts = [
            call for call in posted(sb, since=since) if "Reconnect" in str(call.params)
        ]
        assert len(reconnect_prompts) == 1


@pytest.mark.parametrize("access", ["personal", "either"])
async def test_reconnecting_resumes_the_waiting_submissions_at_once_not_at_their_next_look(
    access: str, database_url: str
) -> None:
    # A retry ceiling as in production: a waiting submission is looked at again only after
    # ACCESS_WAIT (60 s), so only the reconnect itself can make it go on within seconds.
    wait = ACCESS_WAIT.total_seconds()
    async with sandbox(access, database_url=database_url, retry_max_seconds=wait) as sb:
        # Two different deals: identical ones retried at the same instant can reconcile to one
        # opportunity (a race of the reconciliation, not of this).
        view_ids = [await open_modal(sb, f"Globex {k}k", user_id="U0BOB") for k in (5, 7)]
        sb.close.revoke("user_bob")
        for view_id in view_ids:
            await submit(sb, view_id, user_id="U0BOB")

        async def both_waiting() -> bool:
            entries = await sb.services.store.recent(slack_user_id="U0BOB", limit=2)
            return len(entries) == 2 and all(
                e.state == "pending" and "connect Close again" in (e.error or "") for e in entries
            )

        await wait_until(both_waiting)
        assert sb.close.opportunities == []
        walk = await consent(sb.close, await connect_link(sb, "U0BOB"), user="user_bob")
        assert walk.page.status_code == 200, walk.page.text
        created = await wait_opportunities(sb, 2, timeout=wait / 6)  # 10 s, not the 60 s wait
        assert [o["created_by"] for o in created] == ["user_bob", "user_bob"]
        assert sorted(o["value"] for o in created) == [500_000, 700_000]


async def _log_as_bob(sb: Sandbox) -> Call:
    """Bob logs a Globex deal (created as him); returns its details post (the buttons)."""
    view_id = await open_modal(sb, "Globex 5k", user_id="U0BOB")
    mark = sb.slack.mark()
    await submit(sb, view_id, user_id="U0BOB")
    await wait_opportunities(sb, 1)
    return await sb.slack.wait_for(
        "chat.postMessage",
        lambda c: c.ok and WON_ACTION_ID in json.dumps(c.params.get("blocks")),
        since=mark,
    )


async def _press_won(sb: Sandbox, details: Call) -> None:
    result = await sb.driver.press_button(
        channel_id=details.response["channel"],
        message_ts=details.response["ts"],
        action_id=WON_ACTION_ID,
        user_id="U0BOB",
    )
    assert result.response.status_code == 200, result.response.text


async def test_won_from_slack_is_saved_in_close_as_the_person_who_pressed_it() -> None:
    async with sandbox("either") as sb:
        details = await _log_as_bob(sb)
        [opportunity] = sb.close.opportunities
        await _press_won(sb, details)
        await wait_until(lambda: opportunity["status_id"] == "stat_won")
        [put] = [r for r in sb.close.requests if r.method == "PUT"]
        assert sb.close.bearer_user(put.headers["authorization"].removeprefix("Bearer ")) == (
            "user_bob"
        )


async def test_won_with_a_revoked_connection_is_not_saved_with_the_key_and_says_to_reconnect() -> (
    None
):
    async with sandbox("either") as sb:
        details = await _log_as_bob(sb)
        sb.close.revoke("user_bob")
        mark = sb.slack.mark()
        await _press_won(sb, details)
        told = await sb.slack.wait_for(
            "chat.postEphemeral", lambda c: c.params.get("user") == "U0BOB", since=mark
        )
        assert "reconnect" in told.params["text"]
        assert [r for r in sb.close.requests if r.method == "PUT"] == []
        [opportunity] = sb.close.opportunities
        assert opportunity["status_id"] != "stat_won"


async def test_an_edit_that_moves_the_deal_to_a_new_lead_makes_that_lead_as_the_editor() -> None:
    async with sandbox("personal") as sb:
        details = await _log_as_bob(sb)
        result = await sb.driver.press_button(
            channel_id=details.response["channel"],
            message_ts=details.response["ts"],
            action_id=EDIT_ACTION_ID,
            user_id="U0BOB",
        )
        view = await sb.driver.wait_for_view(result.trigger_id)
        await sb.slack.wait_for("views.update", lambda c: c.params.get("view_id") == view["id"])
        mark = len(sb.close.requests)
        response = await sb.driver.submit_view(
            view["id"], values={"lead": "new:Brand New Prospects"}, user_id="U0BOB"
        )
        assert response.status_code == 200, response.text
        await wait_until(lambda: any(r.method == "PUT" for r in sb.close.requests[mark:]))
        [made] = [r for r in sb.close.requests[mark:] if r.method == "POST" and r.path == "/lead/"]
        token = made.headers["authorization"].removeprefix("Bearer ")
        assert sb.close.bearer_user(token) == "user_bob"  # not the key, on his behalf


async def test_the_edit_modal_is_loaded_from_close_as_the_person_who_edits() -> None:
    async with sandbox("personal") as sb:
        details = await _log_as_bob(sb)
        [opportunity] = sb.close.opportunities
        mark = len(sb.close.requests)
        result = await sb.driver.press_button(
            channel_id=details.response["channel"],
            message_ts=details.response["ts"],
            action_id=EDIT_ACTION_ID,
            user_id="U0BOB",
        )
        view = await sb.driver.wait_for_view(result.trigger_id)
        await sb.slack.wait_for("views.update", lambda c: c.params.get("view_id") == view["id"])
        reads = [
            r
            for r in sb.close.requests[mark:]
            if r.method == "GET"
            and (r.path == f"/opportunity/{opportunity['id']}/" or r.path == "/contact/")
        ]
        assert reads, [r.path for r in sb.close.requests[mark:]]
        for read in reads:  # the opportunity and its lead's contacts: his view, not the key's
            token = read.headers["authorization"].removeprefix("Bearer ")
            assert sb.close.bearer_user(token) == "user_bob", read.path
