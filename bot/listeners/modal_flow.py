"""Opening the opportunity modal, the one way: parse in the user's zone, open, then preselect the lead."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from bot.blocks.messages import notice
from bot.blocks.modal import LeadOption, ModalForm, ModalMetadata, build_opportunity_modal
from bot.close.client import KEY_VIEW, CloseClient
from bot.close.models import Contact
from bot.deals.custom_text import read_custom_fields
from bot.deals.models import ReplyTarget
from bot.deals.preferences import LastUsed
from bot.deals.prefill import existing_lead_option, form_from_draft, new_lead_option
from bot.leads.match import match_lead, search_term
from bot.listeners.person import CannotAct, close_for, tell_cannot_act
from bot.parsing import parse
from bot.parsing.draft import Draft
from bot.services import Services
from bot.slack.errors import SlackError
from bot.tasks import spawn

log = logging.getLogger(__name__)

T = TypeVar("T")

PROFILE_BUDGET_SECONDS = 1.0
CATALOG_GRACE_SECONDS = 0.5
LEAD_LOOKUP_BUDGET_SECONDS = 5.0
# How long a lead's contacts are reused for the modal (a contact added meanwhile shows after).
CONTACTS_CACHE_SECONDS = 30.0
CONTACTS_CACHE_SIZE = 1024
PERMALINK_BUDGET_SECONDS = 3.0
# What the start-up rehearsal types (`rehearse`): a lead, a value with its period, a confidence,
# a relative date and a note, so each part of the parser and of the form is used once.
REHEARSAL_TEXT = "Acme Corp $12k ARR 60% close next friday note: warm-up"

# After views.open, turns the form shown into a fresher one (the edit modal loads Close's
# current values this way); returning None leaves the form as it is.
Refresh = Callable[[ModalForm], Awaitable[ModalForm | None]]


class SourceMessage(BaseModel):
    """The message a message shortcut ran on: its link goes into the opportunity's note."""

    channel: str
    ts: str


async def open_modal(
    services: Services,
    *,
    trigger_id: str,
    user_id: str,
    text: str = "",
    channel_id: str | None = None,
    thread_ts: str | None = None,
    response_url: str | None = None,
    source: SourceMessage | None = None,
    post_in: bool = False,
    prefill: ModalForm | None = None,
    refresh: Refresh | None = None,
    team_id: str | None = None,
    lead: LeadOption | None = None,
) -> str | None:
    """Open the modal prefilled from `text`; returns the view id, or None when Slack refused
    (or when the person cannot act in Close yet: then they get the *Connect Close* prompt).

    `source`: opened on that message (its permalink is fetched after views.open, never
    before). `post_in`: show the "Post confirmation in" picker. `prefill`: a form built by
    the caller (edit) instead of one parsed from `text`; `refresh` then updates it once open.
    `lead`: the lead already chosen (a *Log an opportunity* button's), in the form views.open
    shows.
    """
    close = await _close_or_tell(services, user_id, team_id, response_url)
    if close is None:
        return None
    if prefill is not None:
        return await _open(
            services, prefill, trigger_id, user_id, response_url, source, None, refresh, close
        )
    if not services.catalog.loaded:
        # Just started: give the catalog a moment rather than open a form without statuses.
        await services.catalog.wait_loaded(CATALOG_GRACE_SECONDS)
    (tz, locale), last_used = await _person_context(services, user_id)
    metadata = ModalMetadata(
        key=uuid.uuid4().hex,
        channel_id=channel_id,
        thread_ts=thread_ts,
        response_url=response_url,
        source_channel=source.channel if source else None,
        source_ts=source.ts if source else None,
        post_in=post_in or None,
        locale=locale,
    )
    form, draft = _form_from_text(services, text, user_id, tz, locale, metadata, last_used)
    if lead is not None:
        form = form.model_copy(update={"lead": lead, "lead_hint": None})
    return await _open(
        services, form, trigger_id, user_id, response_url, source, draft.lead, refresh, close
    )


def rehearse_command(services: Services) -> ModalForm:
    """Build the modal for a sample line as a command would, without sending it anywhere: what
    a first command pays once per process (the parser's and the builders' first use, pydantic's
    and the regexes' first match) is paid by the warm-up instead. Pure: no Slack, Close or
    database call. The form it showed, for `rehearse_submission`."""
    metadata = ModalMetadata(key=uuid.uuid4().hex, channel_id="C0WARMUP", locale="en-US")
    form, _draft = _form_from_text(
        services, REHEARSAL_TEXT, "U0WARMUP", "UTC", "en-US", metadata, last_used=None
    )
    build_opportunity_modal(form, services.catalog)
    return form


async def _person_context(
    services: Services, user_id: str
) -> tuple[tuple[str, str], LastUsed | None]:
    """The person's (zone, locale) and last-used choices, each within PROFILE_BUDGET_SECONDS:
    both are usually answered from memory or an index; a slow answer just means defaults."""
    profile_lookup = asyncio.ensure_future(services.identity.profile(user_id))
    known, last_used = services.preferences.peek(user_id)  # usually: no SQL at all
    lookups: set[asyncio.Future[Any]] = {profile_lookup}
    if not known:
        prefs_lookup = asyncio.ensure_future(services.preferences.last_used(user_id))
        lookups.add(prefs_lookup)
    done, pending = await asyncio.wait(lookups, timeout=PROFILE_BUDGET_SECONDS)
    for late in pending:
        late.cancel()
    profile = _result(profile_lookup) if profile_lookup in done else None
    if not known:
        last_used = _result(prefs_lookup) if prefs_lookup in done else None
    where = (profile.tz, profile.locale) if profile is not None else ("UTC", "en-US")
    return where, last_used


def _form_from_text(
    services: Services,
    text: str,
    user_id: str,
    tz: str,
    locale: str,
    metadata: ModalMetadata,
    last_used: LastUsed | None,
) -> tuple[ModalForm, Draft]:
    """The modal's form read from the typed one-liner (and the draft it was read into)."""
    # `Source: Referral`-style parts name the org's custom fields: read them out first so the
    # general parse does not take them for the lead or the value.
    typed = read_custom_fields(
        text, services.catalog.custom_fields, users=services.catalog.users, tz=tz, locale=locale
    )
    draft = parse(
        typed.text,
        now=services.clock(),
        tz=tz,
        locale=locale,
        status_labels=[status.label for status in services.catalog.statuses],
    )
    form = form_from_draft(
        draft,
        services.catalog,
        invoker=user_id,
        metadata=metadata,
        last_used=last_used,
        default_pipeline=services.settings.default_pipeline,
    )
    if typed.custom or typed.warnings:
        form = form.model_copy(
            update={"custom": typed.custom, "warnings": [*form.warnings, *typed.warnings]}
        )
    return form, draft


async def _close_or_tell(
    services: Services, user_id: str, team_id: str | None, response_url: str | None
) -> CloseClient | None:
    """The Close client acting for the person (the key's under CLOSE_ACCESS=key, at once); None
    after telling them privately why they cannot act (not connected, connection broken)."""
    try:
        return await close_for(services, user_id, team_id)
    except CannotAct:
        await tell_cannot_act(services, team_id, user_id, response_url=response_url)
    except TimeoutError:
        log.warning("Could not read the Close connection of %s in time", user_id)
        await services.notifier.post(
            ReplyTarget(user_id=user_id, response_url=response_url),
            notice("I could not check your Close connection just now. Please try again."),
        )
    return None


async def _open(
    services: Services,
    form: ModalForm,
    trigger_id: str,
    user_id: str,
    response_url: str | None,
    source: SourceMessage | None,
    lead: str | None,
    refresh: Refresh | None,
    close: CloseClient,
) -> str | None:
    view = build_opportunity_modal(form, services.catalog)
    try:
        opened = await services.slack_gateway.open_view(trigger_id, view)
    except SlackError as error:
        code = error.code
        log.warning("views.open failed: %s", code)
        await services.notifier.post(
            ReplyTarget(user_id=user_id, response_url=response_url),
            notice(f"Slack did not let me open the form in time (`{code}`). Please try again."),
        )
        return None
    view_id: str = opened["id"]
    if lead or source or refresh:
        spawn(
            _after_open(services, form, view_id, opened.get("hash"), source, lead, refresh, close),
            name="after-open",
        )
    return view_id


async def _after_open(
    services: Services,
    form: ModalForm,
    view_id: str,
    view_hash: str | None,
    source: SourceMessage | None,
    lead: str | None,
    refresh: Refresh | None,
    close: CloseClient,
) -> None:
    """Everything that needs Slack or Close once the modal is open, then one views.update."""
    updated = form
    if source is not None:
        permalink = await fetch_permalink(services, source)
        if permalink:
            metadata = form.metadata.model_copy(update={"permalink": permalink})
            updated = updated.model_copy(update={"metadata": metadata})
    if refresh is not None:
        updated = await refresh(updated) or updated
    if lead:
        await preselect_lead(services, updated, lead, view_id, view_hash, close=close)
    elif updated is not form:
        await update_modal(services, view_id, updated, view_hash)


async def fetch_permalink(services: Services, source: SourceMessage) -> str | None:
    """The message's Slack link, or None when Slack will not say (the note then goes without)."""
    try:
        return await asyncio.wait_for(
            services.slack_gateway.permalink(source.channel, source.ts),
            timeout=PERMALINK_BUDGET_SECONDS,
        )
    except (SlackError, TimeoutError) as error:
        log.info("chat.getPermalink failed: %s", type(error).__name__)
        return None


def _result(future: asyncio.Future[T]) -> T | None:
    if future.cancelled() or future.exception() is not None:
        if not future.cancelled():
            log.info("Lookup before the modal failed: %s", type(future.exception()).__name__)
        return None
    return future.result()


async def preselect_lead(
    services: Services,
    form: ModalForm,
    name: str,
    view_id: str,
    view_hash: str | None,
    *,
    close: CloseClient,
) -> None:
    """Look the typed lead up in Close and update the open modal with the best match.

    `hash` makes Slack refuse the update if the user changed the view meanwhile, so nothing
    they touched is overwritten; in that case the lead simply stays for them to pick.
    When Close fails or is late the lead stays empty with a hint: preselecting "Create new
    lead" then would create a duplicate of a lead Close may well have.
    """
    term = search_term(name)
    # A name looked up in the last minute makes no Close call, but only when that answer
    # holds the lead to preselect: a remembered "no such lead" may be stale (the bot may have
    # just created it), and trusting it would create the lead twice. So up to 60 s stale
    # means: a lead renamed, deleted or newly similar within the minute is not reflected.
    candidates = services.lead_search.fresh(term, close=close)
    match = match_lead(name, candidates) if candidates is not None else None
    if match is None or match.lead is None:
        try:
            candidates = await services.lead_search.lookup(
                term, limit=20, timeout=LEAD_LOOKUP_BUDGET_SECONDS, close=close
            )
        except Exception as error:
            log.info("Lead lookup for preselection failed: %s", type(error).__name__)
            unreachable = f"Couldn't reach Close to find “{name}”: type to pick it."
            await update_modal(
                services, view_id, form.model_copy(update={"lead_hint": unreachable}), view_hash
            )
            return
        match = match_lead(name, candidates)
    lead: LeadOption = existing_lead_option(match.lead) if match.lead else new_lead_option(name)
    hint: str | None = None
    if match.others:
        hint = "Also in Close: " + ", ".join(other.label for other in match.others)
    elif match.lead is None:
        hint = f"No lead named “{name}” in Close yet: this creates it. Type to pick another."
    contacts = await lead_contacts(services, match.lead.id, close=close) if match.lead else []
    updated = form.model_copy(update={"lead": lead, "lead_hint": hint, "contacts": contacts})
    await update_modal(services, view_id, updated, view_hash)


async def lead_contacts(
    services: Services,
    lead_id: str,
    *,
    close: CloseClient | None = None,
    user_id: str | None = None,
    team_id: str | None = None,
) -> list[Contact]:
    """The lead's contacts for the `contact` block, as `close` (else the client acting for
    `user_id`) may see them; none when Close is slow or failing, or the person cannot act.

    Kept for CONTACTS_CACHE_SECONDS per view (the key's, or one person's: never shown to
    another): reps log deal after deal on the same few leads, and each Close read costs a
    second of the user's wait and the CPU of an HTTP round trip."""
    try:
        if close is None:
            close = await close_for(services, user_id or "", team_id)
    except Exception as error:  # no contacts rather than anyone else's view of them
        log.info("Contacts for %s: no Close access (%s)", lead_id, type(error).__name__)
        return []
    cache = services.lead_contacts
    key = lead_id if close.view == KEY_VIEW else f"{close.view} {lead_id}"
    now = time.monotonic()
    cached = cache.get(key)
    if cached is not None and now - cached[0] < CONTACTS_CACHE_SECONDS:
        return cached[1]
    try:
        contacts = await asyncio.wait_for(
            close.list_contacts(lead_id), timeout=LEAD_LOOKUP_BUDGET_SECONDS
        )
    except Exception as error:  # the form works without contacts
        log.info("Contacts for %s unavailable: %s", lead_id, type(error).__name__)
        return []
    if len(cache) >= CONTACTS_CACHE_SIZE:
        cache.clear()
    cache[key] = (time.monotonic(), contacts)
    return contacts


async def update_modal(
    services: Services, view_id: str, form: ModalForm, view_hash: str | None
) -> dict[str, Any] | None:
    try:
        return await services.slack_gateway.update_view(
            view_id, build_opportunity_modal(form, services.catalog), hash=view_hash
        )
    except SlackError as error:
        log.info("views.update skipped: %s", error.code)
        return None
