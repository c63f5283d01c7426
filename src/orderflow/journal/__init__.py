"""The trading journal: runs, orders and their events, fills, positions, equity, signals, risk events
and model versions in SQL (SQLAlchemy 2.0; SQLite file by default, PostgreSQL by URL), the schema
kept by alembic migrations shipped in the package.

Modules: ``db`` (URL resolution, engine set-up, schema upgrade), ``models`` (schema, order state
machine, errors), ``repository`` (:class:`Journal`), ``summary`` (what is recorded, as a dict, a table
or JSON), ``cli`` (``orderflow journal``), ``migrations`` (alembic environment and revisions).
"""

from orderflow.journal.db import JournalDatabaseError, default_url, head_revision, resolve_url
from orderflow.journal.models import (
    OPEN_STATES,
    ORDER_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    UNRESOLVED_STATES,
    DuplicateOrderError,
    IllegalTransitionError,
    InconsistentReportError,
    JournalError,
    UnknownOrderError,
)
from orderflow.journal.repository import Journal

__all__ = [
    "OPEN_STATES",
    "ORDER_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "UNRESOLVED_STATES",
    "DuplicateOrderError",
    "IllegalTransitionError",
    "InconsistentReportError",
    "Journal",
    "JournalDatabaseError",
    "JournalError",
    "UnknownOrderError",
    "default_url",
    "head_revision",
    "resolve_url",
]
