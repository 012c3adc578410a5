"""The database schema: submissions (the durable queue and audit) and Slack→Close user links."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
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
    response: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    first_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    notice_channel: Mapped[str | None] = mapped_column(String(32))
    notice_ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (Index("ix_submissions_due", "state", "next_attempt_at"),)


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
