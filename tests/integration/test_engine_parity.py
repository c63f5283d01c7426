"""One core, two drivers: the same events replayed through the backtester's compiled loop and through
the Python paper driver (a TradingSession fed one event at a time, orders matched by the simulated
exchange's Python wrapper) give the same orders, fills, round trips and equity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orderflow.backtest.config import VenueAccountConfig
from orderflow.backtest.engine import Market, make_signals, run_backtest
from orderflow.config import Config
from orderflow.data.simulator import simulate
from orderflow.data.store import Store
from orderflow.engine.session import replay_paper
from orderflow.features.batch import build_features
from orderflow.strategy.config import StrategyConfig


def rule_probs(feats: pd.DataFrame) -> np.ndarray:
    z = np.nan_to_num(feats["ofi_int_z_1s"].to_numpy(), nan=0.0)
    up = 1.0 / (1.0 + np.exp(-1.5 * z))
    return np.stack([0.8 * (1 - up), np.full_like(up, 0.2), 0.8 * up], axis=1)


def check_same(a, b) -> None:
    assert a.orders == b.orders and a.orders > 10
    pd.testing.assert_frame_equal(a.fills, b.fills)
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_frame_equal(a.equity, b.equity)
    assert a.rejections == b.rejections


def simulated(tmp_path, hours: float, seed: int):
    """A simulated market stored and replayed: (market, signals of the OFI rule, instrument, strategy)."""
    cfg = Config()
    store = Store(tmp_path / "s")
    sc = cfg.simulator.model_copy(update={"hours": hours, "seed": seed})
    simulate(sc, store=store)
    feats = build_features(store, sc.venue, sc.symbol, cfg.features)
    market = Market.from_frames(sc.venue, sc.symbol, store.read(sc.venue, sc.symbol, "book"),
                                store.read(sc.venue, sc.symbol, "trade"))  # fmt: skip
    strategy = StrategyConfig(confidence_gate=0.6, ev_cost_mult=0.0)
    sig = make_signals(feats, rule_probs(feats), strategy)
    return market, sig, store.instrument(sc.venue, sc.symbol), strategy


@pytest.mark.slow
@pytest.mark.parametrize("latency", ["constant", "lognormal"])
def test_backtest_loop_and_paper_driver_agree_on_the_simulator(tmp_path, latency):
    market, sig, inst, strategy = simulated(tmp_path, 0.75, 21)
    bt = VenueAccountConfig()
    lat = bt.exchange.latency.model_copy(update={"kind": latency, "seed": 3})
    bt = bt.model_copy(update={"exchange": bt.exchange.model_copy(update={"latency": lat})})
    check_same(run_backtest(market, sig, inst, bt, strategy), replay_paper(market, sig, inst, bt, strategy))


@pytest.mark.slow
def test_backtest_loop_and_paper_driver_agree_on_a_real_recording(shared_data, tmp_path):
    from pathlib import Path

    from orderflow.config import load_config
    from orderflow.data.importers.binance_raw import import_binance_raw

    store = Store(tmp_path / "s")
    import_binance_raw(store, [shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240808.gz"])
    venue, symbol = "binance-usdm", "BTCUSDT"
    short = load_config(Path(__file__).resolve().parents[2] / "config" / "examples" / "short-recording",
                        environ={})  # fmt: skip
    feats = build_features(store, venue, symbol, short.features.model_copy(update={"tick_size": 0.1}))
    market = Market.from_frames(venue, symbol, store.read(venue, symbol, "book"),
                                store.read(venue, symbol, "trade"))  # fmt: skip
    strategy = short.strategy.model_copy(update={"confidence_gate": 0.55, "ev_cost_mult": 0.0,
                                                 "quality_gate": 0.5})  # fmt: skip
    sig = make_signals(feats, rule_probs(feats), strategy)
    sig.vol_pct = np.where(np.isfinite(sig.vol_pct), sig.vol_pct, 0.5)  # too short for the 1 h percentile
    inst = store.instrument(venue, symbol)
    check_same(run_backtest(market, sig, inst, VenueAccountConfig(), strategy),
               replay_paper(market, sig, inst, VenueAccountConfig(), strategy))  # fmt: skip


@pytest.mark.slow
def test_backtest_loop_and_paper_driver_agree_on_passive_and_sliced_entries(tmp_path):
    from orderflow.execution.exec_config import ExecutionConfig

    market, sig, inst, strategy = simulated(tmp_path, 0.5, 22)
    bt = VenueAccountConfig()
    plain = run_backtest(market, sig, inst, bt, strategy)
    for ex in (
        ExecutionConfig(max_share_of_depth=0.01, twap_duration_s=20.0),  # TWAP children
        ExecutionConfig(entry_style="passive", max_cost_share_of_ev=2.0),  # resting limits
        ExecutionConfig(entry_style="passive", max_share_of_depth=0.01, iceberg_clip_share=0.005),
    ):
        a = run_backtest(market, sig, inst, bt, strategy, execution=ex)
        check_same(a, replay_paper(market, sig, inst, bt, strategy, execution=ex))
        if ex.entry_style == "passive":
            assert a.fills["maker"].sum() > 0 and not plain.fills["maker"].any()
        else:
            assert a.orders > plain.orders  # entries went out in several children
