"""`orderflow demo` and `orderflow backtest` through the CLI: the report (HTML, PNG plots, metrics.json
with every issue key) is written, the summary printed; bad --model values give clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from orderflow.cli import main

KEYS = {"trades", "trades_per_day", "win_rate", "gross_pnl", "net_pnl", "fees", "avg_pnl_per_trade",
        "profit_factor", "sharpe", "sortino", "max_drawdown", "var95", "rejections"}  # fmt: skip


def test_demo_short_then_backtest_with_a_bundle(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ORDERFLOW__WALKFORWARD__TRAIN_HOURS", "3")
    monkeypatch.setenv("ORDERFLOW__WALKFORWARD__TEST_HOURS", "1.5")
    store, report = tmp_path / "store", tmp_path / "report"
    rc = main(["demo", "--hours", "6", "--seed", "4", "--store", str(store), "--report", str(report),
               "--log-level", "WARNING"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "window 2/2" in out and "report:" in out and "net_pnl" in out
    m = json.loads((report / "metrics.json").read_text())
    assert set(m) >= KEYS
    html = (report / "report.html").read_text()
    for png in ("equity_drawdown.png", "trades.png", "pnl_hist.png", "rejections.png", "regimes.png"):
        assert (report / png).stat().st_size > 5000 and png in html
    assert "out of sample" in html
    # the CLI refuses a model it cannot find, naming it
    rc = main(["backtest", "sim/BTCUSDT", "--store", str(store), "--model", "champion",
               "--registry", str(tmp_path / "reg")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc != 0 and "champion" in err


def test_backtest_without_model_runs_and_reports(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["data", "simulate", "--hours", "1", "--seed", "2", "--store", str(store)]) == 0
    rc = main(["backtest", "sim/BTCUSDT", "--store", str(store), "--model", "none",
               "--report", str(tmp_path / "r")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "events replayed" in out
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["trades"] == 0 and m["rejections"].get("gate:confidence", 0) > 0


def test_walk_forward_on_the_real_usdm_recording(shared_data, tmp_path, capsys):
    f = shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240808.gz"
    short = str(Path(__file__).resolve().parents[2] / "config" / "examples" / "short-recording")
    rc = main(["backtest", str(f), "--walk-forward", "--quick", "--config", short,
               "--report", str(tmp_path / "r"), "--log-level", "WARNING"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert set(m) >= KEYS and m["trades"] >= 0
    assert "window 2/2" in out
