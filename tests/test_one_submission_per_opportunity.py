"""One opportunity is recorded by one submission at most, on SQLite and PostgreSQL (when
TEST_DATABASE_URL is set), with the schema as the migrations make it: two identical submissions
that both reconcile with the same opportunity in Close cannot both take it (one deal would be
lost); a database that already holds such a pair migrates without the unique index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.deals.models import DealRequest, LeadChoice, ReplyTarget
from bot.deals.store import OpportunityTaken, SubmissionStore
from bot.store.db import create_engine, session_factory
from bot.store.migrate import upgrade

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade(database_url)
    made = create_engine(database_url)
    yield made
    await made.dispose()


async def accept_two_identical(store: SubmissionStore) -> None:
    for key in ("first", "second"):
        await store.accept(
            idempotency_key=key,
            request=DealRequest(lead=LeadChoice(id="lead_acme"), lead_name="Acme", value=100),
            reply_to=ReplyTarget(user_id="U0ALICE"),
            slack_user_id="U0ALICE",
            team_id=None,
            now=NOW,
        )


async def test_the_second_submission_to_record_an_opportunity_is_refused(
    engine: AsyncEngine,
) -> None:
    store = SubmissionStore(session_factory(engine), dialect=engine.dialect.name)
    await accept_two_identical(store)
    first, second = await store.claim_due(now=NOW, lease=LEASE, limit=2, owner="a")
    assert await store.record_created(
        first, lead_id="lead_acme", opportunity_id="oppo_1", response={}, now=NOW
    )
    with pytest.raises(OpportunityTaken):
        await store.record_created(
            second, lead_id="lead_acme", opportunity_id="oppo_1", response={}, now=NOW
        )
    # The refused one is still its holder's to finish: it records its own deal.
    assert await store.record_created(
        second, lead_id="lead_acme", opportunity_id="oppo_2", response={}, now=NOW
    )
    assert await store.recorded_elsewhere(["oppo_1", "oppo_2"], excluding=second.id) == {"oppo_1"}


async def test_a_database_already_holding_a_shared_opportunity_keeps_a_plain_index(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    await upgrade(url, revision="0008")
    engine = create_engine(url)
    try:
        store = SubmissionStore(session_factory(engine), dialect="sqlite")
        await accept_two_identical(store)
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE submissions SET opportunity_id = 'oppo_1'"))
        await upgrade(url)  # warns and goes on: nothing to fix by itself, nothing lost

        async with engine.connect() as connection:
            indexes = await connection.run_sync(
                lambda sync: inspect(sync).get_indexes("submissions")
            )
        [index] = [i for i in indexes if i["name"] == "ix_submissions_opportunity"]
        assert not index["unique"]
    finally:
        await engine.dispose()
