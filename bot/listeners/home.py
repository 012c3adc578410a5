"""App Home: published on every app_home_opened, with *This week* and the user's recent
opportunities as Close has them, and *Settings*."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.home import (
    HOME_LOG_ACTION_ID,
    RECENT_LIMIT,
    HomeConnection,
    HomeEntry,
    alerts_switch_blocks,
    home_view,
    nudge_switch_blocks,
)
from bot.blocks.home_week import HomeWeek
from bot.close.client import CloseClient
from bot.close.errors import CloseError, CloseNotFound
from bot.close.models import Opportunity
from bot.deals.models import Submission, SubmissionState
from bot.listeners.home_week import this_week
from bot.listeners.payload import str_at
from bot.listeners.person import CannotAct, close_for
from bot.listeners.shortcuts import open_with_picker
from bot.services import Services
from bot.slack.errors import SlackError

log = logging.getLogger(__name__)

# Recent submissions read to find RECENT_LIMIT created ones (failed or pending ones are skipped).
SCAN_LIMIT = 50
CLOSE_BUDGET_SECONDS = 3.0
CLOSE_CONCURRENCY = 4


async def recent_entries(
    services: Services, user_id: str, team_id: str | None = None, *, ask_close: bool = True
) -> list[HomeEntry]:
    """The user's latest opportunities logged through the bot, refreshed from Close with their own
    access (CLOSE_ACCESS) when it answers within the budget (else as they were logged, or last
    told: without usable access of theirs, Close is not asked). `ask_close=False`: as last
    known, without a word about it (Home's first publish, before Close is asked)."""
    submissions = [
        s
        for s in await services.store.recent(slack_user_id=user_id, limit=SCAN_LIMIT)
        if s.state == SubmissionState.CREATED and s.opportunity_id and s.response
    ][:RECENT_LIMIT]
    views = await services.changes.views(
        [s.opportunity_id for s in submissions if s.opportunity_id]
    )
    # With Close -> Slack on, an opportunity's view follows every change made in Close: no need
    # to ask Close again (App Home opens often; ten GETs each time add up).
    synced = services.sync.mode != "off"
    gate = asyncio.Semaphore(CLOSE_CONCURRENCY)
    close = await _their_close(services, user_id, team_id) if submissions and ask_close else None

    async def current(submission: Submission) -> HomeEntry | None:
        view = views.get(submission.opportunity_id or "")
        try:
            stored = Opportunity.model_validate(
                view.shown if view is not None and view.shown else submission.response
            )
        except ValueError:
            return None
        if view is not None and view.deleted_at is not None:
            return HomeEntry(opportunity=stored, deleted=True)
        if synced and view is not None:
            return HomeEntry(opportunity=stored)
        if close is None:
            return HomeEntry(opportunity=stored, current=not ask_close)
        try:
            async with gate:
                fresh = await close.get_opportunity(stored.id)
            return HomeEntry(opportunity=fresh)
        except CloseNotFound:
            return HomeEntry(opportunity=stored, deleted=True)
        except CloseError as error:
            log.info("Home: %s not refreshed: %s", stored.id, type(error).__name__)
            return HomeEntry(opportunity=stored, current=False)

    tasks = [asyncio.ensure_future(current(s)) for s in submissions]
    if tasks:
        await asyncio.wait(tasks, timeout=CLOSE_BUDGET_SECONDS)
    entries: list[HomeEntry] = []
    for submission, task in zip(submissions, tasks, strict=True):
        if task.done() and not task.cancelled() and task.exception() is None:
            entry = task.result()
        else:
            task.cancel()
            try:
                entry = HomeEntry(
                    opportunity=Opportunity.model_validate(submission.response), current=False
                )
            except ValueError:
                entry = None
        if entry is not None:
            entries.append(entry)
    return entries


async def _their_close(services: Services, user_id: str, team_id: str | None) -> CloseClient | None:
    """The Close client reading for them (None: they have no usable access, or it could not be
    read in time: Home shows what it knows rather than read with anyone else's)."""
    try:
        return await close_for(services, user_id, team_id)
    except (*CannotAct, TimeoutError):
        return None
    except Exception:
        log.warning("Home: could not tell whose Close reads for %s", user_id, exc_info=True)
        return None


async def publish_home(services: Services, user_id: str, team_id: str = "") -> None:
    """Published twice: at once with what the database knows (*This week* says it is reading
    Close), then once Close has answered (or the budgets ran out)."""
    team = team_id or None
    connection, switches, known = await asyncio.gather(
        home_connection(services, user_id, team_id),
        settings_switches(services, user_id),
        recent_entries(services, user_id, team, ask_close=False),
    )
    first = _view(services, known, connection, switches, HomeWeek())
    published = await _publish(services, user_id, first)
    entries, week = await asyncio.gather(
        recent_entries(services, user_id, team), this_week(services, user_id, team)
    )
    # Only over our own first publish: a Home published meanwhile (a switch pressed, opened
    # again, here or in another process) was read later than this one and stays.
    final = _view(services, entries, connection, switches, week)
    await _publish(services, user_id, final, over=published)


def _view(
    services: Services,
    entries: list[HomeEntry],
    connection: HomeConnection,
    switches: list[dict[str, Any]],
    week: HomeWeek,
) -> dict[str, Any]:
    return home_view(
        entries,
        close_app_url=services.settings.close_app_url,
        connection=connection,
        week=week,
        switches=switches,
    )


async def _publish(
    services: Services, user_id: str, view: dict[str, Any], *, over: str | None = None
) -> str | None:
    """Publish `view` (with `over`: only if the Home is still the one with that hash); its
    hash, or None when Slack refused it."""
    try:
        return await services.slack_gateway.publish_view(user_id, view, view_hash=over)
    except SlackError as error:
        if error.code == "hash_conflict":
            log.info("Home of %s: a newer one was published meanwhile, kept", user_id)
        else:
            log.warning("views.publish for %s failed: %s", user_id, error.code)
        return None


async def settings_switches(services: Services, user_id: str) -> list[dict[str, Any]]:
    """The nudge and alert switches, as the person has them set (none if they cannot be read)."""
    try:
        person = await services.people.get(user_id)
    except Exception:  # the Home tab shows without the switches rather than not at all
        log.warning("Home: no switches for %s", user_id, exc_info=True)
        return []
    return [
        *nudge_switch_blocks(person.nudges, services.settings.nudge_time),
        *alerts_switch_blocks(person.alerts),
    ]


async def home_connection(services: Services, user_id: str, team_id: str) -> HomeConnection:
    """Connected as whom, or a fresh *Connect Close* link (Home is republished at each open).
    A link (its state stored) is minted only where the button shows: not without OAuth, not for
    someone connected, and not under CLOSE_ACCESS=key, where Close is always reached with the
    key (`/opportunity connect` still links who they are)."""
    access = services.access
    if access is None:
        return HomeConnection()
    try:
        connection = await access.connection(user_id)
        if connection is not None and not connection.broken:
            return HomeConnection(connected_as=access.label(connection))
        if not services.close_clients.per_person:
            return HomeConnection()
        url = await access.connect_link(team_id, user_id)
    except Exception:  # the Home tab shows without the line rather than not at all
        log.warning("Home: no Close connection line for %s", user_id, exc_info=True)
        return HomeConnection()
    return HomeConnection(broken=connection is not None, url=url)


def register(app: AsyncApp, services: Services) -> None:
    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any], body: dict[str, Any]) -> None:
        user_id = str_at(event, "user")
        if user_id and event.get("tab", "home") == "home":
            await publish_home(services, user_id, str_at(body, "team_id") or "")

    @app.action(HOME_LOG_ACTION_ID)
    async def log_from_home(ack: AsyncAck, body: dict[str, Any]) -> None:
        """The same modal as the global shortcut: the user picks where the confirmation goes."""
        await ack()
        await open_with_picker(services, body)
