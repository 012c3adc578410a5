"""Applies a stored Close change to Slack: the summary updated in place, one thread reply, the
details' buttons, the deals channel — exactly once, never rolling back to an older state."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.blocks.changes import close_change_message, describe_changes
from bot.blocks.text import escape
from bot.close.catalog import Catalog
from bot.close.client import CloseClient, parse_opportunity
from bot.close.errors import CloseError, CloseNotFound
from bot.close.models import Opportunity
from bot.deals.announce import Announcer, won_announcement
from bot.deals.confirmation import Confirmation, Part
from bot.deals.store import SubmissionStore
from bot.deals.telling import Act, ChangeTeller, ChangeTold, Step
from bot.jobs import Backoff, LostClaim
from bot.slack.errors import Gone, NotAllowed, RateLimited, SlackError
from bot.slack.gateway import SlackGateway
from bot.sync.events import CloseEvent, parse_close_time, read_opportunity, same_data
from bot.sync.store import ChangeState, ChangeStore, OpportunityView, StoredChange

log = logging.getLogger(__name__)

# While the app's own Edit/Won/Lost is on its way to Close, its event waits this long between looks.
OWN_WRITE_RECHECK = timedelta(seconds=1)
# An opportunity unknown here may be one a submission is creating right now: wait for it a bit.
CREATING_WINDOW = timedelta(minutes=2)
CREATING_PATIENCE = 20  # looks, a fifth of a second more apart each (up to 2 s): ~30 s in all
# A step that keeps failing for another reason is given up after this many attempts, retried
# on this schedule until then.
MAX_ATTEMPTS = 8
BACKOFF = Backoff(base_seconds=0.5, max_seconds=60.0)
AUTOMATION = "An automation"


class Retry(Exception):
    """Give the change back, to be tried again after `seconds`."""

    def __init__(self, seconds: float, why: str) -> None:
        super().__init__(why)
        self.seconds = seconds
        self.why = why


class ChangeApplier:
    def __init__(
        self,
        *,
        store: ChangeStore,
        submissions: SubmissionStore,
        close: CloseClient,
        catalog: Catalog,
        slack: SlackGateway,
        announcer: Announcer,
        close_app_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_finished: Callable[[StoredChange, ChangeState], None] = lambda _change, _state: None,
        cards: bool = False,
        alert: Callable[[CloseEvent], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self._submissions = submissions
        self._close = close
        self._catalog = catalog
        self._slack = slack
        self._announcer = announcer
        self._close_app_url = close_app_url
        self._clock = clock
        # The same telling as the app's own Edit/Won/Lost, its steps recorded (`_RecordedSteps`).
        self._teller = ChangeTeller(
            slack=slack,
            announcer=announcer,
            claims=store,
            close_app_url=close_app_url,
            clock=clock,
            cards=cards,  # WORK_OBJECTS=on: the summary's card refreshed with it
        )
        # Told of every change that reaches its end here, with its state (metrics count them).
        self._on_finished = on_finished
        # Each change that is news (not the app's own write coming back), for owner alerts
        # (bot/alerts); called again when the change is tried again, so it must not mind.
        self._alert = alert

    async def process(self, change: StoredChange) -> None:
        """Work one claimed change to its end (or give it back for later). Never raises."""
        try:
            if change.state == ChangeState.TELLING:
                await self._tell(change)
            else:
                await self._apply(change)
        except Retry as retry:
            now = self._clock()
            at = now + timedelta(seconds=retry.seconds)
            if not await self.store.retry_at(change, at=at, error=retry.why, now=now):
                log.info("Change %s was taken over while giving it back", change.id)
        except LostClaim:
            log.info("Change %s was taken over by another worker", change.id)
        except Exception:
            if change.attempts >= MAX_ATTEMPTS:
                # Never hold the opportunity's later changes behind one that cannot be applied.
                log.exception(
                    "Giving up on change %s after %s attempts", change.id, change.attempts
                )
                if await self.store.finish(
                    change, ChangeState.SKIPPED, "gave up: unexpected error", now=self._clock()
                ):
                    self._on_finished(change, ChangeState.SKIPPED)
                return
            log.exception("Could not apply change %s; it will be tried again", change.id)
            now = self._clock()
            at = now + timedelta(seconds=_backoff(change))
            await self.store.retry_at(change, at=at, error="unexpected error", now=now)

    # --- deciding what changed -----------------------------------------------------------

    async def _apply(self, change: StoredChange) -> None:
        event = change.event
        if not event.followed:
            await self._finish(change, ChangeState.SKIPPED, f"not followed ({event.object_type})")
            return
        view = await self._view_for(change)
        now = self._clock()
        if view is not None and view.writing_until is not None and view.writing_until > now:
            raise Retry(OWN_WRITE_RECHECK.total_seconds(), "the app is writing it to Close")
        if view is None or view.submission_id is None:
            if not _own_write(view, event):
                await self._note_alert(event)
            await self._not_ours(change)
            return
        if view.deleted_at is not None:
            await self._finish(change, ChangeState.SKIPPED, "already deleted in Slack")
            return
        after = await self._state_after(event)
        if after is None:
            await self._finish(change, ChangeState.SKIPPED, "gone from Close")
            return
        newer = await self._newer_state(change, view, after)
        if newer is None:
            return
        after, version, deleted = newer
        if event.action != "created":  # a deal logged here: its creation was the app's own
            await self._note_alert(event)
        before = _opportunity(view.shown)
        names = {field.id: field.name for field in self._catalog.custom_fields}
        lines = describe_changes(before, after, names) if before is not None else []
        became_won = after.status_type == "won" and (before is None or before.status_type != "won")
        plan: dict[str, Any] = {
            "who": self._who(event),
            "lines": lines,
            "deleted": deleted,
            "won": became_won and not deleted,
        }
        moved = await self.store.begin_telling(
            change,
            opportunity_id=event.object_id,
            expected_version=view.version,
            expected_deleted=False,
            shown=_dump(after),
            version=version,
            deleted_at=now if deleted else None,
            progress={"plan": plan},
            now=now,
        )
        if not moved:
            # Another change of this opportunity was recorded meanwhile: compare with it anew.
            raise Retry(0.0, "the opportunity moved on meanwhile")
        await self._tell(change)

    async def _newer_state(
        self, change: StoredChange, view: OpportunityView, after: Opportunity
    ) -> tuple[Opportunity, datetime, bool] | None:
        """(state, version, deleted) to show instead of what Slack shows; None when Slack
        shows it already or something newer (the change is finished as skipped, saying why)."""
        event = change.event
        deleted = event.action == "deleted"
        # A deletion's copy is the last state (older than the deletion itself).
        version = event.updated_at if deleted else (_version(after) or event.updated_at)
        if view.version is None or version > view.version:
            return after, version, deleted
        if version < view.version or (not deleted and same_data(view.shown, _dump(after))):
            await self._finish(change, ChangeState.SKIPPED, "not newer than what Slack shows")
            return None
        return await self._break_tie(change, view, after)

    async def _break_tie(
        self, change: StoredChange, view: OpportunityView, after: Opportunity
    ) -> tuple[Opportunity, datetime, bool] | None:
        """A change stamped like what Slack shows but holding other data: Close gave two
        changes the same `date_updated`, and only Close knows which came last. Read it (with
        the org key, like all of Close -> Slack) and show what it has now."""
        event = change.event
        assert view.version is not None
        log.info(
            "Change %s of %s is stamped like what Slack shows (%s) with other data: "
            "reading the opportunity from Close",
            event.id,
            event.object_id,
            event.date_updated,
        )
        try:
            current = await self._close.get_opportunity(event.object_id)
        except CloseNotFound:
            if event.action == "deleted":
                return after, event.updated_at, True
            # Its deletion is an event of its own, which will tell it.
            await self._finish(change, ChangeState.SKIPPED, "tie: gone from Close")
            return None
        except CloseError as error:
            raise Retry(5.0, f"Close did not answer ({type(error).__name__})") from error
        version = _version(current) or view.version
        if version < view.version or same_data(view.shown, _dump(current)):
            await self._finish(change, ChangeState.SKIPPED, "tie: Slack shows what Close has now")
            return None
        return current, version, False

    async def _view_for(self, change: StoredChange) -> OpportunityView | None:
        """The opportunity as Slack shows it; started from the confirmation for one the app
        created; None for one it did not (or does not know yet)."""
        event = change.event
        view = await self.store.view(event.object_id)
        if view is not None and view.submission_id is not None:
            return view
        submission = await self._submissions.by_opportunity(event.object_id)
        if submission is None or submission.confirmed_at is None:
            patience = change.attempts < CREATING_PATIENCE
            recent = self._clock() - CREATING_WINDOW
            if patience and (
                submission is not None or await self._submissions.creating_since(recent)
            ):
                # It may be ours, on its way: the confirmation must be out before changes.
                raise Retry(min(0.2 * change.attempts, 2.0), "waiting for the confirmation")
            return view
        shown = submission.response
        return await self.store.ensure_view(
            event.object_id,
            submission_id=submission.id,
            shown=shown,
            version=_version(_opportunity(shown)),
            now=self._clock(),
        )

    async def _state_after(self, event: CloseEvent) -> Opportunity | None:
        """The opportunity after the change: the event's copy, else as Close has it now."""
        if event.data:
            try:
                return parse_opportunity(event.data)
            except ValueError:
                log.info("Event %s carries an unreadable opportunity", event.id)
        if event.action == "deleted":
            return None
        try:
            return await self._close.get_opportunity(event.object_id)
        except CloseNotFound:
            return None
        except CloseError as error:
            raise Retry(5.0, f"Close did not answer ({type(error).__name__})") from error

    async def _not_ours(self, change: StoredChange) -> None:
        """An opportunity the app did not log: only a win is news (in the deals channel)."""
        event = change.event
        if self._announcer.channel is None or event.action == "deleted":
            await self._finish(change, ChangeState.SKIPPED, "not logged from Slack")
            return
        after = await self._state_after(event)
        if after is None or not _became_won(event, after, self._catalog):
            await self._finish(change, ChangeState.SKIPPED, "not logged from Slack")
            return
        who = self._who(event)
        plan = {"who": who, "lines": [], "deleted": False, "won": True}
        change.progress = {"plan": plan, "after": after.model_dump(mode="json")}
        cheer = won_announcement(after, by=who, close_app_url=self._close_app_url)
        steps = _RecordedSteps(self.store, change, clock=self._clock)
        await steps.run("won", lambda: self._teller.cheer(after, cheer))
        await self._finish(change, ChangeState.APPLIED, "won: announced in the deals channel")

    async def _note_alert(self, event: CloseEvent) -> None:
        if self._alert is None:
            return
        try:
            await self._alert(event)
        except RateLimited as error:
            raise Retry(error.retry_after, "Slack rate-limited the owner's lookup") from error

    def _who(self, event: CloseEvent) -> str:
        """Who made the change, as mrkdwn: the Close user's name (escaped) or an automation."""
        if not event.user_id:
            return AUTOMATION
        user = self._catalog.user(event.user_id)
        name = user.display_name if user is not None else event.user_id
        return f"*{escape(name)}*"

    # --- telling Slack --------------------------------------------------------------------

    async def _tell(self, change: StoredChange) -> None:
        plan: dict[str, Any] = change.progress.get("plan") or {}
        view = await self.store.view(change.event.object_id)
        submission = (
            await self._submissions.get(view.submission_id)
            if view is not None and view.submission_id
            else None
        )
        now_shown = _opportunity(view.shown if view else None)
        if submission is None or view is None or now_shown is None:
            await self._finish(change, ChangeState.SKIPPED, "nothing in Slack to update")
            return
        deleted = view.deleted_at is not None
        who = str(plan.get("who") or AUTOMATION)
        lines = [str(line) for line in plan.get("lines") or []]
        news = bool(lines) or bool(plan.get("deleted"))
        told = ChangeTold(
            opportunity=now_shown,
            creator=submission.slack_user_id,
            reply=close_change_message(who, lines, deleted=bool(plan.get("deleted")))
            if news
            else None,
            cheer=won_announcement(now_shown, by=who, close_app_url=self._close_app_url)
            if plan.get("won")
            else None,
            deleted_by=who if deleted else None,
            against_shown=True,
        )

        async def forget(part: Part) -> None:
            await self._submissions.forget_message(submission.id, part, now=self._clock())

        steps = _RecordedSteps(self.store, change, clock=self._clock, forget=forget)
        await self._teller.tell(Confirmation.of(submission), told, steps)
        what = "deleted" if deleted else (", ".join(_field_names(lines)) or "no visible change")
        await self._finish(change, ChangeState.APPLIED, f"told: {what}")

    async def _finish(self, change: StoredChange, state: ChangeState, outcome: str) -> None:
        if not await self.store.finish(change, state, outcome, now=self._clock()):
            raise LostClaim(change.id)
        self._on_finished(change, state)
        log.info("Change %s of %s: %s", change.event.id, change.event.object_id, outcome)


def _opportunity(data: dict[str, Any] | None) -> Opportunity | None:
    return read_opportunity(data)


def _dump(opportunity: Opportunity) -> dict[str, Any]:
    """An opportunity as the view keeps what Slack shows."""
    return opportunity.model_dump(mode="json")


def _own_write(view: OpportunityView | None, event: CloseEvent) -> bool:
    """Whether `event` is the app's own change to a deal not logged here (a nudge's Won, +1
    week…) coming back: the view records what the write made of it (stamped alike, as the
    logged deals' telling compares them)."""
    if view is None or view.version is None or not event.data:
        return False
    version = _version(_opportunity(event.data)) or event.updated_at
    return version == view.version or same_data(view.shown, event.data)


def _version(opportunity: Opportunity | None) -> datetime | None:
    if opportunity is None or not opportunity.date_updated:
        return None
    return parse_close_time(opportunity.date_updated)


def _became_won(event: CloseEvent, after: Opportunity, catalog: Catalog) -> bool:
    """Whether this change moved the opportunity into a won status (or created it won)."""
    if after.status_type != "won":
        return False
    if event.action == "created":
        return True
    previous = event.previous_data or {}
    if "status_type" in previous:
        return bool(previous["status_type"] != "won")
    if "status_id" in previous:
        status = catalog.status(str(previous["status_id"]))
        return status is None or status.type != "won"
    return "status_id" in event.changed_fields


def _field_names(lines: list[str]) -> list[str]:
    return [line.split("*")[1] for line in lines if line.count("*") >= 2]


def _backoff(change: StoredChange) -> float:
    return BACKOFF.delay(change.attempts)


class _RecordedSteps:
    """Close -> Slack's steps of telling a change: each recorded in the change's progress once
    done (a restart does not do it again), so the news goes first — a step Slack refuses ends
    this attempt, to come back later.

    Rate limits are waited out (the change comes back after Retry-After, never dropped); a
    message, thread or channel that is gone for us (Gone) or refuses us (NotAllowed) is
    forgotten, so later changes leave it alone.
    """

    order: tuple[Step, ...] = ("reply", "summary", "details", "announce", "won")

    def __init__(
        self,
        store: ChangeStore,
        change: StoredChange,
        *,
        clock: Callable[[], datetime],
        forget: Callable[[Part], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._change = change
        self._clock = clock
        self._forget = forget

    async def run(self, step: Step, act: Act, *, touches: Part | None = None) -> None:
        change = self._change
        if change.progress.get(step):
            return  # done by an earlier attempt
        try:
            await act()
        except RateLimited as error:
            wait = error.retry_after
            raise Retry(wait, f"Slack rate-limited {step}: retry in {wait:.1f}s") from error
        except (Gone, NotAllowed) as error:
            log.info("Change %s: %s skipped, Slack says %s", change.id, step, error.code)
            if touches is not None and self._forget is not None:
                await self._forget(touches)
        except SlackError as error:
            if change.attempts < MAX_ATTEMPTS:
                raise Retry(_backoff(change), f"Slack refused {step}: {error.code}") from error
            log.warning("Change %s: gave up on %s after %s", change.id, step, error.code)
        if not await self._store.mark_step(change, step):
            raise LostClaim(change.id)
