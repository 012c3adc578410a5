"""Link previews (unfurls) of Close leads: the lead, its status, its open opportunities, a button."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ConfigDict

from bot.blocks.carried import Carried
from bot.blocks.format import format_date
from bot.blocks.messages import lead_url, value_line
from bot.blocks.text import BUTTON_TEXT, CONTEXT_TEXT, SECTION_TEXT, fit, fit_mrkdwn
from bot.close.models import LeadWithOpportunities, Opportunity

PREVIEW_LOG_ACTION_ID = "preview_log_opportunity"
SHOWN_OPPORTUNITIES = 5
NOT_FOUND_TEXT = (
    ":grey_question: No Close lead to show at this link: it may have been deleted or merged."
)
NAME_ONLY_TEXT = (
    ":lock: Shared with another organization: details stay in Close and in internal channels."
)
# A link still in the message composer: Slack does not say where it will be posted.
COMPOSER_NAME_ONLY_TEXT = (
    ":lock: Close details show once the message is posted in a channel that may see them."
)
# To the sharer alone, under EXTERNAL_CHANNELS=off in a channel shared with another organization.
PREVIEW_DECLINED_TEXT = (
    "I don't preview Close links in channels shared with other organizations. "
    "Open the link in Close, or share it in one of your team's own channels."
)
# Long enough for any real lead name; keeps the button's value far below Slack's 2000.
_NAME_IN_VALUE = 150


class PreviewRef(Carried):
    """The value of a preview's *Log an opportunity*: the lead, and the thread of the message
    that shared it (where the confirmation then goes, as for a message shortcut)."""

    model_config = ConfigDict(extra="ignore")

    lead_id: str
    lead_name: str
    thread_ts: str | None = None


def is_open(opportunity: Opportunity) -> bool:
    # A status Close did not type is shown rather than hidden: it may well be open.
    return opportunity.status_type in ("active", None)


def most_relevant(opportunities: list[Opportunity]) -> list[Opportunity]:
    """Open opportunities, the most pressing first: the soonest expected close date (an
    overdue one first of all), those without a date after; then the larger value."""

    def key(opportunity: Opportunity) -> tuple[bool, date, int, str]:
        return (
            opportunity.date_won is None,
            opportunity.date_won or date.max,
            -(opportunity.value or 0),
            opportunity.id,
        )

    return sorted((o for o in opportunities if is_open(o)), key=key)


def opportunity_line(opportunity: Opportunity) -> str:
    """`• *$12,000 annual* · Proposal Sent · Bob Baker · closes Fri 15 Jan 2027 · 60%`"""
    parts = [f"*{value_line(opportunity) or 'No value'}*"]
    if opportunity.status_label:
        parts.append(fit_mrkdwn(opportunity.status_label, 100))
    if opportunity.user_name:
        parts.append(fit_mrkdwn(opportunity.user_name, 100))
    if opportunity.date_won:
        parts.append(f"closes {format_date(opportunity.date_won)}")
    if opportunity.confidence is not None:
        parts.append(f"{opportunity.confidence}%")
    return "• " + " · ".join(parts)


def lead_summary(lead: LeadWithOpportunities, *, close_app_url: str) -> list[dict[str, Any]]:
    """The lead's card without buttons: its name (linked to its page in Close), its status, its
    open opportunities (the five most relevant, then "and N more"). Previews, find and the
    card find shares in a channel all show a lead this way.

    Every text from Close is escaped (no live `<!channel>`, no link of Close's making): the
    lead's name links to the page this app builds from the lead's id, nowhere else.
    """
    name = fit_mrkdwn(lead.label, 150)
    open_ones = most_relevant(lead.opportunities)
    count = len(open_ones)
    summary = [f"Status: *{fit_mrkdwn(lead.status_label, 100)}*"] if lead.status_label else []
    if count:
        summary.append(f"{count} open {'opportunity' if count == 1 else 'opportunities'}")
    else:
        summary.append("No open opportunities")
    blocks: list[dict[str, Any]] = [
        _section(
            f":briefcase: *<{lead_url(close_app_url, lead.id)}|{name}>*\n" + " · ".join(summary)
        )
    ]
    if open_ones:
        lines = [opportunity_line(o) for o in open_ones[:SHOWN_OPPORTUNITIES]]
        blocks.append(_section("\n".join(lines)))
    if count > SHOWN_OPPORTUNITIES:
        more = f"and {count - SHOWN_OPPORTUNITIES} more"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return blocks


def lead_preview(
    lead: LeadWithOpportunities, *, close_app_url: str, thread_ts: str | None = None
) -> dict[str, Any]:
    """One unfurl (`{"blocks": [...]}`) for `lead`: its card and *Log an opportunity*;
    `thread_ts` goes into the button's value."""
    blocks = lead_summary(lead, close_app_url=close_app_url)
    blocks.append(preview_log_actions(lead, thread_ts=thread_ts))
    return {"blocks": blocks}


def preview_log_actions(
    lead: LeadWithOpportunities, *, thread_ts: str | None = None
) -> dict[str, Any]:
    """The card's *Log an opportunity*: opens the modal with the lead chosen, the confirmation
    in the thread of the message the card is on (or `thread_ts`)."""
    ref = PreviewRef(
        lead_id=lead.id, lead_name=fit(lead.label, _NAME_IN_VALUE), thread_ts=thread_ts
    )
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": PREVIEW_LOG_ACTION_ID,
                "text": {"type": "plain_text", "text": fit("Log an opportunity", BUTTON_TEXT)},
                "value": ref.encode(),
            }
        ],
    }


def lead_name_only(
    lead: LeadWithOpportunities, *, close_app_url: str, note: str = NAME_ONLY_TEXT
) -> dict[str, Any]:
    """The unfurl of a lead link where people of another organization read along (a Slack
    Connect channel), or may (a link still in the composer): the lead's name, linked — usually
    the other organization's own — and no Close data (no status, no opportunities, no owner, no
    count); `note` says why."""
    name = fit_mrkdwn(lead.label, 150)
    note = fit(note, CONTEXT_TEXT)
    return {
        "blocks": [
            _section(f":briefcase: *<{lead_url(close_app_url, lead.id)}|{name}>*"),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]},
        ]
    }


def lead_not_found() -> dict[str, Any]:
    """The neutral unfurl of a lead link Close has no lead for: says nothing about anyone."""
    text = fit(NOT_FOUND_TEXT, CONTEXT_TEXT)
    return {"blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}]}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text, SECTION_TEXT)}}
