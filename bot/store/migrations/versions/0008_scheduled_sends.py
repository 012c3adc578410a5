"""Scheduled sends (nudges now; digests and alerts later), keyed once per (kind, recipient,
period), and each person's settings for them (nudges, alerts, their time zone).

Revision ID: 0008
Revises: 0007_channel_audiences
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007_channel_audiences"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "scheduled_sends",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("recipient", sa.String(64), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("due_at", when, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", when, nullable=False),
        sa.Column("claimed_until", when, nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("posting_at", when, nullable=True),
        sa.Column("sent_at", when, nullable=True),
        sa.Column("message_channel", sa.String(32), nullable=True),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.Column("payload", sa.JSON, nullable=True),
        sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.UniqueConstraint("kind", "recipient", "period", name="uq_scheduled_sends_key"),
    )
    op.create_index("ix_scheduled_sends_due", "scheduled_sends", ["state", "next_attempt_at"])
    op.create_table(
        "person_settings",
        sa.Column("slack_user_id", sa.String(32), primary_key=True),
        sa.Column("nudges", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("alerts", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("tz", sa.String(64), nullable=True),
        sa.Column("tz_read_at", when, nullable=True),
        sa.Column("updated_at", when, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("person_settings")
    op.drop_index("ix_scheduled_sends_due", table_name="scheduled_sends")
    op.drop_table("scheduled_sends")
