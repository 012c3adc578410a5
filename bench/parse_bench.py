"""Times `parse` on 10,000 realistic lines in every language after warm-up: median/p95/p99 per line, and the cold warm-up.

Run: `python -m bench.parse_bench [--lines N] [--seed S]`. One core, one process; the
cold figures come from fresh subprocesses so nothing is preloaded.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

LEADS = [
    "Acme Corp",
    "Initech",
    "Globex",
    "Nakatomi Trading",
    "Umbrella",
    "Hooli",
    "Vandelay Industries",
    "Wayne Enterprises",
    "Stark Industries",
    "Müller GmbH",
    "Société Générale",
    "株式会社トヨタ",
    "Газпром",
    '"Acme, Inc."',
    "“Smith & Jones”",
    "Studio 54",
    "Vision 2027",
    "The Home Depot",
    "AT&amp;T",
    "Tyrell Corp",
    "Cyberdyne",
    "Soylent",
    "Oscorp",
    "Wonka Industries",
    "Pied Piper",
]
MONEY = [
    "$12k",
    "12K",
    "$12,500",
    "12.5k",
    "$1.2m",
    "1.2MM",
    "€40,000",
    "40000 EUR",
    "£99.99",
    "1.5k/mo",
    "250k",
    "$8,000",
    "30k euros",
    "USD 12k",
    "7,500 GBP",
    "5000",
    "20 grand",
    "$75,000",
    "3k",
    "C$15k",
]
PERIODS = [
    "",
    "",
    "ARR",
    "MRR",
    "/mo",
    "per year",
    "annually",
    "one-time",
    "one time",
    "monthly",
    "a month",
]
CONFIDENCE = ["", "", "60%", "80%", "confidence 70", "40 percent", "90% confidence", "75 %"]
DATES = [
    "",
    "close next friday",
    "by EOM",
    "closing on the 15th",
    "close Dec 15",
    "by 12/15",
    "close 3/4",
    "EOQ",
    "next quarter",
    "Q1",
    "in 2 weeks",
    "tomorrow",
    "expected by end of next month",
    "EOY",
    "signed today",
    "by March",
    "2026-01-20",
    "close friday",
    "on the 3rd of March",
    "in a fortnight",
    "closing in 10d",  # not one of our patterns: goes to dateparser (the long tail)
]
EXTRAS = [
    "",
    "",
    "",
    "<@U024BE7LH>",
    "<@U024BE7LH|alice>",
    "status: Proposal Sent",
    "won",
    "note: intro via Hans",
    "notes: champion is the CFO, legal review pending",
    "deal with",
    "opp for",
]
ZONES = ["UTC", "America/Los_Angeles", "America/New_York", "Europe/London", "Asia/Tokyo"]
LABELS = ("Active", "Proposal Sent", "Negotiation", "Won", "Lost")


class Words(NamedTuple):
    """One language's fragments, as its reps type them."""

    money: list[str]
    periods: list[str]
    confidence: list[str]
    dates: list[str]
    extras: list[str]


ENGLISH = Words(MONEY, PERIODS, CONFIDENCE, DATES, EXTRAS)
# The last date of each list is not one of our patterns: it goes to dateparser (the long tail).
LANGUAGES: dict[str, Words] = {
    "de-DE": Words(
        ["12.500 €", "1,2 Mio. €", "120 TEUR", "8.000 EUR", "12,5k", "15.000,- €", "25 Tsd. €"],
        ["", "", "jährlich", "monatlich", "einmalig", "pro Monat", "p.a.", "mtl."],
        ["", "", "60 %", "70 Prozent", "Wahrscheinlichkeit 40 %", "zu 90 % sicher"],
        [
            "",
            "Abschluss nächsten Freitag",
            "bis Ende des Monats",
            "Abschluss Ende Q1",
            "Abschluss 15.12.",
            "Abschluss am 15. Dezember",
            "in 2 Wochen",
            "bis Monatsende",
            "im 1. Quartal",
            "Abschluss morgen",
            "bis Jahresende",
            "Abschluss Freitag nächste Woche",
            "Abschluss in 10 Tagen",
        ],
        ["", "", "Notiz: Entscheider ist der CFO", "Deal mit", "Phase: Angebot", "<@U024BE7LH>"],
    ),
    "fr-FR": Words(
        [
            "8 k€",
            "12 500 €",
            "1,2 M€",
            "25 000 € HT",
            "45 000 euros",
            "4 500,50 €",
            "2 millions d'euros",
        ],
        ["", "", "par mois", "annuel", "ponctuel", "par an", "mensuel", "/mois"],
        ["", "", "40 %", "60\u202f%", "proba 70 %", "50 pour cent", "90 % de chances"],
        [
            "",
            "clôture fin du mois",
            "signature vendredi prochain",
            "clôture T1 2026",
            "clôture le 15 décembre",
            "d'ici la fin du trimestre",
            "clôture dans 2 semaines",
            "clôture demain",
            "clôture mi-janvier",
            "clôture 1er trimestre",
            "clôture le 3",
            "clôture d'ici 10 jours",
        ],
        ["", "", "remarque : rappeler le DG", "Contrat avec", "statut : Négociation"],
    ),
    "es-ES": Words(
        ["15k", "12.500 €", "1,2 millones de euros", "25 mil euros", "8.000 €", "2 M€"],
        ["", "", "anual", "al mes", "pago único", "mensual", "al año"],
        ["", "", "70%", "60 %", "probabilidad del 40 %", "50 por ciento"],
        [
            "",
            "cierre el próximo viernes",
            "cierre a finales de mes",
            "cierre en el primer trimestre",
            "cierre el 15 de diciembre",
            "cierre la semana que viene",
            "cierre mañana",
            "para el 31/12",
            "cierre T2",
            "cierre a mediados de enero",
            "cierre el 20",
            "cierre dentro de 10 días",
        ],
        ["", "", "nota: llamar al director", "Oportunidad con", "estado: Negociación"],
    ),
    "pt-BR": Words(
        ["R$ 15 mil", "R$ 120.000,00", "R$ 1,5 mi", "R$ 8.500", "R$ 25k", "R$ 2 milhões"],
        ["", "", "por mês", "anual", "pagamento único", "mensal", "ao ano"],
        ["", "", "70%", "probabilidade de 40%", "60 por cento"],
        [
            "",
            "fechamento sexta que vem",
            "fechamento fim do mês",
            "fecha no primeiro trimestre",
            "fechamento dia 15",
            "fechamento na próxima sexta",
            "fechamento amanhã",
            "fechamento 1T 2026",
            "até o fim do ano",
            "fechamento em dezembro",
            "fechamento semana que vem",
            "fechamento em 10 dias",
        ],
        ["", "", "obs: ligar para o diretor", "Negócio com", "etapa: Proposta"],
    ),
    "it-IT": Words(
        ["12.500 €", "15mila euro", "1,2 mln €", "25k", "8.000 €", "2 milioni di euro"],
        ["", "", "annuale", "al mese", "una tantum", "mensile", "all'anno"],
        ["", "", "60%", "probabilità del 40%", "70 per cento"],
        [
            "",
            "chiusura venerdì prossimo",
            "chiusura entro fine mese",
            "chiusura primo trimestre",
            "chiusura il 15 dicembre",
            "chiusura tra 2 settimane",
            "chiusura domani",
            "chiusura a metà gennaio",
            "chiusura Q2",
            "chiusura entro il 20",
            "chiusura la prossima settimana",
            "chiusura tra 10 giorni",
        ],
        ["", "", "nota: richiamare il direttore", "Trattativa con", "stato: Proposta"],
    ),
    "nl-NL": Words(
        ["€ 12.500", "€ 1,2 mln", "8.000 euro", "25k", "€ 45.000,-", "€ 12 duizend"],
        ["", "", "per jaar", "per maand", "eenmalig", "maandelijks", "p/j"],
        ["", "", "60%", "kans 40%", "70 procent"],
        [
            "",
            "sluiting volgende vrijdag",
            "sluiting eind van de maand",
            "sluiting Q1 2026",
            "sluiting 15 december",
            "sluiting over 2 weken",
            "sluiting morgen",
            "sluiting half januari",
            "sluiting volgend kwartaal",
            "sluiting op de 15e",
            "uiterlijk 20 december",
            "sluiting over 10 dagen",
        ],
        ["", "", "notitie: directeur terugbellen", "Deal met", "fase: Offerte"],
    ),
}
# Half the lines in English (en-US, en-GB), half in one of the other languages; one in five
# of those mixes English fragments in (`Müller GmbH 40k ARR Abschluss nächsten Freitag`).
LOCALES = ["en-US", "en-US", "en-US", "en-GB", "en-US", "en-GB", *LANGUAGES]


def realistic_lines(count: int, seed: int) -> list[tuple[str, datetime, str, str]]:
    """Lines shaped like the ones reps type, each with a "now", zone and locale."""
    rng = random.Random(seed)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    lines = []
    for _ in range(count):
        locale = rng.choice(LOCALES)
        own = LANGUAGES.get(locale, ENGLISH)

        def pick(field: str, own: Words = own) -> str:
            words = ENGLISH if rng.random() < 0.2 else own
            choices: list[str] = getattr(words, field)
            return rng.choice(choices)

        extra = pick("extras")
        parts = [
            rng.choice(LEADS),
            pick("money"),
            pick("periods"),
            pick("confidence"),
            pick("dates"),
        ]
        if extra.lower().startswith(("deal", "opp", "contrat", "trattativa", "negócio")):
            parts.insert(0, extra)
        elif ":" in extra and not extra.startswith("<"):
            parts.append(extra)
        else:
            parts.insert(rng.randrange(1, len(parts) + 1), extra)
        head, *rest = [p for p in parts if p]
        rng.shuffle(rest) if rng.random() < 0.3 else None
        text = " ".join([head, *rest])
        if rng.random() < 0.1:
            text = text.replace(" ", ", ", 1)
        now = base + timedelta(minutes=rng.randrange(0, 60 * 24 * 730))
        lines.append((text, now, rng.choice(ZONES), locale))
    return lines


_COLD = """
import time
t0 = time.perf_counter()
from datetime import datetime, UTC
import bot.parsing as p
from bot.parsing.lexicon import LANGUAGES
t1 = time.perf_counter()
if {warm}:
    p.warm_up(tuple(LANGUAGES))
t2 = time.perf_counter()
p.parse("Acme 12k closing in 10d", now=datetime(2025, 11, 12, tzinfo=UTC))
t3 = time.perf_counter()
p.parse("Müller 12k Abschluss in 10 T.", now=datetime(2025, 11, 12, tzinfo=UTC), locale="de-DE")
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def _cold(warm: bool) -> tuple[float, float, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _COLD.format(warm=warm)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2]), float(out[3])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    import_s, warm_s, first_warm_s, first_de_warm_s = _cold(warm=True)
    _, _, first_cold_s, first_de_cold_s = _cold(warm=False)
    print(f"cold import of bot.parsing:            {_ms(import_s)}")
    print(f"cold warm_up() (every language):       {_ms(warm_s)}")
    print(
        f"first dateparser-path parse, warmed:   {_ms(first_warm_s)}  (de-DE: {_ms(first_de_warm_s)})"
    )
    print(
        f"first dateparser-path parse, no warm:  {_ms(first_cold_s)}  (de-DE: {_ms(first_de_cold_s)})"
        "  (what warm_up saves)"
    )

    from bot.parsing import parse, warm_up
    from bot.parsing.lexicon import LANGUAGES as EVERY_LANGUAGE

    warm_up(tuple(EVERY_LANGUAGE))
    lines = realistic_lines(args.lines, args.seed)
    wall, cpu = [], []
    by_locale: dict[str, list[float]] = {}
    for text, now, tz, locale in lines:
        start, start_cpu = time.perf_counter(), time.thread_time()
        parse(text, now=now, tz=tz, locale=locale, status_labels=LABELS)
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
        by_locale.setdefault(locale, []).append(cpu[-1])
    print(f"lines parsed:  {len(wall)} (seed {args.seed}), total {sum(wall):.3f} s wall")
    # CPU time is what one core spends on a line; wall time also counts waits for the CPU
    # when other processes share the machine.
    for name, timings in (("CPU ", cpu), ("wall", wall)):
        timings.sort()
        q = statistics.quantiles(timings, n=100, method="inclusive")
        print(
            f"per line {name}: median {_ms(statistics.median(timings))}  p95 {_ms(q[94])}  "
            f"p99 {_ms(q[98])}  max {_ms(timings[-1])}"
        )
    for locale, timings in sorted(by_locale.items()):
        q = statistics.quantiles(timings, n=100, method="inclusive")
        print(
            f"  CPU {locale}: {len(timings):5} lines, median {_ms(statistics.median(timings))}  p99 {_ms(q[98])}"
        )


if __name__ == "__main__":
    main()
