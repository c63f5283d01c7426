"""``orderflow paper``, ``orderflow live`` and ``orderflow kill``: the live engine with simulated or real
fills, and the kill switch of running engines."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from orderflow.adapters.binance.common.venues import VENUES, caps
from orderflow.cli import types as T
from orderflow.cli.common import HTTP_URL, WS_URL, UserError, add_registry, add_ws_routes, model_bundle

if TYPE_CHECKING:
    from orderflow.config import Config

LIVE_FLAG = "--i-understand-this-trades-real-money"


def register(subparsers: Any) -> None:
    """Add ``paper``, ``live`` and ``kill`` to ``subparsers``."""
    p = subparsers.add_parser(
        "paper",
        help="paper trading: the live engine on live data or the local exchange, simulated fills "
        "(no arguments: an in-process local exchange on the simulator; --fills local: Binance's market "
        "data with no account)",
    )
    add_registry(p)
    p.add_argument("--minutes", type=T.positive_float, default=2.0, help="how long to run (wall minutes)")
    p.add_argument("--symbol", type=T.symbol, default="BTCUSDT")
    p.add_argument("--market", choices=tuple(VENUES), default="usdm")
    p.add_argument("--model", type=T.model_ref, default="auto",
                   help="auto (the registry champion if any), none, production, VERSION, DIR")  # fmt: skip
    p.add_argument(
        "--rest-url", type=HTTP_URL, help="a Binance-protocol venue's REST base (keys from the environment)"
    )
    p.add_argument("--ws-url", type=WS_URL, help="its WebSocket base")
    p.add_argument("--fills", choices=("exchange", "local"), default="exchange",
                   help="exchange: the venue matches the orders (the local exchange, or --rest-url with "
                   "keys); local: a dry run, market data only (Binance's, or --rest-url/--ws-url), fills "
                   "from the backtester's simulated exchange in-process, no keys, no order sent")  # fmt: skip
    add_ws_routes(p)
    p.add_argument("--keys-prefix", type=T.env_prefix, default="ORDERFLOW_PAPER",
                   help="environment prefix of the API key/secret for --rest-url")  # fmt: skip
    p.add_argument("--speed", type=T.positive_float, default=10.0,
                   help="built-in simulator pace (x real time); 10 covers the feature warm-up")  # fmt: skip
    p.add_argument("--seed", type=T.non_negative_int, default=1, help="built-in simulator seed")
    _add_db_and_on_stop(p)
    p.set_defaults(handler=paper_cmd)

    p = subparsers.add_parser(
        "live", help="live trading on Binance (or its testnet): real orders, needs a flag and keys"
    )
    add_registry(p)
    p.add_argument("--minutes", type=T.positive_float, default=60.0, help="how long to run (wall minutes)")
    p.add_argument("--symbol", type=T.symbol, default="BTCUSDT")
    p.add_argument("--market", choices=tuple(VENUES), default="usdm")
    p.add_argument(
        "--model", type=T.model_ref, default="production", help="production (the champion), VERSION or DIR"
    )
    p.add_argument("--testnet", action="store_true", help="Binance's testnet instead of mainnet")
    p.add_argument("--rest-url", type=HTTP_URL, help="explicit REST base (overrides mainnet/testnet)")
    p.add_argument("--ws-url", type=WS_URL, help="explicit WebSocket base")
    add_ws_routes(p)
    p.add_argument("--keys-prefix", type=T.env_prefix, default="BINANCE",
                   help="environment prefix of the API key/secret (BINANCE_API_KEY, ...)")  # fmt: skip
    p.add_argument(LIVE_FLAG, dest="confirm", action="store_true",
                   help="required: confirms that orders are real")  # fmt: skip
    _add_db_and_on_stop(p)
    p.set_defaults(speed=1.0, seed=0, handler=live_cmd)

    p = subparsers.add_parser("kill", help="the kill switch of running engines: halt, reduce_only or off")
    p.add_argument("mode", choices=("halt", "reduce_only", "off"))
    p.add_argument(
        "--file", type=T.file_path, help="kill-switch file (default: $ORDERFLOW_KILL_FILE or the data dir)"
    )
    p.set_defaults(config=None, log_level=None, handler=kill_cmd)


def _add_db_and_on_stop(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        type=T.db_location,
        help="journal database URL or SQLite file (default: $ORDERFLOW_DB or the data dir)",
    )
    p.add_argument(
        "--telemetry",
        type=T.telemetry_location,
        help="where to publish telemetry for `orderflow dashboard`: a directory, file:// or redis:// URL, or "
        "off (default: monitor.telemetry, the user data dir)",
    )
    p.add_argument(
        "--metrics-port",
        type=T.int_range(0, 65535),
        help="serve Prometheus metrics on 127.0.0.1:PORT/metrics (default: monitor.metrics_port, none)",
    )
    p.add_argument("--on-stop", choices=("close", "keep"), default="close",
                   help="at the end of the run or on SIGTERM/SIGINT: close or keep the position")  # fmt: skip


def _model(cfg: Config, args: argparse.Namespace) -> tuple[Any | None, str, Any | None]:
    """``--model``: auto (the registry champion if there is one, else none), none, production/champion,
    a version number or a bundle directory (resolved as ``orderflow backtest`` does). Returns (model,
    description, reloader): an alias (auto, production, champion) is served by a started
    :class:`HotReloader`, so a promotion during the run swaps the model without a restart."""
    from orderflow.models.registry import RegistryError
    from orderflow.models.serving import EnsembleModel, HotReloader

    if args.model == "none":
        return None, "none (the AI score is 0)", None
    bundle = model_bundle(args, optional=args.model == "auto")
    if bundle is None:
        return None, "none (no champion in the registry; the AI score is 0)", None
    try:
        model = EnsembleModel.from_bundle(bundle, None)
    except RegistryError as e:
        raise UserError(f"--model {args.model}: {e}") from None
    if args.model not in ("auto", "production", "champion"):
        return model, f"bundle {bundle}", None
    from orderflow.models.registry import Registry

    reloader = HotReloader(Registry(getattr(args, "registry", None)), "champion", model.schema_hash,
                           expected_feature_names=model.manifest.feature_names).start()  # fmt: skip
    if reloader.current_version is None:  # demoted between the two looks
        reloader.stop()
        return model, f"bundle {bundle}", None
    what = f"registry champion, version {reloader.current_version} (hot reload on promotion)"
    return reloader.model, what, reloader


@contextlib.contextmanager
def _venue(args: argparse.Namespace) -> Iterator[tuple[str, str, Any, str]]:
    """(rest_url, ws_url, credentials, description): given URLs and keys from the environment, or an
    in-process local exchange on the simulator."""
    from orderflow.adapters.binance.common.signing import Credentials

    if args.rest_url and not args.ws_url:
        raise UserError("--rest-url needs --ws-url too")
    if getattr(args, "fills", "exchange") == "local":  # a dry run: market data only, no credentials
        if args.ws_url and not args.rest_url:
            raise UserError("--ws-url needs --rest-url too")
        if not args.rest_url:
            from orderflow.adapters.binance.common.endpoints import default_endpoints

            ep = default_endpoints(args.market)
            args.rest_url, args.ws_url, args.binance_routes = ep.rest_base_url, ep.ws_base_url, ep.ws_routes
        where = f"the market data of {args.rest_url} (fills: local simulation, no account)"
        yield args.rest_url, args.ws_url, None, where
        return
    if args.rest_url:
        from orderflow.adapters.binance.common.credentials import load_credentials
        from orderflow.secrets import SecretsError

        try:
            creds = load_credentials(args.keys_prefix)
        except (KeyError, SecretsError) as e:
            raise UserError(str(e).strip("'\"")) from None
        yield args.rest_url, args.ws_url, creds, f"venue {args.rest_url}"
        return
    from orderflow.execution.local.testing import running_local_exchange

    hours = min(24.0, args.minutes * args.speed / 60.0 + 0.05)
    with running_local_exchange(source="sim", seed=args.seed, clock="realtime", speed=args.speed,
                                market=args.market, sim_hours=hours, symbol=args.symbol) as ex:  # fmt: skip
        yield (
            ex.rest_url,
            ex.ws_url,
            Credentials.hmac(ex.api_key, ex.api_secret),
            (f"an in-process local exchange on the simulator (seed {args.seed}, {args.speed:g}x real time)"),
        )


def paper_cmd(cfg: Config, args: argparse.Namespace) -> int:
    import asyncio

    from orderflow.core.instruments import KNOWN, Instrument
    from orderflow.engine.paper import FeedOptions, PaperEngine, RunStartError
    from orderflow.engine.report import render_paper

    venue = caps(args.market).venue
    inst = KNOWN.get((venue, args.symbol.upper())) or Instrument(venue, args.symbol.upper(), 0.1, 0.001, 5.0)
    model, what, reloader = _model(cfg, args)
    from orderflow.journal import Journal, JournalError

    mode = "live" if args.command == "live" else "paper"
    given = (
        ("telemetry", getattr(args, "telemetry", None)),
        ("metrics_port", getattr(args, "metrics_port", None)),
    )
    monitor = {k: v for k, v in given if v is not None}
    if monitor:
        cfg = cfg.model_copy(update={"monitor": cfg.monitor.model_copy(update=monitor)})
    try:
        journal = Journal.open(getattr(args, "db", None))
    except (JournalError, OSError, ValueError) as e:
        raise UserError(f"journal: {e}") from None
    dry = getattr(args, "fills", "exchange") == "local"
    if not args.rest_url and not dry:
        # compile (or load) the kernels before the in-process exchange starts its clock: on a cold
        # numba cache that takes tens of seconds, which the simulated market would spend unwatched
        from orderflow.adapters.binance.common.signing import Credentials

        unused = Credentials.hmac("warm-up", "warm-up")  # nothing is sent: the engine only compiles
        PaperEngine(cfg, args.market, args.symbol, "http://127.0.0.1:9", "ws://127.0.0.1:9", unused, inst,
                    model).compile_kernels()  # fmt: skip
    try:
        with _venue(args) as (rest, ws, creds, where):
            print(f"{mode} trading {args.symbol.upper()} ({args.market}) for {args.minutes:g} min on "
                  f"{where}; model: {what}; journal: {journal.url}")  # fmt: skip
            routes = getattr(args, "ws_routes", "auto")
            if routes == "auto":  # Binance's own URLs: its current layout; an explicit venue: legacy
                routes = getattr(args, "binance_routes", "combined")
            routes = routes if caps(args.market).split_routes else "combined"
            # funding at the rate the venue announces (markPrice@1s) on Binance and any venue given by
            # URL; the in-process local exchange charges the configured constant, which is booked then
            announced = bool(args.rest_url) or mode == "live"
            feeds = FeedOptions(ws_routes=routes, announced_funding=announced)
            on_stop = getattr(args, "on_stop", "close")
            engine: PaperEngine
            if dry:
                from orderflow.engine.dryrun import DryRunEngine

                engine = DryRunEngine(cfg, args.market, args.symbol, rest, ws, inst, model, journal=journal,
                                      on_stop=on_stop, reloader=reloader, feeds=feeds)  # fmt: skip
            else:
                engine = PaperEngine(cfg, args.market, args.symbol, rest, ws, creds, inst, model,
                                     journal=journal, mode=mode, on_stop=on_stop, reloader=reloader,
                                     feeds=feeds)  # fmt: skip
            t0 = time.perf_counter()
            try:
                stats = asyncio.run(engine.run(args.minutes))
            except RunStartError as e:  # closed as failed in the journal
                raise UserError(str(e)) from None
            print(render_paper(stats, engine.session, time.perf_counter() - t0))
            print(f"journal run {engine.run_id}: `orderflow journal --run {engine.run_id}` summarises it")
    finally:
        journal.close()
        if reloader is not None:
            reloader.stop()
    return 0


def live_cmd(cfg: Config, args: argparse.Namespace) -> int:
    """``orderflow live``: the same engine on Binance (or its testnet, or explicit URLs) with real
    orders. Refuses to start without the confirmation flag and API keys from the environment."""
    from orderflow.adapters.binance.common.endpoints import default_endpoints

    if not args.confirm:
        raise UserError(
            f"live trading sends real orders: pass {LIVE_FLAG} to confirm (or use `orderflow paper`)"
        )
    if args.rest_url:
        rest, ws = args.rest_url, args.ws_url
        if not ws:
            raise UserError("--rest-url needs --ws-url too")
    else:
        ep = default_endpoints(args.market, testnet=args.testnet)
        rest, ws = ep.rest_base_url, ep.ws_base_url
        args.binance_routes = ep.ws_routes
    args.rest_url, args.ws_url = rest, ws
    return paper_cmd(cfg, args)


def kill_cmd(cfg: Config, args: argparse.Namespace) -> int:
    """``orderflow kill MODE``: write the kill-switch file that running engines watch."""
    from orderflow.engine.control import write_kill

    try:
        where = write_kill(args.mode, args.file)
    except OSError as e:  # $ORDERFLOW_KILL_FILE (--file is checked by the parser)
        raise UserError(f"cannot set the kill switch: {e}") from None
    print(f"kill switch set to {args.mode} in {where}")
    return 0
