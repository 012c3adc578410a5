"""bot.tasks.answers_first: in a burst, background work stands aside while requests of the
process wait for their answer, so their acks do not queue behind it (issue #25.2)."""

from __future__ import annotations

import asyncio
import time

from bot.slack.after_ack import collecting
from bot.tasks import YIELD_MAX_SECONDS, answers_first, remote_call, waiting_remote


async def turns(n: int = 50) -> None:
    """Let the loop run `n` turns (a count, not a time)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_nothing_waits_when_no_request_is_being_answered() -> None:
    await asyncio.wait_for(answers_first(), YIELD_MAX_SECONDS / 10)


async def test_background_work_waits_for_the_answer_then_goes_on_at_once() -> None:
    with collecting() as request:
        on_the_way = asyncio.ensure_future(answers_first())  # part of answering this request
        await turns()
        assert on_the_way.done()  # work on the way to the answer never waits
    background = asyncio.ensure_future(answers_first())  # work outside the request's scope
    await turns()
    assert not background.done()
    started = time.perf_counter()
    request.release()  # the answer is sent
    await asyncio.wait_for(background, 1)
    assert time.perf_counter() - started < YIELD_MAX_SECONDS


async def test_an_answer_that_never_comes_holds_background_work_only_briefly() -> None:
    with collecting() as request:
        pass
    started = time.perf_counter()
    await asyncio.wait_for(answers_first(), 2)
    assert YIELD_MAX_SECONDS * 0.9 <= time.perf_counter() - started < 1
    request.release()


async def test_a_request_waiting_on_its_own_remote_call_holds_nothing_back() -> None:
    """A typeahead waiting ~1 s on Close's lead search: background work does not stand aside
    for it meanwhile (it held every views.open and create for the full YIELD_MAX_SECONDS), and
    stands aside again once the answer is being worked on."""
    reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    back_from_call = asyncio.Event()

    async def search_then_answer() -> None:
        async with remote_call():  # the request's own call: never waits
            await reply  # the network
        back_from_call.set()

    with collecting() as request:
        on_the_way = asyncio.ensure_future(search_then_answer())
    await turns()
    background = asyncio.ensure_future(answers_first())
    await asyncio.wait_for(background, YIELD_MAX_SECONDS / 2)  # not held while it waits

    reply.set_result(None)
    await asyncio.wait_for(back_from_call.wait(), 1)
    await on_the_way
    held = asyncio.ensure_future(answers_first())
    await turns()
    assert not held.done()  # working on its answer again: background work stands aside
    request.release()
    await asyncio.wait_for(held, YIELD_MAX_SECONDS / 2)


async def test_background_remote_calls_stand_aside_for_requests() -> None:
    with collecting() as request:
        pass
    entered = asyncio.Event()

    async def background_call() -> None:
        async with remote_call():
            entered.set()

    call = asyncio.ensure_future(background_call())
    await turns()
    assert not entered.is_set()
    request.release()
    await asyncio.wait_for(call, YIELD_MAX_SECONDS / 2)
    assert entered.is_set()


async def test_a_request_sharing_another_ones_search_holds_nothing_back() -> None:
    """Keystrokes typing the same term share one Close search (bot.leads.search): the request
    that waits on the other's search waits on the network too."""
    shared: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def wait_for_shared() -> None:
        with waiting_remote():
            await shared

    with collecting() as request:
        waiting = asyncio.ensure_future(wait_for_shared())
    await turns()
    await asyncio.wait_for(answers_first(), YIELD_MAX_SECONDS / 2)
    shared.set_result(None)
    await waiting
    held = asyncio.ensure_future(answers_first())
    await turns()
    assert not held.done()
    request.release()
    await asyncio.wait_for(held, YIELD_MAX_SECONDS / 2)
