"""Alembic environment of the journal.

``Journal.open`` passes an open connection in ``config.attributes["connection"]``; the ``alembic``
command line (``alembic -x url=sqlite:///path upgrade head`` with ``script_location =
orderflow.journal:migrations``) makes its own engine from ``-x url=`` or ``sqlalchemy.url``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from orderflow.journal.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("journal migrations: give the database with -x url=... or sqlalchemy.url")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("journal migrations: offline (SQL script) mode is not supported")
run_migrations_online()
