"""The weekly digest as a channel message: a few short sections a phone shows whole."""

from __future__ import annotations

from typing import Any

from bot.blocks.format import format_date
from bot.blocks.messages import Message, lead_url, section
from bot.blocks.previews import opportunity_line
from bot.blocks.text import CONTEXT_TEXT, HEADER_TEXT, MESSAGE_TEXT, fit, fit_mrkdwn
from bot.close.models import Opportunity
from bot.digest.figures import Digest, Tally, annualized, weighted
from bot.parsing.money import format_money

CLOSING_SHOWN = 10


def digest_message(digest: Digest, *, close_app_url: str) -> Message:
    week = digest.week
    title = f"Pipeline digest — week of {format_date(week.monday)}"
    money = _Money(digest.currency)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": fit(title, HEADER_TEXT)}},
        section(
            f"*Last week* ({format_date(week.monday)} – {format_date(week.sunday)})\n"
            f"• New: {money.tally(digest.new)}\n"
            f"• Won: {money.tally(digest.won)}\n"
            f"• Lost: {money.tally(digest.lost)}"
        ),
        section(_closing(digest, close_app_url)),
        section(_pipeline(digest, money)),
        section(_largest(digest, money, close_app_url)),
        section(
            f":alarm_clock: *Overdue:* {_deals(digest.overdue)} past their expected close date"
            if digest.overdue
            else ":white_check_mark: *Overdue:* none"
        ),
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": fit(_footnote(digest), CONTEXT_TEXT),
                }
            ],
        },
    ]
    text = (
        f"Pipeline digest for the week of {format_date(week.monday)}: "
        f"{digest.new.count} new, {digest.won.count} won, {digest.lost.count} lost"
    )
    return Message(text=fit(text, MESSAGE_TEXT), blocks=blocks)


class _Money:
    def __init__(self, currency: str | None) -> None:
        self.currency = currency

    def __call__(self, cents: int) -> str:
        return format_money(cents, self.currency)

    def tally(self, tally: Tally) -> str:
        return f"{_deals(tally.count)}" + (f" · {self(tally.value)}" if tally.count else "")


def _deals(count: int) -> str:
    return f"{count} deal" if count == 1 else f"{count} deals"


def _link(opportunity: Opportunity, close_app_url: str) -> str:
    name = fit_mrkdwn(opportunity.lead_name or opportunity.lead_id, 150)
    return f"<{lead_url(close_app_url, opportunity.lead_id)}|{name}>"


def _closing(digest: Digest, close_app_url: str) -> str:
    if not digest.closing:
        return "*Expected to close this week:* nothing"
    lines = [f"*Expected to close this week* ({len(digest.closing)})"]
    for opportunity in digest.closing[:CLOSING_SHOWN]:
        line = opportunity_line(opportunity).removeprefix("• ")
        lines.append(f"• {_link(opportunity, close_app_url)} · {line}")
    if len(digest.closing) > CLOSING_SHOWN:
        lines.append(f"…and {len(digest.closing) - CLOSING_SHOWN} more")
    return "\n".join(lines)


def _pipeline(digest: Digest, money: _Money) -> str:
    total = digest.open_total
    if not total.count:
        return "*Open pipeline:* no open deals"
    lines = [
        f"*Open pipeline:* {money(total.value)} in {_deals(total.count)}, "
        f"weighted {money(total.weighted)}"
    ]
    for status in digest.pipeline:
        label = fit_mrkdwn(status.label, 100)
        lines.append(
            f"• {label}: {_deals(status.tally.count)} · {money(status.tally.value)}"
            f" · weighted {money(status.tally.weighted)}"
        )
    return "\n".join(lines)


def _largest(digest: Digest, money: _Money, close_app_url: str) -> str:
    if not digest.largest:
        return "*Largest open deals:* none"
    lines = ["*Largest open deals* (by weighted value)"]
    for opportunity in digest.largest:
        confidence = f" at {opportunity.confidence}%" if opportunity.confidence is not None else ""
        lines.append(
            f"• {_link(opportunity, close_app_url)} · weighted {money(weighted(opportunity))}"
            f" ({money(annualized(opportunity))}{confidence})"
        )
    return "\n".join(lines)


def _footnote(digest: Digest) -> str:
    note = "Values are yearly (monthly × 12); weighted = value × confidence."
    if digest.limit is not None:
        note += f" Counted from the first {digest.limit:,} deals of each kind Close listed."
    return note
