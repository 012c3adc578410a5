"""Work a listener starts only once Slack has its ack.

A view submission acked with `response_action: "update"` has Slack replace the modal when our
HTTP answer (or Socket Mode envelope) reaches it. Work started at `ack()` can call
`views.update` on the same modal before that — with Close answering fast, the "Close did not
save it" warning landed first and the ack's "Saving…" view then covered it for good. So such
work waits for the answer to be sent: the HTTP and Socket Mode layers open a `collecting()`
scope around each request and `release()` it once the answer is out; `after_ack(callback)`
called anywhere in the listener (in Bolt's task: the scope's context is copied into it) runs
`callback` then, or at once when no answer is pending (outside a request, or after release).

"Sent" is not "shown": the answer is still on its way to Slack, and an update ready within
milliseconds (a Close that answers at once) could overtake it (seen under CI load: the warning
landed, then "Saving…" covered it). So a modal update also waits out `ACK_SETTLE_SECONDS` from
the ack (`ack_settled`): nothing a user notices, as Close rarely answers sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from bot.tasks import answered, answering

# How long after an ack with `response_action: "update"` a views.update of that modal waits.
ACK_SETTLE_SECONDS = 0.25
# The longest `ack()` waits for its answer to be sent before the listener goes on regardless.
ANSWER_SENT_WAIT_SECONDS = 0.5

_PENDING: ContextVar[AfterAck | None] = ContextVar("after_ack", default=None)


class AfterAck:
    """The callbacks one request's listeners left for after its answer."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], object]] = []
        self._released = False

    def add(self, callback: Callable[[], object]) -> None:
        if self._released:
            callback()
        else:
            self._callbacks.append(callback)

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """The answer is out (or will never be): run what waited, once."""
        self._released = True
        answered(self)
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


@contextmanager
def collecting() -> Iterator[AfterAck]:
    """One request's scope; the caller releases it when its answer has been sent."""
    pending = AfterAck()
    token = _PENDING.set(pending)
    answer = answering(pending)
    try:
        yield pending
    finally:
        _PENDING.reset(token)
        answer.var.reset(answer)


def after_ack(callback: Callable[[], object]) -> None:
    """Run `callback` once the current request's answer has been sent to Slack."""
    pending = _PENDING.get()
    if pending is None:
        callback()
    else:
        pending.add(callback)


async def answer_sent() -> None:
    """Return once the current request's answer has been sent (at once outside a request, or
    after ANSWER_SENT_WAIT_SECONDS: a stuck answer never holds up the listener for long)."""
    pending = _PENDING.get()
    if pending is None or pending.released:
        return
    sent = asyncio.get_running_loop().create_future()

    def settle() -> None:
        if not sent.done():
            sent.set_result(None)

    pending.add(settle)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sent, ANSWER_SENT_WAIT_SECONDS)


async def ack_settled(since_ack: float) -> None:
    """Wait out what is left of ACK_SETTLE_SECONDS, `since_ack` seconds after the ack was sent
    (never longer than ACK_SETTLE_SECONDS, whatever the clocks say)."""
    left = ACK_SETTLE_SECONDS - max(since_ack, 0.0)
    if left > 0:
        await asyncio.sleep(left)
