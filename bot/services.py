"""Everything the listeners use, built once from Settings and passed in (never imported as globals)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import httpx
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.deals.announce import Announcer
from bot.deals.notify import Notifier
from bot.deals.service import Deals, RetryPolicy
from bot.deals.worker import Worker
from bot.identity import Identity
from bot.lead_search import LeadSearch
from bot.parsing import warm_up
from bot.settings import Settings
from bot.store.changes import ChangeStore
from bot.store.db import create_engine, session_factory
from bot.store.migrate import upgrade
from bot.store.preferences import Preferences
from bot.store.submissions import SubmissionStore
from bot.store.user_links import UserLinkStore
from bot.sync.applier import ChangeApplier
from bot.sync.service import CloseSync

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 20.0


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
    worker: Worker
    lead_search: LeadSearch
    preferences: Preferences
    changes: ChangeStore
    sync: CloseSync
    clock: Callable[[], datetime] = field(default=utc_now)
    announcer: Announcer | None = None

    @classmethod
    def create(cls, settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Services:
        if settings.slack_bot_token is None or settings.close_api_key is None:
            raise ValueError("SLACK_BOT_TOKEN and CLOSE_API_KEY are required")
        slack = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
        )
        close = CloseClient(
            settings.close_api_key.get_secret_value(),
            settings.close_api_url,
            timeout=httpx.Timeout(
                settings.close_timeout_seconds, connect=min(5.0, settings.close_timeout_seconds)
            ),
        )
        catalog = Catalog(close, refresh_seconds=settings.catalog_refresh_seconds)
        engine = create_engine(settings.database_url)
        store = SubmissionStore(session_factory(engine), dialect=engine.dialect.name)
        identity = Identity(
            slack,
            catalog,
            links=UserLinkStore(session_factory(engine), dialect=engine.dialect.name),
            admin_user_ids=frozenset(settings.admin_user_ids),
            clock=clock,
        )
        notifier = Notifier(slack)
        announcer = Announcer(slack, settings.deals_channel, close_app_url=settings.close_app_url)
        deals = Deals(
            store=store,
            close=close,
            catalog=catalog,
            notifier=notifier,
            close_app_url=settings.close_app_url,
            announcer=announcer,
            retry=RetryPolicy(
                base_seconds=settings.retry_base_seconds,
                max_seconds=settings.retry_max_seconds,
                give_up_after_seconds=settings.retry_give_up_seconds,
            ),
            clock=clock,
        )
        changes = ChangeStore(session_factory(engine), dialect=engine.dialect.name)
        applier = ChangeApplier(
            store=changes,
            submissions=store,
            close=close,
            catalog=catalog,
            slack=slack,
            announcer=announcer,
            close_app_url=settings.close_app_url,
            clock=clock,
        )
        worker = Worker(
            deals,
            poll_seconds=settings.worker_poll_seconds,
            lease=timedelta(seconds=settings.worker_lease_seconds),
            clock=clock,
            changes=applier,
        )
        sync = CloseSync(
            settings=settings,
            close=close,
            store=changes,
            holder=worker.name,
            on_new=worker.kick,
            clock=clock,
        )
        return cls(
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
            lead_search=LeadSearch(close),
            preferences=Preferences(session_factory(engine)),
            changes=changes,
            sync=sync,
            clock=clock,
            announcer=announcer,
        )

    async def start(self, *, serving_http: bool = False) -> None:
        """Ready to serve: schema in place, parser warm, catalog loading, worker running, Close's
        changes coming in (by webhook when serving HTTP with a PUBLIC_URL, else the event log)."""
        warm_up()
        if self.slack.session is None:
            # One pooled session: without it slack_sdk opens a new TCP connection per call,
            # which cost ~10% of the CPU under load (bench/README.md).
            self.slack.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.slack.timeout)
            )
        await upgrade(self.engine)  # Alembic, under a lock: instances may start together
        await self.catalog.start()
        self.worker.start()
        self.sync.start(serving_http=serving_http)

    async def stop(self, *, within: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop everything; a part that does not stop in time is logged and left behind, so a
        deploy or a test never waits for ever (stored submissions are resumed at next start)."""
        try:
            await asyncio.wait_for(self._stop(), within)
        except TimeoutError:
            log.error("Shutdown did not finish within %.0f s; exiting anyway", within)

    async def _stop(self) -> None:
        await self.sync.stop()
        await self.worker.stop()
        await self.catalog.stop()
        await self.close.aclose()
        if self.slack.session is not None:
            await self.slack.session.close()
            self.slack.session = None
        await self.engine.dispose()
