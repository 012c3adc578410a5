"""Slack message text (mrkdwn, mentions, links, channel refs, emoji) -> plain words the parser reads."""

from __future__ import annotations

import re

# Longest text handed to the parser: a message shortcut may be run on a pasted essay.
MAX_CHARS = 2000

# `<…>` entities as Slack sends them in a message's `text` (user-typed `<` arrives as `&lt;`).
_ENTITY = re.compile(r"<([^<>\n]*)>")
# An explicit owner ("owner: <@U1>", "owned by <@U1|bob>") is the only mention worth keeping.
_OWNER_BEFORE = re.compile(r"\b(?:owner|owned by|owners?)\s*:?\s*$", re.IGNORECASE)
_CODE_BLOCK = re.compile(r"```(.*?)```", re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
# *bold* _italic_ ~strike~ only at word edges, so snake_case and 5*3 survive.
_EMPHASIS = re.compile(r"(?<![\w*_~])([*_~])(?=\S)(.+?)(?<=\S)\1(?![\w*_~])")
# :emoji: and :skin-tone-2: — at least one letter, so "10:30:45" is left alone.
_EMOJI = re.compile(r":(?=[a-z0-9_+'-]*[a-z])[a-z0-9_+'-]+:", re.IGNORECASE)
_QUOTE = re.compile(r"^\s*(?:&gt;|>)+\s?", re.MULTILINE)
_SPACES = re.compile(r"[ \t]+")
# A removed entity leaves "Globex , 40k": glue punctuation back to its word.
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.;!?)])")


def _entity(match: re.Match[str], text: str) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("@"):  # a user mention
        before = text[max(0, match.start() - 20) : match.start()]
        return f"<{target}>" if _OWNER_BEFORE.search(before) else " "
    if target.startswith("#"):  # a channel reference
        return " "
    if target.startswith("!date^"):  # a formatted date: its fallback text is a real date
        return f" {label} " if label else " "
    if target.startswith("!"):  # @here, @channel, user groups
        return " "
    if target.startswith("mailto:"):
        return f" {label or target.removeprefix('mailto:')} "
    # A link: its label says what it is ("<https://acme.com|Acme Corp>"); a bare URL says nothing.
    return f" {label} " if label else " "


def clean_message_text(text: str) -> str:
    """The words of a Slack message with its markup taken out, ready for `parse`.

    Mentions go (people in a message are who it is addressed to, not the deal's owner)
    unless introduced by "owner"; links become their label; channel refs, @here and
    emoji go; formatting marks and quote markers are dropped. `&lt;`-style escapes stay
    as Slack sent them: the parser undoes them itself.
    """
    text = text[: MAX_CHARS * 2]
    text = _ENTITY.sub(lambda m: _entity(m, text), text)
    text = _CODE_BLOCK.sub(lambda m: f" {m.group(1)} ", text)
    text = _INLINE_CODE.sub(lambda m: m.group(1), text)
    previous = None
    while previous != text:  # nested emphasis ("*_big_*") unwraps one layer per pass
        previous = text
        text = _EMPHASIS.sub(lambda m: m.group(2), text)
    text = _EMOJI.sub(" ", text)
    text = _QUOTE.sub("", text)
    lines = [
        _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", line)).strip() for line in text.splitlines()
    ]
    return "\n".join(line for line in lines if line)[:MAX_CHARS]


def with_permalink(note: str | None, permalink: str | None) -> str | None:
    """The note with the source message's link at the end (once, however often it is called)."""
    if not permalink:
        return note
    if note and permalink in note:
        return note
    line = f"From Slack: {permalink}"
    return f"{note.rstrip()}\n\n{line}" if note and note.strip() else line
