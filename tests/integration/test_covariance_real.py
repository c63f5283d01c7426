"""The ex-ante covariance of the portfolio risk (risk/covariance.py) on real data: the 1 m klines of
four USD-M perpetuals (BTC, ETH, SOL, BNB, May 2025) in ../shared/data/context/. The EWMA estimate
made at mid-span from the first half is shown next to the correlations realised in the second half,
a rolling ex-ante 95% VaR of an equal-weight book is breached about as often as it should be, and the
estimate at a bar never reads that bar or any later one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orderflow.risk import covariance as CV

SYMBOLS = ("BTC", "ETH", "SOL", "BNB")
DAY_BARS = 1440


@pytest.fixture(scope="module")
def returns(shared_data) -> np.ndarray:
    base = shared_data / "context" / "binance_usdm_1m_2025-05"
    close = {s: pd.read_feather(base / f"{s}_USDT_USDT-1m-futures.feather").set_index("date")["close"]
             for s in SYMBOLS}  # fmt: skip
    px = pd.DataFrame(close).dropna()  # the minutes all four have: 2025-05-04 15:34 .. 06-03 15:31
    assert len(px) == 43_198
    return np.diff(np.log(px.to_numpy()), axis=0)


def test_the_estimate_at_mid_span_next_to_the_realised_correlations(returns):
    half = len(returns) // 2
    cov = CV.ewma_covariances(returns[: half + 1], halflife_bars=DAY_BARS)[half]  # from bars < half
    est = CV.correlation(cov)
    real = np.corrcoef(returns[half:].T)
    # shown (the figures in docs/results.md): estimated | realised, upper triangle
    pairs = {f"{SYMBOLS[i]}-{SYMBOLS[j]}": (float(est[i, j]), float(real[i, j]))
             for i in range(4) for j in range(i + 1, 4)}  # fmt: skip
    print({k: (round(a, 3), round(b, 3)) for k, (a, b) in pairs.items()})
    assert pairs["BTC-ETH"] == pytest.approx((0.750, 0.762), abs=2e-3)
    assert pairs["ETH-SOL"] == pytest.approx((0.810, 0.805), abs=2e-3)
    assert pairs["SOL-BNB"] == pytest.approx((0.806, 0.663), abs=2e-3)  # BNB decoupled in the second half
    off = ~np.eye(4, dtype=bool)
    assert (est[off] > 0.7).all() and (real[off] > 0.6).all()
    assert np.abs(est - real)[off].max() < 0.16


def test_a_rolling_ex_ante_var_is_breached_about_5_percent_of_the_time(returns):
    covs = CV.ewma_covariances(returns, halflife_bars=DAY_BARS)
    w = np.full(4, 25_000.0)  # 100,000 quote, equal weights, long
    start = 2 * DAY_BARS  # after two days of warm-up
    var = np.array([CV.portfolio_var95(w, covs[t], 1.0) for t in range(start, len(returns))])
    pnl = returns[start:] @ w  # per-bar log-return PnL of the book (close enough to linear at 1 m)
    breach = float((pnl < -var).mean())
    print(f"1 m VaR95 median {np.median(var):.1f} quote; breached {breach:.2%} of {len(var)} bars")
    assert 0.03 < breach < 0.07  # fat tails and volatility clustering: near, not at, 5 %
    # a diversified book: its VaR is below the sum of the four single-symbol VaRs
    t = len(returns) - 1
    alone = sum(CV.portfolio_var95(np.where(np.arange(4) == i, w, 0.0), covs[t], 1.0) for i in range(4))
    assert CV.portfolio_var95(w, covs[t], 1.0) < 0.95 * alone


def test_the_estimate_at_a_bar_never_reads_that_bar_or_later(returns):
    r = returns[:5000].copy()
    a = CV.ewma_covariances(r, halflife_bars=600)
    r[3000:] *= -7.0  # change every return from bar 3000 on
    r[3100, 2] = np.nan  # and drop one
    b = CV.ewma_covariances(r, halflife_bars=600)
    assert np.array_equal(a[:3001], b[:3001]) and not np.allclose(a[3001], b[3001])
    # a missing return leaves that symbol's row and column as they were
    assert np.array_equal(b[3101][2], b[3100][2]) and not np.array_equal(b[3101][0, :2], b[3100][0, :2])


def test_bad_inputs_are_refused_by_name():
    with pytest.raises(ValueError, match="half-life must be > 0"):
        CV.ewma_covariances(np.zeros((3, 2)), 0.0)
    with pytest.raises(ValueError, match=r"returns must be \(bars, symbols\)"):
        CV.ewma_covariances(np.zeros(3), 10.0)
    with pytest.raises(ValueError, match="initial covariance must be 2 x 2"):
        CV.ewma_covariances(np.zeros((3, 2)), 10.0, initial=np.eye(3))


@pytest.fixture(scope="module")
def closes(shared_data) -> np.ndarray:
    base = shared_data / "context" / "binance_usdm_1m_2025-05"
    close = {s: pd.read_feather(base / f"{s}_USDT_USDT-1m-futures.feather").set_index("date")["close"]
             for s in SYMBOLS}  # fmt: skip
    return pd.DataFrame(close).dropna().to_numpy()


def test_the_books_bar_clock_estimates_the_same_covariance(closes):
    """The trading core's covariance (risk.portfolio.on_bar, fed each bar's mids) is the module's EWMA
    of the same log returns."""
    from orderflow.risk import portfolio as PS
    from orderflow.risk.config import RiskConfig

    n = 3000
    risk = RiskConfig(cov_bar_s=60.0, cov_halflife_bars=DAY_BARS)
    C = risk.to_record()[0]
    B = PS.new_portfolio(4, RiskConfig())
    t0 = 1_746_000_000 * 1_000_000_000
    for t in range(n):
        for k in range(4):
            B.Q[k, PS.Q_MID] = closes[t, k]
        PS.on_bar(B, C, t0 + t * 60 * 1_000_000_000)
    # n bars closed = n - 1 returns seen: the module's estimate before return n - 1 (0-based)
    ref = CV.ewma_covariances(np.diff(np.log(closes[: n + 1]), axis=0), halflife_bars=DAY_BARS)[n - 1]
    np.testing.assert_allclose(B.C, ref, rtol=1e-9)
    assert B.QI[PS.QI_NBARS] == n - 1


def test_the_correlation_budget_from_real_correlations(returns):
    """Long BTC at 5% of equity (the per-symbol cap, and the default correlation budget): how much of a
    long in each other perpetual the book allows, from the estimate at mid-span, next to what the
    realised correlations would have allowed. With rho the room is 5% (1 - rho); a short is a hedge."""
    from orderflow.risk import layout as RL
    from orderflow.risk import portfolio as PS
    from orderflow.risk.config import RiskConfig

    half = len(returns) // 2
    cov = CV.ewma_covariances(returns[: half + 1], halflife_bars=DAY_BARS)[half]
    est, real = CV.correlation(cov), np.corrcoef(returns[half:].T)
    risk = RiskConfig(var95_limit=1.0)  # the budget alone
    C = risk.to_record()[0]
    eq, px, lot = 100_000.0, 100.0, 0.001
    B = PS.new_portfolio(4, RiskConfig())
    B.C[:] = cov
    B.QI[PS.QI_NBARS] = 10_000
    PS.post(B, 0, px, 0.0, 0.05 * eq / px, 0.0)  # long BTC, 5%
    rows = {}
    for k in (1, 2, 3):
        RS = np.zeros(RL.N_S, np.int64)
        qty, code, value, limit, resized = PS.check_book(
            B, RS, C, k, 1, px, 0.05 * eq / px, 0.0, eq, lot, 5.0
        )
        assert code == RL.OK and resized == RL.CORRELATION_BUDGET
        room = 0.05 * (1.0 - est[0, k])
        assert qty * px / eq == pytest.approx(room, abs=lot * px / eq)
        assert value == pytest.approx(0.05, abs=lot * px / eq) and limit == pytest.approx(0.05)
        qs, *_ = PS.check_book(B, RS, C, k, -1, px, 0.05 * eq / px, 0.0, eq, lot, 5.0)
        assert qs == pytest.approx(0.05 * eq / px)  # the short hedges BTC: the whole 5%
        rows[f"BTC long 5%, {SYMBOLS[k]} long"] = (round(100 * qty * px / eq, 3),
                                                  round(float(100 * 0.05 * (1 - real[0, k])), 3))  # fmt: skip
    print(rows)  # % of equity allowed: from the estimate | what the realised correlation would allow
    assert rows["BTC long 5%, ETH long"] == pytest.approx((1.25, 1.19), abs=0.01)
