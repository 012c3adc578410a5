"""The database schema: submissions (the durable queue and audit) and Slack→Close user links."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Dialect, Index, Integer, String, Text
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
