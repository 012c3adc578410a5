"""Builds the Bolt app from settings and services; nothing here starts or serves anything."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.middleware.authorization.async_single_team_authorization import (
    AsyncSingleTeamAuthorization,
)
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot import listeners
from bot.listeners import guard
from bot.listeners.fallback import (
    NOT_SUPPORTED,
    SOMETHING_WENT_WRONG,
    answer,
    late_ack,
    request_kind,
    started_listener,
    tell_user,
)
from bot.logs import redact_secrets
from bot.services import Services
from bot.settings import Settings
from bot.tasks import spawn

log = logging.getLogger(__name__)

# Kinds whose user can still be told something after the ack (they carry a response_url or
# a user to DM); a view submission past its ack is already stored and reported by the worker.
_TELL_AFTER_ACK = frozenset({"command", "block_actions", "shortcut", "message_action"})
# Set in the Bolt context by the error handler: how the ack went, for the metrics.
ACK_OUTCOME = "bot_ack_outcome"


def ack_outcome(request: AsyncBoltRequest) -> str:
    """`ok`, or what the error handler said: `late` (a listener acked after Slack's 3 s),
    `unhandled` (no listener for it), `error` (a listener failed; the user got an apology)."""
    outcome = request.context.get(ACK_OUTCOME)
    return outcome if isinstance(outcome, str) else "ok"


class _NoTokenSkippedWarning(logging.Filter):
    """Drops Bolt's "`token` will be unused" warning: Bolt reads SLACK_BOT_TOKEN from the
    environment whenever a client is given, which here is always (the client carries that
    token), so it was one line of noise on every start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_NO_TOKEN_SKIPPED_WARNING = _NoTokenSkippedWarning()


def build_app(settings: Settings, services: Services) -> AsyncApp:
    """The Bolt app with every listener wired to `services` (the same in HTTP and Socket Mode)."""
    # Every mode builds the app, so every mode redacts the configured secrets from its logs.
    redact_secrets(settings.secret_values())
    signing_secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    )
    bolt_log = logging.getLogger("bot.bolt")
    bolt_log.addFilter(_NO_TOKEN_SKIPPED_WARNING)  # once: the same filter is not added twice
    app = AsyncApp(
        client=services.slack,
        signing_secret=signing_secret,
        # Not Bolt's: bot/transport/http.py checks every request's signature on the raw bytes before
        # Bolt sees it (and refuses to start without a secret, so there is no way to turn it
        # off); Socket Mode's websocket is authenticated. Bolt's check was a second HMAC of
        # the whole body on every request.
        request_verification_enabled=False,
        # Unmatched requests go to the error handler below (a 200 Slack can show), not a 404.
        raise_error_for_unhandled_request=True,
        logger=bolt_log,
    )
    guard.register(app, services)
    listeners.register(app, services)

    @app.error
    async def on_error(
        error: Exception,
        body: dict[str, Any],
        response: BoltResponse | None,
        context: dict[str, Any],
    ) -> BoltResponse | None:
        listener = started_listener(context)
        if isinstance(error, BoltUnhandledRequestError) and listener is not None:
            # Not "no listener": one took it and has not acked within Bolt's 3 s. It goes on
            # (a submission is stored under the modal's key, so a second Create is a no-op);
            # saying "it failed" here made users run /opportunity again and create duplicates.
            log.warning("%s acked a %s request late", listener, request_kind(body))
            context[ACK_OUTCOME] = "late"
            return BoltResponse(status=200, body=await late_ack(context, body))
        unhandled = isinstance(error, BoltUnhandledRequestError)
        context[ACK_OUTCOME] = "unhandled" if unhandled else "error"
        return _handle_error(services, error, body, response)

    return app


def prime_authorization(app: AsyncApp, auth_test: AsyncSlackResponse) -> bool:
    """Hand Bolt's single-workspace authorization the start-up's auth.test answer: Bolt asks
    Slack for it on the first request otherwise, before that request's ack (every request that
    comes before the answer asks again). False when this Bolt has no such step to prime."""
    for middleware in getattr(app, "_async_middleware_list", ()):
        if isinstance(middleware, AsyncSingleTeamAuthorization):
            if middleware.auth_test_result is None:
                middleware.auth_test_result = auth_test
            return True
    return False


def _handle_error(
    services: Services, error: Exception, body: object, response: BoltResponse | None
) -> BoltResponse | None:
    """A 200 that tells the user, instead of Bolt's 500 (listener raised) or 404 (no listener)."""
    kind = request_kind(body)
    if isinstance(error, BoltUnhandledRequestError):
        log.info("No listener for a %s request", kind)
        payload = answer(body, NOT_SUPPORTED)
        return BoltResponse(status=200, body=payload if payload is not None else "")
    log.error("Listener failed on a %s request", kind, exc_info=error)
    payload = answer(body, SOMETHING_WENT_WRONG) if response is not None else None
    if payload is None and kind in _TELL_AFTER_ACK:
        spawn(tell_user(services, body, SOMETHING_WENT_WRONG), name="tell-user-of-error")
    if response is None:
        return None  # already acknowledged: Slack has had its 200
    return BoltResponse(status=200, body=payload if payload is not None else "")
