"""`orderflow demo` and `orderflow backtest` through the CLI: the report (HTML, PNG plots, metrics.json
with every issue key) is written, the summary printed; bad --model values give clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from orderflow.backtest.walkforward import H_NS
from orderflow.cli import main

ROOT = Path(__file__).resolve().parents[2]

KEYS = {"trades", "trades_per_day", "win_rate", "gross_pnl", "net_pnl", "fees", "avg_pnl_per_trade",
        "profit_factor", "sharpe", "sortino", "max_drawdown", "var95", "rejections"}  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 170 s alone on 2 cores; far more while other work shares them
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


def check_report_agrees(report: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """metrics.json, trades.csv and fills.csv of one report describe the same run."""
    m = json.loads((report / "metrics.json").read_text())
    trades, fills = pd.read_csv(report / "trades.csv"), pd.read_csv(report / "fills.csv")
    assert set(m) >= KEYS
    assert m["trades"] == len(trades) and m["fills"] == len(fills)
    for k in ("gross_pnl", "fees", "funding", "net_pnl"):
        assert m[k] == pytest.approx(trades[k].sum(), rel=1e-9, abs=1e-9), k
    assert m["net_pnl"] == pytest.approx(m["gross_pnl"] - m["fees"] - m["funding"], rel=1e-9, abs=1e-9)
    assert m["fill_fees"] == pytest.approx(fills["fee"].sum(), rel=1e-9, abs=1e-9)
    assert m["fees"] == pytest.approx(m["fill_fees"], rel=1e-9, abs=1e-9)  # every fill is in a round trip
    # positions are closed at the end: the equity gained what the trades made
    assert m["final_equity"] - m["initial_equity"] == pytest.approx(m["net_pnl"], rel=1e-9, abs=1e-6)
    assert m["win_rate"] == (pytest.approx((trades["net_pnl"] > 0).mean()) if len(trades) else None)
    # every round trip's entry and exit are among the fills
    assert trades["entry_ts"].isin(fills["ts"]).all() and trades["exit_ts"].isin(fills["ts"]).all()
    assert (trades["exit_ts"] >= trades["entry_ts"]).all()
    return m, trades, fills


@pytest.mark.slow
def test_backtest_without_model_runs_and_reports(tmp_path, capsys):
    """--model none with the OFI-only example (AI weight 0, gates at their floor) must trade."""
    store = tmp_path / "store"
    assert main(["data", "simulate", "--hours", "0.5", "--seed", "2", "--store", str(store)]) == 0
    ofi_only = ROOT / "config" / "examples" / "ofi-only"
    rc = main(["backtest", "sim/BTCUSDT", "--store", str(store), "--model", "none", "--config", str(ofi_only),
               "--report", str(tmp_path / "r")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "events replayed" in out
    m, _, fills = check_report_agrees(tmp_path / "r")
    assert m["trades"] > 20 and len(fills) >= 2 * m["trades"]
    assert re.search(rf"^\s*trades\s+{m['trades']}\s*$", out, re.M), out  # the printed summary
    assert m["rejections"].get("gate:confidence", 0) == 0  # the floor: confidence 0.5 passes


@pytest.mark.slow
def test_walk_forward_on_the_real_usdm_recording(shared_data, tmp_path, capsys, monkeypatch):
    """A walk-forward that trades (gates loosened): test windows follow their training data, every
    out-of-sample row is scored, and the report's figures are those of the windows' trades."""
    for key, value in (("STRATEGY__CONFIDENCE_GATE", "0.5"), ("STRATEGY__EV_COST_MULT", "0"),
                       ("STRATEGY__QUALITY_GATE", "0.5"), ("FEATURES__VOL_PCT_BUCKETS", "20")):  # fmt: skip
        monkeypatch.setenv("ORDERFLOW__" + key, value)
    f = shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240808.gz"
    short = ROOT / "config" / "examples" / "short-recording"
    rc = main(["backtest", str(f), "--walk-forward", "--quick", "--config", str(short),
               "--report", str(tmp_path / "r"), "--log-level", "WARNING"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "window 2/2" in out
    m, trades, _ = check_report_agrees(tmp_path / "r")
    assert m["trades"] > 0
    w = pd.read_csv(tmp_path / "r" / "models_by_window.csv")
    assert len(w) == 2 and (w["n_test"] > 0).all() and (w["train_samples"] >= 100).all()
    assert w[["expert_rf", "expert_lgbm", "lstm", "transformer", "cnn", "ensemble"]].notna().all().all()
    train_ns, test_ns = 0.05 * H_NS, 0.02 * H_NS  # the short-recording windows
    for r in w.itertuples():
        # the training samples start within the training window and their labels end before the test
        assert r.start_ns - train_ns <= r.train_from_ns < r.train_labels_until_ns < r.start_ns
        assert 0 < r.end_ns - r.start_ns <= test_ns
    assert (w["start_ns"].iloc[1:].to_numpy() == w["end_ns"].iloc[:-1].to_numpy()).all()  # rolling windows
    # each trade was opened inside a test window; per-window counts and PnL add up to the report
    inside = [(trades["entry_ts"] >= r.start_ns) & (trades["entry_ts"] < r.end_ns) for r in w.itertuples()]
    assert sum(x.astype(int) for x in inside).eq(1).all()
    assert [int(x.sum()) for x in inside] == w["trades"].tolist()
    assert w["net_pnl"].sum() == pytest.approx(m["net_pnl"], rel=1e-9, abs=1e-9)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_bad_report_path_and_too_short_data_are_one_line_errors(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["data", "simulate", "--hours", "0.1", "--seed", "1", "--store", str(store)]) == 0
    capsys.readouterr()
    afile = tmp_path / "afile"
    afile.write_text("keep")
    for report in (afile, afile / "sub"):
        for cmd in (["backtest", "sim/BTCUSDT", "--store", str(store), "--model", "none"],
                    ["demo", "--hours", "1", "--store", str(tmp_path / "demo-store")]):  # fmt: skip
            assert main([*cmd, "--report", str(report), "--log-level", "WARNING"]) == 2
            err = one_line_error(capsys)
            assert "--report" in err and f"'{report}'" in err  # refused by the parser, naming the value
    assert afile.read_text() == "keep" and not (tmp_path / "demo-store").exists()  # nothing written

    # 0.1 h of data; the default walk-forward trains 12 h and tests 4 h windows
    wf_report = tmp_path / "wf"
    rc = main(["backtest", "sim/BTCUSDT", "--store", str(store), "--walk-forward", "--quick",
               "--report", str(wf_report), "--log-level", "WARNING"])  # fmt: skip
    err = one_line_error(capsys)
    assert rc == 2 and not wf_report.exists()
    assert re.match(r"orderflow: sim/BTCUSDT spans 0\.(09|1)\d* h; the walk-forward needs at least 14 h "
                    r"\(train 12 h \+ half a 4 h test window\); shorten walkforward\.", err), err  # fmt: skip
    # the demo refuses before it simulates anything
    rc = main(["demo", "--hours", "12", "--store", str(tmp_path / "d"), "--log-level", "WARNING"])
    err = one_line_error(capsys)
    assert rc == 2 and "--hours 12" in err and "spans 12 h" in err and "needs at least 14 h" in err
    assert not (tmp_path / "d").exists() and not (tmp_path / "demo-report").exists()


@pytest.mark.slow
def test_backtest_books_the_stored_funding_history_and_says_so(tmp_path, capsys):
    """A funding history stored for the backtested symbol is booked, and metrics.json, the HTML report
    and the summary name it: a rate of 1 bp every minute from 00:01 to 00:20 of the simulated run
    (2024-01-01 00:00 .. 00:30); after 00:20 the constant's grid would apply (no grid time falls there)."""
    store = tmp_path / "store"
    assert main(["data", "simulate", "--hours", "0.5", "--seed", "2", "--store", str(store)]) == 0
    hist = tmp_path / "BTCUSDT-fundingRate-2024-01.csv"  # Binance Vision's layout
    rows = [f"{1_704_067_200_000 + 60_000 * k},8,0.0001" for k in range(1, 21)]
    hist.write_text("calc_time,funding_interval_hours,last_funding_rate\n" + "\n".join(rows) + "\n")
    assert main(["data", "import", str(hist), "--format", "binance-funding", "--venue", "sim",
                 "--store", str(store)]) == 0  # fmt: skip
    ofi_only = ROOT / "config" / "examples" / "ofi-only"
    rc = main(["backtest", "sim/BTCUSDT", "--store", str(store), "--model", "none", "--config", str(ofi_only),
               "--report", str(tmp_path / "r")])  # fmt: skip
    out = capsys.readouterr().out
    m, _, _ = check_report_agrees(tmp_path / "r")
    assert rc == 0 and m["funding_source"].startswith("history (20 rates from store, 2024-01-01 00:01 .. ")
    assert "after 2024-01-01 00:20 (beyond the stored history)" in m["funding_source"]
    # booked at the minutes a position was open (the run is in the market about 40 % of the time)
    assert 0 < m["funding_events"] == m["funding_events_history"] <= 20 and m["funding_events_constant"] == 0
    assert m["funding_total"] == pytest.approx(m["funding"], abs=1e-9)  # what the round trips carry
    assert "Funding booked: history (20 rates from store" in (tmp_path / "r" / "report.html").read_text()
    assert "funding: history (20 rates from store" in out
