"""The bot's Slack Web API client over real HTTP: what slack_sdk would answer and raise, timed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError

from bot.metrics import Metrics, ObservedSlackClient
from bot.sandbox.slack_sim import SlackSimulator

pytestmark = pytest.mark.asyncio

TOKEN = "xoxb-client-test-token"
VIEW = {
    "type": "modal",
    "callback_id": "test",
    "title": {"type": "plain_text", "text": "Naïve “test” ✓"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hello"}}],
}


@pytest.fixture
async def slack() -> AsyncIterator[SlackSimulator]:
    async with SlackSimulator(bot_token=TOKEN) as sim:
        yield sim


@pytest.fixture
async def client(slack: SlackSimulator) -> AsyncIterator[ObservedSlackClient]:
    observed = ObservedSlackClient(token=TOKEN, base_url=slack.api_url, metrics=Metrics())
    async with aiohttp.ClientSession() as session:
        observed.session = session
        yield observed


def calls_counted(client: ObservedSlackClient, method: str) -> float:
    value = client.metrics.registry.get_sample_value(
        "opportunity_bot_slack_api_seconds_count", {"method": method}
    )
    return value or 0.0


def errors_counted(client: ObservedSlackClient, method: str, error: str) -> float:
    value = client.metrics.registry.get_sample_value(
        "opportunity_bot_slack_api_errors_total", {"method": method, "error": error}
    )
    return value or 0.0


async def test_views_open_sends_the_view_and_answers_its_id_and_hash(
    slack: SlackSimulator, client: ObservedSlackClient
) -> None:
    trigger = slack.issue_trigger("U1")
    opened = await client.views_open(trigger_id=trigger, view=VIEW)
    assert opened["ok"] and opened["view"]["id"] and opened["view"]["hash"]
    assert opened.status_code == 200
    [call] = slack.calls("views.open")
    assert call.params["view"]["title"]["text"] == "Naïve “test” ✓"
    updated = await client.views_update(
        view_id=opened["view"]["id"], hash=opened["view"]["hash"], view=VIEW
    )
    assert updated["view"]["id"] == opened["view"]["id"]
    assert calls_counted(client, "views.open") == 1
    assert calls_counted(client, "views.update") == 1


async def test_slack_refusals_raise_what_slack_sdk_raises(
    slack: SlackSimulator, client: ObservedSlackClient
) -> None:
    slack.trigger_ttl = 0.05
    trigger = slack.issue_trigger("U1")
    await asyncio.sleep(0.1)
    with pytest.raises(SlackApiError) as expired:
        await client.views_open(trigger_id=trigger, view=VIEW)
    assert expired.value.response["error"] == "expired_trigger_id"
    assert errors_counted(client, "views.open", "expired_trigger_id") == 1

    slack.rate_limit("chat.postMessage", 1, retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        await client.chat_postMessage(channel="C0SALES", text="hi")
    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    assert limited.value.response.headers.get("retry-after") == "7"
    assert errors_counted(client, "chat.postMessage", "ratelimited") == 1


async def test_a_token_argument_authorizes_that_call_only(
    slack: SlackSimulator, client: ObservedSlackClient
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C0SALES", text="hi", token="xoxb-someone-else")
    assert refused.value.response["error"] == "invalid_auth"
    posted = await client.chat_postMessage(channel="C0SALES", text="hi")
    assert posted["ok"]
    assert "token" not in slack.calls("chat.postMessage")[-1].params


async def test_a_dropped_connection_is_tried_once_more(
    slack: SlackSimulator, client: ObservedSlackClient
) -> None:
    trigger = slack.issue_trigger("U1")
    # A keep-alive connection Slack has closed meanwhile: slack_sdk's default is one retry.
    unreachable = ObservedSlackClient(
        token=TOKEN, base_url="http://127.0.0.1:9/api/", metrics=Metrics()
    )
    unreachable.session = client.session
    started = time.perf_counter()
    with pytest.raises(aiohttp.ClientConnectionError):
        await unreachable.views_open(trigger_id=trigger, view=VIEW)
    assert time.perf_counter() - started >= 0.4  # slack_sdk's back-off before its one retry
    assert errors_counted(unreachable, "views.open", "unreachable") == 1
