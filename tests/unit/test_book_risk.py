"""The book's risk rules (orderflow.risk.portfolio), each against numbers computed by hand: capital in use
summed over every symbol, the book's VaR95 from a given covariance (parametric and historical), the
correlation budget, and the allocation of simultaneous entries by confidence x EV per unit of risk."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orderflow.backtest.config import VenueAccountConfig
from orderflow.backtest.engine import Market
from orderflow.backtest.portfolio import merge_order, run_book_backtest
from orderflow.core.instruments import Instrument
from orderflow.risk import layout as RL
from orderflow.risk import portfolio as PS
from orderflow.risk.config import RiskConfig
from orderflow.risk.covariance import Z95, portfolio_var95
from orderflow.strategy.config import StrategyConfig
from support.book_markets import flat_market, strong_buy

EQ = 100_000.0
PX = 100.0
LOT = 0.001


def book(n: int, notionals: list[float], cov: np.ndarray | None = None, bars: int = 100) -> PS.PortfolioState:
    """A book of ``n`` symbols holding the signed ``notionals`` at mid PX, with covariance ``cov``."""
    B = PS.new_portfolio(n, RiskConfig())
    for k, w in enumerate(notionals):
        PS.post(B, k, PX, 0.0, w / PX, 0.0)
    if cov is not None:
        B.C[:] = cov
        B.QI[PS.QI_NBARS] = bars
    return B


def check(B, risk: RiskConfig, k: int, side: int, notional: float):
    RS = np.zeros(RL.N_S, np.int64)
    out = PS.check_book(B, RS, risk.to_record()[0], k, side, PX, notional / PX, 0.0, EQ, LOT, 5.0)
    return out, RS


def test_capital_in_use_sums_every_symbol_the_third_gets_what_is_left():
    """Three symbols asking 20% each under a 50% cap: the third is sized to the remaining 10%."""
    risk = RiskConfig(max_position=0.3, max_capital_in_use=0.5, correlation_budget=10.0)
    B = book(3, [0.2 * EQ, -0.2 * EQ, 0.0])  # gross counts: a short uses capital as a long does
    (qty, code, value, limit, resized), RS = check(B, risk, 2, 1, 0.2 * EQ)
    assert code == RL.OK and resized == RL.MAX_CAPITAL
    assert qty == pytest.approx(0.1 * EQ / PX)  # 100 units: 10,000 of the 50,000 budget left
    assert value == pytest.approx(0.5) and limit == 0.5
    # an unfilled entry of another symbol counts as well: 5% resting leaves 5%
    PS.post(B, 1, PX, 0.0, -0.2 * EQ / PX, -0.05 * EQ / PX)
    (qty, *_), _ = check(B, risk, 2, 1, 0.2 * EQ)
    assert qty == pytest.approx(0.05 * EQ / PX)
    # nothing left: refused with the numbers of the smallest entry (one lot)
    PS.post(B, 2, PX, 0.0, 0.0, 0.0)
    PS.post(B, 1, PX, 0.0, -0.3 * EQ / PX, 0.0)
    (qty, code, value, limit, _), RS = check(B, risk, 2, 1, 0.2 * EQ)
    assert qty == 0.0 and code == RL.MAX_CAPITAL
    assert value == pytest.approx((0.5 * EQ + 1 * PX * LOT * math.ceil(5.0 / (PX * LOT))) / EQ)
    assert limit == 0.5 and RS[RL.S_REFUSED0 + RL.MAX_CAPITAL] == 1


def test_the_books_var_with_a_given_covariance():
    """sigma 1% and 2% per bar, rho 0.5, 60 bars: holding 10,000 of the first, an entry in the second is
    sized to the root of Z95^2 h (w'Cw) = (2% of equity)^2, computed here by hand."""
    s0, s1, rho = 0.01, 0.02, 0.5
    C = np.array([[s0 * s0, rho * s0 * s1], [rho * s0 * s1, s1 * s1]])
    risk = RiskConfig(max_position=1.0, correlation_budget=10.0, var_horizon_s=600.0, cov_bar_s=10.0)
    h = 60.0
    w0 = 10_000.0
    B = book(2, [w0, 0.0], C)
    # by hand: s1^2 x^2 + 2 rho s0 s1 w0 x + s0^2 w0^2 = (0.02 EQ / Z95)^2 / h
    a, b, c = s1 * s1, 2 * rho * s0 * s1 * w0, s0 * s0 * w0 * w0 - (0.02 * EQ / Z95) ** 2 / h
    x = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    # worked once by hand: D = (2,000 / 1.64485)^2 / 60 = 24,640; 4e-4 x^2 + 2 x - 14,640 = 0: x = 4,046
    assert x == pytest.approx(4_046.1, abs=1.0)
    (qty, code, value, limit, resized), _ = check(B, risk, 1, 1, 0.5 * EQ)
    assert code == RL.OK and resized == RL.PORTFOLIO_VAR95
    assert qty * PX <= x + 1e-6 and qty * PX > x - LOT * PX  # the lot below the root
    assert value <= 0.02 and limit == 0.02
    # the kernel's figure is the parametric VaR of the covariance module
    w = np.array([w0, qty * PX])
    assert value * EQ == pytest.approx(portfolio_var95(w, C, h), rel=1e-12)
    # a hedge (a short in the second) lowers the VaR: the same request fits
    (qty_h, code_h, _, _, resized_h), _ = check(B, risk, 1, -1, 0.05 * EQ)
    assert code_h == RL.OK and resized_h == RL.OK and qty_h == pytest.approx(0.05 * EQ / PX)
    # before cov_min_bars bars the book's VaR is not checked
    B.QI[PS.QI_NBARS] = risk.cov_min_bars - 1
    (qty_w, *_), _ = check(B, risk, 1, 1, 0.3 * EQ)
    assert qty_w == pytest.approx(0.3 * EQ / PX)


def test_the_books_historical_var():
    """Historical: the 5% lower quantile of w'r over the kept bars, times sqrt(h)."""
    rng = np.random.default_rng(3)
    R = rng.normal(0, 0.01, (200, 2))
    risk = RiskConfig(max_position=1.0, correlation_budget=10.0, portfolio_var="historical")
    B = book(2, [10_000.0, 0.0], np.cov(R.T), bars=200)
    B.R[:200] = R
    B.QI[PS.QI_HIST] = 200
    C = risk.to_record()[0]
    w = np.array([10_000.0, 2_000.0])
    pnl = np.sort(R @ w)
    expect = -pnl[math.floor(0.05 * 199)] * math.sqrt(600.0 / 10.0)
    assert PS.book_var95(B, C, 1, 1, 2_000.0) == pytest.approx(expect, rel=1e-12)
    (qty, code, value, _, resized), _ = check(B, risk, 1, 1, 0.9 * EQ)
    assert code == RL.OK and resized == RL.PORTFOLIO_VAR95 and value <= 0.02
    assert PS.book_var95(B, C, 1, 1, (qty + 10 * LOT) * PX) > 0.02 * EQ  # a little more would not fit


def test_perfectly_correlated_symbols_take_one_positions_budget():
    v = 1e-4
    C = np.array([[v, v], [v, v]])
    risk = RiskConfig()  # correlation_budget = max_position = 5%
    B = book(2, [0.05 * EQ, 0.0], C)
    (qty, code, value, limit, _), RS = check(B, risk, 1, 1, 0.03 * EQ)
    assert qty == 0.0 and code == RL.CORRELATION_BUDGET
    one_lot = math.ceil(5.0 / (PX * LOT)) * LOT * PX  # the smallest tradeable entry
    assert value == pytest.approx((0.05 * EQ + one_lot) / EQ) and limit == pytest.approx(0.05)
    assert RS[RL.S_REFUSED0 + RL.CORRELATION_BUDGET] == 1
    # the other direction hedges: room for 5% + 5%, the 3% asked is granted whole
    (qty, code, _, _, resized), _ = check(B, risk, 1, -1, 0.03 * EQ)
    assert code == RL.OK and resized == RL.OK and qty == pytest.approx(0.03 * EQ / PX)
    # half held: the rest of the budget
    B2 = book(2, [0.02 * EQ, 0.0], C)
    (qty, code, value, _, resized), _ = check(B2, risk, 1, 1, 0.05 * EQ)
    assert (
        resized == RL.CORRELATION_BUDGET
        and qty == pytest.approx(0.03 * EQ / PX)
        and value == pytest.approx(0.05)
    )
    # uncorrelated: each its own budget
    B3 = book(2, [0.05 * EQ, 0.0], np.diag([v, v]))
    (qty, code, _, _, resized), _ = check(B3, risk, 1, 1, 0.05 * EQ)
    assert resized == RL.OK and qty == pytest.approx(0.05 * EQ / PX)
    # before the covariance is warm every correlation counts as 1
    B3.QI[PS.QI_NBARS] = 0
    (qty, code, *_), _ = check(B3, risk, 1, 1, 0.05 * EQ)
    assert qty == 0.0 and code == RL.CORRELATION_BUDGET


def test_one_symbol_has_no_book_rules_but_capital():
    B = book(1, [0.0])
    (qty, code, _, _, resized), _ = check(B, RiskConfig(max_position=1.0), 0, 1, 0.4 * EQ)
    assert code == RL.OK and resized == RL.OK and qty == pytest.approx(0.4 * EQ / PX)


def test_merge_order_is_by_exchange_time_trades_first_then_symbol():
    def mk(sym, b_ts, t_ts):
        n, m = len(b_ts), len(t_ts)
        lv = np.full((n, 1), 1.0)
        return Market("sim", sym, np.array(b_ts, np.int64), np.array(b_ts, np.int64), lv, lv, lv + 1, lv,
                      np.array(t_ts, np.int64), np.array(t_ts, np.int64), np.ones(m), np.ones(m),
                      np.ones(m, np.int64))  # fmt: skip

    s, kd, i, ts, _ = merge_order([mk("A", [1, 3], [3]), mk("B", [1, 2], [1])])
    assert list(ts) == [1, 1, 1, 2, 3, 3]
    assert list(zip(s, kd, i, strict=True)) == [
        (1, 0, 0),
        (0, 1, 0),
        (1, 1, 0),
        (1, 1, 1),
        (0, 0, 0),
        (0, 1, 1),
    ]


# ---------------------------------------------------------------------- allocation, through the loop
def test_allocation_gives_the_budget_to_the_higher_score():
    """Two symbols signal at the same exchange time, the capital budget covers one: the one with the
    higher confidence x EV per unit of risk is granted (though it comes second), the other is refused
    with rule allocation; alone, each would have entered."""
    n = 3
    markets = [flat_market("AAAUSDT", n, 100.0, 0.01), flat_market("BBBUSDT", n, 100.0, 0.01)]
    sigs = [strong_buy(n, 0.75), strong_buy(n, 0.9)]
    insts = [Instrument("binance-usdm", m.symbol, 0.01, LOT, 5.0) for m in markets]
    strategy = StrategyConfig(ev_cost_mult=0.0, confidence_gate=0.55, quality_gate=0.0, pyramid=False)
    risk = RiskConfig(max_position=0.05, max_capital_in_use=0.05, correlation_budget=10.0, var95_limit=1.0,
                      min_trade_interval_s=0.0)  # fmt: skip
    cfg = VenueAccountConfig(close_at_end=False)
    alone = [
        run_book_backtest([m], [s], [i], cfg, strategy, risk)
        for m, s, i in zip(markets, sigs, insts, strict=True)
    ]
    assert all(len(r.symbols[m.symbol].fills) > 0 for r, m in zip(alone, markets, strict=True))
    res = run_book_backtest(markets, sigs, insts, cfg, strategy, risk)
    a, b = res.symbols["AAAUSDT"], res.symbols["BBBUSDT"]
    assert res.info["groups_allocated"] >= 1
    assert len(b.fills) > 0 and b.fills["ts"].iloc[0] == alone[1].symbols["BBBUSDT"].fills["ts"].iloc[0]
    assert a.rejections.get("risk:allocation") == 1  # at the first event; after, the capital is in use
    assert len(a.fills) == 0
    assert a.rejections.get("risk:max_capital", 0) >= 1  # the next events: BBB holds the whole budget
    assert a.info["book_bound"] == n and b.info["book_bound"] == 0


def _two(n: int, risk: RiskConfig):
    markets = [flat_market("AAAUSDT", n, 100.0, 0.01), flat_market("BBBUSDT", n, 100.0, 0.01)]
    sigs = [strong_buy(n, 0.75), strong_buy(n, 0.9)]
    insts = [Instrument("binance-usdm", m.symbol, 0.01, LOT, 5.0) for m in markets]
    strategy = StrategyConfig(ev_cost_mult=0.0, confidence_gate=0.55, quality_gate=0.0, pyramid=False)
    return run_book_backtest(markets, sigs, insts, VenueAccountConfig(close_at_end=False), strategy, risk)


LOOSE = {"max_position": 0.05, "max_capital_in_use": 1.0, "correlation_budget": 10.0, "var95_limit": 1.0,
         "min_trade_interval_s": 0.0, "max_holding_s": 2.0}  # fmt: skip


def test_the_24h_cap_counts_the_whole_book_and_a_symbol_may_have_its_own():
    """max_trades_24h is the book's: one entry in all, though both symbols signal at the same time.
    symbol_max_trades_24h caps each symbol: one entry each, positions closed after 2 s, re-entries
    refused by the symbol's cap."""
    res = _two(12, RiskConfig(**LOOSE, max_trades_24h=1))
    entries = {s: int((r.fills["action"] == "enter").sum()) for s, r in res.symbols.items()}
    assert entries == {"AAAUSDT": 0, "BBBUSDT": 1}  # the higher score was granted first
    assert res.symbols["AAAUSDT"].rejections.get("risk:max_trades_24h", 0) >= 1
    res = _two(12, RiskConfig(**LOOSE, max_trades_24h=100, symbol_max_trades_24h=1))
    for r in res.symbols.values():
        assert int((r.fills["action"] == "enter").sum()) == 1
        assert (r.fills["action"] == "exit").sum() >= 1  # closed by max_holding, then refused again
        assert r.rejections.get("risk:max_trades_24h", 0) >= 1
    assert RiskConfig(symbol_max_trades_24h=3).for_symbol().max_trades_24h == 3
    assert RiskConfig(symbol_daily_drawdown=0.01).for_symbol().daily_drawdown == 0.01
    assert RiskConfig().for_symbol() == RiskConfig()
