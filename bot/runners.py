"""Starting the bot for real: the HTTP server, Socket Mode, the worker, and the store's maintenance
commands. Each long-running mode checks its credentials first and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from typing import Literal

import httpx
import uvicorn
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from bot.app import build_app
from bot.close.client import CloseClient
from bot.close.errors import CloseAuthError, CloseError
from bot.http import create_http_app, create_ops_app
from bot.services import Services
from bot.settings import HOW_TO_GET, Settings
from bot.socket_mode import SocketModeHandler
from bot.store.changes import ChangeStore, StoredChange
from bot.store.db import create_engine, session_factory
from bot.store.migrate import current_revision, upgrade
from bot.store.submissions import AuditEntry, SubmissionStore
from bot.workflow.history import StepHistory, format_step, step_line, step_record
from bot.workflow.models import WorkflowStep

log = logging.getLogger(__name__)

# Requests in flight at shutdown get this long to finish (Slack stops waiting for an ack at 3 s).
HTTP_DRAIN_SECONDS = 3
# How long the start-up checks wait for Slack or Close before going on without an answer.
PREFLIGHT_TIMEOUT_SECONDS = 10.0
# Slack's answers that mean "this token is not accepted" (anything else: try again later).
REFUSED = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
        "missing_scope",
        "no_permission",
        "team_access_not_granted",
        "ekm_access_denied",
    }
)
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


# --- start-up checks ----------------------------------------------------------------------------


async def preflight(settings: Settings, *, app_token: bool = False) -> str | None:
    """Ask Slack and Close whether they accept the configured credentials (SLACK_BOT_TOKEN by
    auth.test, SLACK_APP_TOKEN by apps.connections.open when `app_token`, CLOSE_API_KEY by
    GET /me/). Returns the one line to print when one is refused; None otherwise — also when
    Slack or Close cannot be reached, since the bot keeps trying those once it runs."""
    checks = [_check_bot_token(settings), _check_close_key(settings)]
    if app_token:
        checks.append(_check_app_token(settings))
    for refusal in await asyncio.gather(*checks):
        if refusal is not None:
            return refusal
    return None


def _refused(name: str, by: str, why: str) -> str:
    return (
        f"error: {by} refused {name} ({why}): set it to a valid one from {HOW_TO_GET[name]}, "
        "in the environment or .env, then start again (`python -m bot doctor` checks them all)."
    )


async def _check_bot_token(settings: Settings) -> str | None:
    assert settings.slack_bot_token is not None
    slack = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=int(PREFLIGHT_TIMEOUT_SECONDS),
    )
    return await _ask_slack("SLACK_BOT_TOKEN", slack.auth_test)


async def _check_app_token(settings: Settings) -> str | None:
    assert settings.slack_app_token is not None
    token = settings.slack_app_token.get_secret_value()
    slack = AsyncWebClient(base_url=settings.slack_api_url, timeout=int(PREFLIGHT_TIMEOUT_SECONDS))
    # The URL it hands out is simply left unused; the Socket Mode client asks for its own.
    return await _ask_slack("SLACK_APP_TOKEN", lambda: slack.apps_connections_open(app_token=token))


async def _ask_slack(name: str, call: Callable[[], object]) -> str | None:
    try:
        await call()  # type: ignore[misc]
    except SlackApiError as error:
        code = str(error.response.get("error") or error.response.status_code)
        if code in REFUSED:
            return _refused(name, "Slack", code)
        log.warning("Slack did not accept %s's check (%s); starting anyway", name, code)
    except Exception as error:  # unreachable: not a refusal, the bot retries when running
        log.warning("Cannot reach Slack to check %s (%s); starting anyway", name, _what(error))
    return None


async def _check_close_key(settings: Settings) -> str | None:
    assert settings.close_api_key is not None
    async with CloseClient(
        settings.close_api_key.get_secret_value(),
        settings.close_api_url,
        timeout=httpx.Timeout(PREFLIGHT_TIMEOUT_SECONDS, connect=5.0),
        retry_attempts=1,
    ) as close:
        try:
            await close.me()
        except CloseAuthError as error:
            return _refused("CLOSE_API_KEY", "Close", f"HTTP {error.status_code}")
        except CloseError as error:
            log.warning("Cannot reach Close to check CLOSE_API_KEY (%s); starting anyway", error)
    return None


def _what(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


# --- running until told to stop -----------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn, without its own signal handling: the runner decides what a signal does (and
    uvicorn's would re-raise SIGTERM after a clean stop, ending the process with 143, not 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _on_signals(handler: Callable[[signal.Signals], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in HANDLED_SIGNALS:
        loop.add_signal_handler(sig, handler, sig)


def _stop_event() -> asyncio.Event:
    """Set by the first SIGTERM or SIGINT; a second one ends the process at once."""
    stop = asyncio.Event()

    def handle(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("Got %s again: exiting now", sig.name)
            raise SystemExit(1)
        log.info("Got %s: stopping", sig.name)
        stop.set()

    _on_signals(handle)
    return stop


# `serve --workers N`: how the parent tells each server process whether to run the worker too.
SERVE_WORKER_ENV = "OPPORTUNITY_BOT_SERVE_WORKER"


def serve(
    settings: Settings,
    *,
    host: str = "0.0.0.0",
    port: int | None = None,
    worker: bool = True,
    workers: int = 1,
) -> int:
    """HTTP mode until SIGTERM/SIGINT: then no new connections, requests in flight finished,
    background work finished or handed back; 0 once stopped, 1 if a credential is refused.

    `workers` > 1: that many server processes on the one port (uvicorn's supervisor), each
    with its own Services; they share the queue, so PostgreSQL is required."""
    if workers > 1:
        return _serve_processes(settings, host=host, port=port, worker=worker, workers=workers)
    loop_name, http = server_stack()

    async def run() -> int:
        refusal = await preflight(settings)
        if refusal is not None:
            print(refusal, file=sys.stderr)
            return 1
        services = Services.create(settings)
        config = uvicorn.Config(
            create_http_app(services, build_app(settings, services), run_worker=worker),
            host=host,
            port=port or settings.port,
            loop=loop_name,
            http=http,
            # No websockets: Slack only POSTs to us, and not loading that stack saves memory.
            ws="none",
            lifespan="on",
            log_level="warning",
            log_config=None,  # our handlers and format (LOG_FORMAT) for uvicorn's lines too
            access_log=False,
            timeout_graceful_shutdown=HTTP_DRAIN_SECONDS,
        )
        server = _Server(config)

        def handle(sig: signal.Signals) -> None:
            if server.should_exit:
                log.warning("Got %s again: not waiting for requests in flight", sig.name)
                server.force_exit = True
                return
            log.info("Got %s: finishing requests in flight, then stopping", sig.name)
            server.should_exit = True
            services.begin_stop()

        _on_signals(handle)
        await server.serve()
        log.info("Stopped")
        return 0

    with asyncio.Runner(loop_factory=_loop_factory(loop_name)) as runner:
        return runner.run(run())


def _serve_processes(
    settings: Settings, *, host: str, port: int | None, worker: bool, workers: int
) -> int:
    if not settings.database_url.startswith(("postgresql", "postgres:")):
        print(
            f"error: serve --workers {workers} needs PostgreSQL (DATABASE_URL=postgresql://…): "
            "processes cannot share a SQLite file's queue; use --workers 1 with SQLite.",
            file=sys.stderr,
        )
        return 2
    refusal = asyncio.run(preflight(settings))
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 1
    # The children are spawned: they read the environment (and .env) again, and this.
    os.environ[SERVE_WORKER_ENV] = "1" if worker else "0"
    loop_name, http = server_stack()
    config = uvicorn.Config(
        "bot.runners:app_from_environment",
        factory=True,
        workers=workers,
        host=host,
        port=port or settings.port,
        loop=loop_name,
        http=http,
        ws="none",
        lifespan="on",
        log_level="warning",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=HTTP_DRAIN_SECONDS,
    )
    sock = config.bind_socket()
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
    log.info("Stopped")
    return 0


def app_from_environment() -> Starlette:
    """uvicorn's app factory for `serve --workers N`: each server process builds its own
    Settings, Services and Bolt app (and logging, which a spawned process does not inherit)."""
    from bot.logs import configure

    _die_with_parent()
    settings = Settings()
    configure(settings.log_level, secrets=settings.secret_values(), fmt=settings.log_format)
    services = Services.create(settings)
    run_worker = os.environ.get(SERVE_WORKER_ENV, "1") != "0"
    return create_http_app(services, build_app(settings, services), run_worker=run_worker)


def _die_with_parent() -> None:
    """Linux: SIGTERM this server process when its supervisor dies, even by SIGKILL (uvicorn's
    supervisor stops its children only when it is itself stopped cleanly)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the supervisor died before this line
            os.kill(os.getpid(), signal.SIGTERM)


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "uvloop":
        factory: Callable[[], asyncio.AbstractEventLoop] = importlib.import_module(
            "uvloop"
        ).new_event_loop
        return factory
    return None


def server_stack() -> tuple[Literal["uvloop", "asyncio"], Literal["httptools", "h11"]]:
    """uvloop and httptools (C) when installed — uvicorn[standard] brings them — else pure Python.

    Under load the pure-Python h11 parser and asyncio loop were a fifth of the bot's CPU.
    """
    loop: Literal["uvloop", "asyncio"] = "uvloop" if _importable("uvloop") else "asyncio"
    http: Literal["httptools", "h11"] = "httptools" if _importable("httptools") else "h11"
    return loop, http


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@contextlib.asynccontextmanager
async def _ops_server(settings: Settings, services: Services) -> AsyncIterator[None]:
    """GET /healthz, /readyz and /metrics on METRICS_PORT, if set (Socket Mode and `worker`)."""
    if settings.metrics_port is None:
        yield
        return
    try:
        sock = _listening_socket(settings.metrics_port)
    except OSError as error:
        raise Refusal(
            f"error: cannot listen on METRICS_PORT {settings.metrics_port} ({error.strerror}): "
            "pick a free port, or unset it."
        ) from error
    config = uvicorn.Config(
        create_ops_app(services),
        lifespan="off",
        log_level="warning",
        log_config=None,
        access_log=False,
        ws="none",
        http=server_stack()[1],
        timeout_graceful_shutdown=1,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="ops-server")
    try:
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 3)
        sock.close()


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("0.0.0.0", port))
    except OSError:
        sock.close()
        raise
    return sock


class Refusal(Exception):
    """The process cannot start; its message is the one line to print."""


async def run_socket_mode(settings: Settings) -> int:
    """Socket Mode until SIGTERM/SIGINT: then the acks in flight sent, the websocket closed with
    a close frame, background work finished or handed back; 0 once stopped."""
    assert settings.slack_app_token is not None
    refusal = await preflight(settings, app_token=True)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 1
    stop = _stop_event()
    services = Services.create(settings)
    app = build_app(settings, services)
    try:
        async with _ops_server(settings, services):
            await services.start()
            handler = SocketModeHandler(
                app, settings.slack_app_token.get_secret_value(), metrics=services.metrics
            )
            log.info("Connecting to Slack in Socket Mode")
            # Connecting retries for as long as Slack cannot be reached: a task, so that a
            # signal still stops the process meanwhile.
            connecting = asyncio.create_task(
                handler.connect_async(),  # type: ignore[no-untyped-call]
                name="socket-connect",
            )
            try:
                await stop.wait()
            finally:
                services.begin_stop()
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await connecting
                await handler.shut()
                await services.stop()
    except Refusal as refused:
        print(refused, file=sys.stderr)
        return 1
    log.info("Stopped")
    return 0


async def run_worker(settings: Settings) -> int:
    """Background work only, until SIGTERM/SIGINT: creating stored submissions in Close and
    telling the outcome, applying Close's changes in Slack, reading Close's event log. No HTTP
    (but /healthz, /readyz and /metrics on METRICS_PORT when set)."""
    refusal = await preflight(settings)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 1
    stop = _stop_event()
    services = Services.create(settings)
    try:
        async with _ops_server(settings, services):
            # With PUBLIC_URL, Close's webhook is taken by `serve`: the event log is the backstop.
            await services.start(serving_http=False, webhook_elsewhere=True)
            log.info("Worker running (Close -> Slack: %s)", services.sync.describe())
            try:
                await stop.wait()
            finally:
                await services.stop()
    except Refusal as refused:
        print(refused, file=sys.stderr)
        return 1
    log.info("Stopped")
    return 0


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
        steps = await StepHistory.load(engine, [e.id for e in entries], user=user, limit=limit)
    finally:
        await engine.dispose()
    if as_json:
        for entry in entries:
            applied = changes.get(entry.opportunity_id or "", [])
            record = entry.model_dump(mode="json")
            record["changes"] = [_change_record(change) for change in applied]
            record["workflow_step"] = step_record(steps.of_submissions.get(entry.id))
            print(json.dumps(record, ensure_ascii=False))
        for alone in steps.alone:  # workflow steps that are no submission (bad inputs)
            print(json.dumps({"workflow_step": step_record(alone)}, ensure_ascii=False))
        return 0
    if not entries and not steps.alone:
        print("No submissions yet.")
        return 0
    for entry in entries:
        step = steps.of_submissions.get(entry.id)
        print(format_entry(entry, changes.get(entry.opportunity_id or "", []), step))
    for alone in steps.alone:
        print(format_step(alone))
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


def format_entry(
    entry: AuditEntry, changes: Sequence[StoredChange] = (), step: WorkflowStep | None = None
) -> str:
    request = entry.request
    head = (
        f"{entry.created_at:%Y-%m-%d %H:%M:%S}Z  {entry.state.value:<8}  {entry.slack_user_id}  "
        f"{request.lead_name}  attempts={entry.attempts}  id={entry.id}"
    )
    lines = [head]
    if step is not None:
        lines.append(step_line(step))
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
