"""Dashboard throughput: browser-side delay from an engine's event to the DOM update, and the
dashboard process's CPU, while a synthetic engine publishes ~100 events/s per symbol for 4 symbols.
Prints figures; not a test.

    .venv/bin/python benchmarks/bench_dashboard.py [--seconds 30] [--symbols 4] [--rate 45]

The engine is ``tests/support/telemetry_feed.py`` (book, trades, decisions, orders, fills, equity,
risk, feed, outcomes, resources) in its own process, writing the embedded telemetry log; the dashboard
is ``orderflow dashboard`` in another; Debian's Chromium (Playwright) shows the page. The delay is
measured in the page: for every event of a view it draws, the time from the event's ``ts_ns`` (engine
wall clock) to the animation frame that drew it. Measured on two views in turn: the order-book
ladder (book events) and the decision tape (decisions).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEED = ROOT / "tests" / "support" / "telemetry_feed.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds per view")
    ap.add_argument("--symbols", type=int, default=4)
    ap.add_argument(
        "--rate", type=float, default=45.0, help="feeder iterations per second (~2.2 events/symbol each)"
    )
    args = ap.parse_args()

    import psutil
    from playwright.sync_api import sync_playwright

    from orderflow.telemetry.bus import FileReader

    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    tele = tmp / "telemetry"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "ORDERFLOW_DASHBOARD_PASSWORD_FILE": str(tmp / "none"),
    }
    port = _free_port()
    dash = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orderflow.cli",
            "dashboard",
            "--port",
            str(port),
            "--telemetry",
            str(tele),
            "--db",
            str(tmp / "journal.sqlite"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    total = 2 * args.seconds + 20
    feed = subprocess.Popen(
        [sys.executable, str(FEED), str(tele), "1", str(total), str(args.rate), str(args.symbols)], env=env
    )
    try:
        time.sleep(3)
        proc = psutil.Process(dash.pid)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{port}")
            page.wait_for_selector("#status-1:has-text('running')", timeout=20_000)
            print(
                f"dashboard throughput: {args.symbols} symbols, {args.seconds:.0f} s per view, one Chromium"
            )
            print(
                f"{'view':<12} {'events/s':>9} {'per symbol':>10} {'delay p50':>10} {'p99':>8} {'max':>8} "
                f"{'samples':>8} {'dashboard CPU':>14}"
            )
            for tab in ("ladder", "decisions"):
                page.click(f"#tabs button[data-tab={tab}]")
                page.wait_for_timeout(1500)
                page.evaluate("() => { window.__of.latency.length = 0; }")
                reader = FileReader(tele)
                reader.read(1, max_events=10**7)  # skip what came before
                proc.cpu_percent(None)
                t0 = time.monotonic()
                time.sleep(args.seconds)
                cpu = proc.cpu_percent(None)
                n_events = len(reader.read(1, max_events=10**7))
                dt = time.monotonic() - t0
                lat = page.evaluate("() => window.__of.latency.slice()")
                rate = n_events / dt
                print(
                    f"{tab:<12} {rate:>9.0f} {rate / args.symbols:>10.0f} {_pct(lat, 0.5):>8.0f} ms "
                    f"{_pct(lat, 0.99):>5.0f} ms {max(lat, default=float('nan')):>5.0f} ms {len(lat):>8} "
                    f"{cpu:>12.1f} %"
                )
            print(
                f"dashboard RSS {proc.memory_info().rss / 2**20:.0f} MiB; mean delay "
                f"{statistics.fmean(lat) if lat else float('nan'):.0f} ms on the last view"
            )
            browser.close()
    finally:
        feed.kill()
        dash.terminate()
        dash.wait(10)


if __name__ == "__main__":
    main()
