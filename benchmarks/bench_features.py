"""Feature-engine benchmarks on the real USD-M recordings (one core). Prints figures; not a test.

- batch core: 10-level per-event OFI + CVD at every book event, the compiled numba loop
  ``kernels.ofi_cvd_core`` (same ``ofi_level`` as the engines), in book events/s (target >= 2,000,000);
  also the whole default matrix (``batch_features``) for reference.
- streaming: per-call latency of ``StreamingFeatureEngine.on_book`` (and ``on_trade``) replaying the
  recordings: core engine (technical off: OFI, CVD, z-scores and every other non-technical feature;
  target p99 <= 20 us) and the full default vector with the technical group (target p99 <= 200 us).

Run: .venv/bin/python benchmarks/bench_features.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from orderflow.data.importers.binance_raw import import_binance_raw
from orderflow.data.schema import book_arrays
from orderflow.data.store import Store
from orderflow.features.batch import batch_features
from orderflow.features.config import FeatureConfig
from orderflow.features.engine import StreamingFeatureEngine
from orderflow.features.kernels import ofi_cvd_core

FILES = ("usdm/btcusdt_20240808.gz", "usdm/ethusdt_20240808.gz")


def load(data: Path, tmp: Path):
    store = Store(tmp / "store")
    out = []
    for f in FILES:
        import_binance_raw(store, [data / "hftbacktest_binance_raw" / f])
        sym = Path(f).name.split("_")[0].upper()
        book = store.read("binance-usdm", sym, "book")
        trades = store.read("binance-usdm", sym, "trade", columns=["ts_event", "price", "size", "side"])
        out.append((sym, book, trades, store.instrument("binance-usdm", sym).tick_size))
    return out


def bench_batch_core(sets, reps: int = 300) -> None:
    total, best = 0, 0.0
    for _, book, trades, _ in sets:
        arrs = [np.ascontiguousarray(a) for a in book_arrays(book, 10)]
        bts = book.ts_event.to_numpy()
        tts, tsz, tsd = trades.ts_event.to_numpy(), trades["size"].to_numpy(), trades.side.to_numpy(np.int64)
        ofi = np.empty((len(book), 10))
        cvd = np.empty(len(book))
        ofi_cvd_core(bts, *arrs, tts, tsz, tsd, ofi, cvd)  # compile / warm
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            ofi_cvd_core(bts, *arrs, tts, tsz, tsd, ofi, cvd)
            times.append(time.perf_counter() - t0)
        total += len(book)
        best += min(times)
    print(f"batch core (numba ofi_cvd_core, 10-level OFI + CVD): {total / best:,.0f} book events/s "
          f"({total} events, best of {reps})")  # fmt: skip


def bench_batch_full(sets) -> None:
    for tech in (False, True):
        n, dt = 0, 0.0
        for _, book, trades, tick in sets:
            cfg = FeatureConfig(tick_size=tick, **({} if tech else {"technical": None}))
            batch_features(book.iloc[:100], trades.iloc[:100], cfg)  # compile
            t0 = time.perf_counter()
            m = batch_features(book, trades, cfg)
            dt += time.perf_counter() - t0
            n += len(book)
        what = "full default" if tech else "technical off"
        print(f"batch_features ({what}, {m.shape[1] - 3} features): {n / dt:,.0f} book events/s")


def bench_stream(sets, tech: bool) -> None:
    book_lat, trade_lat = [], []
    for _, book, trades, tick in sets:
        cfg = FeatureConfig(tick_size=tick, **({} if tech else {"technical": None}))
        for warm in (True, False):  # first pass compiles and warms caches
            eng = StreamingFeatureEngine(cfg)
            bp, bs, ap, aq = (np.ascontiguousarray(a) for a in book_arrays(book, cfg.levels))
            bts = book.ts_event.to_numpy().tolist()
            tts = trades.ts_event.to_numpy().tolist()
            tpx, tsz, tsd = trades.price.tolist(), trades["size"].tolist(), trades.side.astype(int).tolist()
            it = 0
            pc = time.perf_counter_ns
            for i, tb in enumerate(bts):
                while it < len(tts) and tts[it] <= tb:
                    t0 = pc()
                    eng.on_trade(tts[it], tpx[it], tsz[it], tsd[it])
                    if not warm:
                        trade_lat.append(pc() - t0)
                    it += 1
                t0 = pc()
                eng.on_book(tb, bp[i], bs[i], ap[i], aq[i])
                if not warm:
                    book_lat.append(pc() - t0)
    b = np.array(book_lat) / 1e3
    t = np.array(trade_lat) / 1e3
    what = (
        f"full default vector ({len(eng.specs)} features)" if tech else f"core, technical off ({eng.n_core})"
    )
    print(f"streaming {what}: on_book p50 {np.percentile(b, 50):.1f} us, p99 {np.percentile(b, 99):.1f} us, "
          f"max {b.max():.0f} us ({b.size} events); on_trade p50 {np.percentile(t, 50):.1f} us, "
          f"p99 {np.percentile(t, 99):.1f} us")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(
        os.environ.get("ORDERFLOW_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    ap.add_argument("--data", type=Path, default=default)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        sets = load(args.data, Path(tmp))
        bench_batch_core(sets)
        bench_batch_full(sets)
        bench_stream(sets, tech=False)
        bench_stream(sets, tech=True)


if __name__ == "__main__":
    main()
