"""The dashboard, Prometheus and the metrics against a real paper engine: the local exchange on the
simulator (20x), `orderflow paper` in its own process with a small ONNX model, publishing telemetry
and serving /metrics; the dashboard server; Debian's Chromium; Debian's Prometheus.

The engine trades with the OFI-only example config, so fills come within a minute or two."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from orderflow.execution.local.testing import running_local_exchange
from support.bundles import lr_bundle
from support.dashboard import PASSWORD, Server

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_JSON = ROOT / "deploy" / "grafana" / "dashboards" / "orderflow.json"
CHROMIUM = "/usr/bin/chromium"
FEATURES = ["ofi_e1", "ofi_w", "spread_bps"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def _metric(text: str, name: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def _wait(pred, timeout: float, what: str, every: float = 0.25) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(OSError, ValueError):
            if pred():
                return
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


class Stack:
    """Exchange, engine, dashboard: what a user runs in three terminals."""

    def __init__(self, tmp: Path, exchange) -> None:
        self.tmp = tmp
        self.ex = exchange
        self.telemetry = tmp / "telemetry"
        self.db = tmp / "journal.sqlite"
        self.metrics_port = _free_port()
        self.metrics = f"http://127.0.0.1:{self.metrics_port}/metrics"
        bundle = lr_bundle(tmp / "bundle", 1.0, features=FEATURES, schema="dash")
        self.server = Server(tmp / "dash", telemetry=self.telemetry, journal=self.db)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "ORDERFLOW_PAPER_API_KEY": exchange.api_key,
            "ORDERFLOW_PAPER_API_SECRET": exchange.api_secret,
            "ORDERFLOW_KILL_FILE": str(self.server.kill_file),
        }
        cmd = [
            sys.executable,
            "-m",
            "orderflow.cli",
            "paper",
            "--minutes",
            "8",
            "--config",
            str(ROOT / "config" / "examples" / "ofi-only"),
            "--model",
            str(bundle),
            "--rest-url",
            exchange.rest_url,
            "--ws-url",
            exchange.ws_url,
            "--telemetry",
            str(self.telemetry),
            "--metrics-port",
            str(self.metrics_port),
            "--db",
            str(self.db),
            "--on-stop",
            "keep",
        ]
        self.log = open(tmp / "engine.log", "w")  # noqa: SIM115 - closed in stop()
        self.engine = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        _wait(
            lambda: _metric(_get(self.metrics), "orderflow_book_updates_total", symbol="BTCUSDT"),
            120,
            "the engine's first book update",
        )

    def run_id(self) -> int:
        runs = self.server.get("/api/runs")["runs"]
        return max(r["run_id"] for r in runs)

    def depth(self) -> tuple[int, float, float]:
        body = json.loads(_get(self.ex.rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=5"))
        return int(body["lastUpdateId"]), float(body["bids"][0][0]), float(body["asks"][0][0])

    def stop(self) -> None:
        if self.engine.poll() is None:
            self.engine.kill()
        self.engine.wait(10)
        self.server.stop()
        self.log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("paper-dash")
    with running_local_exchange(
        source="sim", seed=11, clock="realtime", speed=20, market="usdm", sim_hours=3.0, symbol="BTCUSDT"
    ) as ex:
        s = Stack(tmp, ex)
        try:
            yield s
        finally:
            s.stop()
            print((tmp / "engine.log").read_text()[-3000:])


@pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="prometheus not installed (apt-get install prometheus)"
)
def test_prometheus_answers_every_panel_on_a_paper_run(stack: Stack, tmp_path: Path):
    text = _get(stack.metrics)
    if shutil.which("promtool"):
        out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
    port = _free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: orderflow\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{stack.metrics_port}']}}]\n"
    )
    prom = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def query(expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        return json.loads(_get(url))["data"]["result"]

    def has_data(expr: str) -> bool:
        res = query(expr.replace("$symbol", ".*"))
        return bool(res) and not all(math.isnan(float(r["value"][1])) for r in res)

    try:
        _wait(lambda: query('up{job="orderflow"}'), 60, "the first scrape")
        # rates need the counters to move between scrapes: fills and model outcomes after the first one
        fills0 = _metric(_get(stack.metrics), "orderflow_fills_total") or 0.0
        _wait(
            lambda: (
                has_data('increase(orderflow_fills_total{job="orderflow"}[5m])')
                and float(query('sum(increase(orderflow_fills_total{job="orderflow"}[5m]))')[0]["value"][1])
                > 0
                and has_data('orderflow_model_brier_score{job="orderflow"}')
            ),
            300,
            f"fills (had {fills0:g}) and realised predictions while Prometheus scrapes",
            every=2.0,
        )
        panels = [p for p in json.loads(DASHBOARD_JSON.read_text())["panels"] if p["type"] != "row"]
        exprs = [(p["title"], t["expr"]) for p in panels for t in p["targets"]]
        missing = [f"{title}: {e}" for title, e in exprs if not has_data(e)]
        assert not missing, "panels without data:\n" + "\n".join(missing)
    finally:
        prom.terminate()
        prom.wait(10)


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_the_dashboard_follows_a_paper_run(stack: Stack):
    pw = pytest.importorskip("playwright.sync_api")
    shots = ROOT / "test-artifacts" / "dashboard-paper"
    shots.mkdir(parents=True, exist_ok=True)
    run = stack.run_id()
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(stack.server.url)
        page.wait_for_selector(f"#status-{run}:has-text('running')", timeout=15_000)

        # the ladder's best bid and ask equal the exchange's REST depth at the same update id
        page.click("#tabs button[data-tab=ladder]")
        page.wait_for_function(
            "Number(document.querySelector('#ladder').dataset.updateId) > 0", timeout=20_000
        )
        shown: dict[int, tuple[float, float]] = {}
        rest: dict[int, tuple[float, float]] = {}
        end = time.monotonic() + 20
        while time.monotonic() < end and len(set(shown) & set(rest)) < 3:
            u, b, a = stack.depth()
            rest[u] = (b, a)
            v = page.evaluate(
                "() => { const l = document.querySelector('#ladder').dataset;"
                " return [l.updateId, l.bestBid, l.bestAsk]; }"
            )
            shown[int(v[0])] = (float(v[1]), float(v[2]))
            time.sleep(0.02)
        common = sorted(set(shown) & set(rest))
        assert common, f"no update id seen by both the page and REST ({len(shown)} and {len(rest)} looks)"
        for u in common:
            assert shown[u] == rest[u], (u, shown[u], rest[u])
        page.screenshot(path=str(shots / "ladder.png"))

        page.click("#tabs button[data-tab=equity]")
        page.wait_for_function(
            "Number(document.querySelector('#equity-points').textContent) > 0", timeout=20_000
        )
        n0 = int(page.inner_text("#equity-points"))
        page.wait_for_function(
            f"Number(document.querySelector('#equity-points').textContent) > {n0}", timeout=20_000
        )
        page.screenshot(path=str(shots / "equity.png"))

        page.click("#tabs button[data-tab=orders]")
        page.wait_for_selector("#fills-table tbody tr.fill-row", timeout=240_000)  # the engine's first fill
        page.screenshot(path=str(shots / "orders.png"))
        page.click("#tabs button[data-tab=chart]")
        page.wait_for_function(
            "Number(document.querySelector('#price-chart').dataset.fills) > 0", timeout=20_000
        )
        page.screenshot(path=str(shots / "chart.png"))

        page.click("#tabs button[data-tab=decisions]")
        page.wait_for_selector("#decisions-table tr[data-gate=pass]", timeout=20_000)
        gates = set(
            page.eval_on_selector_all("#decisions-table tbody tr", "rs => rs.map(r => r.dataset.gate)")
        )
        assert "pass" in gates and gates - {"pass"}, gates
        page.screenshot(path=str(shots / "decisions.png"))
        for tab in ("risk", "model", "feed", "system"):
            page.click(f"#tabs button[data-tab={tab}]")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shots / f"{tab}.png"))

        # control: a wrong password changes nothing; the operator's sets reduce_only on this run
        page.click("#tabs button[data-tab=overview]")
        page.click("#login-btn")
        page.fill("#login-who", "alice")
        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")
        page.click(f"[data-kill=reduce_only][data-run='{run}']")
        page.fill("#kill-why", "test: reduce before the close")
        page.fill("#kill-password", "wrong horse")
        page.click("#kill-submit")
        page.wait_for_selector("#kill-error:has-text('wrong password')", timeout=5_000)
        time.sleep(1.5)  # the engine polls every 0.5 s: nothing may have moved
        assert _metric(_get(stack.metrics), "orderflow_kill_switch", orderflow_kill_switch="off") == 1.0
        page.fill("#kill-password", PASSWORD)
        page.click("#kill-submit")
        _wait(
            lambda: (
                _metric(_get(stack.metrics), "orderflow_kill_switch", orderflow_kill_switch="reduce_only")
                == 1.0
            ),
            10,
            "/metrics showing reduce_only",
        )
        engine = sa.create_engine(f"sqlite:///{stack.db}")
        with engine.connect() as c:
            msgs = [
                m for (m,) in c.execute(sa.text("select message from risk_events where rule = 'kill_switch'"))
            ]
        engine.dispose()
        assert any("reduce_only by alice@" in m and "reduce before the close" in m for m in msgs), msgs
        page.wait_for_selector(f"#kill-{run}:has-text('reduce_only')", timeout=10_000)
        page.screenshot(path=str(shots / "overview.png"))

        # an engine crash shows as "engine down" within 5 s
        stack.engine.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        page.wait_for_selector(f"#status-{run}:has-text('engine down')", timeout=10_000)
        assert time.monotonic() - t0 < 5.0
        page.screenshot(path=str(shots / "engine-down.png"))
        assert not errors, errors
        browser.close()
