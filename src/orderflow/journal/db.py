"""Connecting to the journal's database and keeping its schema current (alembic, run in-process).

The URL is ``--db`` (a SQLAlchemy URL or a SQLite file path), else ``$ORDERFLOW_DB``, else a SQLite
file in the user data directory. SQLite connections use WAL, foreign keys and a busy timeout, and
SQLAlchemy (not the driver) begins transactions, so writes can take the lock up front.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

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


def upgrade_schema(engine: sa.Engine) -> None:
    """Upgrade the database to the newest revision shipped in ``orderflow.journal.migrations``
    (creates the schema on an empty database; a no-op when already there). Concurrent callers queue."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "orderflow.journal:migrations")
    with engine.execution_options(journal_write=True).connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def head_revision() -> str:
    """The newest revision shipped with the package."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", "orderflow.journal:migrations")
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head
