"""Sequence-network inference benchmarks in ONNX Runtime (one intra-op thread). Prints figures; not a test.

For each default-size network (``NetConfig(kind)``: seq_len 64; LSTM 3x128; Transformer 3 layers,
8 heads, d_model 128; CNN 64/128/256 channels) over ``n_features`` inputs (108 = the default feature set
without the technical group), with random weights (latency does not depend on them):

- single-sample latency p50/p99 of ``session.run`` on one (1, 64, f) window;
- batch throughput in samples/s at batch 256 (backtests);
- training throughput in samples/s of the torch training step (forward + backward + AdamW) at the
  default batch size on ``--threads`` threads (how long "default config on 24 simulated hours" takes).

Run: .venv/bin/python benchmarks/bench_models.py [--features 108] [--runs 2000] [--no-train]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from orderflow.models.base import onnx_session
from orderflow.models.nets import NetConfig, build_net
from orderflow.models.nets_train import NetMember, torch_env

KINDS = ("lstm", "transformer", "cnn")


def random_member(kind: str, n_features: int, seed: int = 0) -> NetMember:
    cfg = NetConfig(kind=kind)  # type: ignore[arg-type]
    m = NetMember(cfg)
    with torch_env(1, seed):
        m.net = build_net(cfg, n_features).eval()
    m.feature_names = [f"f{i}" for i in range(n_features)]
    return m


def latency(sess, x: np.ndarray, runs: int) -> tuple[float, float]:
    feed = {"x": x}
    for _ in range(min(100, runs)):
        sess.run(["probs"], feed)
    t = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        sess.run(["probs"], feed)
        t[i] = time.perf_counter_ns() - t0
    return float(np.percentile(t, 50)) / 1e3, float(np.percentile(t, 99)) / 1e3


def throughput(sess, x: np.ndarray, seconds: float = 2.0) -> float:
    feed = {"x": x}
    sess.run(["probs"], feed)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sess.run(["probs"], feed)
        n += len(x)
    return n / (time.perf_counter() - t0)


def train_throughput(kind: str, n_features: int, threads: int, steps: int = 5) -> float:
    cfg = NetConfig(kind=kind)  # type: ignore[arg-type]
    with torch_env(threads, 0):
        net = build_net(cfg, n_features)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        x = torch.randn(cfg.batch_size, cfg.seq_len, n_features)
        y = torch.randint(0, 3, (cfg.batch_size,))
        net.train()

        def step() -> None:
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        return steps * cfg.batch_size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=108)
    ap.add_argument("--runs", type=int, default=2000, help="single-sample runs per network")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the training benchmark")
    ap.add_argument("--no-train", action="store_true", help="skip the training-throughput figure")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"ONNX Runtime, 1 intra-op thread; n_features={args.features}, seq_len=64, random weights")
    total_p50 = total_p99 = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            m = random_member(kind, args.features)
            path = Path(tmp) / f"{kind}.onnx"
            m.export_onnx(path)
            sess = onnx_session(path)
            one = rng.normal(size=(1, 64, args.features)).astype(np.float32)
            batch = rng.normal(size=(args.batch, 64, args.features)).astype(np.float32)
            p50, p99 = latency(sess, one, args.runs)
            total_p50, total_p99 = total_p50 + p50, total_p99 + p99
            tput = throughput(sess, batch)
            n_par = sum(p.numel() for p in m.net.parameters())  # type: ignore[union-attr]
            line = (f"{kind:12s} params {n_par:>8,d}  single p50 {p50:8.1f} us  p99 {p99:8.1f} us  "
                    f"batch {args.batch}: {tput:>10,.0f} samples/s")  # fmt: skip
            if not args.no_train:
                tr = train_throughput(kind, args.features, args.threads)
                line += f"  train {tr:>7,.0f} samples/s ({args.threads} thread)"
            print(line, flush=True)
    print(f"{'3 nets, sum':12s} single p50 {total_p50:8.1f} us  p99 {total_p99:8.1f} us (sequential)")


if __name__ == "__main__":
    main()
