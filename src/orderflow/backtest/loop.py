"""The backtest event loop: one ``@njit`` function that replays book and trade events through the
simulated exchange, and at every book event runs the strategy, the risk engine and the portfolio
kernels, exactly the functions paper and live trading call one event at a time.

Time: events are applied to the exchange in exchange-time order (``ts_event``; a trade before a book
event with the same time). The strategy decides on book event j at its receive time ``b_recv[j]`` (the
feed latency recorded in the data); an order it sends leaves at ``b_recv[j] + decision_ns`` and the
exchange's latency model decides when it arrives and when its fills and reports come back. The
strategy learns of a fill or a report only at that response time (they wait in an inbox), and the
portfolio books a fill then.

Orders: entries and exits are MARKET orders (exits reduce-only) for the quantity the risk engine
approved; one order in flight at a time. A position still open after the last event is closed by a
market order against the last book (exit reason "end").

Outputs are preallocated arrays filled row by row (capacities chosen by the caller; the function
returns ``(n_fills, n_equity, n_trades, overflow)`` and stops writing when a buffer is full, setting
``overflow`` so the caller can rerun with larger buffers).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from orderflow.execution import portfolio as PF
from orderflow.execution import sim_kernels as SK
from orderflow.execution import sim_layout as SL
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

INBOX = 4096

# loop bookkeeping D (int64) and Df (float64)
(
    D_NFO,  # fill rows written
    D_NTR,  # trade rows written (closed trades)
    D_OPEN,  # 1 while a trade is open
    D_OID,  # last client order id used
    D_CUR_OID,  # the order in flight (-1: none)
    D_CUR_ACTION,
    D_CUR_REASON,
    D_F_HEAD,  # fill inbox FIFO pointers
    D_F_TAIL,
    D_R_HEAD,  # report inbox FIFO pointers
    D_R_TAIL,
    D_OVERFLOW,
) = range(12)
N_D = 12
DF_CUR_MID = 0
N_DF = 1


@njit(cache=True)
def _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf):
    """Move the exchange's new fills and reports into the strategy's inbox."""
    for k in range(XI[SL.I_NFILL]):
        if D[D_F_TAIL] - D[D_F_HEAD] >= INBOX:
            D[D_OVERFLOW] = 1
            break
        s = D[D_F_TAIL] % INBOX
        ib_fi[s, :] = FI[k, :]
        ib_ff[s, :] = FF[k, :]
        D[D_F_TAIL] += 1
    XI[SL.I_NFILL] = 0
    for k in range(XI[SL.I_NREP]):
        if D[D_R_TAIL] - D[D_R_HEAD] >= INBOX:
            D[D_OVERFLOW] = 1
            break
        s = D[D_R_TAIL] % INBOX
        ib_ri[s, :] = RI[k, :]
        ib_rf[s, :] = RF[k, :]
        D[D_R_TAIL] += 1
    XI[SL.I_NREP] = 0
    if XI[SL.I_LOST_FILLS] or XI[SL.I_LOST_REPORTS]:
        D[D_OVERFLOW] = 1


@njit(cache=True)
def _deliver(upto, D, Df, ib_fi, ib_ff, ib_ri, ib_rf, P, G, H, SC, RS, vstate, fo_i, fo_f, tr_i, tr_f):
    """Hand the strategy every fill and report whose response time is <= ``upto``: the portfolio books
    the fill, the trade record and the strategy's position follow, a terminal report of the order in
    flight clears the pending flag."""
    while D[D_F_HEAD] < D[D_F_TAIL] and ib_fi[D[D_F_HEAD] % INBOX, SL.FI_TS_ST] <= upto:
        s = D[D_F_HEAD] % INBOX
        side = ib_fi[s, SL.FI_SIDE]
        qty = ib_ff[s, SL.FF_QTY]
        px = ib_ff[s, SL.FF_PRICE]
        fee = ib_ff[s, SL.FF_FEE]
        ts_fill = ib_fi[s, SL.FI_TS_ST]
        prev = P[PF.P_POS]
        PF.apply_fill(P, side, qty, px, fee)
        pos = P[PF.P_POS]
        n = D[D_NFO]
        if n < fo_i.shape[0]:
            fo_i[n, FO_TS] = ts_fill
            fo_i[n, FO_SIDE] = side
            fo_i[n, FO_MAKER] = ib_fi[s, SL.FI_MAKER]
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
                _open_trade(tr_i, tr_f, k, ts_fill, 1 if pos > 0 else -1, vstate, P)
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
                tr_i[k, TI_EXIT_TS] = ts_fill
                tr_i[k, TI_REASON] = D[D_CUR_REASON] if D[D_CUR_ACTION] == L.EXIT else L.X_RISK
                tr_f[k, TF_FUND] += P[PF.P_FUNDING]
                tr_f[k, TF_GROSS] += P[PF.P_REALIZED]
                D[D_NTR] += 1
                D[D_OPEN] = 0
        K.on_position(G, H, SC, ts_fill, pos, P[PF.P_AVG])
        if pos == 0.0:
            RK.record_flat(RS)
        D[D_F_HEAD] += 1
    while D[D_R_HEAD] < D[D_R_TAIL] and ib_ri[D[D_R_HEAD] % INBOX, SL.RI_TS_ST] <= upto:
        s = D[D_R_HEAD] % INBOX
        if ib_ri[s, SL.RI_ID] == D[D_CUR_OID] and SL.is_terminal(ib_ri[s, SL.RI_STATUS]):
            K.mark_done(G)
            D[D_CUR_OID] = -1
        D[D_R_HEAD] += 1


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
def run_loop(
    b_ts, b_recv, bid_px, bid_sz, ask_px, ask_sz,
    t_ts, t_recv, t_px, t_sz, t_side,
    valid, ofi_z, p_dn, p_up, rv_bps, vol_state, trend_state, vol_pct,
    XI, XF, XC, OI, OF, XB, FI, FF, RI, RF,
    P, G, H, SC, RS, RF_, ring, RC,
    lot, min_notional, decision_ns, equity_every_ns, max_position_frac, close_at_end,
    fo_i, fo_f, eq_ts, eq_f, tr_i, tr_f,
):  # fmt: skip
    """Replay the events (module docstring). Returns ``(n_fills, n_equity, n_trades, overflow,
    orders_sent)``."""
    nb = b_ts.shape[0]
    nt = t_ts.shape[0]
    D = np.zeros(N_D, dtype=np.int64)
    D[D_CUR_OID] = -1
    Df = np.full(N_DF, np.nan)
    ib_fi = np.zeros((INBOX, SL.N_FI), dtype=np.int64)
    ib_ff = np.zeros((INBOX, SL.N_FF))
    ib_ri = np.zeros((INBOX, SL.N_RI), dtype=np.int64)
    ib_rf = np.zeros((INBOX, SL.N_RF))
    neq = 0
    last_trade_recv = np.int64(-1)
    last_eq_ts = np.int64(-(2**62))
    last_fund_ts = np.int64(-1)
    funding_rate = XC[SL.C_FUNDING_RATE]
    funding_ns = np.int64(XC[SL.C_FUNDING_NS])
    i = 0
    j = 0
    jl = -1  # last book event
    mid = np.nan
    t = np.int64(0)
    while i < nt or j < nb:
        if i < nt and (j >= nb or t_ts[i] <= b_ts[j]):
            SK.on_trade(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, t_ts[i], t_px[i], t_sz[i], t_side[i])
            if XI[SL.I_NFILL] or XI[SL.I_NREP]:
                _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)
            last_trade_recv = t_recv[i]
            i += 1
            continue
        SK.on_book(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, b_ts[j], bid_px[j], bid_sz[j], ask_px[j],
                   ask_sz[j])  # fmt: skip
        if XI[SL.I_NFILL] or XI[SL.I_NREP]:
            _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)
        jl = j
        j += 1
        # ---- the strategy's turn: book event jl, seen at its receive time
        t = b_recv[jl]
        bb = bid_px[jl, 0]
        ba = ask_px[jl, 0]
        if math.isfinite(bb) and math.isfinite(ba) and ba > bb:
            mid = 0.5 * (bb + ba)
        if (last_fund_ts >= 0 and funding_rate != 0.0 and P[PF.P_POS] != 0.0
                and t // funding_ns != last_fund_ts // funding_ns and math.isfinite(mid)):  # fmt: skip
            PF.funding(P, last_fund_ts, t, mid, funding_rate, funding_ns)
        last_fund_ts = t
        if D[D_F_HEAD] < D[D_F_TAIL] or D[D_R_HEAD] < D[D_R_TAIL]:
            vs = np.int64(vol_state[jl]) if math.isfinite(vol_state[jl]) else np.int64(-1)
            _deliver(t, D, Df, ib_fi, ib_ff, ib_ri, ib_rf, P, G, H, SC, RS, vs, fo_i, fo_f, tr_i, tr_f)
        if not math.isfinite(mid):
            continue
        if t - last_eq_ts >= equity_every_ns:
            eqv = PF.equity(P, mid)
            RK.on_equity(RS, RF_, RC, t, eqv)
            if neq < eq_ts.shape[0]:
                eq_ts[neq] = t
                eq_f[neq, EO_EQUITY] = eqv
                eq_f[neq, EO_POS] = P[PF.P_POS]
                eq_f[neq, EO_MID] = mid
                eq_f[neq, EO_VOLSTATE] = vol_state[jl]
                neq += 1
            else:
                D[D_OVERFLOW] = 1
            last_eq_ts = t

        pos = P[PF.P_POS]
        eqv = PF.equity(P, mid)
        risk_exit = RK.exit_due(RS, RC, t, pos) != RL.OK
        nominal = max_position_frac * max(eqv, 0.0) / mid
        trade_age = t - last_trade_recv if last_trade_recv >= 0 else np.int64(2**62)
        action, side, code = K.decide(
            G, H, SC, t, valid[jl], t - b_ts[jl], trade_age, ofi_z[jl], p_dn[jl], p_up[jl], rv_bps[jl],
            vol_state[jl], trend_state[jl], bid_px[jl], bid_sz[jl], ask_px[jl], ask_sz[jl], nominal,
            risk_exit,
        )  # fmt: skip
        if action == L.ENTER or action == L.ADD:
            r = H[L.H_R]
            qty, _c, _v, _l, _rs = RK.check_entry(
                RS, RF_, ring, RC, t, side, mid, SC[L.C_SL_R] * r * mid, H[L.H_LAST_CONF], r, vol_pct[jl],
                eqv, pos, 0.0, lot, min_notional,
            )  # fmt: skip
            if qty <= 0.0:
                K.mark_risk_refused(G)
                continue
            D[D_OID] += 1
            SK.submit_order(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, t + decision_ns, D[D_OID], SL.MARKET,
                            side, np.nan, np.nan, qty, SL.IOC, False, False)  # fmt: skip
            _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)  # an immediate rejection
            RK.record_entry(RS, ring, t, side, action == L.ADD)
            K.mark_sent(G, action)
            D[D_CUR_OID], D[D_CUR_ACTION], D[D_CUR_REASON] = D[D_OID], action, L.X_NONE
            Df[DF_CUR_MID] = mid
        elif action == L.EXIT:
            if pos == 0.0 or RK.check_exit(RS) != RL.OK:
                continue
            D[D_OID] += 1
            SK.submit_order(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, t + decision_ns, D[D_OID], SL.MARKET,
                            side, np.nan, np.nan, abs(pos), SL.IOC, False, True)  # fmt: skip
            _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)
            K.mark_sent(G, action)
            D[D_CUR_OID], D[D_CUR_ACTION], D[D_CUR_REASON] = D[D_OID], action, code
            Df[DF_CUR_MID] = mid

    # ---- the end: deliver everything in flight, then close what is still open against the last book
    big = np.int64(2**62)
    vs = np.int64(vol_state[jl]) if jl >= 0 and math.isfinite(vol_state[jl]) else np.int64(-1)
    if jl >= 0:
        SK.on_book(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, max(XI[SL.I_NEXT_ARR], b_ts[jl])
                   if XI[SL.I_NEXT_ARR] < big else b_ts[jl], bid_px[jl], bid_sz[jl], ask_px[jl],
                   ask_sz[jl])  # fmt: skip
        _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)
    _deliver(big, D, Df, ib_fi, ib_ff, ib_ri, ib_rf, P, G, H, SC, RS, vs, fo_i, fo_f, tr_i, tr_f)
    pos = P[PF.P_POS]
    if close_at_end and jl >= 0 and pos != 0.0 and math.isfinite(mid):
        D[D_OID] += 1
        t_end = t + decision_ns
        SK.submit_order(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, t_end, D[D_OID], SL.MARKET,
                        -1 if pos > 0 else 1, np.nan, np.nan, abs(pos), SL.IOC, False, True)  # fmt: skip
        ta = XI[SL.I_NEXT_ARR] if XI[SL.I_NEXT_ARR] < big else t_end
        SK.on_book(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, max(ta, b_ts[jl]), bid_px[jl], bid_sz[jl],
                   ask_px[jl], ask_sz[jl])  # fmt: skip
        _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)
        D[D_CUR_OID], D[D_CUR_ACTION], D[D_CUR_REASON] = D[D_OID], L.EXIT, L.X_END
        Df[DF_CUR_MID] = mid
        _deliver(big, D, Df, ib_fi, ib_ff, ib_ri, ib_rf, P, G, H, SC, RS, vs, fo_i, fo_f, tr_i, tr_f)
    if jl >= 0 and math.isfinite(mid):
        t_last = t
        if D[D_NFO] > 0:
            t_last = max(t_last, fo_i[D[D_NFO] - 1, FO_TS])
        if neq < eq_ts.shape[0]:
            eq_ts[neq] = t_last
            eq_f[neq, EO_EQUITY] = PF.equity(P, mid)
            eq_f[neq, EO_POS] = P[PF.P_POS]
            eq_f[neq, EO_MID] = mid
            eq_f[neq, EO_VOLSTATE] = vol_state[jl]
            neq += 1
    return D[D_NFO], neq, D[D_NTR], D[D_OVERFLOW] != 0, D[D_OID]
