"""The submissions table as a durable work queue: accept once, claim once, record the outcome."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Table,
    Update,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.deals import confirmation as confirmations
from bot.deals.confirmation import Confirmation, Part
from bot.deals.models import DealRequest, ReplyTarget, Submission, SubmissionState
from bot.jobs import NOW, ClaimSpec, DurableQueue
from bot.slack.gateway import MessageRef
from bot.store.db import insert_once, update_where
from bot.store.tables import SubmissionRow


class OpportunityTaken(Exception):
    """Another submission recorded this opportunity first (each is recorded by one at most)."""

    def __init__(self, opportunity_id: str) -> None:
        super().__init__(f"{opportunity_id} is recorded by another submission")
        self.opportunity_id = opportunity_id


class AuditEntry(Submission):
    """A submission as `python -m bot history` shows it: the worker's view plus the audit trail."""

    claimed_by: str | None = None
    queued_notice_at: datetime | None = None


def _columns(row: SubmissionRow) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in SubmissionRow.__table__.columns}


def _to_model(row: SubmissionRow) -> Submission:
    return Submission.model_validate(_columns(row))


# --- the hot path's statements, built once ------------------------------------------------
# Each flow runs these (claim, record_sent, record_created, mark_confirmed): as Core statements
# with bound parameters, SQLAlchemy compiles each once and only binds values after that (about
# a fifth of the CPU of building an ORM update per call).
_t = cast(Table, SubmissionRow.__table__)
_INSTANT = SubmissionRow.next_attempt_at.type


def _param(name: str, column: str | None = None) -> Any:
    return bindparam(name, type_=_t.c[column].type if column else _INSTANT)


_DUE = or_(
    and_(_t.c.state == SubmissionState.PENDING.value, _t.c.next_attempt_at <= NOW),
    and_(_t.c.state == SubmissionState.CREATING.value, _t.c.claimed_until < NOW),
    and_(
        _t.c.state == SubmissionState.CREATED.value,
        _t.c.confirmed_at.is_(None),
        _t.c.claimed_until < NOW,
    ),
)
# `_held` as bound parameters: the claim's holder (id, state, attempts: its fencing token).
_HELD = and_(
    _t.c.id == bindparam("h_id"),
    _t.c.state == bindparam("h_state"),
    _t.c.attempts == bindparam("h_attempts"),
)


def _held_update(*columns: str) -> Update:
    """UPDATE these columns (and updated_at) of the row `_HELD` names, values as `v_<column>`."""
    names = (*columns, "updated_at")
    return update(_t).where(_HELD).values({name: _param(f"v_{name}", name) for name in names})


_RECORD_SENT = _held_update("sent")
_RECORD_SENT_WITH_LEAD = _held_update("sent", "lead_id")
_RECORD_CREATED = _held_update("state", "lead_id", "opportunity_id", "response", "error")
_SET_NOTICE = (
    update(_t)
    .where(_t.c.id == bindparam("h_id"))
    .values(
        {name: _param(f"v_{name}", name) for name in (*confirmations.SUMMARY_COLUMNS, "updated_at")}
    )
)
# Confirmed, with where the confirmation lives (when this telling posted a thread): one write.
_MARK_CONFIRMED = _held_update("confirmed_at", "claimed_until")
_MARK_CONFIRMED_IN_THREAD = _held_update("confirmed_at", "claimed_until", *confirmations.COLUMNS)


def _held_params(
    submission: Submission, held_state: SubmissionState, now: datetime, values: dict[str, Any]
) -> dict[str, Any]:
    params = {f"v_{name}": value for name, value in values.items()}
    params.update(
        h_id=submission.id,
        h_state=held_state.value,
        h_attempts=submission.attempts,
        v_updated_at=now,
    )
    return params


def _held_until_told(submission: Submission) -> ColumnElement[bool]:
    """The claim of `submission`, creating or created, until the user is told (the fencing
    token alone says who holds it, whichever of the two states the row is in now)."""
    return and_(
        SubmissionRow.id == submission.id,
        SubmissionRow.attempts == submission.attempts,
        SubmissionRow.state.in_([SubmissionState.CREATING.value, SubmissionState.CREATED.value]),
        SubmissionRow.confirmed_at.is_(None),
    )


def _held(
    submission: Submission, state: SubmissionState = SubmissionState.CREATING
) -> ColumnElement[bool]:
    """Still claimed by whoever claimed `submission`: `attempts` is the claim's fencing token.

    Every claim bumps it, so a worker whose lease ran out (it stalled and another took over)
    cannot write over the new holder's work: each write of a worker is conditional on this.
    """
    return and_(
        SubmissionRow.id == submission.id,
        SubmissionRow.state == state.value,
        SubmissionRow.attempts == submission.attempts,
    )


# Due: pending with its next attempt reached; creating whose lease ran out (the worker that
# held it died); created in Close but never confirmed to the user, lease run out (it stays
# created: only the telling is left).
CLAIM = ClaimSpec(
    table=_t,
    key=_t.c.id,
    due=_DUE,
    order_by=(_t.c.next_attempt_at,),
    carry=(_t.c.state,),
    sets={
        "state": case(
            (_t.c.state == SubmissionState.CREATED.value, SubmissionState.CREATED.value),
            else_=SubmissionState.CREATING.value,
        ),
        "first_attempt_at": func.coalesce(_t.c.first_attempt_at, NOW),
        "updated_at": NOW,
    },
    # The claim outlives `record_created` (it is kept until the user is told), so whichever of
    # the two states the row is in now, the fencing token alone says who holds it.
    held=_held_until_told,
    touch=True,
)


def _claimed(row: Row[Any], candidate: Any) -> Submission:
    # Taken over from a worker whose lease ran out mid-create (crashed, or stalled with its
    # request perhaps still on the way to Close).
    taken_over = candidate is not None and candidate[1] == SubmissionState.CREATING.value
    return Submission.model_validate({**row._mapping, "taken_over": taken_over})


class SubmissionStore(DurableQueue[Submission]):
    """The submissions: a durable queue of deals to create (claimed through `CLAIM`)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        dialect: str,
        on_accepted: Callable[[Submission], None] | None = None,
    ) -> None:
        super().__init__(sessions, dialect=dialect, spec=CLAIM, load=_claimed)
        # Told of each new submission once stored (Services: the preferences' write-through).
        self.on_accepted = on_accepted

    async def accept(
        self,
        *,
        idempotency_key: str,
        request: DealRequest,
        reply_to: ReplyTarget,
        slack_user_id: str,
        team_id: str | None,
        now: datetime,
    ) -> tuple[Submission, bool]:
        """Store a submission before the ack. Returns (submission, True) the first time the key
        is seen and (the existing one, False) for a double tap, a re-sent request, or the same
        request reaching another instance: the unique key decides, whoever commits first."""
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "idempotency_key": idempotency_key,
            "state": SubmissionState.PENDING.value,
            "team_id": team_id,
            "slack_user_id": slack_user_id,
            "request": request.model_dump(mode="json"),
            "reply_to": reply_to.model_dump(mode="json"),
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        submission, is_new = await insert_once(
            self._writer,
            _t,
            values,
            Submission.model_validate,
            lambda: self.by_key(idempotency_key),
        )
        if is_new and self.on_accepted is not None:
            self.on_accepted(submission)
        return submission, is_new

    async def by_key(self, idempotency_key: str) -> Submission | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(SubmissionRow).where(SubmissionRow.idempotency_key == idempotency_key)
            )
            return _to_model(row) if row else None

    async def get(self, submission_id: str) -> Submission | None:
        async with self._sessions() as session:
            row = await session.get(SubmissionRow, submission_id)
            return _to_model(row) if row else None

    async def audit(self, submission_id: str) -> AuditEntry | None:
        async with self._sessions() as session:
            row = await session.get(SubmissionRow, submission_id)
            return AuditEntry.model_validate(_columns(row)) if row else None

    async def _held_write(
        self,
        statement: Update,
        submission: Submission,
        now: datetime,
        held_state: SubmissionState = SubmissionState.CREATING,
        **values: Any,
    ) -> bool:
        """One of the prebuilt `_held_update`s: False if the claim is no longer ours."""
        params = _held_params(submission, held_state, now, values)

        def write(connection: Connection) -> bool:
            return bool(connection.execute(statement, params).rowcount)

        return await self._writer.run_core(write, one_statement=True)

    async def _update(self, where: ColumnElement[bool], now: datetime, **values: Any) -> bool:
        return await update_where(self._writer, SubmissionRow, where, updated_at=now, **values)

    # --- writes of the worker holding the claim (False: the claim was lost) -------------

    async def hand_back(self, submission: Submission, *, now: datetime) -> bool:
        """Give a claim back at shutdown, so another worker takes the submission at once
        rather than after the lease. False when it is no longer ours (or already done).

        Not yet in Close (creating): pending again, due now; the claim's `attempts` stays
        counted, so the next attempt looks in Close before sending, in case this one's request
        got there. Created but not yet told (created): left created, its claim expired, so the
        next worker only does the telling.
        """
        held = _held_until_told(submission)
        creating = SubmissionRow.state == SubmissionState.CREATING.value
        at = literal(now, SubmissionRow.claimed_until.type)  # typed: stored like every instant
        return await self._update(
            held,
            now,
            state=case(
                (creating, SubmissionState.PENDING.value), else_=SubmissionState.CREATED.value
            ),
            next_attempt_at=case((creating, at), else_=SubmissionRow.next_attempt_at),
            # claim_due takes a created one whose claim ran out (`claimed_until < now`).
            claimed_until=case((creating, literal(None, at.type)), else_=at),
            claimed_by=None,
        )

    async def set_lead(self, submission: Submission, lead_id: str, *, now: datetime) -> bool:
        return await self._update(_held(submission), now, lead_id=lead_id)

    async def record_sent(
        self,
        submission: Submission,
        sent: dict[str, Any],
        *,
        now: datetime,
        lead_id: str | None = None,
    ) -> bool:
        """Audit the exact request before it goes out (and check the claim is still ours).

        `lead_id`: the lead this attempt just created for it, recorded in the same write
        (`set_lead` otherwise), so a later attempt reuses it instead of creating another.
        """
        if lead_id is not None:
            return await self._held_write(
                _RECORD_SENT_WITH_LEAD, submission, now, sent=sent, lead_id=lead_id
            )
        return await self._held_write(_RECORD_SENT, submission, now, sent=sent)

    async def record_created(
        self,
        submission: Submission,
        *,
        lead_id: str,
        opportunity_id: str,
        response: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Close has it: recorded before anyone is told, so a crash cannot create it twice.

        The claim is kept until the user is told (`mark_confirmed`); if this process dies
        first, the lease runs out and another worker only does the telling. Raises
        OpportunityTaken when another submission recorded `opportunity_id` already (the unique
        index says so).
        """
        try:
            return await self._held_write(
                _RECORD_CREATED,
                submission,
                now,
                state=SubmissionState.CREATED.value,
                lead_id=lead_id,
                opportunity_id=opportunity_id,
                response=response,
                error=None,
            )
        except IntegrityError as error:
            raise OpportunityTaken(opportunity_id) from error

    async def mark_confirmed(
        self,
        submission: Submission,
        *,
        now: datetime,
        confirmation: Confirmation | None = None,
    ) -> bool:
        """The user was told: done. Where the `confirmation` lives (when this telling posted a
        thread, where changes are told later) is recorded in the same write."""
        values: dict[str, Any] = {"confirmed_at": now, "claimed_until": None}
        statement = _MARK_CONFIRMED
        if confirmation is not None and confirmation.thread is not None:
            statement = _MARK_CONFIRMED_IN_THREAD
            values.update(confirmation.columns())
        return await self._held_write(statement, submission, now, SubmissionState.CREATED, **values)

    async def retry_at(
        self, submission: Submission, *, at: datetime, error: str, now: datetime
    ) -> bool:
        """Not done yet: pending again, due at `at`."""
        return await self._update(
            _held(submission),
            now,
            state=SubmissionState.PENDING.value,
            next_attempt_at=at,
            error=error,
            claimed_until=None,
        )

    async def due_now(self, slack_user_id: str, *, waiting: str, now: datetime) -> int:
        """The person's pending submissions whose `error` begins with `waiting` (what they
        wait for has happened): due at once rather than at their `next_attempt_at`. How many."""
        statement = (
            update(_t)
            .where(
                _t.c.slack_user_id == slack_user_id,
                _t.c.state == SubmissionState.PENDING.value,
                _t.c.next_attempt_at > now,
                _t.c.error.startswith(waiting, autoescape=True),
            )
            .values(next_attempt_at=now, updated_at=now)
        )

        def write(connection: Connection) -> int:
            return int(connection.execute(statement).rowcount)

        return await self._writer.run_core(write, one_statement=True)

    async def mark_failed(
        self,
        submission: Submission,
        *,
        error: str,
        response: dict[str, Any] | None,
        now: datetime,
    ) -> bool:
        return await self._update(
            _held(submission),
            now,
            state=SubmissionState.FAILED.value,
            error=error,
            response=response,
            claimed_until=None,
        )

    # --- notices ------------------------------------------------------------------------

    async def claim_queued_notice(self, submission: Submission, *, now: datetime) -> bool:
        """True exactly once per submission: whoever gets it posts "Queued"."""
        return await self._update(
            and_(_held(submission), SubmissionRow.queued_notice_at.is_(None)),
            now,
            queued_notice_at=now,
        )

    async def set_notice(self, submission_id: str, summary: MessageRef, *, now: datetime) -> None:
        """Where the summary (or the "Queued" it replaces) was posted, stored as soon as it is:
        whoever tells the outcome later updates it in place."""
        params = {
            "h_id": submission_id,
            **{
                f"v_{name}": value for name, value in confirmations.summary_columns(summary).items()
            },
            "v_updated_at": now,
        }

        def write(connection: Connection) -> None:
            connection.execute(_SET_NOTICE, params)

        await self._writer.run_core(write, one_statement=True)

    async def forget_message(self, submission_id: str, part: Part, *, now: datetime) -> None:
        """A part of the confirmation Slack says is gone (deleted, channel left): stop touching it."""
        await self._update(SubmissionRow.id == submission_id, now, **confirmations.forgotten(part))

    # --- reads --------------------------------------------------------------------------

    async def by_opportunity(self, opportunity_id: str) -> Submission | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(SubmissionRow).where(SubmissionRow.opportunity_id == opportunity_id).limit(1)
            )
            return _to_model(row) if row else None

    async def creating_since(self, since: datetime) -> bool:
        """Whether a submission may be reaching Close right now (its opportunity unknown yet)."""
        async with self._sessions() as session:
            found = await session.scalar(
                select(SubmissionRow.id)
                .where(
                    or_(
                        SubmissionRow.state == SubmissionState.CREATING.value,
                        and_(
                            SubmissionRow.state == SubmissionState.CREATED.value,
                            SubmissionRow.confirmed_at.is_(None),
                        ),
                    ),
                    SubmissionRow.updated_at >= since,
                )
                .limit(1)
            )
            return found is not None

    async def recorded_elsewhere(
        self, opportunity_ids: Iterable[str], *, excluding: str
    ) -> set[str]:
        """Which of these opportunities other submissions already own (reconcile skips them)."""
        ids = list(opportunity_ids)
        if not ids:
            return set()
        async with self._sessions() as session:
            found = await session.scalars(
                select(SubmissionRow.opportunity_id).where(
                    SubmissionRow.opportunity_id.in_(ids), SubmissionRow.id != excluding
                )
            )
            return {value for value in found.all() if value}

    async def recent(
        self, *, slack_user_id: str | None = None, limit: int = 20
    ) -> Sequence[AuditEntry]:
        async with self._sessions() as session:
            query = select(SubmissionRow).order_by(SubmissionRow.created_at.desc()).limit(limit)
            if slack_user_id:
                query = query.where(SubmissionRow.slack_user_id == slack_user_id)
            rows = (await session.scalars(query)).all()
            return [AuditEntry.model_validate(_columns(row)) for row in rows]
