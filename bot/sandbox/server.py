"""Run an ASGI app under uvicorn on a free 127.0.0.1 port inside the current event loop."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


@dataclass
class RunningServer:
    host: str
    port: int
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. ``http://127.0.0.1:53124/``."""
        return f"http://{self.host}:{self.port}/"

    async def stop(self, grace: float = 30.0) -> None:
        """Graceful stop; past `grace` seconds, uvicorn is told to force its exit."""
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), grace)
        except TimeoutError:
            logging.getLogger(__name__).error("Server on port %s did not stop; forcing", self.port)
            self.server.force_exit = True
            await asyncio.wait_for(self.task, 5)


def bind_free_port(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


async def start_server(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None
) -> RunningServer:
    """Start `app` (on `sock` if given: its port known beforehand) and return once it accepts
    connections."""
    sock = sock or bind_free_port(host, port)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # surfaces the startup error
        await asyncio.sleep(0.005)
    return RunningServer(host=host, port=sock.getsockname()[1], server=server, task=task)


@asynccontextmanager
async def serving(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningServer]:
    running = await start_server(app, host=host, port=port)
    try:
        yield running
    finally:
        await running.stop()
