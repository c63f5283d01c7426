"""``orderflow data ...``: the store (ls, import, check, verify, simulate, facts) and Binance traffic
(record, replay-server, backfill-klines, backfill-context)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderflow.adapters.binance.common.venues import VENUES, caps
from orderflow.cli import types as T
from orderflow.cli.common import (
    HTTP_URL,
    SIM_HOURS,
    WS_URL,
    UserError,
    add_common,
    add_source,
    add_ws_routes,
    existing_files,
    open_store,
    parse_time,
    print_json,
    print_problems,
    progress,
    resolve_source,
    sim_config,
    sim_summary,
)

if TYPE_CHECKING:
    from orderflow.adapters.binance.common.endpoints import BinanceEndpoints, FeedConfig
    from orderflow.config import Config
    from orderflow.data.store import Store

log = logging.getLogger("orderflow")


def register(subparsers: Any) -> None:
    """Add ``data`` and its sub-commands to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    data = subparsers.add_parser(
        "data", help="market data: store, import, record, check, simulate"
    ).add_subparsers(dest="data_command", required=True)

    p = data.add_parser("ls", help="list stored datasets with spans and row counts")
    add_common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=data_ls)

    p = data.add_parser("import", help="import files into the store")
    add_common(p)
    p.add_argument(
        "paths",
        nargs="+",
        type=T.existing_file,
        help="files to import (several raw Binance files continue one depth chain)",
    )
    p.add_argument(
        "--format",
        required=True,
        help="binance-raw | tardis | binance-vision | ohlcv | funding | binance-funding | binance-metrics | "
        "fear-greed",
    )
    p.add_argument("--venue", type=T.venue, help="venue name (default: inferred, e.g. binance-usdm)")
    p.add_argument("--symbol", type=T.symbol, help="symbol (default: inferred from the file)")
    p.add_argument(
        "--interval", type=T.interval, help="bar interval for kline/OHLCV files (default: inferred)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=data_import)

    p = data.add_parser("check", help="data-quality report; exits 1 when a configured threshold is crossed")
    add_common(p)
    p.add_argument("--venue", type=T.venue)
    p.add_argument("--symbol", type=T.symbol)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=data_check)

    p = data.add_parser(
        "verify", help="read every stored part (footer, pages, checksums); exits 1 naming each damaged one"
    )
    add_common(p)
    p.add_argument("--venue", type=T.venue)
    p.add_argument("--symbol", type=T.symbol)
    p.add_argument("--quick", action="store_true", help="footers only (fast): finds truncated parts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=data_verify)

    p = data.add_parser("simulate", help="simulate an order-flow-driven market into the store")
    add_common(p)
    p.add_argument("--symbol", type=T.symbol, help="symbol (default: simulator.symbol)")
    p.add_argument("--hours", type=SIM_HOURS, help="simulated hours (default: simulator.hours)")
    p.add_argument("--seed", type=T.non_negative_int, help="random seed (default: simulator.seed)")
    p.add_argument("--start", type=T.iso_time, help="start date, ISO (default: simulator.start)")
    p.set_defaults(handler=data_simulate)

    p = data.add_parser("facts", help="stylized facts of stored data or of raw recording files")
    add_common(p)
    add_source(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=data_facts)

    p = data.add_parser("record", help="record live Binance streams (raw + normalised)")
    add_common(p)
    p.add_argument("--market", choices=list(VENUES), default="usdm")
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
    add_ws_routes(p)
    p.add_argument("--book-ticker", action="store_true", help="also record bookTicker")
    p.add_argument("--partial-depth", type=int, choices=[0, 5, 10, 20], help="also record partial depth N")
    p.add_argument(
        "--klines", type=T.interval_list, help="comma-separated kline intervals to record, e.g. 1m,5m"
    )
    p.add_argument(
        "--context",
        action="store_true",
        help="USD-M: also record <symbol>@markPrice@1s (kind mark_price) and @forceOrder (liquidation)",
    )
    p.add_argument("--flush-s", type=T.positive_float, default=5.0, help="seconds between store flushes")
    p.set_defaults(handler=data_record)

    _register_replay_server(data)

    p = data.add_parser("backfill-klines", help="backfill klines over REST into the store")
    add_common(p)
    p.add_argument("--market", choices=list(VENUES), default="usdm")
    p.add_argument("--symbol", required=True, type=T.symbol)
    p.add_argument("--interval", type=T.interval, default="1m")
    p.add_argument("--start", required=True, type=T.iso_time, help="ISO date/time (UTC)")
    p.add_argument("--end", type=T.iso_time, help="ISO date/time (UTC), default now")
    p.add_argument("--testnet", action="store_true", help="use Binance's testnet endpoints")
    p.add_argument(
        "--rest-url", type=HTTP_URL, help="REST base URL (default: binance.<market>.rest_base_url)"
    )
    p.set_defaults(handler=data_backfill_klines)

    p = data.add_parser(
        "backfill-context",
        help="backfill USD-M funding, open interest, long/short and taker ratios (and fear & greed)",
    )
    add_common(p)
    p.add_argument("--symbol", required=True, type=T.symbol)
    p.add_argument("--start", required=True, type=T.iso_time, help="ISO date/time (UTC)")
    p.add_argument("--end", type=T.iso_time, help="ISO date/time (UTC), default now")
    p.add_argument(
        "--kinds",
        help="comma-separated series: funding, open_interest, ls_global, ls_top_accounts, ls_top_positions, "
        "taker_ratio, fear_greed, or kinds such as open_interest_1h (default: funding and the statistics)",
    )
    p.add_argument("--period", default="5m", help="period of the statistics: 5m 15m 30m 1h 2h 4h 6h 12h 1d")
    p.add_argument("--fear-greed", action="store_true", help="also backfill the fear & greed index")
    p.add_argument(
        "--fear-greed-url", type=HTTP_URL, help="fear & greed API base URL (default: data.fear_greed_url)"
    )
    p.add_argument("--testnet", action="store_true", help="use Binance's testnet endpoints")
    p.add_argument("--rest-url", type=HTTP_URL, help="REST base URL (default: binance.usdm.rest_base_url)")
    p.set_defaults(handler=data_backfill_context, market="usdm")


def _register_replay_server(data: Any) -> None:
    p = data.add_parser(
        "replay-server", help="serve recorded Binance traffic on loopback in Binance's wire format"
    )
    add_common(p)
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
    p.add_argument("--order", choices=("local", "exchange"), default="local",
                   help="local: the recorded receive order; exchange: the backtester's exchange-time order "
                   "(what `orderflow paper --fills local` needs to give the backtest's fills)")  # fmt: skip
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
    p.set_defaults(handler=data_replay_server)


# -- data ls -------------------------------------------------------------------------------------
def render_ls(store: Store) -> str:
    """The table of ``orderflow data ls``."""
    from orderflow.core.timeutil import ns_to_iso

    rows = store.ls()
    if not rows:
        return f"store {store.root} is empty"
    kw = max(8, *(len(d.kind) for d in rows))  # the context kinds are long (ls_top_positions_5m)
    tw = max(24, *(len(ns_to_iso(t)) for d in rows for t in (d.first_ns, d.last_ns)))
    lines = [
        f"store {store.root}",
        f"{'venue':<14} {'symbol':<12} {'kind':<{kw}} {'rows':>11} {'first (UTC)':<{tw}} "
        f"{'last (UTC)':<{tw}} {'files':>5} {'MB':>8}",
    ]
    for d in rows:
        lines.append(
            f"{d.venue:<14} {d.symbol:<12} {d.kind:<{kw}} {d.rows:>11,} {ns_to_iso(d.first_ns):<{tw}} "
            f"{ns_to_iso(d.last_ns):<{tw}} {d.files:>5} {d.bytes / 1e6:>8.2f}"
        )
    bad = [p for d in rows for p in d.problems]
    lines += [f"CORRUPT {p}" for p in bad]
    if bad:
        lines.append(f"{len(bad)} corrupt part(s) left out of the counts: see `orderflow data verify`")
    return "\n".join(lines)


def data_ls(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.core.timeutil import ns_to_iso

    store = open_store(cfg, args)
    if args.json:
        print_json(
            [{**d.__dict__, "first": ns_to_iso(d.first_ns), "last": ns_to_iso(d.last_ns)} for d in store.ls()]
        )
    else:
        print(render_ls(store))
    return 0


# -- data import -----------------------------------------------------------------------------------
FORMAT_NAMES = {
    "binance-raw": "a raw Binance recording ('<local timestamp> <JSON>' lines)",
    "tardis": "a tardis.dev CSV",
    "binance-vision": "a Binance Vision kline CSV",
    "ohlcv": "an OHLCV CSV or feather file",
}


def data_import(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.data.importers import FORMATS, import_paths
    from orderflow.data.importers.base import ImportError_, why_no_events

    if args.format not in FORMATS:
        raise UserError(f"unknown format {args.format!r}; known: {', '.join(FORMATS)}")
    paths = existing_files(args.paths)
    store = open_store(cfg, args)
    t0 = time.perf_counter()
    try:
        report = import_paths(
            store, paths, args.format, venue=args.venue, symbol=args.symbol, interval=args.interval
        )
    except ImportError_ as e:
        raise UserError(str(e)) from None
    if args.json:
        print_json(report.to_dict())
    else:
        for key in sorted(set(report.rows) | set(report.duplicates)):
            n, dup = report.rows.get(key, 0), report.duplicates.get(key, 0)
            print(f"{key:<40} {n:>11,} rows written" + (f", {dup:,} already stored" if dup else ""))
        print_problems(report)
        if report.events:
            written, dup = sum(report.rows.values()), sum(report.duplicates.values())
            print(
                f"imported {len(paths)} file(s) in {time.perf_counter() - t0:.1f} s into {store.root}: "
                f"{written:,} rows written, {dup:,} already stored; gaps: {report.gaps}"
            )
    if not report.events:
        for p in paths:
            print(f"imported 0 events from {p}: {why_no_events(p, FORMAT_NAMES[args.format])}")
        return 1
    return 0


# -- data check ------------------------------------------------------------------------------------
def data_check(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.data.quality import check, render

    store = open_store(cfg, args)
    report = check(store, venue=args.venue, symbol=args.symbol, thresholds=cfg.quality)
    failures = report.failures(cfg.quality)
    if args.json:
        print_json(report.to_dict())
    else:
        print(render(report))
        for f in failures:
            print(f"FAIL: {f}")
    return 1 if failures else 0


# -- data verify -----------------------------------------------------------------------------------
def data_verify(cfg: Config, args: argparse.Namespace) -> int:
    """Read every stored part (footer, pages and their checksums); exit 1 naming each damaged one."""
    store = open_store(cfg, args)
    t0 = last = time.perf_counter()

    def verified(done: int, total: int) -> None:
        nonlocal last
        if time.perf_counter() - last > 2.0 or done == total:
            last = time.perf_counter()
            log.info("verified %d / %d parts", done, total)

    rep = store.verify(args.venue, args.symbol, full=not args.quick, progress=verified)
    if args.json:
        print_json(
            {
                "store": str(store.root),
                "parts": rep.parts,
                "rows": rep.rows,
                "bytes": rep.bytes,
                "corrupt": [{"path": str(p), "problem": why} for p, why in rep.problems],
                "pending_transactions": [str(p) for p in rep.pending],
            }
        )
    else:
        for p, why in rep.problems:
            print(f"CORRUPT {p}: {why}")
        for p in rep.pending:
            print(f"note: a write is in progress in {p} (another process holds the store's writer lock)")
        how = "footers" if args.quick else "footers, pages and page checksums"
        verdict = f"{len(rep.problems)} corrupt" if rep.problems else "all readable"
        print(
            f"verified {rep.parts:,} parts ({rep.rows:,} rows, {rep.bytes / 1e6:.1f} MB; {how}) of "
            f"{store.root} in {time.perf_counter() - t0:.1f} s: {verdict}"
        )
        if rep.problems:
            print(
                "delete each corrupt part and re-import its source (the file name starts with part-<source>)"
            )
    return 1 if rep.problems else 0


# -- data simulate -----------------------------------------------------------------------------------
def data_simulate(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.data.simulator import simulate

    store = open_store(cfg, args)
    sc = sim_config(cfg, args)
    t0 = time.perf_counter()
    res = simulate(sc, store=store, progress=progress)
    took = time.perf_counter() - t0
    print(f"simulated {sc.hours:g} h of {sc.symbol} (seed {sc.seed}) in {took:.1f} s: {sim_summary(res)}")
    if res.context_rows:
        print("market context: funding, mark price, open interest, ratios, taker volumes, liquidations")
    print(f"stored in {store.root}")
    return 0


# -- data facts ------------------------------------------------------------------------------------
def data_facts(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.research.facts import compute_facts, render_facts

    with resolve_source(open_store(cfg, args), args.source, args.allow_gaps) as (store, venue, symbol, name):
        facts = compute_facts(store, venue, symbol)
    if args.json:
        print_json({"source": name, **facts})
    else:
        print(render_facts({name: facts}))
    return 0


# -- data record / replay-server / backfill-klines ---------------------------------------------------------
def _endpoints(cfg: Config, args: argparse.Namespace) -> BinanceEndpoints:
    from orderflow.adapters.binance.common.endpoints import default_endpoints

    market = args.market
    ep = default_endpoints(market, testnet=True) if args.testnet else cfg.binance.endpoints(market)
    over = {"rest_base_url": args.rest_url, "ws_base_url": getattr(args, "ws_url", None)}
    over = {k: v for k, v in over.items() if v}
    routes = getattr(args, "ws_routes", "auto")
    # an explicit URL: the legacy layout
    if caps(market).split_routes and (routes != "auto" or "ws_base_url" in over):
        over["ws_routes"] = routes if routes != "auto" else "combined"
    return ep.model_validate({**ep.model_dump(), **over}) if over else ep


def _feed_config(cfg: Config, args: argparse.Namespace) -> FeedConfig:
    """The configured feed section for ``args.market``; market-dependent defaults are re-derived."""
    from orderflow.adapters.binance.common.endpoints import FeedConfig

    data = cfg.feed.model_dump(exclude_unset=True)
    auto = FeedConfig(market=cfg.feed.market)
    for key in ("depth_stream", "max_weight_per_minute"):  # derived from the market: derive them anew
        if data.get(key) == getattr(auto, key):
            data.pop(key)
    data["market"] = args.market
    if args.book_ticker:
        data["book_ticker"] = True
    if args.partial_depth is not None:
        data["partial_depth_levels"] = args.partial_depth
    if args.klines:
        data["kline_intervals"] = [k.strip() for k in args.klines.split(",") if k.strip()]
    if getattr(args, "context", False):
        if not caps(args.market).futures:
            raise UserError(
                f"--context: <symbol>@markPrice@1s and <symbol>@forceOrder are USD-M streams; "
                f"--market {args.market} has neither"
            )
        data["mark_price"] = data["liquidations"] = True
    try:
        return FeedConfig.model_validate(data)
    except ValueError as e:
        raise UserError(f"bad feed settings: {e}") from None


def data_record(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.data.recorder import record

    store = open_store(cfg, args)
    symbols = [s.strip().lower() for s in args.symbols.split(",") if s.strip()]
    if not symbols:
        raise UserError("--symbols is empty")
    out = Path(args.out or cfg.data.raw_dir or store.root.parent / "raw")
    summary = record(
        store,
        args.market,
        symbols,
        args.minutes,
        _endpoints(cfg, args),
        _feed_config(cfg, args),
        out,
        args.flush_s,
    )
    print_json(summary)
    if not summary["raw_lines"]:  # nothing from the venue: say why instead of a quiet success
        why = summary.get("last_error") or "no market data arrived"
        print(f"orderflow: recorded nothing in {summary['seconds']:g} s: {why}", file=sys.stderr)
        return 1
    return 0


def data_replay_server(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.adapters.binance.replay.server import EmptyRecording, serve

    drops: dict[str, int] = {}
    for spec in args.drop_diff:
        sym, _, k = spec.partition(":")
        if not sym or not k.isdigit():
            raise UserError(f"--drop-diff wants SYMBOL:K, got {spec!r}")
        drops[sym.upper()] = int(k)
    paths = existing_files(args.paths)
    busy = T.port_in_use(args.host, args.port)  # early, before loading the recording; the bind checks again
    if busy:
        raise UserError(busy)
    try:
        serve(
            paths,
            host=args.host,
            port=args.port,
            speed=args.speed,
            order=args.order,
            market=args.market,
            max_messages=args.max_messages,
            drop_diff=drops,
            close_after=args.close_after,
            silent_after=args.silent_after,
            silent_s=args.silent_s,
            reject_depth=args.reject_depth,
            retry_after_s=args.retry_after_s,
            kline_file=args.kline_file,
            kline_symbol=args.kline_symbol,
        )
    except EmptyRecording as e:
        raise UserError(str(e)) from None
    except OSError as e:
        msg = T.listen_error(args.host, args.port, e)
        if msg is None:
            raise
        raise UserError(msg) from None
    return 0


def data_backfill_klines(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.data.backfill import backfill_klines

    store = open_store(cfg, args)
    start = parse_time(args.start)
    end = parse_time(args.end) if args.end else time.time_ns()
    if end <= start:
        raise UserError(f"--end {args.end} is not after --start {args.start}")
    n = backfill_klines(
        store, args.market, args.symbol.upper(), args.interval, start, end, _endpoints(cfg, args)
    )
    print(f"stored {n} {args.interval} bars of {args.symbol.upper()} in {store.root}")
    return 0


def data_backfill_context(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.data.backfill_context import DEFAULT_SERIES, backfill_context, resolve_series

    names = [k.strip() for k in (args.kinds or "").split(",") if k.strip()] or None
    if args.fear_greed:
        names = [*(names or DEFAULT_SERIES), "fear_greed"]
    try:
        resolve_series(names, args.period)
    except ValueError as e:
        raise UserError(f"--kinds/--period: {e}") from None
    start = parse_time(args.start)
    end = parse_time(args.end) if args.end else time.time_ns()
    if end <= start:
        raise UserError(f"--end {args.end} is not after --start {args.start}")
    from orderflow.adapters.binance.common.errors import BinanceError

    store = open_store(cfg, args)
    try:
        report = backfill_context(
            store,
            args.symbol.upper(),
            start,
            end,
            series=names,
            period=args.period,
            endpoints=_endpoints(cfg, args),
            fear_greed_url=args.fear_greed_url or cfg.data.fear_greed_url,
        )
    except BinanceError as e:  # what is stored so far stays; a new run continues from it
        raise UserError(f"backfill-context stopped: {e} (run it again to continue)") from None
    print_json(report.to_dict())  # its notes were logged as they happened (the 30-day window)
    return 0
