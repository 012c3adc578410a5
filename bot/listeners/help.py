"""The help text: the grammar people type, with examples."""

from rapidfuzz.distance import DamerauLevenshtein

HELP_TEXT = """*Log a Close opportunity from Slack*
`/opportunity` opens an empty form. Add a line of text and the form comes prefilled:
• `/opportunity Acme Corp $12k ARR 60% close next friday`
• `/opportunity Initech 1.5k/mo 80% by EOM status: Proposal Sent`
• `/opportunity lead: "Nakatomi Trading" 250k one-time closing on the 15th note: intro via Hans`
What it understands: amounts (`12k`, `10 k`, `$12,500`, `€40,000`, `1.2m`), periods (`ARR`, `/mo`, \
`one-time`, `setup fee`), confidence (`60%`), close dates (`next friday`, `Dec 15`, `EOM`, `EOQ`, `Q3`), \
an owner (`@someone`), `status: …`, and a note after `note:` or a dash (`… close Q2 -- champion is the CTO`). \
You can check and change everything before pressing *Create*.
It also reads your Slack language — German, French, Spanish, Portuguese, Italian or Dutch — \
with English always understood: `Müller GmbH 12.500 € jährlich 60 % Abschluss nächsten Freitag`, \
`Dupont SA 8 k€ par mois, 40 %, clôture fin du mois`, `Acme 15k anual 70% cierre el próximo viernes`.
No typing: a message's ⋯ menu > *Create opportunity*, or the ⚡ menu > *Log opportunity*. \
The confirmation's *Edit*, *Won* and *Lost* buttons change it in Close.
Each morning a DM lists your deals past their expected close date, with one-tap *Won*, *Lost*, \
*+1 week* and *Pick a date*: `/opportunity nudges off` stops it, `/opportunity nudges on` \
brings it back. When someone else changes one of your deals in Close, a DM says what changed: \
`/opportunity alerts off` stops those, `/opportunity alerts on` brings them back.
The app's Home tab lists your deals closing this week and your overdue ones (the same one-tap \
buttons), your recent ones, and both switches."""

# Words of the command that are not a lead; a lone near-miss of one is a typo, not a company.
SUBCOMMANDS = (
    "help",
    "find",
    "whoami",
    "link",
    "unlink",
    "connect",
    "disconnect",
    "nudges",
    "alerts",
)


def looks_like_help(text: str) -> bool:
    """Whether `text` asks for help without saying so: a lone flag (`-v`, `--version`, `/x`)
    or a lone lowercase near-miss of a subcommand (`hepl`, `hlep`, `whomai`).

    Anything else opens the modal: the first word is usually a lead ("Acme 12k"), and even a
    lone unknown word ("Initech") is a lead to prefill, not a subcommand.
    """
    words = text.split()
    if len(words) != 1:
        return False
    word = words[0]
    if word[0] in "-/?":
        return True
    if not (word.isalpha() and word.islower()):
        return False
    return any(
        word != known and DamerauLevenshtein.distance(word, known) <= 1 for known in SUBCOMMANDS
    )
