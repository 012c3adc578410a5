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

import aiohttp
import httpx
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.close.models import Contact
from bot.connections import CloseAccess, CloseClients, build_access
from bot.deals.announce import Announcer
from bot.deals.jobs import submission_jobs
from bot.deals.notify import Notifier
from bot.deals.preferences import Preferences
from bot.deals.service import Deals, RetryPolicy
from bot.deals.store import SubmissionStore
from bot.identity import Identity
from bot.identity.store import UserLinkStore
from bot.jobs import JobRunner
from bot.leads.search import LeadSearch
from bot.metrics import Metrics
from bot.parsing import warm_up
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
    clock: Callable[[], datetime] = field(default=utc_now)
    announcer: Announcer | None = None
    # The Workflow Builder step "Create a Close opportunity".
    workflow: WorkflowSteps | None = None
    metrics: Metrics = field(default_factory=Metrics)
    # People's own Close connections (OAuth); None when Close OAuth is not configured.
    access: CloseAccess | None = None
    # A lead's contacts for the modal's `contact` block, by lead id: (monotonic instant, list).
    lead_contacts: dict[str, tuple[float, list[Contact]]] = field(default_factory=dict, repr=False)
    # False: `start` leaves warming the parser up to the runner (`serve` finishes it in the
    # background once it listens, so /healthz does not wait for it; /readyz does).
    warm_parser_at_start: bool = True
    # Monotonic instant shutdown began (None: running); the deadlines count from it.
    stopping_since: float | None = None
    # The tasks that run for as long as the process does (servers, loops), as of `start`: any
    # other is short work (a listener past its ack, a reply) that shutdown lets finish.
    _resident: set[asyncio.Task[object]] = field(default_factory=set, repr=False)

    @classmethod
    def create(cls, settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Services:
        """The composition root: every part built once, in the order of what each needs, and
        handed what it uses when it is made."""
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
        gateway = SlackGateway(
            slack,
            external_channels=settings.external_channels,
            audience_store=AudienceStore(sessions, dialect=dialect),
            audience_ttl_seconds=settings.channel_audience_ttl_seconds,
        )
        close = _close_client(settings, metrics)
        catalog = Catalog(close, refresh_seconds=settings.catalog_refresh_seconds)
        preferences = Preferences(sessions)
        # Write-through: no read of the last-used choices after a submission.
        store = SubmissionStore(sessions, dialect=dialect, on_accepted=preferences.remember)
        identity = Identity(
            gateway,
            catalog,
            links=UserLinkStore(sessions, dialect=dialect),
            admin_user_ids=frozenset(settings.admin_user_ids),
            clock=clock,
        )
        access = build_access(
            settings, engine=engine, close=close, catalog=catalog, slack=gateway, clock=clock
        )
        close_clients = CloseClients(close, access, settings.access)
        notifier = Notifier(gateway)
        announcer = Announcer(gateway, settings.deals_channel, close_app_url=settings.close_app_url)
        deals = _deals(settings, store, close_clients, catalog, notifier, announcer, clock)
        lead_search = LeadSearch(close)
        worker = JobRunner(
            poll_seconds=settings.worker_poll_seconds,
            lease=timedelta(seconds=settings.worker_lease_seconds),
            clock=clock,
        )
        workflow = WorkflowSteps(
            store=StepStore(sessions, dialect=dialect),
            deals=deals,
            catalog=catalog,
            identity=identity,
            close=close,
            lead_search=lead_search,
            preferences=preferences,
            slack=gateway,
            close_app_url=settings.close_app_url,
            default_pipeline=settings.default_pipeline,
            retry=deals.retry,
            lease=timedelta(seconds=settings.worker_lease_seconds),
            clock=clock,
            kick=worker.kick,
        )
        deals.steps = workflow  # its submissions end by completing the step
        changes = ChangeStore(sessions, dialect=dialect)
        applier = ChangeApplier(
            store=changes,
            submissions=store,
            close=close,
            catalog=catalog,
            slack=gateway,
            announcer=announcer,
            close_app_url=settings.close_app_url,
            clock=clock,
        )
        applier.on_finished = lambda change, state: metrics.change_finished(
            state.value, change.source
        )
        worker.register(submission_jobs(deals))
        changing = worker.register(change_jobs(applier))
        worker.register(step_jobs(workflow))
        sync = CloseSync(
            settings=settings,
            close=close,
            store=changes,
            holder=worker.name,
            on_new=partial(worker.kick, changing.name),
            clock=clock,
        )
        identity.use_connections(access)  # a connected Close user is the person's mapping
        return cls(
            access=access,
            close_clients=close_clients,
            settings=settings,
            slack=slack,
            close=close,
            catalog=catalog,
            engine=engine,
            store=store,
            identity=identity,
            notifier=notifier,
            deals=deals,
            worker=worker,
            lead_search=lead_search,
            preferences=preferences,
            changes=changes,
            sync=sync,
            slack_gateway=gateway,
            workflow=workflow,
            clock=clock,
            announcer=announcer,
            metrics=metrics,
        )

    async def start(
        self, *, serving_http: bool = False, worker: bool = True, webhook_elsewhere: bool = False
    ) -> None:
        """Ready to serve: schema in place, parser warm, catalog loading, worker running (unless
        `worker` is False: `serve --no-worker` leaves it to `worker` processes), Close's changes
        coming in (by webhook when serving HTTP with a PUBLIC_URL, else the event log)."""
        if self.warm_parser_at_start:
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
        self.sync.start(serving_http=serving_http, webhook_elsewhere=webhook_elsewhere)
        self._resident = set(asyncio.all_tasks())

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


def _deals(
    settings: Settings,
    store: SubmissionStore,
    close_clients: CloseClients,
    catalog: Catalog,
    notifier: Notifier,
    announcer: Announcer,
    clock: Callable[[], datetime],
) -> Deals:
    return Deals(
        store=store,
        close=close_clients.key,
        close_clients=close_clients,
        catalog=catalog,
        notifier=notifier,
        close_app_url=settings.close_app_url,
        announcer=announcer,
        retry=RetryPolicy(
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
            give_up_after_seconds=settings.retry_give_up_seconds,
            step_give_up_after_seconds=settings.workflow_step_give_up_seconds,
        ),
        clock=clock,
        write_window=timedelta(seconds=settings.close_timeout_seconds + WRITE_MARGIN_SECONDS),
    )


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
