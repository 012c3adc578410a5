"""Reading the lead: `lead: Acme`, a quoted name, or the words left once every other field is read."""

from __future__ import annotations

import re
from functools import lru_cache

from bot.parsing.lexicon import Lexicon, fold_key, lexicon_for, word_alternation
from bot.parsing.tokens import MASK


@lru_cache(maxsize=8)
def key_pattern(language: str) -> re.Pattern[str]:
    """`lead: …`, `status: …` and their words in `language` (`Kunde:`, `statut :`)."""
    words = lexicon_for(language).words
    keys = word_alternation((*words.lead_keys, *words.status_keys))
    return re.compile(rf"(?<![\w])(?P<key>{keys})\s*[:=]\s*", re.IGNORECASE)


KEY_RE = key_pattern("en")
STATUS_KEYS = lexicon_for("en").status_keys

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
        "kg",
        "ug",
        "ohg",
        "gbr",
        "e.k.",
        "e.v.",
        "sl",
        "s.l.",
        "sau",
        "s.a.u.",
        "sasu",
        "eurl",
        "snc",
        "ltda",
        "ltda.",
        "lda",
        "lda.",
        "s/a",
        "eireli",
        "vof",
        "bvba",
        "sprl",
    ]
)
_SUFFIX_AFTER_COMMA = re.compile(
    rf" ?(?:{'|'.join(re.escape(s) for s in sorted(_CORPORATE_SUFFIXES, key=len, reverse=True))})(?![\w.])",
    re.IGNORECASE,
)
_AT_NAME_RE = re.compile(r"(?<!\S)@[\w.\-]+")
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


def _is_filler(word: str, lexicon: Lexicon) -> bool:
    stripped = word.strip(_EDGE_PUNCTUATION)
    return not stripped or fold_key(stripped) in lexicon.connectors


def _is_particle(word: str, lexicon: Lexicon) -> bool:
    """`de`, `van` typed in lower case: glue, unlike the `De` of `De Vries`."""
    stripped = word.strip(_EDGE_PUNCTUATION)
    return stripped.islower() and fold_key(stripped) in lexicon.particles


def _is_glue_after_connector(word: str, lexicon: Lexicon) -> bool:
    """A particle or a lower-case article right after a dropped connector (`für die Hartmann
    AG`, `contrato de Acme`); `The Home Depot` typed capitalised keeps its article."""
    stripped = word.strip(_EDGE_PUNCTUATION)
    return _is_particle(word, lexicon) or (
        stripped.islower() and fold_key(stripped) in lexicon.articles
    )


def trim_lead_in(value: str, lexicon: Lexicon | None = None) -> str:
    """A key's value cut where another field begins, without the words that led into it.

    `lead: Acme Corp for 40k` -> `Acme Corp`; `lead: Toys for Tots 12k` keeps its `for`.
    """
    lexicon = lexicon or lexicon_for("en")
    head, _, last = value.rstrip().rpartition(" ")
    while head and (
        _is_filler(last, lexicon)
        or _is_particle(last, lexicon)
        or not any(ch.isalnum() for ch in last)
    ):
        head, _, last = head.rstrip().rpartition(" ")
    return f"{head} {last}" if head else last


def _trim(words: list[str], lexicon: Lexicon) -> list[str]:
    """Drop connectors from both ends; an article goes only along with a connector next to it.

    "a deal with Acme" -> "Acme", but "The Home Depot" keeps its "The"; a lower-case
    article or particle after a dropped connector goes too ("für die Hartmann AG",
    "contrato de Acme").
    """
    start = 0
    cut = 0
    while start < len(words):
        word = fold_key(words[start].strip(_EDGE_PUNCTUATION))
        if _is_filler(words[start], lexicon) or (
            start == cut and cut > 0 and _is_glue_after_connector(words[start], lexicon)
        ):
            start += 1
            cut = start
        elif word in lexicon.articles:
            start += 1
        else:
            break
    end = len(words)
    while end > cut and (
        _is_filler(words[end - 1], lexicon)
        or (end < len(words) and _is_particle(words[end - 1], lexicon))
    ):
        end -= 1
    return words[cut:end]


def _after_inner_connector(words: list[str], lexicon: Lexicon) -> list[str]:
    """`great call with Initech` -> `Initech`; `Toys for Tots` stays (it is capitalised)."""
    for i in range(len(words) - 1, 0, -1):
        if fold_key(words[i]) in lexicon.inner_connectors:
            before, after = words[:i], words[i + 1 :]
            if (
                after
                and not any(ch.isupper() for w in before for ch in w)
                and after[0][:1].isupper()
            ):
                return _trim(after, lexicon)
    return words


def _clean(piece: str, lexicon: Lexicon) -> list[str]:
    return _trim([w for w in piece.split() if w.strip(_EDGE_PUNCTUATION)], lexicon)


def tidy_name(name: str) -> str:
    """Strip quotes and punctuation around the name, keeping the dot of a final "Inc."."""
    keep_dot = name.rsplit(" ", 1)[-1].lower().lstrip(_EDGE_PUNCTUATION) in _CORPORATE_SUFFIXES
    stripped = name.strip(_EDGE_PUNCTUATION)
    return (
        stripped + "."
        if keep_dot and name.endswith(".") and not stripped.endswith(".")
        else stripped
    )


def leftover_lead(text: str, lexicon: Lexicon | None = None) -> tuple[str | None, list[str]]:
    """The lead among the words no other field took, and warnings (e.g. a plain `@name`)."""
    lexicon = lexicon or lexicon_for("en")
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
        words = _clean(piece, lexicon)
        if not words or all(
            fold_key(w) in lexicon.chatter or _is_filler(w, lexicon) for w in words
        ):
            continue
        words = _after_inner_connector(words, lexicon)
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
