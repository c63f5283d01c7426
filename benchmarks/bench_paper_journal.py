"""The paper engine's whole per-book-event time with a journal and a model (prints figures; not a test).

`bench_paper.py` times a book event up to the trading core's answer, with no journal. This one times
the engine's whole book-event handler (``PaperEngine._on_book``: book copy, features, the model, the
trading core, and everything the journal does after it: equity, decision rows, predictions and their
outcomes, funding), for the events that sent no order (an order's network round trip is not the
engine's own time), against the local exchange on the simulator, with a SQLite journal and a small
ONNX model (the test bundle: a logistic regression over three features).

``--tree DIR`` runs the engine of another source tree (e.g. an export of the commit before a change:
``git archive <commit> | tar -x -C DIR``), so that before and after run on the same script; give two
trees with ``--tree A --tree B`` and they alternate ``--reps`` times. ``--ablate`` runs this tree with
and without the journal's predictions (``PaperEngine.predictions`` never started), alternating, and
also times the prediction log's own call per event.

Run: .venv/bin/python benchmarks/bench_paper_journal.py [--seconds 40] [--speed 20] [--reps 2]
    [--tree DIR ... | --ablate]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import asyncio, json, logging, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])  # tests/ (the test bundle)
from support.bundles import lr_bundle
from orderflow.adapters.binance.common.signing import Credentials
from orderflow.config import load_config
from orderflow.core.instruments import KNOWN
from orderflow.engine.paper import PaperEngine
from orderflow.execution.local.testing import running_local_exchange
from orderflow.journal import Journal
from orderflow.models.serving import EnsembleModel

logging.basicConfig(level=logging.WARNING)
seconds, speed, repo, mode = float(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
tmp = Path(tempfile.mkdtemp(prefix="bench-paper-journal-"))
bundle = lr_bundle(tmp / "bundle", 1.0, features=["ofi_e1", "ofi_w", "spread_bps"], schema="bench")
cfg = load_config(repo / "config" / "examples" / "ofi-only", environ={})
cfg = cfg.model_copy(update={"monitor": cfg.monitor.model_copy(update={"telemetry": "off"})})
model = EnsembleModel.from_bundle(bundle, None)
inst = KNOWN[("binance-usdm", "BTCUSDT")]
hours = seconds * speed / 3600 + 0.05
times = []
with running_local_exchange(source="sim", seed=1, clock="realtime", speed=speed, market="usdm",
                            sim_hours=hours) as ex, Journal.open(f"sqlite:///{tmp / 'j.sqlite'}") as j:
    eng = PaperEngine(cfg, "usdm", "BTCUSDT", ex.rest_url, ex.ws_url,
                      Credentials.hmac(ex.api_key, ex.api_secret), inst, model, journal=j)
    orig = eng._on_book

    async def timed(feed, ev):
        sent = eng.stats.orders_sent
        t0 = time.perf_counter_ns()
        await orig(feed, ev)
        if eng.stats.orders_sent == sent:
            times.append((time.perf_counter_ns() - t0) / 1e3)

    eng._on_book = timed
    own = []
    if mode == "off":
        eng._start_predictions = lambda: None
    elif mode == "on":
        start = eng._start_predictions

        def start_timed():
            start()
            call = eng.predictions.on_book

            def on_book(*a):
                t0 = time.perf_counter_ns()
                call(*a)
                own.append((time.perf_counter_ns() - t0) / 1e3)

            eng.predictions.on_book = on_book

        eng._start_predictions = start_timed
    st = asyncio.run(eng.run(seconds / 60))
    rows = {}
    with j.engine.connect() as c:
        import sqlalchemy as sa
        for t in ("signals", "predictions", "fills"):
            try:
                rows[t] = c.execute(sa.text(f"select count(*) from {t}")).scalar()
            except Exception:
                rows[t] = None
print(json.dumps({"us": times, "own": own, "orders": st.orders_sent, "fills": st.fills, "rows": rows}))
"""


def run_tree(tree: Path, args: argparse.Namespace, mode: str = "as-is") -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(REPO / "tests"),
            str(args.seconds),
            str(args.speed),
            str(tree),
            mode,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=args.seconds * 10 + 300,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"run on {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--speed", type=float, default=20.0)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--tree", action="append", type=Path, help="source tree(s) to run (default: this one)")
    ap.add_argument("--ablate", action="store_true", help="this tree with and without the predictions")
    args = ap.parse_args()
    cases = [(REPO, "off"), (REPO, "on")] if args.ablate else [(t, "as-is") for t in args.tree or [REPO]]
    got: dict[tuple[Path, str], list[dict]] = {c: [] for c in cases}
    print(
        f"paper engine + SQLite journal + ONNX model vs local exchange, {args.seconds:g} s at {args.speed:g}x"
    )
    for _ in range(args.reps):
        for c in cases:
            r = run_tree(c[0], args, c[1])
            us = np.array(r["us"])
            print(f"  {c[0]} ({c[1]}): {us.size:,} events, p50 {np.percentile(us, 50):.0f} us, p99 "
                  f"{np.percentile(us, 99):.0f} us, mean {us.mean():.0f} us; orders {r['orders']}, "
                  f"rows {r['rows']}")  # fmt: skip
            got[c].append(r)
    for (tree, mode), runs in got.items():
        us = np.concatenate([np.array(r["us"]) for r in runs])
        print(f"{tree} ({mode}; {len(runs)} runs, {us.size:,} events without an order): p50 "
              f"{np.percentile(us, 50):.1f} us, p90 {np.percentile(us, 90):.1f} us, p99 "
              f"{np.percentile(us, 99):.1f} us, mean {us.mean():.1f} us")  # fmt: skip
        own = np.concatenate([np.array(r["own"]) for r in runs])
        if own.size:
            print(f"  the prediction log's call: p50 {np.percentile(own, 50):.1f} us, p90 "
                  f"{np.percentile(own, 90):.1f} us, p99 {np.percentile(own, 99):.1f} us, mean "
                  f"{own.mean():.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
