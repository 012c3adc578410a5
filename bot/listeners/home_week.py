"""App Home's *This week*, read from Close as the person (their own access under CLOSE_ACCESS):
their active deals expected by Sunday, in one request."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta

from bot.blocks.home_week import HomeWeek, week_deals
from bot.close.errors import CloseError
from bot.listeners.person import CannotAct, close_for
from bot.schedule.timing import local_day, zone
from bot.services import Services

log = logging.getLogger(__name__)

# Home is published before this read: it may take longer than the recent deals' refresh.
WEEK_BUDGET_SECONDS = 8.0
# One page, latest expected close first: this week's deals, then the most recently overdue.
READ = 100


async def person_today(services: Services, user_id: str) -> date:
    """Today in the person's Slack time zone (as last read for the nudges, else users.info;
    UTC when neither says)."""
    tz: str | None = None
    try:
        tz = (await services.people.get(user_id)).tz
        if tz is None:
            profile = await services.identity.profile(user_id)
            tz = profile.tz if profile is not None else None
    except Exception:  # a day in UTC rather than no Home
        log.warning("Home: no time zone for %s", user_id, exc_info=True)
    return local_day(services.clock(), zone(tz))


async def this_week(services: Services, user_id: str, team_id: str | None) -> HomeWeek:
    """The section's content, whatever happens (never raises)."""
    try:
        return await asyncio.wait_for(_read(services, user_id, team_id), WEEK_BUDGET_SECONDS)
    except CannotAct:
        return HomeWeek(state="connect")
    except (CloseError, TimeoutError) as error:
        log.info("Home: this week of %s not read: %s", user_id, type(error).__name__)
        return HomeWeek(state="failed")
    except Exception:
        log.warning("Home: this week of %s not read", user_id, exc_info=True)
        return HomeWeek(state="failed")


async def _read(services: Services, user_id: str, team_id: str | None) -> HomeWeek:
    close = await close_for(services, user_id, team_id)
    mapping = await services.identity.close_user_for(user_id)
    if mapping.close_user is None:
        return HomeWeek(state="unmapped", note=mapping.explain())
    today = await person_today(services, user_id)
    sunday = today + timedelta(days=6 - today.weekday())
    page = await close.first_opportunities(
        user_id=mapping.close_user.id,
        status_type="active",
        date_won_lte=sunday,
        order_by="-date_won",
        limit=READ,
    )
    deals = week_deals(page.data, page.total_results, today=today, sunday=sunday)
    return HomeWeek(state="ready", deals=deals)
