"""Socket Mode: Slack's requests over a websocket instead of HTTP, acked and measured like HTTP's,
a dead connection replaced within seconds, and the connection closed properly at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.app import ack_outcome
from bot.logs import bind_slack
from bot.metrics import Metrics, ack_kind
from bot.slack.after_ack import collecting
from bot.transport import eager_ack

log = logging.getLogger(__name__)

# Ping interval of the connection. aiohttp closes it when a ping's pong is not back within half
# of this, and slack_sdk's monitor (same interval) then connects anew: a dead connection is
# replaced within about 2.5 intervals (Bolt's default of 10 s took up to 25 s). Any message
# from Slack counts as a pong, so a busy connection is never mistaken for a dead one.
PING_SECONDS = 2.0
# At shutdown, requests being handled get this long to send their ack before the socket closes.
ACK_DRAIN_SECONDS = 2.0
# aiohttp waits up to 10 s for the server's answer to a close frame; a dead server is not waited for.
CLOSE_SECONDS = 2.0


class SocketModeHandler(AsyncSocketModeHandler):  # type: ignore[misc]
    """Bolt's aiohttp Socket Mode handler, with each ack timed in `metrics` and a clean close."""

    def __init__(
        self,
        app: AsyncApp,
        app_token: str,
        *,
        metrics: Metrics,
        ping_interval: float = PING_SECONDS,
    ) -> None:
        super().__init__(app, app_token, ping_interval=ping_interval)
        self._metrics = metrics
        self._handling = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def handle(self, client: Any, req: SocketModeRequest) -> None:
        started = time.perf_counter()
        body: Any = req.payload
        outcome = "error"
        self._handling += 1
        self._idle.clear()
        try:
            if isinstance(body, dict):
                bind_slack(body)
            request = AsyncBoltRequest(mode="socket_mode", body=body, headers=build_headers(req))
            with collecting() as pending:
                try:
                    response = await eager_ack.dispatch(self.app, request)
                    if response.status == 200:
                        outcome = ack_outcome(request)
                    await send_async_response(client, req, response, started)
                finally:
                    pending.release()  # the ack is out (bot.slack.after_ack)
        finally:
            self._handling -= 1
            if self._handling == 0:
                self._idle.set()
            self._metrics.ack(ack_kind(body), outcome, time.perf_counter() - started)

    async def shut(self) -> None:
        """Let the requests being handled send their acks (briefly), then close the connection
        with a close frame and release the client's resources."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), ACK_DRAIN_SECONDS)
        try:
            await asyncio.wait_for(
                self.close_async(),  # type: ignore[no-untyped-call]
                CLOSE_SECONDS,
            )
            return
        except TimeoutError:
            log.warning("Slack did not answer the websocket's close frame in time")
        except Exception:  # a connection already broken has nothing left to close
            log.info("Closing the Socket Mode connection failed", exc_info=True)
        # What close() did not get to: the client's tasks and its HTTP session.
        client = self.client
        client.closed = True
        for task in (
            client.message_processor,
            client.current_session_monitor,
            client.message_receiver,
        ):
            if task is not None:
                task.cancel()
        with contextlib.suppress(Exception):
            await client.aiohttp_client_session.close()
