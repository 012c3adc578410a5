"""Messages the bot posts about a deal: the channel summary, the thread details, queued, failed."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from bot.blocks.carried import Carried
from bot.blocks.format import format_date, format_money_period
from bot.blocks.text import (
    BUTTON_TEXT,
    MESSAGE_TEXT,
    SECTION_FIELD,
    SECTION_TEXT,
    escape,
    fit,
    fit_mrkdwn,
)
from bot.close.models import Opportunity
from bot.logs import redact

RETRY_ACTION_ID = "retry_submission"
OPEN_IN_CLOSE_ACTION_ID = "open_in_close"
EDIT_ACTION_ID = "edit_opportunity"
WON_ACTION_ID = "mark_won"
LOST_ACTION_ID = "mark_lost"
CONFIRMATION_ACTIONS_BLOCK_ID = "confirmation_actions"


class ConfirmationRef(Carried):
    """The value of the confirmation's buttons: which submission, and its deals-channel post.

    Carried in the message itself, so acting on a confirmation needs no lookup of where
    its announcement went.
    """

    model_config = ConfigDict(extra="ignore")

    submission_id: str
    announce_channel: str | None = None
    announce_ts: str | None = None


class Message(BaseModel):
    """A message body for chat.postMessage / chat.update / response_url: fallback text + blocks."""

    text: str
    blocks: list[dict[str, Any]]

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def lead_url(close_app_url: str, lead_id: str) -> str:
    # Quoted: an id with `|` or `>` would otherwise end the `<url|label>` link early.
    return f"{close_app_url}lead/{quote(lead_id, safe='')}/"


def section(text: str) -> dict[str, Any]:
    """A mrkdwn section, its text cut to Slack's limit."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text, SECTION_TEXT)}}


def value_line(opportunity: Opportunity) -> str | None:
    """The value with its period and currency ("$12,000 annual"), escaped; None without one."""
    if opportunity.value is None:
        return None
    return fit_mrkdwn(
        format_money_period(
            opportunity.value, opportunity.value_currency, opportunity.value_period
        ),
        200,
    )


def _close_date(value: date | None) -> str | None:
    return f"closes {format_date(value)}" if value else None


def summary(opportunity: Opportunity, *, creator: str, verb: str = "logged") -> Message:
    """The short channel message: who, lead, value with period, status, close date."""
    lead = fit_mrkdwn(opportunity.lead_name or opportunity.lead_id, 200)
    parts = [
        part
        for part in (
            value_line(opportunity),
            fit_mrkdwn(opportunity.status_label, 100) if opportunity.status_label else None,
            _close_date(opportunity.date_won),
        )
        if part
    ]
    line = f"<@{creator}> {verb} an opportunity for *{lead}*"
    if parts:
        line += ": " + " · ".join(parts)
    # The fallback `text` is mrkdwn too (notifications, unfurls): escaped like the blocks.
    plain = f"Opportunity {verb} for {opportunity.lead_name or opportunity.lead_id}"
    return Message(text=fit_mrkdwn(plain, MESSAGE_TEXT), blocks=[section(f":moneybag: {line}")])


def deleted_summary(opportunity: Opportunity, *, creator: str, by: str) -> Message:
    """The summary once the opportunity is deleted in Close: struck through, and by whom.

    `by` is mrkdwn already escaped (a Close user's name, or "an automation").
    """
    lead = fit_mrkdwn(opportunity.lead_name or opportunity.lead_id, 200)
    line = (
        f":wastebasket: ~<@{creator}> logged an opportunity for *{lead}*~ "
        f"— deleted in Close by {fit(by, 300)}"
    )
    plain = f"Opportunity for {opportunity.lead_name or opportunity.lead_id} deleted in Close"
    return Message(text=fit_mrkdwn(plain, MESSAGE_TEXT), blocks=[section(line)])


def _button(action_id: str, text: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": fit(text, BUTTON_TEXT)},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def details(
    opportunity: Opportunity,
    *,
    close_app_url: str,
    ref: ConfirmationRef | None = None,
    deleted: bool = False,
) -> Message:
    """The thread reply: every field, and a link that opens the lead (and its opportunity) in Close.

    With `ref`, also Edit, Won and Lost (Won/Lost only while the status is not already that);
    `deleted` says it is gone from Close and offers nothing to act on.
    """
    if deleted:
        ref = None
    url = lead_url(close_app_url, opportunity.lead_id)
    fields: list[tuple[str, str | None]] = [
        ("Lead", fit_mrkdwn(opportunity.lead_name or opportunity.lead_id, 300)),
        ("Value", value_line(opportunity)),
        (
            "Confidence",
            f"{opportunity.confidence}%" if opportunity.confidence is not None else None,
        ),
        ("Status", _status_text(opportunity)),
        ("Expected close", format_date(opportunity.date_won) if opportunity.date_won else None),
        ("Owner", fit_mrkdwn(opportunity.user_name, 200) if opportunity.user_name else None),
        (
            "Contact",
            fit_mrkdwn(opportunity.contact_name, 200) if opportunity.contact_name else None,
        ),
    ]
    shown = [
        {"type": "mrkdwn", "text": fit(f"*{name}*\n{value}", SECTION_FIELD)}
        for name, value in fields
        if value
    ][:10]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "fields": shown} if shown else section("Opportunity created."),
    ]
    if opportunity.note:
        blocks.append(section(f"*Note*\n{fit_mrkdwn(opportunity.note, SECTION_TEXT - 20)}"))
    buttons: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": OPEN_IN_CLOSE_ACTION_ID,
            "text": {"type": "plain_text", "text": fit("Open in Close", BUTTON_TEXT)},
            "url": url,
            "style": "primary",
        }
    ]
    if ref is not None:
        value = ref.encode()
        buttons.append(_button(EDIT_ACTION_ID, "Edit", value))
        if opportunity.status_type != "won":
            buttons.append(_button(WON_ACTION_ID, "Won", value))
        if opportunity.status_type != "lost":
            buttons.append(_button(LOST_ACTION_ID, "Lost", value, "danger"))
    blocks.append(
        {"type": "actions", "block_id": CONFIRMATION_ACTIONS_BLOCK_ID, "elements": buttons}
    )
    footer = f"<{url}|View in Close> · `{escape(opportunity.id)}`"
    if deleted:
        footer = f":wastebasket: Deleted in Close · `{escape(opportunity.id)}`"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    text = f"Opportunity created in Close: {url}"
    if deleted:
        text = "Opportunity deleted in Close"
    return Message(text=fit(text, MESSAGE_TEXT), blocks=blocks)


def _status_text(opportunity: Opportunity) -> str | None:
    if not opportunity.status_label:
        return None
    label = fit_mrkdwn(opportunity.status_label, 150)
    if opportunity.pipeline_name:
        return f"{label} ({fit_mrkdwn(opportunity.pipeline_name, 150)})"
    return label


def queued(lead_name: str) -> Message:
    text = (
        f":hourglass_flowing_sand: Queued — Close is not answering, I will keep trying to log "
        f"the opportunity for *{fit_mrkdwn(lead_name, 300)}*. This message will update when it lands."
    )
    return Message(
        text=fit_mrkdwn(f"Queued: opportunity for {lead_name}", MESSAGE_TEXT),
        blocks=[section(text)],
    )


# What became of a deal logged in a channel shared with another organization, said there
# without Close data (EXTERNAL_CHANNELS=private): only the lead's name, which may be shown.
Outcome = Literal["queued", "logged", "failed"]
SHARED_CHANNEL = "this channel is shared with another organization"


def withheld(lead_name: str, outcome: Outcome) -> Message:
    """The channel's line in place of a confirmation (or failure) it may not read: lead only."""
    lead = fit_mrkdwn(lead_name, 300)
    said = {
        "queued": f":hourglass_flowing_sand: Logging the opportunity for *{lead}* in Close.",
        "logged": f":white_check_mark: The opportunity for *{lead}* is logged in Close.",
        "failed": f":x: The opportunity for *{lead}* could not be logged in Close.",
    }[outcome]
    text = f"{said} Its details are not shown here: {SHARED_CHANNEL}."
    plain = f"Opportunity for {lead_name}: details not shown in a shared channel"
    return Message(text=fit_mrkdwn(plain, MESSAGE_TEXT), blocks=[section(text)])


def in_your_dms(lead_name: str, outcome: Outcome) -> str:
    """The ephemeral note in that channel for the person who logged it: where it went."""
    lead = fit_mrkdwn(lead_name, 300)
    said = {
        "queued": f"Close is not answering yet: I will keep trying to log *{lead}*, and",
        "logged": f"The opportunity for *{lead}* is logged:",
        "failed": f"I could not log the opportunity for *{lead}*:",
    }[outcome]
    where = (
        "confirm it in your DMs with me"
        if outcome == "queued"
        else "the details are in your DMs with me"
    )
    return f":lock: {said} {where}, since {SHARED_CHANNEL}."


def elsewhere(opportunity: Opportunity, change: Message, *, logged_in: str) -> Message:
    """A change told in the creator's DM because the deal's thread is in a channel that may not
    read it (`logged_in`): the change, under a line naming the deal."""
    lead = fit_mrkdwn(opportunity.lead_name or opportunity.lead_id, 200)
    head = section(f":moneybag: The opportunity for *{lead}* you logged in <#{logged_in}>")
    plain = f"{opportunity.lead_name or opportunity.lead_id}: {change.text}"
    return Message(text=fit(plain, MESSAGE_TEXT), blocks=[head, *change.blocks])


def failed(lead_name: str, reason: str, *, submission_id: str | None = None) -> Message:
    """A permanent failure: why, what to do, and a way back to the form with nothing retyped.

    The reason passes the log redactor too: a Close error that ever echoed a credential
    must not reach Slack.
    """
    reason = redact(reason)
    text = (
        f":x: I could not create the opportunity for *{fit_mrkdwn(lead_name, 300)}* in Close: "
        f"{fit_mrkdwn(reason, 1500)}"
    )
    blocks: list[dict[str, Any]] = [section(text)]
    if submission_id:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": RETRY_ACTION_ID,
                        "text": {"type": "plain_text", "text": "Try again"},
                        "value": submission_id,
                    }
                ],
            }
        )
    plain = f"Could not create the opportunity for {lead_name}: {reason}"
    return Message(text=fit_mrkdwn(plain, MESSAGE_TEXT), blocks=blocks)


def notice(text: str) -> Message:
    """A one-line ephemeral answer (help, refusals, hints)."""
    return Message(text=fit(text, MESSAGE_TEXT), blocks=[section(text)])
