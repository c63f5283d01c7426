"""Simulator throughput and calibration: simulate N hours (default 24) into a temporary store, print the
timings, the stylized facts (``compute_facts``) and the facts that need the regimes or longer scales:
1 s return std per regime, mean acf of |1 min returns| at lags 1-10 and the correlation of 10 s signed
trade volume with the next 30 s mid return.

Usage: python benchmarks/bench_simulator.py [hours] [seed]
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np

from orderflow.data.config import SimulatorConfig
from orderflow.data.simulator import simulate
from orderflow.data.store import Store
from orderflow.research.facts import compute_facts, render_facts

NS = 1_000_000_000


def _last_per_bucket(ts: np.ndarray, x: np.ndarray, bucket_ns: int) -> np.ndarray:
    idx = (ts - ts[0]) // bucket_ns
    last = np.full(int(idx[-1]) + 1, -1, dtype=np.int64)
    last[idx] = np.arange(ts.size)
    np.maximum.accumulate(last, out=last)
    return x[last]


def abs_ret_acf(ts: np.ndarray, mid: np.ndarray, bucket_ns: int, lags: range = range(1, 11)) -> float:
    """Mean autocorrelation of |log returns| of the last mid per bucket at ``lags``."""
    a = np.abs(np.diff(np.log(_last_per_bucket(ts, mid, bucket_ns))))
    a = a - a.mean()
    den = float(a @ a)
    return float(np.mean([float(a[:-k] @ a[k:]) / den for k in lags]))


def flow_return_corr(ts, mid, tr_ts, signed, flow_s: int = 10, ahead_s: int = 30) -> float:
    step = flow_s * NS
    nb = int((ts[-1] - ts[0]) // step) - ahead_s // flow_s
    flow = np.bincount((tr_ts - ts[0]) // step, weights=signed, minlength=nb + 10)[:nb]
    ends = ts[0] + np.arange(1, nb + 1) * step
    at = np.searchsorted(ts, ends, side="right") - 1
    later = np.searchsorted(ts, ends + ahead_s * NS, side="right") - 1
    return float(np.corrcoef(flow, np.log(mid[later] / mid[at]))[0, 1])


def main() -> None:
    hours = float(sys.argv[1]) if len(sys.argv) > 1 else 24.0
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    simulate(SimulatorConfig(hours=0.01, seed=seed))  # compile (or load cached) numba kernels first
    with tempfile.TemporaryDirectory() as d:
        store = Store(d)
        t0 = time.perf_counter()
        res = simulate(SimulatorConfig(hours=hours, seed=seed), store=store)
        wall = time.perf_counter() - t0
        facts = compute_facts(store, "sim", "BTCUSDT")
        book = store.read("sim", "BTCUSDT", "book", columns=["ts_event", "update_id", "bid_px_1", "ask_px_1"])
        trades = store.read("sim", "BTCUSDT", "trade", columns=["ts_event", "size", "side"])
        regimes = store.read("sim", "BTCUSDT", "regime")
    print(f"simulated hours      {hours:.2f}")
    parts = f"simulate+tables {res.sim_seconds:.1f}, store write {res.write_seconds:.1f}"
    print(f"wall seconds         {wall:.1f}  ({parts})")
    print(
        f"sim-hours per minute {hours / wall * 60:.1f}  (without writing {hours / res.sim_seconds * 60:.1f})"
    )
    print(
        f"rows                 book {res.book_rows:,}  trade {res.trade_rows:,}  regime {res.regime_rows:,}"
    )
    ts = book["ts_event"].to_numpy(np.int64)
    mid = (book["bid_px_1"].to_numpy() + book["ask_px_1"].to_numpy()) / 2
    uid = book["update_id"].to_numpy()
    r = np.diff(np.log(mid[np.maximum(np.searchsorted(ts, regimes["ts_event"].to_numpy(), "right") - 1, 0)]))
    reg = regimes["regime"].to_numpy()[1:]
    per_reg = "  ".join(
        f"{name} {r[reg == g].std():.2e} ({np.mean(reg == g):.0%})"
        for g, name in enumerate(("calm", "trending", "volatile"))
        if np.any(reg == g)
    )
    print(f"1 s return std       {per_reg}")
    print(f"acf |1 min ret| 1-10 {abs_ret_acf(ts, mid, 60 * NS):.3f}")
    signed = trades["size"].to_numpy() * trades["side"].to_numpy()
    corr = flow_return_corr(ts, mid, trades["ts_event"].to_numpy(np.int64), signed)
    print(f"flow 10 s -> ret 30 s {corr:.3f}")
    print(f"repeated update_id   {len(uid) - len(np.unique(uid))}")
    print(f"daily range          {(mid.max() - mid.min()) / mid[0]:.2%}")
    print(render_facts({f"sim seed {seed}": facts}))


if __name__ == "__main__":
    main()
