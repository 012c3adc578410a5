"""What the operations endpoints say: is this process ready to serve (/readyz), its metrics."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from bot.parsing import is_warm
from bot.services import Services
from bot.stats import store_numbers
from bot.store.db import session_factory

READY_TIMEOUT_SECONDS = 2.0


async def readiness(services: Services) -> dict[str, str]:
    """What stops this process from serving: empty when it is ready (GET /readyz)."""
    problems: dict[str, str] = {}
    if services.stopping_since is not None:
        problems["process"] = "shutting down"
    if services.warm_up.running:
        problems["warm-up"] = "warming up (Slack, Close's catalog, the parser); ready once over"
    if not services.catalog.loaded:
        problems["catalog"] = "Close's pipelines, statuses and users have not loaded yet"
    if not is_warm():
        problems["parser"] = "still loading its languages' dates and numbers"
    try:
        await asyncio.wait_for(_ping_database(services), READY_TIMEOUT_SECONDS)
    except Exception as error:
        problems["database"] = f"unreachable ({type(error).__name__})"
    return problems


async def _ping_database(services: Services) -> None:
    async with services.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def scrape_metrics(services: Services, accept: str = "") -> tuple[bytes, str]:
    """GET /metrics: this process's counters and the store's numbers, read now."""
    poller = services.sync.poller
    read_at = poller.last_read_at if poller is not None else None
    loaded_at = services.catalog.loaded_at
    return await services.metrics.scrape(
        lambda: store_numbers(session_factory(services.engine), now=services.clock()),
        catalog_loaded_at=loaded_at.timestamp() if loaded_at is not None else None,
        sync_mode=services.sync.mode,
        event_log_read_at=read_at.timestamp() if read_at is not None else None,
        in_flight=services.worker.in_flight,
        accept=accept,
    )
