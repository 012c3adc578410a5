"""`python -m bot demo` where the bot is installed without the repository (from its wheel, which
does not hold the simulators): a message saying where the demo runs, not a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.runtime import cli


def test_the_demo_without_its_simulators_says_where_it_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "sandbox.demo", None)  # as if not on the path: not importable
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "./scripts/run.sh" in err and "python -m bot demo" in err
    assert "clone" in err


def test_a_demo_missing_something_else_still_shows_what(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only the demo's own absence gets the message: a dependency it lacks is a real error."""
    (tmp_path / "demo_lacking_a_dependency.py").write_text("import a_dependency_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "_DEMO", "demo_lacking_a_dependency")
    with pytest.raises(ModuleNotFoundError, match="a_dependency_not_installed"):
        cli.main(["demo"])
