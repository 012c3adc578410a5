"""Times `parse` on 10,000 realistic lines after warm-up: median/p95/p99 per line, and the cold warm-up.

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
LOCALES = ["en-US", "en-US", "en-GB", "de-DE"]
LABELS = ("Active", "Proposal Sent", "Negotiation", "Won", "Lost")


def realistic_lines(count: int, seed: int) -> list[tuple[str, datetime, str, str]]:
    """Lines shaped like the ones reps type, each with a "now", zone and locale."""
    rng = random.Random(seed)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    lines = []
    for _ in range(count):
        extra = rng.choice(EXTRAS)
        parts = [
            rng.choice(LEADS),
            rng.choice(MONEY),
            rng.choice(PERIODS),
            rng.choice(CONFIDENCE),
            rng.choice(DATES),
        ]
        if extra.startswith(("deal", "opp")):
            parts.insert(0, extra)
        elif extra.startswith("note"):
            parts.append(extra)
        else:
            parts.insert(rng.randrange(1, len(parts) + 1), extra)
        head, *rest = [p for p in parts if p]
        rng.shuffle(rest) if rng.random() < 0.3 else None
        text = " ".join([head, *rest])
        if rng.random() < 0.1:
            text = text.replace(" ", ", ", 1)
        now = base + timedelta(minutes=rng.randrange(0, 60 * 24 * 730))
        lines.append((text, now, rng.choice(ZONES), rng.choice(LOCALES)))
    return lines


_COLD = """
import time
t0 = time.perf_counter()
from datetime import datetime, UTC
import bot.parsing as p
t1 = time.perf_counter()
if {warm}:
    p.warm_up()
t2 = time.perf_counter()
p.parse("Acme 12k closing in 10d", now=datetime(2025, 11, 12, tzinfo=UTC))
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def _cold(warm: bool) -> tuple[float, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _COLD.format(warm=warm)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    import_s, warm_s, first_warm_s = _cold(warm=True)
    _, _, first_cold_s = _cold(warm=False)
    print(f"cold import of bot.parsing:            {_ms(import_s)}")
    print(f"cold warm_up():                        {_ms(warm_s)}")
    print(f"first dateparser-path parse, warmed:   {_ms(first_warm_s)}")
    print(f"first dateparser-path parse, no warm:  {_ms(first_cold_s)}  (what warm_up saves)")

    from bot.parsing import parse, warm_up

    warm_up()
    lines = realistic_lines(args.lines, args.seed)
    wall, cpu = [], []
    for text, now, tz, locale in lines:
        start, start_cpu = time.perf_counter(), time.thread_time()
        parse(text, now=now, tz=tz, locale=locale, status_labels=LABELS)
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
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


if __name__ == "__main__":
    main()
