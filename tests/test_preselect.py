"""Lead preselection after views.open: no "Create new lead" when Close fails, one search per name a minute."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.close.client import CloseClient
from bot.leads.search import LeadSearch
from sandbox.close_sim import CloseSimulator
from sandbox.stack import CLOSE_API_KEY, Sandbox
from tests.flows import open_modal

pytestmark = pytest.mark.asyncio


def lead_block(sb: Sandbox, view_id: str) -> dict[str, Any]:
    return next(b for b in sb.slack.views[view_id]["blocks"] if b.get("block_id") == "lead")


def searches(sb: Sandbox) -> int:
    return sb.close.count("POST", "/data/search/") + sb.close.count("GET", "/lead/")


async def test_a_failing_search_leaves_the_lead_empty_with_a_hint(sandbox: Sandbox) -> None:
    sandbox.close.fail(50, status=500, paths=["/data/search/", "/lead/"], methods=["GET", "POST"])
    view_id = await open_modal(sandbox, "Acme Corp 12k")
    block = lead_block(sandbox, view_id)
    assert "initial_option" not in block["element"]  # not "Create new lead: Acme Corp"
    assert block["hint"]["text"] == "Couldn't reach Close to find “Acme Corp”: type to pick it."
    assert searches(sandbox) >= 1  # it did ask


async def test_the_same_lead_within_a_minute_makes_no_second_search(sandbox: Sandbox) -> None:
    first = await open_modal(sandbox, "Acme Corp 12k")
    assert lead_block(sandbox, first)["element"]["initial_option"]["value"] == "lead_acme"
    asked = searches(sandbox)
    assert asked == 1
    second = await open_modal(sandbox, "acme corp 30k", user_id="U0BOB")
    assert lead_block(sandbox, second)["element"]["initial_option"]["value"] == "lead_acme"
    assert searches(sandbox) == asked  # answered from the last minute's lookup
    # Its contacts are still Close's, fetched for this modal.
    contact = next(
        b for b in sandbox.slack.views[second]["blocks"] if b.get("block_id") == "contact"
    )
    assert len(contact["element"]["options"]) == 3


async def test_a_remembered_no_such_lead_is_asked_again(sandbox: Sandbox) -> None:
    """The first user creates "Zephyr Labs"; the next command must not offer to create it twice."""
    first = await open_modal(sandbox, "Zephyr Labs 5k")
    assert lead_block(sandbox, first)["element"]["initial_option"]["value"] == "new:Zephyr Labs"
    sandbox.close.org.add_lead("Zephyr Labs", lead_id="lead_zephyr")
    second = await open_modal(sandbox, "Zephyr Labs 6k", user_id="U0BOB")
    assert lead_block(sandbox, second)["element"]["initial_option"]["value"] == "lead_zephyr"
    assert searches(sandbox) == 2


# --- LeadSearch.fresh / lookup on their own -----------------------------------------------------


@pytest.fixture
async def close_sim() -> Any:
    sim = CloseSimulator(api_key=CLOSE_API_KEY)
    await sim.start()
    yield sim
    await sim.stop()


async def test_fresh_answers_expire_and_lookups_in_flight_are_shared(
    close_sim: CloseSimulator,
) -> None:
    now = [1000.0]
    async with CloseClient(CLOSE_API_KEY, close_sim.base_url) as close:
        search = LeadSearch(close, fresh_seconds=60.0, clock=lambda: now[0])
        close_sim.path_latency["/data/search/"] = 0.2
        together = await asyncio.gather(*(search.lookup("Globex", timeout=2.0) for _ in range(5)))
        assert all([lead.id for lead in found] == ["lead_globex"] for found in together)
        assert close_sim.count("POST", "/data/search/") == 1
        fresh = search.fresh("  GLOBEX ")
        assert fresh is not None and [lead.id for lead in fresh] == ["lead_globex"]
        now[0] += 61
        assert search.fresh("globex") is None


async def test_a_late_lookup_raises_and_its_answer_is_remembered(close_sim: CloseSimulator) -> None:
    async with CloseClient(CLOSE_API_KEY, close_sim.base_url) as close:
        search = LeadSearch(close)
        close_sim.path_latency["/data/search/"] = 0.3
        with pytest.raises(TimeoutError):
            await search.lookup("Initech", timeout=0.05)
        assert search.fresh("initech") is None
        for _ in range(250):  # Close answers after its 0.3 s (polled up to ~5 s)
            if search.fresh("initech") is not None:
                break
            await asyncio.sleep(0.02)
        fresh = search.fresh("initech")
        assert fresh is not None and [lead.id for lead in fresh] == ["lead_initech"]
