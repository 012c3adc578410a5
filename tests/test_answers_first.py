"""bot.tasks.answers_first: in a burst, background work stands aside while requests of the
process wait for their answer, so their acks do not queue behind it (issue #25.2)."""

from __future__ import annotations

import asyncio
import time

from bot.slack.after_ack import collecting
from bot.tasks import YIELD_MAX_SECONDS, answers_first


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
