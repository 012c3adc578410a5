"""Hostile requests to /slack/events: a clean 4xx or a 200 Slack can show, never a 5xx, server healthy."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.blocks.modal import CALLBACK_ID, EDIT_CALLBACK_ID
from bot.settings import Settings
from bot.transport.http import MAX_BODY_BYTES, unquote_form_value
from sandbox.stack import SIGNING_SECRET, Sandbox, running_sandbox

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def signed_headers(body: bytes, content_type: str, *, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(
        SIGNING_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256
    ).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + digest,
    }


def form(fields: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def interaction(payload: Any) -> bytes:
    return form({"payload": json.dumps(payload)})


class LiveBot:
    """The sandbox running in its own thread and loop, so hypothesis can drive it synchronously."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self.sandbox: Sandbox | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        async with running_sandbox(
            database_url=f"sqlite+aiosqlite:///{self._tmp / 'bot.sqlite3'}"
        ) as sandbox:
            self.sandbox = sandbox
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> LiveBot:
        self._thread.start()
        assert self._ready.wait(20), "the sandbox did not start"
        self.http = httpx.Client(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    @property
    def url(self) -> str:
        assert self.sandbox is not None
        return self.sandbox.events_url

    def post(self, body: bytes, content_type: str = FORM, **headers: str) -> httpx.Response:
        sent = {**signed_headers(body, content_type), **headers}
        return self.http.post(self.url, content=body, headers=sent)

    def healthy(self) -> bool:
        assert self.sandbox is not None
        response = self.http.get(self.sandbox.bot.url + "healthz")
        return response.status_code == 200 and response.json()["ok"] is True


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBot]:
    with LiveBot(tmp_path_factory.mktemp("hardening")) as live:
        yield live


# -- table: each malformed request and the answer it gets -------------------------------------

CASES: list[tuple[str, bytes, str, int]] = [
    ("empty body", b"", FORM, 400),
    ("payload not JSON", b"payload=%7Bnope", FORM, 400),
    ("payload a JSON list", interaction([1, 2]), FORM, 400),
    ("JSON body a string", b'"hello"', JSON, 400),
    ("JSON body truncated", b'{"type": "event_callback", ', JSON, 400),
    ("deeply nested JSON", b"[" * 100_000 + b"]" * 100_000, JSON, 400),
    ("not UTF-8", b"payload=\xff\xfe\xfd", FORM, 400),
    ("type not a string", interaction({"type": 7}), FORM, 400),
    ("view_submission without view", interaction({"type": "view_submission"}), FORM, 400),
    (
        "view without type",
        interaction({"type": "view_submission", "view": {"callback_id": CALLBACK_ID}}),
        FORM,
        400,
    ),
    (
        "actions with an empty item",
        interaction({"type": "block_actions", "actions": [{}]}),
        FORM,
        400,
    ),
    ("actions not a list", interaction({"type": "block_actions", "actions": "lead"}), FORM, 400),
    ("event not an object", b'{"type": "event_callback", "event": []}', JSON, 400),
    ("team a number", interaction({"type": "block_actions", "actions": [], "team": 7}), FORM, 400),
    (
        "state.values not an object",
        interaction(
            {
                "type": "view_submission",
                "user": {"id": "U0ALICE"},
                "view": {
                    "type": "modal",
                    "callback_id": CALLBACK_ID,
                    "private_metadata": '{"key": "k1"}',
                    "state": {"values": "oops"},
                },
            }
        ),
        FORM,
        200,
    ),
    (
        "unknown callback id",
        interaction(
            {
                "type": "view_submission",
                "user": {"id": "U0ALICE"},
                "view": {"type": "modal", "callback_id": "from_another_app", "blocks": []},
            }
        ),
        FORM,
        200,
    ),
    (
        "unknown type",
        interaction({"type": "from_the_future", "user": {"id": "U0ALICE"}}),
        FORM,
        200,
    ),
    ("unknown command", form({"command": "/nope", "user_id": "U0ALICE", "text": "x"}), FORM, 200),
    (
        "lead picked in a modal with no state",
        interaction(
            {
                "type": "block_actions",
                "user": {"id": "U0ALICE"},
                "actions": [{"action_id": "lead", "block_id": "lead", "selected_option": 5}],
                "view": {"id": "V0NOPE", "state": {"values": []}, "private_metadata": "{]"},
            }
        ),
        FORM,
        200,
    ),
    (
        "retry button with a forged submission id",
        interaction(
            {
                "type": "block_actions",
                "user": {"id": "U0ALICE"},
                "trigger_id": "t",
                "actions": [{"action_id": "retry_submission", "value": "' OR 1=1 --"}],
            }
        ),
        FORM,
        200,
    ),
    (
        "suggestion with a number typed",
        interaction({"type": "block_suggestion", "action_id": "lead", "value": 5, "user": {}}),
        FORM,
        200,
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "content_type", "status"), CASES, ids=[c[0] for c in CASES]
)
def test_malformed_request_gets_a_clean_answer(
    bot: LiveBot, name: str, body: bytes, content_type: str, status: int
) -> None:
    response = bot.post(body, content_type)
    assert response.status_code == status, response.text
    assert bot.healthy()


def test_an_unknown_view_submission_keeps_the_modal_open_with_a_message(bot: LiveBot) -> None:
    payload = {
        "type": "view_submission",
        "user": {"id": "U0ALICE"},
        "view": {
            "type": "modal",
            "callback_id": "retired_modal",
            "blocks": [{"type": "input", "block_id": "what"}],
        },
    }
    answer = bot.post(interaction(payload)).json()
    assert answer["response_action"] == "errors" and "what" in answer["errors"]


def test_the_word_payload_in_a_command_is_still_a_command(bot: LiveBot) -> None:
    """Bolt's own parser reads any body containing "payload" as an interaction and loses it."""
    assert bot.sandbox is not None
    response_url = bot.sandbox.slack.issue_response_url("C0SALES", "U0ALICE")
    body = form(
        {
            "command": "/opportunity",
            "text": "help",
            "team_domain": "payload-systems",  # Bolt's parser trips on the word anywhere
            "user_id": "U0ALICE",
            "channel_id": "C0SALES",
            "team_id": "T0SANDBOX",
            "response_url": response_url,
            "trigger_id": bot.sandbox.slack.issue_trigger("U0ALICE"),
        }
    )
    assert bot.post(body).status_code == 200
    deadline = time.monotonic() + 5
    while not bot.sandbox.slack.response_url_posts(response_url):
        assert time.monotonic() < deadline, "the help answer never came"
        time.sleep(0.02)
    assert "/opportunity" in json.dumps(bot.sandbox.slack.response_url_posts(response_url))


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "not-a-number"},
        {"X-Slack-Request-Timestamp": "1e10"},
        {"X-Slack-Request-Timestamp": str(int(time.time()) - 301)},
        {"X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Signature": "v0=\xe9\xe9"},
        {"X-Slack-Signature": ""},
    ],
)
def test_bad_signatures_and_timestamps_are_401_never_500(
    bot: LiveBot, headers: dict[str, str]
) -> None:
    body = form({"command": "/opportunity", "user_id": "U0ALICE", "text": "Acme 5k"})
    sent = {**signed_headers(body, FORM), **headers}
    response = bot.http.post(
        bot.url, content=body, headers={k.encode(): v.encode("latin-1") for k, v in sent.items()}
    )
    assert response.status_code == 401
    assert bot.healthy()


def test_an_unsigned_garbage_body_is_refused_before_it_is_parsed(bot: LiveBot) -> None:
    response = bot.http.post(bot.url, content=b"payload=%7Bnope", headers={"Content-Type": FORM})
    assert response.status_code == 401  # not 400: nothing is parsed before the signature


def test_an_oversized_body_is_refused_from_its_content_length(bot: LiveBot) -> None:
    body = b"payload=" + b"x" * (MAX_BODY_BYTES + 1)
    response = bot.post(body)
    assert response.status_code == 413
    assert bot.healthy()


def test_an_oversized_chunked_body_is_refused_while_streaming(bot: LiveBot) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MB offered, 64 KB at a time
            sent.append(1)
            yield b"x" * 65536

    headers = signed_headers(b"", FORM)
    response = bot.http.post(bot.url, content=chunks(), headers=headers)
    assert response.status_code == 413
    assert bot.healthy()


def test_http_mode_refuses_to_start_without_a_signing_secret(tmp_path: Path) -> None:
    from bot.app import build_app
    from bot.services import Services
    from bot.transport.http import create_http_app

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        slack_bot_token="xoxb-test-token-0000",
        close_api_key="api_test.key0000",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}",
    )
    services = Services.create(settings)
    with pytest.raises(ValueError, match="SLACK_SIGNING_SECRET"):
        create_http_app(services, build_app(settings, services))


# -- properties: anything Slack-shaped or not, signed, gets < 500 -----------------------------

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=15,
)
user_ids = st.sampled_from(["U0ALICE", "U0BOB", "UNOBODY", ""]) | st.text(max_size=12)
block_ids = st.sampled_from(
    [
        "lead",
        "value",
        "value_period",
        "confidence",
        "date_won",
        "status",
        "owner",
        "note",
        "contact",
        "custom.cf_source",
        "post_in",
    ]
)
elements = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["plain_text_input", "external_select", "datepicker"]),
        "value": json_values,
        "selected_option": json_values,
        "selected_options": json_values,
        "selected_date": st.text(max_size=12) | json_values,
        "selected_user": user_ids | json_values,
    },
)
state_values = st.dictionaries(
    block_ids, st.dictionaries(block_ids, elements | json_values, max_size=2), max_size=6
)
views = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["modal", "home"]),
        "callback_id": st.sampled_from([CALLBACK_ID, EDIT_CALLBACK_ID, "other"]),
    },
    optional={
        "id": st.text(max_size=10),
        "hash": st.text(max_size=10),
        "private_metadata": st.sampled_from(['{"key": "fuzz"}', "{]", '{"key": 5}', ""])
        | st.text(max_size=40),
        "state": st.fixed_dictionaries({"values": state_values | json_values}),
        "blocks": st.lists(json_values, max_size=3),
    },
)
actions = st.fixed_dictionaries(
    {
        "action_id": st.sampled_from(
            [
                "lead",
                "retry_submission",
                "open_in_close",
                "edit_opportunity",
                "mark_won",
                "mark_lost",
                "home_log_opportunity",
                "nope",
            ]
        )
    },
    optional={
        "block_id": st.text(max_size=10),
        "value": json_values,
        "selected_option": json_values,
    },
)
payloads = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "view_submission",
                "view_closed",
                "block_actions",
                "block_suggestion",
                "shortcut",
                "message_action",
                "nope",
            ]
        )
    },
    optional={
        "user": st.fixed_dictionaries({"id": user_ids}) | json_values,
        "team": st.fixed_dictionaries({"id": st.just("T0SANDBOX")}),
        "view": views,
        "actions": st.lists(actions, max_size=2),
        "callback_id": st.sampled_from(["create_opportunity", "log_opportunity", "nope"]),
        "action_id": st.sampled_from(["lead", "custom.cf_source", "nope"]),
        "value": st.text(max_size=40),
        "message": json_values,
        "channel": st.fixed_dictionaries({"id": st.sampled_from(["C0SALES", "C0NOPE"])}),
        "container": json_values,
    },
)


@FUZZ
@given(payload=payloads)
def test_any_interaction_payload_gets_an_answer_below_500(
    bot: LiveBot, payload: dict[str, Any]
) -> None:
    response = bot.post(interaction(payload))
    assert response.status_code < 500, (payload, response.text)
    if response.status_code == 200 and payload["type"] == "view_submission" and response.content:
        assert isinstance(response.json(), dict)


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(
            [
                "command",
                "text",
                "user_id",
                "channel_id",
                "trigger_id",
                "response_url",
                "team_id",
                "payload",
                "ssl_check",
                "token",
            ]
        ),
        st.text(max_size=60),
        max_size=8,
    ),
    command=st.sampled_from(["/opportunity", "/nope", ""]),
)
def test_any_form_body_gets_an_answer_below_500(
    bot: LiveBot, fields: dict[str, str], command: str
) -> None:
    fields.setdefault("command", command)
    fields.pop("response_url", None)  # never let the bot post to a made-up URL
    response = bot.post(form(fields))
    assert response.status_code < 500, (fields, response.text)


@FUZZ
@given(body=st.binary(max_size=2000), content_type=st.sampled_from([FORM, JSON, "text/plain", ""]))
def test_any_bytes_get_an_answer_below_500(bot: LiveBot, body: bytes, content_type: str) -> None:
    response = bot.post(body, content_type)
    assert response.status_code < 500


@FUZZ
@given(event=json_values)
def test_any_event_body_gets_an_answer_below_500(bot: LiveBot, event: Any) -> None:
    body = json.dumps({"type": "event_callback", "event": event, "team_id": "T0SANDBOX"}).encode()
    assert bot.post(body, JSON).status_code < 500


def test_the_server_is_healthy_and_serves_after_the_fuzzing(bot: LiveBot) -> None:
    assert bot.healthy()
    assert bot.sandbox is not None
    body = form(
        {
            "command": "/opportunity",
            "text": "Acme 5k",
            "user_id": "U0ALICE",
            "channel_id": "C0SALES",
            "team_id": "T0SANDBOX",
            "trigger_id": bot.sandbox.slack.issue_trigger("U0ALICE"),
            "response_url": bot.sandbox.slack.issue_response_url("C0SALES", "U0ALICE"),
        }
    )
    assert bot.post(body).status_code == 200


# --- the interaction payload's percent-decoding, read exactly as urllib reads it ---------------


@given(st.text())
def test_an_encoded_payload_decodes_to_what_was_encoded(text: str) -> None:
    encoded = urllib.parse.quote_plus(text)
    assert unquote_form_value(encoded) == urllib.parse.unquote_plus(encoded) == text


@given(st.text(alphabet="%+\\=&aF09gé\x00 ", max_size=40))
def test_any_form_value_decodes_as_urllib_decodes_it(value: str) -> None:
    assert unquote_form_value(value) == urllib.parse.unquote_plus(value)


@pytest.mark.parametrize(
    "value", ["%", "%4", "%zz", "%%41", "a+b", "%E2%82", "%E2%82%AC", "\\x41", "%5Cx41", "€%41"]
)
def test_odd_form_values_decode_as_urllib_decodes_them(value: str) -> None:
    assert unquote_form_value(value) == urllib.parse.unquote_plus(value)
