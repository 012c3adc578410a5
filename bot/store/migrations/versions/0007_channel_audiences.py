"""Who can read a channel (Slack Connect): what the bot learned, shared by its processes.

Revision ID: 0007_channel_audiences
Revises: 0006_close_connections
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_channel_audiences"
down_revision: str | None = "0006_close_connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_audiences",
        sa.Column("channel_id", sa.String(32), primary_key=True),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("channel_audiences")
