"""Answer Slack the moment a listener acks, not at Bolt's next 10 ms poll.

With `process_before_response=False` (ours: work goes on after the ack), Bolt runs the
listener in a task and polls `ack.response` every 10 ms (`asyncio.sleep(0.01)`) before it
returns the response: every ack waited 0–10 ms for nothing. `dispatch` gives Bolt's context
an `ack` of its own (Bolt reads `context.ack` and builds one only when absent). Over HTTP the
transport hands it a sender (`answering_with`): the ack sends the answer itself, from the
listener's task, and Bolt dispatches in the request's own task. Elsewhere (Socket Mode) the
ack resolves a future and `dispatch`, which runs Bolt in a task of its own, returns the ack's
response at once — the same `BoltResponse` Bolt would return at its next poll. Either way the
listener goes on after `ack()` only once the answer is sent. A request not acked by a listener
(refused by middleware, a listener error, a late ack) gets exactly Bolt's own answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.response import BoltResponse

from bot.slack.after_ack import answer_sent
from bot.tasks import spawn

# Sends a request's answer (the HTTP transport's ASGI send): set, the ack sends it itself.
Sender = Callable[[BoltResponse], Awaitable[None]]
_SENDER: ContextVar[Sender | None] = ContextVar("ack_sender", default=None)


@contextmanager
def answering_with(sender: Sender) -> Iterator[None]:
    """Within: the listener's `ack()` sends the answer through `sender`, from its own task."""
    token = _SENDER.set(sender)
    try:
        yield
    finally:
        _SENDER.reset(token)


class _SignallingAck(AsyncAck):
    """Bolt's ack that sends the answer itself where the transport lets it (HTTP), else
    resolves `given` (the dispatch answers then: Socket Mode); it returns to the listener only
    once that answer is sent: what the listener does after `ack()` (a parse, a modal build)
    never runs ahead of the answer it follows."""

    def __init__(self, given: asyncio.Future[None], sender: Sender | None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._given = given
        self._sender = sender

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        response = await super().__call__(*args, **kwargs)
        if self._sender is not None:
            await self._sender(response)
        _settle(self._given)
        await answer_sent()
        return response


async def dispatch(app: AsyncApp, request: AsyncBoltRequest) -> BoltResponse:
    """Bolt's `async_dispatch`, answered at the listener's `ack()` (or when Bolt is done).

    Where the transport gave a sender, the ack sends the answer from the listener's task and
    Bolt runs in this one (no task of its own to hop to and back from: in a burst each hop
    waited behind every other request's step); what this returns then only matters when no
    ack sent anything."""
    given: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    sender = _SENDER.get()
    ack = _SignallingAck(given, sender)
    request.context["ack"] = ack
    if sender is not None:
        return await app.async_dispatch(request)
    bolt: asyncio.Task[BoltResponse] = spawn(app.async_dispatch(request), name="bolt-dispatch")
    bolt.add_done_callback(lambda _: _settle(given))
    await given
    if not bolt.done() and ack.response is not None:
        return ack.response
    return await bolt


def _settle(given: asyncio.Future[None]) -> None:
    if not given.done():
        given.set_result(None)
