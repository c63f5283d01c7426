"""Benchmark: decode raw Binance messages and apply them to the local book (one core).

Reads real recordings from ../shared/data (or ORDERFLOW_SHARED_DATA), holds the raw lines in memory,
then times the production path: msgspec decode into domain events + DepthSync (continuity checks and
book updates). Prints messages/s for the recorded message mix and for depth diffs alone.

    .venv/bin/python benchmarks/bench_decode.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from pathlib import Path

from orderflow.adapters.binance.decode import Decoder, decode_snapshot, is_snapshot
from orderflow.adapters.binance.sync import DepthSync
from orderflow.core.events import BookDelta

FILES = ["usdm/btcusdt_20240808.gz", "usdm/ethusdt_20240808.gz", "spot/btcusdt_20240808.gz"]


def shared_dir() -> Path:
    env = os.environ.get("ORDERFLOW_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def load(path: Path) -> list[tuple[int, bytes]]:
    out = []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            sp = line.find(b" ")
            out.append((int(line[:sp]), line[sp + 1 :]))
    return out


def run(lines: list[tuple[int, bytes]], venue: str, depth_only: bool) -> tuple[int, int, float]:
    dec = Decoder(venue)
    sync: DepthSync | None = None
    futures = venue != "binance-spot"
    snap = None
    n = levels = 0
    t0 = time.perf_counter()
    for ts, raw in lines:
        if is_snapshot(raw):
            snap = decode_snapshot(raw)
            if sync is not None:
                sync.on_snapshot(snap.lastUpdateId, snap.bids, snap.asks, ts, ts)
            continue
        if depth_only and b"depthUpdate" not in raw[:80]:
            continue
        ev = dec.decode(raw, ts)
        n += 1
        if isinstance(ev, BookDelta):
            if sync is None:
                sync = DepthSync(venue, ev.symbol, futures)
                if snap is not None:
                    sync.on_snapshot(snap.lastUpdateId, snap.bids, snap.asks, ts, ts)
            sync.on_diff(ev)
            levels += len(ev.bids) + len(ev.asks)
    return n, levels, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    base = shared_dir() / "hftbacktest_binance_raw"
    if not base.is_dir():
        raise SystemExit(f"recorded data not found at {base}; set ORDERFLOW_SHARED_DATA")
    print(
        f"{'file':<28} {'mix':<6} {'messages':>9} {'levels':>9} {'best s':>8} {'msg/s':>11} {'levels/s':>12}"
    )
    for rel in FILES:
        lines = load(base / rel)
        venue = "binance-spot" if rel.startswith("spot") else "binance-usdm"
        for depth_only in (False, True):
            best = None
            for _ in range(args.repeat):
                n, lv, s = run(lines, venue, depth_only)
                best = s if best is None or s < best else best
            assert best is not None
            mix = "depth" if depth_only else "all"
            print(f"{rel:<28} {mix:<6} {n:>9,} {lv:>9,} {best:>8.3f} {n / best:>11,.0f} {lv / best:>12,.0f}")


if __name__ == "__main__":
    main()
