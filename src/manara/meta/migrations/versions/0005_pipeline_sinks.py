"""pipeline sinks: delivery progress per sink; the widening a paused pipeline proposes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("manara_pipelines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_change", sa.Text(), nullable=True))
    op.create_table(
        "manara_pipeline_sinks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("delivered_seq", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rows_delivered", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["pipeline_id"], ["manara_pipelines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pipeline_id", "name"),
    )
    with op.batch_alter_table("manara_pipeline_sinks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manara_pipeline_sinks_pipeline_id"), ["pipeline_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("manara_pipeline_sinks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manara_pipeline_sinks_pipeline_id"))
    op.drop_table("manara_pipeline_sinks")
    with op.batch_alter_table("manara_pipelines", schema=None) as batch_op:
        batch_op.drop_column("pending_change")
