"""Backtest throughput of one book of K symbols (``orderflow.backtest.portfolio``): events per second with
1, 2, 4 and 8 simulated symbols and the same total number of events. Prints figures; not a test. Run
pinned to one core:

    taskset -c 0 .venv/bin/python benchmarks/bench_book.py [--hours 8] [--reps 3]

Data: the market simulator, ``--hours`` hours, seed 1 (as ``orderflow data simulate``), features built
once and probabilities from the OFI rule of ``bench_backtest`` (not timed). For K symbols the run is
cut into K consecutive slices of equal length, each shifted onto the first slice's hours and named as
a symbol of its own, so every K replays the same events (book events + trades) at the same density per
symbol-hour. Timed: the best of ``--reps`` runs of the compiled loop (the numba cache loaded or the
loop compiled once per K before). The one-symbol loop of ``run_backtest`` over the whole run is shown
as the reference.

Target (issue 17): the book's events per second with 8 symbols within 20% of one symbol's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from orderflow.backtest.engine import Market, Signals, make_signals, run_backtest
from orderflow.backtest.portfolio import run_book_backtest
from orderflow.config import Config
from orderflow.data.simulator import simulate
from orderflow.data.store import Store
from orderflow.features.batch import build_features
from orderflow.strategy.config import StrategyConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))


def rule_probs(feats) -> np.ndarray:
    z = np.nan_to_num(feats["ofi_int_z_1s"].to_numpy(), nan=0.0)
    up = 1.0 / (1.0 + np.exp(-1.5 * z))
    return np.stack([0.8 * (1 - up), np.full_like(up, 0.2), 0.8 * up], axis=1)


def slices(market: Market, sig: Signals, k: int) -> tuple[list[Market], list[Signals]]:
    """``k`` consecutive slices of equal duration, each moved onto the first slice's times."""
    t0, t1 = int(market.b_ts[0]), int(market.b_ts[-1]) + 1
    step = (t1 - t0) // k
    ms, ss = [], []
    for i in range(k):
        lo, hi = t0 + i * step, t0 + (i + 1) * step if i < k - 1 else t1
        m = market.window(None if i == 0 else lo, None if i == k - 1 else hi)  # every trade in a slice
        shift = i * step
        m = Market(m.venue, f"SYM{i}USDT", m.b_ts - shift, m.b_recv - shift, m.bid_px, m.bid_sz, m.ask_px,
                   m.ask_sz, m.t_ts - shift, m.t_recv - shift, m.t_px, m.t_sz, m.t_side)  # fmt: skip
        mask = (market.b_ts >= (-(2**62) if i == 0 else lo)) & (market.b_ts < (2**62 if i == k - 1 else hi))
        ms.append(m)
        ss.append(sig.window(mask))
    return ms, ss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    cfg = Config()
    strategy = StrategyConfig(ev_cost_mult=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        sc = cfg.simulator.model_copy(update={"hours": args.hours, "seed": 1})
        t = time.perf_counter()
        simulate(sc, store=store)
        feats = build_features(store, sc.venue, sc.symbol, cfg.features)
        market = Market.from_frames(sc.venue, sc.symbol, store.read(sc.venue, sc.symbol, "book"),
                                    store.read(sc.venue, sc.symbol, "trade"))  # fmt: skip
        inst = store.instrument(sc.venue, sc.symbol)
        print(f"simulated {args.hours:g} h and built features in {time.perf_counter() - t:.0f} s (not timed)")
    sig = make_signals(feats, rule_probs(feats), strategy)
    total = market.n_book + market.t_ts.size
    print(f"{total:,} events ({market.n_book:,} book events, {market.t_ts.size:,} trades)\n")
    run_backtest(market.window(None, int(market.b_ts[0]) + 60 * 10**9), sig.window(
        market.b_ts < market.b_ts[0] + 60 * 10**9), inst, strategy=strategy)  # fmt: skip
    best = min(_timed(lambda: run_backtest(market, sig, inst, strategy=strategy)) for _ in range(args.reps))
    print(f"{'one-symbol loop (run_backtest)':34s} {total / best / 1e6:7.2f} M events/s  ({best:.3f} s)")
    base = None
    for k in (1, 2, 4, 8):
        ms, ss = slices(market, sig, k)
        assert sum(m.n_book + m.t_ts.size for m in ms) == total
        insts = [inst] * k  # the run reads the tick, lot and minimum notional only
        t = time.perf_counter()
        res = run_book_backtest(ms, ss, insts, strategy=strategy)  # compiles (or loads) the loop for K
        first = time.perf_counter() - t
        runs = []
        for _ in range(args.reps):
            r = run_book_backtest(ms, ss, insts, strategy=strategy)
            runs.append(r.seconds)
        s = min(runs)
        rate = total / s
        base = base or rate
        trades = sum(len(x.trades) for x in r.symbols.values())
        print(f"book of {k} symbol{'s' if k > 1 else ' '}{'':21s} {rate / 1e6:7.2f} M events/s  ({s:.3f} s; "
              f"{rate / base:.0%} of 1 symbol; {trades} round trips; first call {first:.1f} s)")  # fmt: skip
        del res


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
