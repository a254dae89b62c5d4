"""Metadata database: SQLAlchemy models, engine and Alembic migrations."""
