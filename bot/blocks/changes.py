"""Messages and modal views about changes to a logged opportunity: who changed what, saving, saved."""

from __future__ import annotations

from typing import Any, NamedTuple

from slack_sdk.models.blocks import SectionBlock
from slack_sdk.models.blocks.blocks import Block

from bot.blocks.format import format_date, format_money_period
from bot.blocks.messages import Message, lead_url
from bot.blocks.status_views import status_view
from bot.blocks.text import MESSAGE_TEXT, SECTION_TEXT, fit, fit_mrkdwn
from bot.close.models import Opportunity

EDIT_STATUS_CALLBACK_ID = "opportunity_edit_status"
NOTHING = "—"
MAX_LINES = 12


def _value(opportunity: Opportunity) -> str | None:
    if opportunity.value is None:
        return None
    return format_money_period(
        opportunity.value, opportunity.value_currency, opportunity.value_period
    )


def _shown(value: Any) -> str:
    if value is None or value == "" or value == []:
        return NOTHING
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


class FieldChange(NamedTuple):
    """One field that differs, as a person reads it: its name, the old and the new value
    (both None for a note, which is only said to be updated)."""

    name: str
    old: str | None = None
    new: str | None = None


def field_changes(
    before: Opportunity, after: Opportunity, field_names: dict[str, str] | None = None
) -> list[FieldChange]:
    """Each field that differs, in the order a person reads the deal; values as shown ("—"
    for none). `field_names` maps custom field ids to their names in Close."""
    pairs: list[tuple[str, Any, Any]] = [
        ("Lead", before.lead_name or before.lead_id, after.lead_name or after.lead_id),
        ("Value", _value(before), _value(after)),
        (
            "Confidence",
            None if before.confidence is None else f"{before.confidence}%",
            None if after.confidence is None else f"{after.confidence}%",
        ),
        ("Status", before.status_label, after.status_label),
        (
            "Close date",
            format_date(before.date_won) if before.date_won else None,
            format_date(after.date_won) if after.date_won else None,
        ),
        ("Owner", before.user_name or before.user_id, after.user_name or after.user_id),
        ("Contact", before.contact_name, after.contact_name),
    ]
    changes = [
        FieldChange(name, _shown(old), _shown(new))
        for name, old, new in pairs
        if _shown(old) != _shown(new)
    ]
    if (before.note or "").strip() != (after.note or "").strip():
        changes.append(FieldChange("Note", None, None))
    names = field_names or {}
    for cf_id in sorted(set(before.custom) | set(after.custom)):
        old, new = before.custom.get(cf_id), after.custom.get(cf_id)
        if _shown(old) != _shown(new):
            changes.append(FieldChange(names.get(cf_id, cf_id), _shown(old), _shown(new)))
    return changes


def describe_changes(
    before: Opportunity, after: Opportunity, field_names: dict[str, str] | None = None
) -> list[str]:
    """One mrkdwn line per field that differs: "*Value*: $12,000 annual → $15,000 annual".

    `field_names` maps custom field ids to their names in Close.
    """
    return [_line(change) for change in field_changes(before, after, field_names)]


def _line(change: FieldChange) -> str:
    return f"*{fit_mrkdwn(change.name, 80)}*: {old_to_new(change)}"


def old_to_new(change: FieldChange) -> str:
    """ "$12,000 annual → $15,000 annual", each side fitted ("updated" for a note)."""
    if change.old is None and change.new is None:
        return "updated"
    return f"{fit_mrkdwn(change.old or NOTHING, 150)} → {fit_mrkdwn(change.new or NOTHING, 150)}"


def change_message(actor: str, what: str, lines: list[str]) -> Message:
    """The thread line: "<@U1> edited the opportunity: …" with one line per change."""
    return _change(f"<@{actor}>", what, lines)


def close_change_message(who: str, lines: list[str], *, deleted: bool = False) -> Message:
    """The thread line for a change made in Close: "*Dana Manager* changed it in Close: …".

    `who` is mrkdwn already escaped: a Close user's name, or "An automation".
    """
    what = "deleted the opportunity in Close" if deleted else "changed it in Close"
    return _change(
        who,
        what,
        [] if deleted else lines,
        icon=":wastebasket:" if deleted else None,
        plain=f"{who} {what}",
    )


def _change(
    who: str, what: str, lines: list[str], *, icon: str | None = None, plain: str | None = None
) -> Message:
    shown = lines[:MAX_LINES]
    if len(lines) > MAX_LINES:
        shown.append(f"…and {len(lines) - MAX_LINES} more")
    body = f"{icon or ':pencil2:'} {who} {what}"
    if shown:
        body += ":\n" + "\n".join(f"• {line}" for line in shown)
    return Message(
        text=fit(plain or f"Opportunity {what}", MESSAGE_TEXT),
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": fit(body, SECTION_TEXT)}}],
    )


def refusal(creator: str, owner: str | None, url: str) -> str:
    """Why someone may not change an opportunity, and who can."""
    who = f"<@{creator}>"
    if owner and owner != creator:
        who += f", its owner <@{owner}>"
    return (
        f":lock: Only {who} and admins can change this opportunity from Slack. "
        f"Ask one of them, or change it in <{url}|Close>."
    )


def _view(blocks: list[Block], private_metadata: str | None = None) -> dict[str, Any]:
    return status_view(
        blocks,
        private_metadata,
        title="Edit opportunity",
        callback_id=EDIT_STATUS_CALLBACK_ID,
    )


def saving_view(lead_name: str, private_metadata: str | None = None) -> dict[str, Any]:
    text = (
        f":hourglass_flowing_sand: Saving your changes to *{fit_mrkdwn(lead_name, 300)}* in Close…"
    )
    return _view([SectionBlock(text=text)], private_metadata)


def saved_view(after: Opportunity, lines: list[str], *, close_app_url: str) -> dict[str, Any]:
    lead = fit_mrkdwn(after.lead_name or after.lead_id, 300)
    url = lead_url(close_app_url, after.lead_id)
    head = (
        f":white_check_mark: Saved *{lead}* in Close (<{url}|open>). The thread says what changed."
    )
    if not lines:
        head = f":white_check_mark: Close already had these values for *{lead}*: nothing changed."
    return _view([SectionBlock(text=fit(head, SECTION_TEXT))])
