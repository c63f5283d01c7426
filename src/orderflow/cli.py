"""The ``orderflow`` command.

Every command that reads or writes market data takes ``--store DIR`` (else ``ORDERFLOW_STORE``, else
the config's ``data.store``, else a folder in the user's data directory).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

from orderflow import __version__
from orderflow import cli_types as T

log = logging.getLogger("orderflow")


SIM_HOURS = T.float_range(0.0, 24 * 31)  # the simulator's own limits: (0, 31 days]
HTTP_URL = T.url("http", "https")
WS_URL = T.url("ws", "wss")
PARQUET_OUT = T.parquet_file


class _Parser(argparse.ArgumentParser):
    """argparse with its error in one line: ``orderflow run: error: argument --hours: ...`` (exit 2),
    the usage left to ``--help``. Sub-command parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        type=T.dir_path,
        help="market-data store directory (default: $ORDERFLOW_STORE or the user data dir)",
    )
    p.add_argument(
        "--config",
        type=T.existing_dir,
        help="config directory with YAML files (default: $ORDERFLOW_CONFIG or ./config)",
    )
    p.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override logging.level"
    )


def _add_allow_gaps(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-gaps",
        action="store_true",
        help="use a raw recording whose depth chain has gaps (refused by default; the gaps are listed)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="orderflow",
        description="orderflow: order-flow + machine-learning trading for Binance (market data, features, "
        "models, backtests, live trading). Run `orderflow demo` for the main job on embedded defaults.",
    )
    parser.add_argument("--version", action="version", version=f"orderflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "run", help="market data only: simulate a market, store it, check it and print its stylized facts"
    )
    _add_common(p)
    p.add_argument("--hours", type=SIM_HOURS, help="simulated hours (default: simulator.hours from config)")
    p.add_argument("--seed", type=T.non_negative_int, help="simulator seed (default: simulator.seed)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser("config", help="show the effective configuration")
    _add_common(p)

    data = sub.add_parser("data", help="market data: store, import, record, check, simulate").add_subparsers(
        dest="data_command", required=True
    )

    p = data.add_parser("ls", help="list stored datasets with spans and row counts")
    _add_common(p)
    p.add_argument("--json", action="store_true")

    p = data.add_parser("import", help="import files into the store")
    _add_common(p)
    p.add_argument(
        "paths",
        nargs="+",
        type=T.existing_file,
        help="files to import (several raw Binance files continue one depth chain)",
    )
    p.add_argument("--format", required=True, help="binance-raw | tardis | binance-vision | ohlcv")
    p.add_argument("--venue", type=T.venue, help="venue name (default: inferred, e.g. binance-usdm)")
    p.add_argument("--symbol", type=T.symbol, help="symbol (default: inferred from the file)")
    p.add_argument(
        "--interval", type=T.interval, help="bar interval for kline/OHLCV files (default: inferred)"
    )
    p.add_argument("--json", action="store_true")

    p = data.add_parser("check", help="data-quality report; exits 1 when a configured threshold is crossed")
    _add_common(p)
    p.add_argument("--venue", type=T.venue)
    p.add_argument("--symbol", type=T.symbol)
    p.add_argument("--json", action="store_true")

    p = data.add_parser(
        "verify", help="read every stored part (footer, pages, checksums); exits 1 naming each damaged one"
    )
    _add_common(p)
    p.add_argument("--venue", type=T.venue)
    p.add_argument("--symbol", type=T.symbol)
    p.add_argument("--quick", action="store_true", help="footers only (fast): finds truncated parts")
    p.add_argument("--json", action="store_true")

    p = data.add_parser("simulate", help="simulate an order-flow-driven market into the store")
    _add_common(p)
    p.add_argument("--symbol", type=T.symbol, help="symbol (default: simulator.symbol)")
    p.add_argument("--hours", type=SIM_HOURS, help="simulated hours (default: simulator.hours)")
    p.add_argument("--seed", type=T.non_negative_int, help="random seed (default: simulator.seed)")
    p.add_argument("--start", type=T.iso_time, help="start date, ISO (default: simulator.start)")

    p = data.add_parser("facts", help="stylized facts of stored data or of raw recording files")
    _add_common(p)
    p.add_argument(
        "source", nargs="+", type=T.source, help="VENUE/SYMBOL in the store, or raw Binance recording file(s)"
    )
    _add_allow_gaps(p)
    p.add_argument("--json", action="store_true")

    p = data.add_parser("record", help="record live Binance streams (raw + normalised)")
    _add_common(p)
    p.add_argument("--market", choices=["usdm", "spot"], default="usdm")
    p.add_argument(
        "--symbols", required=True, type=T.symbol_list, help="comma-separated, e.g. btcusdt,ethusdt"
    )
    p.add_argument("--minutes", type=T.positive_float, required=True)
    p.add_argument(
        "--out",
        type=T.dir_path,
        help="directory for raw gz recordings (default: data.raw_dir or <store>/../raw)",
    )
    p.add_argument("--testnet", action="store_true", help="use Binance's testnet endpoints")
    p.add_argument(
        "--rest-url", type=HTTP_URL, help="REST base URL (default: binance.<market>.rest_base_url)"
    )
    p.add_argument("--ws-url", type=WS_URL, help="WebSocket base URL (default: binance.<market>.ws_base_url)")
    p.add_argument("--ws-routes", choices=("auto", "combined", "split"), default="auto",
                   help="USD-M WebSocket layout: split (Binance since 2026-04-23) or combined (legacy, "
                   "local servers); auto = split on Binance's URLs, combined with --ws-url")  # fmt: skip
    p.add_argument("--book-ticker", action="store_true", help="also record bookTicker")
    p.add_argument("--partial-depth", type=int, choices=[0, 5, 10, 20], help="also record partial depth N")
    p.add_argument(
        "--klines", type=T.interval_list, help="comma-separated kline intervals to record, e.g. 1m,5m"
    )
    p.add_argument("--flush-s", type=T.positive_float, default=5.0, help="seconds between store flushes")

    p = data.add_parser(
        "replay-server", help="serve recorded Binance traffic on loopback in Binance's wire format"
    )
    _add_common(p)
    p.add_argument(
        "paths",
        nargs="+",
        type=T.existing_file,
        help="raw Binance recordings (hftbacktest format) or cryptofeed .jsonl.gz",
    )
    p.add_argument("--host", type=T.non_empty, default="127.0.0.1")
    p.add_argument("--port", type=T.port, default=9400, help="0 picks a free port")
    p.add_argument(
        "--speed", type=T.non_negative_float, default=1.0, help="1 = recorded pace, 0 = as fast as possible"
    )
    p.add_argument("--market", choices=["usdm", "spot", "coinm"], help="default: inferred from the files")
    p.add_argument("--max-messages", type=T.positive_int, help="serve only the first N recorded messages")
    p.add_argument(
        "--drop-diff",
        action="append",
        default=[],
        type=T.drop_diff,
        metavar="SYMBOL:K",
        help="drop the K-th depth diff of SYMBOL",
    )
    p.add_argument(
        "--close-after", type=T.positive_int, help="close the WebSocket once after N messages (a disconnect)"
    )
    p.add_argument(
        "--silent-after", type=T.positive_int, help="go silent after N messages, socket kept open (stale)"
    )
    p.add_argument("--silent-s", type=T.positive_float, default=30.0, help="how long the silence lasts")
    p.add_argument(
        "--reject-depth",
        type=T.non_negative_int,
        default=0,
        help="answer the first M depth requests with 429",
    )
    p.add_argument(
        "--retry-after-s", type=T.non_negative_int, default=1, help="Retry-After sent with those 429s"
    )
    p.add_argument(
        "--kline-file",
        type=T.existing_file,
        help="serve /klines from this kline CSV instead of recorded trades",
    )
    p.add_argument("--kline-symbol", type=T.symbol, help="symbol of --kline-file")

    p = data.add_parser("backfill-klines", help="backfill klines over REST into the store")
    _add_common(p)
    p.add_argument("--market", choices=["usdm", "spot"], default="usdm")
    p.add_argument("--symbol", required=True, type=T.symbol)
    p.add_argument("--interval", type=T.interval, default="1m")
    p.add_argument("--start", required=True, type=T.iso_time, help="ISO date/time (UTC)")
    p.add_argument("--end", type=T.iso_time, help="ISO date/time (UTC), default now")
    p.add_argument("--testnet", action="store_true", help="use Binance's testnet endpoints")
    p.add_argument(
        "--rest-url", type=HTTP_URL, help="REST base URL (default: binance.<market>.rest_base_url)"
    )
    feats = sub.add_parser("features", help="feature engine: list, build, select").add_subparsers(
        dest="features_command", required=True
    )
    p = feats.add_parser("list", help="the default feature set: name, group, definition, window, unit")
    _add_common(p)
    p.add_argument("--json", action="store_true")

    p = feats.add_parser("build", help="write the feature matrix (ts_event, features, valid) to Parquet")
    _add_common(p)
    p.add_argument(
        "source", nargs="+", type=T.source, help="VENUE/SYMBOL in the store, or raw Binance recording file(s)"
    )
    _add_allow_gaps(p)
    p.add_argument("--out", required=True, type=PARQUET_OUT, help="output .parquet file")
    p.add_argument("--start", type=T.iso_time, help="ISO date/time (UTC): first event read")
    p.add_argument("--end", type=T.iso_time, help="ISO date/time (UTC): events before this are read")
    p.add_argument(
        "--fit-integrated-until",
        metavar="TIME",
        type=T.iso_time,
        help="fit the integrated-OFI loadings on [start, TIME) (an explicit training window) and use them",
    )

    p = feats.add_parser(
        "select", help="rank features by out-of-sample importance across purged walk-forward folds"
    )
    _add_common(p)
    p.add_argument(
        "source", nargs="+", type=T.source, help="VENUE/SYMBOL in the store, or raw Binance recording file(s)"
    )
    _add_allow_gaps(p)
    p.add_argument(
        "--out",
        type=T.file_path,
        help="where to record the chosen set (JSON); default <store>/selections/...",
    )
    p.add_argument("--n-keep", type=T.positive_int, help="features to keep (default: selection.n_keep)")
    p.add_argument(
        "--folds", type=T.positive_int, help="walk-forward test folds (default: selection.n_folds)"
    )
    p.add_argument("--start", type=T.iso_time, help="ISO date/time (UTC)")
    p.add_argument("--end", type=T.iso_time, help="ISO date/time (UTC)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    models = sub.add_parser("models", help="train, evaluate, version and promote models").add_subparsers(
        dest="models_command", required=True
    )

    def _add_registry(p: argparse.ArgumentParser) -> None:
        _add_common(p)
        p.add_argument(
            "--registry",
            type=T.registry_location,
            help="registry directory or tracking URL (default: $ORDERFLOW_REGISTRY)",
        )

    p = models.add_parser("train", help="train every member and the ensemble; register a version")
    _add_registry(p)
    p.add_argument(
        "source", nargs="+", type=T.source, help="VENUE/SYMBOL in the store, or raw Binance recording file(s)"
    )
    _add_allow_gaps(p)
    p.add_argument("--quick", action="store_true", help="small configurations: a smoke run in under a minute")
    p.add_argument("--report", type=T.dir_path, help="directory for the evaluation report (HTML + JSON)")
    p.add_argument("--members", type=T.name_list, help="comma-separated subset of members to train")
    p.add_argument("--start", type=T.iso_time, help="ISO date/time (UTC)")
    p.add_argument("--end", type=T.iso_time, help="ISO date/time (UTC)")
    p = models.add_parser("ls", help="registered versions with members, metrics and aliases")
    _add_registry(p)
    p.add_argument("--json", action="store_true")
    p = models.add_parser("evaluate", help="stored out-of-sample metrics and the golden-rule verdict")
    _add_registry(p)
    p.add_argument("version", type=T.version_ref, help="version number or alias (champion, previous)")
    p.add_argument("--json", action="store_true")
    p = models.add_parser("promote", help="make a version the champion if it passes the golden rule")
    _add_registry(p)
    p.add_argument("version", type=T.version_ref)
    p.add_argument("--force", action="store_true", help="bypass the golden rule (logged)")
    p = models.add_parser("rollback", help="move the champion alias back to the previous champion")
    _add_registry(p)

    p = sub.add_parser(
        "backtest",
        help="replay stored or recorded events through the strategy (a model, or walk-forward training)",
    )
    _add_registry(p)
    p.add_argument(
        "source", nargs="+", type=T.source, help="VENUE/SYMBOL in the store, or raw Binance recording file(s)"
    )
    _add_allow_gaps(p)
    p.add_argument("--model", type=T.model_ref, default="production",
                   help="production/champion, a registry version, a bundle directory, or none")  # fmt: skip
    p.add_argument("--walk-forward", action="store_true",
                   help="train on each window, trade the next (config walkforward); no --model")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="walk-forward with the small member configurations")
    p.add_argument(
        "--report", type=T.dir_path, help="directory for the report (report.html, metrics.json, plots)"
    )
    p.add_argument("--start", type=T.iso_time, help="ISO date/time (UTC)")
    p.add_argument("--end", type=T.iso_time, help="ISO date/time (UTC)")

    p = sub.add_parser(
        "demo",
        help="the whole pipeline on embedded defaults: simulate 24 h, features, walk-forward "
        "training and backtest, report",
    )
    _add_registry(p)
    p.add_argument("--hours", type=SIM_HOURS, default=24.0, help="simulated hours (default 24)")
    p.add_argument("--seed", type=T.non_negative_int, help="simulator seed (default: simulator.seed)")
    p.add_argument("--full-models", dest="quick", action="store_false",
                   help="train members at their configured sizes (slower), not the quick ones")  # fmt: skip
    p.add_argument("--fresh", action="store_true", help="simulate again even if the store has the data")
    p.add_argument(
        "--report", type=T.dir_path, help="report directory (default: demo-report next to the store)"
    )

    p = sub.add_parser(
        "paper",
        help="paper trading: the live engine on live data or the local exchange, simulated fills "
        "(no arguments: an in-process local exchange on the simulator)",
    )
    _add_registry(p)
    p.add_argument("--minutes", type=T.positive_float, default=2.0, help="how long to run (wall minutes)")
    p.add_argument("--symbol", type=T.symbol, default="BTCUSDT")
    p.add_argument("--market", choices=("usdm", "spot"), default="usdm")
    p.add_argument("--model", type=T.model_ref, default="auto",
                   help="auto (the registry champion if any), none, production, VERSION, DIR")  # fmt: skip
    p.add_argument(
        "--rest-url", type=HTTP_URL, help="a Binance-protocol venue's REST base (keys from the environment)"
    )
    p.add_argument("--ws-url", type=WS_URL, help="its WebSocket base")
    p.add_argument("--ws-routes", choices=("auto", "combined", "split"), default="auto",
                   help="USD-M WebSocket layout: split (Binance since 2026-04-23) or combined (legacy, "
                   "local servers); auto = split on Binance's URLs, combined with --ws-url")  # fmt: skip
    p.add_argument("--keys-prefix", type=T.env_prefix, default="ORDERFLOW_PAPER",
                   help="environment prefix of the API key/secret for --rest-url")  # fmt: skip
    p.add_argument("--speed", type=T.positive_float, default=10.0,
                   help="built-in simulator pace (x real time); 10 covers the feature warm-up")  # fmt: skip
    p.add_argument("--seed", type=T.non_negative_int, default=1, help="built-in simulator seed")
    p.add_argument(
        "--db",
        type=T.db_location,
        help="journal database URL or SQLite file (default: $ORDERFLOW_DB or the data dir)",
    )
    p.add_argument("--on-stop", choices=("close", "keep"), default="close",
                   help="at the end of the run or on SIGTERM/SIGINT: close or keep the position")  # fmt: skip

    p = sub.add_parser(
        "live", help="live trading on Binance (or its testnet): real orders, needs a flag and keys"
    )
    _add_registry(p)
    p.add_argument("--minutes", type=T.positive_float, default=60.0, help="how long to run (wall minutes)")
    p.add_argument("--symbol", type=T.symbol, default="BTCUSDT")
    p.add_argument("--market", choices=("usdm", "spot"), default="usdm")
    p.add_argument(
        "--model", type=T.model_ref, default="production", help="production (the champion), VERSION or DIR"
    )
    p.add_argument("--testnet", action="store_true", help="Binance's testnet instead of mainnet")
    p.add_argument("--rest-url", type=HTTP_URL, help="explicit REST base (overrides mainnet/testnet)")
    p.add_argument("--ws-url", type=WS_URL, help="explicit WebSocket base")
    p.add_argument("--ws-routes", choices=("auto", "combined", "split"), default="auto",
                   help="USD-M WebSocket layout: split (Binance since 2026-04-23) or combined (legacy, "
                   "local servers); auto = split on Binance's URLs, combined with --ws-url")  # fmt: skip
    p.add_argument("--keys-prefix", type=T.env_prefix, default="BINANCE",
                   help="environment prefix of the API key/secret (BINANCE_API_KEY, ...)")  # fmt: skip
    p.add_argument("--i-understand-this-trades-real-money", dest="confirm", action="store_true",
                   help="required: confirms that orders are real")  # fmt: skip
    p.add_argument(
        "--db",
        type=T.db_location,
        help="journal database URL or SQLite file (default: $ORDERFLOW_DB or the data dir)",
    )
    p.add_argument("--on-stop", choices=("close", "keep"), default="close",
                   help="at the end of the run or on SIGTERM/SIGINT: close or keep the position")  # fmt: skip
    p.set_defaults(speed=1.0, seed=0)

    p = sub.add_parser("kill", help="the kill switch of running engines: halt, reduce_only or off")
    p.add_argument("mode", choices=("halt", "reduce_only", "off"))
    p.add_argument(
        "--file", type=T.file_path, help="kill-switch file (default: $ORDERFLOW_KILL_FILE or the data dir)"
    )
    p.set_defaults(config=None, log_level=None)

    from orderflow.journal.cli import add_journal_parser

    add_journal_parser(sub)

    from orderflow.execution.local.cli import add_exchange_parser

    add_exchange_parser(sub).set_defaults(config=None, log_level=None)  # `exchange serve` has its own --store

    research = sub.add_parser("research", help="research studies over stored or raw data").add_subparsers(
        dest="research_command", required=True
    )
    p = research.add_parser("impact", help="price impact of OFI: R^2 of mid change on OFI per interval")
    _add_common(p)
    p.add_argument(
        "source", nargs="+", type=T.source, help="VENUE/SYMBOL in the store, or raw Binance recording file(s)"
    )
    _add_allow_gaps(p)
    p.add_argument(
        "--intervals", type=T.float_list, default="1,10,60", help="bucket lengths in seconds, comma-separated"
    )
    p.add_argument(
        "--levels", type=T.int_range(1, 20), default=10, help="book levels for the multi-level regressions"
    )
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns its exit status (2 for bad input, with argparse's one-line error)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a refused argument, --help or --version: argparse has printed it
        return e.code if isinstance(e.code, int) else 2
    from orderflow.config import ConfigError, load_config
    from orderflow.logutil import setup_logging

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"orderflow: {e}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or cfg.logging.level, cfg.logging.json_format)
    from orderflow import commands
    from orderflow.data.store import StoreError

    try:
        if args.command == "run":
            return commands.run_main_job(cfg, args)
        if args.command == "config":
            from orderflow.config import dump_yaml

            print(dump_yaml(cfg), end="")
            return 0
        if args.command == "features":
            return int(getattr(commands, "features_" + args.features_command)(cfg, args) or 0)
        if args.command == "models":
            from orderflow.models import cli_commands

            return int(getattr(cli_commands, "models_" + args.models_command)(cfg, args) or 0)
        if args.command == "kill":
            from orderflow.engine.control import write_kill

            try:
                where = write_kill(args.mode, args.file)
            except OSError as e:  # $ORDERFLOW_KILL_FILE (--file is checked by the parser)
                raise commands.UserError(f"cannot set the kill switch: {e}") from None
            print(f"kill switch set to {args.mode} in {where}")
            return 0
        if args.command == "journal":
            from orderflow.journal.cli import journal_cmd

            return journal_cmd(args)
        if args.command == "exchange":
            from orderflow.execution.local.cli import exchange_cmd

            return exchange_cmd(args)
        if args.command in ("paper", "live"):
            from orderflow.engine import cli_commands as eng

            return int(getattr(eng, args.command + "_cmd")(cfg, args) or 0)
        if args.command in ("backtest", "demo"):
            from orderflow.backtest import cli_commands as bt

            return int(getattr(bt, args.command + "_cmd")(cfg, args) or 0)
        if args.command == "research":
            return int(commands.research_impact(cfg, args) or 0)
        handler = getattr(commands, "data_" + args.data_command.replace("-", "_"))
        return int(handler(cfg, args) or 0)
    except (commands.UserError, StoreError) as e:
        print(f"orderflow: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("orderflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
