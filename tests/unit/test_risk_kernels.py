"""Risk config and kernels: YAML defaults, validation, the config array, the kernels called from a
compiled loop (as the backtester does) against the Python wrapper, and sizing invariants."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from orderflow.risk import kernels as RK
from orderflow.risk import layout as RL
from orderflow.risk.config import RiskConfig, RiskConfigError
from orderflow.risk.engine import RiskEngine
from orderflow.risk.layout import RULES

REPO_RISK_YAML = Path(__file__).resolve().parents[2] / "config" / "risk.yaml"
NS = 1_000_000_000
T0 = 1_704_067_200 * NS + 12 * 3600 * NS  # 2024-01-01 12:00 UTC


# ------------------------------------------------------------------------------------------ config
def test_repo_yaml_equals_defaults_and_lists_every_field():
    assert RiskConfig.from_yaml(REPO_RISK_YAML) == RiskConfig()
    raw = yaml.safe_load(REPO_RISK_YAML.read_text())
    assert list(raw) == ["risk"]
    assert set(raw["risk"]) == set(RiskConfig.model_fields)
    assert all(raw["risk"][k] == getattr(RiskConfig(), k) for k in RiskConfig.model_fields)


def test_unknown_keys_are_errors_naming_the_key(tmp_path):
    p = tmp_path / "risk.yaml"
    p.write_text("risk:\n  max_los_per_trade: 0.02\n")
    with pytest.raises(RiskConfigError, match=r"risk\.max_los_per_trade: unknown key"):
        RiskConfig.from_yaml(p)
    p.write_text("rsik:\n  max_adds: 1\n")
    with pytest.raises(RiskConfigError, match="rsik: unknown key"):
        RiskConfig.from_yaml(p)
    p.write_text("risk:\n  max_adds: 1\n")
    assert RiskConfig.from_yaml(p).max_adds == 1


def test_max_loss_per_trade_out_of_range_names_the_field(tmp_path):
    for bad in (0.009, 0.031, 0.05):
        with pytest.raises(ValidationError, match="max_loss_per_trade"):
            RiskConfig(max_loss_per_trade=bad)
    assert RiskConfig(max_loss_per_trade=0.01).max_loss_per_trade == 0.01
    assert RiskConfig(max_loss_per_trade=0.03).max_loss_per_trade == 0.03
    p = tmp_path / "risk.yaml"
    p.write_text("risk:\n  max_loss_per_trade: 0.04\n")
    with pytest.raises(RiskConfigError, match=r"risk\.max_loss_per_trade: Input should be less than"):
        RiskConfig.from_yaml(p)
    with pytest.raises(ValidationError, match="confidence_full"):
        RiskConfig(confidence_floor=0.6, confidence_full=0.6)
    with pytest.raises(ValidationError, match="extra"):
        RiskConfig(max_adds=1, kill="halt")  # type: ignore[call-arg]


def test_config_record():
    rec = RiskConfig(max_holding_s=1.5, min_trade_interval_s=0.25).to_record()
    assert rec.shape == (1,) and rec.dtype.names is not None
    C = rec[0]
    assert C["max_holding_ns"] == 1_500_000_000 and C["min_trade_interval_ns"] == 250_000_000
    assert C["max_loss_per_trade"] == 0.02 and C["max_trades_24h"] == 500 and C["high_vol_size_factor"] == 0.5
    assert len(RULES) == RL.N_RULES and RULES[RL.MAX_HOLDING] == "max_holding"


def test_confidence_scale_kernel():
    C = RiskConfig().to_record()[0]
    assert RK.confidence_scale(C, 0.4999) == 0.0
    assert RK.confidence_scale(C, math.nan) == 0.0
    assert RK.confidence_scale(C, 0.5) == pytest.approx(0.25)
    assert RK.confidence_scale(C, 0.8) == pytest.approx(0.8125)
    assert RK.confidence_scale(C, 0.95) == 1.0


# ------------------------------------------------------------------------------------------ kernels
def _arrays(cfg: RiskConfig):
    ring = np.zeros(cfg.max_trades_24h, np.int64)
    return np.zeros(RL.N_S, np.int64), np.zeros(RL.N_F), ring, cfg.to_record()[0]


def test_check_entry_kernel_returns_numbers_and_counts_refusals():
    S, F, ring, C = _arrays(RiskConfig())
    args = (T0, 1, 50_000.0, 500.0, 0.9, 0.0, 0.5, 100_000.0, 0.0, 0.0, 0.001, 5.0)
    qty, code, value, limit, resized = RK.check_entry(S, F, ring, C, *args)
    assert (code, resized) == (RL.OK, RL.MAX_POSITION)
    assert qty == pytest.approx(0.1) and value == pytest.approx(0.05) and limit == 0.05
    RK.record_entry(S, ring, T0, 1, False)
    assert S[RL.S_HEAD] == 1 and ring[0] == T0 and S[RL.S_OPEN_TS] == T0
    qty, code, value, limit, _ = RK.check_entry(S, F, ring, C, *args)  # same ts: min interval
    assert (qty, code, value, limit) == (0.0, RL.MIN_INTERVAL, 0.0, 5.0)
    assert S[RL.S_REFUSED0 + RL.MIN_INTERVAL] == 1
    RK.set_kill(S, RL.KILL_HALT)
    assert RK.check_exit(S) == RL.KILL_SWITCH and S[RL.S_REFUSED0 + RL.KILL_SWITCH] == 1


# op kinds of the replay
EQ, ENTRY, RECORD, FLAT, DUE, KILL, EXIT = range(7)
# columns of X: equity, side (kill mode), price, stop, confidence, vol_horizon, vol_pct, pos_qty (is_add),
# other gross notional, lot, min notional


@njit(cache=True)
def _replay(S, F, ring, C, kinds, tss, X, out):
    """The backtester's way: kernels called from a compiled loop."""
    for i in range(kinds.shape[0]):
        k, ts = kinds[i], tss[i]
        if k == EQ:
            out[i, 1] = RK.on_equity(S, F, C, ts, X[i, 0])
        elif k == ENTRY:
            q, code, v, lim, rz = RK.check_entry(
                S, F, ring, C, ts, int(X[i, 1]), X[i, 2], X[i, 3], X[i, 4], X[i, 5], X[i, 6], X[i, 0],
                X[i, 7], X[i, 8], X[i, 9], X[i, 10],
            )  # fmt: skip
            out[i, 0], out[i, 1], out[i, 2], out[i, 3], out[i, 4] = q, code, v, lim, rz
        elif k == RECORD:
            RK.record_entry(S, ring, ts, int(X[i, 1]), X[i, 7] != 0.0)
        elif k == FLAT:
            RK.record_flat(S)
        elif k == DUE:
            out[i, 1] = RK.exit_due(S, C, ts, X[i, 7])
        elif k == KILL:
            RK.set_kill(S, int(X[i, 1]))
        else:
            out[i, 1] = RK.check_exit(S)


def _through_wrapper(eng: RiskEngine, kinds, tss, X) -> np.ndarray:
    out = np.zeros((len(kinds), 5))
    for i, (k, ts, x) in enumerate(zip(kinds, tss, X, strict=True)):
        ts = int(ts)
        if k == EQ:
            out[i, 1] = RL.DAILY_DRAWDOWN if eng.on_equity(ts=ts, equity=x[0]) else RL.OK
        elif k == ENTRY:
            d = eng.check_entry(
                ts=ts, side=int(x[1]), price=x[2], stop_dist=x[3], confidence=x[4], vol_horizon=x[5],
                vol_pct=x[6], equity=x[0], pos_qty=x[7], other_gross_notional=x[8], lot_size=x[9],
                min_notional=x[10],
            )  # fmt: skip
            assert d.approved == (d.rule == "ok") and (d.qty > 0) == d.approved
            rz = RULES.index(d.resized_by) if d.resized_by else RL.OK
            out[i] = (d.qty, RULES.index(d.rule), d.value, d.limit, rz)
        elif k == RECORD:
            eng.record_entry(ts=ts, side=int(x[1]), is_add=x[7] != 0.0)
        elif k == FLAT:
            eng.record_flat()
        elif k == DUE:
            out[i, 1] = RL.MAX_HOLDING if eng.exit_due(ts=ts, pos_qty=x[7]) else RL.OK
        elif k == KILL:
            eng.kill(RL.KILL_MODES[int(x[1])])  # type: ignore[arg-type]
        else:
            out[i, 1] = RL.OK if eng.check_exit(ts=ts, qty=1.0).approved else RL.KILL_SWITCH
    return out


_op = st.tuples(
    st.sampled_from([EQ] * 2 + [ENTRY] * 5 + [RECORD] * 3 + [FLAT, DUE, KILL, EXIT]),
    st.sampled_from([0, 1, NS // 2, 3 * NS, 3 * NS, 40 * NS, 3600 * NS, 86_400 * NS]),  # time step
    st.sampled_from([100_000.0] * 6 + [96_000.0, 94_000.0, 120_000.0, math.nan]),  # equity
    st.sampled_from([1] * 7 + [-1] * 4 + [0]),  # side (KILL: 1 off, -1 reduce_only, 0 halt)
    st.sampled_from([50_000.0] * 8 + [1_000.0, -1.0]),  # price
    st.sampled_from([500.0, 50.0, 5_000.0]),  # stop
    st.sampled_from([0.3, 0.5, 0.75, 0.95, 0.95, 0.95, 0.95, math.nan]),  # confidence
    st.sampled_from([0.0, 0.0, 0.002, 0.02]),  # vol_horizon
    st.sampled_from([0.1, 0.1, 0.1, 0.95, 0.99]),  # vol_pct
    st.sampled_from([0.0, 0.0, 0.05, -0.05, 2.0]),  # pos_qty (is_add flag for RECORD)
    st.sampled_from([0.0, 0.0, 40_000.0]),  # other gross notional
    st.sampled_from([0.001, 0.1]),  # lot
    st.sampled_from([0.0, 5.0, 100.0]),  # min notional
)


@settings(max_examples=80, deadline=None)
@given(ops=st.lists(_op, min_size=1, max_size=80), tight=st.booleans())
def test_compiled_loop_and_wrapper_agree(ops, tight):
    tight_cfg = {"max_trades_24h": 2, "min_trade_interval_s": 1.0, "max_holding_s": 30.0, "max_adds": 1,
                 "max_position": 10.0, "max_capital_in_use": 10.0, "high_vol_size_factor": 0.0}  # fmt: skip
    cfg = RiskConfig(**tight_cfg) if tight else RiskConfig()
    kinds = np.array([o[0] for o in ops], np.int64)
    tss = T0 + np.cumsum([o[1] for o in ops]).astype(np.int64)
    X = np.array([o[2:] for o in ops], np.float64)
    kill = kinds == KILL
    X[kill, 1] = np.select([X[kill, 1] == -1, X[kill, 1] == 0], [1, 2], 0)  # off half of the time
    S, F, ring, C = _arrays(cfg)
    out = np.zeros((len(ops), 5))
    _replay(S, F, ring, C, kinds, tss, X, out)
    eng = RiskEngine(cfg)
    out_w = _through_wrapper(eng, kinds, tss, X)
    np.testing.assert_array_equal(out, out_w)
    np.testing.assert_array_equal(S, eng.RS)
    np.testing.assert_array_equal(F, eng.RSF)
    np.testing.assert_array_equal(ring, eng.ring)
    gated = (kinds == ENTRY) | (kinds == EXIT)
    assert sum(eng.refusals.values()) == int(np.count_nonzero(out[gated, 1]))


@settings(max_examples=300, deadline=None)
@given(
    price=st.floats(10.0, 100_000.0),
    stop_frac=st.floats(0.0005, 0.2),
    confidence=st.floats(0.0, 1.0),
    vol_horizon=st.floats(0.0, 0.05),
    vol_pct=st.floats(0.0, 1.0),
    equity=st.floats(50.0, 1e7),
    pos_frac=st.floats(-0.1, 0.1),
    side=st.sampled_from([-1, 1]),
    other_frac=st.floats(0.0, 0.6),
    lot=st.sampled_from([0.001, 0.01, 1.0]),
    min_notional=st.sampled_from([0.0, 5.0, 100.0]),
)
def test_approved_sizes_respect_every_limit(
    price, stop_frac, confidence, vol_horizon, vol_pct, equity, pos_frac, side, other_frac, lot, min_notional
):
    cfg = RiskConfig()
    S, F, ring, C = _arrays(cfg)
    pos = pos_frac * equity / price
    other = other_frac * equity
    stop = stop_frac * price
    qty, code, value, limit, resized = RK.check_entry(
        S, F, ring, C, T0, side, price, stop, confidence, vol_horizon, vol_pct, equity, pos, other, lot,
        min_notional,
    )  # fmt: skip
    assert 0 <= code < RL.N_RULES and 0 <= resized < RL.N_RULES
    if code != RL.OK:
        assert qty == 0.0
        if code in (RL.MAX_POSITION, RL.MAX_CAPITAL, RL.VAR95):
            assert value > limit
        if code == RL.MIN_SIZE:
            assert value < limit
        return
    tol = 1e-9
    assert pos * side >= 0.0  # never approves against the position
    lots = qty / lot
    assert abs(lots - round(lots)) < 1e-6 and round(lots) >= 1
    assert qty * price >= min_notional * (1 - tol)
    after = (abs(pos) + qty) * price / equity
    assert after <= cfg.max_position * (1 + tol)
    assert other / equity + after <= cfg.max_capital_in_use * (1 + tol)
    assert 1.645 * vol_horizon * after <= cfg.var95_limit * (1 + tol)
    scale = RK.confidence_scale(C, confidence)
    factor = (cfg.add_size_factor if pos != 0.0 else 1.0) * (
        cfg.high_vol_size_factor if vol_pct >= cfg.high_vol_percentile else 1.0
    )
    assert qty * stop <= cfg.max_loss_per_trade * equity * scale * factor * (1 + tol)
