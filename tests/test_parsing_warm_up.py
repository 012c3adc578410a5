"""The parser's warm-up a piece at a time (how `serve` finishes it once listening): a line typed
between two pieces parses exactly as it does warm, the warm-up resumes where it stopped, and it
loads English only (another language loads on its first line, and parses the same); lines
parsed while a thread warms up (as `serve` does once listening) parse the same too."""

from __future__ import annotations

import json
import subprocess
import sys

# Every language's dateparser path (a month name, a relative date) and the money formats.
LINES = [
    ("Acme 12k 60% close December 15th note: x", "en-US"),
    ("Acme $12k ARR 60% close in 2 weeks", "en-US"),
    ("Acme 12k close 15/12", "en-GB"),
    ("Müller GmbH 12.500 € jährlich 60 % Abschluss 15. Dezember", "de-DE"),
    ("Dupont 12 500 € annuel 60 % signature le 15 décembre", "fr-FR"),
    ("García 12.500 € anual 60 % cierre 15 de diciembre", "es-ES"),
    ("Silva R$ 12.500 anual 60% fechamento 15 de dezembro", "pt-BR"),
    ("Rossi 12.500 € annuale 60% chiusura 15 dicembre", "it-IT"),
    ("De Vries € 12.500 jaarlijks 60% afsluiting 15 december", "nl-NL"),
]

SCRIPT = """
import json, sys
from datetime import UTC, datetime
from bot.parsing import is_warm, parse, warm_up, warming

lines = json.loads(sys.argv[1])
now = datetime(2025, 11, 12, 15, tzinfo=UTC)

def parses():
    return [parse(text, now=now, locale=locale).to_contract() for text, locale in lines]

steps = []
if sys.argv[2] == "threaded":  # as `serve` does once listening: pieces in a thread
    import threading

    warming_thread = threading.Thread(target=lambda: [None for _ in warming()])
    warming_thread.start()
    while warming_thread.is_alive():
        steps.append({"warm": False, "parses": parses()})
    warming_thread.join()
if sys.argv[2] == "pieces":
    pieces = iter(warming())
    while next(pieces, StopIteration) is not StopIteration:
        steps.append({"warm": is_warm(), "parses": parses()})
        pieces = iter(warming())  # a later caller goes on where the last one stopped
warm_up()
loaded = sorted(
    name.rpartition(".")[2]
    for name in sys.modules
    if name.startswith("dateparser.data.date_translation_data.")
)
steps.append(
    {"warm": is_warm(), "loaded": loaded, "parses": parses(), "left": len(list(warming()))}
)
print(json.dumps(steps, default=str))
"""


def run(mode: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(LINES), mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    steps: list[dict[str, object]] = json.loads(done.stdout)
    return steps


def test_a_line_parsed_mid_warm_up_parses_as_it_does_warm() -> None:
    [warm] = run("at-once")
    assert warm["warm"] is True and warm["left"] == 0
    assert warm["loaded"] == ["en"]  # the other languages load on their first line
    steps = run("pieces")
    *during, after = steps
    assert len(during) >= 3  # a piece per English date order, at least
    assert not any(step["warm"] for step in during)
    assert after["warm"] is True and after["left"] == 0
    for step in steps:
        assert step["parses"] == warm["parses"]


def test_a_line_parsed_while_a_thread_warms_up_parses_as_it_does_warm() -> None:
    [warm] = run("at-once")
    *during, after = run("threaded")
    assert during  # some lines were parsed while the thread warmed up
    for step in [*during, after]:
        assert step["parses"] == warm["parses"]
