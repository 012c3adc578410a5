"""The Close -> Slack tables: a durable queue of changes, opportunities as shown, sync state."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Row,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from bot.jobs import NOW, ClaimSpec, DurableQueue
from bot.store.db import dialect_insert, update_where
from bot.store.tables import CloseEventRow, OpportunityViewRow, SubmissionRow, SyncStateRow
from bot.sync.events import CloseEvent, parse_close_time, same_data


class ChangeState(StrEnum):
    PENDING = "pending"  # received, not yet looked at
    APPLYING = "applying"  # claimed by a worker
    TELLING = "telling"  # the new state is recorded; Slack is being told (resumable)
    APPLIED = "applied"
    SKIPPED = "skipped"  # nothing to tell (older, not ours, already shown…): `outcome` says why


OPEN_STATES = (ChangeState.PENDING.value, ChangeState.APPLYING.value, ChangeState.TELLING.value)


class StoredChange(BaseModel):
    """A received change as the worker holds it; `attempts` fences the claim."""

    id: str
    event: CloseEvent
    source: str
    state: ChangeState
    progress: dict[str, Any]
    outcome: str | None = None
    attempts: int
    received_at: datetime
    applied_at: datetime | None = None


class OpportunityView(BaseModel):
    opportunity_id: str
    submission_id: str | None = None
    shown: dict[str, Any] | None = None
    version: datetime | None = None
    deleted_at: datetime | None = None
    won_announced_at: datetime | None = None
    writing_until: datetime | None = None


def _change(row: CloseEventRow | Row[Any]) -> StoredChange:
    return StoredChange(
        id=row.id,
        event=CloseEvent.model_validate(row.event),
        source=row.source,
        state=ChangeState(row.state),
        progress=dict(row.progress or {}),
        outcome=row.outcome,
        attempts=row.attempts,
        received_at=row.received_at,
        applied_at=row.applied_at,
    )


def _view(row: OpportunityViewRow) -> OpportunityView:
    return OpportunityView.model_validate(
        {column.key: getattr(row, column.key) for column in OpportunityViewRow.__table__.columns}
    )


def _held(change: StoredChange) -> ColumnElement[bool]:
    return and_(
        CloseEventRow.id == change.id,
        CloseEventRow.attempts == change.attempts,
        CloseEventRow.state.in_([ChangeState.APPLYING.value, ChangeState.TELLING.value]),
    )


_t = cast(Table, CloseEventRow.__table__)
_other = _t.alias("other")
_HOLDING = (ChangeState.APPLYING.value, ChangeState.TELLING.value)
# Oldest first, at most one per opportunity and none of an opportunity whose earlier change
# another worker is still applying.
CLAIM = ClaimSpec(
    table=_t,
    key=_t.c.id,
    due=or_(
        and_(_t.c.state == ChangeState.PENDING.value, _t.c.next_attempt_at <= NOW),
        and_(
            _t.c.state.in_(_HOLDING),
            or_(_t.c.claimed_until.is_(None), _t.c.claimed_until < NOW),
            _t.c.next_attempt_at <= NOW,
        ),
    ),
    choose=(
        # One change of an opportunity at a time: the summary must not be told out of order.
        ~exists().where(
            _other.c.object_id == _t.c.object_id,
            _other.c.id != _t.c.id,
            or_(
                _other.c.state == ChangeState.TELLING.value,
                and_(_other.c.state == ChangeState.APPLYING.value, _other.c.claimed_until >= NOW),
            ),
        ),
        # Only an opportunity's oldest open change may go: several processes then tell its
        # changes one by one, in Close's order (a late older one is skipped when its turn comes).
        ~exists().where(
            _other.c.object_id == _t.c.object_id,
            _other.c.id != _t.c.id,
            _other.c.state.in_(OPEN_STATES),
            or_(
                _other.c.event_updated_at < _t.c.event_updated_at,
                and_(
                    _other.c.event_updated_at == _t.c.event_updated_at,
                    _other.c.received_at < _t.c.received_at,
                ),
            ),
        ),
    ),
    order_by=(_t.c.event_updated_at, _t.c.received_at),
    one_per=_t.c.object_id,
    overfetch=4,
    sets={
        "state": case(
            (_t.c.state == ChangeState.PENDING.value, ChangeState.APPLYING.value),
            else_=_t.c.state,
        )
    },
    held=_held,
)


class ChangeStore(DurableQueue[StoredChange]):
    """Changes received from Close: a durable queue of changes to tell (claimed through
    `CLAIM`), the opportunities as Slack shows them, and the sync's own state."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        super().__init__(sessions, dialect=dialect, spec=CLAIM, load=lambda row, _: _change(row))

    # --- receiving ------------------------------------------------------------------

    async def add(self, events: Sequence[CloseEvent], *, source: str, now: datetime) -> int:
        """Store events not seen before (by id and `date_updated`); returns how many were new.

        The echo of the app's own create (its `created` event, carrying no state newer than
        Close's answer to our POST) is not stored: applied, it would only be skipped as "not
        newer than what Slack shows", after six transactions — ~2.5 ms of every flow's CPU at
        50 flows/s. A `created` event Close merged later changes into is newer: it is kept.
        """
        unique = list({(e.id, e.updated_at): e for e in events}.values())
        created = _created_versions(unique)
        rows = [
            {
                "id": str(uuid.uuid4()),
                "event_id": event.id,
                "event_updated_at": event.updated_at,
                "object_id": event.object_id,
                "action": event.action,
                "source": source,
                "event": event.model_dump(mode="json"),
                "state": ChangeState.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "received_at": now,
            }
            for event in unique
        ]
        if not rows:
            return 0
        insert = dialect_insert(self._dialect)

        def write(session: Session) -> int:
            echoes = _own_creates(session, created) if created else set()
            kept = [row for row in rows if (row["event_id"], row["object_id"]) not in echoes]
            if not kept:
                return 0
            statement = (
                insert(CloseEventRow)
                .values(kept)
                .on_conflict_do_nothing(index_elements=["event_id", "event_updated_at"])
            )
            return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]

        return await self._writer.run(write, urgent=source == "webhook")

    # --- the worker's side ----------------------------------------------------------

    async def _update(self, where: ColumnElement[bool], **values: Any) -> bool:
        return await update_where(self._writer, CloseEventRow, where, **values)

    async def finish(
        self, change: StoredChange, state: ChangeState, outcome: str, *, now: datetime
    ) -> bool:
        return await self._update(
            _held(change), state=state.value, outcome=outcome, applied_at=now, claimed_until=None
        )

    async def retry_at(
        self, change: StoredChange, *, at: datetime, error: str, now: datetime
    ) -> bool:
        """Give the change back, to be claimed again at `at` (its progress is kept); `error`
        is recorded as its outcome so far."""
        return await self._update(
            _held(change),
            state=_back_state(),
            next_attempt_at=at,
            outcome=error,
            claimed_until=None,
        )

    async def hand_back(self, change: StoredChange, *, now: datetime) -> bool:
        """Given back at shutdown: due again at once, elsewhere (it resumes at its next step)."""
        return await self.retry_at(change, at=now, error="handed back at shutdown", now=now)

    async def mark_step(self, change: StoredChange, step: str) -> bool:
        """Record that one step of telling Slack is done, so a retry does not repeat it."""
        change.progress[step] = True
        return await self._update(_held(change), progress=dict(change.progress))

    async def begin_telling(
        self,
        change: StoredChange,
        *,
        opportunity_id: str,
        expected_version: datetime | None,
        expected_deleted: bool,
        shown: dict[str, Any] | None,
        version: datetime | None,
        deleted_at: datetime | None,
        progress: dict[str, Any],
        now: datetime,
    ) -> bool:
        """In one transaction: move the opportunity's shown state on (only if nobody else did
        since it was read: compare-and-set on `version`) and hand the change to telling.

        False when another change got there first: read again and work out the difference anew.
        """
        same_version = (
            OpportunityViewRow.version.is_(None)
            if expected_version is None
            else OpportunityViewRow.version == expected_version
        )
        same_deleted = (
            OpportunityViewRow.deleted_at.is_not(None)
            if expected_deleted
            else OpportunityViewRow.deleted_at.is_(None)
        )
        move = (
            update(OpportunityViewRow)
            .where(
                OpportunityViewRow.opportunity_id == opportunity_id,
                same_version,
                same_deleted,
            )
            .values(shown=shown, version=version, deleted_at=deleted_at, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        hand_over = (
            update(CloseEventRow)
            .where(_held(change))
            .values(state=ChangeState.TELLING.value, progress=progress)
            .execution_options(synchronize_session=False)
        )

        def write(session: Session) -> bool:
            if not session.execute(move).rowcount:  # type: ignore[attr-defined]
                return False
            if not session.execute(hand_over).rowcount:  # type: ignore[attr-defined]
                session.rollback()
                return False
            return True

        ok = await self._writer.run(write)
        if ok:
            change.progress = dict(progress)
            change.state = ChangeState.TELLING
        return ok

    # --- opportunities as shown ------------------------------------------------------

    async def view(self, opportunity_id: str) -> OpportunityView | None:
        async with self._sessions() as session:
            row = await session.get(OpportunityViewRow, opportunity_id)
            return _view(row) if row else None

    async def views(self, opportunity_ids: Sequence[str]) -> dict[str, OpportunityView]:
        if not opportunity_ids:
            return {}
        async with self._sessions() as session:
            rows = await session.scalars(
                select(OpportunityViewRow).where(
                    OpportunityViewRow.opportunity_id.in_(list(opportunity_ids))
                )
            )
            return {row.opportunity_id: _view(row) for row in rows.all()}

    async def ensure_view(
        self,
        opportunity_id: str,
        *,
        submission_id: str | None,
        shown: dict[str, Any] | None,
        version: datetime | None,
        now: datetime,
    ) -> OpportunityView:
        """The opportunity's view, created from what Slack shows now if there is none yet."""
        insert = dialect_insert(self._dialect)
        statement = (
            insert(OpportunityViewRow)
            .values(
                opportunity_id=opportunity_id,
                submission_id=submission_id,
                shown=shown,
                version=version,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["opportunity_id"])
        )

        def write(session: Session) -> OpportunityView:
            session.execute(statement)
            row = session.get(OpportunityViewRow, opportunity_id)
            assert row is not None
            if row.submission_id is None and submission_id is not None:
                # Known so far only for a win announced (not yet as the app's own deal).
                row.submission_id = submission_id
                row.shown = shown if row.shown is None else row.shown
                row.version = version if row.version is None else row.version
            return _view(row)

        return await self._writer.run(write)

    async def set_writing(
        self, opportunity_id: str, until: datetime | None, *, now: datetime
    ) -> None:
        """The app is about to write to Close itself (its event must wait), or is done."""
        await self._update_view(opportunity_id, now, writing_until=until)

    async def record_own_write(
        self,
        opportunity_id: str,
        *,
        submission_id: str | None,
        shown: dict[str, Any],
        version: datetime | None,
        now: datetime,
    ) -> None:
        """What the app's own Edit/Won/Lost made of the opportunity: Slack shows it already,
        so its event (older or equal) tells nothing twice. Never moves the view backwards."""
        await self.ensure_view(
            opportunity_id, submission_id=submission_id, shown=shown, version=version, now=now
        )
        newer = (
            OpportunityViewRow.version.is_(None)
            if version is None
            else or_(OpportunityViewRow.version.is_(None), OpportunityViewRow.version < version)
        )
        statement = (
            update(OpportunityViewRow)
            .where(OpportunityViewRow.opportunity_id == opportunity_id, newer)
            .values(shown=shown, version=version, writing_until=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )

        def write(session: Session) -> None:
            session.execute(statement)

        await self._writer.run(write)
        await self.set_writing(opportunity_id, None, now=now)

    async def claim_won_announcement(self, opportunity_id: str, *, now: datetime) -> bool:
        """True once per opportunity: whoever gets it announces the win."""
        await self.ensure_view(
            opportunity_id, submission_id=None, shown=None, version=None, now=now
        )
        return await self._update_view(
            opportunity_id,
            now,
            _where=OpportunityViewRow.won_announced_at.is_(None),
            won_announced_at=now,
        )

    async def release_won_announcement(self, opportunity_id: str, *, now: datetime) -> None:
        """The announcement did not go out: let the next attempt claim it again."""
        await self._update_view(opportunity_id, now, won_announced_at=None)

    async def _update_view(
        self,
        opportunity_id: str,
        now: datetime,
        *,
        _where: ColumnElement[bool] | None = None,
        **values: Any,
    ) -> bool:
        where = OpportunityViewRow.opportunity_id == opportunity_id
        if _where is not None:
            where = and_(where, _where)
        return await update_where(self._writer, OpportunityViewRow, where, updated_at=now, **values)

    # --- sync state and leases --------------------------------------------------------

    async def get_state(self, key: str) -> dict[str, Any] | None:
        async with self._sessions() as session:
            row = await session.get(SyncStateRow, key)
            return dict(row.value) if row and row.value is not None else None

    async def put_state(self, key: str, value: dict[str, Any], *, now: datetime) -> None:
        await self._ensure_state(key, now)
        statement = (
            update(SyncStateRow)
            .where(SyncStateRow.key == key)
            .values(value=value, updated_at=now)
            .execution_options(synchronize_session=False)
        )

        def write(session: Session) -> None:
            session.execute(statement)

        await self._writer.run(write)

    async def acquire(self, key: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """A lease on `key` (one poller, one subscription setup at a time across processes);
        renewing one's own lease succeeds, taking an expired one too."""
        await self._ensure_state(key, now)
        free = or_(
            SyncStateRow.holder.is_(None),
            SyncStateRow.holder == holder,
            SyncStateRow.held_until.is_(None),
            SyncStateRow.held_until < now,
        )
        statement = (
            update(SyncStateRow)
            .where(SyncStateRow.key == key, free)
            .values(holder=holder, held_until=now + ttl, updated_at=now)
            .execution_options(synchronize_session=False)
        )

        def write(session: Session) -> bool:
            return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]

        return await self._writer.run(write)

    async def release(self, key: str, holder: str, *, now: datetime) -> None:
        statement = (
            update(SyncStateRow)
            .where(SyncStateRow.key == key, SyncStateRow.holder == holder)
            .values(holder=None, held_until=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )

        def write(session: Session) -> None:
            session.execute(statement)

        await self._writer.run(write)

    async def _ensure_state(self, key: str, now: datetime) -> None:
        insert = dialect_insert(self._dialect)
        statement = (
            insert(SyncStateRow)
            .values(key=key, updated_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )

        def write(session: Session) -> None:
            session.execute(statement)

        await self._writer.run(write)

    async def prune(self, *, before: datetime) -> int:
        """Forget changes finished before `before` (Close redelivers for 72 h at most)."""
        statement = (
            delete(CloseEventRow)
            .where(
                CloseEventRow.state.in_([ChangeState.APPLIED.value, ChangeState.SKIPPED.value]),
                CloseEventRow.applied_at < before,
            )
            .execution_options(synchronize_session=False)
        )

        def write(session: Session) -> int:
            return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]

        return await self._writer.run(write)

    # --- reads for doctor and history ---------------------------------------------------

    async def last_applied(self) -> StoredChange | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(CloseEventRow)
                .where(CloseEventRow.state == ChangeState.APPLIED.value)
                .order_by(CloseEventRow.applied_at.desc())
                .limit(1)
            )
            return _change(row) if row else None

    async def counts(self) -> dict[str, int]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(CloseEventRow.state, func.count()).group_by(CloseEventRow.state)
            )
            return {state: int(count) for state, count in rows.all()}

    async def for_opportunities(
        self, opportunity_ids: Sequence[str], *, limit: int = 20
    ) -> dict[str, list[StoredChange]]:
        """Changes applied to these opportunities, oldest first (at most `limit` each)."""
        if not opportunity_ids:
            return {}
        async with self._sessions() as session:
            rows = await session.scalars(
                select(CloseEventRow)
                .where(
                    CloseEventRow.object_id.in_(list(opportunity_ids)),
                    CloseEventRow.state == ChangeState.APPLIED.value,
                )
                .order_by(CloseEventRow.event_updated_at)
            )
            found: dict[str, list[StoredChange]] = {}
            for row in rows.all():
                found.setdefault(row.object_id, []).append(_change(row))
            return {key: changes[-limit:] for key, changes in found.items()}


def _back_state() -> Any:
    """A change given back stays `telling` if it got that far (its new state is recorded),
    else it is pending again."""
    return case(
        (CloseEventRow.state == ChangeState.TELLING.value, ChangeState.TELLING.value),
        else_=ChangeState.PENDING.value,
    )


def _created_versions(events: Sequence[CloseEvent]) -> dict[tuple[str, str], CloseEvent]:
    """`created` events of opportunities that carry their state, by (event id, opportunity id)."""
    versions = {}
    for event in events:
        if event.action != "created" or event.object_type != "opportunity" or not event.data:
            continue
        if parse_close_time(str(event.data.get("date_updated") or "")) is not None:
            versions[(event.id, event.object_id)] = event
    return versions


def _own_creates(
    session: Session, created: dict[tuple[str, str], CloseEvent]
) -> set[tuple[str, str]]:
    """Which of `created` are echoes of the app's own creates: an opportunity a submission
    recorded, in a state older than Close's answer to that submission's POST, or stamped
    alike and holding the same data (stamped alike with other data, it is kept: the applier
    asks Close which is current)."""
    chosen = select(SubmissionRow.opportunity_id, SubmissionRow.response).where(
        SubmissionRow.opportunity_id.in_({object_id for _, object_id in created})
    )
    answered = {object_id: response for object_id, response in session.execute(chosen)}
    echoes = set()
    for (event_id, object_id), event in created.items():
        response = answered.get(object_id)
        if not isinstance(response, dict):
            continue
        ours = parse_close_time(str(response.get("date_updated") or ""))
        version = parse_close_time(str((event.data or {}).get("date_updated") or ""))
        if ours is None or version is None or version > ours:
            continue
        if version < ours or same_data(event.data, response):
            echoes.add((event_id, object_id))
    return echoes
