"""Starting the bot for real: the HTTP server, Socket Mode, and the store's maintenance commands."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from collections.abc import Sequence
from typing import Literal

import uvicorn
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.app import build_app
from bot.http import create_http_app
from bot.services import Services
from bot.settings import Settings
from bot.store.changes import ChangeStore, StoredChange
from bot.store.db import create_engine, session_factory
from bot.store.migrate import current_revision, upgrade
from bot.store.submissions import AuditEntry, SubmissionStore

log = logging.getLogger(__name__)


def serve(settings: Settings, *, host: str = "0.0.0.0", port: int | None = None) -> None:
    services = Services.create(settings)
    http_app = create_http_app(services, build_app(settings, services))
    loop, http = server_stack()
    # No websockets: Slack only POSTs to us, and not loading that stack saves memory.
    uvicorn.run(
        http_app,
        host=host,
        port=port or settings.port,
        log_level="warning",
        loop=loop,
        http=http,
        ws="none",
    )


def server_stack() -> tuple[Literal["uvloop", "asyncio"], Literal["httptools", "h11"]]:
    """uvloop and httptools (C) when installed — uvicorn[standard] brings them — else pure Python.

    Under load the pure-Python h11 parser and asyncio loop were a fifth of the bot's CPU.
    """
    loop: Literal["uvloop", "asyncio"] = "uvloop" if _importable("uvloop") else "asyncio"
    http: Literal["httptools", "h11"] = "httptools" if _importable("httptools") else "h11"
    return loop, http


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


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


async def migrate(settings: Settings) -> str:
    """Apply the Alembic migrations; returns the revision the database is at."""
    await upgrade(settings.database_url)
    return await current_revision(settings.database_url) or "none"


async def print_history(
    settings: Settings, *, user: str | None, limit: int, as_json: bool = False
) -> int:
    """The audit: who sent what, when, in what state, what went to Close and what came back."""
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        store = SubmissionStore(session_factory(engine), dialect=engine.dialect.name)
        entries = await store.recent(slack_user_id=user, limit=limit)
        changes = await ChangeStore(
            session_factory(engine), dialect=engine.dialect.name
        ).for_opportunities([e.opportunity_id for e in entries if e.opportunity_id])
    finally:
        await engine.dispose()
    if as_json:
        for entry in entries:
            applied = changes.get(entry.opportunity_id or "", [])
            record = entry.model_dump(mode="json")
            record["changes"] = [_change_record(change) for change in applied]
            print(json.dumps(record, ensure_ascii=False))
        return 0
    if not entries:
        print("No submissions yet.")
        return 0
    for entry in entries:
        print(format_entry(entry, changes.get(entry.opportunity_id or "", [])))
    return 0


def _change_record(change: StoredChange) -> dict[str, object]:
    """A change made in Close and applied in Slack, as `history --json` lists it."""
    event = change.event
    return {
        "event_id": event.id,
        "action": event.action,
        "date_updated": event.date_updated,
        "user_id": event.user_id,
        "changed_fields": event.changed_fields,
        "source": change.source,
        "outcome": change.outcome,
        "applied_at": change.applied_at.isoformat() if change.applied_at else None,
    }


def format_entry(entry: AuditEntry, changes: Sequence[StoredChange] = ()) -> str:
    request = entry.request
    head = (
        f"{entry.created_at:%Y-%m-%d %H:%M:%S}Z  {entry.state.value:<8}  {entry.slack_user_id}  "
        f"{request.lead_name}  attempts={entry.attempts}  id={entry.id}"
    )
    lines = [head]
    if entry.sent is not None:
        lines.append("  sent:     " + _compact(entry.sent.get("json", entry.sent)))
    else:
        lines.append("  request:  " + _compact(request.model_dump(mode="json", exclude_none=True)))
    if entry.opportunity_id:
        lines.append(f"  created:  {entry.opportunity_id} on {entry.lead_id}")
    if entry.response is not None:
        lines.append("  response: " + _compact(entry.response))
    if entry.error:
        lines.append(f"  error:    {entry.error}")
    for change in changes:
        who = change.event.user_id or "an automation"
        lines.append(
            f"  changed:  {change.event.date_updated[:19]}Z {change.event.action} in Close by "
            f"{who} ({change.source}): {change.outcome}"
        )
    return "\n".join(lines)


def _compact(data: object, width: int = 400) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 1] + "…"
