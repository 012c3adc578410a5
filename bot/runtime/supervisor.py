"""`serve --workers N`: N server processes on one port under uvicorn's supervisor.

The supervisor stays light (it never imports the app) and starts the server processes at once:
they import and build the app while the credential checks are in flight here, then wait for
their answer (a file this process writes) before they touch the schema or Close's catalog.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import uvicorn
from uvicorn.supervisors import Multiprocess

from bot.runtime.preflight import Preflight
from bot.settings import Settings

log = logging.getLogger(__name__)

# Requests in flight at shutdown get this long to finish (Slack stops waiting for an ack at 3 s).
HTTP_DRAIN_SECONDS = 3
# How the supervisor tells each server process whether to run the worker too.
SERVE_WORKER_ENV = "OPPORTUNITY_BOT_SERVE_WORKER"
# Where it writes the checks' answer: `ok:<Close organization id>`, `refused` or `stop`.
CHECKED_ENV = "OPPORTUNITY_BOT_CHECKED_FILE"
# How often a server process looks for that answer (between pieces of its warm-up).
CHECKED_POLL_SECONDS = 0.01


def server_stack() -> tuple[Literal["uvloop", "asyncio"], Literal["httptools", "h11"]]:
    """uvloop and httptools (C) when installed — uvicorn[standard] brings them — else pure Python.

    Under load the pure-Python h11 parser and asyncio loop were a fifth of the bot's CPU.
    """
    loop: Literal["uvloop", "asyncio"] = "uvloop" if _importable("uvloop") else "asyncio"
    http: Literal["httptools", "h11"] = "httptools" if _importable("httptools") else "h11"
    return loop, http


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def http_config(
    app: Any, settings: Settings, *, host: str, port: int | None, **more: Any
) -> uvicorn.Config:
    """uvicorn as `serve` runs it, one process or N: the C loop and parser when installed, no
    websockets (Slack only POSTs to us, and not loading that stack saves memory), our logging
    (LOG_FORMAT) for uvicorn's lines too, no access log, Slack's ack window to drain at stop."""
    loop_name, http = server_stack()
    return uvicorn.Config(
        app,
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
        **more,
    )


def serve_processes(
    settings: Settings,
    *,
    host: str,
    port: int | None,
    worker: bool,
    workers: int,
    checks: Preflight,
) -> int:
    """Until SIGTERM/SIGINT (each server process then stops as `serve` does); 0 once stopped,
    1 if a credential is refused (the server processes then end having started nothing).
    The caller (cli) has checked `settings.processes_refusal(workers)`."""
    # The children are spawned: they read the environment (and .env) again, and these.
    os.environ[SERVE_WORKER_ENV] = "1" if worker else "0"
    config = http_config(
        "bot.runtime.runners:app_from_environment",
        settings,
        host=host,
        port=port,
        factory=True,
        workers=workers,
    )
    refused: list[str] = []
    with tempfile.TemporaryDirectory(prefix="opportunity-bot-") as scratch:
        answer = _Answer(Path(scratch) / "checked")
        os.environ[CHECKED_ENV] = str(answer.path)
        sock = config.bind_socket()
        supervisor = _Supervisor(config, sockets=[sock], answer=answer)

        def tell() -> None:
            checked = checks.wait()
            if checked.refusal is None:
                answer.write("ok:" + (checked.close_organization_id or ""))
                return
            refused.append(checked.refusal)
            answer.write("refused")
            supervisor.should_exit.set()

        threading.Thread(target=tell, name="preflight-answer", daemon=True).start()
        gc.enable()  # cli turned it off for start-up; this process only supervises
        try:
            supervisor.run()
        finally:
            sock.close()
    if refused:
        print(refused[0], file=sys.stderr)
        return 1
    log.info("Stopped")
    return 0


class _Answer:
    """The checks' answer as a file: written once (atomically), read by every server process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            if self.path.exists():
                return
            partial = self.path.with_suffix(".partial")
            partial.write_text(text)
            partial.replace(self.path)


class _Supervisor(Multiprocess):
    """uvicorn's, telling server processes still waiting for the checks to stop instead (they
    would otherwise wait on, and the supervisor for them)."""

    def __init__(self, config: uvicorn.Config, sockets: list[object], answer: _Answer) -> None:
        super().__init__(config, sockets)  # type: ignore[arg-type]
        self._answer = answer

    def terminate_all(self) -> None:
        self._answer.write("stop")
        super().terminate_all()


async def checks_answered(work: Callable[[], bool]) -> str | None:
    """In a server process: wait for the supervisor's answer, doing `work` (one piece a call;
    False once there is none left) meanwhile. Returns the Close organization id the checks
    learned (None if they did not); ends the process at once when the checks refused a
    credential, the supervisor is stopping or has died: nothing has been started yet."""
    path = Path(os.environ[CHECKED_ENV])
    parent = os.getppid()
    while True:
        text = _read(path)
        if text is not None:
            if text.startswith("ok:"):
                return text.removeprefix("ok:") or None
            os._exit(0)
        if os.getppid() != parent:
            os._exit(0)
        if not work():
            await asyncio.sleep(CHECKED_POLL_SECONDS)


def _read(path: Path) -> str | None:
    """A few bytes from a local file, or None before it exists (not worth a thread)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
