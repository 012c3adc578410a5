"""Owner alerts: each change made in Close by someone else to a person's deal, kept until the
DM of its 60-second window (a scheduled send, kind `alert`) takes it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "alert_changes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("recipient", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_updated_at", when, nullable=False),
        sa.Column("opportunity_id", sa.String(64), nullable=False),
        sa.Column("alert", sa.JSON, nullable=False),
        sa.Column("send_id", sa.String(36), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.UniqueConstraint(
            "recipient", "event_id", "event_updated_at", name="uq_alert_changes_event"
        ),
    )
    op.create_index("ix_alert_changes_send", "alert_changes", ["recipient", "send_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_changes_send", table_name="alert_changes")
    op.drop_table("alert_changes")
