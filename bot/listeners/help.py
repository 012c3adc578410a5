"""The help text: the grammar people type, with examples."""

HELP_TEXT = """*Log a Close opportunity from Slack*
`/opportunity` opens an empty form. Add a line of text and the form comes prefilled:
• `/opportunity Acme Corp $12k ARR 60% close next friday`
• `/opportunity Initech 1.5k/mo 80% by EOM status: Proposal Sent`
• `/opportunity lead: "Nakatomi Trading" 250k one-time closing on the 15th note: intro via Hans`
What it understands: amounts (`12k`, `$12,500`, `€40,000`, `1.2m`), periods (`ARR`, `/mo`, `one-time`), \
confidence (`60%`), close dates (`next friday`, `Dec 15`, `EOM`, `EOQ`, `Q3`), an owner (`@someone`), \
`status: …` and `note: …`. You can check and change everything before pressing *Create*."""
