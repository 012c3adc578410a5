"""The load benchmark runs end to end (short and slow, so CI proves it works, not how fast it is)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_runs_both_apps_and_every_submission_lands_once(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.load", "--duration", "2", "--rate", "4", "--think", "1.2",
         "--close-latency", "0.05", "--drain-timeout", "10", "--settle", "0.5", "--out-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (tmp_path / "latest.md").read_text() in run.stdout + "\n", run.stderr[-2000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    bot, baseline = report["bot"], report["baseline"]

    assert bot["load"]["commands_sent"] == baseline["load"]["commands_sent"] == 8
    for app in (bot, baseline):
        acks = app["ack_ms"]
        assert acks["command"]["count"] == acks["submission"]["count"] == 8
        assert acks["options"]["count"] == 2  # one flow in four types into the lead typeahead
        assert all(a["failed"] == 0 and a["late"] == 0 for a in acks.values()), acks
        assert app["command_to_views_open_ms"]["count"] == 8
        assert app["peak_rss_mb"] > 10 and app["ready_seconds"] > 0

    subs = bot["submissions"]
    assert subs["created"] == subs["accepted"] == 8, subs
    assert subs["lost"] == subs["duplicated"] == 0
    assert subs["created_with_new_lead"] == 2
    assert bot["close"]["create_path_requests"]["POST /opportunity/"] == 8
    assert bot["close"]["create_path_requests"]["POST /lead/"] == 2
    assert bot["slack"]["calls_by_method"]["views.open"] == 8
    assert baseline["submissions"]["created"] == 0  # the baseline never calls Close
    # The same traffic for both: the baseline opens the bot's modal (bench/bot_modal.json; the
    # run writes the bot's current one next to its results), so submissions of the same size.
    loads = bot["load"], baseline["load"]
    assert loads[0]["modal_blocks"] == loads[1]["modal_blocks"] > 10, loads
    sizes = [load["submission_payload_bytes_p50"] for load in loads]
    assert abs(sizes[0] - sizes[1]) < 0.15 * sizes[0], (sizes, "refresh bench/bot_modal.json")
    assert (tmp_path / "bot_modal.json").exists()
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["every accepted submission created exactly once"]["ok"] is True


def test_bench_burst_sends_rounds_with_a_fixed_number_in_flight(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.load", "--burst", "5x2x2", "--think", "0.2", "--only", "bot",
         "--close-latency", "0.05", "--drain-timeout", "10", "--settle", "0.5", "--out-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (tmp_path / "burst.md").read_text() in run.stdout + "\n", run.stderr[-2000:]
    report = json.loads((tmp_path / "burst.json").read_text())
    assert report["config"]["burst"] == {"flows": 5, "in_flight": 2, "rounds": 2}
    bot = report["bot"]
    assert bot["load"]["commands_sent"] == 10
    assert bot["ack_ms"]["submission"]["count"] == 10
    assert bot["submissions"]["created"] == bot["submissions"]["accepted"] == 10
    assert "2 rounds of 5 flows (command + submission), 2 in flight" in run.stdout
