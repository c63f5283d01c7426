"""``orderflow journal [--db URL] [--json] [--run ID]``: print what the journal holds.

The database is ``--db URL`` (a SQLAlchemy URL or a SQLite file path), else ``$ORDERFLOW_DB``, else
the SQLite file in the user data directory. Opening a journal upgrades its schema to the newest
revision; a SQLite file that does not exist is reported, not created.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from orderflow.cli import types as T

if TYPE_CHECKING:
    from orderflow.config import Config


def register(subparsers: Any) -> None:
    """Add the ``journal`` command to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "journal", help="summarise the trading journal: runs, orders by state, fills, positions, PnL"
    )
    p.add_argument(
        "--db",
        type=T.db_location,
        help="journal database URL or SQLite file (default: $ORDERFLOW_DB or the user data dir)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON (amounts as exact strings)")
    p.add_argument("--run", type=T.positive_int, help="only this run id")
    p.set_defaults(config=None, log_level=None, handler=journal_cmd)


def _source(args: argparse.Namespace) -> str:
    """Which input chose the database: ``--db``, ``$ORDERFLOW_DB`` or the default."""
    if getattr(args, "db", None):
        return "--db"
    return "$ORDERFLOW_DB" if os.environ.get("ORDERFLOW_DB") else "the default journal"


def journal_cmd(cfg: Config | None, args: argparse.Namespace) -> int:
    """Print the summary; 0 on success, 2 for an unknown run, a bad URL or an unusable database (one
    line on stderr naming the URL and the driver's message). The configuration is not read."""
    from sqlalchemy.exc import SQLAlchemyError

    from orderflow.journal.db import (
        JournalDatabaseError,
        check_url,
        describe_error,
        resolve_url,
        safe_url,
        sqlite_path,
    )
    from orderflow.journal.repository import Journal
    from orderflow.journal.summary import render_summary, summary_json

    url = resolve_url(getattr(args, "db", None))
    try:
        check_url(url)
    except JournalDatabaseError as e:
        print(f"orderflow: journal {_source(args)} {e}", file=sys.stderr)
        return 2
    path = sqlite_path(url)
    if path is not None and not path.exists():
        if args.json:
            print(json.dumps({"url": url, "exists": False}))
        else:
            print(f"no journal at {path} yet: nothing recorded (paper and live runs write one)")
        return 0
    try:
        with Journal.open(url) as journal:
            if args.run is not None and args.run not in {r.id for r in journal.runs()}:
                print(f"orderflow: journal {journal.url}: no run {args.run}", file=sys.stderr)
                return 2
            summary = journal.summary(args.run)
    except JournalDatabaseError as e:
        print(f"orderflow: journal {e}", file=sys.stderr)
        return 2
    except SQLAlchemyError as e:
        print(f"orderflow: journal {safe_url(url)}: {describe_error(e)}", file=sys.stderr)
        return 2
    print(summary_json(summary) if args.json else render_summary(summary))
    return 0
