"""Starting the bot for real: the HTTP server, Socket Mode, and the store's maintenance commands."""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.app import build_app
from bot.http import create_http_app
from bot.services import Services
from bot.settings import Settings
from bot.store.db import create_engine, create_schema, session_factory
from bot.store.submissions import SubmissionStore

log = logging.getLogger(__name__)


def serve(settings: Settings, *, host: str = "0.0.0.0", port: int | None = None) -> None:
    services = Services.create(settings)
    http_app = create_http_app(services, build_app(settings, services))
    uvicorn.run(http_app, host=host, port=port or settings.port, log_level="warning")


async def run_socket_mode(settings: Settings) -> None:
    assert settings.slack_app_token is not None
    services = Services.create(settings)
    app = build_app(settings, services)
    await services.start()
    handler = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value())
    try:
        log.info("Connecting to Slack in Socket Mode")
        await handler.start_async()  # type: ignore[no-untyped-call]
    except asyncio.CancelledError:
        pass
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
        await services.stop()


async def migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await create_schema(engine)
    finally:
        await engine.dispose()


async def print_history(settings: Settings, *, user: str | None, limit: int) -> int:
    engine = create_engine(settings.database_url)
    try:
        await create_schema(engine)
        store = SubmissionStore(session_factory(engine), dialect=engine.dialect.name)
        rows = await store.recent(slack_user_id=user, limit=limit)
    finally:
        await engine.dispose()
    if not rows:
        print("No submissions yet.")
        return 0
    for row in rows:
        outcome = row.opportunity_id or row.error or ""
        print(
            f"{row.created_at:%Y-%m-%d %H:%M} {row.state.value:<8} {row.slack_user_id:<12} "
            f"{row.request.lead_name[:40]:<40} attempts={row.attempts} {outcome}"
        )
    return 0
