"""pipelines, their runs, and the event bus (outbox, subscriptions, deliveries)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "manara_pipelines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("paused", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["manara_tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    with op.batch_alter_table("manara_pipelines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manara_pipelines_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "manara_pipeline_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("rows_in", sa.BigInteger(), nullable=False),
        sa.Column("rows_loaded", sa.BigInteger(), nullable=False),
        sa.Column("rows_quarantined", sa.BigInteger(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("commits", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["pipeline_id"], ["manara_pipelines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("manara_pipeline_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manara_pipeline_runs_pipeline_id"), ["pipeline_id"], unique=False
        )

    op.create_table(
        "manara_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("manara_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manara_outbox_tenant"), ["tenant"], unique=False)
        batch_op.create_index(batch_op.f("ix_manara_outbox_dispatched_at"), ["dispatched_at"], unique=False)
    op.create_table(
        "manara_subscriptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["manara_tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("manara_subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manara_subscriptions_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "manara_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["subscription_id"], ["manara_subscriptions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("manara_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manara_deliveries_subscription_id"), ["subscription_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_manara_deliveries_status"), ["status"], unique=False)


def downgrade() -> None:
    op.drop_table("manara_deliveries")
    op.drop_table("manara_subscriptions")
    op.drop_table("manara_outbox")
    with op.batch_alter_table("manara_pipeline_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manara_pipeline_runs_pipeline_id"))
    op.drop_table("manara_pipeline_runs")
    with op.batch_alter_table("manara_pipelines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manara_pipelines_tenant_id"))
    op.drop_table("manara_pipelines")
