"""Simulator throughput: simulate N hours (default 24) into a temporary store and print the figures.

Usage: python benchmarks/bench_simulator.py [hours] [seed]
"""

from __future__ import annotations

import sys
import tempfile
import time

from orderflow.data.simulator import SimulatorConfig, simulate
from orderflow.data.store import Store


def main() -> None:
    hours = float(sys.argv[1]) if len(sys.argv) > 1 else 24.0
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    simulate(SimulatorConfig(hours=0.01, seed=seed))  # compile (or load cached) numba kernels first
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = simulate(SimulatorConfig(hours=hours, seed=seed), store=Store(d))
        wall = time.perf_counter() - t0
    print(f"simulated hours      {hours:.2f}")
    parts = f"simulate+tables {res.sim_seconds:.1f}, store write {res.write_seconds:.1f}"
    print(f"wall seconds         {wall:.1f}  ({parts})")
    print(
        f"sim-hours per minute {hours / wall * 60:.1f}  (without writing {hours / res.sim_seconds * 60:.1f})"
    )
    print(
        f"rows                 book {res.book_rows:,}  trade {res.trade_rows:,}  regime {res.regime_rows:,}"
    )


if __name__ == "__main__":
    main()
