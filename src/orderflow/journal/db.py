"""Connecting to the journal's database and keeping its schema current (alembic, run in-process).

The URL is ``--db`` (a SQLAlchemy URL or a SQLite file path), else ``$ORDERFLOW_DB``, else a SQLite
file in the user data directory. SQLite connections use WAL, foreign keys and a busy timeout, and
SQLAlchemy (not the driver) begins transactions, so writes can take the lock up front.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from orderflow.journal.models import JournalError

BACKENDS = ("sqlite", "postgresql")
_URL_HELP = "a SQLite file path, sqlite:///FILE or postgresql://USER@HOST/DB"
_PG_LOCK_KEY = 0x6F72646572666C6F  # "orderflo": serialises concurrent schema upgrades on PostgreSQL


def default_url() -> str:
    """``sqlite:///<user data dir>/orderflow/journal.sqlite``."""
    import platformdirs

    return f"sqlite:///{Path(platformdirs.user_data_dir('orderflow')) / 'journal.sqlite'}"


def resolve_url(db: str | None = None) -> str:
    """The journal URL: ``db`` (``--db``), else ``$ORDERFLOW_DB``, else :func:`default_url`. A plain path
    means a SQLite file; ``postgresql://`` means ``postgresql+psycopg://``."""
    url = db or os.environ.get("ORDERFLOW_DB") or default_url()
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser()}"
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class JournalDatabaseError(JournalError):
    """The journal's database cannot be used: ``url`` (password hidden) and the real ``cause`` in one
    line (the driver's message: "file is not a database", "Connection refused", ...)."""

    def __init__(self, url: str, cause: str) -> None:
        self.url, self.cause = safe_url(url), cause
        super().__init__(f"{self.url}: {cause}")


def safe_url(url: str) -> str:
    """``url`` with any password hidden (as given when it does not parse)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def describe_error(e: BaseException) -> str:
    """The real cause of a database error, in one line: the driver's message (SQLAlchemy wraps it in an
    exception whose class docstring says only "Wraps a DB-API OperationalError")."""
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def check_url(url: str) -> None:
    """Raise :class:`JournalDatabaseError` unless ``url`` parses and names a supported back end."""
    try:
        backend = sa.engine.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        raise JournalDatabaseError(url, f"not a database URL (use {_URL_HELP})") from None
    if backend not in BACKENDS:
        raise JournalDatabaseError(
            url, f"unsupported database {backend!r} (the journal runs on SQLite or PostgreSQL: {_URL_HELP})"
        )


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (``None`` for other back ends and in-memory databases)."""
    u = sa.engine.make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def make_engine(url: str, *, synchronous: str = "NORMAL") -> sa.Engine:
    """An engine for ``url``. SQLite: WAL, foreign keys on, 30 s busy timeout, ``synchronous`` as given
    (``NORMAL`` survives a killed process, ``FULL`` also a power cut), and transactions begun by
    SQLAlchemy (``BEGIN IMMEDIATE`` for writes, see :class:`Journal`)."""
    url = resolve_url(url)
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30.0})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver issues no BEGIN of its own
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", f"synchronous={synchronous}", "foreign_keys=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("journal_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def readonly_engine(url: str) -> sa.Engine:
    """An engine that can only read the journal at ``url`` (reports, the dashboard, the alerter's
    reports): SQLite opened with ``mode=ro`` (the writer's WAL keeps it consistent; the file must
    exist), PostgreSQL with ``default_transaction_read_only``. It never migrates the schema."""
    import sqlite3

    url = resolve_url(url)
    path = sqlite_path(url)
    if path is not None:
        return sa.create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False
            ),
        )
    return sa.create_engine(
        url, pool_pre_ping=True, connect_args={"options": "-c default_transaction_read_only=on"}
    )


def upgrade_schema(engine: sa.Engine) -> None:
    """Upgrade the database to the newest revision shipped in ``orderflow.journal.migrations``
    (creates the schema on an empty database; a no-op when already there). Concurrent callers queue."""
    with _quiet_alembic():  # it logs its plugins at import
        from alembic import command
        from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "orderflow.journal:migrations")
    with engine.execution_options(journal_write=True).connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        cfg.attributes["connection"] = conn
        with _quiet_alembic():
            command.upgrade(cfg, "head")


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic logs every plugin and migration step at INFO; a journal upgrade says nothing unless
    the ``alembic`` logger (or the root one) is set to DEBUG."""
    alog = logging.getLogger("alembic")
    before = alog.level
    if not alog.isEnabledFor(logging.DEBUG):
        alog.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alog.setLevel(before)


def head_revision() -> str:
    """The newest revision shipped with the package."""
    with _quiet_alembic():
        from alembic.config import Config
        from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", "orderflow.journal:migrations")
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head
