"""Per-person Close access: people's Close OAuth connections (tokens sealed) and the single-use
states of their *Connect Close* links.

Revision ID: 0006_close_connections
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_close_connections"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "close_connections",
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("slack_user_id", sa.String(32), primary_key=True),
        sa.Column("close_user_id", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("access_token_sealed", sa.Text(), nullable=False),
        sa.Column("refresh_token_sealed", sa.Text(), nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("refreshing_until", WHEN, nullable=True),
        sa.Column("refreshing_by", sa.String(128), nullable=True),
        sa.Column("connected_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("broken_at", WHEN, nullable=True),
        sa.Column("broken_reason", sa.Text(), nullable=True),
        sa.Column("broken_told_at", WHEN, nullable=True),
    )
    op.create_index("ix_close_connections_user", "close_connections", ["slack_user_id"])
    op.create_table(
        "close_oauth_states",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("slack_user_id", sa.String(32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
    )
    op.create_index(
        "ix_close_oauth_states_expires_at", "close_oauth_states", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_close_oauth_states_expires_at", table_name="close_oauth_states")
    op.drop_table("close_oauth_states")
    op.drop_index("ix_close_connections_user", table_name="close_connections")
    op.drop_table("close_connections")
