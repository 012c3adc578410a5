"""The text being parsed, with the parts already read blanked out, and the shared vocabulary."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

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

    Readers search `text` (read parts are MASK characters, so indices always line up
    with `original`) and `take` what they recognise, which returns it as typed.
    """

    __slots__ = ("original", "text")

    def __init__(self, text: str) -> None:
        self.original = text
        self.text = text

    def take(self, start: int, end: int) -> str:
        """Mark [start, end) as read and return it as the user typed it."""
        self.text = self.text[:start] + MASK * (end - start) + self.text[end:]
        return self.original[start:end]

    def free(self, start: int, end: int) -> bool:
        """Whether no character of [start, end) has been read yet."""
        return MASK not in self.text[start:end]

    def finditer(self, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        return pattern.finditer(self.text)


# Words that introduce a close date ("closing by Friday"): the date reader takes them with the
# date, and the lead reader trims them, so both read from this one list.
DATE_INTRODUCERS = (
    "close",
    "closes",
    "closed",
    "closing",
    "by",
    "on",
    "expected",
    "expect",
    "expecting",
    "due",
    "signing",
    "signed",
    "sign",
    "signs",
)

# Words that glue a field to a sentence ("deal with Acme for 12k closing by Friday"):
# trimmed from the edges of the leftover text the lead is read from.
CONNECTORS = frozenset(
    [
        "for",
        "with",
        "deal",
        "deals",
        "opp",
        "opps",
        "opportunity",
        "opportunities",
        *DATE_INTRODUCERS,
        "just",
        "new",
        "won",
        "win",
        "landed",
        "booked",
        "got",
        "get",
        "add",
        "log",
        "create",
        "created",
        "and",
        "or",
        "at",
        "to",
        "from",
        "of",
        "in",
        "is",
        "was",
        "will",
        "be",
        "should",
        "owner",
        "owners",
        "assigned",
        "assign",
        "assignee",
        "value",
        "worth",
        "est",
        "eta",
        "target",
        "targeting",
        "around",
        "approx",
        "approximately",
        "about",
        "total",
        "confidence",
        "confident",
        "chance",
        "likely",
        "probability",
        "prob",
        "prospect",
        "prospects",
        "account",
        "lead",
        "company",
        "status",
        "stage",
        "note",
        "notes",
        "via",
        "amount",
        "contract",
        "contracts",
        "re",
        "we",
        "i",
        "they",
        "our",
        "my",
        "us",
        "finally",
    ]
)
ARTICLES = frozenset({"a", "an", "the"})

MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        ("january", "jan"),
        ("february", "feb"),
        ("march", "mar"),
        ("april", "apr"),
        ("may",),
        ("june", "jun"),
        ("july", "jul"),
        ("august", "aug"),
        ("september", "sep", "sept"),
        ("october", "oct"),
        ("november", "nov"),
        ("december", "dec"),
    ),
    start=1,
):
    for _name in _names:
        MONTHS[_name] = _number

WEEKDAYS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        ("monday", "mon"),
        ("tuesday", "tue", "tues"),
        ("wednesday", "wed", "weds"),
        ("thursday", "thu", "thur", "thurs"),
        ("friday", "fri"),
        ("saturday", "sat"),
        ("sunday", "sun"),
    )
):
    for _name in _names:
        WEEKDAYS[_name] = _number

# Full weekday names are dates on their own; "Sun" or "Wed" alone may be a name (Sun
# Microsystems), so abbreviations need a connector or next/this.
FULL_WEEKDAYS = frozenset(
    {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
)


def alternation(words: Iterable[str]) -> str:
    """A regex alternation of words, longest first so `sept` wins over `sep`."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
