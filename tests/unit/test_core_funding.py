"""The core's funding schedule driven one event at a time, as the paper/live engine drives it: rates the
exchange announced are booked at their times instead of the constant, the constant applies before the
first and after the last announced time, and a funding time between a book event and a fill is charged
to the position held before the fill."""

from __future__ import annotations

import numpy as np
import pytest

from orderflow.backtest.config import VenueAccountConfig
from orderflow.core.instruments import Instrument
from orderflow.engine import core as CO
from orderflow.engine.funding import FundingSchedule
from orderflow.engine.session import TradingSession
from orderflow.execution import portfolio as PF
from orderflow.risk.config import RiskConfig
from orderflow.strategy.config import StrategyConfig

NS = 1_000_000_000
H = 3600 * NS
INST = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001, 5.0)
L = 5
T0 = 1_704_067_200 * NS  # 2024-01-01 00:00 UTC


def session(rate: float = 0.0001, funding: FundingSchedule | None = None) -> TradingSession:
    strategy = StrategyConfig(ev_cost_mult=0.0, confidence_gate=0.55, quality_gate=0.0, pyramid=False,
                              exit_on_signal=False, timeout_s=1e7)  # fmt: skip
    risk = RiskConfig(max_position=0.5, max_loss_per_trade=0.03, var95_limit=1.0, min_trade_interval_s=0.0,
                      max_holding_s=1e7)  # fmt: skip
    return TradingSession(INST, "binance-usdm", 0.0005, rate, 8 * H, strategy, risk, VenueAccountConfig(),
                          maker_fee=0.0002, funding=funding)  # fmt: skip


def tick(s: TradingSession, t: int, buy: bool = False):
    """A book event at t (bid 60,000.0, ask 60,000.1: mid 60,000.05), a strong buy or neutral."""
    s.on_trade(t)
    bp = 60_000.0 - 0.1 * np.arange(L)
    ap = 60_000.1 + 0.1 * np.arange(L)
    sz = np.full(L, 5.0)
    p_dn, p_up, ofi = (0.05, 0.9, 6.0) if buy else (0.3, 0.3, 0.0)
    return s.on_book(t, t, True, ofi, p_dn, p_up, 5.0, 1.0, 0.0, 0.5, bp, sz, ap, sz.copy())


def long_one(s: TradingSession, t: int) -> float:
    req = tick(s, t, buy=True)
    assert req is not None and req.side == 1
    s.on_fill(t + 1000, 1, req.qty, 60_000.1, 0.0, False)
    s.on_report(req.order_id, True)
    return req.qty


def test_announced_rates_replace_the_constant_at_their_times():
    s = session()
    q = long_one(s, T0 - H)  # 23:00, long q
    s.set_funding(T0, 0.0005)  # the exchange announces 5 bp for 00:00
    s.set_funding(T0, 0.0004)  # and then 4 bp: the last announcement stands
    s.set_funding(T0 + 4 * H, -0.0002, 59_990.0)  # then the next funding, 4 h later, with its mark
    for k in range(1, 26):  # every hour until 00:00 the next day
        tick(s, T0 - H + k * H)
    # 00:00: q x 60,000.05 x 0.0004 and 04:00: q x 59,990 x -0.0002 (announced; the grid's 00:00 is
    # not booked twice); after the last announced time the constant grid: 08:00, 16:00 and 00:00
    expect_sched = q * 60_000.05 * 0.0004 + q * 59_990.0 * -0.0002
    expect_const = 3 * q * 60_000.05 * 0.0001
    assert int(s.D[CO.D_NFUND_SCHED]) == 2 and int(s.D[CO.D_NFUND_CONST]) == 3
    assert s.Df[CO.DF_FUND_SCHED] == pytest.approx(expect_sched, rel=1e-12)
    assert s.Df[CO.DF_FUND_CONST] == pytest.approx(expect_const, rel=1e-12)
    assert s.P[PF.P_FUNDING] == pytest.approx(expect_sched + expect_const, rel=1e-12)
    f = s.funding_summary(T0 - H, T0 + 24 * H)
    assert f["funding_events"] == 5 and f["funding_source"].startswith("announced (2 rates, ")


def test_a_funding_time_before_a_fill_is_charged_to_the_position_before_it():
    s = session(0.0, FundingSchedule(np.array([T0], np.int64), np.array([0.001]), np.array([np.nan])))
    q = long_one(s, T0 - 2 * NS)  # long at 23:59:58, filled 1 us later
    tick(s, T0 - NS)
    # a sell fill 1 s after 00:00 reaches the core before the next book event: the funding at 00:00
    # is charged on the long held then (q), not on the flat position after the fill
    s.on_fill(T0 + NS, -1, q, 60_000.0, 0.0, False)
    tick(s, T0 + 2 * NS)
    assert int(s.D[CO.D_NFUND_SCHED]) == 1
    assert s.P[PF.P_FUNDING] == pytest.approx(q * 60_000.05 * 0.001, rel=1e-12)


def test_an_empty_schedule_books_exactly_the_constant():
    s = session()
    q = long_one(s, T0 - H)
    tick(s, T0 + 17 * H)  # one book event after three funding times: 00:00, 08:00, 16:00
    assert int(s.D[CO.D_NFUND_CONST]) == 3 and int(s.D[CO.D_NFUND_SCHED]) == 0
    assert s.P[PF.P_FUNDING] == 3 * q * 60_000.05 * 0.0001  # PF.funding's formula, bit for bit
