"""Workflow Builder steps: each `function_executed` stored before its ack, until Slack is told.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workflow_steps",
        sa.Column("function_execution_id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(32), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("bot_access_token", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("submission_id", sa.String(36), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=False),
        sa.Column("claimed_until", WHEN, nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("completed_at", WHEN, nullable=True),
    )
    op.create_index("ix_workflow_steps_due", "workflow_steps", ["state", "next_attempt_at"])
    op.create_index("ix_workflow_steps_submission", "workflow_steps", ["submission_id"])


def downgrade() -> None:
    op.drop_index("ix_workflow_steps_submission", table_name="workflow_steps")
    op.drop_index("ix_workflow_steps_due", table_name="workflow_steps")
    op.drop_table("workflow_steps")
