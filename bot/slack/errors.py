"""Typed errors raised by the Slack gateway: which Web API method, what Slack said, what it means.

Slack answers a refused call with HTTP 200 and `{"ok": false, "error": "<code>"}` (429 with
`Retry-After` when rate-limited); slack_sdk raises that as `SlackApiError`. `slack_error` is the
one place that turns it into one of the categories below, so a call site decides by category
("gone: forget it", "rate limited: come back after `retry_after`") instead of keeping its own
list of codes.

Slack not answering at all (connection refused, a timeout) is not mapped: it stays
`aiohttp.ClientError` / `TimeoutError`, as it was before the gateway, because nearly every
caller lets it reach its own retry (the worker's, the change queue's) rather than treating it as
Slack's refusal.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError

# The sets follow what the call sites do with Slack's codes: each site treats whole categories
# (the notifier takes Gone and NotAllowed quietly and tries a DM; the change applier forgets the
# message on either; the workflow step counts Gone as "told already"; preflight refuses to start
# on TokenRejected and NotAllowed), so a code belongs where every site's treatment of it fits.

# The message, thread, channel, link or workflow execution is not there for us (any more).
GONE_CODES = frozenset(
    {
        "message_not_found",
        "channel_not_found",
        "thread_not_found",
        "is_archived",
        # chat.unfurl: the message, or the link in it, is not one we may (still) unfurl.
        "cannot_find_message",
        "cannot_unfurl_url",
        "cannot_unfurl_message",
        # functions.complete*: the execution ended (told already, or timed out) or never was.
        "function_execution_not_found",
        "execution_not_in_running_state",
        # users.info / users.lookupByEmail: nobody by that id or email.
        "user_not_found",
        "users_not_found",
        # views.update / views.publish on a view that is gone (the user closed it).
        "not_found",
        "view_not_found",
    }
)
# Slack (or the workspace's settings) does not let the app do this here; another place may.
NOT_ALLOWED_CODES = frozenset(
    {
        "not_in_channel",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "cannot_reply_to_message",
        "cant_update_message",
        "edit_window_closed",
        "ekm_access_denied",
        "team_access_not_granted",
    }
)
# The token is not accepted for this call: it is wrong, expired, revoked, of the wrong type, or
# lacks the scope. An operator (or a new token) has to fix it: trying again will not. The scope
# is here, not under NOT_ALLOWED: where a channel's refusal is taken quietly (a reply falls back
# to a DM), a token without chat:write is still worth a warning.
TOKEN_REJECTED_CODES = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
        "missing_scope",
        "no_permission",
    }
)
RATE_LIMITED_CODE = "ratelimited"
# Retry-After when Slack sends none (or one we cannot read), and the least we wait.
DEFAULT_RETRY_AFTER = 1.0
MIN_RETRY_AFTER = 0.05


class SlackError(Exception):
    """Slack answered a Web API call with an error.

    `method` is the Web API method ("chat.postMessage"); `code` is Slack's error code
    ("not_in_channel"), or `http_<status>` when the answer carried none; `status` is the HTTP
    status of the answer.
    """

    def __init__(self, method: str, code: str, *, status: int | None = None) -> None:
        self.method = method
        self.code = code
        self.status = status
        super().__init__(f"{method}: {code}")


class Gone(SlackError):
    """The message, thread, channel (or workflow execution) is no longer there for us."""


class NotAllowed(SlackError):
    """Slack refuses this here: a channel the app is not in, a message it may not edit or reply
    to, a restricted or read-only channel, a workspace that does not grant the app access."""


class NotForThisAudience(NotAllowed):
    """Not Slack's refusal but ours: Close data would reach a channel shared with another
    organization (EXTERNAL_CHANNELS=private or off). A NotAllowed, so a caller that falls back
    elsewhere on NotAllowed (a DM, the response_url) does so here too."""

    CODE = "external_channel"

    def __init__(self, method: str, channel: str) -> None:
        super().__init__(method, self.CODE)
        self.channel = channel


class RateLimited(SlackError):
    """429: try again after `retry_after` seconds (Slack's Retry-After, read once, here)."""

    def __init__(
        self, method: str, code: str, *, status: int | None = None, retry_after: float
    ) -> None:
        super().__init__(method, code, status=status)
        self.retry_after = retry_after


class TokenRejected(SlackError):
    """The token is invalid, expired, revoked, of the wrong type or without the scope."""


class SlackFailure(SlackError):
    """Any other error Slack answered (invalid_blocks, internal_error, an HTTP 5xx, …)."""


def slack_error(method: str, error: SlackApiError) -> SlackError:
    """The typed error for slack_sdk's `SlackApiError` of a call to `method`."""
    response = error.response
    status: int | None = getattr(response, "status_code", None)
    code = _code(response, status)
    if code == RATE_LIMITED_CODE or status == 429:
        return RateLimited(
            method, code, status=status, retry_after=retry_after(getattr(response, "headers", None))
        )
    if code in GONE_CODES:
        return Gone(method, code, status=status)
    if code in NOT_ALLOWED_CODES:
        return NotAllowed(method, code, status=status)
    if code in TOKEN_REJECTED_CODES:
        return TokenRejected(method, code, status=status)
    return SlackFailure(method, code, status=status)


def retry_after(headers: Any) -> float:
    """Seconds from a `Retry-After` header (Slack sends whole seconds); 1 s when absent or
    unreadable, never less than MIN_RETRY_AFTER (a "0" must not make a caller spin)."""
    value = _header(headers, "Retry-After")
    if value is None:
        return DEFAULT_RETRY_AFTER
    try:
        return max(MIN_RETRY_AFTER, float(value))
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


def _code(response: Any, status: int | None) -> str:
    try:
        code = response.get("error")
    except (AttributeError, TypeError):  # not a Slack answer we can read
        code = None
    return str(code) if code else f"http_{status}"


def _header(headers: Any, name: str) -> Any:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == wanted), None)
    return value[0] if isinstance(value, list) and value else value
