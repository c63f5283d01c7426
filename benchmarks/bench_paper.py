"""Paper-mode latency against the local exchange (prints figures; not a test).

Runs the live engine (`orderflow paper`'s PaperEngine) against an in-process local exchange on the
simulator with the OFI-only example strategy (so orders are sent without a trained model, unless
`--model DIR` gives a bundle) and prints:

- tick-to-order: from a book event handed out by the feed to the order handed to the trading client
  (book copy, streaming features, the ensemble when given, the trading core), p50/p99;
- per book event processing time, p50/p99;
- order round trips seen by the engine (orders, fills).

With ``--telemetry both`` (the default) it runs the engine without telemetry and with telemetry
published to a directory that a running ``orderflow dashboard`` follows, with one browser-like
subscriber on its event stream, alternating ``--reps`` times, and prints both (issue: publishing must
not slow trading; tick-to-order p99 within 10%).

Run: .venv/bin/python benchmarks/bench_paper.py [--seconds 60] [--speed 20] [--model DIR]
    [--telemetry off|on|both] [--reps 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from orderflow.adapters.binance.common.signing import Credentials
from orderflow.config import load_config
from orderflow.core.instruments import KNOWN
from orderflow.engine.paper import PaperEngine
from orderflow.execution.local.testing import running_local_exchange

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard(telemetry: Path) -> Iterator[int]:
    """`orderflow dashboard` on the telemetry directory, and a thread reading its event stream."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "ORDERFLOW_DASHBOARD_PASSWORD_FILE": str(telemetry / "pw"),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orderflow.cli",
            "dashboard",
            "--port",
            str(port),
            "--telemetry",
            str(telemetry),
            "--db",
            str(telemetry / "none.sqlite"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    got = [0]
    stop = threading.Event()

    def follow() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stream", timeout=5) as r:
                    while not stop.is_set():
                        line = r.readline()
                        if not line:
                            break
                        got[0] += len(line)
            except OSError:
                time.sleep(0.2)

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    try:
        yield port
    finally:
        stop.set()
        proc.terminate()
        proc.wait(10)
        print(f"  (the dashboard's subscriber read {got[0] / 1e6:.1f} MB of events)")


def run_once(cfg, inst, model, args, telemetry: str) -> tuple[np.ndarray, np.ndarray, object]:
    monitor = cfg.monitor.model_copy(update={"telemetry": telemetry})
    c = cfg.model_copy(update={"monitor": monitor})
    hours = args.seconds * args.speed / 3600 + 0.05
    with running_local_exchange(
        source="sim", seed=1, clock="realtime", speed=args.speed, market="usdm", sim_hours=hours
    ) as ex:
        eng = PaperEngine(
            c,
            "usdm",
            "BTCUSDT",
            ex.rest_url,
            ex.ws_url,
            Credentials.hmac(ex.api_key, ex.api_secret),
            inst,
            model,
        )
        st = asyncio.run(eng.run(args.seconds / 60))
    return np.array(st.event_us), np.array(st.tick_to_order_us), st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--speed", type=float, default=20.0)
    ap.add_argument("--model", help="a bundle directory (default: none, the OFI-only strategy)")
    ap.add_argument("--telemetry", choices=("off", "on", "both"), default="both")
    ap.add_argument("--reps", type=int, default=2, help="alternating runs per mode with --telemetry both")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(REPO / "config" / "examples" / "ofi-only", environ={})
    model = None
    if args.model:
        from orderflow.models.serving import EnsembleModel

        model = EnsembleModel.from_bundle(args.model, None)
    inst = KNOWN[("binance-usdm", "BTCUSDT")]
    modes = {"off": ["off"], "on": ["on"], "both": ["off", "on"] * args.reps}[args.telemetry]
    out: dict[str, list] = {"off": [], "on": []}
    tele = Path(tempfile.mkdtemp(prefix="bench-paper-telemetry-"))
    print(
        f"paper engine vs local exchange, {args.seconds:g} s at {args.speed:g}x, model "
        f"{args.model or 'none (OFI-only strategy)'}"
    )
    for mode in modes:
        if mode == "on":
            with dashboard(tele):
                time.sleep(2)
                out["on"].append(run_once(cfg, inst, model, args, str(tele)))
        else:
            out["off"].append(run_once(cfg, inst, model, args, "off"))
    for mode, runs in out.items():
        if not runs:
            continue
        ev = np.concatenate([r[0] for r in runs])
        tto = np.concatenate([r[1] for r in runs])
        books = sum(r[2].book_events for r in runs)
        orders = sum(r[2].orders_sent for r in runs)
        fills = sum(r[2].fills for r in runs)
        label = "telemetry on, dashboard subscribed" if mode == "on" else "telemetry off"
        print(f"{label} ({len(runs)} runs): book events {books:,}, orders {orders}, fills {fills}")
        if ev.size:
            print(f"  per book event: p50 {np.percentile(ev, 50):.0f} us, p99 {np.percentile(ev, 99):.0f} us")
        if tto.size:
            print(
                f"  tick-to-order: p50 {np.percentile(tto, 50):.0f} us, p99 {np.percentile(tto, 99):.0f} us "
                f"over {tto.size} orders"
            )


if __name__ == "__main__":
    main()
