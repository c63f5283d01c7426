"""``orderflow alerts run|test``: the alerter (its own process) and a test message to every channel.

    orderflow alerts run [--telemetry URL] [--db URL] [--kill-file F] [--minutes M] [--config DIR]
    orderflow alerts test [--config DIR]

The ``alerts:`` section (``config/alerts.yaml``) names the channels by apprise URL, the routing by
severity, the rules and the report schedule (docs/operations.md). A bad section (an unknown key, a
malformed channel URL, a secret that is not set) is refused at start in one line naming it.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import TYPE_CHECKING, Any

from orderflow.cli import types as T
from orderflow.cli.common import UserError, add_common

if TYPE_CHECKING:
    from orderflow.config import Config

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    al = subparsers.add_parser(
        "alerts", help="the alerter: rules, anomalies, channels (email, Telegram, SMS, webhook), reports"
    ).add_subparsers(dest="alerts_command", required=True)
    p = al.add_parser("run", help="follow the engines' telemetry and send alerts and scheduled reports")
    add_common(p)
    p.add_argument(
        "--telemetry",
        type=T.telemetry_location,
        help="telemetry directory or URL (default: monitor.telemetry, $ORDERFLOW_TELEMETRY or the data dir)",
    )
    p.add_argument(
        "--db", type=T.db_location, help="journal URL or SQLite file (default: $ORDERFLOW_DB or the data dir)"
    )
    p.add_argument(
        "--kill-file",
        type=T.file_path,
        help="kill-switch file (default: $ORDERFLOW_KILL_FILE or the data dir)",
    )
    p.add_argument(
        "--minutes", type=T.positive_float, help="stop after this long (default: run until stopped)"
    )
    p.set_defaults(handler=alerts_run)
    p = al.add_parser("test", help="send one test message to every configured channel and report each result")
    add_common(p)
    p.set_defaults(handler=alerts_test)


def _checked(cfg: Config) -> dict[str, str]:
    from orderflow.alerts.service import check_config
    from orderflow.secrets import SecretsError

    try:
        return check_config(cfg.alerts)
    except (ValueError, SecretsError) as exc:
        raise UserError(f"alerts: {exc}") from None


def alerts_run(cfg: Config, args: argparse.Namespace) -> int:
    import signal

    from orderflow.alerts.service import AlertService, Sources
    from orderflow.journal.db import JournalDatabaseError, resolve_url
    from orderflow.secrets import install_redaction

    urls = _checked(cfg)
    install_redaction()
    telemetry = args.telemetry or cfg.monitor.telemetry_url()
    if telemetry is None or telemetry == "off":
        raise UserError("alerts run: telemetry is off (monitor.telemetry): there is nothing to follow")
    if telemetry == "default":
        from orderflow.telemetry.bus import default_url

        telemetry = default_url()
    src = Sources(telemetry=telemetry, journal=resolve_url(args.db), kill_file=args.kill_file)
    try:
        svc = AlertService(cfg.alerts, src, channel_urls=urls)
    except JournalDatabaseError as exc:
        raise UserError(f"alerts run: journal {exc}") from None
    if not urls:
        log.warning("alerts: no channel configured (alerts.channels): messages are journaled, not sent")
    routes = {s: ",".join(cfg.alerts.routing.channels(s)) or "-" for s in ("critical", "warning", "info")}
    log.warning(
        "alerter: telemetry %s, journal %s; routes critical=%s warning=%s info=%s; telegram %s",
        telemetry, svc.store.journal.url, routes["critical"], routes["warning"], routes["info"],
        "on" if cfg.alerts.telegram.enabled else "off",
    )  # fmt: skip
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    svc.run(stop, max_s=args.minutes * 60.0 if args.minutes else None)
    return 0


def alerts_test(cfg: Config, args: argparse.Namespace) -> int:
    import socket
    import time

    from orderflow.alerts.delivery import Deliverer
    from orderflow.alerts.store import AlertStore

    urls = _checked(cfg)
    if not urls:
        raise UserError("alerts test: no channel configured (alerts.channels in config/alerts.yaml)")
    store = AlertStore.open()
    try:
        d = Deliverer(store, urls, cfg.alerts.retry)
        title = "orderflow test message"
        body = (
            f"A test from `orderflow alerts test` on {socket.gethostname()} at "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: this channel works."
        )
        results = d.send_test(title, body)
    finally:
        store.close()
    failed = 0
    for name in sorted(results):
        ok, err = results[name]
        failed += not ok
        print(f"{name:<20} {'sent' if ok else 'FAILED'}{'' if ok else ': ' + err}")
    return 1 if failed else 0
