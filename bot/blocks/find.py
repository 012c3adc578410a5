"""What `/opportunity find` answers (privately), and the card its *Share* posts in the channel."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from bot.blocks.carried import Carried
from bot.blocks.messages import OPEN_IN_CLOSE_ACTION_ID, Message, lead_url, notice, section
from bot.blocks.previews import lead_summary, preview_log_actions
from bot.blocks.text import BUTTON_TEXT, CONTEXT_TEXT, MESSAGE_BLOCKS, MESSAGE_TEXT, fit, fit_mrkdwn
from bot.close.models import LeadWithOpportunities
from bot.leads.find import FindResult, FoundLead

FIND_LOG_ACTION_ID = "find_log_opportunity"
FIND_SHARE_ACTION_ID = "find_share_lead"
# Long enough for any real lead name (and what people type); far below a value's 2000.
_NAME_IN_VALUE = 150
_TYPED_SHOWN = 100

USAGE = (
    "Type part of a lead's name after `find`, e.g. `/opportunity find acme`: I'll show you, "
    "privately, up to five matching leads in Close with their open opportunities."
)
SHARE_REFUSED = (
    ":lock: I can't share this lead here: this channel includes people outside your team, "
    "and Close details stay with your team. Share it in one of your team's own channels."
)


class FindRef(Carried):
    """The value of find's *Log an opportunity* and *Share*: the lead (no `lead_id`: a new
    lead by that name)."""

    model_config = ConfigDict(extra="ignore")

    lead_id: str | None = None
    lead_name: str


def find_usage() -> Message:
    return notice(USAGE)


def find_answer(result: FindResult, *, close_app_url: str, shareable: bool) -> Message:
    """The private answer: each lead's card with *Log an opportunity*, *Open in Close* and
    (`shareable`: the channel may read Close data) *Share*; no match: a new-lead offer."""
    typed = fit_mrkdwn(result.text, _TYPED_SHOWN)
    if not result.leads:
        return _no_match(result.text, typed)
    count = len(result.leads)
    head = f":mag: {'Leads' if count > 1 else 'The lead'} matching “{typed}” in Close:"
    blocks: list[dict[str, Any]] = [section(head)]
    # Room kept for the closing note: Slack takes at most MESSAGE_BLOCKS blocks.
    room = MESSAGE_BLOCKS - 1
    left_out = 0
    for index, found in enumerate(result.leads):
        card = _lead_card(found, index, close_app_url=close_app_url, shareable=shareable)
        if index:
            card.insert(0, {"type": "divider"})
        if len(blocks) + len(card) > room:
            left_out = count - index
            break
        blocks.extend(card)
    if left_out or result.more:
        more = f"and {left_out} more" if left_out else "and more"
        blocks.append(
            _context(f"{more}: type more of the name to narrow it down (`/opportunity find …`).")
        )
    plain = f"{count} lead{'s' if count > 1 else ''} matching “{result.text}” in Close"
    return Message(text=fit_mrkdwn(plain, MESSAGE_TEXT), blocks=blocks)


def shared_card(lead: LeadWithOpportunities, *, close_app_url: str, sharer: str) -> Message:
    """The lead's card for everyone in the channel (as a pasted link previews it), with who
    shared it; its *Log an opportunity* confirms in the card's thread."""
    blocks = lead_summary(lead, close_app_url=close_app_url)
    blocks.append(preview_log_actions(lead))
    blocks.append(_context(f"Shared by <@{sharer}> with `/opportunity find`"))
    return Message(text=fit_mrkdwn(f"{lead.label} in Close", MESSAGE_TEXT), blocks=blocks)


def close_unreachable(text: str) -> Message:
    typed = fit_mrkdwn(text, _TYPED_SHOWN)
    return notice(
        f":warning: Close did not answer, so I couldn't look for “{typed}”. "
        "Please try again in a minute."
    )


def close_rate_limited(text: str) -> Message:
    typed = fit_mrkdwn(text, _TYPED_SHOWN)
    return notice(
        f":hourglass_flowing_sand: Close asked me to slow down (rate limit), so I couldn't look "
        f"for “{typed}” just now. Please try again in a minute."
    )


def share_failed(lead_name: str, why: str) -> Message:
    """*Share* did not post: `why` says what to do (mrkdwn, already escaped)."""
    return notice(f"I couldn't share *{fit_mrkdwn(lead_name, 200)}* here: {why}")


def _no_match(text: str, typed: str) -> Message:
    ref = FindRef(lead_name=fit(text, _NAME_IN_VALUE))
    button = _button(FIND_LOG_ACTION_ID, f"Log an opportunity for {text}", ref.encode())
    button["style"] = "primary"
    blocks = [
        section(
            f":mag: No lead matching “{typed}” in Close. Log an opportunity for a new lead "
            "with that name, or try another part of the name."
        ),
        {"type": "actions", "block_id": "find_new_lead", "elements": [button]},
    ]
    plain = f"No lead matching “{text}” in Close"
    return Message(text=fit_mrkdwn(plain, MESSAGE_TEXT), blocks=blocks)


def _lead_card(
    found: FoundLead, index: int, *, close_app_url: str, shareable: bool
) -> list[dict[str, Any]]:
    lead = found.lead
    url = lead_url(close_app_url, lead.id)
    if found.details is not None:
        blocks = lead_summary(found.details, close_app_url=close_app_url)
    else:
        name = fit_mrkdwn(lead.label, 150)
        blocks = [
            section(f":briefcase: *<{url}|{name}>*"),
            _context("Close did not answer for its status and opportunities just now."),
        ]
    ref = FindRef(lead_id=lead.id, lead_name=fit(lead.label, _NAME_IN_VALUE)).encode()
    buttons = [
        _button(FIND_LOG_ACTION_ID, "Log an opportunity", ref),
        {
            "type": "button",
            "action_id": OPEN_IN_CLOSE_ACTION_ID,
            "text": {"type": "plain_text", "text": "Open in Close"},
            "url": url,
        },
    ]
    if shareable:
        buttons.append(_button(FIND_SHARE_ACTION_ID, "Share", ref))
    blocks.append({"type": "actions", "block_id": f"find_lead_{index}", "elements": buttons})
    return blocks


def _button(action_id: str, text: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": fit(text, BUTTON_TEXT)},
        "value": value,
    }


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(text, CONTEXT_TEXT)}]}
