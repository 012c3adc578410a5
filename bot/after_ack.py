"""Work a listener starts only once Slack has its ack.

A view submission acked with `response_action: "update"` has Slack replace the modal when our
HTTP answer (or Socket Mode envelope) reaches it. Work started at `ack()` can call
`views.update` on the same modal before that — with Close answering fast, the "Close did not
save it" warning landed first and the ack's "Saving…" view then covered it for good. So such
work waits for the answer to be sent: the HTTP and Socket Mode layers open a `collecting()`
scope around each request and `release()` it once the answer is out; `after_ack(callback)`
called anywhere in the listener (in Bolt's task: the scope's context is copied into it) runs
`callback` then, or at once when no answer is pending (outside a request, or after release).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

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

    def release(self) -> None:
        """The answer is out (or will never be): run what waited, once."""
        self._released = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    async def arelease(self) -> None:  # for Starlette's BackgroundTask
        self.release()


@contextmanager
def collecting() -> Iterator[AfterAck]:
    """One request's scope; the caller releases it when its answer has been sent."""
    pending = AfterAck()
    token = _PENDING.set(pending)
    try:
        yield pending
    finally:
        _PENDING.reset(token)


def after_ack(callback: Callable[[], object]) -> None:
    """Run `callback` once the current request's answer has been sent to Slack."""
    pending = _PENDING.get()
    if pending is None:
        callback()
    else:
        pending.add(callback)
