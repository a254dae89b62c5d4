"""Alembic environment: the engine is handed in by manara.meta.migrate (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context

from manara.meta.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        version_table="manara_alembic_version",
        # pyiceberg owns its catalog tables in the same database: never touch them
        include_object=lambda obj, name, type_, reflected, compare_to: (
            type_ != "table" or str(name).startswith("manara_")
        ),
    )
    with context.begin_transaction():
        context.run_migrations()
