"""The Slack gateway's typed errors, from Slack's own answers over real HTTP (the simulator)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.messages import Message
from bot.metrics import Metrics
from bot.slack.client import ObservedSlackClient
from bot.slack.errors import (
    GONE_CODES,
    NOT_ALLOWED_CODES,
    TOKEN_REJECTED_CODES,
    Gone,
    NotAllowed,
    RateLimited,
    SlackError,
    SlackFailure,
    TokenRejected,
    retry_after,
)
from bot.slack.gateway import SlackGateway
from sandbox.slack_sim import SlackSimulator

TOKEN = "xoxb-gateway-token"
HELLO = Message(
    text="hello", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
)
TOO_LONG = Message(
    text="hello", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
)

Call = Callable[[SlackSimulator, SlackGateway], Awaitable[object]]


@pytest.fixture
async def sim() -> AsyncIterator[SlackSimulator]:
    async with SlackSimulator(TOKEN) as running:
        yield running


@pytest.fixture
def slack(sim: SlackSimulator) -> SlackGateway:
    return SlackGateway(AsyncWebClient(token=TOKEN, base_url=sim.api_url))


async def _post(_sim: SlackSimulator, slack: SlackGateway, channel: str) -> None:
    await slack.post_message(channel, HELLO)


async def _update_deleted(sim: SlackSimulator, slack: SlackGateway) -> None:
    posted = await slack.post_message("C0SALES", HELLO)
    sim.delete_message(posted.channel, posted.ts)
    await slack.update_message(posted.channel, posted.ts, HELLO)


async def _update_a_persons_message(sim: SlackSimulator, slack: SlackGateway) -> None:
    theirs = sim.add_message("C0SALES", "my own words")
    await slack.update_message("C0SALES", theirs["ts"], HELLO)


async def _post_without_public_write(sim: SlackSimulator, slack: SlackGateway) -> None:
    sim.scopes.discard("chat:write.public")
    await slack.post_message("C0GENERAL", HELLO)


async def _wrong_token(sim: SlackSimulator, _slack: SlackGateway) -> None:
    await SlackGateway(AsyncWebClient(token="xoxb-wrong", base_url=sim.api_url)).auth_test()


async def _without_scope(sim: SlackSimulator, slack: SlackGateway) -> None:
    sim.scopes.clear()
    await slack.post_message("C0SALES", HELLO)


async def _bot_token_opens_a_socket(_sim: SlackSimulator, slack: SlackGateway) -> None:
    await slack.open_socket_connection(TOKEN)


async def _complete_unknown_execution(sim: SlackSimulator, slack: SlackGateway) -> None:
    execution = sim.functions.start("create_opportunity", {})
    await slack.fail_step(execution.token, "Fx0NOPE", "it broke")


async def _complete_twice(sim: SlackSimulator, slack: SlackGateway) -> None:
    execution = sim.functions.start("create_opportunity", {})
    await slack.fail_step(execution.token, execution.id, "it broke")
    await slack.fail_step(execution.token, execution.id, "it broke again")


async def _outputs_slack_refuses(sim: SlackSimulator, slack: SlackGateway) -> None:
    execution = sim.functions.start("create_opportunity", {})
    await slack.complete_step(execution.token, execution.id, {"no_such_output": "x"})


async def _blocks_over_the_limit(_sim: SlackSimulator, slack: SlackGateway) -> None:
    await slack.post_message("C0SALES", TOO_LONG)


@pytest.mark.parametrize(
    ("call", "category", "method", "code"),
    [
        (lambda sim, s: _post(sim, s, "C0NOPE"), Gone, "chat.postMessage", "channel_not_found"),
        (lambda sim, s: _post(sim, s, "C0PRIVATE"), Gone, "chat.postMessage", "channel_not_found"),
        (lambda sim, s: _post(sim, s, "C0ARCHIVED"), Gone, "chat.postMessage", "is_archived"),
        (_update_deleted, Gone, "chat.update", "message_not_found"),
        (
            _complete_unknown_execution,
            Gone,
            "functions.completeError",
            "function_execution_not_found",
        ),
        (_complete_twice, Gone, "functions.completeError", "execution_not_in_running_state"),
        (_post_without_public_write, NotAllowed, "chat.postMessage", "not_in_channel"),
        (_update_a_persons_message, NotAllowed, "chat.update", "cant_update_message"),
        (_wrong_token, TokenRejected, "auth.test", "invalid_auth"),
        (_without_scope, TokenRejected, "chat.postMessage", "missing_scope"),
        (
            _bot_token_opens_a_socket,
            TokenRejected,
            "apps.connections.open",
            "not_allowed_token_type",
        ),
        (
            _outputs_slack_refuses,
            SlackFailure,
            "functions.completeSuccess",
            "parameter_validation_failed",
        ),
        (_blocks_over_the_limit, SlackFailure, "chat.postMessage", "invalid_blocks"),
    ],
)
async def test_slacks_answers_come_out_as_their_category(
    sim: SlackSimulator,
    slack: SlackGateway,
    call: Call,
    category: type[SlackError],
    method: str,
    code: str,
) -> None:
    with pytest.raises(SlackError) as raised:
        await call(sim, slack)
    assert type(raised.value) is category
    assert (raised.value.method, raised.value.code, raised.value.status) == (method, code, 200)


@pytest.mark.parametrize(
    ("code", "category"),
    [
        *((code, Gone) for code in sorted(GONE_CODES)),
        *((code, NotAllowed) for code in sorted(NOT_ALLOWED_CODES)),
        *((code, TokenRejected) for code in sorted(TOKEN_REJECTED_CODES)),
        ("internal_error", SlackFailure),
        ("fatal_error", SlackFailure),
        ("msg_too_long", SlackFailure),
    ],
)
async def test_every_code_of_a_category_maps_to_it(
    sim: SlackSimulator, slack: SlackGateway, code: str, category: type[SlackError]
) -> None:
    sim.fail_method("chat.postMessage", code)
    with pytest.raises(SlackError) as raised:
        await slack.post_message("C0SALES", HELLO)
    assert type(raised.value) is category and raised.value.code == code
    assert (await slack.post_message("C0SALES", HELLO)).channel == "C0SALES"  # one answer only


@pytest.mark.parametrize(("header_seconds", "wait"), [(3, 3.0), (0, 0.05)])
async def test_a_rate_limit_carries_slacks_retry_after(
    sim: SlackSimulator, slack: SlackGateway, header_seconds: int, wait: float
) -> None:
    sim.rate_limit("views.publish", 1, retry_after=header_seconds)
    with pytest.raises(RateLimited) as limited:
        await slack.publish_view("U0ALICE", {"type": "home", "blocks": []})
    error = limited.value
    assert (error.method, error.code, error.status, error.retry_after) == (
        "views.publish",
        "ratelimited",
        429,
        wait,
    )


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "7"}, 7.0),  # whatever the case the server wrote it in
        ({"Retry-After": ["4"]}, 4.0),
        ({"Retry-After": "0"}, 0.05),  # never "now": a caller would spin
        ({"Retry-After": "soon"}, 1.0),
        ({}, 1.0),
        (None, 1.0),
    ],
)
def test_retry_after_is_read_from_the_header(
    headers: dict[str, object] | None, seconds: float
) -> None:
    assert retry_after(headers) == seconds


async def test_slack_not_answering_is_not_one_of_slacks_refusals() -> None:
    # A port nobody listens on: the connection is refused before any answer.
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    slack = SlackGateway(AsyncWebClient(token=TOKEN, base_url=f"http://127.0.0.1:{port}/api/"))
    with pytest.raises(aiohttp.ClientError):
        await slack.post_message("C0SALES", HELLO)


async def test_the_observed_client_counts_each_call_and_slacks_error(sim: SlackSimulator) -> None:
    metrics = Metrics()
    slack = SlackGateway(ObservedSlackClient(token=TOKEN, base_url=sim.api_url, metrics=metrics))
    await slack.post_message("C0SALES", HELLO)
    with pytest.raises(Gone):
        await slack.post_message("C0ARCHIVED", HELLO)
    registry = metrics.registry
    calls = registry.get_sample_value(
        "opportunity_bot_slack_api_seconds_count", {"method": "chat.postMessage"}
    )
    errors = registry.get_sample_value(
        "opportunity_bot_slack_api_errors_total",
        {"method": "chat.postMessage", "error": "is_archived"},
    )
    assert (calls, errors) == (2.0, 1.0)
