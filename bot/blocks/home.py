"""The App Home tab: a button to log an opportunity, *This week*, the user's recent ones and
*Settings* (the nudge and alert switches, the Close connection)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from slack_sdk.models.views import View

from bot.blocks.format import format_date
from bot.blocks.home_week import HomeWeek, week_blocks
from bot.blocks.messages import OPEN_IN_CLOSE_ACTION_ID, lead_url, value_line
from bot.blocks.text import BUTTON_TEXT, SECTION_TEXT, fit, fit_mrkdwn
from bot.close.models import Opportunity

HOME_LOG_ACTION_ID = "home_log_opportunity"
HOME_NUDGES_ACTION_ID = "home_nudges_switch"
HOME_ALERTS_ACTION_ID = "home_alerts_switch"
# Same action id as the command's *Connect Close* link button (acked by bot.listeners.connect).
HOME_CONNECT_ACTION_ID = "close_connect"
RECENT_LIMIT = 10


class HomeConnection(BaseModel):
    """The person's own Close connection line: connected as whom, or a link to connect."""

    connected_as: str | None = None
    broken: bool = False
    url: str | None = None  # a fresh *Connect Close* link (None: none to offer)


class HomeEntry(BaseModel):
    """One recent opportunity; `current` is False when Close did not answer in time, `deleted`
    when it is gone from Close."""

    opportunity: Opportunity
    current: bool = True
    deleted: bool = False


def _entry_blocks(index: int, entry: HomeEntry, close_app_url: str) -> dict[str, Any]:
    opportunity = entry.opportunity
    url = lead_url(close_app_url, opportunity.lead_id)
    lead = fit_mrkdwn(opportunity.lead_name or opportunity.lead_id, 200)
    parts = [
        # The currency is Close's text as stored: escaped like every other Close value.
        value_line(opportunity) or "no value",
        fit_mrkdwn(opportunity.status_label, 100) if opportunity.status_label else None,
        f"closes {format_date(opportunity.date_won)}" if opportunity.date_won else None,
    ]
    line = f"*<{url}|{lead}>*\n" + " · ".join(p for p in parts if p)
    if entry.deleted:
        return {
            "type": "section",
            "block_id": f"recent_{index}",
            "text": {
                "type": "mrkdwn",
                "text": fit(f":wastebasket: ~{lead}~ — deleted in Close", SECTION_TEXT),
            },
        }
    if not entry.current:
        line += " _(as logged; Close did not answer just now)_"
    return {
        "type": "section",
        "block_id": f"recent_{index}",
        "text": {"type": "mrkdwn", "text": fit(line, SECTION_TEXT)},
        "accessory": {
            "type": "button",
            "action_id": OPEN_IN_CLOSE_ACTION_ID,
            "text": {"type": "plain_text", "text": fit("Open in Close", BUTTON_TEXT)},
            "url": url,
        },
    }


def connection_blocks(
    connection: HomeConnection, block_id: str = "close_connection"
) -> list[dict[str, Any]]:
    """A connected-as line, or *Connect Close* (with why) when not connected or broken."""
    if connection.connected_as is not None and not connection.broken:
        text = f"Connected to Close as *{fit_mrkdwn(connection.connected_as, 200)}*."
        return [
            {
                "type": "context",
                "block_id": block_id,
                "elements": [{"type": "mrkdwn", "text": text}],
            }
        ]
    if connection.url is None:
        return []
    if connection.broken:
        text = "Close no longer accepts your connection: connect again to act as yourself."
    else:
        text = "Connect your Close account so that what you do here goes to Close as you."
    return [
        {
            "type": "section",
            "block_id": block_id,
            "text": {"type": "mrkdwn", "text": text},
            "accessory": {
                "type": "button",
                "action_id": HOME_CONNECT_ACTION_ID,
                "text": {
                    "type": "plain_text",
                    "text": "Reconnect Close" if connection.broken else "Connect Close",
                },
                "url": connection.url,
            },
        }
    ]


def home_view(
    entries: list[HomeEntry],
    *,
    close_app_url: str,
    connection: HomeConnection | None = None,
    week: HomeWeek | None = None,
    switches: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Home tab as Slack view JSON (views.publish): *This week*, the recent opportunities,
    then *Settings* (`switches`, the Close connection)."""
    connection = connection or HomeConnection()
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "block_id": "intro",
            "text": {
                "type": "mrkdwn",
                "text": "Log a Close opportunity without leaving Slack: from here, with "
                "`/opportunity Acme 12k ARR 60% close next friday` in any channel, or from "
                "a message's ⋯ menu (*Create opportunity*).",
            },
        },
        {
            "type": "actions",
            "block_id": "home_actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": HOME_LOG_ACTION_ID,
                    "text": {"type": "plain_text", "text": "Log an opportunity"},
                    "style": "primary",
                }
            ],
        },
        *week_blocks(
            week or HomeWeek(), connection_blocks(connection, "week_connect"), close_app_url
        ),
        {"type": "divider", "block_id": "divider"},
        *_recent_blocks(entries, close_app_url),
        {"type": "divider", "block_id": "settings_divider"},
        {
            "type": "header",
            "block_id": "settings_header",
            "text": {"type": "plain_text", "text": "Settings"},
        },
        *(switches or []),
        *(connection_blocks(connection) or [_through_the_key()]),
    ]
    view = View(type="home", callback_id="home", blocks=blocks)
    return view.to_dict()


def _through_the_key() -> dict[str, Any]:
    """Settings' Close line when there is no connection of one's own to show or offer."""
    text = (
        "Close is reached through the app's own key: what you do here goes to Close on your behalf."
    )
    return {
        "type": "context",
        "block_id": "close_via_key",
        "elements": [{"type": "mrkdwn", "text": text}],
    }


def _recent_blocks(entries: list[HomeEntry], close_app_url: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "block_id": "recent_header",
            "text": {"type": "plain_text", "text": "Your recent opportunities"},
        }
    ]
    if not entries:
        blocks.append(
            {
                "type": "context",
                "block_id": "recent_empty",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "None yet: the ones you log through this app show up here.",
                    }
                ],
            }
        )
    blocks.extend(
        _entry_blocks(i, entry, close_app_url) for i, entry in enumerate(entries[:RECENT_LIMIT])
    )
    return blocks


def nudge_switch_blocks(on: bool, nudge_time: str) -> list[dict[str, Any]]:
    """The overdue-deals DM's switch (its button's value is what a press sets)."""
    if not nudge_time:
        return []
    text = (
        f":alarm_clock: *Overdue nudges are on*: at {nudge_time} your time, a DM lists your deals "
        "past their expected close date."
        if on
        else ":alarm_clock: *Overdue nudges are off*: no morning DM about deals past their "
        "expected close date."
    )
    return [
        {
            "type": "section",
            "block_id": "nudges_switch",
            "text": {"type": "mrkdwn", "text": fit(text, SECTION_TEXT)},
            "accessory": {
                "type": "button",
                "action_id": HOME_NUDGES_ACTION_ID,
                "text": {"type": "plain_text", "text": "Turn off" if on else "Turn on"},
                "value": "off" if on else "on",
            },
        }
    ]


def alerts_switch_blocks(on: bool) -> list[dict[str, Any]]:
    """The owner alerts' switch (its button's value is what a press sets)."""
    text = (
        ":bell: *Owner alerts are on*: a DM when someone else changes one of your deals in Close."
        if on
        else ":bell: *Owner alerts are off*: no DM when someone else changes your deals in Close."
    )
    return [
        {
            "type": "section",
            "block_id": "alerts_switch",
            "text": {"type": "mrkdwn", "text": fit(text, SECTION_TEXT)},
            "accessory": {
                "type": "button",
                "action_id": HOME_ALERTS_ACTION_ID,
                "text": {"type": "plain_text", "text": "Turn off" if on else "Turn on"},
                "value": "off" if on else "on",
            },
        }
    ]
