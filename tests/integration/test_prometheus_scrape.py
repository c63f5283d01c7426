"""A real Prometheus (Debian's 2.x) scrapes an engine's /metrics and answers every Grafana panel's
query with data. The engine side here is the metrics endpoint fed by a thread that publishes a run's
events through the real Publisher; the paper-engine wiring is tested with the engine itself."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from orderflow.telemetry import bus as B
from orderflow.telemetry import metrics as M
from orderflow.telemetry import schema as S

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "orderflow.json"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus not installed (apt-get install prometheus)"
    ),
    pytest.mark.timeout(120),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _events(i: int) -> list[S._Event]:
    c = {"run_id": 1, "ts_ns": time.time_ns()}
    sym = "BTCUSDT"
    p = 100.0 + (i % 7) * 0.1
    return [
        S.FeedHealth(
            **c,
            symbol=sym,
            lag_ms=5.0 + i % 3,
            gaps=i // 10,
            resyncs=i // 10,
            reconnects=i // 20,
            watchdog_trips=i // 30,
            synced=True,
            book_updates=50 * i,
            trades=7 * i,
        ),
        S.Decision(
            **c,
            symbol=sym,
            fused=0.5,
            ofi_score=0.5,
            ai_score=0.5,
            confidence=0.7,
            quality=1.0,
            ev=1e-3,
            cost=5e-4,
            action="enter_long" if i % 3 == 0 else "refused",
            gate="pass" if i % 3 == 0 else "confidence",
        ),
        S.OrderUpdate(
            **c,
            symbol=sym,
            client_order_id=f"o{i}",
            side="BUY" if i % 2 else "SELL",
            order_type="limit",
            state="rejected" if i % 5 == 0 else "new",
            qty=0.01,
            reason="-2010 insufficient balance" if i % 5 == 0 else "",
        ),
        S.FillEvent(
            **c,
            symbol=sym,
            client_order_id=f"o{i}",
            trade_id=str(i),
            side="BUY",
            price=p,
            qty=0.01,
            fee=4e-4,
            liquidity="taker",
            slippage=(i % 5) * 1e-4,
        ),
        S.Latency(**c, what="tick_to_order", symbol=sym, us=100.0 + i % 50),
        S.Latency(**c, what="ack", symbol=sym, us=3000.0 + 10 * (i % 50)),
        S.PositionEvent(
            **c, symbol=sym, qty=0.01 * (i % 3), avg_price=p, realized_pnl=0.0, unrealized_pnl=0.01
        ),
        S.EquityPoint(
            **c,
            equity=10_000 + i,
            balance=10_000,
            unrealized_pnl=0.01,
            exposure=p * 0.01,
            day_pnl=float(i),
            drawdown=0.001,
        ),
        S.RiskState(
            **c,
            rules=(S.RuleState(rule="max_position", value=0.01, limit=0.05, refusals=i),),
            breaker="ok",
            kill_switch="reduce_only",
        ),
        S.ModelOutput(
            **c,
            symbol=sym,
            version="v1",
            p_down=0.3,
            p_flat=0.4,
            p_up=0.3,
            horizon_ns=10**9,
            latency_us=50.0 + i % 20,
        ),
        S.Outcome(
            **c, symbol=sym, pred_ts_ns=c["ts_ns"], label=i % 3 - 1, ret=0.0, p_down=0.3, p_flat=0.4, p_up=0.3
        ),
    ]


def _query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_a_real_prometheus_answers_every_panel_query_with_data(tmp_path: Path):
    metrics = M.EngineMetrics()
    server, mport = M.serve(metrics)
    pub = B.Publisher(B.FileSink(tmp_path / "tlog", 1), 1, interval_s=0.02, observers=[metrics.observe_all])
    pub.publish(
        S.RunStarted(run_id=1, ts_ns=time.time_ns(), mode="paper", venue="local", symbols=("BTCUSDT",), pid=1)
    )
    stop = threading.Event()

    def feed() -> None:
        i = 1
        while not stop.is_set():
            for e in _events(i):
                pub.publish(e)
            i += 1
            stop.wait(0.05)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    pport = _free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: orderflow\n    static_configs: [{{targets: ['127.0.0.1:{mport}']}}]\n"
    )
    prom = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{pport}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ups = _query(pport, 'count_over_time(up{job="orderflow"}[1m])')
                if ups and float(ups[0]["value"][1]) >= 4:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("prometheus did not scrape the engine 4 times within 60 s")
        panels = [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]
        empty = []
        for p in panels:
            for t in p["targets"]:
                res = _query(pport, t["expr"].replace("$symbol", ".*"))
                values = [float(r["value"][1]) for r in res]
                if not values or all(math.isnan(v) for v in values):
                    empty.append(f"{p['title']}: {t['expr']}")
        assert not empty, "panels without data:\n" + "\n".join(empty)
    finally:
        stop.set()
        feeder.join(5)
        pub.close()
        prom.terminate()
        prom.wait(10)
        server.shutdown()
