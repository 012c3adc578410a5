"""Close -> Slack: changes received from Close, opportunities as shown, sync state; where each
confirmation's thread, details and announcement are.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)
SUBMISSION_COLUMNS = (
    "thread_channel",
    "thread_ts",
    "details_ts",
    "announce_channel",
    "announce_ts",
)


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        for name in SUBMISSION_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(32), nullable=True))
    op.create_index("ix_submissions_opportunity", "submissions", ["opportunity_id"])
    op.create_table(
        "close_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_updated_at", WHEN, nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=False),
        sa.Column("claimed_until", WHEN, nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("received_at", WHEN, nullable=False),
        sa.Column("applied_at", WHEN, nullable=True),
        sa.UniqueConstraint("event_id", "event_updated_at", name="uq_close_events_delivery"),
    )
    op.create_index("ix_close_events_due", "close_events", ["state", "next_attempt_at"])
    op.create_index("ix_close_events_object_id", "close_events", ["object_id"])
    op.create_table(
        "opportunity_views",
        sa.Column("opportunity_id", sa.String(64), primary_key=True),
        sa.Column("submission_id", sa.String(36), nullable=True),
        sa.Column("shown", sa.JSON(), nullable=True),
        sa.Column("version", WHEN, nullable=True),
        sa.Column("deleted_at", WHEN, nullable=True),
        sa.Column("won_announced_at", WHEN, nullable=True),
        sa.Column("writing_until", WHEN, nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "sync_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("held_until", WHEN, nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sync_state")
    op.drop_table("opportunity_views")
    op.drop_index("ix_close_events_object_id", table_name="close_events")
    op.drop_index("ix_close_events_due", table_name="close_events")
    op.drop_table("close_events")
    op.drop_index("ix_submissions_opportunity", table_name="submissions")
    with op.batch_alter_table("submissions") as batch:
        for name in SUBMISSION_COLUMNS:
            batch.drop_column(name)
