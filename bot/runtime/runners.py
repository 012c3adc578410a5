"""Starting the bot for real: the HTTP server, Socket Mode, the worker, and the store's maintenance
commands. Each long-running mode checks its credentials first and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any

import uvicorn
from starlette.applications import Starlette

from bot.app import build_app
from bot.parsing import warm_a_piece
from bot.runtime.preflight import Checked, Preflight
from bot.runtime.supervisor import (
    SERVE_WORKER_ENV,
    checks_answered,
    http_config,
    server_stack,
)
from bot.runtime.warm_up import warm_up
from bot.services import Services
from bot.settings import Settings
from bot.store.migrate import current_revision, fresh_sqlite, load_alembic, upgrade
from bot.tasks import spawn
from bot.transport.http import create_http_app, create_ops_app
from bot.transport.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def _checked(services: Services, checks: Preflight) -> Checked:
    """The credential checks' answer, the parser warmed up while their round trips are in flight
    (in their own thread). Everything before this (the services, the Bolt app) and the warm-up
    is CPU work that opens no connection or file, so a refused credential still ends the start
    before the schema or Close's catalog is touched.

    Warming the parser stops when the checks answer: the rest is the warm-up's
    (bot.runtime.warm_up), or `Services.start`'s."""
    if fresh_sqlite(services.settings.database_url):
        load_alembic()  # Services.start will migrate: import Alembic meanwhile
    while not checks.answered and warm_a_piece():
        pass
    checked = await checks.checked()
    if checked.refusal is not None:
        await services.close.aclose()
    else:
        services.catalog.organization_id = checked.close_organization_id
        # Its Close round trip is most of the warm-up: begun now, beside the schema's check and
        # the server's start, not after them (Services.start finds it loading).
        await services.catalog.start()
    return checked


# --- running until told to stop -----------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn, without its own signal handling: the runner decides what a signal does (and
    uvicorn's would re-raise SIGTERM after a clean stop, ending the process with 143, not 0);
    `on_listening` is called once its socket accepts connections."""

    def __init__(
        self, config: uvicorn.Config, *, on_listening: Callable[[], object] | None = None
    ) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_listening is not None:
            self._on_listening()


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


async def _unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """`work` (the warm-up, whose budget is longer than a platform waits after SIGTERM), cut
    short by a stop signal."""
    working = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for task in (working, stopping):
        task.cancel()
    await asyncio.gather(working, stopping, return_exceptions=True)


def serve(
    settings: Settings,
    *,
    host: str = "0.0.0.0",
    port: int | None = None,
    worker: bool = True,
    checks: Preflight | None = None,
) -> int:
    """HTTP mode until SIGTERM/SIGINT: then no new connections, requests in flight finished,
    background work finished or handed back; 0 once stopped, 1 if a credential is refused.

    `checks`: the credential checks, if already started (`Preflight`); started here if not.
    (`serve --workers N` is `bot.runtime.supervisor.serve_processes`.)"""
    checks = checks or Preflight(settings)
    loop_name = server_stack()[0]

    async def run() -> int:
        services = Services.create(settings)
        bolt = build_app(settings, services)
        http_app = create_http_app(services, bolt, run_worker=worker)
        checked = await _checked(services, checks)
        if checked.refusal is not None:
            print(checked.refusal, file=sys.stderr)
            return 1
        # /healthz first: the warm-up once listening, /readyz answering 503 "warm-up" until then.
        services.warm_up.begin()
        config = http_config(http_app, settings, host=host, port=port)
        server = _Server(
            config, on_listening=lambda: spawn(warm_up(services, bolt), name="warm-up")
        )

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


def app_from_environment() -> Starlette:
    """uvicorn's app factory for `serve --workers N`: each server process builds its own
    Settings, Services and Bolt app (and logging, which a spawned process does not inherit)
    while the supervisor's credential checks are in flight, warming the parser meanwhile, and
    starts once they have passed."""
    from bot.logs import configure

    _die_with_parent()
    gc.disable()  # as in cli: start_up_over turns it back on
    settings = Settings()
    configure(settings.log_level, secrets=settings.secret_values(), fmt=settings.log_format)
    services = Services.create(settings)
    services.warm_up.begin()  # /readyz: 503 "warm-up" until it is over
    bolt = build_app(settings, services)

    async def checked() -> None:
        services.catalog.organization_id = await checks_answered(warm_a_piece)
        await services.catalog.start()  # as in `_checked`: beside the schema's check
        spawn(warm_up(services, bolt), name="warm-up")

    run_worker = os.environ.get(SERVE_WORKER_ENV, "1") != "0"
    return create_http_app(services, bolt, run_worker=run_worker, before_start=checked)


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


@contextlib.asynccontextmanager
async def _ops_server(
    settings: Settings, services: Services, *, oauth: bool = False
) -> AsyncIterator[None]:
    """GET /healthz, /readyz and /metrics on METRICS_PORT, if set (Socket Mode and `worker`).

    `oauth` (Socket Mode with a PUBLIC_URL): the Close connect routes on PORT, with the
    operations endpoints beside them (on METRICS_PORT too when that is another port)."""
    servers: list[tuple[str, int, Starlette]] = []
    if oauth and settings.public_url is not None:
        servers.append(("PORT", settings.port, create_ops_app(services, oauth=True)))
    if settings.metrics_port is not None and not (
        servers and settings.metrics_port == settings.port
    ):
        servers.append(("METRICS_PORT", settings.metrics_port, create_ops_app(services)))
    async with contextlib.AsyncExitStack() as stack:
        for name, port, app in servers:
            await stack.enter_async_context(_serving(name, port, app))
        yield


@contextlib.asynccontextmanager
async def _serving(name: str, port: int, app: Starlette) -> AsyncIterator[None]:
    try:
        sock = _listening_socket(port)
    except OSError as error:
        raise Refusal(
            f"error: cannot listen on {name} {port} ({error.strerror}): "
            "pick a free port, or unset it."
        ) from error
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        log_config=None,
        access_log=False,
        ws="none",
        http=server_stack()[1],
        timeout_graceful_shutdown=1,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"server-{name.lower()}")
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


async def run_socket_mode(settings: Settings, checks: Preflight | None = None) -> int:
    """Socket Mode until SIGTERM/SIGINT: then the acks in flight sent, the websocket closed with
    a close frame, background work finished or handed back; 0 once stopped."""
    assert settings.slack_app_token is not None
    checks = checks or Preflight(settings, app_token=True)
    services = Services.create(settings)
    app = build_app(settings, services)
    checked = await _checked(services, checks)
    if checked.refusal is not None:
        print(checked.refusal, file=sys.stderr)
        return 1
    stop = _stop_event()
    services.warm_up.begin()
    try:
        async with _ops_server(settings, services, oauth=True):
            await services.start()
            # Before connecting: Slack sends this connection nothing until the process is warm
            # (during a deploy the old one goes on answering meanwhile).
            await _unless_stopped(warm_up(services, app), stop)
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


async def run_worker(settings: Settings, checks: Preflight | None = None) -> int:
    """Background work only, until SIGTERM/SIGINT: creating stored submissions in Close and
    telling the outcome, applying Close's changes in Slack, reading Close's event log. No HTTP
    (but /healthz, /readyz and /metrics on METRICS_PORT when set)."""
    checks = checks or Preflight(settings)
    services = Services.create(settings)
    checked = await _checked(services, checks)
    if checked.refusal is not None:
        print(checked.refusal, file=sys.stderr)
        return 1
    stop = _stop_event()
    services.warm_up.begin()
    try:
        async with _ops_server(settings, services):
            # With PUBLIC_URL, Close's webhook is taken by `serve`: the event log is the backstop.
            await services.start(serving_http=False, webhook_elsewhere=True)
            await _unless_stopped(warm_up(services), stop)
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
