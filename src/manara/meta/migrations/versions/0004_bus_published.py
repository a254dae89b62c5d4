"""outbox events published to NATS JetStream (the `bus_url` setting)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("manara_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bus_published_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_manara_outbox_bus_published_at"), ["bus_published_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("manara_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manara_outbox_bus_published_at"))
        batch_op.drop_column("bus_published_at")
