"""The anomaly detector on every real Binance recording with a book and trades: false alarms per metric
with the default config, and ``observe()`` throughput (prints figures; not a test).

Each recording is replayed into the telemetry a paper engine would publish while the backtester trades
over it (``tests/support/anomaly_feed.py``); every incident opened counts as a false alarm.

    .venv/bin/python benchmarks/bench_anomaly.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the recording -> telemetry replay is the tests' support code

from orderflow.alerts.anomaly import METRICS, AnomalyConfig, AnomalyMonitor  # noqa: E402
from support.anomaly_feed import replay  # noqa: E402

RAW = "hftbacktest_binance_raw"
RECORDINGS = {
    "usdm BTCUSDT 2024-08-08": [f"{RAW}/usdm/btcusdt_20240808.gz"],
    "usdm ETHUSDT 2024-08-08": [f"{RAW}/usdm/ethusdt_20240808.gz"],
    "usdm BTCUSDT 2024-07-18/19": [f"{RAW}/usdm/btcusdt_20240718.gz", f"{RAW}/usdm/btcusdt_20240719.gz"],
    "usdm ETHUSDT 2024-07-18/19": [f"{RAW}/usdm/ethusdt_20240718.gz", f"{RAW}/usdm/ethusdt_20240719.gz"],
    "spot BTCUSDT 2024-08-08/09": [f"{RAW}/spot/btcusdt_20240808.gz", f"{RAW}/spot/btcusdt_20240809.gz"],
    "spot ETHUSDT 2024-08-08/09": [f"{RAW}/spot/ethusdt_20240808.gz", f"{RAW}/spot/ethusdt_20240809.gz"],
    "spot NEXOUSDT 24 h": [
        "long_recordings/spot_nexousdt/nexousdt_20240723.dat.gz",
        "long_recordings/spot_nexousdt/nexousdt_20240724.dat.gz",
    ],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("ORDERFLOW_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    ap.add_argument("--data", type=Path, default=Path(default))
    args = ap.parse_args()
    short = [m[:8] for m in METRICS]
    print(f"{'recording':28s} {'min':>7s} {'events':>7s} {'ev/s':>8s} " + " ".join(f"{m:>8s}" for m in short))
    liquid_h, liquid = 0.0, Counter()
    for name, files in RECORDINGS.items():
        paths = [args.data / f for f in files]
        if not all(p.is_file() for p in paths):
            print(f"{name}: not found under {args.data}")
            continue
        with tempfile.TemporaryDirectory() as d:
            rec = replay(name, paths, Path(d) / "store")
        mon = AnomalyMonitor(AnomalyConfig())
        t = time.perf_counter()
        got = [a for e in rec.events for a in mon.observe(e)]
        secs = time.perf_counter() - t
        opens = Counter(a.metric for a in got if a.active)
        armed = mon.snapshot()[1][rec.symbol]
        cells = [f"{opens[m]:8d}" if armed.get(m, {}).get("armed") else f"{'-':>8s}" for m in METRICS]
        print(
            f"{name:28s} {rec.hours * 60:7.1f} {len(rec.events):7d} {len(rec.events) / secs:8.0f} "
            + " ".join(cells)
        )
        if "NEXO" not in name:
            liquid_h += rec.hours
            liquid += opens
        else:
            print(" " * 54 + "per hour: " + " ".join(f"{opens[m] / rec.hours:8.2f}" for m in METRICS))
    print(f"liquid pairs, {liquid_h * 60:.1f} min: " + ", ".join(f"{m} {liquid[m]}" for m in METRICS))
    print("(- : the metric never finished its warm-up on that recording)")


if __name__ == "__main__":
    main()
