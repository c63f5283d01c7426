"""Backtest metrics: every figure checked against hand arithmetic; empty runs; validation; window chaining."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.backtest.metrics import (
    METRIC_KEYS,
    bar_closes,
    combine_windows,
    compute_metrics,
    metrics_table,
)

NS = 1_000_000_000
DAY_S = 86_400
T0 = 1_700_000_040 * NS  # a whole minute: 1_700_000_040 / 60 = 28_333_334


def s(sec: float) -> int:
    return T0 + int(sec * NS)


# Equity samples (seconds after T0). 1-minute bars: [0,60) [60,120) [120,180) [180,240) [240,300) [300,360)
EQUITY = pd.DataFrame(
    {
        "ts": [s(0), s(30), s(90), s(190), s(230), s(270), s(330)],
        "equity": [10_000.0, 10_000.0, 10_200.0, 9_690.0, 9_792.0, 10_281.6, 10_178.784],
        "position": [0.0, 100.0, 0.0, -50.0, -50.0, 0.0, 0.0],
        "price": [100.0, 100.0, 102.0, 104.0, 105.0, 106.0, 105.0],
        "regime": ["range", "trend", "trend", "trend", "trend", "range", "range"],
    }
)
TRADES = pd.DataFrame(
    {
        "entry_ts": [s(30), s(190), s(280)],
        "exit_ts": [s(90), s(270), s(320)],
        "side": [1, -1, 1],
        "qty": [100.0, 50.0, 10.0],
        "entry_px": [100.0, 104.0, 100.0],
        "exit_px": [102.0, 106.0, 105.0],
        "gross_pnl": [200.0, -100.0, 50.0],
        "fees": [8.0, 4.0, 1.0],
        "slippage": [3.0, 2.0, 0.5],
        "funding": [0.0, 1.0, -0.5],
        "net_pnl": [192.0, -105.0, 49.5],  # 200-8-0, -100-4-1, 50-1+0.5
        "exit_reason": ["take_profit", "stop", "timeout"],
        "regime": ["trend", "trend", "range"],
    }
)
FILLS = pd.DataFrame(
    {
        "ts": [s(30), s(90), s(190), s(270), s(280), s(320)],
        "side": [1, -1, -1, 1, 1, -1],
        "qty": [100.0, 100.0, 50.0, 50.0, 10.0, 10.0],
        "price": [100.0, 102.0, 104.0, 106.0, 100.0, 105.0],
        "fee": [4.0, 4.0, 2.0, 2.0, 0.5, 0.5],
        "maker": [False, True, False, False, True, True],
    }
)
REJ = {"risk:max_trades_24h": 3, "gate:confidence": 812}


def run(equity=EQUITY, trades=TRADES, fills=FILLS, rej=REJ, initial=10_000.0, freq="1min"):
    return compute_metrics(equity, trades, fills, rej, initial, freq=freq)


def test_hand_computed_run() -> None:
    m = run()
    # period: 330 s = 330/86400 days
    days = 330 / DAY_S
    assert m["start_ts"] == s(0) and m["end_ts"] == s(330)
    assert m["period_days"] == pytest.approx(days)
    # trades: 3, two winners (192, 49.5), one loser (-105)
    assert m["trades"] == 3
    assert m["trades_per_day"] == pytest.approx(3 / days)
    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["gross_pnl"] == pytest.approx(150.0)  # 200 - 100 + 50
    assert m["net_pnl"] == pytest.approx(136.5)  # 192 - 105 + 49.5
    assert m["fees"] == pytest.approx(13.0)  # 8 + 4 + 1
    assert m["slippage"] == pytest.approx(5.5)  # 3 + 2 + 0.5
    assert m["funding"] == pytest.approx(0.5)  # 0 + 1 - 0.5
    assert m["avg_pnl_per_trade"] == pytest.approx(45.5)  # 136.5 / 3
    assert m["profit_factor"] == pytest.approx(2.3)  # (192 + 49.5) / 105
    assert m["cost_share"] == pytest.approx(19 / 150)  # (13 + 5.5 + 0.5) / |150|
    assert m["buy_sell_balance"] == pytest.approx(2 / 3)  # 2 longs of 3
    assert m["avg_win"] == pytest.approx(120.75) and m["avg_loss"] == pytest.approx(-105.0)
    assert m["avg_holding_s"] == pytest.approx((60 + 80 + 40) / 3)
    assert m["exit_reasons"] == {"stop": 1, "take_profit": 1, "timeout": 1}

    # 1-min bar closes: 10000 | 10200 | (empty bar, ffill) 10200 | 9792 | 10281.6 | 10178.784
    # returns: 0.02, 0, -0.04, 0.05, -0.01 (10281.6 = 9792 * 1.05, 10178.784 = 10281.6 * 0.99)
    r = [0.02, 0.0, -0.04, 0.05, -0.01]
    assert m["bars"] == 5
    mean = 0.004  # 0.02 / 5
    # deviations 0.016, -0.004, -0.044, 0.046, -0.014; squares sum 0.00452; / (5-1) = 0.00113
    sd = math.sqrt(0.00113)
    k = math.sqrt(365 * 1440)  # 525,600 one-minute bars per year
    assert m["sharpe"] == pytest.approx(mean / sd * k)
    assert m["ann_volatility"] == pytest.approx(sd * k)
    # downside over all 5 bars: (0.04^2 + 0.01^2) / 5 = 0.00034
    assert m["sortino"] == pytest.approx(mean / math.sqrt(0.00034) * k)
    # sorted r: -0.04, -0.01, 0, 0.02, 0.05; 5% quantile at position 0.05*4 = 0.2: -0.04 + 0.2*0.03 = -0.034
    assert m["var95"] == pytest.approx(0.034)
    assert m["cvar95"] == pytest.approx(0.04)  # only -0.04 is <= -0.034
    assert sorted(r)[0] == -0.04

    # drawdown on raw samples: peak 10200 (t=90) to 9690 (t=190): 510 / 10200 = 0.05 (the bar close
    # 9792 alone would give 0.04); below the peak from t=90 until 10281.6 at t=270: 180 s
    assert m["max_drawdown"] == pytest.approx(0.05)
    assert m["max_drawdown_duration_days"] == pytest.approx(180 / DAY_S)
    total = 10_178.784 / 10_000 - 1  # 0.0178784
    assert m["return_pct"] == pytest.approx(100 * total)
    assert m["annual_return"] == pytest.approx(total * 365 / days)
    assert m["calmar"] == pytest.approx(total * 365 / days / 0.05)

    # position non-zero on [30, 90) and [190, 270): 60 + 80 = 140 s of 330 s
    assert m["exposure"] == pytest.approx(140 / 330)
    # regime time: range [0,30) + [270,330) = 90 s, trend [30,270) = 240 s
    assert m["regime_time_share"] == pytest.approx({"range": 90 / 330, "trend": 240 / 330})
    # fill notional: 10000 + 10200 + 5200 + 5300 + 1000 + 1050 = 32750 -> / 10000 / days
    assert m["traded_notional"] == pytest.approx(32_750.0)
    assert m["turnover"] == pytest.approx(32_750 / 10_000 / days)
    assert m["maker_share"] == pytest.approx((10_200 + 1_000 + 1_050) / 32_750)
    assert m["fills"] == 6 and m["fill_fees"] == pytest.approx(13.0)

    assert m["per_regime"] == {
        "range": {"trades": 1, "win_rate": 1.0, "net_pnl": 49.5, "avg_pnl_per_trade": 49.5},
        "trend": {"trades": 2, "win_rate": 0.5, "net_pnl": pytest.approx(87.0), "avg_pnl_per_trade": 43.5},
    }
    assert m["rejections"] == {"gate:confidence": 812, "risk:max_trades_24h": 3}
    assert m["rejections_total"] == 815
    assert set(METRIC_KEYS) <= set(m)
    json.dumps(m, allow_nan=False)


def test_other_freq_changes_bars_and_annualisation() -> None:
    # 2-minute bars [0,120) [120,240) [240,360): closes 10200, 9792, 10178.784
    m = run(freq="2min")
    r = np.array([9792 / 10200 - 1, 10178.784 / 9792 - 1])  # -0.04, 0.0395
    k = math.sqrt(365 * 720)
    assert m["bars"] == 2
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * k)
    assert m["sortino"] == pytest.approx(r.mean() / math.sqrt(0.04**2 / 2) * k)


def test_bar_closes_forward_fill_and_alignment() -> None:
    ts = np.array([s(59), s(61), s(250)])
    closes = bar_closes(ts, np.array([1.0, 2.0, 3.0]), 60 * NS)
    assert closes.tolist() == [1.0, 2.0, 2.0, 2.0, 3.0]  # bars 0..4, bars 2 and 3 empty


def test_datetime_ts_accepted() -> None:
    eq = EQUITY.assign(ts=pd.to_datetime(EQUITY["ts"], unit="ns", utc=True))
    m = run(equity=eq)
    assert m["start_ts"] == s(0) and m["exposure"] == pytest.approx(140 / 330)


def test_empty_run_is_well_defined() -> None:
    one = EQUITY.iloc[:1]
    m = run(equity=one, trades=pd.DataFrame(), fills=pd.DataFrame(), rej={})
    assert m["trades"] == 0 and m["fills"] == 0
    undefined = (
        "win_rate avg_pnl_per_trade profit_factor sharpe sortino var95 cvar95 calmar exposure turnover"
    )
    undefined += " cost_share buy_sell_balance trades_per_day"
    for key in undefined.split():
        assert m[key] is None, key
    assert m["gross_pnl"] == 0.0 and m["net_pnl"] == 0.0 and m["max_drawdown"] == 0.0
    assert m["period_days"] == 0.0 and m["return_pct"] == 0.0
    assert m["per_regime"] == {} and m["rejections"] == {} and m["rejections_total"] == 0
    assert set(METRIC_KEYS) <= set(m)
    text = json.dumps(m, allow_nan=False)
    assert json.loads(text) == m
    # zero-row frames with the right columns are the same as no frame
    m2 = run(equity=one, trades=TRADES.iloc[:0], fills=FILLS.iloc[:0], rej={})
    assert m2["trades"] == 0 and m2["per_regime"] == {}


def test_flat_period_no_trades_gives_no_nan() -> None:
    eq = pd.DataFrame({"ts": [s(0), s(600)], "equity": [1_000.0, 1_000.0], "position": [0.0, 0.0],
                       "price": [10.0, 10.0]})  # fmt: skip
    m = run(equity=eq, trades=pd.DataFrame(), fills=pd.DataFrame(), rej={}, initial=1_000.0)
    assert m["bars"] == 10 and m["sharpe"] is None and m["sortino"] is None
    assert m["var95"] == 0.0 and m["cvar95"] == 0.0 and m["exposure"] == 0.0 and m["turnover"] == 0.0
    json.dumps(m, allow_nan=False)


def test_all_winners_and_zero_drawdown() -> None:
    eq = pd.DataFrame({"ts": [s(0), s(60), s(120)], "equity": [10_000.0, 10_050.0, 10_100.0],
                       "position": [1.0, 1.0, 0.0], "price": [100.0, 100.5, 101.0]})  # fmt: skip
    tr = TRADES.iloc[[0, 2]]
    m = run(equity=eq, trades=tr)
    assert m["win_rate"] == 1.0
    assert m["profit_factor"] is None  # no losing trade: undefined (infinite), reported as None
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_duration_days"] == 0.0
    assert m["calmar"] is None  # max_drawdown 0
    assert m["sortino"] is None  # no bar below 0
    assert m["per_regime"]["trend"]["win_rate"] == 1.0


def test_all_losers_profit_factor_zero() -> None:
    tr = TRADES.iloc[[1]]
    assert run(trades=tr)["profit_factor"] == 0.0


@pytest.mark.parametrize(
    ("frame", "drop", "arg"),
    [("equity", "position", "equity"), ("trades", "net_pnl", "trades"), ("fills", "maker", "fills")],
)
def test_missing_column_is_named(frame: str, drop: str, arg: str) -> None:
    src = {"equity": EQUITY, "trades": TRADES, "fills": FILLS}[frame]
    with pytest.raises(ValueError, match=rf"{frame}: missing column\(s\) \['{drop}'\]"):
        run(**{arg: src.drop(columns=[drop])})


def test_bad_rows_are_reported_with_numbers() -> None:
    bad = TRADES.copy()
    bad.loc[1, "net_pnl"] = -104.0
    msg = r"net_pnl != gross_pnl - fees - funding; first at row 1.*net_pnl=-104"
    with pytest.raises(ValueError, match=msg):
        run(trades=bad)
    with pytest.raises(
        ValueError, match=r"equity: 1 row.*ts decreases; first at row 2: ts=1700000070000000000"
    ):
        run(equity=EQUITY.iloc[[0, 2, 1]])
    with pytest.raises(ValueError, match=r"fills: 1 row.*qty <= 0"):
        run(fills=FILLS.assign(qty=[100.0, 0.0, 50.0, 50.0, 10.0, 10.0]))
    with pytest.raises(ValueError, match="equity: no rows"):
        run(equity=EQUITY.iloc[:0])
    with pytest.raises(ValueError, match="initial_equity"):
        run(initial=0.0)
    with pytest.raises(ValueError, match="rejections"):
        run(rej={"gate:x": -1})


def test_metrics_table_flattens() -> None:
    t = metrics_table(run())
    assert list(t.columns) == ["name", "value"]
    table = dict(zip(t["name"], t["value"], strict=True))
    assert table["trades"] == "3"
    assert table["per_regime.trend.net_pnl"] == "87"
    assert table["rejections.gate:confidence"] == "812"
    assert table["start_ts"] == "2023-11-14T22:14:00+00:00"
    assert t["name"].iloc[0] == "trades"  # documented keys first
    empty = metrics_table(run(equity=EQUITY.iloc[:1], trades=pd.DataFrame(), fills=pd.DataFrame(), rej={}))
    assert dict(zip(empty["name"], empty["value"], strict=True))["sharpe"] == "n/a"


def window(t0_s: float, values: list[float], pnl: float, rej: dict[str, int]):
    eq = pd.DataFrame({"ts": [s(t0_s + 60 * i) for i in range(len(values))], "equity": values,
                       "position": [0.0] * len(values), "price": [100.0] * len(values)})  # fmt: skip
    tr = TRADES.iloc[[0]].assign(entry_ts=s(t0_s), exit_ts=s(t0_s + 30), gross_pnl=pnl + 8.0, net_pnl=pnl)
    fl = FILLS.iloc[:2].assign(ts=[s(t0_s), s(t0_s + 30)])
    return eq, tr, fl, rej


def test_combine_windows_chains_equity() -> None:
    w0 = window(0, [10_000.0, 10_100.0], 100.0, {"gate:confidence": 5})
    w1 = window(600, [10_000.0, 9_950.0, 10_050.0], 50.0, {"gate:confidence": 2, "risk:dd": 1})
    w2 = window(1200, [10_000.0, 10_000.0], 0.0, {})
    eq, tr, fl, rej = combine_windows([w0, w1, w2])
    # w1 starts at w0's end 10100: shift +100; w2 starts at w1's end 10150: shift +150
    assert eq["equity"].tolist() == [10_000.0, 10_100.0, 10_100.0, 10_050.0, 10_150.0, 10_150.0, 10_150.0]
    assert eq["window"].tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert len(tr) == 3 and tr["window"].tolist() == [0, 1, 2] and len(fl) == 6
    assert rej == {"gate:confidence": 7, "risk:dd": 1}
    m = compute_metrics(eq, tr, fl, rej, 10_000.0)
    assert m["net_pnl"] == pytest.approx(150.0) == m["final_equity"] - 10_000.0
    # peak 10100 (end of w0) to 10050 inside w1
    assert m["max_drawdown"] == pytest.approx(50 / 10_100)
    with pytest.raises(ValueError, match="time-ordered"):
        combine_windows([w1, w0])
    with pytest.raises(ValueError, match="no windows"):
        combine_windows([])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1.0, max_value=1e6, allow_nan=False), min_size=1, max_size=40))
def test_max_drawdown_equals_brute_force(values: list[float]) -> None:
    n = len(values)
    eq = pd.DataFrame({"ts": [s(i) for i in range(n)], "equity": values, "position": [0.0] * n,
                       "price": [1.0] * n})  # fmt: skip
    m = compute_metrics(eq, pd.DataFrame(), pd.DataFrame(), {}, values[0], freq="1s")
    brute = max((values[i] - values[j]) / values[i] for i in range(n) for j in range(i, n))
    assert m["max_drawdown"] == pytest.approx(max(brute, 0.0), abs=1e-12)
    assert 0.0 <= m["max_drawdown"] < 1.0
    json.dumps(m, allow_nan=False)
