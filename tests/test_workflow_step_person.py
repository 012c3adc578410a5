"""The workflow step acts in Close as the person it names (its owner), like the modal: the lead
is looked up with their own access, and under CLOSE_ACCESS=personal someone not connected (or
whose connection Close no longer takes) fails the step at once with what to do — nothing sent
to Close with the key on their behalf, nothing created."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sandbox.close_sim import RecordedRequest
from sandbox.functions_sim import FunctionExecution
from sandbox.stack import Sandbox, running_sandbox
from tests.flows import wait_opportunities
from tests.oauth_flows import connect_link, consent
from tests.test_workflow_step import FAST

TEXT = "Globex 5k Source: Inbound"


@asynccontextmanager
async def sandbox(access: str) -> AsyncIterator[Sandbox]:
    async with running_sandbox(oauth=True, close_access=access, **FAST) as sb:
        sb.close.restrict("user_bob")  # Bob's Close role sees only his own leads
        sb.close.own_lead("lead_globex", "user_bob")
        yield sb


async def connect_bob(sb: Sandbox) -> None:
    walk = await consent(sb.close, await connect_link(sb, "U0BOB"), user="user_bob")
    assert walk.page.status_code == 200, walk.page.text


async def run_step(sb: Sandbox, **inputs: Any) -> FunctionExecution:
    run = await sb.driver.function_executed({"owner": "U0BOB", "text": TEXT, **inputs})
    assert run.response.status_code == 200, run.response.text
    return await sb.slack.functions.wait_done(run.execution.id, 10.0)


def lead_reads(sb: Sandbox, mark: int) -> list[RecordedRequest]:
    return [
        r
        for r in sb.close.requests[mark:]
        if r.path.startswith("/data/search/") or r.path.startswith("/lead/")
    ]


def whose(sb: Sandbox, request: RecordedRequest) -> str | None:
    """The Close user a request acted as (None: the key)."""
    authorization = request.headers.get("authorization", "")
    if not authorization.startswith("Bearer "):
        return None
    return sb.close.bearer_user(authorization.removeprefix("Bearer "))


async def test_the_step_looks_the_lead_up_as_its_owner_and_creates_as_them() -> None:
    async with sandbox("either") as sb:
        await connect_bob(sb)
        mark = len(sb.close.requests)
        execution = await run_step(sb)
        assert execution.state == "completed", execution.error
        reads = lead_reads(sb, mark)
        assert reads and all(whose(sb, r) == "user_bob" for r in reads)
        [opportunity] = await wait_opportunities(sb, 1)
        assert opportunity["lead_id"] == "lead_globex"
        assert opportunity["created_by"] == "user_bob"


async def test_a_lead_id_is_read_as_the_owner_too() -> None:
    async with sandbox("personal") as sb:
        await connect_bob(sb)
        mark = len(sb.close.requests)
        execution = await run_step(sb, lead="lead_globex")
        assert execution.state == "completed", execution.error
        [read] = [r for r in lead_reads(sb, mark) if r.path.startswith("/lead/")]
        assert whose(sb, read) == "user_bob"


async def test_under_personal_a_step_for_someone_not_connected_fails_at_once_saying_how() -> None:
    async with sandbox("personal") as sb:
        mark = len(sb.close.requests)
        execution = await run_step(sb)
        assert execution.state == "failed"
        assert execution.error is not None
        assert "Bob Baker has not connected their Close account" in execution.error
        assert "`/opportunity connect`" in execution.error
        assert "Nothing was created" in execution.error
        assert lead_reads(sb, mark) == []  # nothing asked with the key on his behalf
        assert sb.close.opportunities == []


async def test_a_step_for_someone_whose_connection_broke_fails_and_they_are_asked_to_reconnect() -> (
    None
):
    async with sandbox("personal") as sb:
        await connect_bob(sb)
        sb.close.revoke("user_bob")
        since = sb.slack.mark()
        execution = await run_step(sb)
        assert execution.state == "failed"
        assert execution.error is not None
        assert "no longer accepts Bob Baker's connection" in execution.error
        assert "`/opportunity connect`" in execution.error
        await sb.slack.wait_for(
            "chat.postMessage", lambda c: "Reconnect" in str(c.params), since=since
        )
        assert sb.close.opportunities == []


async def test_a_steps_submission_waiting_for_a_reconnect_fails_at_the_steps_bound() -> None:
    async with running_sandbox(
        oauth=True, close_access="either", **{**FAST, "workflow_step_give_up_seconds": 2}
    ) as sb:
        await connect_bob(sb)
        # Read as Bob; then Close takes none of his tokens for the create (refreshed or not).
        sb.close.fail(2, 401, paths=["/opportunity/"], methods=["POST"])
        execution = await run_step(sb)
        assert execution.state == "failed"
        assert execution.error is not None
        assert "no longer accepts <@U0BOB>'s connection" in execution.error
        assert "`/opportunity connect`" in execution.error
        assert sb.close.opportunities == []
