"""The database schema: submissions (the durable queue and audit), Slack→Close user links, the
Close→Slack sync (changes received, opportunities as shown, sync state), Workflow Builder
steps received, people's own Close connections (OAuth), who can read each channel, scheduled
sends (nudges…), each person's settings for them, and owner alerts waiting for their DM."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every database.

    SQLite has no time zones: without this it hands back naive datetimes, and the first
    `now - first_attempt_at` in the retry path raises TypeError.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: UTCDateTime(),
    }


class SubmissionRow(Base):
    """One modal submission, from the moment it is accepted until Close has it (or it failed)."""

    __tablename__ = "submissions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Minted when the modal opened: a double tap or a re-sent request maps to the same row.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    team_id: Mapped[str | None] = mapped_column(String(32))
    slack_user_id: Mapped[str] = mapped_column(String(32), index=True)
    request: Mapped[dict[str, Any]] = mapped_column()
    reply_to: Mapped[dict[str, Any]] = mapped_column()
    lead_id: Mapped[str | None] = mapped_column(String(64))
    opportunity_id: Mapped[str | None] = mapped_column(String(64))
    # Audit: the exact `POST /opportunity/` sent to Close, and what came back.
    sent: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    first_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    # Which process holds (or last held) the claim: one instance works a submission at a time.
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    notice_channel: Mapped[str | None] = mapped_column(String(32))
    notice_ts: Mapped[str | None] = mapped_column(String(32))
    # Where the confirmation's thread is (replies about changes go there), its details message
    # (the one with Edit/Won/Lost) and the deals-channel announcement.
    thread_channel: Mapped[str | None] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    details_ts: Mapped[str | None] = mapped_column(String(32))
    announce_channel: Mapped[str | None] = mapped_column(String(32))
    announce_ts: Mapped[str | None] = mapped_column(String(32))
    # Set once when the "Queued" notice goes out, so retries never post it twice.
    queued_notice_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Set when the user has been told it is in Close; created and unconfirmed is still work.
    confirmed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        Index("ix_submissions_due", "state", "next_attempt_at"),
        # Created rows stay `created` forever: the claim's "not yet confirmed" look needs this.
        Index("ix_submissions_unconfirmed", "state", "confirmed_at", "claimed_until"),
        # Close -> Slack finds the submission behind a changed opportunity.
        Index("ix_submissions_opportunity", "opportunity_id", unique=True),
    )


class UserLinkRow(Base):
    """How a Slack user maps to a Close user: an admin override, or a cached email match."""

    __tablename__ = "user_links"

    slack_user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    close_user_id: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(320))
    set_by: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


class CloseEventRow(Base):
    """A change Close told us about (webhook or event log): the durable queue of Close -> Slack.

    Close merges quick successive events into one (same id, later `date_updated`), so the
    pair is the delivery's identity: a replay or the poller seeing a delivered event is a
    no-op, a merged event is new work.
    """

    __tablename__ = "close_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    event_updated_at: Mapped[datetime] = mapped_column()
    object_id: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    event: Mapped[dict[str, Any]] = mapped_column()
    state: Mapped[str] = mapped_column(String(16))
    # Which steps of telling Slack are done (a retry after a rate limit or a crash resumes).
    progress: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column()
    applied_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        UniqueConstraint("event_id", "event_updated_at", name="uq_close_events_delivery"),
        Index("ix_close_events_due", "state", "next_attempt_at"),
    )


class OpportunityViewRow(Base):
    """An opportunity as Slack shows it: the last state told, and where it is shown.

    `version` is Close's `date_updated` of `shown`: a change older than it is never applied,
    so a late or replayed event cannot roll the summary back.
    """

    __tablename__ = "opportunity_views"

    opportunity_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    submission_id: Mapped[str | None] = mapped_column(String(36))
    shown: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    version: Mapped[datetime | None] = mapped_column(nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    won_announced_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Set while the app itself writes to Close (Edit/Won/Lost): its own event waits for it.
    writing_until: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column()


class SyncStateRow(Base):
    """Small durable facts of the sync (webhook subscription, event-log cursor) and leases;
    also Slack's `link_shared` deliveries taken (`link_shared:<event id>`, bot.unfurl.deliveries)."""

    __tablename__ = "sync_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    held_until: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column()


class WorkflowStepRow(Base):
    """One run of the "Create a Close opportunity" workflow step, stored before its event is acked.

    The execution id is the key: a redelivered event is a no-op. The step becomes a submission
    (`submission_id`, under the key `workflow:<execution id>`) once its inputs are read, and is
    done once Slack has been told the outcome with the execution's own token.
    """

    __tablename__ = "workflow_steps"

    function_execution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str | None] = mapped_column(String(32))
    inputs: Mapped[dict[str, Any]] = mapped_column()
    # The execution's `xwfp-` token: functions.completeSuccess/completeError take only it.
    bot_access_token: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    submission_id: Mapped[str | None] = mapped_column(String(36))
    # Why it failed (what the workflow was told), or the last transient problem.
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        Index("ix_workflow_steps_due", "state", "next_attempt_at"),
        Index("ix_workflow_steps_submission", "submission_id"),
    )


class CloseConnectionRow(Base):
    """A person's own Close access (OAuth): who they are in Close and their sealed tokens.

    `version` fences the refresh: each new pair of tokens bumps it, and a refresh is taken
    (`refreshing_until`/`refreshing_by`, a lease) and saved only against the version it read,
    so two processes never both spend the same refresh token.
    """

    __tablename__ = "close_connections"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slack_user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    close_user_id: Mapped[str] = mapped_column(String(64))
    organization_id: Mapped[str] = mapped_column(String(64))
    # Fernet tokens (TOKEN_ENCRYPTION_KEY), never the tokens themselves.
    access_token_sealed: Mapped[str] = mapped_column(Text)
    refresh_token_sealed: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column()
    version: Mapped[int] = mapped_column(Integer)
    refreshing_until: Mapped[datetime | None] = mapped_column(nullable=True)
    refreshing_by: Mapped[str | None] = mapped_column(String(128))
    connected_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    # Close refused the refresh: the person must connect again, and is told so once.
    broken_at: Mapped[datetime | None] = mapped_column(nullable=True)
    broken_reason: Mapped[str | None] = mapped_column(Text)
    broken_told_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (Index("ix_close_connections_user", "slack_user_id"),)


class OAuthStateRow(Base):
    """A *Connect Close* link's state: single-use, short-lived, bound to who asked.

    Keyed by the state's SHA-256, so the table holds nothing a browser could replay.
    """

    __tablename__ = "close_oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    slack_user_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ChannelAudienceRow(Base):
    """Who can read a channel, as the bot last learned it (bot.slack.audience): `dm`,
    `internal`, or `external` (shared with another organization, or such a share pending)."""

    __tablename__ = "channel_audiences"

    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    audience: Mapped[str] = mapped_column(String(16))
    # Where it was learned: `conversations.info`, `event` (an envelope's flag), `channel_shared`…
    source: Mapped[str] = mapped_column(String(32))
    learned_at: Mapped[datetime] = mapped_column()


class ScheduledSendRow(Base):
    """One scheduled send (a nudge, later a digest or an alert): at most one per
    (kind, recipient, period) however many processes plan it, claimed like every job."""

    __tablename__ = "scheduled_sends"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    # A Slack user id (a DM) or a channel id.
    recipient: Mapped[str] = mapped_column(String(64))
    # The period it is for, in the recipient's terms: a local date `2026-12-07` for a nudge.
    period: Mapped[str] = mapped_column(String(32))
    # `pending`, `sent` (a message went out), `skipped` (nothing to send, or switched off).
    state: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    # Set just before the message is posted, cleared when Slack says it was not: a claim that
    # finds it set (its holder died mid-post) does not post again, so never twice.
    posting_at: Mapped[datetime | None] = mapped_column(nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    message_channel: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    # What was sent, so a tap can rebuild the message (a nudge: its deals, each line's state).
    payload: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # Bumped by each write of `payload` after the send: taps on two lines never undo each other.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        UniqueConstraint("kind", "recipient", "period", name="uq_scheduled_sends_key"),
        Index("ix_scheduled_sends_due", "state", "next_attempt_at"),
    )


class AlertChangeRow(Base):
    """A change made in Close by someone else to a person's deal (bot.alerts), waiting for the
    DM of its window: `send_id` is the scheduled send (kind `alert`) that took it."""

    __tablename__ = "alert_changes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The Slack user alerted (the deal's owner).
    recipient: Mapped[str] = mapped_column(String(32))
    # The Close event it came from: a change noted twice (a retry, another process) is one row.
    event_id: Mapped[str] = mapped_column(String(64))
    event_updated_at: Mapped[datetime] = mapped_column()
    opportunity_id: Mapped[str] = mapped_column(String(64))
    # What the DM says of it (bot.blocks.alerts.Alert).
    alert: Mapped[dict[str, Any]] = mapped_column()
    send_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        UniqueConstraint(
            "recipient", "event_id", "event_updated_at", name="uq_alert_changes_event"
        ),
        Index("ix_alert_changes_send", "recipient", "send_id"),
    )


class PersonSettingsRow(Base):
    """A person's switches for what the bot sends on its own, and their zone as Slack said it."""

    __tablename__ = "person_settings"

    slack_user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    nudges: Mapped[bool] = mapped_column(Boolean, server_default=true(), default=True)
    alerts: Mapped[bool] = mapped_column(Boolean, server_default=true(), default=True)
    tz: Mapped[str | None] = mapped_column(String(64))
    tz_read_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column()
