"""The ``orderflow`` command.

One module per command group (``run``, ``config``, ``data``, ``features``, ``models``, ``backtest`` and
``demo``, ``optimize``, ``paper``/``live``/``kill``, ``journal``, ``report``, ``dashboard``, ``alerts``,
``exchange``, ``research``); each ``register``\\s its parsers and sets one handler per command,
``handler(cfg, args) -> exit status``. Helpers shared by the commands are in :mod:`orderflow.cli.common`,
the parse-time argument types in :mod:`orderflow.cli.types`. Heavy libraries are imported inside the
handlers, so ``orderflow --help`` and ``orderflow config`` stay light.

Every command that reads or writes market data takes ``--store DIR`` (else ``ORDERFLOW_STORE``, else
the config's ``data.store``, else a folder in the user's data directory).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from orderflow import __version__
from orderflow.cli import (
    alerts,
    backtest,
    config_cmd,
    dashboard,
    data,
    exchange,
    features,
    journal,
    models,
    optimize,
    report,
    research,
    run,
    trading,
)
from orderflow.cli.common import UserError

# the order of `orderflow --help`
COMMAND_GROUPS = (
    run,
    config_cmd,
    data,
    features,
    models,
    backtest,
    optimize,
    trading,
    journal,
    report,
    dashboard,
    alerts,
    exchange,
    research,
)


class _Parser(argparse.ArgumentParser):
    """argparse with its error in one line: ``orderflow run: error: argument --hours: ...`` (exit 2),
    the usage left to ``--help``. Sub-command parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="orderflow",
        description="orderflow: order-flow + machine-learning trading for Binance (market data, features, "
        "models, backtests, live trading). Run `orderflow demo` for the main job on embedded defaults.",
    )
    parser.add_argument("--version", action="version", version=f"orderflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
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
    try:
        return args.handler(cfg, args)
    except UserError as e:
        print(f"orderflow: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("orderflow: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        from orderflow.data.store import StoreError  # loaded already whenever `e` can be one

        if not isinstance(e, StoreError):
            raise
        print(f"orderflow: {e}", file=sys.stderr)
        return 2
