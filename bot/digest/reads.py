"""What the weekly digest reads from Close: four listings with the org key (a background read
of the whole pipeline, like the catalog), side by side."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from bot.close.client import CloseClient
from bot.close.models import Opportunity
from bot.digest.figures import Digest, Week, build

# Past this many opportunities in one listing the digest counts what it read and says so.
LISTING_LIMIT = 10_000


async def read_digest(close: CloseClient, week: Week, today: date, zone: ZoneInfo) -> Digest:
    """The digest of `week` as Close has it now (`today`: the day it is sent, in `zone`)."""
    start, end = week.bounds(zone)
    last_instant = end - timedelta(microseconds=1)
    listings = await asyncio.gather(
        close.list_opportunities(
            date_created_gte=start, date_created_lte=last_instant, limit=LISTING_LIMIT
        ),
        close.list_opportunities(
            status_type="won",
            date_won_gte=week.monday,
            date_won_lte=week.sunday,
            limit=LISTING_LIMIT,
        ),
        # Close filters no `date_lost`: lost ones touched since the week began, sorted here.
        close.list_opportunities(status_type="lost", date_updated_gte=start, limit=LISTING_LIMIT),
        close.list_opportunities(status_type="active", limit=LISTING_LIMIT),
    )
    created, won, lost, open_ = listings
    digest = build(week, today, zone, created=created, won=won, lost=lost, open_=open_)
    return digest.counted_from(LISTING_LIMIT) if _cut(listings) else digest


def _cut(listings: Sequence[list[Opportunity]]) -> bool:
    return any(len(listing) >= LISTING_LIMIT for listing in listings)
