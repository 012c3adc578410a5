"""Attribution with the key: a deal the worker creates with CLOSE_API_KEY on someone's behalf
carries `created_by` = the Close user of whoever logged it (their owner or not), so Close shows
the rep as its creator; if Close refuses the field from the key, the deal is created without it
(one extra request, once per process) and `doctor` says so."""

from __future__ import annotations

import io

import jsonschema

from bot.runtime.doctor import run_doctor
from sandbox.stack import Sandbox, running_sandbox
from tests.close_spec import create_opportunity_schema
from tests.flows import open_modal, submit, wait_opportunities


def creates(sb: Sandbox) -> list[dict[str, object]]:
    return [r.json for r in sb.close.requests if r.method == "POST" and r.path == "/opportunity/"]


async def doctor_report(sb: Sandbox) -> str:
    out = io.StringIO()
    await run_doctor(sb.settings, out=out)
    return out.getvalue()


async def log_deal(sb: Sandbox, user_id: str, values: dict[str, str] | None = None) -> None:
    view_id = await open_modal(sb, "Acme 5k", user_id=user_id)
    await submit(sb, view_id, values, user_id=user_id)


async def test_a_deal_the_key_creates_names_who_logged_it_as_its_creator(
    database_url: str,
) -> None:
    async with running_sandbox(database_url=database_url) as sb:
        await log_deal(sb, "U0BOB")
        [opportunity] = await wait_opportunities(sb, 1)
        assert opportunity["created_by"] == "user_bob"  # not the key's owner (Alice)
        assert opportunity["user_id"] == "user_bob"
        [sent] = creates(sb)
        assert sent["created_by"] == "user_bob"
        jsonschema.validate(sent, create_opportunity_schema())
        assert "Close shows the rep as creator" in await doctor_report(sb)


async def test_a_deal_logged_for_someone_else_is_created_by_who_logged_it() -> None:
    async with running_sandbox() as sb:
        await log_deal(sb, "U0BOB", {"owner": "U0ALICE"})
        [opportunity] = await wait_opportunities(sb, 1)
        assert opportunity["user_id"] == "user_alice"  # Alice owns it
        assert opportunity["created_by"] == "user_bob"  # Bob logged it


async def test_when_close_refuses_created_by_the_worker_creates_without_it_and_doctor_says_so(
    database_url: str,
) -> None:
    async with running_sandbox(database_url=database_url) as sb:
        assert "created_by: not tried yet" in await doctor_report(sb)
        sb.close.refuse_created_by_with_key = True
        await log_deal(sb, "U0BOB")
        [opportunity] = await wait_opportunities(sb, 1)
        assert opportunity["created_by"] == "user_alice"  # the key's owner: Close's own choice
        assert ["created_by" in sent for sent in creates(sb)] == [True, False]
        # Remembered for the process: the next deal is one request, without the field.
        await log_deal(sb, "U0BOB")
        await wait_opportunities(sb, 2)
        assert ["created_by" in sent for sent in creates(sb)] == [True, False, False]
        report = await doctor_report(sb)
        assert "created_by: Close refused it from CLOSE_API_KEY" in report
