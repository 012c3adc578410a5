"""App Home per person: the recent opportunities are refreshed from Close with the person's own
access (never with the key on behalf of someone who must connect first), and a *Connect Close*
link — a stored state — is minted only where Home shows the button: not under CLOSE_ACCESS=key,
where everything reaches Close with the key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select

from bot.store.tables import OAuthStateRow
from sandbox.close_sim import RecordedRequest
from sandbox.stack import Sandbox, running_sandbox
from tests.flows import open_modal, submit
from tests.oauth_flows import command_answer, connect_link, consent
from tests.test_app_home import confirmed, published_home, sections


@asynccontextmanager
async def sandbox(access: str) -> AsyncIterator[Sandbox]:
    async with running_sandbox(oauth=True, close_access=access) as sb:
        # Close's own change events stay queued: Home cannot take the deals as last told by
        # them, so it asks Close (the path under test).
        sb.close.hold_deliveries()
        yield sb


async def bob_logs_a_deal(sb: Sandbox) -> None:
    walk = await consent(sb.close, await connect_link(sb, "U0BOB"), user="user_bob")
    assert walk.page.status_code == 200, walk.page.text
    view_id = await open_modal(sb, "Globex 5k", user_id="U0BOB")
    mark = sb.slack.mark()
    await submit(sb, view_id, user_id="U0BOB")
    await confirmed(sb, mark)


def opportunity_reads(sb: Sandbox, mark: int) -> list[RecordedRequest]:
    """The reads of one opportunity (not *This week*'s list, `GET /opportunity/`)."""
    return [
        r
        for r in sb.close.requests[mark:]
        if r.method == "GET" and r.path.startswith("/opportunity/") and r.path != "/opportunity/"
    ]


async def states(sb: Sandbox) -> int:
    async with sb.services.engine.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(OAuthStateRow))
    return int(count or 0)


def connect_line(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in view["blocks"] if b.get("block_id") == "close_connection"]


async def test_home_refreshes_a_connected_persons_deals_with_their_own_access() -> None:
    async with sandbox("either") as sb:
        await bob_logs_a_deal(sb)
        mark = len(sb.close.requests)
        view = await published_home(sb, "U0BOB")
        assert "Globex" in json.dumps(sections(view))
        [read] = opportunity_reads(sb, mark)
        token = read.headers["authorization"].removeprefix("Bearer ")
        assert sb.close.bearer_user(token) == "user_bob"


async def test_under_personal_home_of_someone_disconnected_shows_their_deals_without_the_key() -> (
    None
):
    async with sandbox("personal") as sb:
        await bob_logs_a_deal(sb)
        await command_answer(sb.slack, sb.driver, "disconnect", user_id="U0BOB")
        mark = len(sb.close.requests)
        view = await published_home(sb, "U0BOB")
        assert "Globex" in json.dumps(sections(view))  # as last known, from the database
        assert opportunity_reads(sb, mark) == []  # nothing read with the key on his behalf
        assert connect_line(view)  # and he is offered to connect again


async def test_under_key_home_offers_no_connect_button_and_mints_no_state() -> None:
    async with sandbox("key") as sb:
        for _ in range(3):
            view = await published_home(sb, "U0ALICE")
            assert connect_line(view) == []
        assert await states(sb) == 0


async def test_under_either_home_mints_a_link_only_while_the_button_shows() -> None:
    async with sandbox("either") as sb:
        view = await published_home(sb, "U0ALICE")
        assert connect_line(view)[0]["accessory"]["url"]
        assert await states(sb) == 1
        walk = await consent(sb.close, connect_line(view)[0]["accessory"]["url"])
        assert walk.page.status_code == 200, walk.page.text
        view = await published_home(sb, "U0ALICE")  # connected: a line, no button, no state
        assert "Connected to Close as" in json.dumps(connect_line(view))
        assert await states(sb) == 1
