"""Handlers behind the ``orderflow`` command (kept apart from argument parsing)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from orderflow.config import Config
from orderflow.core.timeutil import ns_to_iso
from orderflow.data.store import Store

log = logging.getLogger("orderflow")


class UserError(Exception):
    """Bad input from the command line: printed without a traceback, exit status 2."""


def _store(cfg: Config, args: argparse.Namespace) -> Store:
    root = cfg.store_dir(getattr(args, "store", None))
    if root.exists() and not root.is_dir():  # --store is checked by the parser; this is the env/config one
        raise UserError(f"store {root} is a file, not a directory (ORDERFLOW_STORE or data.store)")
    return Store(root)


def _existing_files(names: list[str], problem: str = "no such file") -> list[Path]:
    """The paths, or a UserError naming every one that is not an existing file."""
    paths = [Path(p) for p in names]
    dirs = [str(p) for p in paths if p.is_dir()]
    if dirs:
        raise UserError(f"a directory, not a file: {', '.join(dirs)}")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{problem}: {', '.join(missing)}")
    return paths


def _parse_time(text: str) -> int:
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"not an ISO date/time: {text!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1e9)


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=1, default=str))


# -- data ls -------------------------------------------------------------------------------------
def render_ls(store: Store) -> str:
    rows = store.ls()
    if not rows:
        return f"store {store.root} is empty"
    lines = [
        f"store {store.root}",
        f"{'venue':<14} {'symbol':<12} {'kind':<8} {'rows':>11} {'first (UTC)':<24} {'last (UTC)':<24} "
        f"{'files':>5} {'MB':>8}",
    ]
    for d in rows:
        lines.append(
            f"{d.venue:<14} {d.symbol:<12} {d.kind:<8} {d.rows:>11,} {ns_to_iso(d.first_ns):<24} "
            f"{ns_to_iso(d.last_ns):<24} {d.files:>5} {d.bytes / 1e6:>8.2f}"
        )
    bad = [p for d in rows for p in d.problems]
    lines += [f"CORRUPT {p}" for p in bad]
    if bad:
        lines.append(f"{len(bad)} corrupt part(s) left out of the counts: see `orderflow data verify`")
    return "\n".join(lines)


def data_ls(cfg: Config, args: argparse.Namespace) -> int:
    store = _store(cfg, args)
    if args.json:
        _print_json(
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


def print_problems(report, limit: int = 50, file=None) -> None:
    """The importer's notes and problems (``file:line: message``) and its gap count, as ``data import``
    prints them."""
    for note in report.notes:
        print(f"note: {note}", file=file)
    for prob in report.problems[:limit]:
        print(f"problem: {prob}", file=file)
    if len(report.problems) > limit:
        print(f"... {len(report.problems) - limit} more problems (use --json)", file=file)


def data_import(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.data.importers import FORMATS, import_paths
    from orderflow.data.importers.base import ImportError_, why_no_events

    if args.format not in FORMATS:
        raise UserError(f"unknown format {args.format!r}; known: {', '.join(FORMATS)}")
    paths = _existing_files(args.paths)
    store = _store(cfg, args)
    t0 = time.perf_counter()
    try:
        report = import_paths(
            store, paths, args.format, venue=args.venue, symbol=args.symbol, interval=args.interval
        )
    except ImportError_ as e:
        raise UserError(str(e)) from None
    if args.json:
        _print_json(report.to_dict())
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

    store = _store(cfg, args)
    report = check(store, venue=args.venue, symbol=args.symbol, thresholds=cfg.quality)
    failures = report.failures(cfg.quality)
    if args.json:
        _print_json(report.to_dict())
    else:
        print(render(report))
        for f in failures:
            print(f"FAIL: {f}")
    return 1 if failures else 0


# -- data verify -----------------------------------------------------------------------------------
def data_verify(cfg: Config, args: argparse.Namespace) -> int:
    """Read every stored part (footer, pages and their checksums); exit 1 naming each damaged one."""
    store = _store(cfg, args)
    t0 = last = time.perf_counter()

    def progress(done: int, total: int) -> None:
        nonlocal last
        if time.perf_counter() - last > 2.0 or done == total:
            last = time.perf_counter()
            log.info("verified %d / %d parts", done, total)

    rep = store.verify(args.venue, args.symbol, full=not args.quick, progress=progress)
    if args.json:
        _print_json(
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
def _sim_config(cfg: Config, args: argparse.Namespace):
    over = {
        k: v
        for k, v in {
            "symbol": getattr(args, "symbol", None),
            "hours": args.hours,
            "seed": args.seed,
            "start": getattr(args, "start", None),
        }.items()
        if v is not None
    }
    return cfg.simulator.model_copy(update=over) if over else cfg.simulator


def _progress(done: float, total: float) -> None:
    log.info("simulated %.1f / %.1f h", done, total)


def _sim_summary(res) -> str:
    return f"{res.book_rows:,} book rows, {res.trade_rows:,} trades, {res.regime_rows:,} regime rows"


def data_simulate(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.data.simulator import simulate

    store = _store(cfg, args)
    sc = _sim_config(cfg, args)
    t0 = time.perf_counter()
    res = simulate(sc, store=store, progress=_progress)
    took = time.perf_counter() - t0
    print(f"simulated {sc.hours:g} h of {sc.symbol} (seed {sc.seed}) in {took:.1f} s: {_sim_summary(res)}")
    print(f"stored in {store.root}")
    return 0


# -- data facts ------------------------------------------------------------------------------------
@contextlib.contextmanager
def resolve_source(
    store: Store, source: list[str], allow_gaps: bool = False
) -> Iterator[tuple[Store, str, str, str]]:
    """A SOURCE argument: a stored ``VENUE/SYMBOL`` or raw Binance recording file(s), imported on the fly
    into a temporary store. The import's notes and problems are printed to stderr; a recording whose
    depth chain has gaps is refused unless ``allow_gaps``. Yields (store, venue, symbol, display name)."""
    if len(source) == 1 and "/" in source[0] and not Path(source[0]).exists():
        venue, symbol = source[0].split("/", 1)
        if not store.files(venue, symbol, "book"):
            raise UserError(f"no book data for {venue}/{symbol} in {store.root} (see `orderflow data ls`)")
        yield store, venue, symbol, source[0]
        return
    dirs = [p for p in source if Path(p).is_dir()]
    if dirs:
        raise UserError(f"{', '.join(dirs)}: a directory, not a recording file or a stored VENUE/SYMBOL")
    paths = _existing_files(source, "neither a stored VENUE/SYMBOL nor an existing file")
    from orderflow.data.importers import import_paths
    from orderflow.data.importers.base import ImportError_

    with tempfile.TemporaryDirectory() as tmp:
        tmp_store = Store(tmp)
        try:
            rep = import_paths(tmp_store, paths, "binance-raw")
        except ImportError_ as e:
            raise UserError(str(e)) from None
        print_problems(rep, limit=10, file=sys.stderr)
        name = " + ".join(p.name for p in paths)
        if rep.gaps and not allow_gaps:
            raise UserError(
                f"{name}: the depth chain has {rep.gaps} gap(s) (listed above); the book is invalid around "
                "each one. Give --allow-gaps to use the recording anyway"
            )
        if rep.gaps:
            print(
                f"warning: {name}: using a recording with {rep.gaps} gap(s) (--allow-gaps)", file=sys.stderr
            )
        ds = {(d.venue, d.symbol) for d in tmp_store.ls() if d.kind == "book"}
        if len(ds) != 1:
            raise UserError(
                f"{source}: expected one symbol's book in the files, found {sorted(ds) or 'none'}"
                + (f"; problems: {rep.problems[:3]}" if rep.problems else "")
            )
        venue, symbol = ds.pop()
        yield tmp_store, venue, symbol, name


def data_facts(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.research.facts import compute_facts, render_facts

    with resolve_source(_store(cfg, args), args.source, args.allow_gaps) as (store, venue, symbol, name):
        facts = compute_facts(store, venue, symbol)
    if args.json:
        _print_json({"source": name, **facts})
    else:
        print(render_facts({name: facts}))
    return 0


# -- features -------------------------------------------------------------------------------------
def features_list(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.features.registry import default_specs, group_counts

    specs = default_specs(cfg.features)
    if args.json:
        _print_json([s.__dict__ for s in specs])
        return 0
    for s in specs:
        print(f"{s.name:<34} {s.group:<9} {s.unit:<12} {s.window:<22} {s.definition}")
    counts = ", ".join(f"{g} {n}" for g, n in group_counts(specs).items())
    print(f"{len(specs)} features ({counts})")
    return 0


def _time_range(args: argparse.Namespace) -> tuple[int | None, int | None]:
    start = _parse_time(args.start) if getattr(args, "start", None) else None
    end = _parse_time(args.end) if getattr(args, "end", None) else None
    if start is not None and end is not None and end <= start:
        raise UserError(f"--end {args.end} is not after --start {args.start}")
    return start, end


def _feature_matrix(cfg: Config, store: Store, venue: str, symbol: str, args: argparse.Namespace):
    from orderflow.features.batch import build_features, fit_integrated_weights

    start, end = _time_range(args)
    fcfg = cfg.features
    if fcfg.tick_size is None:
        inst = store.instrument(venue, symbol)
        if inst is None:
            raise UserError(f"tick size of {venue}/{symbol} unknown: set features.tick_size in the config")
        fcfg = fcfg.model_copy(update={"tick_size": inst.tick_size})
    if venue == "binance-spot" and fcfg.futures:  # no funding on spot
        fcfg = fcfg.model_copy(update={"futures": False})
    fit_until = getattr(args, "fit_integrated_until", None)
    if fit_until:
        t_fit = _parse_time(fit_until)
        book = store.read(venue, symbol, "book", start, t_fit)
        try:
            w = fit_integrated_weights(book, fcfg, start or 0, t_fit)
        except ValueError as e:
            raise UserError(str(e)) from None
        log.info("integrated-OFI loadings fitted on [%s, %s): %s", args.start or "start", fit_until, w)
        fcfg = fcfg.model_copy(update={"integrated_weights": w})
    t0 = time.perf_counter()
    try:
        x = build_features(store, venue, symbol, fcfg, start, end)
    except ValueError as e:
        raise UserError(str(e)) from None
    log.info("built %d x %d features in %.1f s", len(x), x.shape[1] - 3, time.perf_counter() - t0)
    return x


def features_build(cfg: Config, args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".parquet":
        raise UserError(f"--out must name a .parquet file, got {out}")
    with resolve_source(_store(cfg, args), args.source, args.allow_gaps) as (store, venue, symbol, name):
        x = _feature_matrix(cfg, store, venue, symbol, args)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    x.to_parquet(tmp, index=False)
    tmp.replace(out)  # never a half-written matrix under the final name
    valid = int(x["valid"].sum())
    reasons = x.loc[~x["valid"], "invalid_reason"].value_counts().to_dict()
    print(f"{name}: {len(x):,} rows x {x.shape[1] - 3} features -> {out}; valid {valid:,}; invalid {reasons}")
    return 0


def features_select(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.features.labels import triple_barrier
    from orderflow.features.ofi import mid_price
    from orderflow.features.selection import select_features

    scfg = cfg.selection
    over = {k: v for k, v in {"n_keep": args.n_keep, "n_folds": args.folds}.items() if v is not None}
    if over:
        scfg = scfg.model_validate({**scfg.model_dump(), **over})
    root = _store(cfg, args)
    with resolve_source(root, args.source, args.allow_gaps) as (store, venue, symbol, name):
        x = _feature_matrix(cfg, store, venue, symbol, args)
        start, end = _time_range(args)
        book = store.read(venue, symbol, "book", start, end, columns=["ts_event", "bid_px_1", "ask_px_1"])
    ts = book["ts_event"].to_numpy()
    mid = mid_price(book["bid_px_1"].to_numpy(), book["ask_px_1"].to_numpy())
    labels = triple_barrier(ts, mid, x["ts_event"].to_numpy(), cfg.labels, by="ts")
    n_keep = min(scfg.n_keep, x.shape[1] - 3)
    if n_keep != scfg.n_keep:
        scfg = scfg.model_copy(update={"n_keep": n_keep})
    try:
        res = select_features(x, labels, scfg)
    except ValueError as e:
        raise UserError(f"{name}: {e}") from None
    out = Path(args.out) if args.out else root.root.parent / "selections" / f"{venue}_{symbol}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(res.to_json())
    doc.update({"source": name, "venue": venue, "symbol": symbol, "labels": cfg.labels.model_dump()})
    out.write_text(json.dumps(doc, indent=2))
    if args.json:
        _print_json(doc)
    else:
        print(res.ranking.head(scfg.n_keep).to_string(index=False))
        print(res.folds.to_string(index=False))
        print(f"kept {len(res.selected)} of {x.shape[1] - 3} features; recorded in {out}")
    scored = res.folds[~res.folds["skipped"].astype(bool)]
    beat = int((scored["log_loss"] < scored["log_loss_prior"]).sum())
    if beat * 2 <= len(scored):
        print(
            f"warning: the model beat the class prior out of sample on only {beat} of {len(scored)} folds; "
            "importance rankings from a model without out-of-sample skill are weak evidence",
            file=sys.stderr,
        )
    return 0


# -- research -------------------------------------------------------------------------------------
def _float_list(text: str, what: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what} wants comma-separated numbers, got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise UserError(f"{what} wants positive numbers, got {text!r}")
    return vals


def research_impact(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.research.impact import impact_from_store, render_impact

    intervals = _float_list(args.intervals, "--intervals")
    if not 1 <= args.levels <= 20:
        raise UserError(f"--levels must be within 1..20 (the stored book depth), got {args.levels}")
    with resolve_source(_store(cfg, args), args.source, args.allow_gaps) as (store, venue, symbol, name):
        result = impact_from_store(store, venue, symbol, intervals_s=tuple(intervals), levels=args.levels)
    if args.json:
        _print_json({"source": name, **result})
    else:
        print(render_impact(result))
    return 0


# -- data record / replay-server / backfill-klines ---------------------------------------------------------
def _endpoints(cfg: Config, args: argparse.Namespace):
    from orderflow.data.binance.endpoints import default_endpoints

    market = args.market
    ep = default_endpoints(market, testnet=True) if args.testnet else cfg.binance.endpoints(market)
    over = {"rest_base_url": args.rest_url, "ws_base_url": getattr(args, "ws_url", None)}
    over = {k: v for k, v in over.items() if v}
    routes = getattr(args, "ws_routes", "auto")
    if market == "usdm" and (routes != "auto" or "ws_base_url" in over):  # an explicit URL: legacy layout
        over["ws_routes"] = routes if routes != "auto" else "combined"
    return ep.model_validate({**ep.model_dump(), **over}) if over else ep


def _feed_config(cfg: Config, args: argparse.Namespace):
    """The configured feed section for ``args.market``; market-dependent defaults are re-derived."""
    from orderflow.data.binance.endpoints import FeedConfig

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
    try:
        return FeedConfig.model_validate(data)
    except ValueError as e:
        raise UserError(f"bad feed settings: {e}") from None


def data_record(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.data.recorder import record

    store = _store(cfg, args)
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
    _print_json(summary)
    if not summary["raw_lines"]:  # nothing from the venue: say why instead of a quiet success
        why = summary.get("last_error") or "no market data arrived"
        print(f"orderflow: recorded nothing in {summary['seconds']:g} s: {why}", file=sys.stderr)
        return 1
    return 0


def data_replay_server(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.cli_types import listen_error, port_in_use
    from orderflow.data.binance.replay_server import EmptyRecording, serve

    drops: dict[str, int] = {}
    for spec in args.drop_diff:
        sym, _, k = spec.partition(":")
        if not sym or not k.isdigit():
            raise UserError(f"--drop-diff wants SYMBOL:K, got {spec!r}")
        drops[sym.upper()] = int(k)
    paths = _existing_files(args.paths)
    busy = port_in_use(args.host, args.port)  # early, before loading the recording; the bind checks again
    if busy:
        raise UserError(busy)
    try:
        serve(
            paths,
            host=args.host,
            port=args.port,
            speed=args.speed,
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
        msg = listen_error(args.host, args.port, e)
        if msg is None:
            raise
        raise UserError(msg) from None
    return 0


def data_backfill_klines(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.data.backfill import backfill_klines

    store = _store(cfg, args)
    start = _parse_time(args.start)
    end = _parse_time(args.end) if args.end else time.time_ns()
    if end <= start:
        raise UserError(f"--end {args.end} is not after --start {args.start}")
    n = backfill_klines(
        store, args.market, args.symbol.upper(), args.interval, start, end, _endpoints(cfg, args)
    )
    print(f"stored {n} {args.interval} bars of {args.symbol.upper()} in {store.root}")
    return 0


# -- the main job ----------------------------------------------------------------------------------
def run_main_job(cfg: Config, args: argparse.Namespace) -> int:
    """Simulate a market on embedded defaults, store it, check it and print its stylized facts."""
    from orderflow.data.quality import check, render
    from orderflow.data.simulator import simulate
    from orderflow.research.facts import compute_facts, render_facts

    store = _store(cfg, args)
    sc = _sim_config(cfg, args)
    t0 = time.perf_counter()
    if not args.json:
        print(f"orderflow {sc.hours:g} h market simulation of {sc.symbol} (seed {sc.seed}) into {store.root}")
    res = simulate(sc, store=store, progress=_progress)
    t_sim = time.perf_counter() - t0
    report = check(store, venue=sc.venue, symbol=sc.symbol, thresholds=cfg.quality)
    facts = compute_facts(store, sc.venue, sc.symbol)
    failures = report.failures(cfg.quality)
    if args.json:
        _print_json(
            {
                "simulation": _sim_summary(res),
                "seconds": round(t_sim, 2),
                "quality": report.to_dict(),
                "quality_failures": failures,
                "facts": facts,
            }
        )
    else:
        print(f"\nsimulated in {t_sim:.1f} s: {_sim_summary(res)}\n")
        print(render_ls(store))
        print("\ndata quality")
        print(render(report))
        for f in failures:
            print(f"FAIL: {f}")
        print("\nstylized facts")
        print(render_facts({f"{sc.venue}/{sc.symbol}": facts}))
    return 1 if failures else 0
