"""HTTP mode: Starlette under uvicorn, `POST /slack/events` for everything Slack sends,
`POST /close/webhook` for Close's changes, `GET /close/oauth/start` and `/close/oauth/callback`
for people connecting their own Close account, and the operations endpoints (`GET /healthz`,
`/readyz`, `/metrics`) that Socket Mode and `worker` also serve on METRICS_PORT.

In front of Bolt sits a guard that Slack never notices and attackers always do: the body is
size-capped while it streams, the signature and its 5-minute window are checked on the raw
bytes before anything is parsed, unparsable bodies get a 4xx, and whatever Bolt or a listener
does, Slack gets a 200 with a message for the user instead of a 5xx.
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.response import BoltResponse
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from bot.app import ack_outcome
from bot.connections.routes import oauth_routes
from bot.listeners.fallback import SOMETHING_WENT_WRONG, answer, request_kind
from bot.logs import bind_slack
from bot.metrics import ack_kind
from bot.services import Services
from bot.slack.after_ack import AfterAck, collecting
from bot.sync.webhook import Rejected
from bot.transport import eager_ack
from bot.transport.health import readiness, scrape_metrics

log = logging.getLogger(__name__)

# Slack's payloads are a few KB (a full modal state rarely reaches 100 KB).
MAX_BODY_BYTES = 512 * 1024
# Slack's rule: refuse a timestamp more than 5 minutes away from now (replays).
MAX_CLOCK_SKEW_SECONDS = 5 * 60
MAX_FORM_FIELDS = 100
# hashlib lets go of the GIL for any piece over 2 KB, and taking it back waits behind the
# database thread (~0.2 ms per request under load, the event loop stalled meanwhile): the
# body is hashed in smaller pieces, which costs nothing more.
_HMAC_PIECE = 2000


class Refused(Exception):
    """The request is answered with `status` and a short reason, before Bolt sees it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> Response:
        return JSONResponse({"ok": False, "error": self.reason}, status_code=self.status)


async def read_capped(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` (header or stream)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise Refused(400, "bad_content_length")
        if int(declared) > limit:
            raise Refused(413, "body_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, "body_too_large")
            chunks.append(chunk)
    except ClientDisconnect as error:
        raise Refused(400, "client_disconnected") from error
    return b"".join(chunks)


def verify_signature(
    secret: bytes,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: Callable[[], float] = time.time,
) -> None:
    """Slack's v0 signature over the raw bytes, constant-time, within the 5-minute window."""
    if not timestamp or not signature:
        raise Refused(401, "unsigned")
    stamp = timestamp.strip()
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise Refused(401, "bad_timestamp")
    if abs(now() - int(stamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise Refused(401, "stale_timestamp")
    mac = hmac.new(secret, b"v0:" + stamp.encode() + b":", hashlib.sha256)
    raw = memoryview(body)
    for start in range(0, len(raw), _HMAC_PIECE):
        mac.update(raw[start : start + _HMAC_PIECE])
    digest = mac.hexdigest()
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header may hold anything.
    if not hmac.compare_digest(("v0=" + digest).encode(), signature.encode("utf-8", "replace")):
        raise Refused(401, "bad_signature")


def parse_body(text: str, content_type: str | None) -> dict[str, Any]:
    """Slack's two body shapes: JSON (events), or a form with fields or one `payload` JSON field.

    Unlike Bolt's own parser this never raises on odd input and does not mistake the word
    "payload" typed in a command for an interaction payload.
    """
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "application/json" or text.startswith("{"):
        parsed: object = _json(text)
    else:
        fields = _form(text)
        parsed = _json(fields["payload"]) if "payload" in fields else fields
    if not isinstance(parsed, dict):
        raise Refused(400, "not_an_object")
    if not parsed:
        raise Refused(400, "empty")
    return parsed


def check_envelope(body: dict[str, Any]) -> None:
    """Refuse (400) the shapes Slack never sends and Bolt would dereference blindly.

    What is inside (view state, action values, event details) is the listeners' business:
    they read it defensively and answer 200 whatever it holds.
    """
    for key in ("type", "command", "callback_id", "action_id", "trigger_id", "response_url"):
        if key in body and not isinstance(body[key], str):
            raise Refused(400, "bad_shape")
    kind = body.get("type")
    if "event" in body or kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise Refused(400, "bad_shape")
    if "view" in body or kind in ("view_submission", "view_closed"):
        view = body.get("view")
        if not isinstance(view, dict):
            raise Refused(400, "bad_shape")
        # A Work Object flexpane's view (`entity_detail`) is Slack's own: no callback_id of ours.
        callback_id = view.get("callback_id")
        if kind in ("view_submission", "view_closed") and not (
            isinstance(view.get("type"), str)
            and (
                isinstance(callback_id, str)
                or (callback_id is None and view.get("type") == "entity_detail")
            )
        ):
            raise Refused(400, "bad_shape")
    if "actions" in body or kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not all(
            isinstance(action, dict) and isinstance(action.get("action_id"), str)
            for action in actions
        ):
            raise Refused(400, "bad_shape")
    if kind in ("shortcut", "message_action") and not isinstance(body.get("callback_id"), str):
        raise Refused(400, "bad_shape")


def _form(text: str) -> dict[str, str]:
    """A form body's fields, as `parse_qsl` reads them (blank values kept)."""
    if text.startswith("payload=") and "&" not in text:
        # An interaction: one field of percent-encoded JSON (a submission carries the whole
        # view, ~15 KB, a third of it %XX), decoded in C instead of urllib's Python loop.
        return {"payload": unquote_form_value(text.removeprefix("payload="))}
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))
    except ValueError as error:
        raise Refused(400, "bad_form") from error


def unquote_form_value(value: str) -> str:
    """`urllib.parse.unquote_plus(value)`, 7x faster on Slack's payloads: every `%XX` becomes
    a `\\xXX` escape that `codecs.escape_decode` turns into its byte. Anything it would read
    differently (a backslash, a non-ASCII character, a `%` without two hex digits) goes to
    urllib itself."""
    raw = value.replace("+", " ")
    if not raw.isascii() or "\\" in raw:
        return unquote_plus(value)
    try:
        decoded, _ = codecs.escape_decode(raw.replace("%", "\\x").encode("ascii"))
    except ValueError:
        return unquote_plus(value)
    return decoded.decode("utf-8", "replace")


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise Refused(400, "bad_json") from error


def bolt_request(request: Request, text: str, body: dict[str, Any]) -> AsyncBoltRequest:
    try:
        # Built empty, then given our reading: Bolt would parse the body a second time (the
        # form decoding of a submission's view state is most of a request's parsing cost), and
        # it misreads some (e.g. the word "payload" in a command).
        bolt = AsyncBoltRequest(
            body="",
            # The raw query string: request.url would build (and parse) the whole URL.
            query=request.scope.get("query_string", b"").decode("latin-1"),
            headers={key: value for key, value in request.headers.items()},
        )
        bolt.raw_body = text  # as Bolt would have it (its own signature check is off)
        bolt.body = body
        bolt.context = build_async_context(AsyncBoltContext({}), body)
    except Exception as error:  # a shape Bolt cannot route (e.g. "team": 7)
        raise Refused(400, "bad_shape") from error
    return bolt


def fallback(body: object, text: str = SOMETHING_WENT_WRONG) -> Response:
    payload = answer(body, text)
    if payload is None:
        return Response(status_code=200)
    return JSONResponse(payload, status_code=200)


def create_http_app(
    services: Services,
    bolt: AsyncApp,
    *,
    run_worker: bool = True,
    before_start: Callable[[], Awaitable[None]] | None = None,
) -> Starlette:
    """The whole HTTP app; `run_worker=False` (`serve --no-worker`) leaves creating stored
    submissions and applying Close's changes to `worker` processes. `before_start` is awaited
    first when the server starts (`serve --workers N`: the supervisor's credential checks)."""
    secret = _signing_secret(services)
    return Starlette(
        routes=[
            Route("/slack/events", SlackEvents(services, bolt, secret), methods=["POST"]),
            Route("/close/webhook", close_webhook_endpoint(services), methods=["POST"]),
            *oauth_routes(lambda: services.access, on_connected=services.connected),
            *ops_routes(services),
        ],
        lifespan=_lifespan(services, run_worker=run_worker, before_start=before_start),
    )


def _signing_secret(services: Services) -> bytes:
    settings = services.settings
    if (
        settings.slack_signing_secret is None
        or not settings.slack_signing_secret.get_secret_value()
    ):
        # HTTP mode on a public URL without verification would let anyone act as anyone.
        raise ValueError("SLACK_SIGNING_SECRET is required in HTTP mode")
    return settings.slack_signing_secret.get_secret_value().encode()


class _Answer:
    """One request's answer, sent once: by the listener's `ack()` (eager_ack, from the
    listener's own task, so the answer does not wait for the endpoint's task to be woken), or
    by the endpoint when no ack answered (a refusal, Bolt's own answer, an error)."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, pending: AfterAck) -> None:
        self._scope, self._receive, self._send = scope, receive, send
        self._pending = pending
        self.sent_at: float | None = None

    async def respond(self, response: Response) -> None:
        if self.sent_at is not None:
            return
        self.sent_at = time.perf_counter()
        try:
            await response(self._scope, self._receive, self._send)
        finally:
            # What listeners left for after the ack runs now (bot.slack.after_ack).
            self._pending.release()

    async def acked(self, response: BoltResponse) -> None:
        try:
            await self.respond(to_starlette_response(response))
        except Exception:  # the connection is gone: the listener goes on all the same
            log.warning("Could not send an ack's answer", exc_info=True)


class SlackEvents:
    """`POST /slack/events` (an ASGI app: the answer is sent from the ack itself): guarded,
    handed to Bolt, and always a 2xx or 4xx for Slack."""

    def __init__(self, services: Services, bolt: AsyncApp, secret: bytes) -> None:
        self._answer_slack = _answer_slack(services, bolt, secret)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with collecting() as pending:
            answer = _Answer(scope, receive, send, pending)
            try:
                with eager_ack.answering_with(answer.acked):
                    response = await self._answer_slack(Request(scope, receive), answer)
            except BaseException:
                pending.release()
                raise
        await answer.respond(response)  # unless the ack sent it already


def _answer_slack(
    services: Services, bolt: AsyncApp, secret: bytes
) -> Callable[[Request, _Answer], Awaitable[Response]]:
    async def answer_slack(request: Request, answer: _Answer) -> Response:
        started = time.perf_counter()
        body: dict[str, Any] = {}
        outcome = "error"
        try:
            raw = await read_capped(request)
            verify_signature(
                secret,
                raw,
                request.headers.get("x-slack-request-timestamp"),
                request.headers.get("x-slack-signature"),
            )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise Refused(400, "not_utf8") from error
            body = parse_body(text, request.headers.get("content-type"))
            check_envelope(body)
            bind_slack(body)
            bolt_req = bolt_request(request, text, body)
            response = await eager_ack.dispatch(bolt, bolt_req)
            if response.status >= 500 or response.status == 404:
                # Bolt's own answers for a failed or unmatched request: Slack would show an error.
                log.warning("Bolt answered %s to a %s request", response.status, request_kind(body))
                return fallback(body)
            outcome = ack_outcome(bolt_req)
            return to_starlette_response(response)
        except Refused as refused:
            outcome = "refused"
            log.info("Refused a request to /slack/events: %s", refused.reason)
            return refused.response()
        except Exception:
            log.exception("Unexpected error serving a %s request", request_kind(body))
            return fallback(body)
        finally:
            answered_at = answer.sent_at or time.perf_counter()
            services.metrics.ack(ack_kind(body), outcome, answered_at - started)

    return answer_slack


def close_webhook_endpoint(services: Services) -> Callable[[Request], Awaitable[Response]]:
    """`POST /close/webhook`, handed to the sync's receiver."""

    async def close_webhook(request: Request) -> Response:
        """Close's deliveries: verified and stored before the 200; never a 5xx for bad input."""
        try:
            raw = await read_capped(request)
            new = await services.sync.receive(raw, request.headers)
        except Refused as refused:
            log.info("Refused a Close webhook delivery: %s", refused.reason)
            return refused.response()
        except Rejected as rejected:
            log.info("Refused a Close webhook delivery: %s", rejected.reason)
            return JSONResponse(
                {"ok": False, "error": rejected.reason}, status_code=rejected.status
            )
        return JSONResponse({"ok": True, "new": new})

    return close_webhook


def _lifespan(
    services: Services,
    *,
    run_worker: bool,
    before_start: Callable[[], Awaitable[None]] | None,
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """The server's start (checks first, then the services) and its stop."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if before_start is not None:
            await before_start()
        await services.start(serving_http=True, worker=run_worker)
        try:
            yield
        finally:
            await services.stop()

    return lifespan


def ops_routes(services: Services) -> list[BaseRoute]:
    """`GET /healthz` (the process is alive: for restarts), `GET /readyz` (it can serve: for a
    load balancer), `GET /metrics` (Prometheus)."""

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True, "catalog_loaded": services.catalog.loaded})

    async def readyz(_request: Request) -> Response:
        problems = await readiness(services)
        if problems:
            return JSONResponse({"ok": False, "problems": problems}, status_code=503)
        return JSONResponse({"ok": True})

    async def metrics(request: Request) -> Response:
        body, content_type = await scrape_metrics(services, request.headers.get("accept", ""))
        return Response(body, headers={"content-type": content_type})

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def create_ops_app(services: Services, *, oauth: bool = False) -> Starlette:
    """The operations endpoints alone, for Socket Mode and `worker` (on METRICS_PORT); the
    runner starts and stops `services` itself. `oauth`: the Close connect routes too (Socket
    Mode with a PUBLIC_URL serves them on PORT)."""
    routes = ops_routes(services)
    if oauth:
        routes += oauth_routes(lambda: services.access, on_connected=services.connected)
    return Starlette(routes=routes)
