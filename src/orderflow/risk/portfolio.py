"""The book's risk across symbols: numba kernels over one :class:`PortfolioState` that every symbol's
trading core shares (the same arrays in each symbol's :class:`~orderflow.engine.core.CoreState`).

What each symbol posts (its row of ``Q``, written by the core at every book event and fill):
its last mid, its PnL marked there (equity - initial), its signed position notional and the notional
of entry orders sent or planned but not yet filled (the rest of an entry parent). From them:

- **equity of the book** = the symbol's own equity + the other symbols' PnL (:func:`book_equity`); with
  one symbol, exactly the symbol's equity;
- **capital in use** = gross notional of every position and every unfilled entry (:func:`other_gross`
  for the others; the entry's own position and size are added by the risk check);
- **the covariance** of per-bar log returns of the mids (``cov_bar_s`` bars on the decision clock,
  EWMA with ``cov_lambda``; :func:`on_bar`), estimated from bars that closed before the decision
  only; a bar in which a symbol had no valid mid leaves its row and column as they were (the
  :mod:`orderflow.risk.covariance` convention); a gap of several bars counts as one bar;
- **the portfolio breakers**: the daily drawdown breaker and the 24 h entry cap of the whole book, the
  risk layout's ``RS``/``RSF``/``ring`` arrays over the book's equity and every symbol's entries.

The checks of an entry on symbol ``k`` of ``side`` and ``qty`` at ``price`` (:func:`check_book`, after
the symbol's own :func:`orderflow.risk.kernels.check_entry` approved ``qty``), each of which sizes the
entry down to what fits or refuses it when less than the smallest tradeable size fits, with the
numbers (rule, value after the smallest entry, limit):

1. capital in use: ``(other gross + |own position + entry|) * price / equity <= max_capital_in_use``
   (rule ``max_capital``);
2. the correlation budget: the correlated exposure in the entry's direction after it,
   ``side * sum_j rho(k, j) * w_j / equity <= correlation_budget`` (``w``: signed notionals, positions
   plus unfilled entries; ``rho(k, k) = 1``; before ``cov_min_bars`` bars every correlation counts as
   1), so two perfectly correlated symbols share one position's budget and a hedge frees budget
   (rule ``correlation_budget``);
3. the book's VaR95 after the entry over ``var_horizon_bars`` bars, ``<= var95_limit * equity``:
   parametric ``Z95 * sqrt(h * w' C w)`` (``portfolio_var = ewma``) or historical, the 5% quantile of
   ``w' r_t`` over the last ``cov_history_bars`` bars times ``sqrt(h)`` (``historical``); checked once
   the covariance has ``cov_min_bars`` bars (rule ``portfolio_var95``).

With one symbol the book is that symbol: checks 2 and 3 are skipped (its own position cap and VaR in
``check_entry`` already say it all) and check 1 is the one ``check_entry`` made, so a single-symbol run
is exactly what it was without a book.

Allocation (:func:`entry_score`): when several symbols' entries are decided at the same exchange time,
the driver grants them in the order of ``confidence * EV per unit / stop distance`` (EV per unit of
risk), re-running :func:`check_book` after every grant; an entry that no longer fits is refused with
rule ``allocation`` (value its score, limit the last granted score).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from orderflow.core.records import Indices
from orderflow.risk import kernels as RK
from orderflow.risk import layout as RL
from orderflow.risk.config import RiskConfig
from orderflow.risk.covariance import Z95

# per-symbol rows of Q (float64)
_q = Indices()
Q_MID = _q()  # last valid mid (NaN: none yet)
Q_PNL = _q()  # equity - initial, marked at Q_MID
Q_NOTIONAL = _q()  # signed position * mid
Q_PENDING = _q()  # signed notional of the entry not yet filled (the rest of the parent), at its mid
Q_BAR_MID = _q()  # mid at the last bar close (NaN: none)
N_Q = _q.n
# scalars QI (int64)
_qi = Indices()
QI_NBARS = _qi()  # bars closed
QI_NEXT_BAR = _qi()  # the next bar closes at the first decision at or after this time (ns)
QI_HIST = _qi()  # bar returns written to the history ring in all
QI_DEFER = _qi()  # 1 while the driver groups simultaneous entries (they wait for core_commit)
N_QI = _qi.n


class PortfolioState(NamedTuple):
    """The arrays of the book (module docstring), shared by every symbol's core."""

    Q: np.ndarray  # (K, N_Q) float64: each symbol's row
    QI: np.ndarray  # (N_QI,) int64
    C: np.ndarray  # (K, K) float64: the EWMA covariance of per-bar log returns
    R: np.ndarray  # (cov_history_bars, K) float64: the last bar returns (a ring, QI_HIST % rows)
    RS: np.ndarray  # int64 (risk.layout N_S): the book's breaker and 24 h counters
    RSF: np.ndarray  # float64 (risk.layout N_F): the book's day equity figures
    ring: np.ndarray  # int64 (max_trades_24h): the book's entry times
    RC: np.ndarray  # the book's risk config record, 1 element (RiskConfig.to_record)


def new_portfolio(n_symbols: int, risk: RiskConfig) -> PortfolioState:
    """A fresh book of ``n_symbols`` symbols under the limits of ``risk``."""
    max_trades_24h, history_bars = risk.max_trades_24h, risk.cov_history_bars
    if n_symbols < 1:
        raise ValueError(f"a book needs at least one symbol, got {n_symbols}")
    Q = np.zeros((n_symbols, N_Q))
    Q[:, Q_MID] = np.nan
    Q[:, Q_BAR_MID] = np.nan
    return PortfolioState(
        Q=Q, QI=np.zeros(N_QI, np.int64), C=np.zeros((n_symbols, n_symbols)),
        R=np.full((history_bars, n_symbols), np.nan), RS=np.zeros(RL.N_S, np.int64), RSF=np.zeros(RL.N_F),
        ring=np.zeros(max_trades_24h, np.int64), RC=risk.to_record(),
    )  # fmt: skip


@njit(cache=True)
def post(B, k, mid, pnl, pos, pending_qty):
    """Symbol ``k`` posts its row: mid, PnL at that mid, signed position and unfilled entry (base)."""
    Q = B.Q
    Q[k, Q_MID] = mid
    Q[k, Q_PNL] = pnl
    Q[k, Q_NOTIONAL] = pos * mid
    Q[k, Q_PENDING] = pending_qty * mid


@njit(cache=True)
def book_equity(B, k, own_equity):
    """The book's equity seen by symbol ``k``: its own equity plus the others' PnL (exactly
    ``own_equity`` with one symbol)."""
    Q = B.Q
    if Q.shape[0] == 1:
        return own_equity
    e = own_equity
    for j in range(Q.shape[0]):
        if j != k and math.isfinite(Q[j, Q_PNL]):
            e += Q[j, Q_PNL]
    return e


@njit(cache=True)
def other_gross(B, k):
    """Gross notional of the other symbols' positions and unfilled entries (quote)."""
    Q = B.Q
    g = 0.0
    for j in range(Q.shape[0]):
        if j != k:
            g += abs(Q[j, Q_NOTIONAL]) + abs(Q[j, Q_PENDING])
    return g


@njit(cache=True)
def on_bar(B, C, t):
    """Close the bar(s) ending at or before decision time ``t`` (the caller checks
    ``t >= QI[QI_NEXT_BAR]``): each symbol's log return since the last close enters the covariance and
    the history; the next close is set."""
    Q, QI = B.Q, B.QI
    n = Q.shape[0]
    bar = C.cov_bar_ns
    first = QI[QI_NEXT_BAR] == 0
    QI[QI_NEXT_BAR] = (t // bar + 1) * bar
    r = np.full(n, np.nan)
    for j in range(n):
        m0, m1 = Q[j, Q_BAR_MID], Q[j, Q_MID]
        if math.isfinite(m0) and math.isfinite(m1) and m0 > 0.0 and m1 > 0.0:
            r[j] = math.log(m1 / m0)
        if math.isfinite(m1):
            Q[j, Q_BAR_MID] = m1
    if first:
        return
    lam = C.cov_lambda
    for i in range(n):
        if not math.isfinite(r[i]):
            continue
        for j in range(n):
            if math.isfinite(r[j]):
                B.C[i, j] = lam * B.C[i, j] + (1.0 - lam) * r[i] * r[j]
    rows = B.R.shape[0]
    B.R[QI[QI_HIST] % rows, :] = r
    QI[QI_HIST] += 1
    QI[QI_NBARS] += 1


@njit(cache=True)
def gate_book(B, C, ts, equity):
    """The book's breakers before an entry at ``ts`` with book equity ``equity``: ``(code, value,
    limit)``, OK when the book's daily drawdown breaker is not tripped and fewer than
    ``max_trades_24h`` entries of the book fall in the last 24 h."""
    RK.on_equity(B.RS, B.RSF, C, ts, equity)
    if B.RS[RL.S_HALTED] != 0:
        return RL.DAILY_DRAWDOWN, B.RSF[RL.F_TRIP_DD], C.daily_drawdown
    n = B.ring.shape[0]
    head = B.RS[RL.S_HEAD]
    if head >= n and ts - B.ring[head % n] <= RL.DAY_NS:
        return RL.MAX_TRADES_24H, float(n), float(C.max_trades_24h)
    return RL.OK, 0.0, 0.0


@njit(cache=True)
def record_book_entry(B, ts):
    """An entry of any symbol was sent at ``ts``: the book's 24 h window."""
    n = B.ring.shape[0]
    B.ring[B.RS[RL.S_HEAD] % n] = ts
    B.RS[RL.S_HEAD] += 1


@njit(cache=True)
def _exposures(B, k, side, add_notional):
    """Signed notionals (positions plus unfilled entries) after adding ``side * add_notional`` to k."""
    Q = B.Q
    n = Q.shape[0]
    w = np.empty(n)
    for j in range(n):
        w[j] = Q[j, Q_NOTIONAL] + Q[j, Q_PENDING]
    w[k] += side * add_notional
    return w


@njit(cache=True)
def correlation(B, C, i, j):
    """rho(i, j) of the covariance; 1 before ``cov_min_bars`` bars or when a variance is 0."""
    if i == j:
        return 1.0
    if B.QI[QI_NBARS] < C.cov_min_bars:
        return 1.0
    vi, vj = B.C[i, i], B.C[j, j]
    if not (vi > 0.0 and vj > 0.0):
        return 1.0
    return max(-1.0, min(1.0, B.C[i, j] / math.sqrt(vi * vj)))


@njit(cache=True)
def correlated_exposure(B, C, k, side, add_notional):
    """The correlated exposure in the entry's direction after adding it (quote): ``side * sum_j
    rho(k, j) * w_j``."""
    w = _exposures(B, k, side, add_notional)
    e = 0.0
    for j in range(w.shape[0]):
        e += correlation(B, C, k, j) * w[j]
    return side * e


@njit(cache=True)
def book_var95(B, C, k, side, add_notional):
    """The book's VaR95 (quote, a loss) after adding the entry, over ``var_horizon_bars`` bars
    (module docstring: parametric or historical)."""
    w = _exposures(B, k, side, add_notional)
    h = C.var_horizon_bars
    n = w.shape[0]
    if C.portfolio_var == 0:  # ewma
        v = 0.0
        for i in range(n):
            for j in range(n):
                v += w[i] * B.C[i, j] * w[j]
        return Z95 * math.sqrt(max(v, 0.0) * h)
    rows = min(B.QI[QI_HIST], B.R.shape[0])
    pnl = np.empty(rows)
    for t in range(rows):
        s = 0.0
        for j in range(n):
            r = B.R[t, j]
            if math.isfinite(r):
                s += w[j] * r
        pnl[t] = s
    if rows == 0:
        return 0.0
    pnl.sort()
    q = pnl[math.floor(0.05 * (rows - 1))]  # the 5% quantile, lower order statistic
    return max(-q, 0.0) * math.sqrt(h)


@njit(cache=True)
def _cap_qty(room, price):
    return max(room, 0.0) / price


@njit(cache=True)
def check_book(B, RS, C, k, side, price, qty, pos_qty, equity, lot_size, min_notional):
    """The book's checks of an entry of ``qty`` (base, approved by the symbol's own check) on symbol
    ``k`` (module docstring): ``(qty, code, value, limit, resized_code)``, the quantity that fits
    (a multiple of ``lot_size``, 0 when refused), the refusing rule or OK, the measure after the
    smallest tradeable entry (a refusal) or after this one (an approval) and its limit, and the rule
    that cut the size (OK when none). A refusal increments ``RS[S_REFUSED0 + code]`` (the symbol's
    risk state)."""
    n = B.Q.shape[0]
    binding = RL.OK
    q = qty
    apos = abs(pos_qty)
    # 1. capital in use, with the other symbols' positions and unfilled entries
    cap = _cap_qty(C.max_capital_in_use * equity - other_gross(B, k), price) - apos
    if cap < q:
        q, binding = cap, RL.MAX_CAPITAL
    if n > 1:
        # 2. the correlation budget: linear in the entry, so the room is exact
        e0 = correlated_exposure(B, C, k, side, 0.0)
        cap = _cap_qty(C.correlation_budget * equity - e0, price)
        if cap < q:
            q, binding = cap, RL.CORRELATION_BUDGET
        # 3. the book's VaR: the largest entry within the limit (quadratic for ewma; halving otherwise)
        if B.QI[QI_NBARS] >= C.cov_min_bars and book_var95(B, C, k, side, q * price) > C.var95_limit * equity:
            lim = C.var95_limit * equity
            lo, hi = 0.0, q
            if C.portfolio_var == 0:
                w = _exposures(B, k, side, 0.0)
                a = price * price * B.C[k, k]
                cw = 0.0
                for j in range(n):
                    cw += B.C[k, j] * w[j]
                b = 2.0 * side * price * cw
                c = 0.0
                for i in range(n):
                    for j in range(n):
                        c += w[i] * B.C[i, j] * w[j]
                d = (lim / Z95) ** 2 / C.var_horizon_bars
                disc = b * b - 4.0 * a * (c - d)
                hi = (-b + math.sqrt(disc)) / (2.0 * a) if a > 0.0 and disc >= 0.0 else 0.0
                hi = min(max(hi, 0.0), q)
            else:
                for _ in range(40):
                    mid = 0.5 * (lo + hi)
                    if book_var95(B, C, k, side, mid * price) <= lim:
                        lo = mid
                    else:
                        hi = mid
                hi = lo
            q, binding = hi, RL.PORTFOLIO_VAR95
    lots = math.floor(max(q, 0.0) / lot_size + RL.LOT_EPS)
    min_lots = max(1.0, math.ceil(min_notional / (price * lot_size) - RL.LOT_EPS))
    if binding != RL.OK and lots >= min_lots and binding == RL.PORTFOLIO_VAR95:
        # float noise at the root: step down until the rounded entry is within the limit
        while lots >= min_lots and book_var95(B, C, k, side, RK.lot_qty(lots, lot_size) * price) > (
            C.var95_limit * equity * (1.0 + 1e-12)
        ):
            lots -= 1.0
    if lots < min_lots:
        if binding == RL.OK:  # only when qty itself was under the smallest tradeable size
            RS[RL.S_REFUSED0 + RL.MIN_SIZE] += 1
            return 0.0, RL.MIN_SIZE, q * price, min_lots * lot_size * price, RL.OK
        value, limit = _measure(B, C, binding, k, side, price, apos, min_lots * lot_size, equity)
        RS[RL.S_REFUSED0 + binding] += 1
        return 0.0, binding, value, limit, RL.OK
    out = RK.lot_qty(lots, lot_size)
    if binding == RL.OK:
        return out, RL.OK, 0.0, 0.0, RL.OK
    value, limit = _measure(B, C, binding, k, side, price, apos, out, equity)
    return out, RL.OK, value, limit, binding


@njit(cache=True)
def _measure(B, C, code, k, side, price, apos, qty, equity):
    """(measure, limit) of rule ``code`` after an entry of ``qty`` (fractions of equity)."""
    if code == RL.MAX_CAPITAL:
        return (other_gross(B, k) + (apos + qty) * price) / equity, C.max_capital_in_use
    if code == RL.CORRELATION_BUDGET:
        return correlated_exposure(B, C, k, side, qty * price) / equity, C.correlation_budget
    if code == RL.PORTFOLIO_VAR95:
        return book_var95(B, C, k, side, qty * price) / equity, C.var95_limit


@njit(cache=True)
def entry_score(confidence, ev_unit, stop_dist):
    """Confidence x expected value per unit of risk (EV per unit / stop distance per unit); 0 without
    an expected value. Ties keep the symbols' order."""
    if not (math.isfinite(confidence) and math.isfinite(ev_unit) and stop_dist > 0.0):
        return 0.0
    return confidence * ev_unit / stop_dist
