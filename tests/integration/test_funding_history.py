"""Funding from the stored history in backtests (issue 19): a long position held across three stored
funding times is charged position x mark x rate at each of them (the mid where no mark is stored), the
configured constant only at grid times beyond the history, and the report says which; the paper
driver books the same; the real BTCUSDT history imported from shared data is booked at its own times."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orderflow.backtest.config import VenueAccountConfig
from orderflow.backtest.engine import Market, Signals, run_backtest
from orderflow.core.instruments import Instrument
from orderflow.data.importers.context import import_funding
from orderflow.data.store import Store
from orderflow.engine import funding as FU
from orderflow.engine.session import replay_paper
from orderflow.risk.config import RiskConfig
from orderflow.strategy.config import StrategyConfig

pytestmark = pytest.mark.slow  # every test here takes seconds (kernels, studies, Ray)

NS = 1_000_000_000
H = 3600 * NS
INST = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001, 5.0)
L = 5
DAY = pd.Timestamp("2024-01-01", tz="UTC").value  # a Monday, 00:00 UTC
STRATEGY = StrategyConfig(ev_cost_mult=0.0, confidence_gate=0.55, quality_gate=0.0, pyramid=False,
                          exit_on_signal=False, timeout_s=1e7, target_trades_per_hour=0.0)  # fmt: skip
RISK = RiskConfig(max_position=0.5, max_loss_per_trade=0.03, var95_limit=1.0, min_trade_interval_s=0.0,
                  max_holding_s=1e7)  # fmt: skip


def flat_market(t0: int, t1: int, step_s: float = 60.0, bid: float = 42_000.0) -> Market:
    """A book that never moves (bid 42,000.0, ask 42,000.1, mid 42,000.05) and one trade per book
    event, from ``t0`` to ``t1``."""
    ts = np.arange(int(t0), int(t1), int(step_s * NS), dtype=np.int64)
    n = ts.size
    bp = np.tile(bid - 0.1 * np.arange(L), (n, 1))
    ap = np.tile(bid + 0.1 + 0.1 * np.arange(L), (n, 1))
    sz = np.full((n, L), 5.0)
    tt = ts - 1_000_000  # a trade 1 ms before each book event
    return Market("binance-usdm", "BTCUSDT", ts, ts.copy(), bp, sz, ap, sz.copy(), tt, tt.copy(),
                  np.full(n, bid + 0.1), np.full(n, 0.01), np.ones(n, np.int64))  # fmt: skip


def buy_once(n: int) -> Signals:
    """A strong buy at the first 3 book events, neutral afterwards: one long entry, held to the end."""
    strong = np.arange(n) < 3
    return Signals(valid=np.ones(n, bool), ofi_z=np.where(strong, 6.0, 0.0),
                   p_dn=np.where(strong, 0.05, 0.3), p_up=np.where(strong, 0.9, 0.3), rv_bps=np.full(n, 5.0),
                   vol_state=np.ones(n), trend_state=np.zeros(n), vol_pct=np.full(n, 0.5))  # fmt: skip


STORED = pd.DataFrame({
    "ts_event": [DAY, DAY + 8 * H, DAY + 16 * H],
    "ts_recv": [DAY, DAY + 8 * H, DAY + 16 * H],
    "rate": [0.0003, -0.0002, 0.0001],
    "mark_price": [42_010.0, np.nan, 41_990.0],  # the second funding has no stored mark: the mid
})  # fmt: skip


def test_a_position_held_across_stored_funding_times_pays_each_stored_rate():
    """History at 00:00, 08:00 and 16:00 of 2024-01-01 (rates +3, -2, +1 bp); the run from 2023-12-31
    20:30 to 2024-01-02 00:30 also crosses 2024-01-02 00:00, beyond the history: the constant 1 bp."""
    market = flat_market(DAY - 3.5 * H, DAY + 24.5 * H)
    res = run_backtest(market, buy_once(market.n_book), INST, VenueAccountConfig(), STRATEGY, RISK,
                       funding=FU.FundingSchedule.from_frame(STORED))  # fmt: skip
    buys = res.fills[res.fills.side > 0]
    assert len(buys) == 1 and len(res.trades) == 1  # one entry at the start, closed at the end of the run
    q = float(buys.qty.iloc[0])
    assert q == pytest.approx(1.19)  # 0.5 x 100,000 / 42,000.05 = 1.1905 BTC, in whole lots of 0.001
    # by hand (paid > 0; a long pays a positive rate), position 1.19 BTC:
    #   2024-01-01 00:00  1.19 x 42,010.0  x +0.0003 = 14.99757
    #   2024-01-01 08:00  1.19 x 42,000.05 x -0.0002 = -9.9960119  (no stored mark: the mid)
    #   2024-01-01 16:00  1.19 x 41,990.0  x +0.0001 =  4.99681
    #   2024-01-02 00:00  1.19 x 42,000.05 x +0.0001 =  4.99800595 (beyond the history: the constant)
    hist = 14.99757 - 9.9960119 + 4.99681  # 9.9983681
    f = res.info["funding"]
    assert f["funding_events_history"] == 3
    assert f["funding_total_history"] == pytest.approx(hist, rel=1e-12)
    assert f["funding_events_constant"] == 1
    assert f["funding_total_constant"] == pytest.approx(4.99800595, rel=1e-12)
    assert f["funding_events"] == 4 and f["funding_total"] == pytest.approx(hist + 4.99800595, rel=1e-12)
    assert res.info["portfolio"]["funding"] == pytest.approx(f["funding_total"], rel=1e-12)
    assert res.trades.funding.sum() == pytest.approx(f["funding_total"], rel=1e-12)
    assert f["funding_source"] == (
        "history (3 rates from store, 2024-01-01 00:00 .. 2024-01-01 16:00 UTC; 3 in the run's span); "
        "constant 0.0001 per 8 h before 2024-01-01 00:00 and after 2024-01-01 16:00 (beyond the stored "
        "history)"
    )
    # the paper driver (TradingSession, one event at a time) books the same
    paper = replay_paper(market, buy_once(market.n_book), INST, VenueAccountConfig(), STRATEGY, RISK,
                         funding=FU.FundingSchedule.from_frame(STORED))  # fmt: skip
    pd.testing.assert_frame_equal(paper.trades, res.trades)


def test_without_history_the_constant_is_booked_on_its_grid_and_reported():
    market = flat_market(DAY - 3.5 * H, DAY + 24.5 * H)
    res = run_backtest(market, buy_once(market.n_book), INST, VenueAccountConfig(), STRATEGY, RISK)
    f = res.info["funding"]
    # 2023-12-31 16:00 is before the first event; 2024-01-01 00:00, 08:00, 16:00 and 2024-01-02 00:00:
    # 4 x 1.19 x 42,000.05 x 0.0001 = 19.9920238
    assert f["funding_source"] == "constant 0.0001 per 8 h"
    assert (f["funding_events"], f["funding_events_history"]) == (4, 0)
    assert f["funding_total"] == pytest.approx(19.9920238, rel=1e-12)


def test_the_stored_funding_times_are_used_not_the_grid():
    """A stored history whose interval changes to 4 h (and back): each stored time is booked once."""
    times = [DAY, DAY + 4 * H, DAY + 8 * H, DAY + 12 * H, DAY + 20 * H]
    rows = pd.DataFrame({"ts_event": times, "ts_recv": times, "rate": [1e-4] * 5, "mark_price": [np.nan] * 5})
    market = flat_market(DAY - 0.5 * H, DAY + 20.5 * H)
    res = run_backtest(market, buy_once(market.n_book), INST, VenueAccountConfig(), STRATEGY, RISK,
                       funding=FU.FundingSchedule.from_frame(rows))  # fmt: skip
    f = res.info["funding"]
    assert (f["funding_events_history"], f["funding_events_constant"]) == (5, 0)  # 16:00 is not stored
    assert f["funding_total"] == pytest.approx(24.99002975, rel=1e-12)  # 5 x 1.19 x 42,000.05 x 1e-4


def test_the_real_btcusdt_history_imported_from_shared_data(shared_data, tmp_path):
    """The BTCUSDT 8 h history (freqtrade feather) imported with import_funding, a long held over two
    days of 2024: the stored rates at 00/08/16 UTC, marked at the mid (the file has no marks)."""
    store = Store(tmp_path / "s")
    path = (
        shared_data / "context" / "binance_usdm_funding_2022-2025" / "BTC_USDT_USDT-8h-funding_rate.feather"
    )
    import_funding(store, [path])
    sched = FU.from_store(store, "binance-usdm", "BTCUSDT")
    assert sched.n == 4188
    t0 = pd.Timestamp("2024-03-01 00:30", tz="UTC").value
    market = flat_market(t0, t0 + 48 * H, step_s=300.0)
    res = run_backtest(market, buy_once(market.n_book), INST, VenueAccountConfig(), STRATEGY, RISK,
                       funding=sched)  # fmt: skip
    inside = (sched.ts > t0) & (sched.ts <= int(market.b_recv[-1]))
    assert inside.sum() == 6  # 2024-03-01 08:00 .. 2024-03-03 00:00
    q = float(res.fills.qty.iloc[0])
    expect = q * 42_000.05 * sched.rate[inside]
    f = res.info["funding"]
    assert (f["funding_events_history"], f["funding_events_constant"]) == (6, 0)
    assert f["funding_total"] == pytest.approx(expect.sum(), rel=1e-12)
    assert f["funding_source"].startswith("history (4188 rates from store, 2022-01-01 00:00 .. 2025-10-27 ")


def test_a_market_carries_its_funding_history_into_its_windows():
    """The optimiser's trials backtest windows of one Market: the history set on the Market (as
    ``optimize run`` sets it from the store) is booked in every window without being passed again."""
    market = flat_market(DAY - 3.5 * H, DAY + 24.5 * H)
    market.funding = FU.FundingSchedule.from_frame(STORED)
    whole = run_backtest(market, buy_once(market.n_book), INST, VenueAccountConfig(), STRATEGY, RISK)
    assert whole.info["funding"]["funding_events_history"] == 3
    assert whole.info["funding"]["funding_total_history"] == pytest.approx(9.9983681, rel=1e-12)
    part = market.window(DAY - 1 * H, DAY + 9 * H)  # 00:00 and 08:00 only
    assert part.funding is market.funding
    res = run_backtest(part, buy_once(part.n_book), INST, VenueAccountConfig(), STRATEGY, RISK)
    f = res.info["funding"]
    assert (f["funding_events_history"], f["funding_events_constant"]) == (2, 0)
    q = float(res.fills[res.fills.side > 0].qty.iloc[0])
    assert f["funding_total_history"] == pytest.approx(q * (42_010.0 * 3e-4 - 42_000.05 * 2e-4), rel=1e-12)
