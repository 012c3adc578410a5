"""The nudge DM, pure: its payload (what was listed, each line's state) and its Block Kit."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel

from bot.blocks.format import format_date
from bot.blocks.messages import Message, lead_url, section, value_line
from bot.blocks.text import MESSAGE_TEXT, fit, fit_mrkdwn
from bot.close.models import Opportunity

WON_ACTION_ID = "nudge_won"
LOST_ACTION_ID = "nudge_lost"
WEEK_ACTION_ID = "nudge_week"
DATE_ACTION_ID = "nudge_date"
ACTION_IDS = (WON_ACTION_ID, LOST_ACTION_ID, WEEK_ACTION_ID, DATE_ACTION_ID)
LISTED = 10  # deals listed in one nudge; the rest are "and N more"
# The send id of the lines App Home lists (a tap there is not on any nudge's DM).
HOME = "home"


class NudgeLine(BaseModel):
    """One overdue deal as the DM lists it; `done` says what was done from the DM."""

    opportunity_id: str
    lead_id: str
    lead_name: str
    value: str | None = None
    status_label: str | None = None
    date_won: date
    done: str | None = None

    @classmethod
    def of(cls, opportunity: Opportunity) -> NudgeLine:
        assert opportunity.date_won is not None  # listed because it is overdue
        return cls(
            opportunity_id=opportunity.id,
            lead_id=opportunity.lead_id,
            lead_name=opportunity.lead_name or opportunity.lead_id,
            value=value_line(opportunity),
            status_label=opportunity.status_label,
            date_won=opportunity.date_won,
        )


class NudgePayload(BaseModel):
    """What a nudge listed (kept with the send, so a tap can rebuild the message)."""

    period: date
    close_user_id: str
    lines: list[NudgeLine]
    more: int = 0

    def line(self, opportunity_id: str) -> NudgeLine | None:
        return next((x for x in self.lines if x.opportunity_id == opportunity_id), None)

    def with_done(self, opportunity_id: str, done: str) -> NudgePayload:
        lines = [
            x.model_copy(update={"done": done}) if x.opportunity_id == opportunity_id else x
            for x in self.lines
        ]
        return self.model_copy(update={"lines": lines})


def tap_value(send_id: str, opportunity_id: str) -> str:
    return f"{send_id}|{opportunity_id}"


# The actions block of a line is named for it: a datepicker's action carries no value.
BLOCK_PREFIX = "nudge:"


def read_tap_value(value: str | None) -> tuple[str, str] | None:
    """(send id, opportunity id) from a button's value or its actions block's id."""
    send_id, sep, opportunity_id = (value or "").removeprefix(BLOCK_PREFIX).partition("|")
    return (send_id, opportunity_id) if sep and send_id and opportunity_id else None


def nudge_message(send_id: str, payload: NudgePayload, *, close_app_url: str) -> Message:
    """The DM: a line per overdue deal with its one-tap buttons (or what was done), then
    "and N more" linking to Close."""
    total = len(payload.lines) + payload.more
    deals = "deals is" if total == 1 else "deals are"
    blocks: list[dict[str, Any]] = [
        section(f":alarm_clock: *{total} of your {deals} past the expected close date.*")
    ]
    for n, line in enumerate(payload.lines):
        blocks.extend(line_blocks(f"nudge_{n}", send_id, line, payload.period, close_app_url))
    if payload.more:
        link = f"{close_app_url}opportunities/"
        blocks.append(
            {
                "type": "context",
                "block_id": "nudge_more",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"and {payload.more} more: <{link}|see them in Close>",
                    }
                ],
            }
        )
    text = f"{total} of your {deals} past the expected close date"
    return Message(text=fit_mrkdwn(text, MESSAGE_TEXT), blocks=blocks)


def line_blocks(
    block_id: str, send_id: str, line: NudgeLine, today: date, close_app_url: str
) -> list[dict[str, Any]]:
    """A deal's line (its section named `block_id`) and its one-tap buttons, or what was done."""
    lead = f"<{lead_url(close_app_url, line.lead_id)}|{fit_mrkdwn(line.lead_name, 200)}>"
    if line.done is not None:
        return [{**section(f":white_check_mark: *{lead}*: {line.done}"), "block_id": block_id}]
    parts = [
        part
        for part in (line.value, line.status_label, f"expected {format_date(line.date_won)}")
        if part
    ]
    value = tap_value(send_id, line.opportunity_id)
    return [
        {**section(f"*{lead}* · " + " · ".join(parts)), "block_id": block_id},
        {
            "type": "actions",
            "block_id": BLOCK_PREFIX + value,
            "elements": [
                _button(WON_ACTION_ID, "Won", value, "primary"),
                _button(LOST_ACTION_ID, "Lost", value, "danger"),
                _button(WEEK_ACTION_ID, "+1 week", value),
                {
                    "type": "datepicker",
                    "action_id": DATE_ACTION_ID,
                    "initial_date": today.isoformat(),
                    "placeholder": {"type": "plain_text", "text": "Pick a date"},
                },
            ],
        },
    ]


def _button(action_id: str, text: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": fit(text, 75)},
        "value": value,
    }
    if style:
        button["style"] = style
    return button
