"""What Slack gets when a request cannot be served normally: a 200 the user understands, never a 500."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.models.blocks import PlainTextObject, SectionBlock
from slack_sdk.models.views import View

from bot.blocks.messages import notice
from bot.blocks.text import MODAL_TITLE, SECTION_TEXT, fit
from bot.deals.models import ReplyTarget
from bot.listeners.payload import dict_at, str_at
from bot.services import Services

log = logging.getLogger(__name__)

SOMETHING_WENT_WRONG = (
    "Something went wrong on my side, sorry. Nothing was saved: please try again in a moment."
)
NOT_SUPPORTED = (
    "I could not handle that (it may come from an older version of this app). "
    "Run /opportunity to start again."
)
STILL_WORKING = (
    "This is taking longer than usual. If it was saved, I will send you a message when it "
    "is in Close: pressing Create again will not make a second one. You can close this window."
)
NOTICE_TITLE = "Opportunity"

# Set in the Bolt context by a listener when it starts: past Bolt's 3 s wait for the ack,
# an unhandled request that carries it was handled, only late (not "no listener").
LISTENER_STARTED = "bot_listener_started"
# How long the error handler still waits for a late listener's own ack.
LATE_ACK_GRACE_SECONDS = 3.0


def mark_started(context: MutableMapping[str, Any], listener: str) -> None:
    """Say, for the error handler, that `listener` took this request (call it first thing)."""
    context[LISTENER_STARTED] = listener


def started_listener(context: object) -> str | None:
    """The listener that took the request, if one did (see `mark_started`)."""
    if not isinstance(context, MutableMapping):
        return None
    name = context.get(LISTENER_STARTED)
    return name if isinstance(name, str) else None


async def late_ack(context: object, body: object, grace: float = LATE_ACK_GRACE_SECONDS) -> Any:
    """The late listener's own ack body, if it comes within `grace`, else a neutral answer.

    Slack stopped waiting at 3 s (it shows the user a connection error and keeps the form),
    so this answer mostly goes nowhere; what matters is never to say "it failed" while the
    listener goes on and stores the submission.
    """
    ack = context.get("ack") if isinstance(context, MutableMapping) else None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while ack is not None and loop.time() < deadline:
        response = getattr(ack, "response", None)
        if response is not None:
            return response.body
        await asyncio.sleep(0.05)
    if request_kind(body) == "view_submission":
        return {"response_action": "update", "view": notice_view(STILL_WORKING)}
    return ""


def request_kind(body: object) -> str:
    """`command`, or the payload's `type` (`view_submission`, `block_actions`, …), or `unknown`."""
    if not isinstance(body, dict):
        return "unknown"
    if isinstance(body.get("command"), str):
        return "command"
    kind = body.get("type")
    return kind if isinstance(kind, str) and kind else "unknown"


def notice_view(text: str) -> dict[str, Any]:
    """A one-message modal, for when there is no input block to put the message under."""
    view = View(
        type="modal",
        title=fit(NOTICE_TITLE, MODAL_TITLE),
        close="Close",
        blocks=[
            SectionBlock(
                block_id="notice", text=PlainTextObject(text=fit(text, SECTION_TEXT), emoji=True)
            )
        ],
    )
    return view.to_dict()


def _first_input_block(body: object) -> str | None:
    blocks = dict_at(body, "view").get("blocks")
    if not isinstance(blocks, list):
        return None
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "input":
            block_id = block.get("block_id")
            if isinstance(block_id, str) and block_id:
                return block_id
    return None


def answer(body: object, text: str) -> dict[str, Any] | None:
    """The 200 body that shows `text` to the user where Slack allows it; None = an empty 200."""
    kind = request_kind(body)
    if kind == "command":
        return {"response_type": "ephemeral", "text": text}
    if kind == "view_submission":
        block_id = _first_input_block(body)
        if block_id is not None:
            # The modal stays open with everything typed, the message under its first field.
            return {"response_action": "errors", "errors": {block_id: fit(text, 2000)}}
        return {"response_action": "update", "view": notice_view(text)}
    if kind == "block_suggestion":
        return {"options": []}
    return None


def trusted_response_url(url: str | None, slack_api_url: str) -> str | None:
    """A response_url we may post to: Slack's hooks host, or the Slack we are configured against."""
    if not url:
        return None
    try:
        parts, api = urlsplit(url), urlsplit(slack_api_url)
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None
    if parts.hostname == "hooks.slack.com" and parts.scheme == "https":
        return url
    return url if (parts.scheme, parts.netloc) == (api.scheme, api.netloc) else None


async def tell_user(services: Services, body: object, text: str) -> None:
    """Out of band (after the ack): the request's response_url, else a DM. Never raises."""
    user_id = str_at(body, "user", "id") or str_at(body, "user_id")
    if user_id is None:
        return
    response_url = str_at(body, "response_url")
    if response_url is None:
        urls = dict_at(body).get("response_urls")
        first = urls[0] if isinstance(urls, list) and urls else None
        response_url = str_at(first, "response_url")
    target = ReplyTarget(
        user_id=user_id,
        response_url=trusted_response_url(response_url, services.settings.slack_api_url),
    )
    try:
        await services.notifier.post(target, notice(text))
    except Exception as error:  # telling the user is best effort; the error is already logged
        log.info("Could not tell %s that something failed: %s", user_id, type(error).__name__)
