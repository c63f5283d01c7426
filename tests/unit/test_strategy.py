"""Strategy kernels: fusion arithmetic, every gate with hand-computed numbers, triple-barrier and
trailing exits, the adaptive threshold, and slippage from depth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from orderflow.strategy.config import StrategyConfig
from orderflow.strategy.engine import Strategy
from orderflow.strategy.kernels import walk_slippage

NS = 1_000_000_000
BID = np.array([100.0, 99.99, 99.98])
ASK = np.array([100.01, 100.02, 100.03])
SZ = np.array([1.0, 2.0, 5.0])
# R = rv_bps * 1e-4 * sqrt(60 / 300); rv 150 bps -> R = 0.006708 (EV 0.43 R = 28.8 bps of the mid,
# round-trip cost 1 bp spread + 10 bp fees: 2 x cost = 22 bps, so the default signal passes)
RV = 150.0
R = RV * 1e-4 * math.sqrt(60 / 300)


def decide(s: Strategy, ts: int = 10 * NS, **kw):
    args = dict(ts=ts, valid=True, ofi_z=3.0, p_down=0.1, p_up=0.6, rv_bps=RV, bid_px=BID, bid_sz=SZ,
                ask_px=ASK, ask_sz=SZ, nominal_qty=0.5)  # fmt: skip
    args.update(kw)
    return s.decide(**args)


@pytest.mark.slow
def test_fusion_and_entry_with_hand_computed_numbers():
    s = Strategy(StrategyConfig(target_trades_per_hour=0), taker_fee=0.0005)
    d = decide(s)
    assert d.fused == pytest.approx(0.6 * math.tanh(3.0 / 2.0) + 0.4 * (0.6 - 0.1))
    assert d.action == "enter" and d.side == 1 and d.gate == ""
    assert d.confidence == pytest.approx(0.6 / 0.7)
    assert d.quality == pytest.approx(1.0)
    mid = 100.005
    assert d.ev == pytest.approx(mid * R * (0.6 * 0.9 - 0.1 * 1.1))
    assert d.cost == pytest.approx(0.01 + 2 * 0.0005 * mid + 0.0)  # 0.5 fits in the best level
    sell = decide(Strategy(StrategyConfig(target_trades_per_hour=0)), ofi_z=-3.0, p_down=0.6, p_up=0.1)
    assert sell.action == "enter" and sell.side == -1


def test_no_signal_below_threshold_is_not_counted():
    s = Strategy(StrategyConfig(target_trades_per_hour=0))
    d = decide(s, ofi_z=0.0, p_down=0.3, p_up=0.35)
    assert d.action == "none" and d.gate == "" and s.rejections() == {}


@pytest.mark.parametrize(
    ("kw", "gate"),
    [
        (dict(p_down=0.25, p_up=0.55), "confidence"),  # 0.55 / 0.80 = 0.6875 < 0.70
        (dict(ofi_z=-0.2, p_up=0.98, p_down=0.01), "quality"),  # OFI against: 0.5*0 + 0.25 + 0.25 = 0.5
        (dict(valid=False), "invalid"),
        (dict(rv_bps=float("nan")), "invalid"),
        (dict(book_age_ns=3 * NS), "stale"),
        (dict(trade_age_ns=31 * NS), "stale"),
        (dict(vol_state=2.0, ofi_z=1.2, p_up=0.7, p_down=0.1), "regime"),
    ],
)
def test_each_gate_rejects_and_counts(kw, gate):
    cfg = StrategyConfig(target_trades_per_hour=0)
    if gate == "regime":
        regimes = cfg.regimes.model_copy(update={"allow": (True, True, False), "threshold_mult": (1, 1, 1)})
        cfg = cfg.model_copy(update={"regimes": regimes})
    s = Strategy(cfg)
    d = decide(s, **kw)
    assert d.action == "none" and d.gate == gate
    assert s.rejections() == {f"gate:{gate}": 1}


def test_quality_components():
    s = Strategy(StrategyConfig(target_trades_per_hour=0, quality_gate=0.0, confidence_gate=0.5))
    assert decide(s, ofi_z=0.01, p_up=0.9, p_down=0.02).quality == pytest.approx(0.5 * 0.5 + 0.25 + 0.25)
    s = Strategy(StrategyConfig(target_trades_per_hour=0, quality_gate=0.0, confidence_gate=0.5))
    assert decide(s, trend_state=-1.0).quality == pytest.approx(0.5 + 0.25 + 0.25 * 0.5)


def test_ev_gate_uses_depth_slippage():
    # nominal 4.0 on the ask side: 1.0 @ +0, 2.0 @ +0.01, 1.0 @ +0.02 -> slippage (0.02 + 0.02) / 4 = 0.01
    assert walk_slippage(ASK, SZ, 4.0) == pytest.approx(0.01)
    assert walk_slippage(ASK, SZ, 10.0) == pytest.approx((2 * 0.01 + 7 * 0.02) / 10)  # beyond depth: last px
    s = Strategy(StrategyConfig(target_trades_per_hour=0), taker_fee=0.0005)
    d = decide(s, nominal_qty=4.0)
    mid = 100.005
    cost = 0.01 + 2 * 0.0005 * mid + 2 * 0.01
    ev = mid * R * (0.6 * 0.9 - 0.1 * 1.1)
    assert d.cost == pytest.approx(cost) and d.ev == pytest.approx(ev)
    assert (d.action == "enter") == (ev >= 2 * cost)
    s = Strategy(StrategyConfig(target_trades_per_hour=0), taker_fee=0.0005)
    d = decide(s, rv_bps=80.0)  # smaller R: EV 15.4 bps < 2 x cost 22 bps
    assert d.gate == "ev" and d.ev < 2 * d.cost


def test_pending_and_spot_short():
    s = Strategy(StrategyConfig(target_trades_per_hour=0))
    assert decide(s).action == "enter"
    s.mark_sent("enter")
    assert decide(s).gate == "pending"
    spot = Strategy(StrategyConfig(target_trades_per_hour=0), venue="binance-spot")
    assert decide(spot, ofi_z=-3.0, p_down=0.6, p_up=0.1).gate == "spot_short"


def open_long(s: Strategy, px: float = 100.0):
    d = decide(s)
    assert d.action == "enter"
    s.mark_sent("enter")
    s.on_position(10 * NS, 1.0, px)
    s.mark_done()
    return d


def test_take_profit_stop_and_timeout():
    s = Strategy(StrategyConfig(target_trades_per_hour=0, exit_on_signal=False))
    open_long(s)
    tp, sl = s.barriers
    assert tp == pytest.approx(100 * math.exp(0.9 * R)) and sl == pytest.approx(100 * math.exp(-1.1 * R))
    flat = dict(ofi_z=0.0, p_up=0.3, p_down=0.3)
    assert decide(s, ts=11 * NS, bid_px=BID * 0 + 100.0, **flat).action == "none"
    d = decide(
        s, ts=12 * NS, bid_px=np.array([tp, tp - 0.1, tp - 0.2]), ask_px=np.array([tp + 0.1] * 3), **flat
    )
    assert (d.action, d.side, d.exit_reason) == ("exit", -1, "take_profit")
    s = Strategy(StrategyConfig(target_trades_per_hour=0, exit_on_signal=False))
    open_long(s)
    d = decide(s, ts=12 * NS, bid_px=np.array([sl - 0.01] * 3), ask_px=np.array([sl + 0.1] * 3), **flat)
    assert d.exit_reason == "stop"
    s = Strategy(StrategyConfig(target_trades_per_hour=0, exit_on_signal=False))
    open_long(s)
    assert decide(s, ts=69 * NS, bid_px=BID * 0 + 100.0, **flat).action == "none"
    assert decide(s, ts=70 * NS, bid_px=BID * 0 + 100.0, **flat).exit_reason == "timeout"
    s = Strategy(StrategyConfig(target_trades_per_hour=0, exit_on_signal=False))
    open_long(s)
    assert decide(s, ts=11 * NS, bid_px=BID * 0 + 100.0, risk_exit=True, **flat).exit_reason == "risk"


def test_trailing_stop_and_signal_exit():
    s = Strategy(StrategyConfig(target_trades_per_hour=0, exit_on_signal=False, take_profit_r=5.0))
    open_long(s)
    flat = dict(ofi_z=0.0, p_up=0.3, p_down=0.3)
    high = 100 * math.exp(1.0 * R)  # past trail_start 0.5 R: the stop trails at 0.8 R below the peak
    decide(s, ts=11 * NS, bid_px=np.array([high] * 3), ask_px=np.array([high + 0.1] * 3), **flat)
    assert s.barriers[1] == pytest.approx(high * math.exp(-0.8 * R))
    lower = high * math.exp(-0.81 * R)
    d = decide(s, ts=12 * NS, bid_px=np.array([lower] * 3), ask_px=np.array([lower + 0.1] * 3), **flat)
    assert d.exit_reason == "stop" and lower > 100.0  # the trailing stop locked in a gain
    s = Strategy(StrategyConfig(target_trades_per_hour=0))
    open_long(s)
    d = decide(s, ts=11 * NS, bid_px=BID * 0 + 100.0, ofi_z=-3.0, p_up=0.1, p_down=0.6)
    assert d.exit_reason == "signal"


def test_adaptive_threshold_moves_toward_target_within_bounds():
    s = Strategy(StrategyConfig(target_trades_per_hour=4.0, adapt_every_s=900.0, adapt_step=0.1))
    quiet = dict(ofi_z=0.0, p_up=0.3, p_down=0.3)
    decide(s, ts=0, **quiet)
    for k in range(1, 20):  # no entries: the threshold falls to its floor 0.7
        decide(s, ts=k * 900 * NS, **quiet)
    assert s.threshold_mult == pytest.approx(0.7)
    s = Strategy(StrategyConfig(target_trades_per_hour=4.0, adapt_every_s=900.0, adapt_step=0.1))
    decide(s, ts=0, **quiet)
    for _ in range(5):
        s.mark_sent("enter")  # 5 entries in 15 min = 20 per hour > 4
        s.mark_done()
    decide(s, ts=900 * NS, **quiet)
    assert s.threshold_mult == pytest.approx(1.1)


def test_config_validation():
    with pytest.raises(ValidationError, match="w_ofi"):
        StrategyConfig(w_ofi=0.6, w_ai=0.6)
    with pytest.raises(ValidationError):
        StrategyConfig(confidence_gate=0.4)
    with pytest.raises(ValidationError):
        StrategyConfig(threhold=0.2)  # unknown key
