"""Notes and user tags on studies (a trial's live in its ``tags`` JSON already).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("studies", sa.Column("note", sa.Text(), nullable=True))
    op.add_column("studies", sa.Column("tags", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch copy of ``studies`` would
    # delete every trial through the foreign keys' ON DELETE CASCADE.
    op.drop_column("studies", "tags")
    op.drop_column("studies", "note")
