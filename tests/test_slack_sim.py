"""The Slack simulator and driver against each other and against slack_sdk, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import blockkit
from sandbox.server import RunningServer, start_server
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import RejectedAck, SlackSimulator

SECRET = "sandbox-signing-secret"
TOKEN = "xoxb-sandbox-token"


# -- a stand-in for the bot's /slack/events ----------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    data: dict[str, Any]


Hook = Callable[[dict[str, Any]], Awaitable[Response]]


@dataclass
class FakeBot:
    """Verifies Slack's signature like Bolt does, records what arrived, answers via `hook`."""

    received: list[Received] = field(default_factory=list)
    hook: Hook | None = None

    async def events(self, request: Request) -> Response:
        body = await request.body()
        verifier = SignatureVerifier(SECRET)
        if not verifier.is_valid_request(body, dict(request.headers)):
            return Response("invalid signature", status_code=401)
        if request.headers["content-type"].startswith("application/json"):
            data = json.loads(body)
        else:
            form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
            data = json.loads(form["payload"]) if "payload" in form else form
        self.received.append(Received(dict(request.headers), body, data))
        if self.hook is not None:
            return await self.hook(data)
        return Response(b"", status_code=200)

    @property
    def last(self) -> dict[str, Any]:
        return self.received[-1].data


@pytest.fixture
async def sim() -> AsyncIterator[SlackSimulator]:
    async with SlackSimulator(TOKEN) as running:
        yield running


@pytest.fixture
async def fake_bot() -> AsyncIterator[tuple[FakeBot, RunningServer]]:
    bot = FakeBot()
    server = await start_server(
        Starlette(routes=[Route("/slack/events", bot.events, methods=["POST"])])
    )
    yield bot, server
    await server.stop()


@pytest.fixture
async def bot(fake_bot: tuple[FakeBot, RunningServer]) -> FakeBot:
    return fake_bot[0]


@pytest.fixture
async def driver(
    sim: SlackSimulator, fake_bot: tuple[FakeBot, RunningServer]
) -> AsyncIterator[SlackDriver]:
    async with SlackDriver(sim, fake_bot[1].url + "slack/events", SECRET) as d:
        yield d


@pytest.fixture
def client(sim: SlackSimulator) -> AsyncWebClient:
    return AsyncWebClient(base_url=sim.api_url, token=TOKEN)


def text(s: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": s}


def option(label: str, value: str) -> dict[str, Any]:
    return {"text": text(label), "value": value}


def modal(*blocks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "opportunity",
        "title": text("New opportunity"),
        "submit": text("Create"),
        "close": text("Cancel"),
        "private_metadata": json.dumps({"channel_id": "C0SALES"}),
        "blocks": list(blocks),
        **extra,
    }


def input_block(block_id: str, element: dict[str, Any], label: str = "Field") -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "label": text(label),
        "element": {"action_id": block_id, **element},
    }


STATUSES = {
    "type": "static_select",
    "option_groups": [
        {
            "label": text("Sales"),
            "options": [option("Active", "stat_active"), option("Won", "stat_won")],
        },
        {"label": text("Renewals"), "options": [option("Proposal", "stat_prop")]},
    ],
    "initial_option": option("Active", "stat_active"),
}

DEAL_MODAL = modal(
    input_block(
        "lead",
        {
            "type": "external_select",
            "min_query_length": 1,
            "initial_option": option("Acme Corp", "lead_acme"),
        },
    ),
    input_block("value", {"type": "plain_text_input", "initial_value": "12k"}),
    input_block(
        "value_period",
        {
            "type": "static_select",
            "options": [
                option("One-time", "one_time"),
                option("Monthly", "monthly"),
                option("Annual", "annual"),
            ],
            "initial_option": option("Annual", "annual"),
        },
    ),
    input_block(
        "confidence", {"type": "number_input", "is_decimal_allowed": False, "initial_value": "60"}
    ),
    input_block("date_won", {"type": "datepicker", "initial_date": "2026-12-04"}),
    input_block("status", STATUSES),
    input_block("owner", {"type": "users_select", "initial_user": "U0ALICE"}),
    input_block(
        "tags",
        {
            "type": "multi_static_select",
            "options": [option("Hot", "hot"), option("Inbound", "inbound")],
        },
    ),
    input_block("note", {"type": "plain_text_input", "multiline": True}),
)


async def open_modal(
    driver: SlackDriver, client: AsyncWebClient, bot: FakeBot, view: dict[str, Any]
) -> str:
    """A command whose handler opens `view` with the trigger_id, as the bot will."""

    async def handler(payload: dict[str, Any]) -> Response:
        await client.views_open(trigger_id=payload["trigger_id"], view=view)
        return Response(b"")

    bot.hook = handler
    result = await driver.slash_command("Acme 12k")
    bot.hook = None
    opened = await driver.wait_for_view(result.trigger_id, timeout=2)
    return str(opened["id"])


# -- signing and payload shapes ----------------------------------------------------------------


async def test_slash_command_is_signed_and_shaped_like_slack(
    driver: SlackDriver, bot: FakeBot
) -> None:
    result = await driver.slash_command("Acme <@U0BOB|bob> $12k", user_id="U0CAROL")

    assert result.response.status_code == 200
    got = bot.received[-1]
    assert got.headers["content-type"] == "application/x-www-form-urlencoded"
    assert got.headers["x-slack-signature"].startswith("v0=")
    assert got.data["command"] == "/opportunity"
    assert got.data["text"] == "Acme <@U0BOB|bob> $12k"
    assert got.data["user_id"] == "U0CAROL"
    assert got.data["channel_id"] == "C0SALES"
    assert got.data["team_id"] == "T0SANDBOX"
    assert got.data["api_app_id"] == "A0SANDBOX"
    assert got.data["trigger_id"] == result.trigger_id
    assert got.data["response_url"] == result.response_url
    assert result.response_url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        (None, "v0=" + "0" * 64),  # wrong signature
        (int(time.time()) - 10 * 60, None),  # correctly signed, but too old
    ],
    ids=["wrong-signature", "stale-timestamp"],
)
async def test_forged_or_stale_requests_fail_signature_verification(
    driver: SlackDriver, bot: FakeBot, timestamp: int | None, signature: str | None
) -> None:
    response = await driver.raw(
        b"command=%2Fopportunity",
        "application/x-www-form-urlencoded",
        timestamp=timestamp,
        signature=signature,
    )
    assert response.status_code == 401
    assert bot.received == []


async def test_unsigned_request_fails_signature_verification(driver: SlackDriver) -> None:
    response = await driver.raw(b"{}", "application/json", sign=False)
    assert response.status_code == 401


async def test_global_and_message_shortcuts_and_app_home_payloads(
    sim: SlackSimulator, driver: SlackDriver, bot: FakeBot
) -> None:
    source = sim.add_message("C0SALES", "Just closed Globex, 40k one-time, signed today!")
    shortcut = await driver.message_shortcut(
        "create_opportunity", message=source, channel_id="C0SALES"
    )
    payload = bot.last
    assert payload["type"] == "message_action"
    assert payload["callback_id"] == "create_opportunity"
    assert payload["message"]["text"].startswith("Just closed Globex")
    assert payload["message_ts"] == source["ts"]
    assert payload["channel"]["id"] == "C0SALES"
    assert payload["trigger_id"] == shortcut.trigger_id
    assert payload["response_url"] == shortcut.response_url

    await driver.global_shortcut("new_opportunity", user_id="U0BOB")
    assert bot.last["type"] == "shortcut"
    assert bot.last["user"]["id"] == "U0BOB"

    await driver.app_home_opened("U0ALICE")
    got = bot.received[-1]
    assert got.headers["content-type"] == "application/json"
    assert got.data["type"] == "event_callback"
    assert got.data["event"] == {
        **got.data["event"],
        "type": "app_home_opened",
        "user": "U0ALICE",
        "tab": "home",
    }

    await driver.event({"type": "app_home_opened", "user": "U0BOB", "tab": "home"}, retry_num=1)
    assert bot.received[-1].headers["x-slack-retry-num"] == "1"


# -- Web API basics ------------------------------------------------------------------------------


async def test_auth_test_reports_bot_identity_and_scopes_header(client: AsyncWebClient) -> None:
    response = await client.auth_test()
    assert response["user_id"] == "U0BOT"
    assert response["bot_id"] == "B0SANDBOX"
    assert response["team_id"] == "T0SANDBOX"
    scopes = set(response.headers["x-oauth-scopes"].split(","))
    assert {"commands", "chat:write", "users:read.email"} <= scopes


@pytest.mark.parametrize(("token", "error"), [("xoxb-wrong", "invalid_auth"), (None, "not_authed")])
async def test_bad_tokens_are_refused_with_http_200(
    sim: SlackSimulator, token: str | None, error: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as http:
        response = await http.post(sim.api_url + "auth.test", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"ok": False, "error": error}


async def test_users_info_gives_zone_locale_and_email(client: AsyncWebClient) -> None:
    bob = (await client.users_info(user="U0BOB", include_locale=True))["user"]
    assert bob["tz"] == "Europe/London"
    assert bob["tz_offset"] in (0, 3600)
    assert bob["locale"] == "en-GB"
    assert bob["profile"]["email"] == "Bob@Example.com"

    without_locale = (await client.users_info(user="U0CAROL"))["user"]
    assert "locale" not in without_locale
    assert without_locale["tz_offset"] == 9 * 3600
    assert without_locale["is_admin"] is True

    with pytest.raises(SlackApiError) as refused:
        await client.users_info(user="U0NOBODY")
    assert refused.value.response["error"] == "user_not_found"


async def test_lookup_by_email_ignores_case_and_skips_strangers(client: AsyncWebClient) -> None:
    found = await client.users_lookupByEmail(email="bob@example.com")
    assert found["user"]["id"] == "U0BOB"
    with pytest.raises(SlackApiError) as refused:
        await client.users_lookupByEmail(email="nobody@example.com")
    assert refused.value.response["error"] == "users_not_found"


async def test_without_users_read_email_emails_are_hidden(
    sim: SlackSimulator, client: AsyncWebClient
) -> None:
    sim.scopes.discard("users:read.email")

    alice = (await client.users_info(user="U0ALICE"))["user"]
    assert "email" not in alice["profile"]
    with pytest.raises(SlackApiError) as refused:
        await client.users_lookupByEmail(email="alice@example.com")
    assert refused.value.response["error"] == "missing_scope"
    assert refused.value.response["needed"] == "users:read.email"
    assert "users:read.email" not in (await client.auth_test()).headers["x-oauth-scopes"]


async def test_users_list_pages_with_cursor(client: AsyncWebClient, sim: SlackSimulator) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await client.users_list(limit=3, cursor=cursor)
        pages += 1
        seen += [m["id"] for m in page["members"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert seen == [u.id for u in sim.workspace.users]
    assert pages == -(-len(seen) // 3)
    assert any(m["deleted"] for m in (await client.users_list())["members"])


# -- modals --------------------------------------------------------------------------------------


async def test_views_open_accepts_json_body_and_form_encoded_view(
    sim: SlackSimulator, client: AsyncWebClient
) -> None:
    as_json = await client.views_open(trigger_id=sim.issue_trigger("U0ALICE"), view=DEAL_MODAL)
    as_form = await client.api_call(
        "views.open",
        params={"trigger_id": sim.issue_trigger("U0ALICE"), "view": json.dumps(DEAL_MODAL)},
    )
    for response in (as_json, as_form):
        view = response["view"]
        assert view["id"].startswith("V")
        assert view["hash"]
        assert view["state"] == {"values": {}}
        assert sim.views[view["id"]]["callback_id"] == "opportunity"
    assert sim.calls("views.open")[1].params["view"]["title"]["text"] == "New opportunity"


async def test_trigger_ids_expire_and_work_once(
    sim: SlackSimulator, client: AsyncWebClient
) -> None:
    fresh = sim.issue_trigger("U0ALICE")
    await client.views_open(trigger_id=fresh, view=DEAL_MODAL)
    stale = sim.issue_trigger("U0ALICE")
    # Its life is over: the knob is set under its age rather than the test sleeping past it.
    sim.trigger_ttl = 0.0

    for trigger_id, error in [
        (fresh, "exchanged_trigger_id"),
        (stale, "expired_trigger_id"),
        ("123.made-up", "invalid_trigger_id"),
    ]:
        with pytest.raises(SlackApiError) as refused:
            await client.views_open(trigger_id=trigger_id, view=DEAL_MODAL)
        assert refused.value.response["error"] == error


async def test_invalid_view_does_not_use_up_the_trigger(
    sim: SlackSimulator, client: AsyncWebClient
) -> None:
    trigger_id = sim.issue_trigger("U0ALICE")
    with pytest.raises(SlackApiError):
        await client.views_open(trigger_id=trigger_id, view=modal(title=text("x" * 25)))
    assert (await client.views_open(trigger_id=trigger_id, view=DEAL_MODAL))["ok"]


async def test_views_update_rejects_a_stale_hash(
    sim: SlackSimulator, client: AsyncWebClient
) -> None:
    opened = (await client.views_open(trigger_id=sim.issue_trigger("U0ALICE"), view=DEAL_MODAL))[
        "view"
    ]
    first = await client.views_update(
        view_id=opened["id"], hash=opened["hash"], view=modal(title=text("Step 2"))
    )
    assert first["view"]["hash"] != opened["hash"]
    assert first["view"]["id"] == opened["id"]

    with pytest.raises(SlackApiError) as refused:
        await client.views_update(
            view_id=opened["id"], hash=opened["hash"], view=modal(title=text("Lost"))
        )
    assert refused.value.response["error"] == "hash_conflict"
    assert sim.views[opened["id"]]["title"]["text"] == "Step 2"

    by_external = modal(external_id="deal-1")
    ext = (await client.views_open(trigger_id=sim.issue_trigger("U0BOB"), view=by_external))["view"]
    updated = await client.views_update(
        external_id="deal-1", view=modal(title=text("Again"), external_id="deal-1")
    )
    assert updated["view"]["id"] == ext["id"]


async def test_views_push_stops_at_three(sim: SlackSimulator, client: AsyncWebClient) -> None:
    await client.views_open(trigger_id=sim.issue_trigger("U0ALICE"), view=DEAL_MODAL)
    for _ in range(2):
        await client.views_push(trigger_id=sim.issue_trigger("U0ALICE"), view=modal())
    with pytest.raises(SlackApiError) as refused:
        await client.views_push(trigger_id=sim.issue_trigger("U0ALICE"), view=modal())
    assert refused.value.response["error"] == "push_limit_reached"


async def test_views_publish_sets_the_home_tab(sim: SlackSimulator, client: AsyncWebClient) -> None:
    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Hi*"}}],
    }
    published = await client.views_publish(user_id="U0ALICE", view=home)
    assert sim.home_views["U0ALICE"] == published["view"]["id"]
    with pytest.raises(SlackApiError) as refused:
        await client.views_publish(user_id="U0ALICE", view=home, hash="stale")
    assert refused.value.response["error"] == "hash_conflict"


async def test_submission_state_comes_from_initial_values_and_overrides(
    sim: SlackSimulator, driver: SlackDriver, client: AsyncWebClient, bot: FakeBot
) -> None:
    view_id = await open_modal(driver, client, bot, DEAL_MODAL)

    response = await driver.submit_view(
        view_id,
        values={
            "value": "15k",
            "status": "stat_prop",  # found in the second option group
            "lead": {"text": "New lead: Initech", "value": "new:Initech"},
            "tags": ["hot"],
            "note": None,
        },
    )
    assert response.status_code == 200
    payload = bot.last
    assert payload["type"] == "view_submission"
    assert payload["user"]["id"] == "U0ALICE"
    assert payload["trigger_id"]
    assert payload["response_urls"] == []
    view = payload["view"]
    assert (view["id"], view["hash"], view["callback_id"]) == (
        view_id,
        sim.views[view_id]["hash"],
        "opportunity",
    )
    assert json.loads(view["private_metadata"]) == {"channel_id": "C0SALES"}
    values = view["state"]["values"]
    assert values["value"]["value"] == {"type": "plain_text_input", "value": "15k"}
    assert values["value_period"]["value_period"]["selected_option"]["value"] == "annual"
    assert values["confidence"]["confidence"] == {"type": "number_input", "value": "60"}
    assert values["date_won"]["date_won"]["selected_date"] == "2026-12-04"
    assert values["status"]["status"]["selected_option"] == option("Proposal", "stat_prop")
    assert values["owner"]["owner"]["selected_user"] == "U0ALICE"
    assert values["lead"]["lead"]["selected_option"] == option("New lead: Initech", "new:Initech")
    assert [o["value"] for o in values["tags"]["tags"]["selected_options"]] == ["hot"]
    assert values["note"]["note"]["value"] is None
    assert view_id in sim.closed_views  # an empty ack closes the modal


async def test_unknown_option_value_is_a_test_error(
    sim: SlackSimulator, driver: SlackDriver, client: AsyncWebClient, bot: FakeBot
) -> None:
    view_id = await open_modal(driver, client, bot, DEAL_MODAL)
    with pytest.raises(ValueError, match="stat_gone"):
        await driver.submit_view(view_id, values={"status": "stat_gone"})


async def test_select_in_view_is_kept_by_a_later_submit(
    sim: SlackSimulator, driver: SlackDriver, client: AsyncWebClient, bot: FakeBot
) -> None:
    view_id = await open_modal(driver, client, bot, DEAL_MODAL)
    picked = await driver.select_in_view(view_id, "owner", "U0BOB")
    action = bot.last
    assert action["type"] == "block_actions"
    assert action["container"] == {"type": "view", "view_id": view_id}
    assert action["actions"][0]["selected_user"] == "U0BOB"
    assert action["view"]["state"]["values"]["owner"]["owner"]["selected_user"] == "U0BOB"
    assert picked.trigger_id

    await driver.submit_view(view_id)
    assert bot.last["view"]["state"]["values"]["owner"]["owner"]["selected_user"] == "U0BOB"


async def test_submission_acks_drive_the_modal(
    sim: SlackSimulator, driver: SlackDriver, client: AsyncWebClient, bot: FakeBot
) -> None:
    view_id = await open_modal(driver, client, bot, DEAL_MODAL)
    acks: list[dict[str, Any]] = [
        {"response_action": "errors", "errors": {"value": "Enter an amount like 12k"}},
        {"response_action": "update", "view": modal(title=text("Queued"))},
    ]

    async def answer(payload: dict[str, Any]) -> Response:
        return JSONResponse(acks.pop(0))

    bot.hook = answer
    await driver.submit_view(view_id, values={"value": "lots"})
    assert view_id not in sim.closed_views
    old_hash = sim.views[view_id]["hash"]
    await driver.submit_view(view_id, values={"value": "12k"})
    assert sim.views[view_id]["title"]["text"] == "Queued"
    assert sim.views[view_id]["hash"] != old_hash

    bot.hook = lambda payload: _ack({"response_action": "errors", "errors": {"nope": "x"}})
    with pytest.raises(RejectedAck, match="nope"):
        await driver.submit_view(view_id)


async def _ack(body: dict[str, Any]) -> Response:
    return JSONResponse(body)


async def test_block_suggestion_names_the_external_select(
    sim: SlackSimulator, driver: SlackDriver, client: AsyncWebClient, bot: FakeBot
) -> None:
    view_id = await open_modal(driver, client, bot, DEAL_MODAL)
    bot.hook = lambda payload: _ack({"options": [option("Acme Corp", "lead_acme")]})
    response = await driver.block_suggestion(view_id, "lead", "acm")
    assert response.json()["options"][0]["value"] == "lead_acme"
    assert bot.last["type"] == "block_suggestion"
    assert (bot.last["block_id"], bot.last["action_id"], bot.last["value"]) == (
        "lead",
        "lead",
        "acm",
    )
    assert bot.last["view"]["id"] == view_id


async def test_wait_for_view_follows_the_trigger(
    sim: SlackSimulator, driver: SlackDriver, client: AsyncWebClient
) -> None:
    result = await driver.slash_command("")  # the fake bot opens nothing
    with pytest.raises(TimeoutError):
        await driver.wait_for_view(result.trigger_id, timeout=0.05)

    async def open_later() -> None:
        await asyncio.sleep(0.05)
        await client.views_open(trigger_id=result.trigger_id, view=DEAL_MODAL)

    task = asyncio.create_task(open_later())
    view = await driver.wait_for_view(result.trigger_id, timeout=2)
    await task
    assert view["callback_id"] == "opportunity"


# -- posting -------------------------------------------------------------------------------------

SUMMARY_BLOCKS: list[dict[str, Any]] = [
    {"type": "header", "text": text("New opportunity: Acme Corp")},
    {
        "type": "actions",
        "block_id": "deal",
        "elements": [
            {"type": "button", "action_id": "edit", "text": text("Edit"), "value": "opp_1"}
        ],
    },
]


async def test_post_in_thread_and_read_it_back(sim: SlackSimulator, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(
        channel="C0SALES", text="Acme Corp: $12,000", blocks=SUMMARY_BLOCKS
    )
    reply = await client.api_call(
        "chat.postMessage",
        params={
            "channel": "C0SALES",
            "text": "Details",
            "thread_ts": parent["ts"],
            "blocks": json.dumps(
                [
                    {
                        "type": "section",
                        "text": {"type": "mrkdwn", "text": "<https://app.close.com/|Open>"},
                    }
                ]
            ),
        },
    )
    assert reply["channel"] == "C0SALES"
    thread = sim.thread("C0SALES", parent["ts"])
    assert [m["ts"] for m in thread] == [parent["ts"], reply["ts"]]
    assert thread[0]["reply_count"] == 1
    assert thread[1]["blocks"][0]["text"]["text"].startswith("<https://app.close.com/")
    assert sim.calls("chat.postMessage")[1].params["blocks"][0]["type"] == "section"

    await client.chat_update(channel="C0SALES", ts=parent["ts"], text="Acme Corp: $15,000")
    assert sim.messages("C0SALES")[0]["text"] == "Acme Corp: $15,000"
    link = await client.chat_getPermalink(channel="C0SALES", message_ts=reply["ts"])
    assert link["permalink"].startswith("https://sandbox.slack.com/archives/C0SALES/p")


async def test_user_id_as_channel_posts_to_the_app_dm(
    sim: SlackSimulator, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="U0ALICE", text="Your deal was created")
    assert posted["channel"] == "D0ALICE"
    assert sim.messages("D0ALICE")[0]["text"] == "Your deal was created"
    opened = await client.conversations_open(users="U0BOB")
    assert opened["channel"]["id"] == "D0BOB"


@pytest.mark.parametrize(
    ("channel", "drop_scope", "error"),
    [
        ("C0PRIVATE", None, "channel_not_found"),  # private and the bot is not in it
        ("C0GENERAL", "chat:write.public", "not_in_channel"),
        ("C0ARCHIVED", None, "is_archived"),
        ("D0ALICEBOB", None, "channel_not_found"),  # a DM between two people
        ("C0NOPE", None, "channel_not_found"),
    ],
)
async def test_channels_that_refuse_the_bot(
    sim: SlackSimulator, client: AsyncWebClient, channel: str, drop_scope: str | None, error: str
) -> None:
    if drop_scope:
        sim.scopes.discard(drop_scope)
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel=channel, text="hello")
    assert refused.value.response["error"] == error
    assert sim.messages(channel) == []


async def test_public_channel_accepts_the_bot_with_chat_write_public_or_after_join(
    sim: SlackSimulator, client: AsyncWebClient
) -> None:
    assert (await client.chat_postMessage(channel="C0GENERAL", text="hi"))["ok"]
    sim.scopes -= {"chat:write.public"}
    sim.scopes |= {"channels:join"}
    await client.conversations_join(channel="C0GENERAL")
    assert (await client.chat_postMessage(channel="C0GENERAL", text="hi again"))["ok"]


async def test_response_url_posts_are_recorded_and_limited(
    sim: SlackSimulator, driver: SlackDriver, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0SALES", text="Acme", blocks=SUMMARY_BLOCKS)
    clicked = await driver.press_button(
        channel_id="C0SALES", message_ts=posted["ts"], action_id="edit"
    )
    assert clicked.response_url
    async with httpx.AsyncClient() as http:
        first = await http.post(
            clicked.response_url, json={"text": "Edited", "replace_original": True}
        )
        assert first.status_code == 200
        assert sim.messages("C0SALES")[0]["text"] == "Edited"
        for _ in range(4):
            await http.post(clicked.response_url, json={"text": "again"})
        sixth = await http.post(clicked.response_url, json={"text": "one too many"})
    assert sixth.status_code == 404
    assert len(sim.response_url_posts(clicked.response_url)) == 5
    assert (await sim.wait_for("response_url", lambda c: c.status == 404)).response[
        "error"
    ] == "used_url"


async def test_press_button_payload(
    sim: SlackSimulator, driver: SlackDriver, client: AsyncWebClient, bot: FakeBot
) -> None:
    posted = await client.chat_postMessage(channel="C0SALES", text="Acme", blocks=SUMMARY_BLOCKS)
    await driver.press_button(
        channel_id="C0SALES", message_ts=posted["ts"], action_id="edit", user_id="U0BOB"
    )
    payload = bot.last
    assert payload["type"] == "block_actions"
    assert payload["container"]["message_ts"] == posted["ts"]
    assert payload["channel"]["id"] == "C0SALES"
    assert payload["actions"][0] == {
        **payload["actions"][0],
        "action_id": "edit",
        "block_id": "deal",
        "value": "opp_1",
    }
    assert payload["message"]["ts"] == posted["ts"]


# -- Block Kit limits ----------------------------------------------------------------------------


def section(i: int) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": f"line {i}"}}


def select_with(label: str) -> dict[str, Any]:
    return input_block("status", {"type": "static_select", "options": [option(label, "v")]})


@pytest.mark.parametrize(
    ("view", "pointer"),
    [
        (modal(title=text("x" * 25)), "/title/text"),
        (modal(submit=text("x" * 25)), "/submit/text"),
        (modal(title={"type": "mrkdwn", "text": "*New*"}), "/title/type"),
        (modal(*[section(i) for i in range(101)]), "/blocks"),
        (modal(select_with("o" * 76)), "/blocks/0/element/options/0/text/text"),
        (modal({"type": "header", "text": text("h" * 151)}), "/blocks/0/text/text"),
        (
            modal({"type": "header", "text": {"type": "mrkdwn", "text": "*h*"}}),
            "/blocks/0/text/type",
        ),
        (modal(private_metadata="m" * 3001), "/private_metadata"),
        (modal(callback_id="c" * 256), "/callback_id"),
        (
            modal({"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}),
            "/blocks/0/text/text",
        ),
        (modal({"type": "section", "fields": [text("f")] * 11}), "/blocks/0/fields"),
        (
            modal(input_block("v", {"type": "plain_text_input", "placeholder": text("p" * 151)})),
            "/blocks/0/element/placeholder/text",
        ),
        ({**modal(input_block("v", {"type": "plain_text_input"})), "submit": None}, "/submit"),
        (
            modal(input_block("v", {"type": "datepicker", "initial_date": "12/04/2026"})),
            "/blocks/0/element/initial_date",
        ),
    ],
)
def test_block_kit_limits_are_enforced(view: dict[str, Any], pointer: str) -> None:
    found = blockkit.problems(view, surface="modal")
    assert any(f"[json-pointer:{pointer}]" in p for p in found), found


def test_a_modal_at_the_limits_passes() -> None:
    view = modal(
        {"type": "header", "text": text("h" * 150)},
        select_with("o" * 75),
        *[section(i) for i in range(98)],
        title=text("x" * 24),
        private_metadata="m" * 3000,
    )
    assert blockkit.problems(view, surface="modal") == []
    assert blockkit.problems(DEAL_MODAL, surface="modal") == []


def test_message_limits() -> None:
    assert (
        blockkit.problems(
            {"text": "t" * 4000, "blocks": [section(i) for i in range(50)]}, surface="message"
        )
        == []
    )
    assert blockkit.problems(
        {"text": "t", "blocks": [section(i) for i in range(51)]}, surface="message"
    )
    assert blockkit.problems({"text": "t" * 4001}, surface="message")
    button = {"type": "button", "text": {"type": "mrkdwn", "text": "Go"}, "action_id": "go"}
    assert blockkit.problems(
        {"blocks": [{"type": "actions", "elements": [button]}]}, surface="message"
    )
    many = [{**button, "text": text("Go"), "action_id": f"a{i}"} for i in range(26)]
    assert blockkit.problems({"blocks": [{"type": "actions", "elements": many}]}, surface="message")


async def test_the_api_rejects_oversized_views_and_messages(
    sim: SlackSimulator, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client.views_open(
            trigger_id=sim.issue_trigger("U0ALICE"), view=modal(title=text("x" * 25))
        )
    assert refused.value.response["error"] == "invalid_arguments"
    assert refused.value.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"
    ]

    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(
            channel="C0SALES", text="t", blocks=[{"type": "header", "text": text("h" * 151)}]
        )
    assert refused.value.response["error"] == "invalid_blocks"
    assert "/blocks/0/text/text" in refused.value.response["response_metadata"]["messages"][0]

    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C0SALES", text="t" * 4001)
    assert refused.value.response["error"] == "msg_too_long"
    assert sim.messages("C0SALES") == []


# -- faults and waiting --------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after(
    sim: SlackSimulator, client: AsyncWebClient
) -> None:
    sim.rate_limit("chat.postMessage", 1)
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C0SALES", text="hi")
    assert refused.value.response.status_code == 429
    assert refused.value.response.headers["Retry-After"] == "0"

    sim.rate_limit("chat.postMessage", 1)
    patient = AsyncWebClient(
        base_url=sim.api_url,
        token=TOKEN,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    assert (await patient.chat_postMessage(channel="C0SALES", text="hi"))["ok"]
    assert [c.status for c in sim.calls("chat.postMessage")] == [429, 429, 200]


async def test_fail_method_refuses_the_next_n_calls(
    sim: SlackSimulator, client: AsyncWebClient
) -> None:
    sim.fail_method("users.info", "fatal_error", n=2)
    for _ in range(2):
        with pytest.raises(SlackApiError):
            await client.users_info(user="U0ALICE")
    assert (await client.users_info(user="U0ALICE"))["ok"]


async def test_latency_delays_every_answer(sim: SlackSimulator, client: AsyncWebClient) -> None:
    sim.latency = 0.2
    started = time.perf_counter()
    await client.auth_test()
    assert time.perf_counter() - started >= 0.2


async def test_wait_for_wakes_on_the_matching_call(
    sim: SlackSimulator, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel="C0SALES", text="old")
    mark = sim.mark()

    async def post_later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C0SALES", text="other")
        await client.chat_postMessage(channel="C0SALES", text="wanted")

    task = asyncio.create_task(post_later())
    call = await sim.wait_for(
        "chat.postMessage", lambda c: c.params.get("text") == "wanted", timeout=2, since=mark
    )
    await task
    assert call.response["message"]["text"] == "wanted"
    with pytest.raises(TimeoutError):
        await sim.wait_for("views.open", timeout=0.05)


# -- Bolt itself accepts what the driver sends -------------------------------------------------


async def test_bolt_routes_every_driver_payload_and_talks_to_the_sim(sim: SlackSimulator) -> None:
    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
    from slack_bolt.async_app import AsyncApp

    app = AsyncApp(
        token=TOKEN, signing_secret=SECRET, client=AsyncWebClient(base_url=sim.api_url, token=TOKEN)
    )
    seen: list[str] = []

    @app.command("/opportunity")
    async def command(ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await ack()
        seen.append("command")
        await client.views_open(trigger_id=body["trigger_id"], view=DEAL_MODAL)
        await respond("Opening the form…")

    @app.options("lead")
    async def lead_options(ack: Any, payload: dict[str, Any]) -> None:
        seen.append("options")
        await ack(options=[option(f"Acme ({payload['value']})", "lead_acme")])

    @app.action("owner")
    async def owner(ack: Any) -> None:
        seen.append("action")
        await ack()

    @app.view("opportunity")
    async def submitted(ack: Any, view: dict[str, Any]) -> None:
        seen.append("view")
        if view["state"]["values"]["value"]["value"]["value"] == "lots":
            await ack(response_action="errors", errors={"value": "Enter an amount like 12k"})
        else:
            await ack()

    @app.shortcut("new_opportunity")
    async def shortcut(ack: Any) -> None:
        seen.append("shortcut")
        await ack()

    @app.shortcut("create_opportunity")
    async def message_shortcut(ack: Any) -> None:
        seen.append("message_action")
        await ack()

    @app.event("app_home_opened")
    async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
        seen.append("event")
        await client.views_publish(
            user_id=event["user"], view={"type": "home", "blocks": [section(1)]}
        )

    handler = AsyncSlackRequestHandler(app)

    async def endpoint(request: Request) -> Response:
        return await handler.handle(request)  # type: ignore[no-any-return]

    server = await start_server(
        Starlette(routes=[Route("/slack/events", endpoint, methods=["POST"])])
    )
    try:
        async with SlackDriver(sim, server.url + "slack/events", SECRET) as driver:
            result = await driver.slash_command("Acme 12k")
            assert result.response.status_code == 200
            view = await driver.wait_for_view(result.trigger_id, timeout=2)
            await sim.wait_for("response_url", timeout=2)
            assert sim.ephemerals("C0SALES", "U0ALICE")[0]["text"] == "Opening the form…"

            suggestion = await driver.block_suggestion(view["id"], "lead", "acm")
            assert suggestion.json()["options"][0]["text"]["text"] == "Acme (acm)"
            assert (
                await driver.select_in_view(view["id"], "owner", "U0BOB")
            ).response.status_code == 200

            rejected = await driver.submit_view(view["id"], values={"value": "lots"})
            assert rejected.json()["errors"] == {"value": "Enter an amount like 12k"}
            assert view["id"] not in sim.closed_views
            accepted = await driver.submit_view(view["id"], values={"value": "12k"})
            assert accepted.status_code == 200
            assert view["id"] in sim.closed_views

            assert (await driver.global_shortcut("new_opportunity")).response.status_code == 200
            source = sim.add_message("C0SALES", "Closed Globex 40k")
            assert (
                await driver.message_shortcut("create_opportunity", message=source)
            ).response.status_code == 200
            assert (await driver.app_home_opened("U0CAROL")).status_code == 200
            await sim.wait_for("views.publish", timeout=2)
            forged = await driver.raw(
                b"command=%2Fopportunity", "application/x-www-form-urlencoded", signature="v0=bad"
            )
            assert forged.status_code == 401
    finally:
        await server.stop()
    assert seen == [
        "command",
        "options",
        "action",
        "view",
        "view",
        "shortcut",
        "message_action",
        "event",
    ]
