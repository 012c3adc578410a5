"""The Workflow Builder step "Create a Close opportunity" over real HTTP: stored before its ack,
one opportunity per execution whatever Slack redelivers or Close does, and the step completed
with Slack's functions.completeSuccess / completeError using the execution's own token."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.messages import (
    EDIT_ACTION_ID,
    LOST_ACTION_ID,
    OPEN_IN_CLOSE_ACTION_ID,
    WON_ACTION_ID,
)
from bot.logs import redact
from bot.runtime.history import print_history
from bot.workflow.inputs import INPUT_TITLES
from bot.workflow.models import CALLBACK_ID, WorkflowStep
from sandbox.close_sim import CloseSimulator
from sandbox.functions_sim import FunctionExecution, StepRun
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET, Sandbox, running_sandbox
from tests.flows import wait_until
from tests.process import APP_TOKEN, Bot
from tests.test_durability import ALL_TOLD, all_told, ask
from tests.test_durability_pg import second_instance

FAST: dict[str, Any] = {
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "worker_poll_seconds": 0.05,
    "worker_lease_seconds": 2.0,
}
# The seeded Close org requires the custom field "Source": the text says it, as a person would.
TEXT = "Acme Corp $12k ARR 60% close 2027-03-31 Source: Inbound"


@asynccontextmanager
async def step_sandbox(tmp_path: Path, **overrides: Any) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", **{**FAST, **overrides}
    ) as sb:
        yield sb


async def run_step(sb: Sandbox, **inputs: Any) -> StepRun:
    run = await sb.driver.function_executed({"owner": "U0ALICE", **inputs})
    assert run.response.status_code == 200, run.response.text
    return run


async def done(sb: Sandbox, run: StepRun, timeout: float = 10.0) -> FunctionExecution:  # noqa: ASYNC109
    return await sb.slack.functions.wait_done(run.execution.id, timeout)


async def stored_step(sb: Sandbox, run: StepRun, state: str, timeout: float = 5.0) -> WorkflowStep:  # noqa: ASYNC109
    """The stored step once it reaches `state` (Slack is told just before it is marked)."""
    assert sb.services.workflow is not None
    store = sb.services.workflow.store
    found: list[WorkflowStep] = []

    async def reached() -> bool:
        step = await store.get(run.execution.id)
        found[:] = [step] if step else []
        return step is not None and step.state == state

    deadline = asyncio.get_running_loop().time() + timeout
    while not await reached():
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.02)
    return found[0]


def opportunity_posts(sb: Sandbox) -> list[Any]:
    return [r for r in sb.close.requests if r.method == "POST" and r.path == "/opportunity/"]


def posted(sb: Sandbox) -> list[Any]:
    return [c for c in sb.slack.calls("chat.postMessage") if c.ok]


async def test_step_creates_the_opportunity_and_completes_with_its_outputs(tmp_path: Path) -> None:
    async with step_sandbox(tmp_path) as sb:
        run = await run_step(sb, text=TEXT)
        execution = await done(sb, run)
        assert execution.state == "completed", execution.error
        [opportunity] = sb.close.opportunities
        assert execution.outputs == {
            "opportunity_id": opportunity["id"],
            "opportunity_url": f"{sb.settings.close_app_url}lead/lead_acme/",
            "lead_id": "lead_acme",
            "lead_name": "Acme Corp",
        }
        assert opportunity["value"] == 1_200_000
        assert opportunity["value_period"] == "annual"
        assert opportunity["confidence"] == 60
        assert opportunity["date_won"] == "2027-03-31"
        assert opportunity["custom.cf_source"] == "Inbound"
        assert opportunity["user_id"] == "user_alice"
        # Completed with the execution's token, once; nothing posted without a channel.
        [completion] = execution.completions
        assert completion.method == "functions.completeSuccess" and completion.error is None
        assert posted(sb) == []
        step = await stored_step(sb, run, "completed")
        assert step.inputs["text"] == TEXT and step.submission_id


async def test_a_name_no_lead_matches_creates_that_lead_and_explicit_inputs_win(
    tmp_path: Path,
) -> None:
    async with step_sandbox(tmp_path) as sb:
        run = await run_step(
            sb,
            text="Acme Corp $12k ARR 60% Source: Referral note: from the text",
            lead="Hooli",
            value="$12,500",
            value_period="monthly",
            confidence=80,
            close_date="2027-01-15",
            status="Proposal Sent",
            note="from the form",
        )
        execution = await done(sb, run)
        assert execution.state == "completed", execution.error
        [opportunity] = sb.close.opportunities
        [lead] = [lead for lead in sb.close.org.leads if lead["id"] == opportunity["lead_id"]]
        assert lead["display_name"] == "Hooli"  # created by that name, never "Untitled"
        assert execution.outputs is not None and execution.outputs["lead_name"] == "Hooli"
        assert opportunity["value"] == 1_250_000 and opportunity["value_period"] == "monthly"
        assert opportunity["confidence"] == 80 and opportunity["date_won"] == "2027-01-15"
        assert opportunity["status_id"] == "stat_proposal"
        assert opportunity["note"] == "from the form"
        assert opportunity["custom.cf_source"] == "Referral"  # custom fields come from the text


async def test_lead_given_by_id_or_by_a_near_name_is_that_lead(tmp_path: Path) -> None:
    async with step_sandbox(tmp_path) as sb:
        by_id = await run_step(sb, lead="lead_globex", text="Source: Inbound 5k")
        by_name = await run_step(sb, lead="Umbrella Limited", text="Source: Inbound 5k")
        for run, lead_id in ((by_id, "lead_globex"), (by_name, "lead_umbrella")):
            execution = await done(sb, run)
            assert execution.outputs is not None, execution.error
            assert execution.outputs["lead_id"] == lead_id
        assert len(sb.close.org.leads) == 8  # no lead created


async def test_redelivered_event_makes_one_opportunity_and_one_completion(
    tmp_path: Path,
) -> None:
    async with step_sandbox(tmp_path) as sb:
        sb.close.path_latency["/opportunity/"] = 0.3  # redeliveries land while it is created
        run = await run_step(sb, text=TEXT)
        again = [await sb.driver.function_executed(again=run, retry_num=n) for n in (1, 2, 3)]
        assert all(r.response.status_code == 200 for r in again)
        execution = await done(sb, run)
        await stored_step(sb, run, "completed")
        again.append(await sb.driver.function_executed(again=run, retry_num=4))  # after it all
        # Acked once stored (a redelivery finds its row): by now the store shows any work it
        # made, and there is none; the step stays completed, its one submission told.
        await stored_step(sb, run, "completed")
        await wait_until(lambda: all_told(sb))
        assert len(sb.close.opportunities) == 1
        assert len(opportunity_posts(sb)) == 1
        assert [c.method for c in execution.completions] == ["functions.completeSuccess"]
        assert len(await sb.services.store.recent()) == 1


async def test_close_unavailable_then_back_creates_once_reconciled_and_completes(
    tmp_path: Path,
) -> None:
    async with step_sandbox(tmp_path, close_timeout_seconds=0.3) as sb:
        sb.close.fail(3, 503, paths=["/opportunity/"], methods=["POST"])
        run = await run_step(sb, text=TEXT)
        await wait_until(lambda: len(opportunity_posts(sb)) >= 3, 10)
        sb.close.apply_then_hang(1, 3.0)  # the next one reaches Close, its answer does not
        execution = await done(sb, run)
        assert execution.state == "completed", execution.error
        [opportunity] = sb.close.opportunities
        assert execution.outputs is not None
        assert execution.outputs["opportunity_id"] == opportunity["id"]
        # Found by looking in Close after the unanswered POST, never sent again.
        assert [r.status for r in opportunity_posts(sb)][:3] == [503, 503, 503]
        assert len([r for r in opportunity_posts(sb) if r.status != 503]) == 1
        assert posted(sb) == []  # no "Queued" notice either: the workflow says what to say
        [submission] = await sb.services.store.recent()
        # The 503s are asked again within an attempt (nothing was applied); the unanswered
        # POST makes a second attempt, which looks before sending.
        assert submission.opportunity_id == opportunity["id"] and submission.attempts == 2


async def test_close_down_past_the_bound_fails_the_step_clearly(tmp_path: Path) -> None:
    async with step_sandbox(tmp_path, workflow_step_give_up_seconds=1.0) as sb:
        sb.close.fail(100_000, 503, paths=["/opportunity/"], methods=["POST"])
        run = await run_step(sb, text=TEXT)
        execution = await done(sb, run, timeout=15)
        assert execution.state == "failed"
        assert execution.error is not None
        assert execution.error.startswith("Close did not accept it for 1 second")
        assert "503" in execution.error
        assert sb.close.opportunities == [] and posted(sb) == []
        step = await stored_step(sb, run, "failed")
        assert step.error == execution.error


async def test_close_down_while_the_step_is_read_fails_it_past_the_bound(tmp_path: Path) -> None:
    async with step_sandbox(tmp_path, workflow_step_give_up_seconds=1.0) as sb:
        sb.close.fail(100_000, 503, paths=["/data/search/"])
        run = await run_step(sb, text=TEXT)
        execution = await done(sb, run, timeout=15)
        assert execution.state == "failed"
        assert execution.error is not None
        assert execution.error.startswith("Close did not answer for 1 second while the step")
        assert "run the workflow again" in execution.error
        assert opportunity_posts(sb) == []
        assert await sb.services.store.recent() == []  # it never became a submission


BAD_INPUTS = [
    ({"owner": "U0DAVE"}, "“Owner” input: Dave Diaz has no Close account I can match"),
    ({"owner": ""}, "“Owner” input: pick the person who owns the deal"),
    ({"value": "lots"}, "“Value” input: “lots” is not an amount"),
    ({"value_period": "fortnightly"}, "“Value period” input: “fortnightly” is not a period"),
    ({"confidence": 150}, "“Confidence” input: a whole number from 0 to 100"),
    ({"close_date": "soon"}, "“Expected close date” input: “soon” is not a date"),
    ({"status": "Negotiating"}, "“Status” input: Close has no status “Negotiating”"),
    ({"lead": "lead_nope"}, "“Lead” input: Close has no lead lead_nope"),
    ({"text": "$12k Source: Inbound"}, "“Lead” input: say which lead"),
    ({"text": "Acme Corp Source: Blog"}, "“Deal text” input: Source: “Blog” does not fit"),
]


@pytest.mark.parametrize(("inputs", "says"), BAD_INPUTS, ids=lambda v: str(v)[:30])
async def test_bad_input_fails_the_step_naming_the_input(
    tmp_path: Path, inputs: dict[str, Any], says: str
) -> None:
    async with step_sandbox(tmp_path) as sb:
        run = await run_step(sb, **{"text": TEXT, **inputs})
        execution = await done(sb, run)
        assert execution.state == "failed"
        assert execution.error is not None and says in execution.error, execution.error
        assert opportunity_posts(sb) == [] and posted(sb) == []
        await stored_step(sb, run, "failed")


async def test_unmapped_owner_is_told_who_can_link_them(tmp_path: Path) -> None:
    async with step_sandbox(tmp_path) as sb:
        execution = await done(sb, await run_step(sb, owner="U0DAVE", text=TEXT))
        assert execution.error is not None
        assert "/opportunity link @dave" in execution.error
        assert "Slack workspace admin" in execution.error


async def test_unknown_status_lists_valid_labels(tmp_path: Path) -> None:
    async with step_sandbox(tmp_path) as sb:
        execution = await done(sb, await run_step(sb, status="Negotiating", text=TEXT))
        assert execution.error is not None
        assert "Lead, Contacted, Demo Scheduled" in execution.error


async def test_close_400_fails_the_step_naming_the_field(tmp_path: Path) -> None:
    async with step_sandbox(tmp_path) as sb:
        run = await run_step(sb, text="Acme Corp $12k ARR")  # no Source, which Close requires
        execution = await done(sb, run)
        assert execution.state == "failed"
        assert execution.error == (
            "Close refused it: custom.cf_source (Source): This field is required — add "
            "“Source: …” to the step's “Deal text”"
        )
        assert sb.close.opportunities == [] and posted(sb) == []


async def test_channel_gets_the_usual_confirmation_with_buttons(tmp_path: Path) -> None:
    async with step_sandbox(tmp_path) as sb:
        run = await run_step(sb, text=TEXT, channel="C0SALES")
        execution = await done(sb, run)
        assert execution.state == "completed", execution.error
        await wait_until(lambda: len(posted(sb)) >= 2)
        summary, details = posted(sb)
        assert summary.params["channel"] == "C0SALES" and not summary.params.get("thread_ts")
        assert "<@U0ALICE> logged an opportunity for *Acme Corp*" in json.dumps(
            summary.params["blocks"]
        )
        assert details.params["thread_ts"] == summary.response["ts"]
        actions = [
            element["action_id"]
            for block in details.params["blocks"]
            if block["type"] == "actions"
            for element in block["elements"]
        ]
        assert actions == [OPEN_IN_CLOSE_ACTION_ID, EDIT_ACTION_ID, WON_ACTION_ID, LOST_ACTION_ID]


async def test_channel_the_bot_cannot_post_in_gets_nothing_and_no_dm(tmp_path: Path) -> None:
    async with step_sandbox(tmp_path) as sb:
        execution = await done(sb, await run_step(sb, text=TEXT, channel="C0PRIVATE"))
        assert execution.state == "completed", execution.error
        await wait_until(lambda: all_told(sb))  # the telling is over (its failures included)
        assert posted(sb) == [] and sb.slack.calls("conversations.open") == []


async def test_slack_not_answering_the_completion_is_told_later_once(tmp_path: Path) -> None:
    async with step_sandbox(tmp_path) as sb:
        sb.slack.fail_method("functions.completeSuccess", "internal_error", n=2)
        run = await run_step(sb, text=TEXT)
        execution = await done(sb, run)
        assert execution.state == "completed"
        errors = [c.params.get("function_execution_id") for c in sb.slack.calls()]
        assert errors.count(run.execution.id) == 3  # two refused, then told
        await stored_step(sb, run, "completed")
        assert len(sb.close.opportunities) == 1


# --- a real `serve` process killed mid-way -------------------------------------------------


@pytest.mark.parametrize("moment", ["while-read", "before-close-has-it", "after-close-has-it"])
async def test_sigkill_mid_way_then_restart_creates_once_and_completes_once(
    tmp_path: Path, moment: str
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'crash.sqlite3'}"
    async with (
        CloseSimulator(api_key=CLOSE_API_KEY) as close,
        SlackSimulator(bot_token=BOT_TOKEN) as slack,
    ):
        first = Bot(close, slack, database_url, tmp_path, "serve")
        second = Bot(close, slack, database_url, tmp_path, "serve")
        try:
            await first.start()
            if moment == "while-read":
                close.path_latency["/data/search/"] = 30.0  # the lead lookup never answers
            elif moment == "before-close-has-it":
                close.fail(10_000, 429, paths=["/opportunity/"], methods=["POST"])
            else:
                close.apply_then_hang(1, 60)  # stored in Close, never answered before the kill
            async with SlackDriver(slack, first.url + "slack/events", SIGNING_SECRET) as driver:
                run = await driver.function_executed({"owner": "U0ALICE", "text": TEXT})
                assert run.response.status_code == 200  # stored, acked: now it must land
            if moment == "while-read":
                await wait_until(lambda: close.count("POST", "/data/search/") >= 1, 10)
            else:
                await wait_until(lambda: close.count("POST", "/opportunity/") >= 1, 10)
            first.stop()
            await first.wait()
            assert len(close.opportunities) == (1 if moment == "after-close-has-it" else 0)
            assert not run.execution.done
            close.clear_faults()

            await second.start()  # a new process on the same file finishes the job
            execution = await slack.functions.wait_done(run.execution.id, 20)
            assert execution.state == "completed", execution.error
            await wait_until(lambda: ask(database_url, ALL_TOLD), 10)  # told and marked
            [opportunity] = close.opportunities
            assert execution.outputs is not None
            assert execution.outputs["opportunity_id"] == opportunity["id"]
            told = [c for c in execution.completions if c.error is None]
            assert len(told) == 1
            if moment == "after-close-has-it":
                assert close.count("POST", "/opportunity/") == 1  # reconciled, never re-sent

            shown = await second.run("history")
            assert f"via:      workflow step {run.execution.id}: completed" in shown
            [record] = [
                json.loads(line) for line in (await second.run("history", "--json")).splitlines()
            ]
            assert record["opportunity_id"] == opportunity["id"]
            assert record["workflow_step"]["state"] == "completed"
            assert "bot_access_token" not in record["workflow_step"]
        finally:
            for bot in (first, second):
                bot.stop()
                await bot.wait()


async def test_history_shows_a_step_that_never_became_a_submission(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with step_sandbox(tmp_path) as sb:
        run = await run_step(sb, owner="U0DAVE", text=TEXT)
        await done(sb, run)
        await stored_step(sb, run, "failed")
        assert await print_history(sb.settings, user="U0DAVE", limit=5) == 0
        shown = capsys.readouterr().out
        assert f"failed    U0DAVE  workflow step {run.execution.id}" in shown
        assert "failed (functions.completeError at" in shown
        assert "Dave Diaz has no Close account" in shown
        assert await print_history(sb.settings, user=None, limit=5, as_json=True) == 0
        [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert record["workflow_step"]["function_execution_id"] == run.execution.id
        assert "bot_access_token" not in record["workflow_step"]


# --- the contract: manifests and Slack's side -------------------------------------------------

MANIFESTS = sorted((Path(__file__).resolve().parents[1] / "manifests").glob("*.json"))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_declares_the_step(path: Path) -> None:
    manifest = json.loads(path.read_text())
    step = manifest["functions"][CALLBACK_ID]
    assert step["title"] == "Create a Close opportunity"
    inputs = step["input_parameters"]
    assert {name: p["type"] for name, p in inputs.items()} == {
        "owner": "slack#/types/user_id",
        "text": "string",
        "lead": "string",
        "value": "string",
        "value_period": "string",
        "confidence": "integer",
        "close_date": "slack#/types/date",
        "status": "string",
        "note": "string",
        "channel": "slack#/types/channel_id",
    }
    assert [name for name, p in inputs.items() if p["is_required"]] == ["owner"]
    # Errors name an input by the title Workflow Builder shows for it.
    assert {name: p["title"] for name, p in inputs.items()} == INPUT_TITLES
    outputs = step["output_parameters"]
    assert set(outputs) == {"opportunity_id", "opportunity_url", "lead_id", "lead_name"}
    assert {p["type"] for p in outputs.values()} == {"string"}
    settings = manifest["settings"]
    assert settings["org_deploy_enabled"] is True
    assert settings["function_runtime"] == "remote"
    assert "function_executed" in settings["event_subscriptions"]["bot_events"]


async def test_slack_sim_completes_an_execution_only_with_its_token_and_only_once() -> None:
    async with SlackSimulator(bot_token=BOT_TOKEN) as slack:
        first = slack.functions.start(CALLBACK_ID, {"owner": "U0ALICE"})
        other = slack.functions.start(CALLBACK_ID, {"owner": "U0BOB"})
        outputs = {
            "opportunity_id": "oppo_1",
            "opportunity_url": "https://app.close.com/lead/lead_1/",
            "lead_id": "lead_1",
            "lead_name": "Acme",
        }

        async def complete(token: str, execution_id: str, **extra: Any) -> str | None:
            client = AsyncWebClient(token=token, base_url=slack.api_url)
            try:
                if "error" in extra:
                    await client.functions_completeError(
                        function_execution_id=execution_id, error=extra["error"]
                    )
                else:
                    await client.functions_completeSuccess(
                        function_execution_id=execution_id, outputs=extra.get("outputs", outputs)
                    )
            except SlackApiError as error:
                return str(error.response["error"])
            return None

        assert await complete(BOT_TOKEN, first.id) == "invalid_auth"
        assert await complete(other.token, first.id) == "invalid_auth"
        assert await complete(first.token, "Fx0NOPE") == "function_execution_not_found"
        wrong = {**outputs, "value": "12k"}
        assert await complete(first.token, first.id, outputs=wrong) == (
            "parameter_validation_failed"
        )
        missing = {k: v for k, v in outputs.items() if k != "lead_id"}
        assert await complete(first.token, first.id, outputs=missing) == (
            "parameter_validation_failed"
        )
        assert not first.done
        assert await complete(first.token, first.id) is None
        assert first.state == "completed" and first.outputs == outputs
        assert await complete(first.token, first.id) == "execution_not_in_running_state"
        assert await complete(first.token, first.id, error="x") == "execution_not_in_running_state"
        assert await complete(other.token, other.id, error="Close is down") is None
        assert other.state == "failed" and other.error == "Close is down"
        event = slack.functions.event(first)
        assert event["function"]["callback_id"] == CALLBACK_ID
        assert {p["name"] for p in event["function"]["output_parameters"]} == set(outputs)
        assert event["bot_access_token"] == first.token and first.token.startswith("xwfp-")


# --- Socket Mode -------------------------------------------------------------------------------


async def test_socket_mode_step_and_its_redelivery_make_one_opportunity(tmp_path: Path) -> None:
    """`python -m bot socket` as a process, on the Slack simulator's websocket."""
    close = CloseSimulator(api_key=CLOSE_API_KEY)
    slack = SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    async with close, slack:
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
        bot = Bot(close, slack, database_url, tmp_path, "socket")
        try:
            await bot.start()
            connection = await slack.socket_mode.wait_connections(1)
            async with SlackDriver(slack, "", SIGNING_SECRET, socket_mode=True) as driver:
                execution = slack.functions.start(
                    CALLBACK_ID, {"owner": "U0ALICE", "text": TEXT, "channel": "C0SALES"}
                )
                body = driver.event_body(slack.functions.event(execution), event_id="Ev0STEP1")
                # Slack sends it, then (say the ack got lost) sends it again as a retry.
                for attempt, reason in ((0, ""), (1, "timeout")):
                    envelope = driver.socket_envelope(
                        body, retry_attempt=attempt, retry_reason=reason
                    )
                    await connection.socket.send_str(json.dumps(envelope))
                    assert await slack.socket_mode.wait_ack(envelope["envelope_id"]) == {}
            await slack.functions.wait_done(execution.id, 15)
            assert execution.state == "completed", execution.error
            await wait_until(lambda: ask(database_url, ALL_TOLD), 10)  # told and marked
            [opportunity] = close.opportunities
            assert execution.outputs is not None
            assert execution.outputs["opportunity_id"] == opportunity["id"]
            assert [c.error for c in execution.completions] == [None]
            assert close.count("POST", "/opportunity/") == 1
            summaries = [
                c for c in slack.calls("chat.postMessage") if c.ok and not c.params.get("thread_ts")
            ]
            assert len(summaries) == 1 and summaries[0].params["channel"] == "C0SALES"
        finally:
            bot.stop()
            await bot.wait()


def test_an_execution_token_never_reaches_a_log_line() -> None:
    line = '{"bot_access_token": "xwfp-7d3a9c0e1b2f4a5d6c7e8f90", "function_execution_id": "Fx1"}'
    assert "xwfp-7d3a" not in redact(line) and "Fx1" in redact(line)


# --- two instances on one PostgreSQL -----------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set")
async def test_steps_delivered_to_two_instances_are_each_created_and_told_once(
    pg_url: str,
) -> None:
    async with (
        running_sandbox(database_url=pg_url, **FAST) as sb,
        second_instance(sb) as other,
    ):
        first = await sb.driver.function_executed({"owner": "U0ALICE", "text": TEXT})
        # Slack's retry of the same event lands on the other instance, twice, at once.
        await asyncio.gather(
            other.driver.function_executed(again=first, retry_num=1),
            other.driver.function_executed(again=first, retry_num=2),
        )
        drivers = [sb.driver, other.driver]
        runs = await asyncio.gather(
            *(
                drivers[n % 2].function_executed(
                    {"owner": "U0BOB", "lead": f"Pied Piper {n}", "text": "$1k Source: Inbound"}
                )
                for n in range(6)
            )
        )
        for run in (first, *runs):
            execution = await done(sb, run, timeout=20)
            assert execution.state == "completed", execution.error
            assert [c.error for c in execution.completions] == [None]
        await wait_until(lambda: all_told(sb))
        assert len(sb.close.opportunities) == 7
        assert len(opportunity_posts(sb)) == 7
        names = sorted(lead["display_name"] for lead in sb.close.org.leads)
        assert [name for name in names if name.startswith("Pied Piper")] == sorted(
            f"Pied Piper {n}" for n in range(6)
        )


async def test_a_step_that_cannot_be_stored_is_failed_not_left_waiting(tmp_path: Path) -> None:
    async with step_sandbox(tmp_path) as sb:
        async with sb.services.engine.begin() as connection:
            await connection.exec_driver_sql("DROP TABLE workflow_steps")  # the store breaks
        run = await run_step(sb, text=TEXT)
        execution = await done(sb, run)
        assert execution.state == "failed"
        assert execution.error is not None
        assert "could not record this step" in execution.error
        assert "run the workflow again" in execution.error
        assert opportunity_posts(sb) == []
