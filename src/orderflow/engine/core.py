"""The trading core: what happens at a book event, at a fill and at a final order report, written once as
``@njit`` functions over state arrays. The backtester's compiled loop
(:func:`orderflow.backtest.loop.run_loop`) and the paper/live drivers call exactly these functions;
they differ only in where events come from and where orders go (the simulated exchange's kernels, or an
exchange client).

State (one set per symbol), grouped in named tuples that numba compiles (built once in Python by the
backtester and :class:`orderflow.engine.session.TradingSession`, passed down unchanged):

- :class:`CoreState`: the strategy's ``G``/``H`` (:mod:`orderflow.strategy.layout`) and config record
  ``SC``, the risk engine's ``RS``/``RSF``/``ring`` (:mod:`orderflow.risk.layout`) and config record
  ``RC``, the portfolio ``P`` (:mod:`orderflow.execution.portfolio`), the execution config record ``X``
  (the configs are 1-element record arrays read by field name, ``SC[0].w_ofi``) and ``D`` (int64) / ``Df``
  (float64), the core's own bookkeeping (indices below): order ids, the order in flight, the open round
  trip, output counters, the last equity sample, funding and trade times;
- :class:`CoreOutputs`: fills ``fo_i``/``fo_f``, equity ``eq_ts``/``eq_f``, round trips ``tr_i``/``tr_f``
  (columns below); a full buffer sets ``D[D_OVERFLOW]`` and drops nothing silently;
- :class:`CoreParams`: the scalar parameters (instrument, sampling, sizing, funding);
- per book event, :class:`SignalRow` (what the strategy reads) and the book's top levels
  (:class:`orderflow.strategy.layout.BookLevels`).

:func:`core_book` returns what to send (or nothing): a MARKET order (IOC), a post-only LIMIT order (GTC)
at a price, both with client order id ``D[D_OID]``, or the CANCEL of the order in flight
(``D[D_CUR_OID]``); the caller sends it and later reports fills with :func:`core_fill` and each order's
end with :func:`core_report`.

Execution (``X``, the record of :class:`orderflow.execution.exec_config.ExecutionConfig`): an approved
entry becomes a parent of whole lots sent as children, one at a time:

- ``entry_style="market"``: MARKET children. A parent above ``max_share_of_depth`` of the visible depth
  the order would take (``depth_levels`` levels) is sliced TWAP-style: ``n`` children (at most
  ``twap_max_children``), one every ``twap_duration_s / n``;
- ``entry_style="passive"``: post-only LIMIT children at the own touch (a buy at the best bid). Above the
  depth share, clips of ``iceberg_clip_share`` of the own side's depth, the next one posted when the last
  is done. A resting child is cancelled when the parent is older than ``passive_ttl_s``, and at every
  book event cost control (:func:`orderflow.execution.costs.cost_decision`) compares its expected cost
  with ``max_cost_share_of_ev`` of the signal's expected value on what is left: "reprice" cancels it and
  the next child goes to the new touch; "cancel" ends the parent. Without an expected value (no model
  probabilities: the strategy's EV estimate is 0) only the time limit applies.

A child that ends with nothing filled ends its parent (except after a reprice); an exit decided between
children ends the parent. Exits are single reduce-only MARKET orders for the whole position.

Funding (perpetuals; sign as :func:`orderflow.execution.portfolio.funding`: a long pays a positive
rate, ``paid = position * mark * rate``) is booked from two sources:

- the *schedule* ``FT``/``FR``/``FM`` in :class:`CoreState`: explicit funding times with their rates
  and marks (NaN: the mid). The backtester fills it with the stored history of kind ``funding``
  (:mod:`orderflow.engine.funding`), the paper/live engine with the rates the exchange announces. Each
  time is booked once, at the first book event or fill received at or after it, before that fill: on
  the position held at that time as the core knows its fills;
- the *constant grid*: ``CoreParams.funding_rate`` at every ``k * funding_ns`` (UTC) crossed between
  two book events, on the position after the fills delivered up to the second, marked at its mid. It
  applies only outside ``[FT[0], FT[-1]]`` (everywhere when the schedule is empty, which gives exactly
  the figures of a run without one); inside that span only the schedule's times are booked.

Book events book funding through :func:`core_funding`, which the drivers call before :func:`core_book`
only when ``t >= D[D_NEXT_FUND]`` (the next grid or schedule time): the per-event cost is one compare.
Nothing is booked for times before the first book event, nor while no valid mid is known. ``D`` counts
the funding times booked from each source (``D_NFUND_SCHED``, ``D_NFUND_CONST``) and ``Df`` their
amounts (``DF_FUND_SCHED``, ``DF_FUND_CONST``); their sum is the portfolio's ``P_FUNDING``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from orderflow.core.records import Indices
from orderflow.execution import algos as AL
from orderflow.execution import costs as XK
from orderflow.execution import exec_config as XC
from orderflow.execution import portfolio as PF
from orderflow.risk import kernels as RK
from orderflow.risk import layout as RL
from orderflow.risk import portfolio as PS
from orderflow.strategy import kernels as ST
from orderflow.strategy import layout as STL

# output columns
_fo_i = Indices()  # fills, int64
FO_TS = _fo_i()
FO_SIDE = _fo_i()
FO_MAKER = _fo_i()
FO_ACTION = _fo_i()
N_FO_I = _fo_i.n
_fo_f = Indices()  # fills, float64 (FO_MID: mid when the order was decided)
FO_PX = _fo_f()
FO_QTY = _fo_f()
FO_FEE = _fo_f()
FO_MID = _fo_f()
N_FO_F = _fo_f.n
_eo = Indices()  # equity samples, float64 (their times in a separate int64 array)
EO_EQUITY = _eo()
EO_POS = _eo()
EO_MID = _eo()
EO_VOLSTATE = _eo()
N_EO = _eo.n
_ti = Indices()  # round trips, int64
TI_ENTRY_TS = _ti()
TI_EXIT_TS = _ti()
TI_SIDE = _ti()
TI_REASON = _ti()
TI_VOLSTATE = _ti()
N_TI = _ti.n
_tf = Indices()  # round trips, float64
TF_QTY = _tf()
TF_ENTRY_NOT = _tf()
TF_EXIT_QTY = _tf()
TF_EXIT_NOT = _tf()
TF_FEES = _tf()
TF_SLIP = _tf()
TF_FUND = _tf()
TF_GROSS = _tf()
N_TF = _tf.n

# core bookkeeping D (int64) and Df (float64)
_d = Indices()
D_NFO = _d()  # fill rows written
D_NTR = _d()  # trade rows written (closed trades)
D_OPEN = _d()  # 1 while a trade is open
D_OID = _d()  # last client order id used
D_CUR_OID = _d()  # the order in flight (-1: none)
D_CUR_ACTION = _d()
D_CUR_REASON = _d()
D_F_HEAD = _d()  # fill inbox FIFO pointers (used by the backtest loop)
D_F_TAIL = _d()
D_R_HEAD = _d()  # report inbox FIFO pointers (used by the backtest loop)
D_R_TAIL = _d()
D_OVERFLOW = _d()
D_NEQ = _d()  # equity rows written
D_LAST_EQ = _d()  # time of the last equity sample
D_LAST_FUND = _d()  # time funding was last checked (-1: never)
D_LAST_TRADE = _d()  # receive time of the last trade seen (-1: none)
D_CUR_KIND = _d()  # SEND_MARKET / SEND_LIMIT: the order in flight
D_CUR_TS = _d()  # when it was sent
D_CANCEL_SENT = _d()  # 1 once its cancel was sent
D_CANCEL_WHY = _d()  # CXL_*: why
D_PAR_LOTS = _d()  # lots of the current parent not yet filled (0: no parent)
D_PAR_CHILD = _d()  # lots per child
D_PAR_NEXT_TS = _d()  # earliest time of the next child
D_PAR_END_TS = _d()  # passive parents: cancel what is left after this time
D_PAR_SIDE = _d()
D_PAR_ACTION = _d()
D_PAR_STEP_NS = _d()  # time between children
D_FUND_I = _d()  # the funding schedule's next point not yet passed
D_NFUND_SCHED = _d()  # funding times booked from the schedule (stored or announced rates)
D_NFUND_CONST = _d()  # funding times booked at the constant rate (outside the schedule)
D_NEXT_FUND = _d()  # no funding time is due before this (the next grid or schedule time)
D_SYM = _d()  # this symbol's row in the book (PortfolioState.Q)
D_CAND = _d()  # 1: an approved entry waits for the allocation of its group (core_commit)
D_CAND_SIDE = _d()
D_CAND_ACTION = _d()
D_BOOK_BOUND = _d()  # entries refused or resized by a rule of the book (risk.portfolio), not the symbol's
D_BOOK_FIRST = _d()  # decision time of the first of them (-1: none)
N_D = _d.n
_df = Indices()
DF_CUR_MID = _df()  # mid when the order in flight was decided (its parent's decision)
DF_MID = _df()  # the last valid mid
DF_CUR_PX = _df()  # limit price of the order in flight (NaN: market)
DF_CUR_FILLED = _df()  # quantity filled of the order in flight
DF_PAR_EV = _df()  # the parent's expected value per unit (quote), for cost control
DF_LOT = _df()  # the instrument's lot size
DF_FUND_SCHED = _df()  # funding paid at the schedule's rates (quote, negative = received)
DF_FUND_CONST = _df()  # funding paid at the constant rate
DF_CAND_QTY = _df()  # the waiting entry's approved quantity
DF_CAND_SCORE = _df()  # its score (risk.portfolio.entry_score)
N_DF = _df.n


class CoreState(NamedTuple):
    """The arrays the core reads and writes for one symbol (module docstring)."""

    D: np.ndarray  # int64 (N_D): the core's bookkeeping (D_*)
    Df: np.ndarray  # float64 (N_DF): DF_*
    P: np.ndarray  # float64: the portfolio (execution.portfolio P_*)
    G: np.ndarray  # int64: strategy counters (strategy.layout G_*)
    H: np.ndarray  # float64: strategy position and threshold (H_*)
    SC: np.ndarray  # the strategy config record, 1 element (StrategyConfig.to_record)
    RS: np.ndarray  # int64: risk state (risk.layout S_*)
    RSF: np.ndarray  # float64: risk state, the day's equity figures (risk.layout F_*)
    ring: np.ndarray  # int64: risk's entry times of the last 24 h
    RC: np.ndarray  # the risk config record, 1 element (RiskConfig.to_record)
    X: np.ndarray  # the execution config record, 1 element (ExecutionConfig.to_record)
    FT: np.ndarray  # int64: the funding schedule's times (ascending; empty: the constant grid only)
    FR: np.ndarray  # float64: the rate of each (long pays a positive rate)
    FM: np.ndarray  # float64: the mark price of each (NaN: the mid at booking)
    B: PS.PortfolioState  # the book, shared by every symbol's core (risk.portfolio; one row: no book)


class CoreOutputs(NamedTuple):
    """Preallocated output buffers, filled row by row (columns FO_*, EO_*, TI_*/TF_*)."""

    fo_i: np.ndarray  # (n, N_FO_I) int64 fills
    fo_f: np.ndarray  # (n, N_FO_F) float64 fills
    eq_ts: np.ndarray  # (m,) int64 equity sample times
    eq_f: np.ndarray  # (m, N_EO) float64 equity samples
    tr_i: np.ndarray  # (k, N_TI) int64 round trips
    tr_f: np.ndarray  # (k, N_TF) float64 round trips


class CoreParams(NamedTuple):
    """The scalar parameters of the core."""

    lot: float  # the instrument's lot size
    min_notional: float
    equity_every_ns: int  # equity sampling interval
    max_position_frac: float  # risk's max_position: the largest position as a share of equity
    funding_rate: float  # per funding interval (0: none)
    funding_ns: int  # the funding interval
    tick: float  # the instrument's tick size


class SignalRow(NamedTuple):
    """What the strategy reads at one book event (NaN: unknown)."""

    valid: bool  # the feature vector is valid
    ofi_z: float
    p_dn: float  # calibrated probabilities of a move down / up
    p_up: float
    rv_bps: float
    vol_state: float
    trend_state: float
    vol_pct: float


# what core_book asks the caller to do (CANDIDATE: an approved entry waits for core_commit)
NOTHING, SEND_MARKET, SEND_LIMIT, CANCEL, CANDIDATE = range(5)
# why a resting order was cancelled
CXL_EXPIRED, CXL_REPRICE, CXL_COST = range(3)


def new_core_state() -> tuple[np.ndarray, np.ndarray]:
    """Fresh ``(D, Df)``."""
    D = np.zeros(N_D, dtype=np.int64)
    D[D_CUR_OID] = -1
    D[D_LAST_EQ] = -(2**62)
    D[D_LAST_FUND] = -1
    D[D_LAST_TRADE] = -1
    D[D_NEXT_FUND] = -(2**62)
    D[D_BOOK_FIRST] = -1
    D[D_CUR_KIND] = NOTHING
    Df = np.full(N_DF, np.nan)
    Df[DF_CUR_FILLED] = 0.0
    Df[DF_FUND_SCHED] = 0.0
    Df[DF_FUND_CONST] = 0.0
    return D, Df


def no_schedule() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(FT, FR, FM)`` of an empty funding schedule: the constant rate at every funding time."""
    return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)


@njit(cache=True)
def _book_schedule(D, Df, P, FT, FR, FM, t, mid, book):
    """Pass the schedule's points up to ``t``; when ``book``, charge each to the position held now at
    its rate and mark (the mid when it has none)."""
    i = D[D_FUND_I]
    n = FT.shape[0]
    while i < n and FT[i] <= t:
        if book:
            mark = FM[i] if math.isfinite(FM[i]) else mid
            paid = P[PF.P_POS] * mark * FR[i]
            P[PF.P_FUNDING] += paid
            Df[DF_FUND_SCHED] += paid
            D[D_NFUND_SCHED] += 1
        i += 1
    D[D_FUND_I] = i


@njit(cache=True)
def core_funding(S, prm, t, best_bid, best_ask):
    """Funding at a book event received at ``t`` (best bid and ask of its book), for the funding times
    in (the last book event, t] (module docstring: Funding). The caller calls it just before
    :func:`core_book` for the same event when ``t >= D[D_NEXT_FUND]`` (no funding time can be due
    before: the per-event cost is that compare); it sets ``D_NEXT_FUND`` again."""
    bid_ok = math.isfinite(best_bid) and math.isfinite(best_ask) and best_ask > best_bid
    mid = 0.5 * (best_bid + best_ask) if bid_ok else S.Df[DF_MID]  # the mid core_book will read
    _book_funding(S.D, S.Df, S.P, S.FT, S.FR, S.FM, t, mid, prm.funding_rate, prm.funding_ns)


@njit(cache=True)
def _book_funding(D, Df, P, FT, FR, FM, t, mid, rate, interval_ns):
    """The schedule's times, then the constant's grid times, in (the last book event, t], on the
    position held now (fills before a schedule time were charged by core_fill); the next due time."""
    last = D[D_LAST_FUND]
    held = last >= 0 and P[PF.P_POS] != 0.0 and math.isfinite(mid)
    _book_schedule(D, Df, P, FT, FR, FM, t, mid, held)
    if held and rate != 0.0 and t // interval_ns != last // interval_ns:
        _book_constant(D, Df, P, FT, t, last, mid, rate, interval_ns)
    nxt = (t // interval_ns + 1) * interval_ns if rate != 0.0 else np.int64(2**62)
    if D[D_FUND_I] < FT.shape[0]:
        nxt = min(nxt, FT[D[D_FUND_I]])
    D[D_NEXT_FUND] = nxt


@njit(cache=True)
def _book_constant(D, Df, P, FT, t, last, mid, rate, interval_ns):
    """The constant rate at the grid times in (last, t] outside the schedule's span (module docstring:
    Funding); the caller checked that one is crossed, a position is held and ``mid`` is valid."""
    n = FT.shape[0]
    if n == 0:  # the constant grid everywhere: exactly the figure of a run without a schedule
        k = PF.fundings_crossed(last, t, interval_ns)
        Df[DF_FUND_CONST] += PF.funding(P, last, t, mid, rate, interval_ns)
        D[D_NFUND_CONST] += k
        return
    # the constant grid before the schedule's first time and after its last
    k = PF.fundings_crossed(last, min(t, FT[0] - 1), interval_ns)
    k += PF.fundings_crossed(max(last, FT[n - 1]), t, interval_ns)
    if k > 0:
        paid = k * P[PF.P_POS] * mid * rate
        P[PF.P_FUNDING] += paid
        Df[DF_FUND_CONST] += paid
        D[D_NFUND_CONST] += k


@njit(cache=True)
def _open_trade(ti, tf, k, ts, side, vol_state, P):
    ti[k, TI_ENTRY_TS] = ts
    ti[k, TI_EXIT_TS] = -1
    ti[k, TI_SIDE] = side
    ti[k, TI_REASON] = STL.X_NONE
    ti[k, TI_VOLSTATE] = vol_state
    tf[k, :] = 0.0
    tf[k, TF_FUND] = -P[PF.P_FUNDING]  # funding paid while open = value at close - value at open
    tf[k, TF_GROSS] = -P[PF.P_REALIZED]


@njit(cache=True)
def core_fill(S, O, ts, side, qty, px, fee, maker, vstate):
    """A fill of the order in flight reached the strategy at ``ts`` (state ``S``: :class:`CoreState`,
    outputs ``O``: :class:`CoreOutputs`): the portfolio books it, the round trip and the fill are
    recorded, the strategy and the risk engine learn the new position."""
    D, Df, P, G, H, SC, RS = S.D, S.Df, S.P, S.G, S.H, S.SC[0], S.RS
    fo_i, fo_f, tr_i, tr_f = O.fo_i, O.fo_f, O.tr_i, O.tr_f
    if D[D_FUND_I] < S.FT.shape[0] and S.FT[D[D_FUND_I]] <= ts:  # schedule times before this fill:
        held = P[PF.P_POS] != 0.0 and math.isfinite(Df[DF_MID])  # charged to the position before it
        _book_schedule(D, Df, P, S.FT, S.FR, S.FM, ts, Df[DF_MID], held)
    prev = P[PF.P_POS]
    Df[DF_CUR_FILLED] += qty
    PF.apply_fill(P, side, qty, px, fee)
    pos = P[PF.P_POS]
    n = D[D_NFO]
    if n < fo_i.shape[0]:
        fo_i[n, FO_TS] = ts
        fo_i[n, FO_SIDE] = side
        fo_i[n, FO_MAKER] = maker
        fo_i[n, FO_ACTION] = D[D_CUR_ACTION]
        fo_f[n, FO_PX] = px
        fo_f[n, FO_QTY] = qty
        fo_f[n, FO_FEE] = fee
        fo_f[n, FO_MID] = Df[DF_CUR_MID]
        D[D_NFO] += 1
    else:
        D[D_OVERFLOW] = 1
    mid0 = Df[DF_CUR_MID]
    slip = max(0.0, side * (px - mid0) * qty) if math.isfinite(mid0) else 0.0
    k = D[D_NTR]
    if D[D_OPEN] == 0 and pos != 0.0:
        if k < tr_i.shape[0]:
            _open_trade(tr_i, tr_f, k, ts, 1 if pos > 0 else -1, vstate, P)
            D[D_OPEN] = 1
        else:
            D[D_OVERFLOW] = 1
    if D[D_OPEN] == 1:
        tr_f[k, TF_FEES] += fee
        tr_f[k, TF_SLIP] += slip
        if prev == 0.0 or ((pos > 0.0) == (prev > 0.0) and abs(pos) > abs(prev)):
            tr_f[k, TF_QTY] += qty
            tr_f[k, TF_ENTRY_NOT] += qty * px
        else:
            tr_f[k, TF_EXIT_QTY] += qty
            tr_f[k, TF_EXIT_NOT] += qty * px
        if pos == 0.0:
            tr_i[k, TI_EXIT_TS] = ts
            tr_i[k, TI_REASON] = D[D_CUR_REASON] if D[D_CUR_ACTION] == STL.EXIT else STL.X_RISK
            tr_f[k, TF_FUND] += P[PF.P_FUNDING]
            tr_f[k, TF_GROSS] += P[PF.P_REALIZED]
            D[D_NTR] += 1
            D[D_OPEN] = 0
    ST.on_position(G, H, SC, ts, pos, P[PF.P_AVG])
    if pos == 0.0:
        RK.record_flat(RS)
    if S.B.Q.shape[0] > 1 and math.isfinite(Df[DF_MID]):
        _post(S, Df[DF_MID], PF.equity(P, Df[DF_MID]))


@njit(cache=True)
def _post(S, mid, own_equity):
    """Post this symbol's row of the book: mid, PnL, position and the unfilled rest of an entry parent."""
    D, Df, P = S.D, S.Df, S.P
    pending = 0.0
    if D[D_PAR_LOTS] > 0 and (D[D_PAR_ACTION] == STL.ENTER or D[D_PAR_ACTION] == STL.ADD):
        pending = D[D_PAR_SIDE] * max(D[D_PAR_LOTS] * Df[DF_LOT] - Df[DF_CUR_FILLED], 0.0)
    PS.post(S.B, D[D_SYM], mid, own_equity - P[PF.P_INITIAL], P[PF.P_POS], pending)


@njit(cache=True)
def core_report(D, Df, G, oid, terminal):
    """A report about order ``oid`` reached the strategy; a final one clears the order in flight and
    moves its parent on (what is left, or the end of the parent)."""
    if not (terminal and oid == D[D_CUR_OID]):
        return
    ST.mark_done(G)
    D[D_CUR_OID] = -1
    D[D_CUR_KIND] = NOTHING
    if D[D_PAR_LOTS] > 0:
        done = round(Df[DF_CUR_FILLED] / Df[DF_LOT])
        D[D_PAR_LOTS] = max(D[D_PAR_LOTS] - done, 0)
        repriced = D[D_CANCEL_SENT] == 1 and D[D_CANCEL_WHY] == CXL_REPRICE
        if done == 0 and not repriced:
            D[D_PAR_LOTS] = 0  # nothing filled: the opportunity is gone
        if D[D_CANCEL_SENT] == 1 and D[D_CANCEL_WHY] != CXL_REPRICE:
            D[D_PAR_LOTS] = 0  # expired or too costly
    Df[DF_CUR_FILLED] = 0.0


@njit(cache=True)
def core_trade(D, ts_recv):
    """A public trade was received at ``ts_recv`` (freshness of the trade flow)."""
    D[D_LAST_TRADE] = ts_recv


@njit(cache=True)
def core_book(S, O, prm, t, ts_event, sig, book):
    """The strategy's turn at a book event received at ``t`` (exchange time ``ts_event``; ``sig``: its
    :class:`SignalRow`, ``book``: its top levels, :class:`~orderflow.strategy.layout.BookLevels`; ``S``
    :class:`CoreState`, ``O`` :class:`CoreOutputs`, ``prm`` :class:`CoreParams`; funding is
    :func:`core_funding`'s, called before it): the equity sample and the daily breaker, the order in
    flight (cancel?), the next child of a parent, then exits / entries through the strategy and the
    risk engine. Returns ``(what, side, qty, reduce_only, price)`` with ``what`` in NOTHING /
    SEND_MARKET / SEND_LIMIT (client order id ``D[D_OID]``, recorded as in flight) / CANCEL (of
    ``D[D_CUR_OID]``)."""
    D, Df, P, G, H, RS, RSF, ring = S.D, S.Df, S.P, S.G, S.H, S.RS, S.RSF, S.ring
    SC, RC, X = S.SC[0], S.RC[0], S.X[0]  # the config records
    eq_ts, eq_f = O.eq_ts, O.eq_f
    lot, min_notional, equity_every_ns, max_position_frac, _rate, _every, tick = prm  # _: core_funding
    valid, ofi_z, p_dn, p_up, rv_bps, vol_state, trend_state, vol_pct = sig
    bid_px, bid_sz, ask_px, ask_sz = book
    bb = bid_px[0]
    ba = ask_px[0]
    if math.isfinite(bb) and math.isfinite(ba) and ba > bb:
        Df[DF_MID] = 0.5 * (bb + ba)
    mid = Df[DF_MID]
    # funding (module docstring); the checks inline, the bookings only when a funding time is crossed
    D[D_LAST_FUND] = t  # funding up to t was booked by core_funding, called before when one was due
    if not math.isfinite(mid):
        return NOTHING, 0, 0.0, False, np.nan
    B = S.B
    multi = B.Q.shape[0] > 1
    own = PF.equity(P, mid)
    eqv = own  # the book's equity (this symbol's own with one symbol)
    eqs = own  # what the symbol's own checks read (risk.sizing_equity)
    if multi:
        _post(S, mid, own)
        eqv = PS.book_equity(B, D[D_SYM], own)
        eqs = eqv if RC.sizing_equity == 0 else own
    if t - D[D_LAST_EQ] >= equity_every_ns:
        RK.on_equity(RS, RSF, RC, t, eqs)
        if multi:
            RK.on_equity(B.RS, B.RSF, B.RC[0], t, eqv)
        n = D[D_NEQ]
        if n < eq_ts.shape[0]:
            eq_ts[n] = t
            eq_f[n, EO_EQUITY] = own
            eq_f[n, EO_POS] = P[PF.P_POS]
            eq_f[n, EO_MID] = mid
            eq_f[n, EO_VOLSTATE] = vol_state
            D[D_NEQ] += 1
        else:
            D[D_OVERFLOW] = 1
        D[D_LAST_EQ] = t

    # a resting limit of ours: cancel it when its parent's time is up or it costs too much
    if D[D_CUR_OID] >= 0 and D[D_CUR_KIND] == SEND_LIMIT and D[D_CANCEL_SENT] == 0:
        why = _resting_check(D, Df, t, bid_px, bid_sz, ask_px, ask_sz, tick, X)
        if why >= 0:
            D[D_CANCEL_SENT] = 1
            D[D_CANCEL_WHY] = why
            return CANCEL, 0, 0.0, False, np.nan

    pos = P[PF.P_POS]
    risk_exit = RK.exit_due(RS, RC, t, pos) != RL.OK
    nominal = max_position_frac * max(eqs, 0.0) / mid
    trade_age = t - D[D_LAST_TRADE] if D[D_LAST_TRADE] >= 0 else np.int64(2**62)
    # an entry needs the regime's volatility percentile (the risk engine's high-vol throttle reads it);
    # it is undefined for the first vol_pct_buckets seconds of volatility after a start or reset, so
    # such a signal is refused as invalid (exits are decided before validity and are unaffected)
    ok = valid and math.isfinite(vol_pct)
    action, side, code = ST.decide(
        G, H, SC, t, ok, t - ts_event, trade_age, ofi_z, p_dn, p_up, rv_bps, vol_state, trend_state,
        book, nominal, risk_exit,
    )  # fmt: skip
    if D[D_PAR_LOTS] > 0 and D[D_CUR_OID] < 0:  # between children of a parent
        if action == STL.EXIT:
            D[D_PAR_LOTS] = 0  # an exit ends the parent; it is sent below
        elif t >= D[D_PAR_NEXT_TS]:
            return _send_child(D, Df, G, t, bid_px[0], ask_px[0], lot, X)
        else:
            return NOTHING, 0, 0.0, False, np.nan
    if action == STL.ENTER or action == STL.ADD:
        r = H[STL.H_R]
        stop = SC.stop_r * r * mid
        if multi:  # the book's breakers first (with one symbol check_entry's own are the book's)
            code, _v, _l = PS.gate_book(B, B.RC[0], t, eqv)
            if code != RL.OK:
                RS[RL.S_REFUSED0 + code] += 1
                _book_bound(D, t)
                ST.mark_risk_refused(G)
                return NOTHING, 0, 0.0, False, np.nan
        # the symbol's own checks (the other symbols' capital in use is the book's check, below)
        qty, _c, _v, _l, _rs = RK.check_entry(
            RS, RSF, ring, RC, t, side, mid, stop, H[STL.H_LAST_CONF], r, vol_pct, eqs, pos, 0.0, lot,
            min_notional,
        )  # fmt: skip
        if qty > 0.0 and multi:
            k = D[D_SYM]
            asked = qty
            qty, _c, _v, _l, _rs = PS.check_book(
                B, RS, B.RC[0], k, side, mid, qty, pos, eqv, lot, min_notional
            )
            if qty < asked:
                _book_bound(D, t)
        if qty <= 0.0:
            ST.mark_risk_refused(G)
            return NOTHING, 0, 0.0, False, np.nan
        if multi and B.QI[PS.QI_DEFER] != 0:  # simultaneous entries: the driver allocates (core_commit)
            D[D_CAND], D[D_CAND_SIDE], D[D_CAND_ACTION] = 1, side, action
            Df[DF_CAND_QTY] = qty
            Df[DF_CAND_SCORE] = PS.entry_score(H[STL.H_LAST_CONF], H[STL.H_LAST_EV], stop)
            return CANDIDATE, side, qty, False, np.nan
        return _commit(S, t, side, action, qty, mid, book, lot, X)
    if action == STL.EXIT:
        if pos == 0.0 or RK.check_exit(RS) != RL.OK:
            return NOTHING, 0, 0.0, False, np.nan
        D[D_OID] += 1
        ST.mark_sent(G, action)
        D[D_CUR_OID], D[D_CUR_ACTION], D[D_CUR_REASON] = D[D_OID], action, code
        D[D_CUR_KIND], D[D_CUR_TS], D[D_CANCEL_SENT] = SEND_MARKET, t, 0
        Df[DF_CUR_MID] = mid
        Df[DF_CUR_PX] = np.nan
        Df[DF_CUR_FILLED] = 0.0
        return SEND_MARKET, side, abs(pos), True, np.nan
    return NOTHING, 0, 0.0, False, np.nan


@njit(cache=True)
def _book_bound(D, t):
    """A rule of the book refused or cut an entry decided at ``t``."""
    D[D_BOOK_BOUND] += 1
    if D[D_BOOK_FIRST] < 0:
        D[D_BOOK_FIRST] = t


@njit(cache=True)
def _commit(S, t, side, action, qty, mid, book, lot, X):
    """Send an approved entry: record it (the symbol's and the book's 24 h windows), start its parent
    and send the first child."""
    D, Df, G = S.D, S.Df, S.G
    RK.record_entry(S.RS, S.ring, t, side, action == STL.ADD)
    ST.mark_sent(G, action)
    bid_px, bid_sz, ask_px, ask_sz = book
    _start_parent(D, Df, t, side, action, qty, mid, S.H[STL.H_LAST_EV], bid_sz, ask_sz, lot, X)
    if S.B.Q.shape[0] > 1:
        PS.record_book_entry(S.B, t)
        _post(S, mid, PF.equity(S.P, mid))
    return _send_child(D, Df, G, t, bid_px[0], ask_px[0], lot, X)


@njit(cache=True)
def core_commit(S, prm, t, book):
    """The allocation's turn for this symbol's waiting entry (``D[D_CAND]``, decided at ``t`` on the
    book ``book``; the driver calls it in the order of the group's scores, highest first): the book's
    checks again with what was granted before it; what still fits is sent as :func:`core_book` would
    have sent it, else it is refused with rule ``allocation``. Returns what :func:`core_book` returns."""
    D, Df = S.D, S.Df
    D[D_CAND] = 0
    side, action = D[D_CAND_SIDE], D[D_CAND_ACTION]
    mid = Df[DF_MID]
    eqv = PS.book_equity(S.B, D[D_SYM], PF.equity(S.P, mid))
    code, _v, _l = PS.gate_book(S.B, S.B.RC[0], t, eqv)  # an entry granted before may have used the cap
    if code != RL.OK:
        S.RS[RL.S_REFUSED0 + code] += 1
        _book_bound(D, t)
        ST.mark_risk_refused(S.G)
        return NOTHING, 0, 0.0, False, np.nan
    scratch = np.zeros(RL.N_S, np.int64)  # a refusal here is the allocation's, counted below
    qty, _c, _v, _l, _rs = PS.check_book(S.B, scratch, S.B.RC[0], D[D_SYM], side, mid, Df[DF_CAND_QTY],
                                        S.P[PF.P_POS], eqv, prm.lot, prm.min_notional)  # fmt: skip
    if qty < Df[DF_CAND_QTY]:
        _book_bound(D, t)
    if qty <= 0.0:
        S.RS[RL.S_REFUSED0 + RL.ALLOCATION] += 1
        ST.mark_risk_refused(S.G)
        return NOTHING, 0, 0.0, False, np.nan
    return _commit(S, t, side, action, qty, mid, book, prm.lot, S.X[0])


@njit(cache=True)
def core_bar(S, t):
    """Close the book's covariance bar(s) before the decision at ``t`` (risk.portfolio.on_bar); the
    driver calls it before :func:`core_book` when ``t >= B.QI[QI_NEXT_BAR]`` and the book has more
    than one symbol."""
    PS.on_bar(S.B, S.B.RC[0], t)


@njit(cache=True)
def _start_parent(D, Df, t, side, action, qty, mid, ev_unit, bid_sz, ask_sz, lot, X):
    """An approved entry of ``qty`` becomes a parent of whole lots, sliced when it is above the depth
    share (module docstring)."""
    lots = round(qty / lot)
    passive = X.entry_style == XC.STYLE_PASSIVE
    sizes = (bid_sz if side > 0 else ask_sz) if passive else (ask_sz if side > 0 else bid_sz)
    depth = AL.visible_depth(sizes, X.depth_levels)
    child = lots
    step = np.int64(0)
    if AL.slice_check(qty, lot, depth, X) == AL.SLICE_ABOVE_DEPTH_SHARE:
        if passive:  # iceberg clips, the next posted when the last is done
            child = max(1, math.floor(X.iceberg_clip_share * depth / lot + AL.LOT_EPS))
        else:  # TWAP children spread over the duration
            allowed = max(1, math.floor(X.max_share_of_depth * depth / lot + AL.LOT_EPS))
            n = min(max(2, (lots + allowed - 1) // allowed), X.twap_max_children, lots)
            child = (lots + n - 1) // n
            step = X.twap_duration_ns // n
    D[D_PAR_LOTS] = lots
    D[D_PAR_CHILD] = min(child, lots)
    D[D_PAR_NEXT_TS] = t
    D[D_PAR_STEP_NS] = step
    D[D_PAR_END_TS] = t + X.passive_ttl_ns if passive else np.int64(2**62)
    D[D_PAR_SIDE] = side
    D[D_PAR_ACTION] = action
    Df[DF_PAR_EV] = ev_unit
    Df[DF_LOT] = lot
    Df[DF_CUR_MID] = mid


@njit(cache=True)
def _send_child(D, Df, G, t, best_bid, best_ask, lot, X):
    """Send the parent's next child now (the caller returns what this returns)."""
    n = min(D[D_PAR_LOTS], D[D_PAR_CHILD])
    qty = RK.lot_qty(float(n), lot)
    side = D[D_PAR_SIDE]
    D[D_OID] += 1
    G[STL.G_PENDING] = 1
    D[D_CUR_OID], D[D_CUR_ACTION], D[D_CUR_REASON] = D[D_OID], D[D_PAR_ACTION], STL.X_NONE
    D[D_CUR_TS], D[D_CANCEL_SENT] = t, 0
    D[D_PAR_NEXT_TS] = t + D[D_PAR_STEP_NS]
    Df[DF_CUR_FILLED] = 0.0
    if X.entry_style == XC.STYLE_PASSIVE:
        px = best_bid if side > 0 else best_ask
        D[D_CUR_KIND] = SEND_LIMIT
        Df[DF_CUR_PX] = px
        return SEND_LIMIT, side, qty, False, px
    D[D_CUR_KIND] = SEND_MARKET
    Df[DF_CUR_PX] = np.nan
    return SEND_MARKET, side, qty, False, np.nan


@njit(cache=True)
def _resting_check(D, Df, t, bid_px, bid_sz, ask_px, ask_sz, tick, X):
    """Why the resting limit in flight must be cancelled now (CXL_*), or -1 to keep it."""
    if t >= D[D_PAR_END_TS]:
        return CXL_EXPIRED
    if not (Df[DF_PAR_EV] > 0.0):  # no expected value to weigh costs against (no model): time limit only
        return -1
    n = bid_px.shape[0]
    bids = np.empty((n, 2))
    asks = np.empty((n, 2))
    for i in range(n):
        bids[i, 0], bids[i, 1] = bid_px[i], bid_sz[i]
        asks[i, 0], asks[i, 1] = ask_px[i], ask_sz[i]
    left = RK.lot_qty(float(min(D[D_PAR_LOTS], D[D_PAR_CHILD])), Df[DF_LOT]) - Df[DF_CUR_FILLED]
    if left <= 0.0:
        return -1
    out = np.empty(XK.N_O)
    ev = Df[DF_PAR_EV] * left
    action, _reason = XK.cost_decision(
        D[D_PAR_SIDE], Df[DF_CUR_PX], left, Df[DF_CUR_MID], ev, bids, asks, tick, X, out
    )
    if action == XK.REPRICE:
        return CXL_REPRICE
    if action == XK.CANCEL:
        return CXL_COST
    return -1


@njit(cache=True)
def core_close(D, Df, G, P):
    """Prepare the market order that closes a position still open at the end of a run (exit reason
    "end"); returns ``(send, side, qty)``."""
    pos = P[PF.P_POS]
    D[D_PAR_LOTS] = 0
    if pos == 0.0 or not math.isfinite(Df[DF_MID]):
        return False, 0, 0.0
    D[D_OID] += 1
    D[D_CUR_KIND], D[D_CANCEL_SENT] = SEND_MARKET, 0
    Df[DF_CUR_FILLED] = 0.0
    ST.mark_sent(G, STL.EXIT)
    D[D_CUR_OID], D[D_CUR_ACTION], D[D_CUR_REASON] = D[D_OID], STL.EXIT, STL.X_END
    Df[DF_CUR_MID] = Df[DF_MID]
    return True, -1 if pos > 0 else 1, abs(pos)


@njit(cache=True)
def core_final_equity(D, Df, P, eq_ts, eq_f, t, vol_state):
    """The last equity sample at ``t`` (after the end-of-run close)."""
    if not math.isfinite(Df[DF_MID]):
        return
    n = D[D_NEQ]
    if n < eq_ts.shape[0]:
        eq_ts[n] = t
        eq_f[n, EO_EQUITY] = PF.equity(P, Df[DF_MID])
        eq_f[n, EO_POS] = P[PF.P_POS]
        eq_f[n, EO_MID] = Df[DF_MID]
        eq_f[n, EO_VOLSTATE] = vol_state
        D[D_NEQ] += 1
    else:
        D[D_OVERFLOW] = 1
