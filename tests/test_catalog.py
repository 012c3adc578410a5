"""The Close catalog: loads from the simulator, answers lookups from memory, rides out outages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from bot.close.catalog import NO_PIPELINE, Catalog
from bot.close.client import CloseClient
from bot.close.errors import CloseUnavailable
from sandbox.close_sim import CloseSimulator, Org, default_org
from sandbox.server import bind_free_port

KEY = "api_sandbox.key"


@pytest.fixture
async def sim() -> AsyncIterator[CloseSimulator]:
    async with CloseSimulator(api_key=KEY) as simulator:
        yield simulator


def client_for(base_url: str, attempts: int = 4) -> CloseClient:
    return CloseClient(KEY, base_url, retry_attempts=attempts, retry_backoff=0.01)


async def loaded_catalog(sim: CloseSimulator) -> tuple[Catalog, CloseClient]:
    close = client_for(sim.base_url)
    catalog = Catalog(close)
    await catalog.refresh()
    return catalog, close


async def test_loads_everything_and_answers_from_memory(sim: CloseSimulator) -> None:
    catalog, close = await loaded_catalog(sim)
    async with close:
        assert catalog.loaded and catalog.loaded_at is not None
        assert [p.id for p in catalog.pipelines] == ["pipe_sales", "pipe_renewals"]
        assert len(catalog.statuses) == 9 and len(catalog.users) == 4
        assert len(catalog.custom_fields) == 7
        sim.reset_requests()

        won = catalog.status("stat_won")
        assert won is not None and won.type == "won" and won.pipeline_id == "pipe_sales"
        assert catalog.status("stat_nope") is None
        assert catalog.pipeline("pipe_renewals") is not None
        renewals = catalog.pipeline_for_status("stat_renewed")
        assert renewals is not None and renewals.name == "Renewals"
        by_label = catalog.status_by_label("  proposal SENT ")
        assert by_label is not None and by_label.id == "stat_proposal"
        assert catalog.status_by_label("Negotiation") is None
        bob = catalog.user_by_email(" Bob@Example.COM ")
        assert bob is not None and bob.id == "user_bob"
        assert catalog.user("user_carol") is not None and catalog.user_by_email("x@y.z") is None
        default = catalog.default_status()
        assert default is not None and default.id == "stat_lead"
        groups = catalog.statuses_by_pipeline()
        assert [(p.name, [s.label for s in ss][:1]) for p, ss in groups] == [
            ("Sales", ["Lead"]),
            ("Renewals", ["Renewal Due"]),
        ]
        source = catalog.custom_field("cf_source")
        assert source is not None and source.required
        assert sim.requests == []  # lookups never reach Close


async def test_ambiguous_label_prefers_the_first_pipeline(sim: CloseSimulator) -> None:
    # Listed first in /status/opportunity/, but its pipeline comes second.
    renewals = {"id": "stat_renew_neg", "label": "Negotiation", "pipeline_id": "pipe_renewals"}
    sales = {"id": "stat_sales_neg", "label": "Negotiation", "pipeline_id": "pipe_sales"}
    sim.org.statuses.insert(0, {**renewals, "type": "active"})
    sim.org.statuses.append({**sales, "type": "active"})
    catalog, close = await loaded_catalog(sim)
    async with close:
        found = catalog.status_by_label("negotiation")
    assert found is not None and found.id == "stat_sales_neg"


async def test_statuses_without_pipelines_form_a_synthetic_group() -> None:
    org = default_org()
    org.pipelines.clear()
    for status in org.statuses:
        status["pipeline_id"] = None
    async with CloseSimulator(api_key=KEY, org=org) as sim:
        catalog, close = await loaded_catalog(sim)
        await close.aclose()
    groups = catalog.statuses_by_pipeline()
    assert [p for p, _ in groups] == [NO_PIPELINE]
    assert len(groups[0][1]) == 9
    assert catalog.pipeline_for_status("stat_won") is None
    default = catalog.default_status()
    assert default is not None and default.id == "stat_lead"


async def test_empty_org_has_no_default_status() -> None:
    org = Org(id="orga_empty", name="Empty", me_user_id="user_x")
    async with CloseSimulator(api_key=KEY, org=org) as sim:
        catalog, close = await loaded_catalog(sim)
        await close.aclose()
    assert catalog.loaded and catalog.default_status() is None
    assert catalog.statuses_by_pipeline() == []


async def test_failed_refresh_keeps_the_last_good_copy(sim: CloseSimulator) -> None:
    catalog, close = await loaded_catalog(sim)
    async with close:
        first_loaded_at = catalog.loaded_at
        sim.org.users.append({"id": "user_new", "email": "new@example.com"})
        sim.fail(100, status=503)
        with pytest.raises(CloseUnavailable):
            await catalog.refresh()
    assert catalog.loaded and catalog.loaded_at == first_loaded_at
    assert catalog.user("user_new") is None and len(catalog.users) == 4


async def test_starts_while_close_fails_then_loads(
    sim: CloseSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.fail(3, status=503)
    async with client_for(sim.base_url, attempts=1) as close:
        catalog = Catalog(close, refresh_seconds=60)
        await catalog.start()
        try:
            assert await catalog.wait_loaded(5.0)
        finally:
            await catalog.stop()
    assert catalog.user_by_email("alice@example.com") is not None
    warnings = [r for r in caplog.records if r.name == "bot.close.catalog"]
    assert warnings and all(r.levelno == logging.WARNING and r.exc_info is None for r in warnings)
    assert KEY not in caplog.text


async def test_starts_before_close_is_listening() -> None:
    sock = bind_free_port()
    port = sock.getsockname()[1]
    sock.close()
    async with client_for(f"http://127.0.0.1:{port}/api/v1/", attempts=1) as close:
        catalog = Catalog(close)
        await catalog.start()
        try:
            assert not await catalog.wait_loaded(0.3)
            assert not catalog.loaded and catalog.statuses_by_pipeline() == []
            sim = CloseSimulator(api_key=KEY)
            await sim.start(port=port)
            try:
                assert await catalog.wait_loaded(5.0)
            finally:
                await sim.stop()
        finally:
            await catalog.stop()


async def test_background_task_refreshes_periodically(sim: CloseSimulator) -> None:
    async with client_for(sim.base_url) as close:
        catalog = Catalog(close, refresh_seconds=0.1)
        await catalog.start()
        try:
            assert await catalog.wait_loaded(5.0)
            sim.org.users.append({"id": "user_new", "email": "new@example.com"})
            for _ in range(50):
                if catalog.user("user_new") is not None:
                    break
                await asyncio.sleep(0.05)
        finally:
            await catalog.stop()
    assert catalog.user("user_new") is not None
