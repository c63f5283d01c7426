"""Whole-ensemble inference in ONNX Runtime (one intra-op thread per member). Prints figures; not a test.

Builds a bundle with every default member at its DEFAULT size (RF 200 trees, LightGBM up to 300 rounds,
LSTM 3x128, Transformer 3x8 heads d_model 128, CNN 64/128/256; seq_len 64) trained briefly on
synthetic rows named like the default feature set (latency does not depend on what the weights
learnt), loads it with the serving code (`EnsembleModel.from_bundle`) and measures:

- single-sample latency p50/p99 of `predict(row, state)`: one new feature row per book event with
  the stream members' state carried (the live path);
- batch throughput in samples/s of `predict(rows, state)` over 20,000 consecutive rows, every row
  scored (the backtest path; members run in parallel on the 2 cores, each member on one thread).

Run: .venv/bin/python benchmarks/bench_ensemble.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from orderflow.features.config import FeatureConfig
from orderflow.features.registry import default_specs
from orderflow.models.config import ExpertConfig, ModelsConfig, NetConfig
from orderflow.models.dataset import Dataset, schema_hash
from orderflow.models.serving import EnsembleModel
from orderflow.models.train import train_models


def synthetic_dataset(n_rows: int = 6000, seed: int = 0) -> Dataset:
    names = [s.name for s in default_specs(FeatureConfig(tick_size=0.1))]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, len(names))).astype(np.float32)
    ts = (np.arange(n_rows, dtype=np.int64) + 1) * 1_000_000_000
    idx = np.arange(64, n_rows, dtype=np.int64)
    y = (x[idx, 0] > 0).astype(np.int64) + (x[idx, 1] > 1).astype(np.int64)
    return Dataset(x, names, ts, idx, y, ts[idx] + 10**9, schema_hash(names))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=20_000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ds = synthetic_dataset()
    nets = {k: NetConfig(kind=k, epochs=1, max_train_samples=1000) for k in ("lstm", "transformer", "cnn")}
    cfg = ModelsConfig(n_folds=1, expert=ExpertConfig(early_stopping_rounds=0), **nets)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = train_models(ds, cfg, Path(tmp) / "bundle", "synthetic", progress=lambda s: None)
        print(f"built the default-size bundle in {time.perf_counter() - t0:.0f} s ({', '.join(cfg.members)})")
        model = EnsembleModel.from_bundle(res.bundle_dir, ds.schema_hash)
        state = model.new_state()
        model.predict(ds.X[:500], state)  # warm
        lat = np.empty(args.runs)
        for i in range(args.runs):
            row = ds.X[500 + i % 5000]
            t = time.perf_counter()
            model.predict(row, state)
            lat[i] = time.perf_counter() - t
        p50, p99 = np.percentile(lat, [50, 99]) * 1e6
        print(f"ensemble single sample: p50 {p50:.0f} us, p99 {p99:.0f} us over {args.runs} runs")
        print("  (target: p99 <= 2000 us)")
        rng = np.random.default_rng(1)
        rows = rng.standard_normal((args.rows, ds.X.shape[1])).astype(np.float32)
        for workers in (1, 2):
            m = EnsembleModel.from_bundle(res.bundle_dir, ds.schema_hash, workers=workers)
            m.predict(rows[:1000], m.new_state())
            per = {}
            for mem in m._members:  # per-member cost, serial
                st = m.new_state()
                t = time.perf_counter()
                m._member_probs(mem, rows, st)
                per[mem.name] = args.rows / (time.perf_counter() - t)
            st = m.new_state()
            t = time.perf_counter()
            m.predict(rows, st)
            rate = args.rows / (time.perf_counter() - t)
            print(
                f"ensemble batch over {args.rows:,} rows, {workers} worker(s): {rate:,.0f} samples/s "
                "(target >= 20,000)"
            )
        print("  per member alone: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in per.items()))


if __name__ == "__main__":
    main()
