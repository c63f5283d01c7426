"""One core, two drivers, several symbols: the book's compiled loop (backtest.portfolio) and the Python
driver that feeds one TradingSession per symbol one event at a time (engine.book_session, the paper
engine's path without the network) give the same orders, fills, round trips, equity and refusals on
the real BTCUSDT + ETHUSDT recordings, on three simulated symbols, and when entries are allocated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orderflow.backtest.config import VenueAccountConfig
from orderflow.backtest.engine import Market, make_signals
from orderflow.backtest.portfolio import run_book_backtest
from orderflow.config import Config
from orderflow.core.instruments import Instrument
from orderflow.data.simulator import simulate
from orderflow.data.store import Store
from orderflow.engine.book_session import replay_book_paper
from orderflow.features.batch import build_features
from orderflow.risk.config import RiskConfig
from orderflow.strategy.config import StrategyConfig
from support.book_markets import flat_market, strong_buy

LOT = 0.001

pytestmark = pytest.mark.slow


def rule_probs(feats: pd.DataFrame) -> np.ndarray:
    z = np.nan_to_num(feats["ofi_int_z_1s"].to_numpy(), nan=0.0)
    up = 1.0 / (1.0 + np.exp(-1.5 * z))
    return np.stack([0.8 * (1 - up), np.full_like(up, 0.2), 0.8 * up], axis=1)


def check_same(book, paper) -> int:
    assert set(book.symbols) == set(paper)
    n = 0
    for sym, a in book.symbols.items():
        b = paper[sym]
        assert a.orders == b.orders, sym
        pd.testing.assert_frame_equal(a.fills, b.fills)
        pd.testing.assert_frame_equal(a.trades, b.trades)
        pd.testing.assert_frame_equal(a.equity, b.equity)
        assert a.rejections == b.rejections, sym
        n += len(a.fills)
    return n


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    from pathlib import Path

    from orderflow.config import load_config
    from orderflow.data.importers.binance_raw import import_binance_raw

    raw = shared_data / "hftbacktest_binance_raw" / "usdm"
    store = Store(tmp_path_factory.mktemp("parity") / "s")
    import_binance_raw(store, [raw / "btcusdt_20240808.gz", raw / "ethusdt_20240808.gz"])
    short = load_config(Path(__file__).resolve().parents[2] / "config" / "examples" / "short-recording",
                        environ={})  # fmt: skip
    strategy = short.strategy.model_copy(update={"confidence_gate": 0.55, "ev_cost_mult": 0.0,
                                                 "quality_gate": 0.5})  # fmt: skip
    ms, ss, ins = [], [], []
    for sym, tick in (("BTCUSDT", 0.1), ("ETHUSDT", 0.01)):
        f = build_features(store, "binance-usdm", sym, short.features.model_copy(update={"tick_size": tick}))
        ms.append(Market.from_frames("binance-usdm", sym, store.read("binance-usdm", sym, "book"),
                                     store.read("binance-usdm", sym, "trade")))  # fmt: skip
        s = make_signals(f, rule_probs(f), strategy)
        s.vol_pct = np.where(np.isfinite(s.vol_pct), s.vol_pct, 0.5)
        ss.append(s)
        ins.append(store.instrument("binance-usdm", sym))
    return ms, ss, ins, strategy


@pytest.mark.parametrize("sizing", ["book", "symbol"])
def test_the_two_drivers_agree_on_two_real_recordings(real, sizing):
    ms, ss, ins, strategy = real
    risk = RiskConfig(sizing_equity=sizing)
    bt = run_book_backtest(ms, ss, ins, VenueAccountConfig(), strategy, risk)
    n = check_same(bt, replay_book_paper(ms, ss, ins, VenueAccountConfig(), strategy, risk))
    assert n > 150
    assert sum(r.info["book_bound"] for r in bt.symbols.values()) > 0  # the book's rules were exercised


def test_the_two_drivers_agree_on_three_simulated_symbols(tmp_path):
    cfg = Config()
    strategy = StrategyConfig(confidence_gate=0.6, ev_cost_mult=0.0)
    ms, ss, ins = [], [], []
    for k, seed in enumerate((21, 22, 23)):
        store = Store(tmp_path / f"s{k}")
        sc = cfg.simulator.model_copy(update={"hours": 0.3, "seed": seed, "symbol": f"SIM{k}USDT"})
        simulate(sc, store=store)
        f = build_features(store, sc.venue, sc.symbol, cfg.features)
        ms.append(Market.from_frames(sc.venue, sc.symbol, store.read(sc.venue, sc.symbol, "book"),
                                     store.read(sc.venue, sc.symbol, "trade")))  # fmt: skip
        ss.append(make_signals(f, rule_probs(f), strategy))
        ins.append(store.instrument(sc.venue, sc.symbol))
    risk = RiskConfig(max_capital_in_use=0.08, cov_bar_s=5.0, cov_min_bars=10)  # the book binds
    bt = run_book_backtest(ms, ss, ins, VenueAccountConfig(), strategy, risk)
    assert check_same(bt, replay_book_paper(ms, ss, ins, VenueAccountConfig(), strategy, risk)) > 30
    assert bt.rejections.get("risk:max_capital", 0) + bt.rejections.get("risk:correlation_budget", 0) > 0


def test_the_two_drivers_agree_when_entries_are_allocated():
    n = 40
    ms = [flat_market("AAAUSDT", n, 100.0, 0.01), flat_market("BBBUSDT", n, 100.0, 0.01)]
    ss = [strong_buy(n, 0.75), strong_buy(n, 0.9)]
    ins = [Instrument("binance-usdm", m.symbol, 0.01, LOT, 5.0) for m in ms]
    strategy = StrategyConfig(ev_cost_mult=0.0, confidence_gate=0.55, quality_gate=0.0, pyramid=False)
    risk = RiskConfig(max_position=0.05, max_capital_in_use=0.05, correlation_budget=10.0, var95_limit=1.0,
                      min_trade_interval_s=0.0)  # fmt: skip
    bt = run_book_backtest(ms, ss, ins, VenueAccountConfig(), strategy, risk)
    check_same(bt, replay_book_paper(ms, ss, ins, VenueAccountConfig(), strategy, risk))
    assert bt.info["groups_allocated"] >= 1 and bt.rejections.get("risk:allocation", 0) >= 1
