"""Reading the lead: `lead: Acme`, a quoted name, or the words left once every other field is read."""

from __future__ import annotations

import re

from bot.parsing.tokens import ARTICLES, CONNECTORS, MASK

KEY_RE = re.compile(
    r"(?<![\w])(?P<key>lead|company|account|customer|client|status|stage)\s*[:=]\s*",
    re.IGNORECASE,
)
STATUS_KEYS = frozenset({"status", "stage"})

QUOTED_RE = re.compile(r"\"([^\"\n]+)\"|“([^”\"\n]+)”|„([^“”\n]+)[“”]|«\s*([^»\n]+?)\s*»")

# A key's value runs to the next delimiter, the next `key:` or an already read field. A comma
# between digits groups a figure (`lead: Acme 40,000 USD`): the figure ends the value instead.
_VALUE_END = re.compile(rf"(?<!\d),|,(?!\d)|[;|\n{MASK}]|\s\w+\s*:(?!\d)")

_CORPORATE_SUFFIXES = frozenset(
    [
        "inc",
        "inc.",
        "incorporated",
        "llc",
        "l.l.c.",
        "ltd",
        "ltd.",
        "limited",
        "gmbh",
        "ag",
        "sa",
        "s.a.",
        "sas",
        "sarl",
        "bv",
        "b.v.",
        "nv",
        "n.v.",
        "plc",
        "llp",
        "lp",
        "corp",
        "corp.",
        "corporation",
        "co",
        "co.",
        "pty",
        "pty.",
        "kk",
        "k.k.",
        "oy",
        "ab",
        "as",
        "a/s",
        "srl",
        "s.r.l.",
        "spa",
        "s.p.a.",
    ]
)
_SUFFIX_AFTER_COMMA = re.compile(
    rf" ?(?:{'|'.join(re.escape(s) for s in sorted(_CORPORATE_SUFFIXES, key=len, reverse=True))})(?![\w.])",
    re.IGNORECASE,
)
# A piece made only of these (a greeting, "big news") is not a lead name.
_CHATTER = frozenset(
    [
        "hey",
        "hi",
        "hello",
        "fyi",
        "update",
        "team",
        "all",
        "everyone",
        "folks",
        "guys",
        "great",
        "good",
        "big",
        "news",
        "so",
        "yay",
        "woo",
        "ok",
        "okay",
        "please",
        "pls",
        "thanks",
        "thx",
        "today",
    ]
)
_AT_NAME_RE = re.compile(r"(?<!\S)@[\w.\-]+")
_INNER_CONNECTORS = frozenset({"with", "for", "from", "at"})
_EDGE_PUNCTUATION = " \t\"'“”„«»‘’:=-–—.*_~`"
_SPLIT_RE = re.compile(rf"({MASK}+|\n|[;|!?()\[\]{{}}]|,|\s[-–—]+\s|\s[-–—]+$|^[-–—]+\s)")


def unquote(value: str) -> str:
    """A key's value without the quotes around it (`lead: "Acme, Inc."`)."""
    match = QUOTED_RE.fullmatch(value.strip())
    if match:
        return next(g for g in match.groups() if g is not None).strip()
    return value.strip()


def key_value_end(text: str, start: int) -> int:
    """Where a `key:` value starting at `start` ends (quoted values end at their quote)."""
    if start < len(text) and text[start] in '"“„«':
        quoted = QUOTED_RE.match(text, start)
        if quoted:
            return quoted.end()
    found = _VALUE_END.search(text, start)
    while found and found.group() == ",":
        suffix = _SUFFIX_AFTER_COMMA.match(text, found.end())
        if not suffix:
            break
        found = _VALUE_END.search(text, suffix.end())
    return found.start() if found else len(text)


def _is_filler(word: str) -> bool:
    return word.lower().strip(_EDGE_PUNCTUATION) in CONNECTORS or not word.strip(_EDGE_PUNCTUATION)


def trim_lead_in(value: str) -> str:
    """A key's value cut where another field begins, without the words that led into it.

    `lead: Acme Corp for 40k` -> `Acme Corp`; `lead: Toys for Tots 12k` keeps its `for`.
    """
    head, _, last = value.rstrip().rpartition(" ")
    while head and (_is_filler(last) or not any(ch.isalnum() for ch in last)):
        head, _, last = head.rstrip().rpartition(" ")
    return f"{head} {last}" if head else last


def _trim(words: list[str]) -> list[str]:
    """Drop connectors from both ends; an article goes only along with a connector after it.

    "a deal with Acme" -> "Acme", but "The Home Depot" keeps its "The".
    """
    start = 0
    cut = 0
    while start < len(words):
        word = words[start].lower().strip(_EDGE_PUNCTUATION)
        if _is_filler(words[start]):
            start += 1
            cut = start
        elif word in ARTICLES:
            start += 1
        else:
            break
    end = len(words)
    while end > cut and _is_filler(words[end - 1]):
        end -= 1
    return words[cut:end]


def _after_inner_connector(words: list[str]) -> list[str]:
    """`great call with Initech` -> `Initech`; `Toys for Tots` stays (it is capitalised)."""
    for i in range(len(words) - 1, 0, -1):
        if words[i].lower() in _INNER_CONNECTORS:
            before, after = words[:i], words[i + 1 :]
            if (
                after
                and not any(ch.isupper() for w in before for ch in w)
                and after[0][:1].isupper()
            ):
                return _trim(after)
    return words


def _clean(piece: str) -> list[str]:
    return _trim([w for w in piece.split() if w.strip(_EDGE_PUNCTUATION)])


def tidy_name(name: str) -> str:
    """Strip quotes and punctuation around the name, keeping the dot of a final "Inc."."""
    keep_dot = name.rsplit(" ", 1)[-1].lower().lstrip(_EDGE_PUNCTUATION) in _CORPORATE_SUFFIXES
    stripped = name.strip(_EDGE_PUNCTUATION)
    return (
        stripped + "."
        if keep_dot and name.endswith(".") and not stripped.endswith(".")
        else stripped
    )


def leftover_lead(text: str) -> tuple[str | None, list[str]]:
    """The lead among the words no other field took, and warnings (e.g. a plain `@name`)."""
    warnings: list[str] = []
    at_names = _AT_NAME_RE.findall(text)
    if at_names:
        warnings.append(
            f"{', '.join(at_names)} is not a Slack mention here; pick the owner in the form"
        )
        text = _AT_NAME_RE.sub(MASK, text)
    parts = _SPLIT_RE.split(text)
    # parts alternates piece, separator, piece…; keep the separators to rejoin "Acme, Inc."
    pieces = parts[0::2]
    separators = [*parts[1::2], ""]
    for index, piece in enumerate(pieces):
        words = _clean(piece)
        if not words or all(w.lower() in _CHATTER or _is_filler(w) for w in words):
            continue
        words = _after_inner_connector(words)
        name = " ".join(words)
        follower = index + 1
        while (
            separators[follower - 1] == ","
            and follower < len(pieces)
            and pieces[follower].strip().lower() in _CORPORATE_SUFFIXES
        ):
            name = tidy_name(name) + ", " + pieces[follower].strip()
            follower += 1
        name = tidy_name(name)
        return name or None, warnings
    return None, warnings
