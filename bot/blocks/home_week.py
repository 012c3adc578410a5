"""App Home's *This week*, pure: the person's deals closing this week and their overdue ones,
each line with the nudge DM's one-tap buttons (or why they are not listed)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

from bot.blocks.format import format_date
from bot.blocks.nudges import HOME, LISTED, NudgeLine, line_blocks
from bot.blocks.text import SECTION_TEXT, fit, fit_mrkdwn
from bot.close.models import Opportunity

WeekState = Literal["loading", "ready", "connect", "unmapped", "failed"]


class WeekDeals(BaseModel):
    """At most LISTED deals of each list, and how many more Close has."""

    today: date
    sunday: date
    week: list[NudgeLine] = Field(default_factory=list)
    week_more: int = 0
    overdue: list[NudgeLine] = Field(default_factory=list)
    overdue_more: int = 0


class HomeWeek(BaseModel):
    """What *This week* shows: `loading` until Close answers, then the deals or why not
    (`connect`: not connected under CLOSE_ACCESS=personal; `unmapped`: `note` says why)."""

    state: WeekState = "loading"
    deals: WeekDeals | None = None
    note: str = ""


def week_deals(
    opportunities: list[Opportunity], total: int, *, today: date, sunday: date
) -> WeekDeals:
    """The two lists from one read of the person's active deals expected by `sunday`, latest
    first: every deal of this week comes before any overdue one, so the ones not read are
    overdue (or, when the page held no overdue one at all, this week's)."""
    dated = [o for o in opportunities if o.date_won is not None and o.date_won <= sunday]
    week = [o for o in reversed(dated) if o.date_won is not None and o.date_won >= today]
    overdue = [o for o in dated if o.date_won is not None and o.date_won < today]
    unread = max(total - len(opportunities), 0)
    return WeekDeals(
        today=today,
        sunday=sunday,
        week=[NudgeLine.of(o) for o in week[:LISTED]],
        week_more=max(len(week) - LISTED, 0) + (0 if overdue else unread),
        overdue=[NudgeLine.of(o) for o in overdue[:LISTED]],
        overdue_more=max(len(overdue) - LISTED, 0) + (unread if overdue else 0),
    )


def _context(block_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "context",
        "block_id": block_id,
        "elements": [{"type": "mrkdwn", "text": fit(text, SECTION_TEXT)}],
    }


def _list_blocks(
    name: str, title: str, lines: list[NudgeLine], more: int, today: date, close_app_url: str
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "block_id": f"{name}_title", "text": {"type": "mrkdwn", "text": title}}
    ]
    if not lines:
        blocks.append(_context(f"{name}_none", "None."))
    for n, line in enumerate(lines):
        blocks.extend(line_blocks(f"{name}_{n}", HOME, line, today, close_app_url))
    if more:
        link = f"{close_app_url}opportunities/"
        blocks.append(_context(f"{name}_more", f"and {more} more: <{link}|see them in Close>"))
    return blocks


def _deal_blocks(deals: WeekDeals, close_app_url: str) -> list[dict[str, Any]]:
    monday = deals.sunday.toordinal() - 6
    span = f"{format_date(date.fromordinal(monday))} – {format_date(deals.sunday)}"
    return [
        *_list_blocks(
            "closing",
            f"*Closing this week* ({span})",
            deals.week,
            deals.week_more,
            deals.today,
            close_app_url,
        ),
        *_list_blocks(
            "overdue",
            "*Overdue* (expected before today, still open)",
            deals.overdue,
            deals.overdue_more,
            deals.today,
            close_app_url,
        ),
    ]


def week_blocks(
    week: HomeWeek, connect: list[dict[str, Any]], close_app_url: str
) -> list[dict[str, Any]]:
    """The section: its header, then the lists, or what stands in their place (`connect`: the
    *Connect Close* line to show when the person must connect first)."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "block_id": "week_header",
            "text": {"type": "plain_text", "text": "This week"},
        }
    ]
    if week.state == "ready" and week.deals is not None:
        return blocks + _deal_blocks(week.deals, close_app_url)
    if week.state == "loading":
        blocks.append(_context("week_loading", "Reading your deals from Close…"))
    elif week.state == "connect":
        blocks.extend(
            connect
            or [_context("week_connect", "Connect your Close account to see your deals here.")]
        )
    elif week.state == "unmapped":
        text = "I cannot tell which Close user you are, so not which deals are yours."
        blocks.append(_context("week_unmapped", f"{text} {fit_mrkdwn(week.note, 1000)}".strip()))
    else:
        blocks.append(
            _context("week_failed", "Close did not answer just now: open Home again to see them.")
        )
    return blocks
