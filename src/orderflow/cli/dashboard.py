"""``orderflow dashboard``: the web dashboard of running and past runs, in its own process.

    orderflow dashboard [--host 127.0.0.1] [--port 8080] [--telemetry URL] [--db URL] [--reports DIR]...
    orderflow dashboard passwd            # set the operator password (needed for control)

It reads the engines' telemetry (``--telemetry``: a directory, ``file://`` or ``redis://`` URL; default
``$ORDERFLOW_TELEMETRY`` or the user data directory) and the journal read-only (``--db``). Binding to
an address other than loopback is refused unless an operator password is set; even then, put an SSH
tunnel or a TLS proxy in front (docs/operations.md).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderflow.cli import types as T
from orderflow.cli.common import UserError

if TYPE_CHECKING:
    from orderflow.config import Config


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dashboard", help="web dashboard: live runs, decisions, orders, risk, model; kill switch"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=T.int_range(0, 65535), default=8080, help="port (default 8080)")
    p.add_argument(
        "--telemetry", help="telemetry directory or URL (default: $ORDERFLOW_TELEMETRY or the user data dir)"
    )
    p.add_argument(
        "--db",
        type=T.db_location,
        help="journal URL or SQLite file (default: $ORDERFLOW_DB or the user data dir)",
    )
    p.add_argument(
        "--reports",
        type=Path,
        action="append",
        default=None,
        help="a directory of HTML reports to list (repeatable; default ./reports)",
    )
    p.add_argument(
        "--kill-file", type=Path, help="kill-switch file (default: $ORDERFLOW_KILL_FILE or the user data dir)"
    )
    p.add_argument("--password-file", type=Path, help="operator password file (default: the user config dir)")
    p.set_defaults(config=None, log_level=None, handler=dashboard_cmd)
    sub = p.add_subparsers(dest="dashboard_command")
    pw = sub.add_parser("passwd", help="set the operator password (argon2 hash in an owner-only file)")
    pw.add_argument("--password-file", type=Path, help="where to write it (default: the user config dir)")
    pw.add_argument("--stdin", action="store_true", help="read the password from standard input")
    pw.set_defaults(config=None, log_level=None, handler=passwd_cmd)


def passwd_cmd(cfg: Config | None, args: argparse.Namespace) -> int:
    from orderflow.dashboard.auth import set_password

    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("operator password: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ; nothing written")
    try:
        path = set_password(password, args.password_file)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(f"operator password set in {path} (mode 600)")
    return 0


def dashboard_cmd(cfg: Config | None, args: argparse.Namespace) -> int:
    import uvicorn

    from orderflow.dashboard.app import DashboardConfig, create_app
    from orderflow.dashboard.auth import PasswordFileError, is_loopback, load_hash
    from orderflow.telemetry.bus import default_url

    try:
        hashed = load_hash(args.password_file)
    except PasswordFileError as exc:
        raise UserError(str(exc)) from None
    if not is_loopback(args.host) and hashed is None:
        raise UserError(
            f"--host {args.host}: binding beyond loopback needs an operator password "
            "(run `orderflow dashboard passwd`), and a TLS proxy or SSH tunnel in front"
        )
    dcfg = DashboardConfig(
        telemetry_url=args.telemetry or default_url(),
        journal_url=args.db,
        reports=args.reports or [Path("reports")],
        kill_file=args.kill_file,
        password_file=args.password_file,
    )
    busy = T.port_in_use(args.host, args.port)
    if busy:
        raise UserError(busy)
    app = create_app(dcfg)
    print(
        f"orderflow dashboard on http://{args.host}:{args.port} (telemetry {dcfg.telemetry_url})", flush=True
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
