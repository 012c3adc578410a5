"""The owner alert DM, pure: what one change to a person's deal was (an `Alert`, kept until its
window's DM goes) and the Block Kit of one window's changes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from bot.blocks.changes import FieldChange, old_to_new
from bot.blocks.messages import Message, lead_url, section
from bot.blocks.text import CONTEXT_TEXT, MESSAGE_BLOCKS, MESSAGE_TEXT, escape, fit, fit_mrkdwn

AlertKind = Literal["changed", "assigned", "deleted"]
AUTOMATION = "an automation"
# One section per deal, the header and the footer: within Slack's 50 blocks.
LISTED = MESSAGE_BLOCKS - 4
OFF_HINT = "Alerts of changes made in Close by others: `/opportunity alerts off` or App Home."


class Alert(BaseModel):
    """One change made in Close by someone else to a deal its owner is alerted about."""

    event_id: str
    at: datetime  # when Close made it (the event's `date_updated`)
    opportunity_id: str
    lead_id: str
    lead_name: str
    owner: str  # the Close user alerted (the deal's owner after the change)
    kind: AlertKind
    created: bool = False  # assigned to them as a new opportunity
    by: str | None = None  # the Close user who made it; None: an automation
    by_name: str | None = None
    by_slack: str | None = None  # made through the app: the Slack user who made it
    fields: list[FieldChange] = []  # as the thread tells them (bot.blocks.changes)


def merged(alerts: Sequence[Alert]) -> list[Alert]:
    """One entry per deal and person who changed it, in Close's order: a later copy of a merged
    event replaces the earlier one, and a field changed twice reads first old → last new."""
    latest: dict[str, Alert] = {}
    for alert in sorted(alerts, key=lambda a: a.at):
        latest[alert.event_id] = alert  # Close merged later changes into this event
    out: list[Alert] = []
    for alert in sorted(latest.values(), key=lambda a: a.at):
        same = next(
            (
                i
                for i, seen in enumerate(out)
                if seen.opportunity_id == alert.opportunity_id and seen.by == alert.by
            ),
            None,
        )
        if same is None:
            out.append(alert)
        else:
            out[same] = _joined(out[same], alert)
    return out


def _joined(first: Alert, then: Alert) -> Alert:
    fields = {f.name: f for f in first.fields}
    for field in then.fields:
        earlier = fields.get(field.name)
        fields[field.name] = field if earlier is None else field._replace(old=earlier.old)
    kept = [f for f in fields.values() if f.old != f.new or (f.old is None and f.new is None)]
    kind: AlertKind = "deleted" if then.kind == "deleted" else first.kind
    if kind != "deleted" and then.kind == "assigned":
        kind = "assigned"
    return then.model_copy(
        update={"kind": kind, "created": first.created or then.created, "fields": kept}
    )


def who(alert: Alert) -> str:
    """Who made it, as mrkdwn."""
    if alert.by_slack is not None:
        return f"<@{alert.by_slack}>"
    if alert.by is None:
        return AUTOMATION
    return f"*{escape(alert.by_name or alert.by)}*"


def alert_line(alert: Alert, *, close_app_url: str) -> str:
    """ "*Acme* — Value $12,000 → $15,000 · Confidence 60% → 80% — by *Jane Doe*", the deal a
    link to its lead in Close."""
    url = lead_url(close_app_url, alert.lead_id)
    parts: list[str] = []
    if alert.kind == "deleted":
        parts.append("deleted")
    elif alert.kind == "assigned":
        parts.append("new, assigned to you" if alert.created else "assigned to you")
    for field in alert.fields:
        if alert.kind == "assigned" and field.name == "Owner":
            continue  # said above
        parts.append(_field(field))
    what = " · ".join(parts) or "changed"
    return f"*<{url}|{fit_mrkdwn(alert.lead_name, 200)}>* — {what} — by {who(alert)}"


def _field(field: FieldChange) -> str:
    return f"{fit_mrkdwn(field.name, 80)} {old_to_new(field)}"


def alert_message(alerts: Sequence[Alert], *, close_app_url: str) -> Message:
    """One window's DM: a header, one section per deal (each short enough for a phone), and
    how to turn alerts off."""
    shown = merged(alerts)
    if len(shown) == 1:
        alert = shown[0]
        head = ":bell: A change to your deal in Close"
        plain = f"{_plain_who(alert)} changed {alert.lead_name} in Close"
    else:
        head = f":bell: {len(shown)} changes to your deals in Close"
        plain = f"{len(shown)} changes to your deals in Close"
    blocks: list[dict[str, Any]] = [section(f"*{head}*")]
    blocks += [section(alert_line(a, close_app_url=close_app_url)) for a in shown[:LISTED]]
    if len(shown) > LISTED:
        blocks.append(section(f"…and {len(shown) - LISTED} more: see them in Close."))
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(OFF_HINT, CONTEXT_TEXT)}]}
    )
    return Message(text=fit(plain, MESSAGE_TEXT), blocks=blocks)


def _plain_who(alert: Alert) -> str:
    return "An automation" if alert.by is None else (alert.by_name or alert.by)
