"""Acceptance: a backtest on a fixed simulator seed pins the exact trade count and net PnL, so any change
to the simulator, the features, the strategy, the risk engine, the matching or the accounting that
moves a single fill shows up here (update the pins only for an intended, explained change)."""

from __future__ import annotations

import numpy as np
import pytest

from orderflow.backtest.config import VenueAccountConfig
from orderflow.backtest.engine import Market, make_signals, run_backtest
from orderflow.config import Config
from orderflow.data.simulator import simulate
from orderflow.data.store import Store
from orderflow.features.batch import build_features
from orderflow.strategy.config import StrategyConfig

PIN_TRADES = 467
PIN_NET_PNL = -2257.2755421000024
PIN_FEES = 2292.1489421


@pytest.mark.slow
def test_pinned_backtest_on_simulator_seed_11(tmp_path):
    cfg = Config()
    store = Store(tmp_path / "s")
    sc = cfg.simulator.model_copy(update={"hours": 3.0, "seed": 11})
    simulate(sc, store=store)
    feats = build_features(store, sc.venue, sc.symbol, cfg.features)
    market = Market.from_frames(sc.venue, sc.symbol, store.read(sc.venue, sc.symbol, "book"),
                                store.read(sc.venue, sc.symbol, "trade"))  # fmt: skip
    # a fixed, causal stand-in for a model: probabilities leaning with the OFI z-score
    z = np.nan_to_num(feats["ofi_int_z_1s"].to_numpy(), nan=0.0)
    up = 1.0 / (1.0 + np.exp(-1.5 * z))
    probs = np.stack([0.8 * (1 - up), np.full_like(up, 0.2), 0.8 * up], axis=1)
    strategy = StrategyConfig(confidence_gate=0.6, ev_cost_mult=0.25)
    res = run_backtest(market, make_signals(feats, probs, strategy), store.instrument(sc.venue, sc.symbol),
                       VenueAccountConfig(), strategy)  # fmt: skip
    assert len(res.trades) == PIN_TRADES
    assert res.trades.net_pnl.sum() == pytest.approx(PIN_NET_PNL, abs=1e-6)
    assert res.trades.fees.sum() == pytest.approx(PIN_FEES, abs=1e-6)
    # with the default EV gate (2 x round-trip cost) this signal never pays its taker fees: no trade
    inst = store.instrument(sc.venue, sc.symbol)
    default = run_backtest(market, make_signals(feats, probs, StrategyConfig()), inst, VenueAccountConfig())
    assert len(default.trades) == 0 and default.rejections["gate:ev"] > 10_000
