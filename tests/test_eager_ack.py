"""bot.transport.eager_ack: the answer goes back at the listener's ack(), and is the one Bolt would give."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.response import BoltResponse

from bot.slack.after_ack import collecting
from bot.transport import eager_ack

COMMAND = "command=%2Fopportunity&text=Acme+12k&user_id=U1&team_id=T1&channel_id=C1&trigger_id=t"


def bare_app() -> AsyncApp:
    """A Bolt app with no listener yet, authorized without asking Slack's auth.test."""

    async def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-t", bot_id="B1")

    return AsyncApp(authorize=authorize, request_verification_enabled=False)


def make_app() -> tuple[AsyncApp, asyncio.Event]:
    app = bare_app()
    release = asyncio.Event()

    @app.command("/opportunity")
    async def command(ack: AsyncAck, body: dict[str, Any]) -> None:
        if body["text"] == "boom":
            raise RuntimeError("before the ack")
        await ack(text=f"got {body['text']}")
        await release.wait()  # work after the ack: the answer must not wait for it

    @app.error
    async def on_error(error: Exception) -> None:
        pass

    return app, release


def bolt_dispatches() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "bolt-dispatch" and not t.done()]


async def test_answered_at_the_ack_before_bolts_own_poll_returns() -> None:
    app, release = make_app()
    response = await eager_ack.dispatch(app, AsyncBoltRequest(body=COMMAND))
    assert (response.status, response.body) == (200, "got Acme 12k")
    # Bolt's dispatch has not returned yet: this answer did not wait for its 10 ms poll.
    [pending] = bolt_dispatches()
    release.set()
    assert (await pending).body == response.body  # Bolt's own answer, once it gives it


async def test_a_listener_failing_before_its_ack_gets_bolts_answer() -> None:
    app, _release = make_app()
    failing = COMMAND.replace("Acme+12k", "boom")
    ours = await eager_ack.dispatch(app, AsyncBoltRequest(body=failing))
    bolts = await app.async_dispatch(AsyncBoltRequest(body=failing))
    assert (ours.status, ours.body) == (bolts.status, bolts.body) == (500, "")
    assert not bolt_dispatches()


async def test_the_listener_goes_on_after_its_ack_only_once_the_answer_is_sent() -> None:
    """What a listener does after `ack()` (a parse, a modal build) never delays its answer."""
    app = bare_app()
    went_on: list[bool] = []

    @app.command("/opportunity")
    async def command(ack: AsyncAck) -> None:
        await ack()
        went_on.append(True)

    with collecting() as pending:
        response = await eager_ack.dispatch(app, AsyncBoltRequest(body=COMMAND))
    assert response.status == 200
    for _ in range(50):  # loop turns, not time: the listener had every chance to go on
        await asyncio.sleep(0)
    assert went_on == []
    pending.release()  # the transport sent the answer
    for _ in range(50):
        if went_on:
            break
        await asyncio.sleep(0)
    assert went_on == [True]


async def test_where_the_transport_gives_a_sender_the_ack_sends_the_answer_itself() -> None:
    """HTTP: the listener's `ack()` sends the answer from its own task (no hop back to the
    dispatch's), once, before the listener goes on; Bolt's own answer then only confirms it."""
    app = bare_app()
    order: list[str] = []

    @app.command("/opportunity")
    async def command(ack: AsyncAck) -> None:
        await ack(text="got it")
        order.append("went on")

    with collecting() as pending:

        async def send(response: BoltResponse) -> None:
            order.append(f"sent {response.status} {response.body}")
            pending.release()  # as the transport does once the answer is out

        with eager_ack.answering_with(send):
            response = await eager_ack.dispatch(app, AsyncBoltRequest(body=COMMAND))
    for _ in range(50):
        if "went on" in order:
            break
        await asyncio.sleep(0)
    assert order == ["sent 200 got it", "went on"]
    assert (response.status, response.body) == (200, "got it")
