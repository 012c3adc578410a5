"""Who is who: Slack users mapped to Close users by email and by admin links, over real HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.identity import Identity
from bot.identity.service import remember_user
from bot.listeners.admin_commands import LINK_USAGE, UNLINK_USAGE, Subcommand, parse_subcommand
from bot.services import Services
from bot.store.db import create_schema
from bot.store.tables import UserLinkRow
from sandbox.close_sim import CloseSimulator, Org, default_org
from sandbox.slack_sim import SlackSimulator, SlackUser, Workspace, _person, default_workspace
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, Sandbox, running_sandbox, sandbox_settings
from tests.flows import open_modal, submit, wait_opportunities


def frozen(instant: datetime) -> Callable[[], datetime]:
    return lambda: instant


async def command(sb: Sandbox, text: str, *, user_id: str = "U0ALICE") -> str:
    """Run `/opportunity text` as `user_id`; returns the bot's ephemeral answer."""
    mark = sb.slack.mark()
    result = await sb.driver.slash_command(text, user_id=user_id)
    assert result.response.status_code == 200, result.response.text
    rid = sb.slack.response_url_id(result.response_url)
    call = await sb.slack.wait_for("response_url", lambda c: c.params["id"] == rid, since=mark)
    body = call.params["body"]
    assert body["response_type"] == "ephemeral"
    text_out: str = body["text"]
    return text_out


async def links(sb: Sandbox) -> dict[str, UserLinkRow]:
    async with AsyncSession(sb.services.engine) as session:
        rows = (await session.scalars(select(UserLinkRow))).all()
    return {row.slack_user_id: row for row in rows}


@pytest.fixture
async def admins_sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """Alice is a bot admin through ADMIN_USER_IDS; Carol is a Slack workspace admin."""
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        admin_user_ids=["U0ALICE"],
    ) as sb:
        yield sb


# --- parsing the subcommands -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("whoami", Subcommand("whoami")),
        ("WhoAmI", Subcommand("whoami")),
        ("whoami <@U0BOB|bob>", Subcommand("whoami", user_id="U0BOB")),
        (
            "link <@U0BOB|bob> bob@example.com",
            Subcommand("link", "U0BOB", target="bob@example.com"),
        ),
        (
            "link <@U0BOB|bob> <mailto:Bob@Example.com|Bob@Example.com>",
            Subcommand("link", "U0BOB", target="Bob@Example.com"),
        ),
        ("link <@U0BOB> user_bob", Subcommand("link", "U0BOB", target="user_bob")),
        ("link", Subcommand("link", problem=LINK_USAGE)),
        ("link <@U0BOB|bob>", Subcommand("link", "U0BOB", problem=LINK_USAGE)),
        ("link <@U0BOB|bob> a@b.c d@e.f", Subcommand("link", "U0BOB", problem=LINK_USAGE)),
        ("unlink <@U0BOB|bob>", Subcommand("unlink", "U0BOB")),
        ("unlink", Subcommand("unlink", problem=UNLINK_USAGE)),
        # Leads that start with our verbs still open the modal.
        ("link building corp 5k", None),
        ("unlinked ventures 12k", None),
        ("whoami industries 3k", None),
        ("Acme Corp 12k", None),
        ("", None),
    ],
)
def test_subcommands_are_recognised_strictly(text: str, expected: Subcommand | None) -> None:
    assert parse_subcommand(text) == expected


# --- email matching ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slack_email", "close_email"),
    [
        ("Bob@Example.com", "bob@example.com"),
        ("bob@example.com", "BOB@EXAMPLE.COM"),
        ("  bOb@eXample.Com ", "Bob@Example.com  "),
    ],
)
async def test_email_match_ignores_case_and_surrounding_spaces(
    sandbox: Sandbox, slack_email: str, close_email: str
) -> None:
    bob = sandbox.slack.workspace.user("U0BOB")
    assert bob is not None
    bob.profile.email = slack_email
    user = next(u for u in sandbox.close.org.users if u["id"] == "user_bob")
    user["email"] = close_email
    await sandbox.services.catalog.refresh()

    answer = await command(sandbox, "whoami", user_id="U0BOB")

    assert "*Bob Baker" in answer and "matches the Close user" in answer
    row = (await links(sandbox))["U0BOB"]
    assert (row.source, row.close_user_id, row.email) == ("email", "user_bob", "bob@example.com")


async def test_whoami_explains_an_unmatched_email_and_who_can_link(admins_sandbox: Sandbox) -> None:
    answer = await command(admins_sandbox, "whoami", user_id="U0DAVE")
    assert "not matched to a Close user" in answer
    assert "dave@personal.example" in answer
    # Names the configured admin, and how to run the fix.
    assert "Alice Anders or a Slack workspace admin can link them" in answer
    assert "/opportunity link @dave" in answer


# --- overrides ---------------------------------------------------------------------------


async def test_override_beats_email_and_unlink_returns_to_email(sandbox: Sandbox) -> None:
    # Carol is a Slack workspace admin (users.info is_admin).
    answer = await command(
        sandbox,
        "link <@U0BOB|bob> <mailto:ALICE@example.com|ALICE@example.com>",
        user_id="U0CAROL",
    )
    assert "Linked <@U0BOB> to *Alice Anders (alice@example.com)*" in answer

    whoami = await command(sandbox, "whoami", user_id="U0BOB")
    assert "*Alice Anders" in whoami and "An admin linked them" in whoami
    assert "Set by <@U0CAROL>" in whoami

    view_id = await open_modal(sandbox, "Acme Corp 12k", user_id="U0BOB")
    await submit(sandbox, view_id)
    [first] = await wait_opportunities(sandbox, 1)
    assert first["user_id"] == "user_alice"

    answer = await command(sandbox, "unlink <@U0BOB|bob>", user_id="U0CAROL")
    assert "Removed the link of <@U0BOB>" in answer
    assert "now maps to *Bob Baker (bob@example.com)* (email)" in answer
    assert (await links(sandbox))["U0BOB"].source == "email"

    view_id = await open_modal(sandbox, "Initech 3k", user_id="U0BOB")
    await submit(sandbox, view_id)
    second = (await wait_opportunities(sandbox, 2))[1]
    assert second["user_id"] == "user_bob"


async def test_link_by_close_user_id_maps_someone_email_cannot(admins_sandbox: Sandbox) -> None:
    sb = admins_sandbox
    # Alice is no Slack admin: ADMIN_USER_IDS makes her one for the bot.
    answer = await command(sb, "link <@U0DAVE|dave> user_carol", user_id="U0ALICE")
    assert "Linked <@U0DAVE> to *Carol Chen (carol@example.com)*" in answer
    row = (await links(sb))["U0DAVE"]
    assert (row.source, row.close_user_id, row.set_by) == ("override", "user_carol", "U0ALICE")
    assert row.expires_at is None

    view_id = await open_modal(sb, "Globex 40k one-time", user_id="U0ALICE")
    await submit(sb, view_id, {"owner": "U0DAVE"})
    [opportunity] = await wait_opportunities(sb, 1)
    assert opportunity["user_id"] == "user_carol"


async def test_unlink_without_a_link_says_so(sandbox: Sandbox) -> None:
    answer = await command(sandbox, "unlink <@U0DAVE|dave>", user_id="U0CAROL")
    assert "<@U0DAVE> had no link to remove" in answer
    assert "does not map to a Close user now" in answer


@pytest.mark.parametrize("text", ["link <@U0DAVE|dave> carol@example.com", "unlink <@U0BOB|bob>"])
async def test_non_admin_is_refused_politely_and_nothing_changes(
    admins_sandbox: Sandbox, text: str
) -> None:
    answer = await command(admins_sandbox, text, user_id="U0BOB")
    assert answer.startswith("Sorry, only Slack workspace admins and owners, and <@U0ALICE>,")
    assert "Ask one of them to run `/opportunity" in answer
    assert all(row.source != "override" for row in (await links(admins_sandbox)).values())


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("dave@nowhere.example", "No member of the Close organization has the email"),
        ("alice@exmaple.com", "Did you mean `alice@example.com`?"),
        ("user_nobody", "No Close user has the id `user_nobody`"),
        # user_dave exists in Close but left the org.
        ("dave@example.com", "Dave Dormant (dave@example.com) is deactivated in Close"),
        ("user_dave", "is deactivated in Close"),
    ],
)
async def test_link_to_an_unknown_or_inactive_close_user_is_a_clear_error(
    sandbox: Sandbox, target: str, words: str
) -> None:
    answer = await command(sandbox, f"link <@U0DAVE|dave> {target}", user_id="U0CAROL")
    assert words in answer
    assert "U0DAVE" not in await links(sandbox)


@pytest.mark.parametrize(
    ("user_id", "words"),
    [
        ("U0ERIN", "This Slack account is deactivated."),
        ("U0GUEST", "Guests of the Slack workspace cannot own opportunities."),
        ("U0POLLY", "Bots cannot own opportunities."),
    ],
)
async def test_deleted_users_guests_and_bots_cannot_be_linked_or_own(
    sandbox: Sandbox, user_id: str, words: str
) -> None:
    answer = await command(sandbox, f"link <@{user_id}|x> alice@example.com", user_id="U0CAROL")
    assert f"<@{user_id}> cannot be linked: {words}" in answer
    whoami = await command(sandbox, f"whoami <@{user_id}|x>")
    assert "not someone who can own opportunities" in whoami and words in whoami

    view_id = await open_modal(sandbox, "Acme Corp 12k")
    ack = await submit(sandbox, view_id, {"owner": user_id})
    assert ack["response_action"] == "errors"
    assert ack["errors"]["owner"].startswith(words)
    assert sandbox.close.opportunities == []


async def test_inactive_close_user_is_not_matched_by_email(admins_sandbox: Sandbox) -> None:
    sb = admins_sandbox
    dave = sb.slack.workspace.user("U0DAVE")
    assert dave is not None
    dave.profile.email = "Dave@Example.com"  # the Close user with it, user_dave, left the org

    view_id = await open_modal(sb, "Acme Corp 12k", user_id="U0ALICE")
    ack = await submit(sb, view_id, {"owner": "U0DAVE"})

    error = ack["errors"]["owner"]
    assert error.startswith("Dave Diaz has no Close account I can match.")
    assert "(Dave Dormant) is deactivated in the Close organization" in error
    assert "Alice Anders or a Slack workspace admin can link them" in error
    assert sb.close.opportunities == []


async def test_override_to_someone_who_left_close_is_explained_not_silently_replaced(
    sandbox: Sandbox,
) -> None:
    await command(sandbox, "link <@U0BOB|bob> carol@example.com", user_id="U0CAROL")
    sandbox.close.org.inactive_user_ids.add("user_carol")
    await sandbox.services.catalog.refresh()

    whoami = await command(sandbox, "whoami", user_id="U0BOB")
    assert "linked to the Close user Carol Chen (carol@example.com), who is no longer" in whoami
    assert "*Bob Baker" not in whoami  # the admin's choice is not overruled by email


async def test_you_cannot_pick_an_unmapped_owner_and_are_told_who_fixes_it(
    sandbox: Sandbox,
) -> None:
    view_id = await open_modal(sandbox, "Acme Corp 12k", user_id="U0DAVE")
    ack = await submit(sandbox, view_id)
    error = ack["errors"]["owner"]
    assert error.startswith("You have no Close account I can match.")
    assert "A Slack workspace admin can link them: `/opportunity link @dave" in error


# --- the users:read.email scope ---------------------------------------------------------


async def test_without_the_email_scope_overrides_still_work_and_it_is_logged_once(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.slack.scopes.discard("users:read.email")
    caplog.set_level(logging.WARNING, logger="bot.identity")

    alice = await command(sandbox, "whoami", user_id="U0ALICE")
    assert "the app lacks the users:read.email scope" in alice
    bob = await command(sandbox, "whoami", user_id="U0BOB")
    assert "A Slack admin can also add users:read.email" in bob

    await command(sandbox, "link <@U0ALICE|alice> alice@example.com", user_id="U0CAROL")
    view_id = await open_modal(sandbox, "Acme Corp 12k", user_id="U0ALICE")
    await submit(sandbox, view_id)
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["user_id"] == "user_alice"

    said = [r for r in caplog.records if "users:read.email" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert len(sandbox.slack.calls("users.info")) >= 3  # said once, not once per lookup


# --- the database cache -----------------------------------------------------------------


async def test_email_matches_survive_a_restart_while_close_and_slack_emails_are_away(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    async with running_sandbox(database_url=url, clock=frozen(now)) as sb:
        answer = await command(sb, "whoami", user_id="U0BOB")
        assert "*Bob Baker" in answer
        row = (await links(sb))["U0BOB"]
        assert row.expires_at is not None
        assert row.expires_at.replace(tzinfo=UTC) == now + timedelta(hours=24)

    # A fresh process: the catalog has not loaded (Close is not even asked) and Slack no
    # longer shows emails. The stored match still answers, until it expires.
    async with CloseSimulator(api_key=CLOSE_API_KEY) as close, SlackSimulator(BOT_TOKEN) as slack:
        slack.scopes.discard("users:read.email")
        settings = sandbox_settings(
            close_url=close.base_url, slack_url=slack.api_url, database_url=url
        )
        for later, mapped in ((timedelta(hours=23), True), (timedelta(hours=25), False)):
            services = Services.create(settings, clock=frozen(now + later))
            try:
                await create_schema(services.engine)
                mapping = await services.identity.close_user_for("U0BOB")
            finally:
                await services.stop()
            assert mapping.mapped is mapped, mapping
            if mapped:
                assert mapping.close_user is not None and mapping.close_user.id == "user_bob"
                assert "remembered" in mapping.reason
        assert close.requests == []


# --- scale: 1,000 Slack members, 200 Close users ----------------------------------------


def big_org(close_users: int = 200) -> Org:
    org = default_org()
    for i in range(close_users - len(org.users)):
        org.users.append(
            {"id": f"user_rep{i:03d}", "email": f"rep{i:03d}@example.com", "first_name": "Rep",
             "last_name": f"{i:03d}"}
        )  # fmt: skip
    return org


def big_workspace(members: int = 1000, matched: int = 196) -> Workspace:
    ws = default_workspace()
    people: list[SlackUser] = []
    for i in range(members - len(ws.users)):
        # Matching reps write their email in every case; the rest have no Close account.
        email = f"Rep{i:03d}@EXAMPLE.com" if i < matched else f"person{i}@personal.example"
        people.append(
            _person(f"U1{i:04d}", f"rep{i}", f"Rep {i:03d}", email, "UTC", "UTC", "en-US")
        )
    ws.users.extend(people)
    return ws


async def test_a_big_workspace_is_mapped_without_a_request_per_user_per_command(
    tmp_path: Path,
) -> None:
    close = CloseSimulator(api_key=CLOSE_API_KEY, org=big_org())
    slack = SlackSimulator(BOT_TOKEN, workspace=big_workspace())
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    async with running_sandbox(database_url=url, close=close, slack=slack) as sb:
        assert len(sb.services.catalog.users) == 200
        assert close.count("GET", "/user/") == 2  # two pages of 100: the catalog, once
        close.reset_requests()
        mark = slack.mark()

        reps = [f"U1{i:04d}" for i in range(0, 196, 10)]  # 20 people
        for _ in range(3):  # 60 commands
            for rep in reps:
                assert "matches the Close user Rep" in await command(sb, "whoami", user_id=rep)
        view_id = await open_modal(sb, "Acme Corp 12k", user_id=reps[0])
        await submit(sb, view_id, {"owner": "U10155"})
        [opportunity] = await wait_opportunities(sb, 1)
        assert opportunity["user_id"] == "user_rep155"

        since = slack.calls()[mark:]
        info = [c.params["user"] for c in since if c.method == "users.info"]
        # One users.info per person (not per command), and never a Close user listing.
        assert sorted(info) == sorted([*reps, "U10155"])
        assert not [c for c in since if c.method == "users.list"]
        assert close.count("GET", "/user/") == 0 and close.count("GET", "/organization/") == 0

        mark = slack.mark()
        coverage = await sb.services.identity.coverage()
        since = slack.calls()[mark:]
        users_calls = [c.method for c in since if c.method.startswith("users.")]
        assert users_calls == ["users.list"] * 5  # 1,000 members, 200 a page
        assert len(coverage.rows) == 1000 - 3  # bots and the deactivated account skipped
        assert len(coverage.mapped) == 196 + 3
        assert {r.profile.user_id for r in coverage.unmapped} >= {"U0DAVE", "U0GUEST", "U10196"}
        directory = [r.path for r in close.requests if r.path in ("/user/", "/me/")]
        assert directory == [] and close.count("GET", "/organization/") == 0


async def test_profile_lookups_are_shared_by_concurrent_callers(sandbox: Sandbox) -> None:
    identity: Identity = sandbox.services.identity
    mark = sandbox.slack.mark()
    found = await asyncio.gather(*(identity.close_user_for("U0CAROL") for _ in range(10)))
    assert all(m.close_user is not None and m.close_user.id == "user_carol" for m in found)
    assert len([c for c in sandbox.slack.calls()[mark:] if c.method == "users.info"]) == 1


def test_per_user_memories_stay_bounded_dropping_the_expired_then_the_oldest() -> None:
    memory: dict[str, tuple[float, str]] = {}
    for n, until in enumerate([5.0, 50.0, 50.0, 5.0]):
        remember_user(memory, f"U{n}", (until, f"profile {n}"), now=0.0, cap=4)
    remember_user(memory, "U1", (60.0, "profile 1 again"), now=0.0, cap=4)  # refreshed: newest
    assert list(memory) == ["U0", "U2", "U3", "U1"]
    # Over the cap at 10 s: the expired go (U0, U3).
    remember_user(memory, "U4", (70.0, "profile 4"), now=10.0, cap=4)
    assert list(memory) == ["U2", "U1", "U4"]
    # Over again with none expired: the longest unrefreshed go, down to 9/10 of the cap.
    remember_user(memory, "U5", (80.0, "profile 5"), now=10.0, cap=4)
    remember_user(memory, "U6", (80.0, "profile 6"), now=10.0, cap=4)
    assert list(memory) == ["U4", "U5", "U6"]
