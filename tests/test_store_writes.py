"""The store's write path: claims renewed after `record_created`, the writer across dispose."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.deals.models import DealRequest, LeadChoice, ReplyTarget, SubmissionState
from bot.store.db import create_engine, session_factory
from bot.store.migrate import upgrade
from bot.store.submissions import SubmissionStore


def _request() -> DealRequest:
    return DealRequest(lead=LeadChoice(id="lead_acme"), lead_name="Acme", value=100)


async def _accept(store: SubmissionStore, key: str, now: datetime) -> None:
    await store.accept(
        idempotency_key=key,
        request=_request(),
        reply_to=ReplyTarget(user_id="U0ALICE"),
        slack_user_id="U0ALICE",
        team_id=None,
        now=now,
    )


async def test_a_claim_is_renewed_while_telling_the_user_and_only_by_its_holder(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'renew.sqlite3'}")
    await upgrade(engine)
    store = SubmissionStore(session_factory(engine), dialect="sqlite")
    now = datetime.now(UTC)
    lease = timedelta(seconds=1)
    try:
        await _accept(store, "k1", now)
        [held] = await store.claim_due(now=now, lease=lease, owner="a")
        assert await store.record_created(
            held, lead_id="lead_acme", opportunity_id="oppo_1", response={}, now=now
        )
        # Created, not yet told: the holder keeps renewing, so nobody else tells it too.
        later = now + timedelta(seconds=0.8)
        assert await store.renew(held, now=later, lease=lease)
        assert await store.claim_due(now=later + timedelta(seconds=0.5), lease=lease) == []
        # Lease run out: another worker takes it over; the old holder's renewal is refused.
        much_later = later + timedelta(seconds=2)
        [taken] = await store.claim_due(now=much_later, lease=lease, owner="b")
        assert taken.state == SubmissionState.CREATED
        assert not await store.renew(held, now=much_later, lease=lease)
        assert await store.renew(taken, now=much_later, lease=lease)
        assert await store.mark_confirmed(taken, now=much_later)
        assert not await store.renew(taken, now=much_later, lease=lease)  # done: nothing to hold
    finally:
        await engine.dispose()


async def test_writes_go_on_after_the_engine_is_disposed_and_a_burst_all_lands(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'writer.sqlite3'}")
    await upgrade(engine)
    store = SubmissionStore(session_factory(engine), dialect="sqlite")
    now = datetime.now(UTC)
    try:
        await asyncio.gather(*(_accept(store, f"k{n}", now) for n in range(50)))
        await engine.dispose()  # stops the writer thread; the next write starts it again
        await _accept(store, "after", now)
        # A double tap of one key stays one row, whichever press commits first.
        results = await asyncio.gather(*(
            store.accept(
                idempotency_key="tap",
                request=_request(),
                reply_to=ReplyTarget(user_id="U0ALICE"),
                slack_user_id="U0ALICE",
                team_id=None,
                now=now,
            )
            for _ in range(5)
        ))  # fmt: skip
        assert sorted(is_new for _, is_new in results) == [False] * 4 + [True]
        assert len({submission.id for submission, _ in results}) == 1
        assert len(await store.recent(limit=100)) == 52
    finally:
        await engine.dispose()
