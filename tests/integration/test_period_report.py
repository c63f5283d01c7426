"""`orderflow report` over a real journal (SQLite through the Journal API): the figures equal a
recomputation from the journaled fills and equity, exactly for money, and the period edges hold
(a position carried over midnight, a run crossing midnight, Monday weeks)."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from orderflow.core.orders import OrderIntent, OrderType, Side, TimeInForce
from orderflow.journal import Journal
from orderflow.reports.build import build_report
from orderflow.reports.periods import NS, period_of

D = Decimal
DAY0 = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)  # a Monday


def _t(hours: float) -> int:
    return int(DAY0.timestamp() * NS) + int(hours * 3600 * NS)


# (hours after Monday 00:00, side, qty, price, fee)
FILLS = [
    (1.0, "buy", "0.010", "60000.10", "0.24"),
    (2.0, "sell", "0.010", "60050.30", "0.24"),  # round trip 1: +0.502 - 0.48
    (22.0, "buy", "0.020", "60100.00", "0.48"),  # opened Monday, carried over midnight
    (25.0, "sell", "0.005", "60000.00", "0.12"),  # Tuesday: partial close against Monday's lot
    (26.5, "sell", "0.025", "60200.00", "0.60"),  # closes and flips short 0.010
    (30.0, "buy", "0.010", "60300.00", "0.24"),  # closes the short: a loss
]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite"
    with Journal.open(f"sqlite:///{path}") as j:
        run = j.start_run("paper", "local", ["BTCUSDT"], _t(0.5))
        for k, (h, side, qty, price, fee) in enumerate(FILLS):
            cid = f"of{run}-{k}"
            intent = OrderIntent(
                cid,
                "BTCUSDT",
                Side.BUY if side == "buy" else Side.SELL,
                float(qty),
                OrderType.MARKET,
                time_in_force=TimeInForce.IOC,
                ts_created=_t(h),
            )
            j.record_intent(intent, run)
            j.mark_sent(cid, _t(h))
            j.record_fill(cid, k, D(price), D(qty), _t(h), fee=D(fee), fee_asset="USDT", liquidity="taker")
            j.apply_report(cid, "filled", D(qty), D(price), str(k), _t(h))
        rng = np.random.default_rng(3)
        eq = 10_000.0
        for m in range(0, 36 * 60, 7):  # a snapshot every 7 minutes for 36 hours
            eq += float(rng.normal(0.0, 0.8))
            j.record_equity(
                run, _t(0.5) + m * 60 * NS, round(eq, 6), exposure=abs(float(rng.normal(500, 50)))
            )
        j.record_signals(
            run,
            "BTCUSDT",
            [
                {
                    "ts_ns": _t(h),
                    "fused": 0.1,
                    "ofi_score": 0.1,
                    "ai_score": 0.1,
                    "confidence": 0.5,
                    "quality": 1.0,
                    "ev": 0.0,
                    "cost": 0.0,
                    "action": "none",
                    "gate": g,
                }
                for h, g in [(3, "confidence"), (4, "confidence"), (5, "ev"), (27, "confidence"), (1, "pass")]
            ],
        )
        j.record_risk_event(_t(25.5), "daily_drawdown", 0.02, 0.04, "breaker", run_id=run, symbol="BTCUSDT")
        j.stop_run(run, _t(31), "minutes elapsed")
    return path


def _report(path: Path, kind: str, day: dt.date) -> dict:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as c:
        rep = build_report(c, period_of(kind, day))
    engine.dispose()
    return rep


def _fifo(fills: list[tuple], start: int, end: int) -> tuple[Decimal, Decimal]:
    """Realised PnL and fees of the fills in [start, end), FIFO over every fill before end (by hand)."""
    lots: list[list[Decimal]] = []
    gross = fees = D(0)
    for h, side, qty, price, fee in fills:
        t = _t(h)
        if t >= end:
            break
        q, p = D(qty) * (1 if side == "buy" else -1), D(price)
        realized = D(0)
        while q and lots and (lots[0][0] > 0) != (q > 0):
            take = min(abs(q), abs(lots[0][0]))
            sign = 1 if lots[0][0] > 0 else -1
            realized += take * (p - lots[0][1]) * sign
            lots[0][0] -= take * sign
            q += take * sign
            if lots[0][0] == 0:
                lots.pop(0)
        if q:
            lots.append([q, p])
        if t >= start:
            gross += realized
            fees += D(fee)
    return gross, fees


def test_monday_and_tuesday_reports_equal_a_recomputation(journal: Path):
    for day in (dt.date(2026, 11, 30), dt.date(2026, 12, 1)):
        rep = _report(journal, "daily", day)
        p = period_of("daily", day)
        gross, fees = _fifo(FILLS, p.start_ns, p.end_ns)
        assert rep["pnl"]["gross"] == gross  # exact
        assert rep["pnl"]["fees"] == fees
    mon, tue = (
        _report(journal, "daily", dt.date(2026, 11, 30)),
        _report(journal, "daily", dt.date(2026, 12, 1)),
    )
    # Monday: round trip 1 closed (0.010 x 50.20 = 0.502, less 0.48 fees); the 0.020 long stays open
    assert mon["pnl"]["gross"] == D("0.50200") and mon["trades"]["count"] == 1
    assert mon["trades"]["net"] == D("0.02200")
    # Tuesday: 0.005 closed at -100 (-0.5) and 0.015 at +100 (+1.5) against Monday's lot -> +1.0;
    # then the 0.010 short from 60200 bought back at 60300 -> -1.0
    assert tue["pnl"]["gross"] == D("0.000")
    # trip 2 (Monday's long) made +1.0 gross but paid 1.20 in fees (the flipping fill's whole fee is
    # booked to the trip it closes); trip 3 (the short) lost 1.0 and paid 0.24
    assert tue["trades"]["count"] == 2 and tue["trades"]["wins"] == 0
    assert [t["net"] for t in tue["round_trips"]] == [D("-0.20000"), D("-1.24000")]
    # the run ended Tuesday: its funding (none booked) counts there; net = gross - fees + funding
    assert tue["pnl"]["net"] == tue["pnl"]["gross"] - tue["pnl"]["fees"] + tue["pnl"]["funding"]
    assert mon["rejections_by_gate"] == {"confidence": 2, "ev": 1} and mon["accepted"] == 1
    assert tue["risk_by_rule"] == {"daily_drawdown": 1}
    week = _report(journal, "weekly", dt.date(2026, 12, 3))
    assert week["pnl"]["gross"] == mon["pnl"]["gross"] + tue["pnl"]["gross"]
    assert week["pnl"]["fees"] == mon["pnl"]["fees"] + tue["pnl"]["fees"]
    assert set(week["by_day"]) == {"2026-11-30", "2026-12-01"}
    assert week["trades"]["count"] == 3


def test_the_ratios_equal_a_recomputation_from_the_equity(journal: Path):
    rep = _report(journal, "daily", dt.date(2026, 11, 30))
    p = period_of("daily", dt.date(2026, 11, 30))
    engine = sa.create_engine(f"sqlite:///{journal}")
    with engine.connect() as c:
        rows = c.execute(sa.text("select ts_ns, equity from equity order by ts_ns, id")).all()
    engine.dispose()
    ts = np.array([r[0] for r in rows])
    eq = np.array([float(r[1]) for r in rows])
    inside = (ts >= p.start_ns) & (ts < p.end_ns)
    ts, eq = ts[inside], eq[inside]
    capital = eq[0]
    # the PnL at the end of each minute of the day, carried forward from 0 at the start
    level = np.zeros(24 * 60 + 1)
    minute = (ts - p.start_ns) // (60 * NS)
    for i in range(1, level.size):
        done = minute < i
        level[i] = (eq[done][-1] - capital) if done.any() else 0.0
    span = int(minute.max()) + 1
    curve = capital + level[: span + 1]
    r = np.diff(curve) / curve[:-1]
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(525_600)
    sortino = r.mean() / math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * math.sqrt(525_600)
    peak = np.maximum.accumulate(curve)
    assert rep["ratios"]["sharpe"] == pytest.approx(sharpe, abs=1e-9)
    assert rep["ratios"]["sortino"] == pytest.approx(sortino, abs=1e-9)
    assert rep["ratios"]["max_drawdown"] == pytest.approx(((peak - curve) / peak).max(), abs=1e-12)
    assert "365-day, 24-hour year" in rep["ratios"]["annualisation"]


@pytest.mark.slow
def test_the_command_writes_html_json_and_pdf(journal: Path, tmp_path: Path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "orderflow.cli",
        "report",
        "--period",
        "daily",
        "--date",
        "2026-12-01",
        "--db",
        str(journal),
        "--out",
        str(out),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    assert "daily report 2026-12-01 (UTC)" in res.stdout
    figures = json.loads((out / "report.json").read_text())
    assert D(figures["pnl"]["gross"]) == 0 and figures["trades"]["count"] == 2
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "365-day, 24-hour year" in html
    if shutil.which("chromium"):
        assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.slow
def test_a_missing_journal_is_named(tmp_path: Path):
    cmd = [sys.executable, "-m", "orderflow.cli", "report", "--db", str(tmp_path / "none.sqlite")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "none.sqlite does not exist" in res.stderr
