"""``orderflow exchange serve``: run the local Binance-compatible exchange.

The API secret may also come from the environment variable ``ORDERFLOW_LOCAL_API_SECRET`` so that it
does not appear in the process list.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

from orderflow.adapters.binance.common.venues import VENUES
from orderflow.cli import types as T

if TYPE_CHECKING:
    from orderflow.config import Config

ENV_SECRET = "ORDERFLOW_LOCAL_API_SECRET"


def register(subparsers: Any) -> None:
    """Add ``exchange serve`` to an argparse sub-parsers object (``exchange serve`` has its own
    ``--store`` and reads no configuration directory)."""
    ex = subparsers.add_parser("exchange", help="local Binance-compatible exchange")
    sub = ex.add_subparsers(dest="exchange_command", required=True)
    p = sub.add_parser("serve", help="serve Binance's REST and WebSocket protocol over a market source")
    p.add_argument(
        "--source",
        type=T.exchange_source,
        default="sim",
        help="'sim', a stored VENUE/SYMBOL (with --store) or a raw recording",
    )
    p.add_argument("--port", type=T.port, default=8765, help="port (0 = ephemeral)")
    p.add_argument("--host", type=T.non_empty, default="127.0.0.1")
    p.add_argument("--api-key", type=T.non_empty, default="localkey", help="API key of the account")
    p.add_argument(
        "--api-secret",
        type=T.non_empty,
        default=None,
        help=f"HMAC secret (or env {ENV_SECRET}); default 'localsecret'",
    )
    p.add_argument(
        "--ed25519-public-key",
        type=T.ed25519_public_key_file,
        default=None,
        help="PEM file of an Ed25519 public key (Ed25519 signing)",
    )
    p.add_argument("--market", choices=tuple(VENUES), default="usdm")
    p.add_argument("--clock", choices=("realtime", "manual"), default="realtime")
    p.add_argument(
        "--speed",
        type=T.float_range(0.0, 10_000),
        default=1.0,
        help="realtime pace (replay seconds per second)",
    )
    p.add_argument("--seed", type=T.non_negative_int, default=0, help="simulator seed")
    p.add_argument(
        "--store", type=T.existing_dir, default=None, help="Store directory for a VENUE/SYMBOL source"
    )
    p.add_argument(
        "--context-store",
        type=T.existing_dir,
        default=None,
        help="USD-M: serve the context kinds (funding, open interest, mark price, ...) stored here",
    )
    p.add_argument("--symbol", type=T.symbol, default="BTCUSDT", help="symbol of the simulator source")
    p.add_argument("--sim-hours", type=T.float_range(0.0, 24), default=1.0, help="hours of simulated market")
    p.set_defaults(handler=exchange_serve)
    ex.set_defaults(config=None, log_level=None)


def exchange_serve(cfg: Config, args: argparse.Namespace) -> int:
    """Handler of ``orderflow exchange serve`` (blocks until Ctrl-C); returns the exit code. ``cfg`` is
    not read: the local exchange is configured by its options alone."""
    import asyncio

    from pydantic import ValidationError

    from orderflow.execution.local.config import LocalExchangeConfig
    from orderflow.execution.local.market import SourceError
    from orderflow.execution.local.server import serve_forever

    busy = T.port_in_use(args.host, args.port)  # early, before building the market; the bind checks again
    if busy:
        print(f"orderflow: {busy}", file=sys.stderr)
        return 2
    pem = None
    if args.ed25519_public_key:
        with open(args.ed25519_public_key, encoding="utf-8") as f:
            pem = f.read()
    secret = args.api_secret or os.environ.get(ENV_SECRET) or (None if pem else "localsecret")
    try:
        xcfg = LocalExchangeConfig(
            market=args.market,
            source=args.source,
            store=args.store,
            context_store=args.context_store,
            symbol=args.symbol,
            seed=args.seed,
            sim_hours=args.sim_hours,
            clock=args.clock,
            speed=args.speed,
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            api_secret=secret,
            ed25519_public_key=pem,
        )
    except ValidationError as e:
        print(
            f"orderflow exchange serve: invalid option: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}",
            file=sys.stderr,
        )
        return 2
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_forever(xcfg))
    except SourceError as e:
        print(f"orderflow exchange serve: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the real bind: a busy port is named, whatever checked it before
        msg = T.listen_error(xcfg.host, xcfg.port, e)
        if msg is None:
            raise
        print(f"orderflow: {msg}", file=sys.stderr)
        return 2
    return 0
