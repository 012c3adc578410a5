"""Run an ASGI app under uvicorn on a free 127.0.0.1 port inside the current event loop."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
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


# Ports below this are the well-known ones and those of services a machine commonly runs.
_LOWEST_PORT = 10_000


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _child_ports() -> list[int]:
    """This process's slice of the ports below the ephemeral range (one slice per pytest-xdist
    worker, so parallel tests never pick the same one), from a random start."""
    first, end = _LOWEST_PORT, max(_ephemeral_start(), _LOWEST_PORT + 1_000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker.isdigit() and workers > 1:
        size = (end - first) // workers
        first, end = first + int(worker) * size, first + (int(worker) + 1) * size
    start = random.randrange(first, end)
    return [*range(start, end), *range(first, start)]


_child_ports_left: collections.deque[int] = collections.deque()


def port_for_a_child(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for a child process to bind later (`serve --port`,
    METRICS_PORT).

    Not bind(0)'s: that port comes from the kernel's ephemeral range, which every outgoing
    connection draws its local port from too, so between our close and the child's bind a
    client socket (ours, or a parallel test's) can take it: "Address already in use". Ports
    below that range are only ever taken by a bind; each call returns the next one of this
    process's slice that can be bound now, so two calls never give the same port."""
    if not _child_ports_left:
        _child_ports_left.extend(_child_ports())
    for _ in range(len(_child_ports_left)):
        port = _child_ports_left[0]
        _child_ports_left.rotate(-1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no port below {_ephemeral_start()} can be bound on {host}")


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
