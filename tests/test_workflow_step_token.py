"""The workflow step's own token (`bot_access_token`) lives about 15 minutes: a completion Slack
refuses for it is final — recorded on the step, counted in /metrics, shown by `history`, never
retried — and WORKFLOW_STEP_GIVE_UP_SECONDS cannot outlast it."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.times import STEP_TOKEN_LIFE
from sandbox.functions_sim import TOKEN_LIFE_SECONDS
from sandbox.stack import running_sandbox
from tests.flows import wait_until
from tests.test_cli import ROOT, clean_env, run_bot
from tests.test_operations import scrape, value
from tests.test_workflow_step import FAST, TEXT, done, run_step, stored_step

UNTOLD = "opportunity_bot_workflow_steps_untold_total"


async def history(database_url: str) -> str:
    """`python -m bot history`, as an operator runs it, against the bot's database."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "history",
        env=clean_env(DATABASE_URL=database_url), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.parametrize("refusal", ["token_expired", "invalid_auth"])
async def test_a_completion_refused_for_the_steps_token_is_final_counted_and_in_history(
    database_url: str, refusal: str
) -> None:
    async with running_sandbox(database_url=database_url, **FAST) as sb:
        functions = sb.slack.functions
        if refusal == "token_expired":
            functions.token_life_seconds = 0.0  # the step outlived its token
        else:
            sb.slack.fail_method("functions.completeSuccess", "invalid_auth", n=1)
        run = await run_step(sb, text=TEXT)
        step = await stored_step(sb, run, "untold")
        [opportunity] = sb.close.opportunities
        assert step.error == (
            f"Slack refused the step's token ({refusal}): the workflow was not told that the "
            f"opportunity {opportunity['id']} was created in Close"
        )
        # Final: with the token alive again a retry would complete it, and none comes while
        # the worker goes on (another step is created and told meanwhile).
        functions.token_life_seconds = TOKEN_LIFE_SECONDS
        other = await done(sb, await run_step(sb, text=TEXT))
        assert other.state == "completed", other.error
        tried = [
            c for c in sb.slack.calls() if c.params.get("function_execution_id") == run.execution.id
        ]
        assert [(c.method, c.response.get("error")) for c in tried] == [
            ("functions.completeSuccess", refusal)
        ]
        assert not run.execution.done
        if refusal == "token_expired":  # Slack's side saw the one call, refused
            assert [(c.method, c.error) for c in run.execution.completions] == [
                ("functions.completeSuccess", "token_expired")
            ]

        samples = await scrape(sb)
        assert value(samples, UNTOLD, error=refusal) == 1
        assert sum(v for (name, _), v in samples.items() if name == UNTOLD) == 1

        shown = await history(sb.settings.database_url)
        assert f"via:      workflow step {run.execution.id}: untold (given up at" in shown
        assert f"Slack refused the step's token ({refusal})" in shown
        assert f"workflow step {other.id}: completed" in shown
        assert run.execution.token not in shown


async def test_telling_slack_is_given_up_once_the_steps_token_has_died(tmp_path: Path) -> None:
    """Slack failing every completion: retried while the token lives (not for a day), then
    the step is final, untold, and counted."""
    ahead = [timedelta(0)]

    def clock() -> datetime:
        return datetime.now(UTC) + ahead[0]

    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    async with running_sandbox(database_url=database_url, clock=clock, **FAST) as sb:
        sb.slack.fail_method("functions.completeSuccess", "internal_error", n=10_000)
        run = await run_step(sb, text=TEXT)

        def tries() -> int:
            return sum(
                1
                for c in sb.slack.calls("functions.completeSuccess")
                if c.params.get("function_execution_id") == run.execution.id
            )

        await wait_until(lambda: tries() >= 2)  # told, refused, tried again: still within life
        ahead[0] = STEP_TOKEN_LIFE + timedelta(seconds=1)
        step = await stored_step(sb, run, "untold")
        assert step.error is not None and step.error.startswith(
            "Slack did not take the completion while the step's token lived (last: "
            "internal_error): the workflow was not told that the opportunity "
        )
        samples = await scrape(sb)
        assert value(samples, UNTOLD, error="gave_up") == 1
        given_up = tries()
        other = await run_step(sb, text=TEXT)  # the worker goes on: no try for the first
        await wait_until(lambda: len(sb.close.opportunities) == 2)
        await wait_until(
            lambda: any(
                c.params.get("function_execution_id") == other.execution.id
                for c in sb.slack.calls("functions.completeSuccess")
            )
        )
        assert tries() == given_up


def test_a_give_up_longer_than_the_steps_token_lives_is_refused_at_start() -> None:
    result = run_bot("history", env=clean_env(WORKFLOW_STEP_GIVE_UP_SECONDS="900"))
    assert result.returncode == 2
    assert "WORKFLOW_STEP_GIVE_UP_SECONDS: must be at most 840 (got 900)" in result.stderr
    assert "about 15 minutes" in result.stderr and "Traceback" not in result.stderr
    allowed = run_bot(
        "history",
        env=clean_env(WORKFLOW_STEP_GIVE_UP_SECONDS="840", DATABASE_URL="sqlite+aiosqlite://"),
    )
    assert "WORKFLOW_STEP_GIVE_UP_SECONDS" not in allowed.stderr
