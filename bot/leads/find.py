"""`/opportunity find <text>`: the leads matching a name in Close, each with its status and its
opportunities, read as the person who asks (one search, then the leads read side by side)."""

from __future__ import annotations

import asyncio
import logging

from pydantic import BaseModel

from bot.close.client import CloseClient
from bot.close.errors import CloseAccessBroken, CloseNotFound
from bot.close.models import Lead, LeadWithOpportunities
from bot.leads.match import normalize_company, search_term
from bot.leads.search import LeadSearch

log = logging.getLogger(__name__)

# Leads shown; one more is asked for, to know whether there are others to mention.
SHOWN_LEADS = 5
# How long the search may take, and then each lead's read (all read at once): past these the
# person is told Close did not answer rather than left waiting.
SEARCH_BUDGET_SECONDS = 8.0
LEAD_BUDGET_SECONDS = 8.0


class FoundLead(BaseModel):
    """A lead the search found; `details` (its status and opportunities) is None when Close did
    not answer for it in time."""

    lead: Lead
    details: LeadWithOpportunities | None = None


class FindResult(BaseModel):
    """What `find` found for `text`: the leads to show, and whether Close has more matches."""

    text: str
    leads: list[FoundLead] = []
    more: bool = False


async def find_leads(
    text: str,
    *,
    close: CloseClient,
    lead_search: LeadSearch,
    shown: int = SHOWN_LEADS,
    search_budget: float = SEARCH_BUDGET_SECONDS,
    lead_budget: float = LEAD_BUDGET_SECONDS,
) -> FindResult:
    """The leads whose name matches `text`, as `close` (the person's own access) sees them.

    Raises what the search raises (CloseError, TimeoutError, CloseAccessBroken…): without it
    there is nothing to show. A lead whose own read fails is shown without its details; one
    Close no longer has (deleted, merged, or not this person's) is left out.
    """
    term = search_term(text) or text.strip()
    found = await lead_search.lookup(term, limit=shown + 1, timeout=search_budget, close=close)
    leads = _best_first(text, found)
    reads = await asyncio.gather(
        *(_details(close, lead.id, lead_budget) for lead in leads[:shown]),
        return_exceptions=True,
    )
    result: list[FoundLead] = []
    for lead, read in zip(leads[:shown], reads, strict=True):
        if isinstance(read, CloseAccessBroken):
            raise read  # their connection broke between the search and the reads
        if isinstance(read, CloseNotFound):
            continue
        if isinstance(read, BaseException):
            log.info("find: no details for %s: %s", lead.id, type(read).__name__)
            result.append(FoundLead(lead=lead))
        else:
            result.append(FoundLead(lead=lead, details=read))
    return FindResult(text=text.strip(), leads=result, more=len(leads) > shown)


def _best_first(text: str, leads: list[Lead]) -> list[Lead]:
    """Close's order, but a lead named exactly as typed (legal suffixes aside) first."""
    wanted = normalize_company(text)
    return sorted(leads, key=lambda lead: normalize_company(lead.label) != wanted)


async def _details(close: CloseClient, lead_id: str, budget: float) -> LeadWithOpportunities:
    lead = await asyncio.wait_for(close.get_lead_with_opportunities(lead_id), budget)
    if lead.id != lead_id:  # never another lead's data under this one (a merged lead)
        raise CloseNotFound(404, f"lead {lead_id} answered as {lead.id}")
    return lead
