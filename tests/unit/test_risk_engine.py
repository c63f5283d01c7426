"""Risk engine rules through the Python wrapper, one test per rule, numbers chosen by hand.

Common numbers: equity 100,000 USDT, BTC at 50,000, stop 500 away, lot 0.001. Full-confidence size =
0.02 * 100,000 / 500 = 4 BTC (loss at the stop 2,000 = 2 % of equity)."""

from __future__ import annotations

import math

import pytest

from orderflow.risk.config import RiskConfig
from orderflow.risk.engine import RiskEngine
from orderflow.risk.layout import RULES

NS = 1_000_000_000
DAY = 86_400 * NS
DAY0 = 1_704_067_200 * NS  # 2024-01-01 00:00:00 UTC
T0 = DAY0 + 12 * 3600 * NS  # noon

# caps far away: only the rule under test binds
LOOSE = {"max_position": 100.0, "max_capital_in_use": 100.0, "var95_limit": 1.0}


def engine(**cfg) -> RiskEngine:
    return RiskEngine(RiskConfig(**cfg))


def entry(eng: RiskEngine, **kw):
    args = {
        "ts": T0,
        "side": 1,
        "price": 50_000.0,
        "stop_dist": 500.0,
        "confidence": 0.9,
        "vol_horizon": 0.0,
        "vol_pct": 0.5,
        "equity": 100_000.0,
        "lot_size": 0.001,
        "pos_qty": 0.0,
        "other_gross_notional": 0.0,
        "min_notional": 5.0,
    }
    args.update(kw)
    return eng.check_entry(**args)


def test_loss_at_stop_is_max_loss_times_confidence_scale():
    eng = engine(**LOOSE)
    # scale: 0.25 at the floor 0.5, linear to 1 at 0.9, 1 above
    for conf, scale in [(0.5, 0.25), (0.7, 0.625), (0.9, 1.0), (1.0, 1.0)]:
        d = entry(eng, confidence=conf)
        assert d.approved and d.rule == "ok" and d.resized_by is None
        assert d.qty == pytest.approx(4.0 * scale)
        loss = d.qty * 500.0
        assert loss == pytest.approx(0.02 * 100_000.0 * scale)
        assert d.value == pytest.approx(0.02 * scale) and d.limit == 0.02
    assert "loss at the stop 2.00% of equity" in entry(eng).message


def test_confidence_below_floor_is_refused():
    eng = engine(**LOOSE)
    d = entry(eng, confidence=0.49)
    assert not d.approved and d.qty == 0.0 and d.rule == "confidence"
    assert (d.value, d.limit) == (0.49, 0.5)
    assert entry(eng, confidence=math.nan).rule == "confidence"
    assert eng.refusals["confidence"] == 2


def test_max_position_cap_resizes_then_refuses():
    eng = engine()  # default max_position 5 %: 5,000 USDT = 0.1 BTC
    d = entry(eng)
    assert d.approved and d.qty == pytest.approx(0.1) and d.resized_by == "max_position"
    assert d.value == pytest.approx(0.05) and d.limit == 0.05
    assert "resized by max_position" in d.message
    eng.record_entry(ts=T0, side=1, is_add=False)
    # an add with 0.06 held: room for 0.04
    d = entry(eng, ts=T0 + 10 * NS, pos_qty=0.06)
    assert d.approved and d.qty == pytest.approx(0.04) and d.resized_by == "max_position"
    # full: the smallest entry (1 lot) would make 5.05 %
    d = entry(eng, ts=T0 + 10 * NS, pos_qty=0.1)
    assert not d.approved and d.rule == "max_position"
    assert d.value == pytest.approx(0.0505) and d.limit == 0.05


def test_capital_in_use_cap():
    eng = engine(max_position=100.0, var95_limit=1.0)  # capital in use 50 %
    d = entry(eng, other_gross_notional=45_000.0)  # room: 5,000 USDT = 0.1 BTC
    assert d.approved and d.qty == pytest.approx(0.1) and d.resized_by == "max_capital"
    assert d.value == pytest.approx(0.5) and d.limit == 0.5
    d = entry(eng, other_gross_notional=50_000.0)
    assert not d.approved and d.rule == "max_capital"
    assert d.value == pytest.approx(0.5005) and d.limit == 0.5


def test_var95_cap():
    eng = engine(max_position=100.0, max_capital_in_use=100.0)  # VaR 2 %
    # 1.645 * 0.01 * q * 50,000 <= 2,000  ->  q <= 2.4316 -> 2.431 on the lot grid
    d = entry(eng, vol_horizon=0.01)
    assert d.approved and d.resized_by == "var95" and d.qty == pytest.approx(2.431)
    assert d.value == pytest.approx(1.645 * 0.01 * 2.431 * 50_000 / 100_000) and d.value <= 0.02
    # no volatility given: no VaR bound
    assert entry(eng, vol_horizon=0.0).qty == pytest.approx(4.0)
    # the tightest cap wins: position 1 % of equity (0.02 BTC) beats the VaR bound
    d = entry(engine(max_position=0.01, max_capital_in_use=100.0), vol_horizon=0.01)
    assert d.resized_by == "max_position" and d.qty == pytest.approx(0.02)


def test_daily_breaker_halts_after_5pct_and_resets_at_next_utc_midnight():
    eng = engine(**LOOSE)
    assert eng.on_equity(ts=T0, equity=100_000.0) is None
    assert eng.on_equity(ts=T0 + NS, equity=95_001.0) is None
    assert entry(eng, ts=T0 + NS, equity=95_001.0).approved
    alert = eng.on_equity(ts=T0 + 2 * NS, equity=95_000.0)  # exactly -5 %
    assert alert is not None and alert.rule == "daily_drawdown"
    assert alert.value == pytest.approx(0.05) and alert.limit == 0.05
    assert eng.on_equity(ts=T0 + 3 * NS, equity=94_000.0) is None  # reported once
    d = entry(eng, ts=T0 + 4 * NS, equity=99_000.0)  # recovered, still halted today
    assert not d.approved and d.rule == "daily_drawdown" and d.value == pytest.approx(0.05)
    assert "until 00:00 UTC" in d.message
    assert eng.state()["halted"] and eng.state()["breaker_trips"] == 1
    assert entry(eng, ts=DAY0 + DAY - 1, equity=99_000.0).rule == "daily_drawdown"
    d = entry(eng, ts=DAY0 + DAY, equity=99_000.0)  # 00:00 UTC: new day, start equity 99,000
    assert d.approved
    st = eng.state()
    assert not st["halted"] and st["day_start_equity"] == 99_000.0
    # the new day's breaker measures from its own start
    assert eng.on_equity(ts=DAY0 + DAY + NS, equity=94_051.0) is None  # -4.999 %
    assert eng.on_equity(ts=DAY0 + DAY + 2 * NS, equity=94_050.0) is not None  # -5 % of 99,000


def test_min_interval_between_entries():
    eng = engine(**LOOSE)
    eng.record_entry(ts=T0, side=1, is_add=False)
    eng.record_flat()
    d = entry(eng, ts=T0 + 5 * NS - 1)
    assert not d.approved and d.rule == "min_interval"
    assert d.value == pytest.approx(4.999999999) and d.limit == 5.0
    assert entry(eng, ts=T0 + 5 * NS).approved


def test_rolling_24h_count():
    eng = engine(max_trades_24h=3, min_trade_interval_s=0.0, **LOOSE)
    for k in range(3):
        eng.record_entry(ts=T0 + k * NS, side=1, is_add=False)
    assert eng.entries_24h(T0 + DAY) == 3
    d = entry(eng, ts=T0 + DAY)  # the first entry is still in [ts - 24 h, ts]
    assert not d.approved and d.rule == "max_trades_24h"
    assert d.message == "refused by max_trades_24h: 3 entries in the last 24 h, limit 3"
    assert entry(eng, ts=T0 + DAY + 1).approved  # 24 h + 1 ns after the first
    eng.record_entry(ts=T0 + DAY + 1, side=1, is_add=False)
    assert entry(eng, ts=T0 + NS + DAY).rule == "max_trades_24h"  # the second is still inside
    assert entry(eng, ts=T0 + NS + DAY + 1).approved


def test_max_trades_24h_message_at_defaults():
    eng = engine(**LOOSE)
    for k in range(500):
        eng.record_entry(ts=T0 + k * 5 * NS, side=1, is_add=False)
    d = entry(eng, ts=T0 + 500 * 5 * NS)
    assert d.message == "refused by max_trades_24h: 500 entries in the last 24 h, limit 500"
    assert (d.value, d.limit) == (500.0, 500.0)


def test_max_adds_and_add_size_factor():
    eng = engine(**LOOSE)
    first = entry(eng)
    assert first.qty == pytest.approx(4.0)
    eng.record_entry(ts=T0, side=1, is_add=False)
    for k in (1, 2):
        d = entry(eng, ts=T0 + 10 * k * NS, pos_qty=4.0)
        assert d.approved and d.qty == pytest.approx(2.0)  # add_size_factor 0.5
        eng.record_entry(ts=T0 + 10 * k * NS, side=1, is_add=True)
    d = entry(eng, ts=T0 + 30 * NS, pos_qty=8.0)
    assert not d.approved and d.rule == "max_adds" and (d.value, d.limit) == (2.0, 2.0)
    eng.record_flat()
    assert entry(eng, ts=T0 + 30 * NS, pos_qty=0.0).qty == pytest.approx(4.0)  # a new position


def test_opposite_position_is_refused():
    d = entry(engine(**LOOSE), pos_qty=-0.5, side=1)
    assert not d.approved and d.rule == "opposite_position" and d.value == -0.5
    assert "exit it first" in d.message


def test_high_vol_factor_and_block():
    eng = engine(**LOOSE)
    assert entry(eng, vol_pct=0.9499).qty == pytest.approx(4.0)
    d = entry(eng, vol_pct=0.95)  # at the percentile: halved
    assert d.approved and d.qty == pytest.approx(2.0) and d.resized_by == "high_vol"
    blocked = engine(high_vol_size_factor=0.0, **LOOSE)
    assert entry(blocked, vol_pct=0.9).approved
    d = entry(blocked, vol_pct=0.96)
    assert not d.approved and d.rule == "high_vol" and (d.value, d.limit) == (0.96, 0.95)


def test_kill_switch_modes():
    eng = engine(**LOOSE)
    eng.kill("reduce_only")
    d = entry(eng)
    assert not d.approved and d.rule == "kill_switch" and "reduce_only" in d.message
    assert eng.check_exit(ts=T0, qty=1.0).approved
    eng.kill("halt")
    assert entry(eng).rule == "kill_switch"
    x = eng.check_exit(ts=T0, qty=1.0)
    assert not x.approved and x.rule == "kill_switch" and x.qty == 0.0
    eng.kill("off")
    assert entry(eng).approved and eng.check_exit(qty=1.0).approved
    assert eng.refusals["kill_switch"] == 3 and eng.state()["kill_mode"] == "off"
    with pytest.raises(ValueError, match="unknown kill mode"):
        eng.kill("panic")  # type: ignore[arg-type]


def test_lot_rounding_and_min_notional():
    eng = engine(**LOOSE)
    # 2,000 / 300 = 6.666.. BTC, rounded DOWN to the lot
    assert entry(eng, stop_dist=300.0, lot_size=0.01).qty == pytest.approx(6.66)
    assert entry(eng, stop_dist=300.0, lot_size=1.0).qty == pytest.approx(6.0)
    # equity 100 (a fresh engine: check_entry observes equity, and 100k -> 100 would trip the breaker):
    # 2 / 500 = 0.004 BTC = 200 USDT
    eng = engine(**LOOSE)
    d = entry(eng, equity=100.0, min_notional=250.0)
    assert not d.approved and d.rule == "min_size"
    assert d.value == pytest.approx(200.0) and d.limit == pytest.approx(250.0)
    d = entry(eng, equity=100.0, lot_size=0.01)  # under one lot
    assert d.rule == "min_size" and d.limit == pytest.approx(500.0)
    # a cap cut the size under one lot: refused with the cap's code
    d = entry(engine(), equity=100.0)  # max_position 5 % = 5 USDT < one lot (50 USDT)
    assert not d.approved and d.rule == "max_position"
    assert d.value == pytest.approx(0.5) and d.limit == 0.05


def test_max_holding_time():
    eng = engine()
    eng.record_entry(ts=T0, side=1, is_add=False)
    assert eng.exit_due(ts=T0 + 600 * NS, pos_qty=0.1) is None
    alert = eng.exit_due(ts=T0 + 600 * NS + 1, pos_qty=0.1)
    assert alert is not None and alert.rule == "max_holding" and alert.limit == 600.0
    assert alert.value == pytest.approx(600.000000001)
    assert eng.exit_due(ts=T0 + 700 * NS, pos_qty=0.0) is None
    eng.record_flat()
    # a position nobody recorded (found at start-up) starts its clock at the first call
    assert eng.exit_due(ts=T0 + 1000 * NS, pos_qty=-0.2) is None
    assert eng.exit_due(ts=T0 + 1601 * NS, pos_qty=-0.2) is not None


def test_bad_inputs_are_refusals_naming_the_input():
    eng = engine(**LOOSE)
    d = entry(eng, price=math.nan)
    assert d.rule == "bad_input" and d.message.startswith("refused by bad_input: price = nan")
    assert entry(eng, side=0).message.startswith("refused by bad_input: side = 0")
    assert entry(eng, stop_dist=0.0).message.startswith("refused by bad_input: stop_dist")
    assert entry(eng, vol_pct=math.nan).message.startswith("refused by bad_input: vol_pct")
    assert eng.refusals["bad_input"] == 4


def test_state_snapshot_and_refusal_counts():
    eng = engine(**LOOSE)
    eng.on_equity(ts=T0, equity=100_000.0)
    eng.record_entry(ts=T0, side=-1, is_add=False)
    entry(eng, ts=T0 + NS, side=-1, pos_qty=-1.0)  # min_interval
    st = eng.state()
    assert st["position_open"] and st["position_side"] == -1 and st["position_open_ts"] == T0
    assert st["entries_24h"] == 1 and st["last_entry_ts"] == T0 and st["adds"] == 0
    assert st["refusals"]["min_interval"] == 1 and sum(st["refusals"].values()) == 1
    assert set(st["refusals"]) == set(RULES) - {"ok"}
