"""Slack's Socket Mode end, for tests: the websocket `apps.connections.open` points to. It says
hello, sends envelopes and records their acks, records how each connection ended (the app's
close frame, or dropped without one), and can go silent like a dead connection."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from sandbox.server import bind_free_port

Json = dict[str, Any]


@dataclass
class Connection:
    id: int
    ticket: str
    opened_at: float
    socket: web.WebSocketResponse = field(repr=False)
    closed_at: float | None = None
    # The code of the app's close frame; None while open, or when it dropped without one.
    close_code: int | None = None
    pings: int = 0

    @property
    def open(self) -> bool:
        return self.closed_at is None


class SocketModeServer:
    """One app's Socket Mode endpoint on 127.0.0.1 (started by the Slack simulator on demand)."""

    def __init__(self, app_id: str = "A0SANDBOX") -> None:
        self.app_id = app_id
        self.connections: list[Connection] = []
        self.acks: dict[str, Json] = {}
        # Pings unanswered and nothing sent: what a connection whose network died looks like.
        self.silent = False
        # New connections refused (HTTP 503): Slack's edge unreachable.
        self.refuse = False
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        sock = bind_free_port()
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is None:
            return
        for connection in self.connections:
            if connection.open:
                await connection.socket.close()
        await self._runner.cleanup()
        self._runner = None

    @property
    def started(self) -> bool:
        return self._runner is not None

    def url(self) -> str:
        """A fresh URL to connect to, as `apps.connections.open` hands out (one ticket each)."""
        return (
            f"ws://127.0.0.1:{self._port}/link/?ticket={secrets.token_hex(8)}&app_id={self.app_id}"
        )

    # -- what tests do and read ----------------------------------------------------------------

    def open_connections(self) -> list[Connection]:
        return [c for c in self.connections if c.open]

    async def send(
        self, kind: str, payload: Json, *, accepts_response_payload: bool = False
    ) -> str:
        """Send an envelope (`slash_commands`, `interactive`, `events_api`) on the newest open
        connection; returns its envelope_id."""
        live = self.open_connections()
        if not live:
            raise RuntimeError("no open Socket Mode connection")
        envelope_id = secrets.token_hex(12)
        await live[-1].socket.send_str(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "payload": payload,
                    "type": kind,
                    "accepts_response_payload": accepts_response_payload,
                    "retry_attempt": 0,
                    "retry_reason": "",
                }
            )
        )
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> Json:  # noqa: ASYNC109
        """The ack's payload ({} for a bare ack)."""
        await self.wait(lambda: envelope_id in self.acks, timeout)
        return self.acks[envelope_id]

    async def wait_connections(self, count: int, timeout: float = 5.0) -> Connection:  # noqa: ASYNC109
        """The `count`-th connection, once it is open (connections are counted from the start)."""
        await self.wait(lambda: len(self.connections) >= count, timeout)
        return self.connections[count - 1]

    async def wait_closed(self, connection: Connection, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self.wait(lambda: not connection.open, timeout)

    async def wait(self, predicate: Any, timeout: float) -> None:  # noqa: ASYNC109
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    # -- the websocket -------------------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.StreamResponse:
        if self.refuse:
            return web.Response(status=503, text="Service Unavailable")
        socket = web.WebSocketResponse(autoping=False)
        await socket.prepare(request)
        connection = Connection(
            id=next(self._ids),
            ticket=request.query.get("ticket", ""),
            opened_at=time.monotonic(),
            socket=socket,
        )
        await self._note(lambda: self.connections.append(connection))
        await socket.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self.open_connections()),
                    "debug_info": {
                        "host": "applink-sandbox",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.app_id},
                }
            )
        )
        code: int | None = None
        while True:
            message = await socket.receive()
            if message.type == WSMsgType.PING:
                connection.pings += 1
                if not self.silent:
                    await socket.pong(message.data)
            elif message.type == WSMsgType.TEXT:
                await self._received(message.data)
            elif message.type == WSMsgType.CLOSE:
                code = int(message.data)  # the app closed it properly; aiohttp answers the frame
                break
            elif message.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                break
        await socket.close()

        def closed() -> None:
            connection.closed_at = time.monotonic()
            connection.close_code = code

        await self._note(closed)
        return socket

    async def _received(self, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            return
        if isinstance(data, dict) and isinstance(data.get("envelope_id"), str):
            ack = data.get("payload")
            envelope_id = data["envelope_id"]
            await self._note(
                lambda: self.acks.__setitem__(envelope_id, ack if isinstance(ack, dict) else {})
            )

    async def _note(self, change: Any) -> None:
        async with self._changed:
            change()
            self._changed.notify_all()
