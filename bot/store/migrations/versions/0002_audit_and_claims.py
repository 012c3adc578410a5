"""Submissions: the body sent to Close, who holds the claim, when "Queued" and "Created" were said.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as table:
        table.add_column(sa.Column("sent", sa.JSON(), nullable=True))
        table.add_column(sa.Column("claimed_by", sa.String(128), nullable=True))
        table.add_column(sa.Column("queued_notice_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as table:
        table.drop_column("confirmed_at")
        table.drop_column("queued_notice_at")
        table.drop_column("claimed_by")
        table.drop_column("sent")
