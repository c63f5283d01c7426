"""The period report's model evaluation, slippage and per-payment funding over a hand-made journal
(SQLite through the Journal API), every expected figure worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa

from orderflow.core.orders import OrderIntent, OrderType, Side, TimeInForce
from orderflow.journal import Journal
from orderflow.reports.build import build_report
from orderflow.reports.periods import NS, period_of
from orderflow.reports.render import render_html

D = Decimal
MONDAY = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
T = int(MONDAY.timestamp()) * NS + 3600 * NS  # Monday 01:00 UTC
S = NS


def _pred(seq: int, t: int, probs: tuple, **kw) -> dict:
    return {"seq": seq, "ts_ns": t, "event_ns": t, "version": "7", "p_down": probs[0], "p_flat": probs[1],
            "p_up": probs[2], "horizon_ns": 60 * S, "mid": 100.0, **kw}  # fmt: skip


def _order(j: Journal, run: int, cid: str, side: Side, ref: float, fills: list[tuple[str, str, str]]) -> None:
    j.record_intent(OrderIntent(cid, "BTCUSDT", side, 0.002, OrderType.MARKET, time_in_force=TimeInForce.IOC,
                                ref_price=ref, ts_created=T), run)  # fmt: skip
    j.mark_sent(cid, T)
    for k, (price, qty, fee) in enumerate(fills):
        j.record_fill(cid, k, D(price), D(qty), T + k, fee=D(fee), fee_asset="USDT")


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite"
    with Journal.open(f"sqlite:///{path}") as j:
        run = j.start_run("paper", "local", ["BTCUSDT"], T - 86_400 * S)
        j.record_model_inputs(run, "7", ["a", "b"], T - 86_400 * S)
        sunday = T - 86_400 * S
        # Sunday: three outcomes known before Monday (up, up, down) and 60 input vectors: the reference
        rows = [_pred(k, sunday + k * S, (0.3, 0.4, 0.3), label=y, ret=0.0, outcome_ns=sunday + 100 * S + k)
                for k, y in enumerate((1, 1, -1))]  # fmt: skip
        rows += [_pred(3 + k, sunday + (10 + k) * S, (0.3, 0.4, 0.3), inputs=msgspec.msgpack.encode([k, 0.0]))
                 for k in range(60)]  # fmt: skip
        # Monday: four resolved samples (no inputs) and 40 unresolved ones with shifted inputs
        rows += [
            _pred(100, T + 10 * S, (0.2, 0.5, 0.3), label=0, ret=0.0001, outcome_ns=T + 20 * S),
            _pred(101, T + 15 * S, (0.1, 0.3, 0.6), label=1, ret=0.002, outcome_ns=T + 40 * S, ev=0.0010,
                  cost=0.0006, side=1, client_order_id="of1-1"),
            _pred(102, T + 30 * S, (0.5, 0.3, 0.2), label=-1, ret=-0.001, outcome_ns=T + 35 * S, ev=0.0008,
                  cost=0.0005, side=-1),
            _pred(103, T + 50 * S, (0.4, 0.4, 0.2), label=1, ret=0.003, outcome_ns=T + 70 * S),
        ]  # fmt: skip
        shifted = [msgspec.msgpack.encode([100.0 + k, 0.0]) for k in range(40)]
        rows += [_pred(200 + k, T + (100 + k) * S, (0.3, 0.4, 0.3), inputs=x) for k, x in enumerate(shifted)]
        j.record_predictions(run, "BTCUSDT", rows)
        # the order the sample at T+15 s sent: decided at mid 100.00, filled 0.001 at 100.02 and 100.04
        _order(
            j, run, "of1-1", Side.BUY, 100.0, [("100.02", "0.001", "0.0001"), ("100.04", "0.001", "0.0001")]
        )
        # its exit: decided at 100.10, sold at 100.08 (0.02 below the mid: a cost of 0.00004)
        _order(j, run, "of1-2", Side.SELL, 100.10, [("100.08", "0.002", "0.0001")])
        # an order journaled without a decision mid (as before migration 0003)
        _order(j, run, "of1-3", Side.BUY, math.nan, [("100.00", "0.001", "0.0001")])
        # funding booked by the engine: Sunday (another period), Monday +0.5 and -0.2; the exchange's
        j.record_funding(run, sunday, "BTCUSDT", 9.0, "model")
        j.record_funding(run, T + 60 * S, "BTCUSDT", 0.5, "model")
        j.record_funding(run, T + 90 * S, "BTCUSDT", D("-0.2"), "model")
        j.record_funding(run, T + 60 * S, "BTCUSDT", D("0.31"), "exchange")
        j.stop_run(run, T + 2 * 86_400 * S, "completed")
        # an older run that journaled no payment: its per-run total counts in the period it ended
        old = j.start_run("paper", "local", ["ETHUSDT"], sunday)
        j.upsert_position(old, "ETHUSDT", 0, None, 0, 0, D("1.25"), T)
        j.stop_run(old, T + 3600 * S, "completed")
    return path


def _report(path: Path, day: dt.date, **kw) -> dict:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as c:
        rep = build_report(c, period_of("daily", day), **kw)
    engine.dispose()
    return rep


def test_slippage_and_funding_per_payment(journal: Path):
    rep = _report(journal, MONDAY.date())
    pnl = rep["pnl"]
    # buys: (100.02 - 100) x 0.001 + (100.04 - 100) x 0.001 = 0.00006; the sell: -(100.08 - 100.10) x
    # 0.002 = 0.00004; the fill without a decision mid is left out and counted
    assert pnl["slippage"] == D("0.00010") and pnl["slippage_fills"] == 3
    assert "1 fills without a decision mid" in pnl["slippage_note"]
    # 0.5 - 0.2 booked on Monday, plus the older run's 1.25 (it journaled no payment); not Sunday's 9
    assert pnl["funding"] == D("1.55") and pnl["funding_payments"] == 2
    assert pnl["funding_exchange"] == D("0.31")
    assert pnl["net"] == pnl["gross"] - pnl["fees"] + pnl["funding"]
    assert rep["by_symbol"]["BTCUSDT"]["slippage"] == D("0.00010")
    assert _report(journal, (MONDAY - dt.timedelta(days=1)).date())["pnl"]["funding"] == D("9")


def test_model_figures(journal: Path):
    m = _report(journal, MONDAY.date(), psi_reference=60)["model"]
    assert (m["predictions"], m["resolved"], m["unresolved"]) == (44, 4, 40)
    assert m["class_counts"] == {"down": 1, "flat": 1, "up": 2}
    # Brier: 0.38 (flat), 0.26 (up), 0.38 (down), 0.96 (up) -> 0.495
    assert m["brier"] == pytest.approx(0.495, abs=1e-12)
    assert m["log_loss"] == pytest.approx(
        -(math.log(0.5) + math.log(0.6) + math.log(0.5) + math.log(0.2)) / 4
    )
    # the baseline: Sunday's labels (down 1, up 2) + 1 each = (2, 1, 3) / 6 for the samples at 10 s and
    # 15 s (the flat at 10 s is known only at 20 s); at 30 s the flat is known: (2, 2, 3) / 7; at 50 s
    # the up (40 s) and the down (35 s) too: (3, 2, 4) / 9
    p = [1 / 6, 3 / 6, 2 / 7, 4 / 9]
    assert m["baseline"]["log_loss"] == pytest.approx(-sum(math.log(x) for x in p) / 4, abs=1e-12)
    b = [(1 / 3) ** 2 + (5 / 6) ** 2 + 0.5**2, (1 / 3) ** 2 + (1 / 6) ** 2 + 0.5**2,
         (5 / 7) ** 2 + (2 / 7) ** 2 + (3 / 7) ** 2, (1 / 3) ** 2 + (2 / 9) ** 2 + (5 / 9) ** 2]  # fmt: skip
    assert m["baseline"]["brier"] == pytest.approx(sum(b) / 4, abs=1e-12)
    # top labels: flat (hit), up (hit), down (hit), down on a tie with flat (miss)
    assert m["hit_rate"] == 0.75
    # IC: ranks of p_up - p_down (0.1, 0.5, -0.3, -0.2) are 3, 4, 1, 2, of the returns 2, 3, 1, 4: 0.4
    assert m["ic"]["overall"] == pytest.approx(0.4) and m["ic"]["ic"] == []
    ev = m["ev"]
    # traded (T+15 s): realised EV exp(0.002) - 1; cost 2 x (fees 0.0002 + slippage 0.00006) / 0.20006
    assert ev["traded"]["n"] == 1 and ev["traded"]["ev_realised"] == pytest.approx(math.expm1(0.002))
    assert ev["traded"]["cost_realised"] == pytest.approx(2 * 0.00026 / 0.20006, rel=1e-12)
    # not traded (T+30 s, short): realised EV -(exp(-0.001) - 1); cost realised = expected
    assert ev["not_traded"]["ev_realised"] == pytest.approx(-math.expm1(-0.001))
    assert ev["not_traded"]["cost_realised"] == ev["not_traded"]["cost_expected"] == 0.0005
    assert ev["all"]["n"] == 2
    # drift: the reference is Sunday's 60 vectors (a = 0..59), the compared Monday's 40 (a = 100..139,
    # all above the reference: the top bin); b is 0 on both sides
    d = m["drift"]["versions"]["7"]
    assert (d["n_ref"], d["n_cur"], d["ref_to_ns"]) == (60, 40, T - 86_400 * S + 69 * S)
    by = {f["name"]: f["psi"] for f in d["features"]}
    assert by["a"] == pytest.approx(0.9 * math.log(10) + 9 * (1e-4 - 0.1) * math.log(1e-3), abs=1e-9)
    assert by["b"] == 0.0 and m["drift"]["top"][0]["name"] == "a"
    html = render_html(_report(journal, MONDAY.date(), psi_reference=60))
    assert "prequential class frequencies" in html and "Feature drift" in html and "0.0001" in html


def test_a_period_without_predictions(journal: Path):
    rep = _report(journal, (MONDAY + dt.timedelta(days=1)).date())
    assert rep["model"] is None
    assert "no prediction journaled in the period" in render_html(rep)
