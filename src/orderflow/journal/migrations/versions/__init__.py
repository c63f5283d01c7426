"""Alembic revisions of the journal schema, oldest first."""
