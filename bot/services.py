"""Everything the listeners use, built once from Settings and passed in (never imported as globals)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import NamedTuple
from zoneinfo import ZoneInfo

import aiohttp
import httpx
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.alerts.notes import ALERT, AlertNotes, CatalogNames
from bot.alerts.sender import AlertSender
from bot.alerts.store import AlertChanges
from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.close.models import Contact
from bot.connections import CloseAccess, CloseClients, build_access
from bot.connections.access import Connected
from bot.deals.announce import Announcer
from bot.deals.attribution import Attribution
from bot.deals.changes import Changes
from bot.deals.jobs import submission_jobs
from bot.deals.notify import Notifier
from bot.deals.preferences import Preferences
from bot.deals.service import Deals, RetryPolicy
from bot.deals.store import SubmissionStore
from bot.digest.planner import DIGEST, DigestPlanner
from bot.digest.sender import DigestSender
from bot.identity import Identity
from bot.identity.store import UserLinkStore
from bot.jobs import Backoff, JobRunner
from bot.leads.search import LeadSearch
from bot.metrics import Metrics
from bot.nudges.planner import NUDGE, NudgePlanner
from bot.nudges.sender import NudgeSender
from bot.nudges.taps import NudgeTaps
from bot.parsing import warm_up
from bot.schedule.jobs import scheduled_send_jobs
from bot.schedule.people import People
from bot.schedule.posting import Posting
from bot.schedule.store import ScheduledSends
from bot.schedule.ticker import Ticker
from bot.settings import Settings
from bot.slack.audience import AudienceStore
from bot.slack.client import ObservedSlackClient
from bot.slack.gateway import SlackGateway
from bot.store.db import create_engine, session_factory
from bot.store.migrate import upgrade
from bot.sync.applier import ChangeApplier
from bot.sync.jobs import change_jobs
from bot.sync.service import CloseSync
from bot.sync.store import ChangeStore
from bot.unfurl.deliveries import Deliveries
from bot.unfurl.service import Unfurler
from bot.workflow.completion import StepCompleter
from bot.workflow.jobs import step_jobs
from bot.workflow.step import WorkflowSteps
from bot.workflow.store import StepStore

log = logging.getLogger(__name__)

# Platforms send SIGTERM, then SIGKILL after 10-30 s: everything is done within this many
# seconds of the signal (or of `stop` being called without one).
STOP_TIMEOUT_SECONDS = 9.0
# Work in flight (a Close call, a Slack message) gets this long from the signal to finish; what
# is still going then is cut short and handed back to be taken up at once elsewhere.
WORK_GRACE_SECONDS = 5.0
# Past the Close client's timeout, a create another worker sent is settled (answered or dropped).
WRITE_MARGIN_SECONDS = 2.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WarmUpStatus:
    """Where the start-up warm-up stands (bot.runtime.warm_up runs it): while it runs, /readyz
    answers 503 "warm-up". A process that runs none (a test's app in-process) is not held."""

    started_at: float | None = None  # monotonic
    over_at: float | None = None
    # What the warm-up could not do within its budget (e.g. Close's catalog, Slack's auth.test).
    missed: list[str] = field(default_factory=list)

    @property
    def begun(self) -> bool:
        return self.started_at is not None

    @property
    def running(self) -> bool:
        return self.begun and self.over_at is None

    def begin(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()

    def end(self, missed: list[str]) -> None:
        self.missed = missed
        self.over_at = time.monotonic()

    @property
    def seconds(self) -> float | None:
        """How long it took (None: not over, or never run)."""
        if self.started_at is None or self.over_at is None:
            return None
        return self.over_at - self.started_at


@dataclass
class Services:
    settings: Settings
    slack: AsyncWebClient
    close: CloseClient
    catalog: Catalog
    engine: AsyncEngine
    store: SubmissionStore
    identity: Identity
    notifier: Notifier
    deals: Deals
    worker: JobRunner
    lead_search: LeadSearch
    preferences: Preferences
    changes: ChangeStore
    sync: CloseSync
    # Every Web API call of the bot goes through it (`slack` is the client it wraps, Bolt's too).
    slack_gateway: SlackGateway
    # The Close client that acts for a person (CLOSE_ACCESS): `close_clients.for_person(…)`.
    close_clients: CloseClients
    # What the confirmation's buttons (Edit, Won, Lost) and the edit modal do.
    confirmation_actions: Changes
    # Link previews (`link_shared`).
    unfurler: Unfurler
    # Scheduled sends (nudges): each person's switches and zone, the sends, the planner's
    # periodic look (run where the worker runs) and what a nudge's taps do.
    people: People
    scheduled_sends: ScheduledSends
    planner: Ticker
    nudge_taps: NudgeTaps
    clock: Callable[[], datetime] = field(default=utc_now)
    announcer: Announcer | None = None
    # The Workflow Builder step "Create a Close opportunity".
    workflow: WorkflowSteps | None = None
    # Owner alerts: what notes a change made in Close for its owner's DM (the applier calls it).
    alerts: AlertNotes | None = None
    metrics: Metrics = field(default_factory=Metrics)
    # People's own Close connections (OAuth); None when Close OAuth is not configured.
    access: CloseAccess | None = None
    # A lead's contacts for the modal's `contact` block, by lead id: (monotonic instant, list).
    lead_contacts: dict[str, tuple[float, list[Contact]]] = field(default_factory=dict, repr=False)
    # Begun by the runners (bot.runtime.warm_up warms the parser then, in a thread, once `serve`
    # listens: /healthz does not wait for it, /readyz does); not begun, `start` warms it.
    warm_up: WarmUpStatus = field(default_factory=WarmUpStatus)
    # Monotonic instant shutdown began (None: running); the deadlines count from it.
    stopping_since: float | None = None
    # The tasks that run for as long as the process does (servers, loops), as of `start`: any
    # other is short work (a listener past its ack, a reply) that shutdown lets finish.
    _resident: set[asyncio.Task[object]] = field(default_factory=set, repr=False)

    @classmethod
    def create(cls, settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Services:
        """The composition root: every part built once, in the order of what each needs, and
        handed what it uses when it is made (nothing is set on a part afterwards)."""
        if settings.slack_bot_token is None or settings.close_api_key is None:
            raise ValueError("SLACK_BOT_TOKEN and CLOSE_API_KEY are required")
        metrics = Metrics()
        slack = ObservedSlackClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            metrics=metrics,
        )
        engine = create_engine(settings.database_url)
        sessions, dialect = session_factory(engine), engine.dialect.name
        # Who reads a channel (Slack Connect) is decided here, for every post of the bot.
        gateway = SlackGateway(
            slack,
            external_channels=settings.external_channels,
            audience_store=AudienceStore(sessions, dialect=dialect),
            audience_ttl_seconds=settings.channel_audience_ttl_seconds,
        )
        close = _close_side(settings, metrics, engine, gateway, clock)
        identity = Identity(
            gateway,
            close.catalog,
            links=UserLinkStore(sessions, dialect=dialect),
            access=close.access,  # a connected Close user is the person's mapping
            admin_user_ids=frozenset(settings.admin_user_ids),
            clock=clock,
        )
        worker = JobRunner(
            poll_seconds=settings.worker_poll_seconds,
            lease=timedelta(seconds=settings.worker_lease_seconds),
            clock=clock,
        )
        # Scheduled sends' tables, shared by what notes owner alerts (the sync, the
        # confirmation's changes) and the sends.
        sends, people = ScheduledSends(sessions, dialect=dialect), People(sessions, dialect=dialect)
        alerts = _alerts(settings, sessions, dialect, close, identity, sends, people, clock)
        deals = _deals_side(
            settings, sessions, dialect, close, gateway, identity, worker, metrics, clock, alerts
        )
        sync = _background(settings, metrics, close, gateway, deals, worker, clock, alerts.notes)
        scheduled = _scheduled(
            settings, sends, people, close, gateway, identity, deals, worker, clock, alerts
        )
        return cls(
            settings=settings,
            slack=slack,
            slack_gateway=gateway,
            close=close.key,
            catalog=close.catalog,
            access=close.access,
            close_clients=close.clients,
            engine=engine,
            identity=identity,
            store=deals.store,
            preferences=deals.preferences,
            notifier=deals.notifier,
            announcer=deals.announcer,
            deals=deals.deals,
            lead_search=deals.lead_search,
            workflow=deals.workflow,
            confirmation_actions=deals.confirmation_actions,
            unfurler=_unfurler(settings, close, gateway, identity, sessions, clock),
            worker=worker,
            changes=deals.changes,
            sync=sync,
            people=scheduled.people,
            scheduled_sends=scheduled.sends,
            planner=scheduled.planner,
            nudge_taps=scheduled.taps,
            alerts=alerts.notes,
            clock=clock,
            metrics=metrics,
        )

    async def start(
        self, *, serving_http: bool = False, worker: bool = True, webhook_elsewhere: bool = False
    ) -> None:
        """Ready to serve: schema in place, parser warm, catalog loading, worker running (unless
        `worker` is False: `serve --no-worker` leaves it to `worker` processes), Close's changes
        coming in (by webhook when serving HTTP with a PUBLIC_URL, else the event log)."""
        if not self.warm_up.begun:
            warm_up()
        if self.slack.session is None:
            # One pooled session: without it slack_sdk opens a new TCP connection per call,
            # which cost ~10% of the CPU under load (bench/README.md).
            self.slack.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.slack.timeout)
            )
        await upgrade(self.engine)  # Alembic, under a lock: instances may start together
        await self.catalog.start()
        if worker:
            self.worker.start()
            self.planner.start()
        self.sync.start(serving_http=serving_http, webhook_elsewhere=webhook_elsewhere)
        self._resident = set(asyncio.all_tasks())

    async def connected(self, connected: Connected) -> None:
        """Someone just (re)connected their Close account: what of theirs waited for it goes on."""
        await self.deals.resume_waiting(connected.slack_user_id)

    def begin_stop(self) -> None:
        """The first thing on SIGTERM/SIGINT: not ready any more, no new work claimed. What is
        in flight goes on; `stop` waits for it (within WORK_GRACE_SECONDS of now)."""
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
            self.worker.stop_claiming()

    async def stop(self, *, within: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop everything within `within` seconds of `begin_stop` (or of now); a part that does
        not stop in time is logged and left behind, so a deploy or a test never waits for ever
        (stored submissions are resumed at next start)."""
        self.begin_stop()
        assert self.stopping_since is not None
        # Taken before any task of the stop itself exists (and without the caller's).
        short = self._short_work()
        left = within - (time.monotonic() - self.stopping_since)
        try:
            await asyncio.wait_for(self._stop(short), max(left, 0.5))
        except TimeoutError:
            log.error("Shutdown did not finish within %.0f s; exiting anyway", within)

    async def _stop(self, short: set[asyncio.Task[object]]) -> None:
        assert self.stopping_since is not None
        await self.sync.stop()
        await self.planner.stop()
        grace = WORK_GRACE_SECONDS - (time.monotonic() - self.stopping_since)
        await asyncio.gather(self.worker.stop(grace=grace), _settle(short, grace))
        await self.catalog.stop()
        await self.close.aclose()
        if self.access is not None:
            await self.access.aclose()
        if self.slack.session is not None:
            await self.slack.session.close()
            self.slack.session = None
        await self.engine.dispose()

    def _short_work(self) -> set[asyncio.Task[object]]:
        """Short work still going (a modal opening after its ack, a reply being posted): the
        tasks that came after `start` (the HTTP server waited for responses, not for these)."""
        current = asyncio.current_task()
        return {
            task
            for task in asyncio.all_tasks()
            if task is not current
            and task not in self._resident
            and not task.done()
            and _app_task(task)
        }


# --- the builders of the composition root, in the order `create` calls them -----------------


class _CloseSide(NamedTuple):
    """Close as the app reaches it: the org key's client, its catalog, people's own access."""

    key: CloseClient
    catalog: Catalog
    # People's own Close connections (OAuth); None when Close OAuth is not configured.
    access: CloseAccess | None
    clients: CloseClients


def _close_side(
    settings: Settings,
    metrics: Metrics,
    engine: AsyncEngine,
    gateway: SlackGateway,
    clock: Callable[[], datetime],
) -> _CloseSide:
    close = _close_client(settings, metrics)
    catalog = Catalog(close, refresh_seconds=settings.catalog_refresh_seconds)
    access = build_access(
        settings, engine=engine, close=close, catalog=catalog, slack=gateway, clock=clock
    )
    return _CloseSide(close, catalog, access, CloseClients(close, access, settings.access))


def _close_client(settings: Settings, metrics: Metrics) -> CloseClient:
    """The org key's Close client (its connection pool is every Close call's)."""
    assert settings.close_api_key is not None
    return CloseClient(
        settings.close_api_key.get_secret_value(),
        settings.close_api_url,
        timeout=httpx.Timeout(
            settings.close_timeout_seconds, connect=min(5.0, settings.close_timeout_seconds)
        ),
        observer=metrics,
    )


class _DealsSide(NamedTuple):
    """The deal's life in Slack: submissions, their outcomes, the workflow step, the
    confirmation's buttons."""

    store: SubmissionStore
    preferences: Preferences
    notifier: Notifier
    announcer: Announcer
    deals: Deals
    lead_search: LeadSearch
    workflow: WorkflowSteps
    changes: ChangeStore
    confirmation_actions: Changes


def _deals_side(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    dialect: str,
    close: _CloseSide,
    gateway: SlackGateway,
    identity: Identity,
    worker: JobRunner,
    metrics: Metrics,
    clock: Callable[[], datetime],
    alerts: _Alerts,
) -> _DealsSide:
    url = settings.close_app_url
    preferences = Preferences(sessions)
    # Write-through: no read of the last-used choices after a submission.
    store = SubmissionStore(sessions, dialect=dialect, on_accepted=preferences.remember)
    notifier = Notifier(gateway)
    announcer = Announcer(gateway, settings.deals_channel, close_app_url=url)
    retry = _retry_policy(settings)
    steps = StepStore(sessions, dialect=dialect)
    completion = StepCompleter(  # ends a step's submission: built before Deals, which calls it
        store=steps,
        submissions=store,
        slack=gateway,
        catalog=close.catalog,
        close_app_url=url,
        retry=retry,
        clock=clock,
        on_untold=metrics.step_untold,
    )
    changes = ChangeStore(sessions, dialect=dialect)  # also: whether Close took created_by
    deals = Deals(
        store=store,
        close=close.key,
        catalog=close.catalog,
        notifier=notifier,
        close_app_url=url,
        announcer=announcer,
        retry=retry,
        clock=clock,
        write_window=timedelta(seconds=settings.close_timeout_seconds + WRITE_MARGIN_SECONDS),
        steps=completion,
        close_clients=close.clients,  # a person's deals are created with their own access
        attribution=Attribution(identity, changes, clock),  # with the key: `created_by`
        kick=worker.kick,  # someone reconnected: their waiting submissions go at once
        cards=settings.work_objects_on,
    )
    lead_search = LeadSearch(close.key)
    workflow = WorkflowSteps(
        store=steps,
        deals=deals,
        completion=completion,
        catalog=close.catalog,
        identity=identity,
        close=close.key,
        lead_search=lead_search,
        preferences=preferences,
        slack=gateway,
        default_pipeline=settings.default_pipeline,
        retry=retry,
        lease=timedelta(seconds=settings.worker_lease_seconds),
        clock=clock,
        kick=worker.kick,
        name=worker.name,  # one owner name per process in `claimed_by`
        clients=close.clients,  # the lead is read with the owner's own access
    )
    actions = _confirmation_actions(
        settings, close, gateway, identity, store, notifier, announcer, changes, clock, alerts
    )
    return _DealsSide(
        store, preferences, notifier, announcer, deals, lead_search, workflow, changes, actions
    )


def _confirmation_actions(
    settings: Settings,
    close: _CloseSide,
    gateway: SlackGateway,
    identity: Identity,
    store: SubmissionStore,
    notifier: Notifier,
    announcer: Announcer,
    changes: ChangeStore,
    clock: Callable[[], datetime],
    alerts: _Alerts,
) -> Changes:
    """Edit/Won/Lost, the edit modal and the flexpane's save: the confirmation's changes."""
    return Changes(
        store=store,
        close=close.key,
        catalog=close.catalog,
        identity=identity,
        notifier=notifier,
        slack=gateway,
        announcer=announcer,
        close_app_url=settings.close_app_url,
        views=changes,
        clock=clock,
        close_clients=close.clients,  # Edit/Won/Lost go to Close as the person who pressed
        cards=settings.work_objects_on,  # the summary's card refreshed with a change
        alerts=alerts.notes,  # a change to someone else's deal: their owner alert
    )


def _retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base_seconds=settings.retry_base_seconds,
        max_seconds=settings.retry_max_seconds,
        give_up_after_seconds=settings.retry_give_up_seconds,
        step_give_up_after_seconds=settings.workflow_step_give_up_seconds,
    )


def _unfurler(
    settings: Settings,
    close: _CloseSide,
    gateway: SlackGateway,
    identity: Identity,
    sessions: async_sessionmaker[AsyncSession],
    clock: Callable[[], datetime],
) -> Unfurler:
    return Unfurler(
        slack=gateway,
        close=close.key,
        identity=identity,
        close_app_url=settings.close_app_url,
        clients=close.clients,
        # Slack's retry of a link_shared reaching another process finds it taken.
        deliveries=Deliveries(sessions),
        channels_restricted=bool(settings.allowed_channel_ids),
        work_objects=settings.work_objects_on,
        clock=clock,
    )


def _background(
    settings: Settings,
    metrics: Metrics,
    close: _CloseSide,
    gateway: SlackGateway,
    deals: _DealsSide,
    worker: JobRunner,
    clock: Callable[[], datetime],
    alerts: AlertNotes,
) -> CloseSync:
    """Every kind of job registered with the one runner, and Close's changes coming in."""
    applier = ChangeApplier(
        store=deals.changes,
        submissions=deals.store,
        close=close.key,
        catalog=close.catalog,
        slack=gateway,
        announcer=deals.announcer,
        close_app_url=settings.close_app_url,
        clock=clock,
        on_finished=lambda change, state: metrics.change_finished(state.value, change.source),
        cards=settings.work_objects_on,
        alert=alerts.note,  # a change someone else made to a person's deal: their alert DM
    )
    worker.register(submission_jobs(deals.deals))
    changing = worker.register(change_jobs(applier))
    worker.register(step_jobs(deals.workflow))
    return CloseSync(
        settings=settings,
        close=close.key,
        store=deals.changes,
        holder=worker.name,
        on_new=partial(worker.kick, changing.name),
        clock=clock,
    )


class _ScheduledSide(NamedTuple):
    """Scheduled sends: what people chose, the sends, the planner's look, the nudge's taps."""

    people: People
    sends: ScheduledSends
    planner: Ticker
    taps: NudgeTaps


class _Alerts(NamedTuple):
    """Owner alerts: the changes kept for each person's DM, and what notes them."""

    changes: AlertChanges
    notes: AlertNotes


def _alerts(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    dialect: str,
    close: _CloseSide,
    identity: Identity,
    sends: ScheduledSends,
    people: People,
    clock: Callable[[], datetime],
) -> _Alerts:
    changes = AlertChanges(sessions, dialect=dialect)
    notes = AlertNotes(
        changes=changes,
        sends=sends,
        people=people,
        identity=identity,
        names=CatalogNames(close.catalog),
        window=timedelta(seconds=settings.alert_window_seconds),
        clock=clock,
    )
    return _Alerts(changes, notes)


def _scheduled(
    settings: Settings,
    sends: ScheduledSends,
    people: People,
    close: _CloseSide,
    gateway: SlackGateway,
    identity: Identity,
    deals: _DealsSide,
    worker: JobRunner,
    clock: Callable[[], datetime],
    alerts: _Alerts,
) -> _ScheduledSide:
    """Scheduled sends as one kind of job on the one runner: nudges, the weekly digest and
    owner alerts."""
    backoff = Backoff(
        base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds
    )
    nudges = NudgeSender(
        sends=sends,
        people=people,
        identity=identity,
        close=close.key,  # a background read of one owner's deals: the org key is enough
        slack=gateway,
        close_app_url=settings.close_app_url,
        backoff=backoff,
        clock=clock,
    )
    digest_zone = ZoneInfo(settings.digest_tz)
    digests = DigestSender(
        posting=Posting(sends=sends, slack=gateway, backoff=backoff, clock=clock, what="Digest"),
        close=close.key,  # the whole pipeline, read in the background: the org key
        zone=digest_zone,
        close_app_url=settings.close_app_url,
        clock=clock,
    )
    alerting = AlertSender(
        posting=Posting(sends=sends, slack=gateway, backoff=backoff, clock=clock, what="Alert"),
        sends=sends,
        changes=alerts.changes,
        people=people,
        close_app_url=settings.close_app_url,
        window=timedelta(seconds=settings.alert_window_seconds),
        clock=clock,
    )
    senders = {NUDGE: nudges.send, DIGEST: digests.send, ALERT: alerting.send}
    sending = worker.register(scheduled_send_jobs(sends, senders))
    kick = partial(worker.kick, sending.name)
    planners = (
        NudgePlanner(
            sends=sends,
            people=people,
            identity=identity,
            slack=gateway,
            at=settings.nudge_at,
            clock=clock,
            on_planned=kick,
        ),
        DigestPlanner(
            sends=sends,
            channel=settings.digest_to,
            at=settings.digest_at,
            zone=digest_zone,
            clock=clock,
            on_planned=kick,
        ),
    )

    async def plan() -> int:
        """Every planner's look; how many sends were new."""
        return sum([await planner.tick() for planner in planners])

    taps = NudgeTaps(
        sends=sends,
        changes=deals.confirmation_actions,  # the confirmation's own Won/Lost/Edit
        slack=gateway,
        close_app_url=settings.close_app_url,
        clock=clock,
    )
    ticker = Ticker(plan, every=settings.schedule_plan_seconds, name="schedule-planner")
    return _ScheduledSide(people, sends, ticker, taps)


# The directories this app's code lives in: the bot package's and Bolt's (found, not imported).
_APP_CODE = tuple(
    os.path.join(os.path.dirname(origin), "")
    for origin in (__file__, getattr(importlib.util.find_spec("slack_bolt"), "origin", None))
    if origin
)


def _app_task(task: asyncio.Task[object]) -> bool:
    """Work of this app (Bolt's listeners after their ack, our own), told by where its code
    lives: not whatever else shares the event loop — a test's simulators and driver, another
    server."""
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code is not None else ""
    return filename.startswith(_APP_CODE)


async def _settle(tasks: set[asyncio.Task[object]], within: float) -> None:
    if tasks and within > 0:
        await asyncio.wait(tasks, timeout=within)
