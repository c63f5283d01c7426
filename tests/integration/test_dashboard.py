"""The dashboard as a user meets it: a real uvicorn server, real HTTP, a synthetic engine process
publishing telemetry, and Debian's Chromium driven by Playwright. Screenshots of every view are
saved under ``test-artifacts/dashboard/`` in the repository (ignored by git)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderflow.engine.control import read_control
from orderflow.telemetry import bus as B
from orderflow.telemetry import schema as S
from support.dashboard import PASSWORD, Server

ROOT = Path(__file__).resolve().parents[2]
FEED = ROOT / "tests" / "support" / "telemetry_feed.py"
CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.stop()


def _engine(
    server: Server, run_id: int, seconds: float, rate: float = 40, symbols: int = 2
) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [
            sys.executable,
            str(FEED),
            str(server.telemetry),
            str(run_id),
            str(seconds),
            str(rate),
            str(symbols),
        ],
        env=env,
    )


def _wait(pred, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.05)
    pytest.fail(f"{what} not within {timeout} s")


def _run(server: Server, run_id: int) -> dict | None:
    return next((r for r in server.get("/api/runs")["runs"] if r["run_id"] == run_id), None)


def test_runs_and_their_status_follow_the_heartbeats(server: Server):
    proc = _engine(server, 11, 60)
    try:
        _wait(lambda: (_run(server, 11) or {}).get("status") == "running", 20, "run 11 running")
        snap = server.get("/api/runs/11")["live"]
        assert snap["books"] and snap["decisions"]
        proc.send_signal(signal.SIGKILL)  # an engine crash: no run_stopped, the heartbeats just end
        proc.wait(10)
        took = _wait(lambda: _run(server, 11)["status"] == "down", 8, "engine down")
        assert took < 5.0
    finally:
        proc.kill()


def test_a_stopped_run_and_its_reports_are_listed(server: Server):
    pub = B.Publisher(B.FileSink(server.telemetry, 12), 12, interval_s=0.01)
    pub.publish(S.RunStopped(run_id=12, ts_ns=time.time_ns(), reason="minutes elapsed"))
    pub.close()
    _wait(lambda: (_run(server, 12) or {}).get("status") == "stopped", 10, "run 12 stopped")
    reports = server.get("/api/reports")["reports"]
    assert [r["name"] for r in reports] == ["backtest.html"]
    with urllib.request.urlopen(server.url + reports[0]["url"], timeout=5) as r:
        assert b"backtest report" in r.read()
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(server.url + "/reports/0/..%2Fdashboard-password", timeout=5)


def test_control_needs_the_password_the_session_and_the_csrf_token(server: Server):
    status, body, _ = server.post("/api/login", {"password": "wrong"})
    assert status == 401
    status, body, cookie = server.post("/api/login", {"password": PASSWORD, "who": "alice"})
    assert status == 200 and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    session = {"Cookie": cookie.split(";")[0]}
    order = {"run_id": 5, "mode": "reduce_only", "why": "news at 14:30", "password": PASSWORD}
    assert server.post("/api/control/kill", order)[0] == 401  # no session
    assert server.post("/api/control/kill", order, session)[0] == 403  # no CSRF token
    csrf = {**session, "X-CSRF-Token": body["csrf"]}
    status, _, _ = server.post("/api/control/kill", {**order, "password": "wrong"}, csrf)
    assert status == 401
    assert read_control(5, server.kill_file).mode == "off"  # a wrong password changed nothing
    status, out, _ = server.post("/api/control/kill", order, csrf)
    assert status == 200 and out["effective"] == "reduce_only"
    c = read_control(5, server.kill_file)
    assert (c.mode, c.why) == ("reduce_only", "news at 14:30") and c.who.startswith("alice@")
    assert read_control(6, server.kill_file).mode == "off"  # another run is untouched
    status, out, _ = server.post("/api/control/kill", {**order, "run_id": "all", "mode": "halt"}, csrf)
    assert status == 200 and out["run"] == "all"
    assert read_control(6, server.kill_file).mode == "halt"  # every run: the global file


def test_binding_beyond_loopback_without_a_password_is_refused(tmp_path: Path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "ORDERFLOW_DASHBOARD_PASSWORD_FILE": str(tmp_path / "none"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "orderflow.cli", "dashboard", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "binding beyond loopback needs an operator password" in out.stderr


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_the_page_in_a_real_browser(server: Server, tmp_path: Path):
    pw = pytest.importorskip("playwright.sync_api")
    shots = ROOT / "test-artifacts" / "dashboard"
    shots.mkdir(parents=True, exist_ok=True)
    proc = _engine(server, 21, 90)
    reader = B.FileReader(server.telemetry)
    events: list = []
    try:
        _wait(lambda: (_run(server, 21) or {}).get("status") == "running", 20, "run 21 running")
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url)
            page.wait_for_selector("#status-21:has-text('running')", timeout=10_000)
            page.screenshot(path=str(shots / "overview.png"))

            page.click("#tabs button[data-tab=ladder]")
            page.wait_for_function("document.querySelector('#ladder').dataset.updateId > 0", timeout=10_000)
            # the ladder shows the book of the update id it names
            shown = page.evaluate(
                "() => { const l = document.querySelector('#ladder');"
                " return [l.dataset.updateId, l.dataset.bestBid,"
                " document.querySelector('#ladder-symbol').value]; }"
            )  # one look, so a render in between cannot mix two books
            uid, best_bid, sym = int(shown[0]), float(shown[1]), shown[2]
            events += reader.read(21, max_events=10**6)
            book = next(
                e for e in events if isinstance(e, S.BookTop) and e.symbol == sym and e.update_id == uid
            )
            assert best_bid == book.bids[0][0]
            page.screenshot(path=str(shots / "ladder.png"))

            page.click("#tabs button[data-tab=equity]")
            n0 = int(page.inner_text("#equity-points"))
            page.wait_for_function(
                f"Number(document.querySelector('#equity-points').textContent) > {n0}", timeout=10_000
            )
            page.screenshot(path=str(shots / "equity.png"))

            page.click("#tabs button[data-tab=decisions]")
            page.wait_for_selector("#decisions-table tr[data-gate=pass]", timeout=15_000)
            gates = set(
                page.eval_on_selector_all("#decisions-table tbody tr", "rs => rs.map(r => r.dataset.gate)")
            )
            assert "pass" in gates and gates - {"pass"}, gates  # accepted and refused, with their gate
            page.screenshot(path=str(shots / "decisions.png"))

            page.click("#tabs button[data-tab=orders]")
            page.wait_for_selector("#fills-table tbody tr.fill-row", timeout=15_000)
            page.screenshot(path=str(shots / "orders.png"))
            page.click("#tabs button[data-tab=chart]")
            page.wait_for_function(
                "Number(document.querySelector('#price-chart').dataset.fills) > 0", timeout=10_000
            )
            page.screenshot(path=str(shots / "chart.png"))
            for tab in ("risk", "model", "feed", "system", "reports"):
                page.click(f"#tabs button[data-tab={tab}]")
                page.wait_for_timeout(800)
                page.screenshot(path=str(shots / f"{tab}.png"))

            # control: a wrong password changes nothing; the right one sets reduce_only for this run
            page.click("#tabs button[data-tab=overview]")
            page.click("#login-btn")
            page.fill("#login-password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_selector("[data-kill=reduce_only][data-run='21']", timeout=10_000)
            page.click("[data-kill=reduce_only][data-run='21']")
            page.fill("#kill-why", "browser test")
            page.fill("#kill-password", "not it")
            page.click("#kill-submit")
            page.wait_for_selector("#kill-error:has-text('wrong password')", timeout=5_000)
            assert read_control(21, server.kill_file).mode == "off"
            page.fill("#kill-password", PASSWORD)
            page.click("#kill-submit")
            _wait(lambda: read_control(21, server.kill_file).mode == "reduce_only", 5, "reduce_only set")
            assert read_control(21, server.kill_file).why == "browser test"

            proc.send_signal(signal.SIGKILL)
            t0 = time.monotonic()
            page.wait_for_selector("#status-21:has-text('engine down')", timeout=8_000)
            assert time.monotonic() - t0 < 5.0
            page.screenshot(path=str(shots / "engine-down.png"))
            assert not errors, errors
            browser.close()
    finally:
        proc.kill()
