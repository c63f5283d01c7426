"""Per-call cost of the live engine's two per-event calls, without any network: the streaming feature
engine's ``on_book`` and ``TradingSession.on_book`` on synthetic book events (prints figures; not a test).

    taskset -c 0 .venv/bin/python benchmarks/bench_session.py [--events 20000] [--config DIR]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from orderflow.config import load_config
from orderflow.core.instruments import KNOWN
from orderflow.engine.session import TradingSession
from orderflow.features.engine import StreamingFeatureEngine

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--config", type=Path, default=REPO / "config" / "examples" / "ofi-only")
    args = ap.parse_args()
    cfg = load_config(args.config, environ={})
    inst = KNOWN[("binance-usdm", "BTCUSDT")]
    x = cfg.backtest.exchange
    s = TradingSession(
        inst,
        "binance-usdm",
        x.taker_rate,
        0.0,
        8 * 3600 * 10**9,
        cfg.strategy,
        cfg.risk,
        cfg.backtest,
        execution=cfg.execution,
        maker_fee=x.maker_rate,
    )
    fe = StreamingFeatureEngine(cfg.features.model_copy(update={"tick_size": inst.tick_size}))
    L = cfg.features.levels
    px = 100.0 + inst.tick_size * np.arange(1, L + 1)
    bp, ap_, sz = 100.0 - (px - 100.0), px, np.ones(L)
    t = 10**18
    for rep in range(2):  # the first pass compiles or loads the kernels
        tf, ts = [], []
        for _ in range(args.events):
            t += 10**8
            a = time.perf_counter_ns()
            fe.on_book(t, bp, sz, ap_, sz)
            b = time.perf_counter_ns()
            s.on_book(
                t,
                t,
                False,
                0.0,
                0.0,
                0.0,
                math.nan,
                math.nan,
                math.nan,
                math.nan,
                bp.copy(),
                sz.copy(),
                ap_.copy(),
                sz.copy(),
            )
            tf.append(b - a)
            ts.append(time.perf_counter_ns() - b)
        if rep:
            f, c = np.array(tf) / 1e3, np.array(ts) / 1e3
            print(
                f"{args.events:,} synthetic book events: features on_book p50 {np.percentile(f, 50):.1f} us, "
                f"p99 {np.percentile(f, 99):.1f} us; TradingSession.on_book p50 "
                f"{np.percentile(c, 50):.1f} us, p99 {np.percentile(c, 99):.1f} us"
            )


if __name__ == "__main__":
    main()
