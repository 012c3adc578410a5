"""Prometheus metrics of one bot process: its own registry (never the global default, so several
apps in one process keep theirs apart), served as text at GET /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

PREFIX = "opportunity_bot_"
# Slack wants the ack within 3 s; the buckets around it say how close we come.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Slack's payload types, as the `kind` label says them (anything else: "other").
KINDS = {
    "command": "command",
    "view_submission": "view_submission",
    "view_closed": "view_closed",
    "block_actions": "block_actions",
    "block_suggestion": "options",
    "shortcut": "shortcut",
    "message_action": "message_shortcut",
    "event_callback": "event",
    "url_verification": "url_verification",
}
# The store's numbers are read at scrape time; several scrapers within this long share one read.
SCRAPE_CACHE_SECONDS = 5.0
SCRAPE_TIMEOUT_SECONDS = 2.0
SUBMISSION_STATES = ("pending", "creating", "created", "failed")
SYNC_MODES = ("webhook", "poll", "off")


def ack_kind(body: object) -> str:
    """The `kind` label of a request from Slack (`command`, `view_submission`, `options`…)."""
    if not isinstance(body, Mapping):
        return "other"
    if isinstance(body.get("command"), str):
        return "command"
    return KINDS.get(str(body.get("type") or ""), "other")


@dataclass(frozen=True)
class StoreNumbers:
    """What the store says at scrape time (the same in every process sharing the database)."""

    submissions: Mapping[str, int]
    queue_oldest_seconds: float
    changes_waiting: int
    changes_oldest_seconds: float


class Metrics:
    """Everything /metrics shows. Counters and histograms count what this process did; the
    store's gauges (`submissions`, `queue_*`, `close_changes_waiting*`) are the database's."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._add_slack_families(self.registry)
        self._add_close_families(self.registry)
        self._add_step_families(self.registry)
        self._add_store_gauges(self.registry)
        self._add_process_gauges(self.registry)
        # Several scrapers (or a fast one) within this many seconds share one read of the store.
        self.store_cache_seconds = SCRAPE_CACHE_SECONDS
        self._scraped_at: float | None = None
        self._scrape_lock = asyncio.Lock()

    def _add_slack_families(self, r: CollectorRegistry) -> None:
        """What Slack sees of this process: how fast it acks, and its Web API calls."""
        self.acks = Histogram(
            PREFIX + "slack_ack_seconds",
            "Time from a request from Slack to its ack, by kind (command, view_submission, "
            "block_actions, options, shortcut, event…) and outcome (ok, late: acked after "
            "Slack's 3 s, error: answered with an apology, refused: bad signature or shape)",
            ["kind", "outcome"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.slack_calls = Histogram(
            PREFIX + "slack_api_seconds",
            "Slack Web API calls by method (views.open: how long a modal takes to open)",
            ["method"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.slack_errors = Counter(
            PREFIX + "slack_api_errors",
            "Slack Web API calls that failed, by method and Slack's error (ratelimited, "
            "channel_not_found…; unreachable: no answer)",
            ["method", "error"],
            registry=r,
        )

    def _add_close_families(self, r: CollectorRegistry) -> None:
        """This process's requests to Close, their waits, and the changes from Close it told."""
        self.close_requests = Histogram(
            PREFIX + "close_request_seconds",
            "Requests to Close by endpoint and HTTP status (429: rate limited; unreachable: "
            "no answer)",
            ["endpoint", "status"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.close_waits = Counter(
            PREFIX + "close_wait_seconds",
            "Time requests to Close waited before going out: a 429's reset, or the rate "
            "budget Close announced",
            ["endpoint"],
            registry=r,
        )
        self.changes = Counter(
            PREFIX + "close_changes",
            "Changes made in Close that reached their end here, by state (applied: told in "
            "Slack; skipped: nothing to tell) and source (webhook, poll)",
            ["state", "source"],
            registry=r,
        )

    def _add_step_families(self, r: CollectorRegistry) -> None:
        """Workflow steps this process could not report back to their workflow."""
        self.steps_untold = Counter(
            PREFIX + "workflow_steps_untold",
            "Workflow Builder steps whose outcome Slack was never told (the workflow shows no "
            "result), by error: token_expired, invalid_auth… (Slack refused the step's own "
            "short-lived token, final), or gave_up (Slack did not take the completion while "
            "the token lived)",
            ["error"],
            registry=r,
        )

    def _add_store_gauges(self, r: CollectorRegistry) -> None:
        """The database's numbers, read at scrape time (the same in every process)."""
        self.submissions = Gauge(
            PREFIX + "submissions",
            "Submissions in the store by state (database-wide)",
            ["state"],
            registry=r,
        )
        self.queue_depth = Gauge(
            PREFIX + "queue_depth",
            "Submissions not yet in Close (pending or creating; database-wide)",
            registry=r,
        )
        self.queue_oldest = Gauge(
            PREFIX + "queue_oldest_seconds",
            "Age of the oldest submission not yet in Close (0: none; database-wide)",
            registry=r,
        )
        self.changes_waiting = Gauge(
            PREFIX + "close_changes_waiting",
            "Changes from Close received and not yet applied (database-wide)",
            registry=r,
        )
        self.changes_oldest = Gauge(
            PREFIX + "close_changes_oldest_seconds",
            "Age of the oldest change from Close not yet applied (0: none; database-wide)",
            registry=r,
        )
        self.database_up = Gauge(
            PREFIX + "database_up",
            "1 when the store answered the last scrape's read, else 0",
            registry=r,
        )

    def _add_process_gauges(self, r: CollectorRegistry) -> None:
        """This process's state at scrape time: its catalog, its sync mode, its worker."""
        self.catalog_loaded = Gauge(
            PREFIX + "catalog_loaded",
            "1 once Close's pipelines, statuses, users and fields have loaded",
            registry=r,
        )
        self.catalog_age = Gauge(
            PREFIX + "catalog_age_seconds",
            "Seconds since the catalog last loaded from Close (-1: never)",
            registry=r,
        )
        self.sync_mode = Gauge(
            PREFIX + "close_sync_mode",
            "How changes made in Close reach this process: 1 for the mode in use",
            ["mode"],
            registry=r,
        )
        self.event_log_read = Gauge(
            PREFIX + "close_event_log_last_read_timestamp_seconds",
            "When this process last read Close's event log (0: it does not read it; one "
            "process at a time does)",
            registry=r,
        )
        self.in_flight = Gauge(
            PREFIX + "worker_in_flight",
            "Submissions and changes this process's worker is working right now",
            registry=r,
        )

    # --- what the app reports as it goes ---------------------------------------------------

    def ack(self, kind: str, outcome: str, seconds: float) -> None:
        self.acks.labels(kind, outcome).observe(seconds)

    def slack_call(self, method: str, seconds: float, error: str | None) -> None:
        self.slack_calls.labels(method).observe(seconds)
        if error is not None:
            self.slack_errors.labels(method, error).inc()

    def close_request(self, endpoint: str, status: str, seconds: float) -> None:
        self.close_requests.labels(endpoint, status).observe(seconds)

    def close_waited(self, endpoint: str, seconds: float) -> None:
        self.close_waits.labels(endpoint).inc(seconds)

    def change_finished(self, state: str, source: str) -> None:
        self.changes.labels(state, source).inc()

    def step_untold(self, error: str) -> None:
        self.steps_untold.labels(error).inc()

    # --- scraping ----------------------------------------------------------------------------

    async def scrape(
        self,
        read_store: Callable[[], Awaitable[StoreNumbers]],
        *,
        catalog_loaded_at: float | None,
        sync_mode: str,
        event_log_read_at: float | None,
        in_flight: int,
        accept: str = "",
    ) -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics if `accept` asks for it) and its
        content type, with the store's gauges read now (or in the last few seconds)."""
        async with self._scrape_lock:
            fresh = self._scraped_at is not None and (
                time.monotonic() - self._scraped_at < self.store_cache_seconds
            )
            if not fresh:
                try:
                    numbers = await asyncio.wait_for(read_store(), SCRAPE_TIMEOUT_SECONDS)
                except Exception:  # the scrape still answers: database_up says what happened
                    self.database_up.set(0)
                else:
                    self._set_store(numbers)
                    self.database_up.set(1)
                self._scraped_at = time.monotonic()
        self.catalog_loaded.set(1 if catalog_loaded_at is not None else 0)
        self.catalog_age.set(time.time() - catalog_loaded_at if catalog_loaded_at else -1)
        for mode in SYNC_MODES:
            self.sync_mode.labels(mode).set(1 if mode == sync_mode else 0)
        self.event_log_read.set(event_log_read_at or 0)
        self.in_flight.set(in_flight)
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type

    def _set_store(self, numbers: StoreNumbers) -> None:
        for state in {*SUBMISSION_STATES, *numbers.submissions}:
            self.submissions.labels(state).set(numbers.submissions.get(state, 0))
        self.queue_depth.set(
            numbers.submissions.get("pending", 0) + numbers.submissions.get("creating", 0)
        )
        self.queue_oldest.set(numbers.queue_oldest_seconds)
        self.changes_waiting.set(numbers.changes_waiting)
        self.changes_oldest.set(numbers.changes_oldest_seconds)
