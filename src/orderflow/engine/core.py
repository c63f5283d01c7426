"""The trading core: what happens at a book event, at a fill and at a final order report, written once as
``@njit`` functions over state arrays. The backtester's compiled loop
(:func:`orderflow.backtest.loop.run_loop`) and the paper/live drivers call exactly these functions;
they differ only in where events come from and where orders go (the simulated exchange's kernels, or an
exchange client).

State (one set per symbol):

- the strategy's ``G``/``H``/``SC`` (:mod:`orderflow.strategy.layout`), the risk engine's ``RS``/``RF_``/
  ``ring``/``RC`` (:mod:`orderflow.risk.layout`) and the portfolio ``P``
  (:mod:`orderflow.execution.portfolio`);
- ``D`` (int64) / ``Df`` (float64): the core's own bookkeeping (indices below): order ids, the order in
  flight, the open round trip, output counters, the last equity sample, funding and trade times;
- output buffers: fills ``fo_i``/``fo_f``, round trips ``tr_i``/``tr_f``, equity ``eq_ts``/``eq_f``
  (columns below); a full buffer sets ``D[D_OVERFLOW]`` and drops nothing silently.

:func:`core_book` returns the order to send (or none): side, quantity, reduce-only; the caller sends it
with client order id ``D[D_OID]`` (a MARKET order; IOC) and later reports its fills with
:func:`core_fill` and its end with :func:`core_report`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from orderflow.execution import portfolio as PF
from orderflow.risk import kernels as RK
from orderflow.risk import layout as RL
from orderflow.strategy import kernels as K
from orderflow.strategy import layout as L

# fill output columns
FO_TS, FO_SIDE, FO_MAKER, FO_ACTION = range(4)  # int64
FO_PX, FO_QTY, FO_FEE, FO_MID = range(4)  # float64 (FO_MID: mid when the order was decided)
# equity output columns (float64; ts in a separate int64 array)
EO_EQUITY, EO_POS, EO_MID, EO_VOLSTATE = range(4)
# trade output columns
TI_ENTRY_TS, TI_EXIT_TS, TI_SIDE, TI_REASON, TI_VOLSTATE = range(5)  # int64
TF_QTY, TF_ENTRY_NOT, TF_EXIT_QTY, TF_EXIT_NOT, TF_FEES, TF_SLIP, TF_FUND, TF_GROSS = range(8)  # float64

# core bookkeeping D (int64) and Df (float64)
(
    D_NFO,  # fill rows written
    D_NTR,  # trade rows written (closed trades)
    D_OPEN,  # 1 while a trade is open
    D_OID,  # last client order id used
    D_CUR_OID,  # the order in flight (-1: none)
    D_CUR_ACTION,
    D_CUR_REASON,
    D_F_HEAD,  # fill inbox FIFO pointers (used by the backtest loop)
    D_F_TAIL,
    D_R_HEAD,  # report inbox FIFO pointers (used by the backtest loop)
    D_R_TAIL,
    D_OVERFLOW,
    D_NEQ,  # equity rows written
    D_LAST_EQ,  # time of the last equity sample
    D_LAST_FUND,  # time funding was last checked (-1: never)
    D_LAST_TRADE,  # receive time of the last trade seen (-1: none)
) = range(16)
N_D = 16
DF_CUR_MID, DF_MID = range(2)  # mid when the order in flight was decided; the last valid mid
N_DF = 2


def new_core_state() -> tuple[np.ndarray, np.ndarray]:
    """Fresh ``(D, Df)``."""
    D = np.zeros(N_D, dtype=np.int64)
    D[D_CUR_OID] = -1
    D[D_LAST_EQ] = -(2**62)
    D[D_LAST_FUND] = -1
    D[D_LAST_TRADE] = -1
    Df = np.full(N_DF, np.nan)
    return D, Df


@njit(cache=True)
def _open_trade(ti, tf, k, ts, side, vol_state, P):
    ti[k, TI_ENTRY_TS] = ts
    ti[k, TI_EXIT_TS] = -1
    ti[k, TI_SIDE] = side
    ti[k, TI_REASON] = L.X_NONE
    ti[k, TI_VOLSTATE] = vol_state
    tf[k, :] = 0.0
    tf[k, TF_FUND] = -P[PF.P_FUNDING]  # funding paid while open = value at close - value at open
    tf[k, TF_GROSS] = -P[PF.P_REALIZED]


@njit(cache=True)
def core_fill(D, Df, P, G, H, SC, RS, fo_i, fo_f, tr_i, tr_f, ts, side, qty, px, fee, maker, vstate):
    """A fill of the order in flight reached the strategy at ``ts``: the portfolio books it, the round
    trip and the fill are recorded, the strategy and the risk engine learn the new position."""
    prev = P[PF.P_POS]
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
            tr_i[k, TI_REASON] = D[D_CUR_REASON] if D[D_CUR_ACTION] == L.EXIT else L.X_RISK
            tr_f[k, TF_FUND] += P[PF.P_FUNDING]
            tr_f[k, TF_GROSS] += P[PF.P_REALIZED]
            D[D_NTR] += 1
            D[D_OPEN] = 0
    K.on_position(G, H, SC, ts, pos, P[PF.P_AVG])
    if pos == 0.0:
        RK.record_flat(RS)


@njit(cache=True)
def core_report(D, G, oid, terminal):
    """A report about order ``oid`` reached the strategy; a final one clears the order in flight."""
    if terminal and oid == D[D_CUR_OID]:
        K.mark_done(G)
        D[D_CUR_OID] = -1


@njit(cache=True)
def core_trade(D, ts_recv):
    """A public trade was received at ``ts_recv`` (freshness of the trade flow)."""
    D[D_LAST_TRADE] = ts_recv


@njit(cache=True)
def core_book(
    D, Df, P, G, H, SC, RS, RF_, ring, RC, eq_ts, eq_f,
    t, ts_event, valid, ofi_z, p_dn, p_up, rv_bps, vol_state, trend_state, vol_pct,
    bid_px, bid_sz, ask_px, ask_sz,
    lot, min_notional, equity_every_ns, max_position_frac, funding_rate, funding_ns,
):  # fmt: skip
    """The strategy's turn at a book event received at ``t`` (exchange time ``ts_event``): funding,
    the equity sample and the daily breaker, then exits / entries through the strategy and the risk
    engine. Returns ``(send, side, qty, reduce_only)``; when ``send`` the order is recorded as in flight
    with client order id ``D[D_OID]`` (the caller sends it)."""
    bb = bid_px[0]
    ba = ask_px[0]
    if math.isfinite(bb) and math.isfinite(ba) and ba > bb:
        Df[DF_MID] = 0.5 * (bb + ba)
    mid = Df[DF_MID]
    last_fund = D[D_LAST_FUND]
    if (last_fund >= 0 and funding_rate != 0.0 and P[PF.P_POS] != 0.0
            and t // funding_ns != last_fund // funding_ns and math.isfinite(mid)):  # fmt: skip
        PF.funding(P, last_fund, t, mid, funding_rate, funding_ns)
    D[D_LAST_FUND] = t
    if not math.isfinite(mid):
        return False, 0, 0.0, False
    if t - D[D_LAST_EQ] >= equity_every_ns:
        eqv = PF.equity(P, mid)
        RK.on_equity(RS, RF_, RC, t, eqv)
        n = D[D_NEQ]
        if n < eq_ts.shape[0]:
            eq_ts[n] = t
            eq_f[n, EO_EQUITY] = eqv
            eq_f[n, EO_POS] = P[PF.P_POS]
            eq_f[n, EO_MID] = mid
            eq_f[n, EO_VOLSTATE] = vol_state
            D[D_NEQ] += 1
        else:
            D[D_OVERFLOW] = 1
        D[D_LAST_EQ] = t

    pos = P[PF.P_POS]
    eqv = PF.equity(P, mid)
    risk_exit = RK.exit_due(RS, RC, t, pos) != RL.OK
    nominal = max_position_frac * max(eqv, 0.0) / mid
    trade_age = t - D[D_LAST_TRADE] if D[D_LAST_TRADE] >= 0 else np.int64(2**62)
    action, side, code = K.decide(
        G, H, SC, t, valid, t - ts_event, trade_age, ofi_z, p_dn, p_up, rv_bps, vol_state, trend_state,
        bid_px, bid_sz, ask_px, ask_sz, nominal, risk_exit,
    )  # fmt: skip
    if action == L.ENTER or action == L.ADD:
        r = H[L.H_R]
        qty, _c, _v, _l, _rs = RK.check_entry(
            RS, RF_, ring, RC, t, side, mid, SC[L.C_SL_R] * r * mid, H[L.H_LAST_CONF], r, vol_pct,
            eqv, pos, 0.0, lot, min_notional,
        )  # fmt: skip
        if qty <= 0.0:
            K.mark_risk_refused(G)
            return False, 0, 0.0, False
        D[D_OID] += 1
        RK.record_entry(RS, ring, t, side, action == L.ADD)
        K.mark_sent(G, action)
        D[D_CUR_OID], D[D_CUR_ACTION], D[D_CUR_REASON] = D[D_OID], action, L.X_NONE
        Df[DF_CUR_MID] = mid
        return True, side, qty, False
    if action == L.EXIT:
        if pos == 0.0 or RK.check_exit(RS) != RL.OK:
            return False, 0, 0.0, False
        D[D_OID] += 1
        K.mark_sent(G, action)
        D[D_CUR_OID], D[D_CUR_ACTION], D[D_CUR_REASON] = D[D_OID], action, code
        Df[DF_CUR_MID] = mid
        return True, side, abs(pos), True
    return False, 0, 0.0, False


@njit(cache=True)
def core_close(D, Df, G, P):
    """Prepare the market order that closes a position still open at the end of a run (exit reason
    "end"); returns ``(send, side, qty)``."""
    pos = P[PF.P_POS]
    if pos == 0.0 or not math.isfinite(Df[DF_MID]):
        return False, 0, 0.0
    D[D_OID] += 1
    K.mark_sent(G, L.EXIT)
    D[D_CUR_OID], D[D_CUR_ACTION], D[D_CUR_REASON] = D[D_OID], L.EXIT, L.X_END
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
