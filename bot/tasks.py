"""Fire-and-forget tasks that are kept referenced until done (asyncio only keeps weak refs),
and the rule that background work stands aside while requests wait for their answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextvars import ContextVar, Token
from typing import Any

log = logging.getLogger(__name__)
_running: set[asyncio.Task[Any]] = set()

# The longest background work stands aside for requests being answered (`answers_first`).
YIELD_MAX_SECONDS = 0.05
# The requests of this process whose answer is not sent yet (weak: a request dropped without
# being answered does not hold background work up once it is gone), and the one being answered
# in this context.
_unanswered: weakref.WeakSet[Any] = weakref.WeakSet()
# Of those, the ones now waiting on a Slack or Close call of their own (how many calls each):
# nothing to stand aside for while they wait on the network.
_away: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_ANSWERING: ContextVar[Any] = ContextVar("answering", default=None)
_yielded: list[asyncio.Future[None]] = []


def spawn(coroutine: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
    task = asyncio.create_task(coroutine, name=name)
    _running.add(task)
    task.add_done_callback(_done)
    return task


def _done(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("Background task %s failed", task.get_name(), exc_info=task.exception())


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background loop and wait until it has stopped (None: nothing to do)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def answering(request: Any) -> Token[Any]:
    """A request of this process now waits for its answer (the transport calls this on its way
    in; the context it runs in is on the way to that answer). Reset the token on the way out."""
    _unanswered.add(request)
    return _ANSWERING.set(request)


def answered(request: Any) -> None:
    """Its answer is sent: background work that stood aside for it goes on once none waits."""
    _unanswered.discard(request)
    _away.pop(request, None)
    _release_if_free()


def _own_unanswered() -> Any:
    """The request this context works towards answering, while its answer is not sent (else
    None): work on the way to an answer never stands aside."""
    own = _ANSWERING.get()
    return own if own is not None and own in _unanswered else None


def _holding() -> bool:
    """Some request of this process is being worked on towards its answer (not away on a call
    of its own)."""
    return any(request not in _away for request in _unanswered)


def _release_if_free() -> None:
    if _holding():
        return
    waiting = list(_yielded)
    _yielded.clear()
    for turn in waiting:
        if not turn.done():
            turn.set_result(None)


async def answers_first() -> None:
    """Called by background work (what a listener does after its ack, the worker's jobs)
    before each Slack or Close call (`remote_call`) and non-urgent write: while requests of
    this process are being worked on towards their answer, it stands aside, for at most
    YIELD_MAX_SECONDS, so that in a burst the acks do not queue behind the work the earlier
    requests left. Work on the way to an answer never waits."""
    if not _holding() or _own_unanswered() is not None:
        return
    turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _yielded.append(turn)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(turn, YIELD_MAX_SECONDS)


@contextlib.asynccontextmanager
async def remote_call() -> AsyncIterator[None]:
    """Around one Slack or Close call: background work first stands aside (`answers_first`);
    a request's own call on the way to its answer goes at once, and holds nothing back while
    it waits on the network (`waiting_remote`)."""
    await answers_first()
    with waiting_remote():
        yield


@contextlib.contextmanager
def waiting_remote() -> Iterator[None]:
    """Within: the current request, if it waits for its answer, waits on the network (its own
    Slack or Close call, or one it shares, like a typeahead's lead search), and background work
    does not stand aside for it meanwhile. Standing aside for a request that is itself waiting
    helped no one: with typeaheads waiting ~1 s on Close, a quarter of the background steps
    (views.open, creates) waited the full YIELD_MAX_SECONDS."""
    own = _own_unanswered()
    if own is None:
        yield
        return
    _away[own] = _away.get(own, 0) + 1
    _release_if_free()
    try:
        yield
    finally:
        calls = _away.get(own, 0) - 1  # answered() meanwhile dropped it: 0 or less
        if calls > 0:
            _away[own] = calls
        else:
            _away.pop(own, None)
