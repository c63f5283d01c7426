"""``orderflow backtest`` and ``orderflow demo``: replay events through the strategy (a model, or
walk-forward training), and the whole pipeline on embedded defaults."""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderflow.cli import types as T
from orderflow.cli.common import (
    SIM_HOURS,
    UserError,
    add_registry,
    add_source,
    feature_matrix,
    model_bundle,
    open_store,
    progress,
    resolve_sources,
    sim_config,
    time_range,
)

if TYPE_CHECKING:
    from orderflow.backtest.engine import Market
    from orderflow.config import Config
    from orderflow.core.instruments import Instrument

log = logging.getLogger("orderflow.backtest")


def register(subparsers: Any) -> None:
    """Add ``backtest`` and ``demo`` to ``subparsers``."""
    p = subparsers.add_parser(
        "backtest",
        help="replay stored or recorded events through the strategy (a model, or walk-forward training)",
    )
    add_registry(p)
    add_source(p)
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
    p.set_defaults(handler=backtest_cmd)

    p = subparsers.add_parser(
        "demo",
        help="the whole pipeline on embedded defaults: simulate 24 h, features, walk-forward "
        "training and backtest, report",
    )
    add_registry(p)
    p.add_argument("--hours", type=SIM_HOURS, default=24.0, help="simulated hours (default 24)")
    p.add_argument("--seed", type=T.non_negative_int, help="simulator seed (default: simulator.seed)")
    p.add_argument("--full-models", dest="quick", action="store_false",
                   help="train members at their configured sizes (slower), not the quick ones")  # fmt: skip
    p.add_argument("--fresh", action="store_true", help="simulate again even if the store has the data")
    p.add_argument(
        "--report", type=T.dir_path, help="report directory (default: demo-report next to the store)"
    )
    p.set_defaults(handler=demo_cmd)


OOS_NOTE = (
    "Every figure is out of sample and after fees, spread and slippage: {what}. Fills come from the "
    "simulated exchange (market orders walk the recorded book; latency {lat}); fees {fees}."
)


def _report_dir(spec: str | None) -> Path | None:
    """``--report``: a directory to create or reuse; refused (before anything is written) when the path
    or one of its parents is an existing file."""
    if not spec:
        return None
    path = Path(spec)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            what = "is a file" if p == path else f"is under {p}, which is a file"
            raise UserError(f"--report {spec}: {what}, not a directory")
    return path


def _check_span(name: str, span_h: float, wfc) -> None:
    """A one-line refusal when ``span_h`` hours of data hold no walk-forward test window."""
    from orderflow.backtest.walkforward import required_hours

    need = required_hours(wfc)
    if span_h < need:
        raise UserError(
            f"{name} spans {span_h:.3g} h; the walk-forward needs at least {need:g} h (train "
            f"{wfc.train_hours:g} h + half a {wfc.test_hours:g} h test window); shorten "
            "walkforward.train_hours / walkforward.test_hours or give more data"
        )


def _instrument(store, venue: str, symbol: str) -> Instrument:
    from orderflow.core.instruments import Instrument

    inst = store.instrument(venue, symbol)
    if inst is None:
        raise UserError(f"{venue}/{symbol}: instrument (tick, lot) unknown in {store.root}")
    return inst if isinstance(inst, Instrument) else Instrument(**inst)


def _market(store, venue: str, symbol: str, start: int | None, end: int | None) -> Market:
    from orderflow.backtest.engine import Market

    book = store.read(venue, symbol, "book", start, end)
    trades = store.read(venue, symbol, "trade", start, end)
    return Market.from_frames(venue, symbol, book, trades)


def _print_summary(metrics: dict[str, Any], report: Path | None, seconds: float) -> None:
    from orderflow.backtest.metrics import metrics_table

    keys = ["trades", "trades_per_day", "win_rate", "gross_pnl", "fees", "slippage", "net_pnl",
            "avg_pnl_per_trade", "profit_factor", "sharpe", "sortino", "max_drawdown", "var95",
            "exposure", "cost_share"]  # fmt: skip
    table = metrics_table({k: metrics.get(k) for k in keys})
    print(table.to_string(index=False))
    if "funding_source" in metrics:
        print(f"funding: {metrics['funding_source']}; {metrics['funding_events']} events, "
              f"{metrics['funding_total']:,.4f} paid")  # fmt: skip
    rej = metrics.get("rejections") or {}
    if rej:
        top = sorted(rej.items(), key=lambda kv: -kv[1])[:6]
        print("rejections: " + ", ".join(f"{k} {v:,}" for k, v in top))
    if report is not None:
        print(f"\nreport: {report}")
    print(f"done in {seconds:.0f} s")


def backtest_cmd(cfg: Config, args: argparse.Namespace) -> int:
    """``orderflow backtest SOURCE --model production --report DIR`` (or ``--walk-forward``)."""

    from orderflow.backtest.engine import make_signals, run_backtest
    from orderflow.backtest.metrics import compute_metrics
    from orderflow.backtest.report import write_report

    t0 = time.perf_counter()
    report_dir = _report_dir(args.report)
    start, end = time_range(args)
    gaps = getattr(args, "allow_gaps", False)  # demo runs this with its own arguments
    with resolve_sources(open_store(cfg, args), args.source, gaps) as (store, pairs, name):
        if len(pairs) > 1:
            return _book_backtest(cfg, args, store, pairs, name, report_dir, t0)
        venue, symbol = pairs[0]
        features = feature_matrix(cfg, store, venue, symbol, args)
        market = _market(store, venue, symbol, start, end)
        inst = _instrument(store, venue, symbol)
        book_mid = store.read(venue, symbol, "book", start, end, columns=["ts_event", "bid_px_1", "ask_px_1"])
        funding = funding_from_store(store, venue, symbol)
    if args.walk_forward:
        return _walk_forward(cfg, args, market, features, book_mid, inst, name, report_dir, t0, funding)
    probs, what = _model_probabilities(args, features, market)
    signals = make_signals(features, probs, cfg.strategy)
    res = run_backtest(market, signals, inst, cfg.backtest, cfg.strategy, cfg.risk, cfg.execution, funding)
    metrics = compute_metrics(res.equity, res.trades, res.fills, res.rejections, cfg.backtest.initial_equity)
    funding_info = res.info["funding"]
    assert isinstance(funding_info, dict)  # engine.funding.funding_summary's
    metrics.update(funding_info)
    print(f"{name}: {res.events:,} events replayed in {res.seconds:.2f} s")
    report = None
    if report_dir is not None:
        x = cfg.backtest.exchange
        fees = f"maker {res.info['maker_fee']}, taker {res.info['taker_fee']}"
        note = OOS_NOTE.format(what=what, lat=f"{x.latency.kind} {x.latency.entry_ms} ms", fees=fees)
        note += "\n\n" + funding_note(metrics)
        report = write_report(report_dir, metrics, res.equity, res.trades, res.fills, res.rejections,
                              f"orderflow backtest: {name}", note)  # fmt: skip
    _print_summary(metrics, report, time.perf_counter() - t0)
    return 0


NO_MODEL = "no model (the AI score is 0: only the OFI score can pass the gates)"


def _model_probabilities(args: argparse.Namespace, features, market: Market):
    """``--model``'s probabilities at every feature row (None for ``none``) and the report's words."""
    import numpy as np
    import pandas as pd

    if args.model == "none":
        return None, NO_MODEL
    from orderflow.features.selection import feature_columns
    from orderflow.models.dataset import schema_hash
    from orderflow.models.registry import RegistryError
    from orderflow.models.serving import EnsembleModel, SchemaMismatch

    bundle = model_bundle(args)
    assert bundle is not None
    names = feature_columns(features)
    try:
        model = EnsembleModel.from_bundle(bundle, schema_hash(names), names)
    except (RegistryError, SchemaMismatch) as e:
        raise UserError(f"--model {args.model}: {e}") from None
    tr = model.manifest.training_window
    if tr is not None and int(market.b_ts[0]) < tr.end_ns:
        print(f"WARNING: {market.symbol}: the data starts before the end of the model's training window "
              f"({pd.Timestamp(tr.end_ns, tz='UTC')}): those results are NOT out of sample")  # fmt: skip
    X = features[names].to_numpy(np.float32)
    print(f"scoring {len(X):,} rows of {market.symbol} with {bundle.name} ({', '.join(model.member_names)})")
    return model.predict(X, model.new_state()), f"model {bundle} applied after its training window"


def _book_backtest(cfg, args, store, pairs, name, report_dir, t0) -> int:
    """Several symbols in one book (backtest.portfolio): each symbol's features and model (one shared
    ``--model`` bundle, or with ``--walk-forward`` the symbol's own models per window), one run."""
    import numpy as np
    import pandas as pd

    from orderflow.backtest.book_report import write_book_report
    from orderflow.backtest.engine import make_signals
    from orderflow.backtest.portfolio import run_book_backtest

    start, end = time_range(args)
    markets, sigs, insts, funds, tables = [], [], [], [], []
    spans: list[tuple[int, int]] = []
    what = NO_MODEL
    for venue, symbol in pairs:
        features = feature_matrix(cfg, store, venue, symbol, args)
        market = _market(store, venue, symbol, start, end)
        if args.walk_forward:
            book_mid = store.read(
                venue, symbol, "book", start, end, columns=["ts_event", "bid_px_1", "ask_px_1"]
            )
            probs, valid, table, span = _walk_forward_probabilities(cfg, args, market, features, book_mid)
            tables.append(table.assign(symbol=symbol))
            spans.append(span)
            what = (f"walk-forward test windows only: each symbol's models fitted on its samples whose "
                    f"labels ended before the window ({cfg.walkforward.train_hours:g} h train, "
                    f"{cfg.walkforward.test_hours:g} h test)")  # fmt: skip
        else:
            probs, what = _model_probabilities(args, features, market)
            valid = None
        sig = make_signals(features, probs, cfg.strategy)
        if valid is not None:
            sig.valid = np.ascontiguousarray(sig.valid & valid)
        markets.append(market)
        sigs.append(sig)
        insts.append(_instrument(store, venue, symbol))
        funds.append(funding_from_store(store, venue, symbol))
    if spans:  # the book trades the test windows only
        lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
        for k, m in enumerate(markets):
            mask = (m.b_ts >= lo) & (m.b_ts < hi)
            markets[k], sigs[k] = m.window(lo, hi), sigs[k].window(mask)
        empty = [m.symbol for m in markets if m.n_book == 0]
        if empty:
            raise UserError(f"{', '.join(empty)}: no book event inside the walk-forward test windows")
    res = run_book_backtest(markets, sigs, insts, cfg.backtest, cfg.strategy, cfg.risk, cfg.execution, funds)
    print(
        f"{name}: {len(markets)} symbols in one book, {res.events:,} events replayed in {res.seconds:.2f} s"
    )
    x = cfg.backtest.exchange
    note = OOS_NOTE.format(
        what=what, lat=f"{x.latency.kind} {x.latency.entry_ms} ms", fees="the venue's defaults"
    )
    note += ("\n\nOne book: capital in use, the correlation budget, the book's VaR95 and its breakers bind "
             "across the symbols; simultaneous entries are allocated by confidence x EV per unit of risk "
             f"(risk.sizing_equity = {cfg.risk.sizing_equity}).")  # fmt: skip
    limits = {"max_capital_in_use": cfg.risk.max_capital_in_use, "max_position": cfg.risk.max_position}
    if report_dir is not None:
        report, metrics = write_book_report(report_dir, res, cfg.backtest.initial_equity,
                                            f"orderflow backtest: {name}", note, limits)  # fmt: skip
        if tables:
            pd.concat(tables, ignore_index=True).to_csv(report_dir / "models_by_window.csv", index=False)
    else:
        from orderflow.backtest.book_report import book_metrics

        report, metrics = None, book_metrics(res, cfg.backtest.initial_equity)
    if tables:
        print(pd.concat(tables, ignore_index=True).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    per = pd.DataFrame([{"symbol": s, "trades": m["trades"], "net_pnl": m["net_pnl"], "fees": m["fees"],
                         "win_rate": m["win_rate"], "max_drawdown": m["max_drawdown"],
                         "book_bound": m["book_bound"]} for s, m in metrics["symbols"].items()])  # fmt: skip
    print(per.to_string(index=False, float_format=lambda v: f"{v:,.4f}"))
    corr = res.correlation
    print(f"correlation at the end ({res.info['bars']} bars of {cfg.risk.cov_bar_s:g} s):")
    print(corr.to_string(float_format=lambda v: f"{v:.3f}"))
    print("the book:")
    _print_summary(metrics["portfolio"], report, time.perf_counter() - t0)
    return 0


def _walk_forward_probabilities(cfg, args, market: Market, features, book_mid):
    """One symbol's out-of-sample probabilities over its walk-forward test windows: ``(probs, valid,
    model table, (first start, last end))``; rows outside the windows are not valid."""
    import numpy as np
    import pandas as pd

    from orderflow.backtest.walkforward import H_NS, iter_window_probabilities, window_spans
    from orderflow.models.train import labelled_dataset

    t_first, t_last = int(market.b_ts[0]), int(market.b_ts[-1])
    windows = window_spans(t_first, t_last, cfg.walkforward)
    if not windows:
        _check_span(market.symbol, (t_last - t_first) / H_NS, cfg.walkforward)
    mcfg = cfg.models.quick() if args.quick else cfg.models
    ds, mid = labelled_dataset(features, book_mid, cfg.labels, mcfg.sample_every_s)
    print(f"{market.symbol}: {ds.n_samples:,} labelled samples; members {', '.join(mcfg.members)}"
          f"{' (quick sizes)' if args.quick else ''}")  # fmt: skip
    n = len(features)
    probs = np.zeros((n, 3))
    valid = np.zeros(n, bool)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for wp in iter_window_probabilities(features, ds, mcfg, Path(tmp), windows, cfg.walkforward, mid,
                                            lambda s: print(f"{market.symbol}: {s}")):  # fmt: skip
            probs[wp.r0 : wp.r1] = wp.probs
            valid[wp.r0 : wp.r1] = True
            rows.append({**wp.model_row, "start_ns": wp.start_ns, "end_ns": wp.end_ns,
                         "train_samples": wp.train_samples})  # fmt: skip
    if not rows:
        raise UserError(f"{market.symbol}: every walk-forward window was skipped (too few training samples)")
    return probs, valid, pd.DataFrame(rows), (int(rows[0]["start_ns"]), int(rows[-1]["end_ns"]))


def funding_from_store(store, venue: str, symbol: str):
    """The stored funding history of the backtested symbol on its venue (empty if none)."""
    from orderflow.engine.funding import from_store

    return from_store(store, venue, symbol)


def funding_note(metrics: dict[str, Any]) -> str:
    """The report's paragraph on funding: which rates were booked, how often, how much."""
    return (f"Funding booked: {metrics['funding_source']}; {metrics['funding_events']} funding events, "
            f"{metrics['funding_total']:,.4f} paid in all (negative: received), of which "
            f"{metrics['funding_events_history']} at stored rates ({metrics['funding_total_history']:,.4f}) "
            f"and {metrics['funding_events_constant']} at the constant "
            f"({metrics['funding_total_constant']:,.4f}).")  # fmt: skip


def _walk_forward(cfg, args, market, features, book_mid, inst, name, report_dir, t0, funding) -> int:
    import pandas as pd

    from orderflow.backtest.report import write_report
    from orderflow.backtest.walkforward import H_NS, WalkForwardError, walk_forward, window_spans
    from orderflow.models.train import labelled_dataset

    t_first, t_last = int(market.b_ts[0]), int(market.b_ts[-1])
    if not window_spans(t_first, t_last, cfg.walkforward):
        _check_span(name, (t_last - t_first) / H_NS, cfg.walkforward)
    mcfg = cfg.models
    mcfg = mcfg.quick() if args.quick else mcfg
    ds, mid = labelled_dataset(features, book_mid, cfg.labels, mcfg.sample_every_s)
    wfc = cfg.walkforward
    print(f"{name}: {ds.n_samples:,} labelled samples; walk-forward {wfc.train_hours:g} h train / "
          f"{wfc.test_hours:g} h test; members {', '.join(mcfg.members)}"
          f"{' (quick sizes)' if args.quick else ''}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        try:
            wf = walk_forward(market, features, ds, inst, mcfg, Path(tmp), cfg.walkforward, cfg.backtest,
                              cfg.strategy, cfg.risk, mid, print, cfg.execution, funding)  # fmt: skip
        except WalkForwardError as e:
            raise UserError(f"{name}: {e}; shorten walkforward.* or give more data") from None
    report = None
    if report_dir is not None:
        x = cfg.backtest.exchange
        note = OOS_NOTE.format(
            what=f"{len(wf.windows)} walk-forward test windows, each traded by models fitted only on "
            "samples whose labels ended before the window",
            lat=f"{x.latency.kind} {x.latency.entry_ms} ms",
            fees="the venue's defaults",
        )
        note += "\n\n" + funding_note(wf.metrics)
        report = write_report(report_dir, wf.metrics, wf.equity, wf.trades, wf.fills, wf.rejections,
                              f"orderflow walk-forward backtest: {name}", note)  # fmt: skip
        spans = pd.DataFrame(wf.windows).drop(columns=["weights", "seconds"])
        wf.model_table.merge(spans, on="window", how="left").to_csv(report_dir / "models_by_window.csv",
                                                                    index=False)  # fmt: skip
    print(wf.model_table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    _print_summary(wf.metrics, report, time.perf_counter() - t0)
    return 0


def demo_cmd(cfg: Config, args: argparse.Namespace) -> int:
    """simulate -> features -> walk-forward (train, score, backtest per window) -> report."""
    from orderflow.data.simulator import simulate

    t0 = time.perf_counter()
    report_dir = _report_dir(args.report)
    if not getattr(args, "log_level", None):  # the demo prints its own progress; library logs only warn
        logging.getLogger("orderflow").setLevel(logging.WARNING)
    sc = sim_config(cfg, args)
    root = cfg.store_dir(getattr(args, "store", None))
    report = report_dir or _report_dir(str(root.parent / "demo-report"))
    reuse = (
        not args.fresh and root.is_dir() and bool(open_store(cfg, args).files(sc.venue, sc.symbol, "book"))
    )
    if not reuse:  # refuse before the store is created or written
        _check_span(f"--hours {sc.hours:g}: the simulated data", sc.hours, cfg.walkforward)
    store = open_store(cfg, args)
    if reuse:
        print(f"using the {sc.venue}/{sc.symbol} data already in {store.root} (--fresh to resimulate)")
    else:
        print(f"[1/4] simulating {sc.hours:g} h of {sc.symbol} (seed {sc.seed}) into {store.root}")
        simulate(sc, store=store, progress=progress)
    ns = argparse.Namespace(**{**vars(args), "source": [f"{sc.venue}/{sc.symbol}"], "walk_forward": True,
                               "report": str(report), "start": None, "end": None,
                               "fit_integrated_until": None})  # fmt: skip
    print("[2/4] building features; [3/4] walk-forward: train, score and backtest each window; [4/4] report")
    rc = backtest_cmd(cfg, ns)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    return rc
