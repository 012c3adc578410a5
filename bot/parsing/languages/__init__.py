"""The words each language uses in a deal line, as data: one module per language, compiled by `bot.parsing.lexicon`.

Write words as people type them, accents included, in lower case: matching ignores case
and accents (`clôture` also matches `cloture`, `próximo` `proximo`), and a curly
apostrophe matches a straight one. A space in a phrase matches any run of spaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Unit = Literal["day", "business_day", "week", "fortnight", "month", "year"]
WeekdayModifier = Literal["next", "this", "last", "next_week"]
SalesPhrase = Literal["eom", "eonm", "eoq", "nextq", "eoy", "eony", "eow", "eonw"]


@dataclass(frozen=True, slots=True)
class Re:
    """A regular expression, where a plain phrase cannot say it (English `a month`, but not `in a month`)."""

    source: str


Phrase = str | Re


@dataclass(frozen=True, kw_only=True)
class Vocabulary:
    """One language's words for each part of the one-liner (see PRODUCT.md, "Parsing conventions")."""

    code: str
    """ISO 639-1, as Babel and dateparser name the language."""
    name: str

    # --- money ------------------------------------------------------------------------------
    suffixes: Mapping[str, int] = field(default_factory=dict)
    """Glued to a figure, alone: `12k`, `1.2m`."""
    sign_suffixes: Mapping[str, int] = field(default_factory=dict)
    """Before a currency sign or code only, glued or spaced: `8 k€`, `2 M€`, `120 TEUR`."""
    scale_words: Mapping[str, int] = field(default_factory=dict)
    """After a figure, space optional: `12 thousand`, `1,2 Mio.`, `15 mil`, `15mila`."""
    currency_words: Mapping[str, str | None] = field(default_factory=dict)
    """Words naming a currency (None: the user's own dollar, else USD)."""
    currency_links: tuple[str, ...] = ()
    """Between a figure and its currency word: `1,5 million d'euros`, `2 millones de euros`."""
    space_groups: bool = False
    """People group thousands with a plain space (`12 500 €`), not only a no-break one."""

    # --- value period -------------------------------------------------------------------------
    monthly: tuple[Phrase, ...] = ()
    annual: tuple[Phrase, ...] = ()
    one_time: tuple[Phrase, ...] = ()
    one_time_after_amount: tuple[Phrase, ...] = ()
    """Words that mean one-time only right after an amount (`15k único`): elsewhere they are words."""

    # --- confidence ---------------------------------------------------------------------------
    percent_words: tuple[Phrase, ...] = ()
    """What stands for `%` after a number: `Prozent`, `pour cent`."""
    confidence_before: tuple[str, ...] = ()
    """Words before the number: `Wahrscheinlichkeit 60`, `probabilité : 60 %`."""
    confidence_links: tuple[str, ...] = ()
    """Between such a word and the number: `probabilidad del 70 %`."""
    confidence_after: tuple[str, ...] = ()
    """Words after `60 %` that are part of it: `60 % de chances`, `60 % sicher`."""

    # --- keys -----------------------------------------------------------------------------------
    note_keys: tuple[str, ...] = ()
    lead_keys: tuple[str, ...] = ()
    status_keys: tuple[str, ...] = ()

    # --- lead -----------------------------------------------------------------------------------
    connectors: tuple[str, ...] = ()
    """Words that glue fields into a sentence (`für`, `avec`): dropped from the ends of a lead."""
    articles: tuple[str, ...] = ()
    """Dropped from the start of a lead only with a connector after them (`The Home Depot` stays)."""
    particles: tuple[str, ...] = ()
    """`de`, `van`: dropped next to a dropped connector when typed in lower case (`De Vries` stays)."""
    inner_connectors: tuple[str, ...] = ()
    """`great call with Initech` -> `Initech` when the words before are all lower case."""
    chatter: tuple[str, ...] = ()
    """A piece made only of these (greetings, "big news") is not a lead."""

    # --- close date -------------------------------------------------------------------------------
    date_introducers: tuple[str, ...] = ()
    """Words that introduce a close date (`Abschluss`, `clôture`): taken with it, dropped from a lead."""
    date_prepositions: tuple[str, ...] = ()
    """Also taken right before a date (`until`, `before`), but left in a lead name."""
    date_articles: tuple[str, ...] = ()
    """Taken between an introducer and a date, or right before a date (`cierre el viernes`)."""
    months: Mapping[str, int] = field(default_factory=dict)
    weekdays: Mapping[str, int] = field(default_factory=dict)
    """Monday = 0. Names that are a date on their own (`Freitag`)."""
    weekday_abbreviations: Mapping[str, int] = field(default_factory=dict)
    """Names that are a date only after an introducer or a modifier (`bis Fr.`, `na sexta`)."""
    weekday_before: Mapping[str, WeekdayModifier] = field(default_factory=dict)
    """`nächsten Freitag`, `este viernes`."""
    weekday_after: Mapping[str, WeekdayModifier] = field(default_factory=dict)
    """`vendredi prochain`, `viernes que viene`, `Freitag nächste Woche`."""
    relative_days: Mapping[str, int] = field(default_factory=dict)
    """Days from today: `morgen` 1, `gestern` -1."""
    in_words: tuple[str, ...] = ()
    """Before a count and a unit: `in 2 Wochen`, `dans 2 semaines`, `over 2 weken`."""
    from_now: tuple[str, ...] = ()
    """After a count and a unit: `3 days from now`."""
    counts: Mapping[str, int] = field(default_factory=dict)
    units: Mapping[str, Unit] = field(default_factory=dict)
    next_periods: Mapping[str, Unit] = field(default_factory=dict)
    """`nächste Woche` (+7 days), `le mois prochain` (+1 month), as dateparser reads them."""
    sales: Mapping[SalesPhrase, tuple[str, ...]] = field(default_factory=dict)
    """End of month (eom), of next month (eonm), of quarter (eoq), next quarter (nextq), of
    year (eoy), of next year (eony), of week (eow, the Friday), of next week (eonw)."""
    end_prefixes: tuple[str, ...] = ()
    """Before a month or a quarter: `Ende Dezember`, `fin du 1er trimestre` (its last day)."""
    mid_prefixes: tuple[str, ...] = ()
    """Before a month: `Mitte Januar`, `mi-janvier` (the 15th)."""
    day_suffixes: tuple[str, ...] = ()
    """After a day number: `15.`, `1er`, `1º`, `15th`."""
    day_suffixes_alone: tuple[str, ...] = ()
    """Those that make a number a day with nothing before it (`the 15th`, `15e`)."""
    day_lead_ins: tuple[str, ...] = ()
    """Before a bare day number: `am 15.`, `le 15`, `el 15`, `dia 15`."""
    month_links: tuple[str, ...] = ()
    """Between a day and its month: `15 de diciembre`, `3rd of March`."""
    year_links: tuple[str, ...] = ()
    """Between a month (or quarter) and its year: `diciembre de 2026`."""
    quarter_letters: tuple[str, ...] = ()
    """Before the quarter's number: `Q1`, `T1`."""
    quarter_letters_after: tuple[str, ...] = ()
    """After it: `1T`."""
    quarter_nouns: tuple[str, ...] = ()
    """`1. Quartal`, `premier trimestre`, `eerste kwartaal`."""
    quarter_ordinals: Mapping[str, int] = field(default_factory=dict)
    quarter_number_suffixes: tuple[str, ...] = ()
    """After a quarter's number: `1.`, `1er`, `2e`, `1º`."""
    dateparser: str | None = None
    """The language dateparser knows it by, for phrases the patterns do not cover."""
