"""Streaming sequence-network benchmarks in ONNX Runtime (one intra-op thread). Prints figures; not a test.

For each default-size network (``NetConfig(kind)``: LSTM 3x128; Transformer 3 layers, 8 heads, d_model
128, attention window 64; CNN 64/128/256 channels, receptive field 64) over ``n_features`` inputs (108 =
the default feature set without the technical group), with random weights (speed does not depend on
them):

- single-row latency p50/p99 of one ``session.run`` step (one new row, state carried: the live path);
- batch throughput in rows/s over a long stream fed in blocks of ``cfg.block`` rows (backtests);
- training throughput in rows/s of the torch training step (forward + backward + AdamW) over
  ``streams`` pieces x ``seq_len`` rows on ``--threads`` threads.

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
from orderflow.models.config import NetConfig
from orderflow.models.nets import build_net
from orderflow.models.nets_train import NetMember, torch_env

KINDS = ("lstm", "transformer", "cnn")


def random_member(kind: str, n_features: int, seed: int = 0) -> NetMember:
    cfg = NetConfig(kind=kind)  # type: ignore[arg-type]
    m = NetMember(cfg)
    with torch_env(1, seed):
        m.net = build_net(cfg, n_features).eval()
    m.feature_names = [f"f{i}" for i in range(n_features)]
    return m


def _state(sess) -> dict[str, np.ndarray]:
    return {i.name: np.zeros([1 if isinstance(d, str) else d for d in i.shape], np.float32)
            for i in sess.get_inputs()[1:]}  # fmt: skip


def _step(sess, x: np.ndarray, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = sess.run(None, {"x": x, **state})
    return dict(zip(state, out[1:], strict=True))


def latency(sess, rows: np.ndarray, runs: int) -> tuple[float, float]:
    state = _state(sess)
    for i in range(min(100, runs)):
        state = _step(sess, rows[None, i : i + 1], state)
    t = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        state = _step(sess, rows[None, i % len(rows) : i % len(rows) + 1], state)
        t[i] = time.perf_counter_ns() - t0
    return float(np.percentile(t, 50)) / 1e3, float(np.percentile(t, 99)) / 1e3


def throughput(sess, rows: np.ndarray, block: int) -> float:
    state = _state(sess)
    t0 = time.perf_counter()
    for s in range(0, len(rows), block):
        state = _step(sess, rows[None, s : s + block], state)
    return len(rows) / (time.perf_counter() - t0)


def train_throughput(kind: str, n_features: int, threads: int, steps: int = 5) -> float:
    cfg = NetConfig(kind=kind)  # type: ignore[arg-type]
    with torch_env(threads, 0):
        net = build_net(cfg, n_features)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        x = torch.randn(cfg.streams, cfg.seq_len, n_features)
        y = torch.randint(0, 3, (cfg.streams * cfg.seq_len,))
        net.train()
        state = net.init_state(cfg.streams)

        def step() -> None:
            nonlocal state
            logits, *state = net(x, *state)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            state = [t.detach() for t in state]

        step()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        return steps * cfg.streams * cfg.seq_len / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=108)
    ap.add_argument("--runs", type=int, default=2000, help="single-sample runs per network")
    ap.add_argument("--rows", type=int, default=20_000, help="rows in the batch-throughput stream")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the training benchmark")
    ap.add_argument("--no-train", action="store_true", help="skip the training-throughput figure")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"ONNX Runtime, 1 intra-op thread; n_features={args.features}, random weights")
    total_p50 = total_p99 = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            m = random_member(kind, args.features)
            path = Path(tmp) / f"{kind}.onnx"
            m.export_onnx(path)
            sess = onnx_session(path)
            rows = rng.normal(size=(args.rows, args.features)).astype(np.float32)
            p50, p99 = latency(sess, rows, args.runs)
            total_p50, total_p99 = total_p50 + p50, total_p99 + p99
            tput = throughput(sess, rows, m.cfg.block)
            n_par = sum(p.numel() for p in m.net.parameters())  # type: ignore[union-attr]
            line = (f"{kind:12s} params {n_par:>8,d}  single p50 {p50:8.1f} us  p99 {p99:8.1f} us  "
                    f"stream in blocks of {m.cfg.block}: {tput:>10,.0f} rows/s")  # fmt: skip
            if not args.no_train:
                tr = train_throughput(kind, args.features, args.threads)
                line += f"  train {tr:>7,.0f} rows/s ({args.threads} thread)"
            print(line, flush=True)
    print(f"{'3 nets, sum':12s} single p50 {total_p50:8.1f} us  p99 {total_p99:8.1f} us (sequential)")


if __name__ == "__main__":
    main()
