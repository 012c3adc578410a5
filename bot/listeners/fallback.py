"""What Slack gets when a request cannot be served normally: a 200 the user understands, never a 500."""

from __future__ import annotations

import logging
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
NOTICE_TITLE = "Opportunity"


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
