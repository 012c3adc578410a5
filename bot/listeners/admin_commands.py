"""`/opportunity whoami | link @user <close email or id> | unlink @user`: user mapping from Slack."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from slack_bolt.async_app import AsyncRespond

from bot.blocks.text import MESSAGE_TEXT, escape, fit
from bot.identity import LinkRefused, Mapping
from bot.services import Services

# Slash command text arrives escaped: `<@U0BOB|bob>`, and emails as `<mailto:a@b.c|a@b.c>`.
MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
MAILTO = re.compile(r"^<mailto:([^|>]+)(?:\|[^>]*)?>$")

MAPPING_HELP = """*Who owns what in Close*
• `/opportunity whoami` shows which Close user you are and why (`whoami @someone` for anyone else).
• `/opportunity link @someone <close email or user id>` links a Slack user to a Close user; \
it wins over matching by email. `/opportunity unlink @someone` goes back to email matching. \
Linking is for Slack workspace admins and owners and the bot's admins."""

LINK_USAGE = (
    "Usage: `/opportunity link @someone <their Close email or user_… id>`. "
    "Mention the person with @ so Slack sends who they are."
)
UNLINK_USAGE = "Usage: `/opportunity unlink @someone`."

Verb = Literal["whoami", "link", "unlink"]


@dataclass(frozen=True)
class Subcommand:
    verb: Verb
    user_id: str | None = None  # the mentioned Slack user
    target: str | None = None  # link: the Close email or user id
    problem: str | None = None  # the text was for us but malformed: answer with this


def parse_subcommand(text: str) -> Subcommand | None:
    """The mapping subcommand in `text`, or None when it is an opportunity to prefill.

    Strict on purpose: `/opportunity link building corp 5k` is a lead, not a subcommand —
    only a bare verb or a verb followed by a mention is ours.
    """
    words = text.split()
    if not words:
        return None
    verb = words[0].lower()
    mention = MENTION.match(words[1]) if len(words) > 1 else None
    if verb == "whoami":
        if len(words) == 1:
            return Subcommand("whoami")
        if mention and len(words) == 2:
            return Subcommand("whoami", user_id=mention.group(1))
        return None
    if verb not in ("link", "unlink"):
        return None
    if verb == "unlink":
        if len(words) == 1:
            return Subcommand("unlink", problem=UNLINK_USAGE)
        if mention is None:
            return None
        user_id = mention.group(1)
        if len(words) != 2:
            return Subcommand("unlink", user_id, problem=UNLINK_USAGE)
        return Subcommand("unlink", user_id)
    if len(words) == 1:
        return Subcommand("link", problem=LINK_USAGE)
    if mention is None:
        return None
    user_id = mention.group(1)
    if len(words) != 3:
        return Subcommand("link", user_id, problem=LINK_USAGE)
    raw = words[2]
    mailto = MAILTO.match(raw)
    target = mailto.group(1) if mailto else raw.strip("<>")
    return Subcommand("link", user_id, target=target)


async def handle(
    services: Services, command: Subcommand, *, invoker: str, respond: AsyncRespond
) -> None:
    """Answer `command` for `invoker`, ephemerally (only they see it)."""
    text = await _answer(services, command, invoker)
    await respond(text=fit(text, MESSAGE_TEXT), response_type="ephemeral")


async def _answer(services: Services, command: Subcommand, invoker: str) -> str:
    identity = services.identity
    if command.problem:
        return command.problem
    if command.verb == "whoami":
        subject = command.user_id or invoker
        return describe(await identity.close_user_for(subject), is_self=subject == invoker)
    subject = command.user_id or ""
    if not await identity.is_admin(invoker):
        return await _refusal(services, command)
    try:
        if command.verb == "link":
            mapping = await identity.link(subject, command.target or "", set_by=invoker)
            if mapping.source != "override" or mapping.close_user is None:
                return f"Linked, but <@{subject}> still does not map: {escape(mapping.explain())}"
            return (
                f"Linked <@{subject}> to *{escape(mapping.close_user.label)}* in Close. "
                "This wins over matching by email; "
                f"`/opportunity unlink <@{subject}>` undoes it."
            )
        removed, mapping = await identity.unlink(subject, by=invoker)
    except LinkRefused as refused:
        return str(refused)
    now = _now_text(mapping, subject)
    if removed is None:
        return f"<@{subject}> had no link to remove. {now}"
    return f"Removed the link of <@{subject}>. {now}"


async def _refusal(services: Services, command: Subcommand) -> str:
    admins = services.identity.admin_mentions()
    who = "Slack workspace admins and owners" + (f", and {admins}," if admins else "")
    example = f"`/opportunity {command.verb} <@{command.user_id}>"
    example += " <their Close email>`" if command.verb == "link" else "`"
    return (
        f"Sorry, only {who} can change who maps to whom. "
        f"Ask one of them to run {example}. `/opportunity whoami` shows how you are mapped."
    )


def _now_text(mapping: Mapping, subject: str) -> str:
    if mapping.close_user is not None:
        return (
            f"<@{subject}> now maps to *{escape(mapping.close_user.label)}* "
            f"({mapping.source}): {escape(mapping.reason)}"
        )
    return f"<@{subject}> does not map to a Close user now: {escape(mapping.explain())}"


def describe(mapping: Mapping, *, is_self: bool) -> str:
    """The whoami answer: which Close user, how, and — when none — why and what to do."""
    who = "You are" if is_self else f"<@{mapping.slack_user_id}> is"
    if mapping.close_user is not None and mapping.source == "connected":
        label = escape(mapping.close_user.label)
        when = f" on {mapping.connected_at:%Y-%m-%d}" if mapping.connected_at else ""
        undo = " `/opportunity disconnect` forgets it." if is_self else ""
        return (
            f"{who} *{label}* in Close: connected as *{label}*{when} with their own Close "
            f"account (this outranks admin links and email).{undo}"
        ).replace("with their own", "with your own" if is_self else "with their own")
    if mapping.close_user is not None:
        how = escape(mapping.reason)
        link = mapping.link
        if mapping.source == "override" and link is not None and link.set_by:
            how += f" Set by <@{link.set_by}> on {link.updated_at:%Y-%m-%d}."
        return f"{who} *{escape(mapping.close_user.label)}* in Close. {how}"
    if mapping.refused:
        return f"{who} not someone who can own opportunities: {escape(mapping.explain())}"
    return f"{who} not matched to a Close user. {escape(mapping.explain())}"
