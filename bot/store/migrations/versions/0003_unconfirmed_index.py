"""Submissions: an index for the worker's "created but not confirmed" look, so it stays cheap.

Without it every claim read all created submissions ever stored (they stay `created`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_submissions_unconfirmed",
        "submissions",
        ["state", "confirmed_at", "claimed_until"],
    )


def downgrade() -> None:
    op.drop_index("ix_submissions_unconfirmed", table_name="submissions")
