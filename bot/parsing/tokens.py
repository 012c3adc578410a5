"""The text being parsed, with the parts already read blanked out (the words themselves are in `languages/`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from bot.parsing.lexicon import fold

# Stands in for characters a reader has already taken: never a word character, never
# whitespace, so later patterns cannot match across or into a field that was read.
MASK = "\x00"

_SLACK_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
# A no-break space between digits groups thousands (fr-FR "12 500 €"): kept, as U+202F.
_SPACES = re.compile(
    r"(?P<group>(?<=\d)[\u00a0\u202f](?=\d{3}(?!\d)))|[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+"
)


def normalize(text: str) -> str:
    """Undo Slack's escaping of `& < >` and make every run of spaces one plain space.

    Slack sends user-typed `<`, `>` and `&` escaped and mentions as real `<@U…>`, so
    unescaping keeps mentions intact and gives lead names back their `&` (AT&T).
    Newlines are kept: a message shortcut's text may span lines.
    """
    for escaped, plain in _SLACK_ENTITIES:
        text = text.replace(escaped, plain)
    return _SPACES.sub(lambda m: "\u202f" if m.group("group") else " ", text)


class Workspace:
    """A line of text plus which of its characters have been read already.

    Readers search `text`, the line with accents folded (`clôture` -> `cloture`) and read
    parts blanked out as MASK characters, so indices always line up with `original`; they
    `take` what they recognise, which returns it as typed.
    """

    __slots__ = ("_unread", "original", "text")

    def __init__(self, text: str) -> None:
        self.original = text
        self.text = fold(text)
        self._unread = text

    def take(self, start: int, end: int) -> str:
        """Mark [start, end) as read and return it as the user typed it."""
        self.text = self.text[:start] + MASK * (end - start) + self.text[end:]
        self._unread = self._unread[:start] + MASK * (end - start) + self._unread[end:]
        return self.original[start:end]

    def up_to(self, end: int) -> Workspace:
        """A copy in which everything from `end` on counts as read."""
        copy = Workspace(self.original)
        copy.text, copy._unread = self.text, self._unread
        copy.take(end, len(self.text))
        return copy

    def unread(self) -> str:
        """The line as typed (accents kept), with the read parts blanked out."""
        return self._unread

    def free(self, start: int, end: int) -> bool:
        """Whether no character of [start, end) has been read yet."""
        return MASK not in self.text[start:end]

    def finditer(self, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        return pattern.finditer(self.text)


def alternation(words: Iterable[str]) -> str:
    """A regex alternation of words, longest first so `sept` wins over `sep`."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
