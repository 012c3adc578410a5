"""The grammar reps type, case by case: each line parses to exactly these fields (the rest null)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.parsing import parse

# Wednesday 12 November 2025, 15:00 UTC (07:00 in Los Angeles, 00:00 on the 13th in Tokyo).
NOW = datetime(2025, 11, 12, 15, 0, tzinfo=UTC)
LABELS = ("Active", "Proposal Sent", "Negotiation", "Won", "Lost")
FIELDS = (
    "lead",
    "value",
    "value_currency",
    "value_period",
    "confidence",
    "date_won",
    "owner",
    "status",
    "note",
)


def d(text: str) -> date:
    return date.fromisoformat(text)


# (id, text, expected non-null fields, options). In `expected`, "warns" lists substrings
# that must each appear in some warning, and "quiet" asserts there is no warning at all.
# fmt: off
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    # --- the issue's own examples ------------------------------------------------------
    ("issue-acme", "Acme Corp $12k ARR 60% close next friday", {"lead": "Acme Corp", "value": 1_200_000, "value_currency": "USD", "value_period": "annual", "confidence": 60, "date_won": d("2025-11-14"), "quiet": True}, {}),
    ("issue-initech", "Initech 1.5k/mo 80% by EOM", {"lead": "Initech", "value": 150_000, "value_period": "monthly", "confidence": 80, "date_won": d("2025-11-30"), "quiet": True}, {}),
    ("issue-nakatomi", "deal with Nakatomi Trading for 250k one time closing on the 15th note: intro via Hans", {"lead": "Nakatomi Trading", "value": 25_000_000, "value_period": "one_time", "date_won": d("2025-11-15"), "note": "intro via Hans", "quiet": True}, {}),
    ("issue-globex-shortcut", "Just closed Globex, 40k one-time, signed today!", {"lead": "Globex", "value": 4_000_000, "value_period": "one_time", "date_won": d("2025-11-12")}, {}),
    # --- money: signs, codes, suffixes, separators, words --------------------------------
    ("money-k-lower", "Acme 12k", {"lead": "Acme", "value": 1_200_000}, {}),
    ("money-k-upper", "Acme 12K", {"lead": "Acme", "value": 1_200_000}, {}),
    ("money-dollar-grouped", "Acme $12,500", {"lead": "Acme", "value": 1_250_000, "value_currency": "USD"}, {}),
    ("money-decimal-k", "Acme 12.5k", {"lead": "Acme", "value": 1_250_000}, {}),
    ("money-dollar-m", "Acme $1.2m", {"lead": "Acme", "value": 120_000_000, "value_currency": "USD"}, {}),
    ("money-MM", "Acme 1.2MM", {"lead": "Acme", "value": 120_000_000}, {}),
    ("money-mm-lower", "Acme 3mm", {"lead": "Acme", "value": 300_000_000}, {}),
    ("money-euro-sign", "Acme €40,000", {"lead": "Acme", "value": 4_000_000, "value_currency": "EUR"}, {}),
    ("money-code-after", "Acme 40000 EUR", {"lead": "Acme", "value": 4_000_000, "value_currency": "EUR"}, {}),
    ("money-pound-cents", "Acme £99.99", {"lead": "Acme", "value": 9_999, "value_currency": "GBP"}, {}),
    ("money-code-before", "Acme USD 12k", {"lead": "Acme", "value": 1_200_000, "value_currency": "USD"}, {}),
    ("money-code-lowercase-glued", "Acme usd12k", {"lead": "Acme", "value": 1_200_000, "value_currency": "USD"}, {}),
    ("money-sign-after", "Acme 12k$", {"lead": "Acme", "value": 1_200_000, "value_currency": "USD"}, {}),
    ("money-euro-after-space", "Acme 12.000 €", {"lead": "Acme", "value": 1_200_000, "value_currency": "EUR"}, {}),
    ("money-billion", "Acme 2b", {"lead": "Acme", "value": 200_000_000_000}, {}),
    ("money-bn", "Acme 1.5bn", {"lead": "Acme", "value": 150_000_000_000}, {}),
    ("money-thousand-word", "Acme 12 thousand", {"lead": "Acme", "value": 1_200_000}, {}),
    ("money-million-word", "Acme 1.5 million", {"lead": "Acme", "value": 150_000_000}, {}),
    ("money-dollars-word", "Acme 5k dollars", {"lead": "Acme", "value": 500_000, "value_currency": "USD"}, {}),
    ("money-euros-word", "Acme 30k euros", {"lead": "Acme", "value": 3_000_000, "value_currency": "EUR"}, {}),
    ("money-space-after-sign", "Acme $ 8,000", {"lead": "Acme", "value": 800_000, "value_currency": "USD"}, {}),
    ("money-grouped-millions", "Acme $1,250,000.50", {"lead": "Acme", "value": 125_000_050, "value_currency": "USD"}, {}),
    ("money-cad-prefix", "Acme C$15k", {"lead": "Acme", "value": 1_500_000, "value_currency": "CAD"}, {}),
    ("money-us-dollar-prefix", "Acme US$15k", {"lead": "Acme", "value": 1_500_000, "value_currency": "USD"}, {}),
    ("money-dollar-in-canada", "Acme $15k", {"lead": "Acme", "value": 1_500_000, "value_currency": "CAD"}, {"locale": "en-CA"}),
    ("money-dollar-in-australia", "Acme $15k", {"lead": "Acme", "value": 1_500_000, "value_currency": "AUD"}, {"locale": "en-AU"}),
    ("money-rupee-lakh", "Tata ₹12,00,000", {"lead": "Tata", "value": 120_000_000, "value_currency": "INR"}, {}),
    ("money-gbp-code", "Acme 7,500 GBP", {"lead": "Acme", "value": 750_000, "value_currency": "GBP"}, {}),
    ("money-chf-code", "Acme CHF 9k", {"lead": "Acme", "value": 900_000, "value_currency": "CHF"}, {}),
    ("money-first-of-several-strong", "Acme 12k or maybe 15k", {"lead": "Acme", "value": 1_200_000, "warns": ["several amounts"]}, {}),
    ("money-signed-beats-bare", "Acme 5000 seats at $20k", {"lead": "Acme 5000 seats", "value": 2_000_000, "value_currency": "USD"}, {}),
    ("money-suffix-beats-bare", "Acme 2500 12k", {"lead": "Acme 2500", "value": 1_200_000}, {}),
    ("money-bare-thousands", "Acme 5000 close friday", {"lead": "Acme", "value": 500_000, "date_won": d("2025-11-14"), "warns": ["'5000' read as the value"]}, {}),
    ("money-bare-grouped", "Acme 12,500", {"lead": "Acme", "value": 1_250_000, "warns": ["read as the value"]}, {}),
    ("money-bare-two-decimals", "Acme 99.50", {"lead": "Acme", "value": 9_950, "warns": ["read as the value"]}, {}),
    ("money-small-bare-is-not", "Acme 12 seats", {"lead": "Acme 12 seats"}, {}),
    ("money-bare-units-are-not", "Acme 5000 seats", {"lead": "Acme 5000 seats"}, {}),
    ("money-year-in-name-is-not", "Vision 2027 12k", {"lead": "Vision 2027", "value": 1_200_000}, {}),
    ("money-year-alone-is-not", "Vision 2027", {"lead": "Vision 2027", "quiet": True}, {}),
    ("money-percent-never", "Acme 60%", {"lead": "Acme", "confidence": 60, "quiet": True}, {}),
    ("money-de-decimal-comma", "Acme 1,5k", {"lead": "Acme", "value": 150_000}, {"locale": "de-DE"}),
    ("money-de-grouping", "Acme 12.500,50 €", {"lead": "Acme", "value": 1_250_050, "value_currency": "EUR"}, {"locale": "de-DE"}),
    ("money-fr-narrow-space", "Acme 12\u202f500\u00a0€", {"lead": "Acme", "value": 1_250_000, "value_currency": "EUR"}, {"locale": "fr-FR"}),
    ("money-mixed-case-suffix", "acme 7.5K", {"lead": "acme", "value": 750_000}, {}),
    ("money-grand", "Acme 20 grand", {"lead": "Acme", "value": 2_000_000}, {}),
    ("money-first-in-line", "$12k Acme", {"lead": "Acme", "value": 1_200_000, "value_currency": "USD"}, {}),
    ("money-range-takes-first", "Acme $10k-15k", {"lead": "Acme", "value": 1_000_000, "value_currency": "USD"}, {}),
    # --- period --------------------------------------------------------------------------
    ("period-slash-mo", "Acme 2k/mo", {"lead": "Acme", "value": 200_000, "value_period": "monthly"}, {}),
    ("period-slash-month-spaced", "Acme 2k / month", {"lead": "Acme", "value": 200_000, "value_period": "monthly"}, {}),
    ("period-per-month", "Acme 2k per month", {"lead": "Acme", "value": 200_000, "value_period": "monthly"}, {}),
    ("period-a-month", "Acme 2k a month", {"lead": "Acme", "value": 200_000, "value_period": "monthly"}, {}),
    ("period-monthly", "Acme 2k monthly", {"lead": "Acme", "value": 200_000, "value_period": "monthly"}, {}),
    ("period-mrr", "Acme 2k MRR", {"lead": "Acme", "value": 200_000, "value_period": "monthly"}, {}),
    ("period-mrr-lower", "Acme mrr 2k", {"lead": "Acme", "value": 200_000, "value_period": "monthly"}, {}),
    ("period-slash-yr", "Acme 24k/yr", {"lead": "Acme", "value": 2_400_000, "value_period": "annual"}, {}),
    ("period-per-year", "Acme 24k per year", {"lead": "Acme", "value": 2_400_000, "value_period": "annual"}, {}),
    ("period-annually", "Acme 24k annually", {"lead": "Acme", "value": 2_400_000, "value_period": "annual"}, {}),
    ("period-annual", "Acme annual 24k", {"lead": "Acme", "value": 2_400_000, "value_period": "annual"}, {}),
    ("period-yearly", "Acme 24k yearly", {"lead": "Acme", "value": 2_400_000, "value_period": "annual"}, {}),
    ("period-arr", "Acme 24k ARR", {"lead": "Acme", "value": 2_400_000, "value_period": "annual"}, {}),
    ("period-one-time-hyphen", "Acme 5k one-time", {"lead": "Acme", "value": 500_000, "value_period": "one_time"}, {}),
    ("period-one-time-space", "Acme 5k one time", {"lead": "Acme", "value": 500_000, "value_period": "one_time"}, {}),
    ("period-one-off", "Acme 5k one-off", {"lead": "Acme", "value": 500_000, "value_period": "one_time"}, {}),
    ("period-without-value", "Acme monthly", {"lead": "Acme", "value_period": "monthly"}, {}),
    ("period-makes-bare-figure-money", "Acme 500/mo", {"lead": "Acme", "value": 50_000, "value_period": "monthly"}, {}),
    ("period-in-a-month-is-a-date", "Acme 5k in a month", {"lead": "Acme", "value": 500_000, "date_won": d("2025-12-12")}, {}),
    # --- confidence -----------------------------------------------------------------------
    ("confidence-percent", "Acme 60%", {"lead": "Acme", "confidence": 60}, {}),
    ("confidence-percent-spaced", "Acme 60 %", {"lead": "Acme", "confidence": 60}, {}),
    ("confidence-percent-word", "Acme 60 percent", {"lead": "Acme", "confidence": 60}, {}),
    ("confidence-keyword", "Acme confidence 75", {"lead": "Acme", "confidence": 75}, {}),
    ("confidence-keyword-colon", "Acme confidence: 75", {"lead": "Acme", "confidence": 75}, {}),
    ("confidence-trailing-word", "Acme 12k 90% confidence", {"lead": "Acme", "value": 1_200_000, "confidence": 90}, {}),
    ("confidence-chance", "Acme 12k 40% chance", {"lead": "Acme", "value": 1_200_000, "confidence": 40}, {}),
    ("confidence-zero", "Acme 0%", {"lead": "Acme", "confidence": 0}, {}),
    ("confidence-hundred", "Acme 100%", {"lead": "Acme", "confidence": 100}, {}),
    ("confidence-over-hundred", "Acme 150%", {"lead": "Acme", "warns": ["not a confidence"]}, {}),
    ("confidence-decimal-rounds", "Acme 62.5%", {"lead": "Acme", "confidence": 63}, {}),
    ("confidence-prob", "Acme prob 30", {"lead": "Acme", "confidence": 30}, {}),
    ("confidence-at", "Acme 8k at 70%", {"lead": "Acme", "value": 800_000, "confidence": 70}, {}),
    ("confidence-several", "Acme 60% maybe 80%", {"lead": "Acme", "confidence": 60, "warns": ["several confidences"]}, {}),
    # --- dates: words and weekdays (now = Wed 2025-11-12) ----------------------------------
    ("date-today", "Acme close today", {"lead": "Acme", "date_won": d("2025-11-12")}, {}),
    ("date-tomorrow", "Acme close tomorrow", {"lead": "Acme", "date_won": d("2025-11-13")}, {}),
    ("date-tmrw", "Acme by tmrw", {"lead": "Acme", "date_won": d("2025-11-13")}, {}),
    ("date-day-after-tomorrow", "Acme day after tomorrow", {"lead": "Acme", "date_won": d("2025-11-14")}, {}),
    ("date-weekday-alone", "Acme friday", {"lead": "Acme", "date_won": d("2025-11-14")}, {}),
    ("date-weekday-capitalised", "Acme Friday", {"lead": "Acme", "date_won": d("2025-11-14")}, {}),
    ("date-next-friday", "Acme close next friday", {"lead": "Acme", "date_won": d("2025-11-14")}, {}),
    ("date-this-friday", "Acme this friday", {"lead": "Acme", "date_won": d("2025-11-14")}, {}),
    ("date-same-weekday-is-next-week", "Acme wednesday", {"lead": "Acme", "date_won": d("2025-11-19")}, {}),
    ("date-this-same-weekday-is-today", "Acme this wednesday", {"lead": "Acme", "date_won": d("2025-11-12")}, {}),
    ("date-monday", "Acme closes monday", {"lead": "Acme", "date_won": d("2025-11-17")}, {}),
    ("date-abbrev-after-connector", "Acme by tue", {"lead": "Acme", "date_won": d("2025-11-18")}, {}),
    ("date-abbrev-alone-is-a-name", "Sun Microsystems 12k", {"lead": "Sun Microsystems", "value": 1_200_000}, {}),
    ("date-last-friday-warns", "Acme signed last friday", {"lead": "Acme", "date_won": d("2025-11-07"), "warns": ["in the past"]}, {}),
    ("date-yesterday-warns", "Acme closed yesterday", {"lead": "Acme", "date_won": d("2025-11-11"), "warns": ["in the past"]}, {}),
    ("date-next-week", "Acme next week", {"lead": "Acme", "date_won": d("2025-11-19")}, {}),
    ("date-next-month", "Acme next month", {"lead": "Acme", "date_won": d("2025-12-12")}, {}),
    ("date-in-2-weeks", "Acme close in 2 weeks", {"lead": "Acme", "date_won": d("2025-11-26")}, {}),
    ("date-in-two-weeks", "Acme in two weeks", {"lead": "Acme", "date_won": d("2025-11-26")}, {}),
    ("date-in-3-days", "Acme in 3 days", {"lead": "Acme", "date_won": d("2025-11-15")}, {}),
    ("date-in-3-months", "Acme in 3 months", {"lead": "Acme", "date_won": d("2026-02-12")}, {}),
    ("date-in-a-week", "Acme in a week", {"lead": "Acme", "date_won": d("2025-11-19")}, {}),
    ("date-days-from-now", "Acme 10 days from now", {"lead": "Acme", "date_won": d("2025-11-22")}, {}),
    ("date-business-days", "Acme in 5 business days", {"lead": "Acme", "date_won": d("2025-11-19")}, {}),
    ("date-within-a-month", "Acme within a month", {"lead": "Acme", "date_won": d("2025-12-12")}, {}),
    # --- dates: sales phrases ---------------------------------------------------------------
    ("sales-eom", "Acme EOM", {"lead": "Acme", "date_won": d("2025-11-30")}, {}),
    ("sales-eom-lower", "Acme by eom", {"lead": "Acme", "date_won": d("2025-11-30")}, {}),
    ("sales-end-of-month", "Acme end of month", {"lead": "Acme", "date_won": d("2025-11-30")}, {}),
    ("sales-end-of-the-month", "Acme by the end of the month", {"lead": "Acme", "date_won": d("2025-11-30")}, {}),
    ("sales-end-of-next-month", "Acme end of next month", {"lead": "Acme", "date_won": d("2025-12-31")}, {}),
    ("sales-eoq", "Acme EOQ", {"lead": "Acme", "date_won": d("2025-12-31")}, {}),
    ("sales-end-of-quarter", "Acme end of quarter", {"lead": "Acme", "date_won": d("2025-12-31")}, {}),
    ("sales-this-quarter", "Acme this quarter", {"lead": "Acme", "date_won": d("2025-12-31")}, {}),
    ("sales-next-quarter", "Acme next quarter", {"lead": "Acme", "date_won": d("2026-03-31")}, {}),
    ("sales-q1-asked-in-november", "Acme Q1", {"lead": "Acme", "date_won": d("2026-03-31")}, {}),
    ("sales-q2", "Acme close q2", {"lead": "Acme", "date_won": d("2026-06-30")}, {}),
    ("sales-q3-passed-rolls", "Acme Q3", {"lead": "Acme", "date_won": d("2026-09-30")}, {}),
    ("sales-q4-current", "Acme by Q4", {"lead": "Acme", "date_won": d("2025-12-31")}, {}),
    ("sales-q-with-year", "Acme Q2 2027", {"lead": "Acme", "date_won": d("2027-06-30")}, {}),
    ("sales-q-with-short-year", "Acme Q1'27", {"lead": "Acme", "date_won": d("2027-03-31")}, {}),
    ("sales-eoy", "Acme EOY", {"lead": "Acme", "date_won": d("2025-12-31")}, {}),
    ("sales-end-of-year", "Acme end of year", {"lead": "Acme", "date_won": d("2025-12-31")}, {}),
    ("sales-end-of-next-year", "Acme end of next year", {"lead": "Acme", "date_won": d("2026-12-31")}, {}),
    ("sales-eow", "Acme EOW", {"lead": "Acme", "date_won": d("2025-11-14")}, {}),
    # --- dates: month names, ordinals, numbers, ISO ------------------------------------------
    ("named-month-day", "Acme close Dec 15", {"lead": "Acme", "date_won": d("2025-12-15")}, {}),
    ("named-month-dot-day", "Acme Dec. 15", {"lead": "Acme", "date_won": d("2025-12-15")}, {}),
    ("named-full-month-ordinal", "Acme December 15th", {"lead": "Acme", "date_won": d("2025-12-15")}, {}),
    ("named-day-month", "Acme 15 December", {"lead": "Acme", "date_won": d("2025-12-15")}, {}),
    ("named-the-day-of-month", "Acme on the 3rd of March", {"lead": "Acme", "date_won": d("2026-03-03")}, {}),
    ("named-rolls-to-next-year", "Acme Jan 5", {"lead": "Acme", "date_won": d("2026-01-05")}, {}),
    ("named-today-stays", "Acme Nov 12", {"lead": "Acme", "date_won": d("2025-11-12")}, {}),
    ("named-recent-past-rolls-and-warns", "Acme Nov 10", {"lead": "Acme", "date_won": d("2026-11-10"), "warns": ["next year"]}, {}),
    ("named-with-year", "Acme Dec 15, 2026", {"lead": "Acme", "date_won": d("2026-12-15")}, {}),
    ("named-with-past-year-warns", "Acme March 3 2024", {"lead": "Acme", "date_won": d("2024-03-03"), "warns": ["in the past"]}, {}),
    ("named-month-alone-after-connector", "Acme by March", {"lead": "Acme", "date_won": d("2026-03-31")}, {}),
    ("named-month-current", "Acme in November", {"lead": "Acme", "date_won": d("2025-11-30")}, {}),
    ("named-end-of-month-name", "Acme end of January", {"lead": "Acme", "date_won": d("2026-01-31")}, {}),
    ("named-month-year", "Acme December 2026", {"lead": "Acme", "date_won": d("2026-12-31")}, {}),
    ("named-may-alone-is-not-a-date", "Acme may renew 12k", {"lead": "Acme may renew", "value": 1_200_000}, {}),
    ("ordinal-15th", "Acme closing on the 15th", {"lead": "Acme", "date_won": d("2025-11-15")}, {}),
    ("ordinal-today", "Acme the 12th", {"lead": "Acme", "date_won": d("2025-11-12")}, {}),
    ("ordinal-passed-goes-next-month", "Acme by the 3rd", {"lead": "Acme", "date_won": d("2025-12-03")}, {}),
    ("ordinal-31st-skips-short-month", "Acme on the 31st", {"lead": "Acme", "date_won": d("2025-12-31")}, {}),
    ("numeric-us", "Acme close 12/15", {"lead": "Acme", "date_won": d("2025-12-15"), "quiet": True}, {}),
    ("numeric-us-ambiguous-warns", "Acme close 3/4", {"lead": "Acme", "date_won": d("2026-03-04"), "warns": ["3/4 read as March 4 (en-US)"]}, {}),
    ("numeric-gb-ambiguous-warns", "Acme close 3/4", {"lead": "Acme", "date_won": d("2026-04-03"), "warns": ["3/4 read as 3 April (en-GB)"]}, {"locale": "en-GB"}),
    ("numeric-gb-day-first", "Acme close 15/12", {"lead": "Acme", "date_won": d("2025-12-15")}, {"locale": "en-GB"}),
    ("numeric-us-impossible-month-swaps", "Acme close 15/12", {"lead": "Acme", "date_won": d("2025-12-15"), "warns": ["day first"]}, {}),
    ("numeric-with-year", "Acme 12/15/2026", {"lead": "Acme", "date_won": d("2026-12-15")}, {}),
    ("numeric-short-year", "Acme 1/20/26", {"lead": "Acme", "date_won": d("2026-01-20")}, {}),
    ("numeric-dotted-de", "Acme 15.12.2026", {"lead": "Acme", "date_won": d("2026-12-15")}, {"locale": "de-DE"}),
    ("numeric-iso", "Acme 2026-01-20", {"lead": "Acme", "date_won": d("2026-01-20")}, {}),
    ("numeric-past-warns", "Acme 1/2/2024", {"lead": "Acme", "date_won": d("2024-01-02"), "warns": ["in the past"]}, {}),
    ("numeric-24-7-is-a-name", "24/7 Fitness 3k", {"lead": "24/7 Fitness", "value": 300_000}, {}),
    ("numeric-percent-is-not-a-year", "Acme 60% close friday", {"lead": "Acme", "confidence": 60, "date_won": d("2025-11-14")}, {}),
    ("numeric-several-dates-warns", "Acme Q1 expansion close Dec 15", {"lead": "Acme Q1 expansion", "date_won": d("2025-12-15"), "warns": ["several dates"]}, {}),
    # --- time zones, locales and year ends ---------------------------------------------------
    ("tz-la-evening-tomorrow", "Acme tomorrow", {"lead": "Acme", "date_won": d("2025-11-12")}, {"now": datetime(2025, 11, 12, 6, 30, tzinfo=UTC), "tz": "America/Los_Angeles"}),
    ("tz-tokyo-same-instant-tomorrow", "Acme tomorrow", {"lead": "Acme", "date_won": d("2025-11-13")}, {"now": datetime(2025, 11, 12, 6, 30, tzinfo=UTC), "tz": "Asia/Tokyo"}),
    ("tz-la-evening-today", "Acme today", {"lead": "Acme", "date_won": d("2025-11-11")}, {"now": datetime(2025, 11, 12, 6, 30, tzinfo=UTC), "tz": "America/Los_Angeles"}),
    ("tz-naive-now-is-utc", "Acme today", {"lead": "Acme", "date_won": d("2025-11-11")}, {"now": datetime(2025, 11, 12, 6, 30), "tz": "America/Los_Angeles"}),
    ("tz-friday-differs", "Acme friday", {"lead": "Acme", "date_won": d("2025-11-21")}, {"now": datetime(2025, 11, 14, 1, 0, tzinfo=UTC), "tz": "Asia/Tokyo"}),
    ("tz-friday-differs-la", "Acme friday", {"lead": "Acme", "date_won": d("2025-11-14")}, {"now": datetime(2025, 11, 14, 1, 0, tzinfo=UTC), "tz": "America/Los_Angeles"}),
    ("tz-eoq-la-still-september", "Acme EOQ", {"lead": "Acme", "date_won": d("2025-09-30")}, {"now": datetime(2025, 10, 1, 6, 0, tzinfo=UTC), "tz": "America/Los_Angeles"}),
    ("tz-eoq-utc-already-october", "Acme EOQ", {"lead": "Acme", "date_won": d("2025-12-31")}, {"now": datetime(2025, 10, 1, 6, 0, tzinfo=UTC)}),
    ("year-eoy-la-new-years-eve", "Acme EOY", {"lead": "Acme", "date_won": d("2025-12-31")}, {"now": datetime(2026, 1, 1, 7, 30, tzinfo=UTC), "tz": "America/Los_Angeles"}),
    ("year-eoy-utc-new-year", "Acme EOY", {"lead": "Acme", "date_won": d("2026-12-31")}, {"now": datetime(2026, 1, 1, 7, 30, tzinfo=UTC)}),
    ("year-tomorrow-crosses-year", "Acme tomorrow", {"lead": "Acme", "date_won": d("2026-01-01")}, {"now": datetime(2026, 1, 1, 7, 30, tzinfo=UTC), "tz": "America/Los_Angeles"}),
    ("year-q4-in-tokyo-new-year", "Acme Q4", {"lead": "Acme", "date_won": d("2026-12-31")}, {"now": datetime(2025, 12, 31, 16, 0, tzinfo=UTC), "tz": "Asia/Tokyo"}),
    ("year-q1-in-december", "Acme Q1", {"lead": "Acme", "date_won": d("2026-03-31")}, {"now": datetime(2025, 12, 20, 12, 0, tzinfo=UTC)}),
    ("year-next-quarter-in-december", "Acme next quarter", {"lead": "Acme", "date_won": d("2026-03-31")}, {"now": datetime(2025, 12, 20, 12, 0, tzinfo=UTC)}),
    ("year-end-of-next-month-in-december", "Acme end of next month", {"lead": "Acme", "date_won": d("2026-01-31")}, {"now": datetime(2025, 12, 20, 12, 0, tzinfo=UTC)}),
    ("year-jan-asked-in-december", "Acme Jan 10", {"lead": "Acme", "date_won": d("2026-01-10")}, {"now": datetime(2025, 12, 20, 12, 0, tzinfo=UTC)}),
    ("year-leap-day", "Acme Feb 29", {"lead": "Acme", "date_won": d("2028-02-29")}, {}),
    ("year-eom-february-leap", "Acme EOM", {"lead": "Acme", "date_won": d("2028-02-29")}, {"now": datetime(2028, 2, 10, tzinfo=UTC)}),
    ("tz-unknown-zone-warns", "Acme today", {"lead": "Acme", "date_won": d("2025-11-12"), "warns": ["unknown time zone"]}, {"tz": "Mars/Olympus"}),
    ("locale-unknown-warns", "Acme 3/4", {"lead": "Acme", "date_won": d("2026-03-04"), "warns": ["unknown locale"]}, {"locale": "zz-ZZ"}),
    ("locale-en-ca-year-first", "Acme 2026/01/20", {"lead": "Acme", "date_won": d("2026-01-20")}, {"locale": "en-CA"}),
    # --- owner, status, note --------------------------------------------------------------------
    ("owner-mention", "Acme 12k <@U123ABC>", {"lead": "Acme", "value": 1_200_000, "owner": "U123ABC"}, {}),
    ("owner-mention-with-name", "Acme 12k <@U123ABC|alice>", {"lead": "Acme", "value": 1_200_000, "owner": "U123ABC"}, {}),
    ("owner-keyword", "Acme owner <@U0AA|bob> 12k", {"lead": "Acme", "value": 1_200_000, "owner": "U0AA"}, {}),
    ("owner-first-of-several", "Acme <@U1> <@U2>", {"lead": "Acme", "owner": "U1", "warns": ["several people"]}, {}),
    ("owner-plain-at-name-warns", "Acme 12k @alice", {"lead": "Acme", "value": 1_200_000, "warns": ["@alice"]}, {}),
    ("owner-enterprise-id", "Acme <@W0XYZ>", {"lead": "Acme", "owner": "W0XYZ"}, {}),
    ("status-key", "Acme 12k status: Proposal Sent", {"lead": "Acme", "value": 1_200_000, "status": "Proposal Sent"}, {}),
    ("status-key-as-typed", "Acme status: proposal sent 12k", {"lead": "Acme", "value": 1_200_000, "status": "proposal sent"}, {}),
    ("status-key-unknown-label", "Acme status: Verbal Yes", {"lead": "Acme", "status": "Verbal Yes"}, {}),
    ("status-key-stops-at-field", "Acme status: Negotiation close friday", {"lead": "Acme", "status": "Negotiation", "date_won": d("2025-11-14")}, {}),
    ("status-label-typed", "Acme 12k won", {"lead": "Acme", "value": 1_200_000, "status": "Won"}, {}),
    ("status-label-multiword", "Acme proposal sent 12k", {"lead": "Acme", "value": 1_200_000, "status": "Proposal Sent"}, {}),
    ("status-label-not-in-words", "Wonderland 12k", {"lead": "Wonderland", "value": 1_200_000}, {}),
    ("status-label-needs-labels", "Acme 12k won", {"lead": "Acme", "value": 1_200_000}, {"status_labels": ()}),
    ("status-stage-alias", "Acme stage: Negotiation", {"lead": "Acme", "status": "Negotiation"}, {}),
    ("note-basic", "Acme 12k note: call back Monday", {"lead": "Acme", "value": 1_200_000, "note": "call back Monday"}, {}),
    ("note-plural", "Acme notes: big logo, 12k maybe", {"lead": "Acme", "note": "big logo, 12k maybe"}, {}),
    ("note-keeps-everything", "Acme 5k note: <@U9> said 60% by Q1", {"lead": "Acme", "value": 500_000, "note": "<@U9> said 60% by Q1"}, {}),
    ("note-case", "Acme NOTE: VIP", {"lead": "Acme", "note": "VIP"}, {}),
    ("note-empty", "Acme note:", {"lead": "Acme"}, {}),
    # --- lead ----------------------------------------------------------------------------------
    ("lead-key", "lead: Acme Corp 12k", {"lead": "Acme Corp", "value": 1_200_000}, {}),
    ("lead-key-with-inc", "lead: Acme, Inc. 12k", {"lead": "Acme, Inc.", "value": 1_200_000}, {}),
    ("lead-key-looks-like-money", "lead: 3M 12k", {"lead": "3M", "value": 1_200_000}, {}),
    ("lead-key-quoted", 'lead: "Smith, Jones & Co" 12k', {"lead": "Smith, Jones & Co", "value": 1_200_000}, {}),
    ("lead-company-alias", "company: Initech 4k", {"lead": "Initech", "value": 400_000}, {}),
    ("lead-quoted-straight", '"Acme, Inc." 12k', {"lead": "Acme, Inc.", "value": 1_200_000}, {}),
    ("lead-quoted-curly", "“Acme, Inc.” 12k", {"lead": "Acme, Inc.", "value": 1_200_000}, {}),
    ("lead-quoted-anywhere", '12k for "Close Brothers" EOM', {"lead": "Close Brothers", "value": 1_200_000, "date_won": d("2025-11-30")}, {}),
    ("lead-inc-after-comma", "Acme, Inc. 12k", {"lead": "Acme, Inc.", "value": 1_200_000}, {}),
    ("lead-connectors-trimmed", "opp for Acme Corp with 12k", {"lead": "Acme Corp", "value": 1_200_000}, {}),
    ("lead-article-kept", "The Home Depot 50k", {"lead": "The Home Depot", "value": 5_000_000}, {}),
    ("lead-article-with-connector", "a deal with Umbrella 9k", {"lead": "Umbrella", "value": 900_000}, {}),
    ("lead-after-fields", "12k 60% Acme Corp", {"lead": "Acme Corp", "value": 1_200_000, "confidence": 60}, {}),
    ("lead-ampersand-unescaped", "AT&amp;T 40k", {"lead": "AT&T", "value": 4_000_000}, {}),
    ("lead-chatter-skipped", "Hey team! great call with Initech, $5k/mo", {"lead": "Initech", "value": 500_000, "value_currency": "USD", "value_period": "monthly"}, {}),
    ("lead-capitalised-connector-name", "Toys for Tots 2k", {"lead": "Toys for Tots", "value": 200_000}, {}),
    ("lead-umlaut", "Müller GmbH €40.000 EOQ", {"lead": "Müller GmbH", "value": 4_000_000, "value_currency": "EUR", "date_won": d("2025-12-31")}, {}),
    ("lead-accented", "Société Générale 80k by Q1", {"lead": "Société Générale", "value": 8_000_000, "date_won": d("2026-03-31")}, {}),
    ("lead-japanese", "株式会社トヨタ ¥5,000,000 Q2", {"lead": "株式会社トヨタ", "value": 500_000_000, "value_currency": "JPY", "date_won": d("2026-06-30")}, {}),
    ("lead-cyrillic", "Газпром 1.2m EUR", {"lead": "Газпром", "value": 120_000_000, "value_currency": "EUR"}, {}),
    ("lead-emoji-kept", "Acme 🚀 12k", {"lead": "Acme 🚀", "value": 1_200_000}, {}),
    ("lead-with-number", "Studio 54 12k", {"lead": "Studio 54", "value": 1_200_000}, {}),
    ("lead-dash-separated", "Acme - 12k - EOM", {"lead": "Acme", "value": 1_200_000, "date_won": d("2025-11-30")}, {}),
    ("lead-multiline", "Initech\n12k\nclose friday", {"lead": "Initech", "value": 1_200_000, "date_won": d("2025-11-14")}, {}),
    ("lead-none", "12k 60% friday", {"value": 1_200_000, "confidence": 60, "date_won": d("2025-11-14")}, {}),
    # --- whole lines, varied order, casing and punctuation ------------------------------------
    ("line-empty", "", {"quiet": True}, {}),
    ("line-spaces", "   ", {"quiet": True}, {}),
    ("line-upper", "ACME CORP $12K ARR 60% CLOSE NEXT FRIDAY", {"lead": "ACME CORP", "value": 1_200_000, "value_currency": "USD", "value_period": "annual", "confidence": 60, "date_won": d("2025-11-14")}, {}),
    ("line-commas", "Acme Corp, $12k, ARR, 60%, close next friday", {"lead": "Acme Corp", "value": 1_200_000, "value_currency": "USD", "value_period": "annual", "confidence": 60, "date_won": d("2025-11-14")}, {}),
    ("line-date-first", "next friday: Acme 60% $12k", {"lead": "Acme", "value": 1_200_000, "value_currency": "USD", "confidence": 60, "date_won": d("2025-11-14")}, {}),
    ("line-everything", 'lead: "Initech" 1.5k/mo 80% expected 12/1 <@U42> status: Negotiation note: ping Peter', {"lead": "Initech", "value": 150_000, "value_period": "monthly", "confidence": 80, "date_won": d("2025-12-01"), "owner": "U42", "status": "Negotiation", "note": "ping Peter"}, {}),
    ("line-expected-by", "Umbrella Corp 30k expected by Dec 1st", {"lead": "Umbrella Corp", "value": 3_000_000, "date_won": d("2025-12-01")}, {}),
    ("line-due", "Hooli $75,000 due 1/15", {"lead": "Hooli", "value": 7_500_000, "value_currency": "USD", "date_won": d("2026-01-15")}, {}),
    ("line-brackets", "[Acme] 12k (60%) {EOM}", {"lead": "Acme", "value": 1_200_000, "confidence": 60, "date_won": d("2025-11-30")}, {}),
    ("line-slack-link-ignored", "Acme 12k <https://acme.com|acme.com>", {"lead": "Acme", "value": 1_200_000}, {}),
    ("line-channel-ignored", "Acme 12k <#C123|sales>", {"lead": "Acme", "value": 1_200_000}, {}),
    ("line-won-deal-message", "We just won Vandelay Industries!!! $18k ARR, signed yesterday", {"lead": "Vandelay Industries", "value": 1_800_000, "value_currency": "USD", "value_period": "annual", "date_won": d("2025-11-11"), "warns": ["in the past"]}, {"status_labels": ()}),
    ("line-won-deal-status", "We just won Vandelay Industries $18k", {"lead": "Vandelay Industries", "value": 1_800_000, "value_currency": "USD", "status": "Won"}, {}),
    ("line-gb", "Wayne Enterprises £25k pa 70% by 1/12", {"lead": "Wayne Enterprises", "value": 2_500_000, "value_currency": "GBP", "value_period": "annual", "confidence": 70, "date_won": d("2025-12-01"), "warns": ["1/12 read as 1 December (en-GB)"]}, {"locale": "en-GB"}),
    ("date-fortnight", "Acme 12k closing in a fortnight", {"lead": "Acme", "value": 1_200_000, "date_won": d("2025-11-26")}, {}),
    ("line-fallback-dateparser", "Acme 12k closing in 10d", {"lead": "Acme", "value": 1_200_000, "date_won": d("2025-11-22")}, {}),
    ("date-abbreviated-units", "Acme in 2 wks", {"lead": "Acme", "date_won": d("2025-11-26")}, {}),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "expected", "options"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_line_parses_to_exactly_these_fields(
    text: str, expected: dict[str, Any], options: dict[str, Any]
) -> None:
    kwargs: dict[str, Any] = {"now": NOW, "status_labels": LABELS, **options}
    draft = parse(text, **kwargs)
    got = {field: getattr(draft, field) for field in FIELDS}
    want = {field: expected.get(field) for field in FIELDS}
    assert got == want, draft.warnings
    for fragment in expected.get("warns", []):
        assert any(fragment in w for w in draft.warnings), (fragment, draft.warnings)
    if expected.get("quiet"):
        assert draft.warnings == []
    assert not any("could not read" in w for w in draft.warnings)


def test_table_has_at_least_150_cases() -> None:
    assert len(CASES) >= 150
    assert len({c[0] for c in CASES}) == len(CASES)
