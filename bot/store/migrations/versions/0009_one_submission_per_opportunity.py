"""One submission per opportunity: a unique index on submissions.opportunity_id.

Two identical submissions whose first attempts both died unanswered could each reconcile with
the same opportunity found in Close (neither had recorded it yet): one deal in Close, two
submissions marked created with it, so one person's deal was lost. With the index the second
record fails and that submission looks again (bot/deals/service.py).

A database that already holds such a pair keeps the plain index (the upgrade says which
opportunities, to be looked at by hand) and behaves as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    shared = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT opportunity_id FROM submissions WHERE opportunity_id IS NOT NULL "
                "GROUP BY opportunity_id HAVING COUNT(*) > 1"
            )
        )
        .scalars()
        .all()
    )
    if shared:
        log.warning(
            "Not making submissions.opportunity_id unique: these opportunities are recorded "
            "by more than one submission (see `python -m bot history`): %s",
            ", ".join(shared),
        )
        return
    op.drop_index("ix_submissions_opportunity", table_name="submissions")
    op.create_index("ix_submissions_opportunity", "submissions", ["opportunity_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_submissions_opportunity", table_name="submissions")
    op.create_index("ix_submissions_opportunity", "submissions", ["opportunity_id"])
