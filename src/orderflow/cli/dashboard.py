"""``orderflow dashboard``: the web dashboard of running and past runs, in its own process.

    orderflow dashboard [--host 127.0.0.1] [--port 8080] [--telemetry URL] [--db URL] [--reports DIR]...
    orderflow dashboard --set-password    # set the operator password (needed for control)

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
        "dashboard", help="web dashboard: live runs, decisions, orders, risk, model; a guarded kill switch"
    )
    p.add_argument(
        "--host", type=T.non_empty, default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    p.add_argument("--port", type=T.int_range(0, 65535), default=8080, help="port (default 8080)")
    p.add_argument(
        "--telemetry",
        type=T.telemetry_location,
        help="telemetry directory or URL (default: $ORDERFLOW_TELEMETRY or the user data dir)",
    )
    p.add_argument(
        "--db",
        type=T.db_location,
        help="journal URL or SQLite file (default: $ORDERFLOW_DB or the user data dir)",
    )
    p.add_argument(
        "--reports",
        type=T.dir_path,
        action="append",
        default=None,
        help="a directory of HTML reports to list (repeatable; default ./reports)",
    )
    p.add_argument(
        "--kill-file",
        type=T.file_path,
        help="kill-switch file (default: $ORDERFLOW_KILL_FILE or the data dir)",
    )
    p.add_argument(
        "--password-file", type=T.file_path, help="operator password file (default: the user config dir)"
    )
    p.add_argument(
        "--set-password",
        action="store_true",
        help="set the operator password (argon2 hash in an owner-only file) and exit",
    )
    p.add_argument("--password-stdin", action="store_true", help="with --set-password: read it from stdin")
    p.set_defaults(config=None, log_level=None, handler=dashboard_cmd)


def passwd_cmd(args: argparse.Namespace) -> int:
    from orderflow.dashboard.auth import set_password

    if args.password_stdin:
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
    if args.set_password:
        return passwd_cmd(args)
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
            "(run `orderflow dashboard --set-password`), and a TLS proxy or SSH tunnel in front"
        )
    if args.telemetry == "off":
        raise UserError("--telemetry off: the dashboard needs telemetry to read")
    dcfg = DashboardConfig(
        telemetry_url=default_url() if args.telemetry in (None, "default") else args.telemetry,
        journal_url=args.db,
        reports=[Path(r) for r in args.reports] if args.reports else [Path("reports")],
        kill_file=Path(args.kill_file) if args.kill_file else None,
        password_file=Path(args.password_file) if args.password_file else None,
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
