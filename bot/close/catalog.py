"""A warm in-memory cache of Close metadata, so opening a Slack modal needs no Close call."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.close.client import CloseClient
from bot.close.errors import CloseAuthError, CloseError
from bot.close.models import CustomField, Membership, Pipeline, Status, User
from bot.tasks import cancel

log = logging.getLogger(__name__)

# Statuses that belong to no pipeline (orgs without pipelines) are grouped under this one.
NO_PIPELINE = Pipeline(id="", name="Opportunity statuses")
RETRY_FIRST = 0.5
RETRY_MAX = 30.0


@dataclass(frozen=True)
class _Snapshot:
    """One consistent load of everything, swapped in whole so readers never see a mix."""

    pipelines: list[Pipeline] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    custom_fields: list[CustomField] = field(default_factory=list)
    groups: list[tuple[Pipeline, list[Status]]] = field(default_factory=list)
    status_by_id: dict[str, Status] = field(default_factory=dict)
    pipeline_by_status: dict[str, Pipeline] = field(default_factory=dict)
    pipeline_by_id: dict[str, Pipeline] = field(default_factory=dict)
    user_by_id: dict[str, User] = field(default_factory=dict)
    user_by_email: dict[str, User] = field(default_factory=dict)
    field_by_id: dict[str, CustomField] = field(default_factory=dict)
    # Members who left the org (from `/organization/{id}/`); None when Close did not say.
    inactive_user_ids: frozenset[str] | None = None
    active_user_by_email: dict[str, User] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        pipelines: list[Pipeline],
        statuses: list[Status],
        users: list[User],
        custom_fields: list[CustomField],
        memberships: list[Membership] | None = None,
    ) -> _Snapshot:
        groups: list[tuple[Pipeline, list[Status]]] = []
        status_by_id: dict[str, Status] = {}
        pipeline_by_status: dict[str, Pipeline] = {}
        for pipeline in pipelines:
            members = [s.model_copy(update={"pipeline_id": pipeline.id}) for s in pipeline.statuses]
            groups.append((pipeline, members))
            for status in members:
                status_by_id.setdefault(status.id, status)
                pipeline_by_status.setdefault(status.id, pipeline)
        loose = [s for s in statuses if s.id not in status_by_id]
        for status in loose:
            status_by_id[status.id] = status
        if loose:
            groups.append((NO_PIPELINE, loose))
        # First wins on duplicate emails: Close lists members in a stable order.
        by_email: dict[str, User] = {}
        for user in users:
            if user.email:
                by_email.setdefault(user.email.strip().lower(), user)
        inactive = (
            None
            if memberships is None
            else frozenset(m.user_id for m in memberships if not m.active)
        )
        active_by_email: dict[str, User] = {}
        for user in users:
            if user.email and user.id not in (inactive or ()):
                active_by_email.setdefault(user.email.strip().lower(), user)
        return cls(
            pipelines=list(pipelines),
            statuses=[s for _, members in groups for s in members],
            users=list(users),
            custom_fields=list(custom_fields),
            groups=groups,
            status_by_id=status_by_id,
            pipeline_by_status=pipeline_by_status,
            pipeline_by_id={p.id: p for p in pipelines},
            user_by_id={u.id: u for u in users},
            user_by_email=by_email,
            field_by_id={f.id: f for f in custom_fields},
            inactive_user_ids=inactive,
            active_user_by_email=active_by_email,
        )


class Catalog:
    """Pipelines, statuses, users and opportunity custom fields of the Close org, kept warm.

    Lookups are pure and in memory; :meth:`start` loads in the background and keeps
    refreshing every `refresh_seconds`, riding out Close outages with backoff.
    """

    def __init__(self, close: CloseClient, *, refresh_seconds: float = 300.0) -> None:
        self._close = close
        self.refresh_seconds = refresh_seconds
        self._snapshot = _Snapshot()
        self.loaded = False
        self.loaded_at: datetime | None = None
        self._loaded_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The API key's organization (its members say who is active): asked of Close once,
        # or given by whoever already asked (the start-up check), not on every refresh.
        self.organization_id: str | None = None

    # --- the data (always from one snapshot) ---

    @property
    def pipelines(self) -> list[Pipeline]:
        return self._snapshot.pipelines

    @property
    def statuses(self) -> list[Status]:
        """Every status, in Close's order: pipeline by pipeline, then pipeline-less ones."""
        return self._snapshot.statuses

    @property
    def users(self) -> list[User]:
        return self._snapshot.users

    @property
    def custom_fields(self) -> list[CustomField]:
        return self._snapshot.custom_fields

    # --- loading ---

    async def refresh(self) -> None:
        """Load everything from Close and swap it in at once; raises CloseError on failure."""
        pipelines_task = asyncio.ensure_future(self._close.list_pipelines())
        statuses_task = asyncio.ensure_future(self._close.list_opportunity_statuses())
        users_task = asyncio.ensure_future(self._close.list_users())
        fields_task = asyncio.ensure_future(self._close.list_opportunity_custom_fields())
        members_task = asyncio.ensure_future(self._memberships())
        tasks = [pipelines_task, statuses_task, users_task, fields_task, members_task]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # Do not leave the other loads running (and retrying) behind a failed refresh.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        self._snapshot = _Snapshot.build(
            pipelines_task.result(),
            statuses_task.result(),
            users_task.result(),
            fields_task.result(),
            members_task.result(),
        )
        self.loaded = True
        self.loaded_at = datetime.now(UTC)
        self._loaded_event.set()

    async def _memberships(self) -> list[Membership] | None:
        """Who is active, or the last known answer when Close will not say (never fails a refresh)."""
        try:
            if self.organization_id is None:
                organizations = (await self._close.me()).organizations
                if not organizations:
                    return []
                self.organization_id = str(organizations[0]["id"])
            return await self._close.list_memberships(self.organization_id)
        except Exception as exc:  # a key that may not read the org still serves everything else
            log.warning(
                "Close org memberships unavailable (%s); every Close user counts as active",
                type(exc).__name__,
            )
            known = self._snapshot.inactive_user_ids
            if known is None:
                return None
            return [Membership(user_id=user_id, active=False) for user_id in known]

    async def start(self) -> None:
        """Start loading and refreshing in the background; returns at once."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="close-catalog")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def wait_loaded(self, timeout: float) -> bool:  # noqa: ASYNC109 (agreed API)
        """True once the catalog has loaded, False if `timeout` seconds pass first."""
        try:
            await asyncio.wait_for(self._loaded_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        retry_in = RETRY_FIRST
        while True:
            try:
                await self.refresh()
            except CloseError as exc:
                what = "rejected the API key" if isinstance(exc, CloseAuthError) else "failed"
                state = "keeping the last good copy" if self.loaded else "not loaded yet"
                # One line, no traceback: this repeats while Close is down.
                log.warning(
                    "Close catalog refresh %s (%s); %s, retrying in %.1fs",
                    what,
                    exc,
                    state,
                    retry_in,
                )
            except Exception:
                # Not Close being down but a bug or a surprising answer: show the traceback.
                log.warning(
                    "Close catalog refresh crashed; retrying in %.1fs", retry_in, exc_info=True
                )
            else:
                retry_in = RETRY_FIRST
                await asyncio.sleep(self.refresh_seconds)
                continue
            await asyncio.sleep(retry_in)
            retry_in = min(retry_in * 2, RETRY_MAX)

    # --- lookups ---

    def status(self, status_id: str | None) -> Status | None:
        return self._snapshot.status_by_id.get(status_id or "")

    def pipeline(self, pipeline_id: str | None) -> Pipeline | None:
        return self._snapshot.pipeline_by_id.get(pipeline_id or "")

    def pipeline_for_status(self, status_id: str | None) -> Pipeline | None:
        """The pipeline holding the status; None for unknown or pipeline-less statuses."""
        return self._snapshot.pipeline_by_status.get(status_id or "")

    def status_by_label(self, label: str) -> Status | None:
        """Case-insensitive; when several pipelines share the label, the first pipeline wins."""
        wanted = label.strip().casefold()
        return next((s for s in self.statuses if s.label.strip().casefold() == wanted), None)

    def user(self, user_id: str | None) -> User | None:
        return self._snapshot.user_by_id.get(user_id or "")

    def user_by_email(self, email: str) -> User | None:
        return self._snapshot.user_by_email.get(email.strip().lower())

    @property
    def memberships_known(self) -> bool:
        """True when Close told us who is inactive (else every listed user counts as active)."""
        return self._snapshot.inactive_user_ids is not None

    @property
    def active_users(self) -> list[User]:
        """Members who can own opportunities: `/user/` minus the org's inactive memberships."""
        inactive = self._snapshot.inactive_user_ids or frozenset()
        return [u for u in self._snapshot.users if u.id not in inactive]

    def is_active(self, user_id: str | None) -> bool:
        """A known Close user who has not left the org."""
        if self.user(user_id) is None:
            return False
        return user_id not in (self._snapshot.inactive_user_ids or frozenset())

    def active_user_by_email(self, email: str) -> User | None:
        """Case-insensitive and trimmed, active members only."""
        return self._snapshot.active_user_by_email.get(email.strip().lower())

    def default_status(self) -> Status | None:
        """What Close picks without a status_id: the first pipeline's first active status."""
        groups = self._snapshot.groups
        if not groups:
            return None
        first = groups[0][1]
        return next((s for s in first if s.type == "active"), first[0] if first else None)

    def statuses_by_pipeline(self) -> list[tuple[Pipeline, list[Status]]]:
        """Statuses grouped by pipeline in Close's order; pipeline-less ones under NO_PIPELINE."""
        return list(self._snapshot.groups)

    def custom_field(self, cf_id: str) -> CustomField | None:
        return self._snapshot.field_by_id.get(cf_id)
