"""`/opportunity find <text>` (answered privately after the ack) and its buttons: *Log an
opportunity* (the modal with that lead chosen) and *Share* (the lead's card in the channel)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.find import (
    FIND_LOG_ACTION_ID,
    FIND_SHARE_ACTION_ID,
    SHARE_REFUSED,
    FindRef,
    close_rate_limited,
    close_unreachable,
    find_answer,
    find_usage,
    share_failed,
    shared_card,
)
from bot.blocks.messages import Message, notice
from bot.blocks.modal import ModalForm
from bot.close.client import CloseClient
from bot.close.errors import CloseError, CloseNotFound, CloseRateLimited
from bot.close.models import Lead
from bot.deals.models import ReplyTarget
from bot.deals.prefill import existing_lead_option, new_lead_option
from bot.leads.find import LEAD_BUDGET_SECONDS, find_leads
from bot.listeners.modal_flow import lead_contacts, open_modal
from bot.listeners.payload import str_at
from bot.listeners.person import CannotAct, close_for, tell_cannot_act
from bot.services import Services
from bot.slack.audience import dm_by_id
from bot.slack.errors import Gone, NotAllowed, NotForThisAudience, SlackError

log = logging.getLogger(__name__)

VERB = "find"
# Asking Slack who reads the channel (usually remembered): past this, no *Share* is offered.
AUDIENCE_BUDGET_SECONDS = 3.0
FIND_HELP = """*Find a lead*
• `/opportunity find acme` shows you, privately, up to five leads matching "acme" in Close: \
each one's status and open opportunities, with *Log an opportunity*, *Open in Close* and *Share* \
(the lead's card in the channel)."""
NO_CONNECTION_CHECK = "I could not check your Close connection just now. Please try again."
# With the org's key (CLOSE_ACCESS=key, or `either` without a connection) Close would show
# anyone everything: as for previews, only someone mapped to an active Close user is shown it.
NOT_A_CLOSE_USER = "Sorry, I show Close leads only to people who are Close users."
MAPPING_BUDGET_SECONDS = 3.0


def find_text(text: str) -> str | None:
    """What to look for when `text` is `find …` ("" for a bare `find`); None otherwise."""
    words = text.split(maxsplit=1)
    if not words or words[0].lower() != VERB:
        return None
    return words[1].strip() if len(words) > 1 else ""


async def handle(
    services: Services,
    text: str,
    *,
    user_id: str,
    team_id: str | None,
    channel_id: str | None,
    response_url: str | None,
) -> None:
    """Answer `find <text>` privately (the command was acked already): the matching leads as
    the person sees them in Close, a usage hint, or why not."""
    target = ReplyTarget(user_id=user_id, response_url=response_url)
    if not text:
        await services.notifier.post(target, find_usage())
        return
    close = await _close_or_tell(services, user_id, team_id, response_url)
    if close is None:
        return
    shareable = asyncio.ensure_future(_shareable(services, channel_id))
    try:
        result = await find_leads(text, close=close, lead_search=services.lead_search)
    except CannotAct:  # their connection broke just now
        shareable.cancel()
        await tell_cannot_act(services, team_id, user_id, response_url=response_url)
        return
    except Exception as error:
        shareable.cancel()
        await services.notifier.post(target, _failed(text, error))
        return
    answer = find_answer(
        result, close_app_url=services.settings.close_app_url, shareable=await shareable
    )
    await services.notifier.post(target, answer)


def _failed(text: str, error: Exception) -> Message:
    if isinstance(error, CloseRateLimited):
        return close_rate_limited(text)
    if isinstance(error, CloseError | TimeoutError):
        log.info("find: Close did not answer: %s", type(error).__name__)
    else:
        log.warning("find failed", exc_info=error)
    return close_unreachable(text)


async def _close_or_tell(
    services: Services, user_id: str, team_id: str | None, response_url: str | None
) -> CloseClient | None:
    """The person's Close client; None once they are told why they cannot act (not connected
    under CLOSE_ACCESS=personal, or not a Close user while it would be the org's key)."""
    target = ReplyTarget(user_id=user_id, response_url=response_url)
    try:
        close = await close_for(services, user_id, team_id)
    except CannotAct:
        await tell_cannot_act(services, team_id, user_id, response_url=response_url)
        return None
    except TimeoutError:
        await services.notifier.post(target, notice(NO_CONNECTION_CHECK))
        return None
    refusal = await _not_a_close_user(services, user_id) if close.acts_with_key else None
    if refusal is not None:
        await services.notifier.post(target, notice(refusal))
        return None
    return close


async def _not_a_close_user(services: Services, user_id: str) -> str | None:
    """Why the key's view of Close is not for this person (None: they are a Close user)."""
    try:
        mapping = await asyncio.wait_for(
            services.identity.close_user_for(user_id, remember_later=True),
            MAPPING_BUDGET_SECONDS,
        )
    except Exception as error:  # not knowing who asks means not showing Close data
        log.info("find: could not tell who %s is in Close: %s", user_id, type(error).__name__)
        return f"{NOT_A_CLOSE_USER} I could not check who you are in Close just now: try again."
    if mapping.mapped:
        return None
    return f"{NOT_A_CLOSE_USER} {mapping.explain()}".strip()


async def _shareable(services: Services, channel_id: str | None) -> bool:
    """Whether to offer *Share*: a channel (not a DM) whose readers may see Close data. When
    Slack cannot say in time, it is not offered (nothing leaks on a doubt)."""
    if not channel_id or dm_by_id(channel_id):
        return False
    try:
        return await asyncio.wait_for(
            services.slack_gateway.may_show_close_data(channel_id), AUDIENCE_BUDGET_SECONDS
        )
    except Exception as error:
        log.info("find: who reads %s is unknown (%s): no Share", channel_id, type(error).__name__)
        return False


def _clicked(body: dict[str, Any]) -> tuple[FindRef | None, str, str | None, str | None]:
    """(the button's FindRef, who clicked, their team, the channel) of a find button's click."""
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else {}
    channel_id = str_at(body, "container", "channel_id") or str_at(body, "channel", "id")
    user_id = str_at(body, "user", "id") or ""
    return FindRef.decode(str_at(action, "value")), user_id, str_at(body, "team", "id"), channel_id


async def log_opportunity(services: Services, body: dict[str, Any]) -> None:
    """The modal with the clicked lead chosen (or a new lead by the name looked for); the
    confirmation goes to the channel find was run in."""
    ref, user_id, team_id, channel_id = _clicked(body)
    if ref is None:
        return
    lead_id = ref.lead_id

    async def with_contacts(shown: ModalForm) -> ModalForm:
        # After views.open (never before: the trigger_id lives 3 s).
        assert lead_id is not None
        contacts = await lead_contacts(services, lead_id, user_id=user_id, team_id=team_id)
        return shown.model_copy(update={"contacts": contacts})

    await open_modal(
        services,
        trigger_id=str_at(body, "trigger_id") or "",
        user_id=user_id,
        team_id=team_id,
        channel_id=channel_id,
        response_url=str_at(body, "response_url"),
        lead=(
            existing_lead_option(Lead(id=lead_id, display_name=ref.lead_name))
            if lead_id
            else new_lead_option(ref.lead_name)
        ),
        refresh=with_contacts if lead_id else None,
    )


async def share(services: Services, body: dict[str, Any]) -> None:
    """The lead's card, read now as the person who clicks, posted in the channel for everyone
    (the gateway refuses it where people of another organization read along)."""
    ref, user_id, team_id, channel_id = _clicked(body)
    if ref is None or ref.lead_id is None or channel_id is None:
        return
    response_url = str_at(body, "response_url")
    target = ReplyTarget(user_id=user_id, response_url=response_url)
    close = await _close_or_tell(services, user_id, team_id, response_url)
    if close is None:
        return
    try:
        lead = await asyncio.wait_for(
            close.get_lead_with_opportunities(ref.lead_id), LEAD_BUDGET_SECONDS
        )
    except CannotAct:
        await tell_cannot_act(services, team_id, user_id, response_url=response_url)
        return
    except CloseNotFound:
        why = "Close no longer has this lead, or you can no longer see it."
        await services.notifier.post(target, share_failed(ref.lead_name, why))
        return
    except Exception as error:
        log.info("find: Share could not read %s: %s", ref.lead_id, type(error).__name__)
        why = "Close did not answer. Please try again in a minute."
        await services.notifier.post(target, share_failed(ref.lead_name, why))
        return
    card = shared_card(lead, close_app_url=services.settings.close_app_url, sharer=user_id)
    refusal = await _post_card(services, channel_id, card, ref.lead_name)
    if refusal is not None:
        await services.notifier.post(target, refusal)


async def _post_card(
    services: Services, channel_id: str, card: Message, lead_name: str
) -> Message | None:
    """Post the card through the gateway; None when it is in, else what to tell the person."""
    try:
        await services.slack_gateway.post_message(channel_id, card)
    except NotForThisAudience:
        return notice(SHARE_REFUSED)
    except (Gone, NotAllowed) as error:
        log.info("find: Share in %s refused: %s", channel_id, error.code)
        why = "I can't post in this channel. Add me to it (`/invite`), or share from one I'm in."
        return share_failed(lead_name, why)
    except SlackError as error:
        log.warning("find: Share in %s failed: %s", channel_id, error.code)
        return share_failed(lead_name, f"Slack said `{error.code}`. Please try again.")
    except Exception as error:  # Slack not answering: say so rather than nothing
        log.info("find: Share in %s failed: %s", channel_id, type(error).__name__)
        return share_failed(lead_name, "Slack did not answer. Please try again.")
    return None


def register(app: AsyncApp, services: Services) -> None:
    @app.action(FIND_LOG_ACTION_ID)
    async def log_from_find(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await log_opportunity(services, body)

    @app.action(FIND_SHARE_ACTION_ID)
    async def share_from_find(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await share(services, body)
