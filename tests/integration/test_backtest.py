"""Backtester honesty checks on a simulated market: no look-ahead, random entries lose their costs,
and the engine's bookkeeping adds up (trades, fills, equity, portfolio)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orderflow.backtest.config import VenueAccountConfig
from orderflow.backtest.engine import Market, Signals, make_signals, run_backtest
from orderflow.config import Config
from orderflow.data.simulator import simulate
from orderflow.data.store import Store
from orderflow.features.batch import build_features
from orderflow.strategy.config import StrategyConfig

NS = 1_000_000_000
OPEN = dict(confidence_gate=0.5, quality_gate=0.0, ev_cost_mult=0.0, target_trades_per_hour=0.0,
            exit_on_signal=False)  # fmt: skip


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    cfg = Config()
    store = Store(tmp_path_factory.mktemp("bt") / "store")
    sc = cfg.simulator.model_copy(update={"hours": 2.0, "seed": 5})
    simulate(sc, store=store)
    feats = build_features(store, sc.venue, sc.symbol, cfg.features)
    market = Market.from_frames(sc.venue, sc.symbol, store.read(sc.venue, sc.symbol, "book"),
                                store.read(sc.venue, sc.symbol, "trade"))  # fmt: skip
    return market, feats, store.instrument(sc.venue, sc.symbol)


def ofi_rule_probs(feats: pd.DataFrame) -> np.ndarray:
    """A fixed, causal stand-in for a model: probabilities leaning with the OFI z-score."""
    z = np.nan_to_num(feats["ofi_int_z_1s"].to_numpy(), nan=0.0)
    up = 1.0 / (1.0 + np.exp(-1.5 * z))
    return np.stack([0.8 * (1 - up), np.full_like(up, 0.2), 0.8 * up], axis=1)


def random_signals(feats: pd.DataFrame, seed: int, rate: float = 1 / 1500) -> Signals:
    """Random entries: at a random ~1/1500 of rows a confident signal with a random side."""
    rng = np.random.default_rng(seed)
    n = len(feats)
    hit = rng.random(n) < rate
    side = rng.choice([-1.0, 1.0], n)
    p = np.full((n, 3), [0.3, 0.4, 0.3])
    p[hit & (side > 0)] = [0.05, 0.05, 0.9]
    p[hit & (side < 0)] = [0.9, 0.05, 0.05]
    s = make_signals(feats, p, StrategyConfig())
    s.ofi_z = np.where(hit, 4.0 * side, 0.0)
    return s


@pytest.mark.slow
def test_no_lookahead(sim):
    market, feats, inst = sim
    sig = make_signals(feats, ofi_rule_probs(feats), StrategyConfig())
    cfg = StrategyConfig(**{**OPEN, "confidence_gate": 0.6})
    a = run_backtest(market, sig, inst, VenueAccountConfig(), cfg)
    assert len(a.trades) >= 20
    t_cut = int(market.b_ts[0] + (market.b_ts[-1] - market.b_ts[0]) * 0.6)
    # change every event and signal at or after t_cut beyond recognition
    m2 = Market(**{k: getattr(market, k).copy() if isinstance(getattr(market, k), np.ndarray)
                   else getattr(market, k) for k in market.__dataclass_fields__})  # fmt: skip
    late_b, late_t = m2.b_ts >= t_cut, m2.t_ts >= t_cut
    rng = np.random.default_rng(1)
    shift = rng.normal(0, 50.0, late_b.sum())[:, None]
    for arr in (m2.bid_px, m2.ask_px):
        arr[late_b] += shift
    m2.bid_sz[late_b] *= 3.0
    m2.t_px[late_t] += 25.0
    m2.t_side[late_t] *= -1
    s2 = Signals(**{k: getattr(sig, k).copy() for k in sig.__dataclass_fields__})
    s2.ofi_z[late_b] = -s2.ofi_z[late_b]
    s2.p_up[late_b], s2.p_dn[late_b] = sig.p_dn[late_b], sig.p_up[late_b]
    b = run_backtest(m2, s2, inst, VenueAccountConfig(), cfg)
    fa, fb = a.fills[a.fills.ts < t_cut], b.fills[b.fills.ts < t_cut]
    assert len(fa) > 10
    pd.testing.assert_frame_equal(fa.reset_index(drop=True), fb.reset_index(drop=True))
    ta = a.trades[a.trades.exit_ts < t_cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(ta, b.trades[b.trades.exit_ts < t_cut].reset_index(drop=True))
    ea, eb = a.equity[a.equity.ts < t_cut], b.equity[b.equity.ts < t_cut]
    pd.testing.assert_frame_equal(ea.reset_index(drop=True), eb.reset_index(drop=True))
    assert not a.fills.equals(b.fills)  # the late changes did change later decisions


@pytest.mark.slow
def test_random_entries_lose_about_their_costs(sim):
    market, feats, inst = sim
    rows = []
    for seed in range(5):
        r = run_backtest(
            market, random_signals(feats, seed), inst, VenueAccountConfig(), StrategyConfig(**OPEN)
        )
        t = r.trades
        assert len(t) >= 30
        rows.append({"net": t.net_pnl.sum(), "gross": t.gross_pnl.sum(), "fees": t.fees.sum(),
                     "slip": t.slippage.sum(), "funding": t.funding.sum()})  # fmt: skip
    df = pd.DataFrame(rows)
    cost = df.fees + df.slip
    # gross PnL of random entries is the spread paid (counted in slippage, against the mid) plus noise
    assert (df.net < 0).sum() >= 4 and df.net.mean() < 0
    assert abs(df.net.mean() + cost.mean()) < 0.35 * cost.mean(), df
    np.testing.assert_allclose(df.net, df.gross - df.fees - df.funding, rtol=1e-9)


def test_bookkeeping_adds_up(sim):
    market, feats, inst = sim
    sig = make_signals(feats, ofi_rule_probs(feats), StrategyConfig())
    r = run_backtest(market, sig, inst, VenueAccountConfig(), StrategyConfig(**OPEN))
    pf = r.info["portfolio"]
    assert pf["position"] == 0.0  # closed at the end
    t, f = r.trades, r.fills
    assert len(f) == pf["fills"] and f.fee.sum() == pytest.approx(pf["fees"])
    assert t.fees.sum() == pytest.approx(pf["fees"]) and t.gross_pnl.sum() == pytest.approx(pf["realized"])
    final = r.equity.equity.iloc[-1]
    assert final == pytest.approx(100_000 + pf["realized"] - pf["fees"] - pf["funding"])
    assert final - 100_000 == pytest.approx(t.net_pnl.sum())
    assert (t.qty > 0).all() and (t.exit_ts >= t.entry_ts).all()
    np.testing.assert_allclose(t.qty, [f.qty[(f.ts >= a) & (f.ts <= b)].sum() / 2
                                       for a, b in zip(t.entry_ts, t.exit_ts, strict=True)])  # fmt: skip
    # every entry is a market order filled at or worse than the book's best price at the decision
    buys = f[f.side > 0]
    assert (buys.price >= buys.mid_at_decision).all()
    assert set(t.exit_reason) <= {"take_profit", "stop", "timeout", "signal", "risk", "end"}
