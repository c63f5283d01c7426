"""``orderflow report --period daily|weekly|monthly [--date D] [--run R] [--out DIR] [--db URL] [--json]``.

Builds the period's report from the journal (read-only) into ``--out`` (default
``reports/<period>-<label>``): ``report.html`` with plots, ``report.json`` with every figure and
``report.pdf`` printed by headless Chromium when it is installed. ``--date`` picks the period that
contains that UTC date; without it, the last complete period. Weeks start on Monday.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderflow.cli import types as T
from orderflow.cli.common import UserError

if TYPE_CHECKING:
    from orderflow.config import Config


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="daily / weekly / monthly report from the journal (HTML, JSON, PDF)"
    )
    p.add_argument("--period", choices=("daily", "weekly", "monthly"), default="daily")
    p.add_argument(
        "--date", help="a UTC date (YYYY-MM-DD) inside the period (default: the last complete one)"
    )
    p.add_argument("--run", type=T.positive_int, help="only this run id")
    p.add_argument("--out", type=T.dir_path, help="output directory (default reports/<period>-<label>)")
    p.add_argument(
        "--db",
        type=T.db_location,
        help="journal URL or SQLite file (default: $ORDERFLOW_DB or the user data dir)",
    )
    p.add_argument("--no-pdf", action="store_true", help="skip the PDF")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(config=None, log_level=None, handler=report_cmd)


def report_cmd(cfg: Config | None, args: argparse.Namespace) -> int:
    from orderflow.journal.db import readonly_engine, resolve_url, sqlite_path
    from orderflow.reports.build import build_report, plain
    from orderflow.reports.periods import last_complete, parse_day, period_of
    from orderflow.reports.render import write_report

    try:
        period = (
            period_of(args.period, parse_day(args.date))
            if args.date
            else last_complete(args.period, dt.datetime.now(dt.UTC))
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    url = resolve_url(args.db)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise UserError(f"journal {path} does not exist (--db, $ORDERFLOW_DB)")
    import sqlalchemy as sa

    engine = readonly_engine(url)
    try:
        with engine.connect() as conn:
            rep = build_report(conn, period, args.run)
    except sa.exc.SQLAlchemyError as exc:
        raise UserError(f"journal {url}: {' '.join(str(exc).split())[:200]}") from None
    finally:
        engine.dispose()
    out = Path(args.out) if args.out else Path("reports") / f"{period.kind}-{period.label}"
    paths = write_report(rep, out, pdf=not args.no_pdf)
    if args.json:
        print(json.dumps(plain(rep), indent=2))
    else:
        pnl = rep["pnl"]
        print(
            f"{period.kind} report {period.label} (UTC): net {float(pnl['net']):,.4f} = gross "
            f"{float(pnl['gross']):,.4f} - fees {float(pnl['fees']):,.4f} + funding "
            f"{float(pnl['funding']):,.4f}; {rep['trades']['count']} round trips"
        )
        m = rep["model"]
        if m is not None and m.get("brier") is not None:
            print(
                f"  model: {m['resolved']} predictions with an outcome, Brier {m['brier']:.4f} (baseline "
                f"{m['baseline']['brier']:.4f}), log loss {m['log_loss']:.4f} (baseline "
                f"{m['baseline']['log_loss']:.4f}), ECE {m['reliability']['ece']:.4f}"
            )
        for kind, p in paths.items():
            print(f"  {kind}: {p}")
    return 0
