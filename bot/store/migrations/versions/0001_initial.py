"""Initial schema: submissions (the durable queue and audit) and user_links.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=True),
        sa.Column("slack_user_id", sa.String(32), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("reply_to", sa.JSON(), nullable=False),
        sa.Column("lead_id", sa.String(64), nullable=True),
        sa.Column("opportunity_id", sa.String(64), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=False),
        sa.Column("first_attempt_at", WHEN, nullable=True),
        sa.Column("claimed_until", WHEN, nullable=True),
        sa.Column("notice_channel", sa.String(32), nullable=True),
        sa.Column("notice_ts", sa.String(32), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_submissions_state", "submissions", ["state"])
    op.create_index("ix_submissions_slack_user_id", "submissions", ["slack_user_id"])
    op.create_index("ix_submissions_due", "submissions", ["state", "next_attempt_at"])
    op.create_table(
        "user_links",
        sa.Column("slack_user_id", sa.String(32), primary_key=True),
        sa.Column("close_user_id", sa.String(64), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("set_by", sa.String(32), nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("user_links")
    op.drop_index("ix_submissions_due", "submissions")
    op.drop_index("ix_submissions_slack_user_id", "submissions")
    op.drop_index("ix_submissions_state", "submissions")
    op.drop_table("submissions")
