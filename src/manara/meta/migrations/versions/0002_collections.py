"""document collections and token clearance

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
    op.create_table(
        "manara_collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("read_role", sa.String(length=16), nullable=False),
        sa.Column("default_classification", sa.String(length=16), nullable=False),
        sa.Column("embedding_model", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["manara_tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    with op.batch_alter_table("manara_collections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manara_collections_tenant_id"), ["tenant_id"], unique=False)
    with op.batch_alter_table("manara_api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("clearance", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("manara_api_tokens", schema=None) as batch_op:
        batch_op.drop_column("clearance")
    with op.batch_alter_table("manara_collections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manara_collections_tenant_id"))
    op.drop_table("manara_collections")
