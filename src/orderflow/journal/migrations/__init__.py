"""Alembic migrations of the journal (shipped in the package; run by ``Journal.open``)."""
