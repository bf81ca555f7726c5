"""Messages record groundedness and turn details; conversations may name their visitor.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("grounded", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("meta", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("visitor_id", sa.String(200), nullable=True))
        batch.create_index("ix_conversations_visitor_id", ["visitor_id"])


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_visitor_id")
        batch.drop_column("visitor_id")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("meta")
        batch.drop_column("grounded")
