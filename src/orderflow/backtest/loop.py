"""The backtest event loop: one ``@njit`` function that replays book and trade events through the
simulated exchange and hands every book event, fill and final order report to the trading core
(:mod:`orderflow.engine.core`), the same functions the paper and live drivers call one event at a time.

Time: events are applied to the exchange in exchange-time order (``ts_event``; a trade before a book
event with the same time). The strategy decides on book event j at its receive time ``b_recv[j]`` (the
feed latency recorded in the data); an order it sends leaves at ``b_recv[j] + decision_ns`` and the
exchange's latency model decides when it arrives and when its fills and reports come back. The
strategy learns of a fill or a report only at that response time (they wait in an inbox), and the
portfolio books a fill then.

Orders: what the core asks for (:mod:`orderflow.engine.core`: MARKET or post-only LIMIT children of an
entry, reduce-only MARKET exits, cancels of a resting limit); one order in flight at a time. A position
still open after the last event is closed by a market order against the last book (exit reason "end").

Outputs are preallocated arrays filled row by row (capacities chosen by the caller). The function
returns ``(n_fills, n_equity, n_trades, overflow, orders_sent)``: the rows written to the fill, equity
and trade outputs (``D[D_NFO]``, ``D[D_NEQ]``, ``D[D_NTR]``); whether anything did not fit
(``D[D_OVERFLOW] != 0``: a full output buffer or fill/report inbox is not written to and sets the
flag, as do fills or reports the simulated exchange lost); and the last client order id used
(``D[D_OID]``: ids count up from 1 for every order sent and cancels take none, so it is the number of
orders sent). ``backtest.engine.run_backtest`` raises on an overflow, naming the capacities.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from orderflow.engine import core as CO
from orderflow.engine.core import (  # noqa: F401  (column indices re-exported for readers of the outputs)
    D_CUR_OID,
    D_F_HEAD,
    D_F_TAIL,
    D_NEQ,
    D_NFO,
    D_NTR,
    D_OID,
    D_OVERFLOW,
    D_R_HEAD,
    D_R_TAIL,
    EO_EQUITY,
    EO_MID,
    EO_POS,
    EO_VOLSTATE,
    FO_ACTION,
    FO_FEE,
    FO_MAKER,
    FO_MID,
    FO_PX,
    FO_QTY,
    FO_SIDE,
    FO_TS,
    N_D,
    N_DF,
    TF_ENTRY_NOT,
    TF_EXIT_NOT,
    TF_EXIT_QTY,
    TF_FEES,
    TF_FUND,
    TF_GROSS,
    TF_QTY,
    TF_SLIP,
    TI_ENTRY_TS,
    TI_EXIT_TS,
    TI_REASON,
    TI_SIDE,
    TI_VOLSTATE,
)
from orderflow.execution import sim_kernels as SK
from orderflow.execution import sim_layout as SL

INBOX = 4096


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
    """Hand the core every fill and report whose response time is <= ``upto``."""
    while D[D_F_HEAD] < D[D_F_TAIL] and ib_fi[D[D_F_HEAD] % INBOX, SL.FI_TS_ST] <= upto:
        s = D[D_F_HEAD] % INBOX
        CO.core_fill(D, Df, P, G, H, SC, RS, fo_i, fo_f, tr_i, tr_f, ib_fi[s, SL.FI_TS_ST],
                     ib_fi[s, SL.FI_SIDE], ib_ff[s, SL.FF_QTY], ib_ff[s, SL.FF_PRICE], ib_ff[s, SL.FF_FEE],
                     ib_fi[s, SL.FI_MAKER], vstate)  # fmt: skip
        D[D_F_HEAD] += 1
    while D[D_R_HEAD] < D[D_R_TAIL] and ib_ri[D[D_R_HEAD] % INBOX, SL.RI_TS_ST] <= upto:
        s = D[D_R_HEAD] % INBOX
        CO.core_report(D, Df, G, ib_ri[s, SL.RI_ID], SL.is_terminal(ib_ri[s, SL.RI_STATUS]))
        D[D_R_HEAD] += 1


@njit(cache=True)
def _pump(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf):
    if XI[SL.I_NFILL] or XI[SL.I_NREP]:
        _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)


@njit(cache=True)
def run_loop(
    b_ts, b_recv, bid_px, bid_sz, ask_px, ask_sz,
    t_ts, t_recv, t_px, t_sz, t_side,
    valid, ofi_z, p_dn, p_up, rv_bps, vol_state, trend_state, vol_pct,
    XI, XF, XC, OI, OF, XB, FI, FF, RI, RF,
    P, G, H, SC, RS, RF_, ring, RC, D, Df,
    lot, min_notional, decision_ns, equity_every_ns, max_position_frac, close_at_end,
    fo_i, fo_f, eq_ts, eq_f, tr_i, tr_f, X, tick,
):  # fmt: skip
    """Replay the events (module docstring) with the core state ``D``/``Df`` (``core.new_core_state``).
    Returns ``(n_fills, n_equity, n_trades, overflow, orders_sent)`` (module docstring)."""
    nb = b_ts.shape[0]
    nt = t_ts.shape[0]
    ib_fi = np.zeros((INBOX, SL.N_FI), dtype=np.int64)
    ib_ff = np.zeros((INBOX, SL.N_FF))
    ib_ri = np.zeros((INBOX, SL.N_RI), dtype=np.int64)
    ib_rf = np.zeros((INBOX, SL.N_RF))
    funding_rate = XC[SL.C_FUNDING_RATE]
    funding_ns = np.int64(XC[SL.C_FUNDING_NS])
    i = 0
    j = 0
    jl = -1  # last book event
    t = np.int64(0)
    while i < nt or j < nb:
        if i < nt and (j >= nb or t_ts[i] <= b_ts[j]):
            if XI[SL.I_NLIVE] > 0:  # with no order at the exchange a trade changes nothing there
                SK.on_trade(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, t_ts[i], t_px[i], t_sz[i], t_side[i])
                if XI[SL.I_NFILL] or XI[SL.I_NREP]:
                    _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)
            D[CO.D_LAST_TRADE] = t_recv[i]  # core_trade, inlined: the hot path
            i += 1
            continue
        synced = XI[SL.I_NLIVE] > 0  # idle exchange: the book is applied lazily, just before an order
        if synced:
            SK.on_book(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, b_ts[j], bid_px[j], bid_sz[j], ask_px[j],
                       ask_sz[j])  # fmt: skip
            if XI[SL.I_NFILL] or XI[SL.I_NREP]:
                _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)
        jp = jl  # fills delivered now carry the regime known when they arrive: the previous event's
        jl = j
        j += 1
        t = b_recv[jl]
        if D[D_F_HEAD] < D[D_F_TAIL] or D[D_R_HEAD] < D[D_R_TAIL]:
            vs = np.int64(vol_state[jp]) if jp >= 0 and math.isfinite(vol_state[jp]) else np.int64(-1)
            _deliver(t, D, Df, ib_fi, ib_ff, ib_ri, ib_rf, P, G, H, SC, RS, vs, fo_i, fo_f, tr_i, tr_f)
        what, side, qty, reduce_only, px = CO.core_book(
            D, Df, P, G, H, SC, RS, RF_, ring, RC, eq_ts, eq_f,
            t, b_ts[jl], valid[jl], ofi_z[jl], p_dn[jl], p_up[jl], rv_bps[jl], vol_state[jl],
            trend_state[jl], vol_pct[jl], bid_px[jl], bid_sz[jl], ask_px[jl], ask_sz[jl],
            lot, min_notional, equity_every_ns, max_position_frac, funding_rate, funding_ns, X, tick,
        )  # fmt: skip
        if what != CO.NOTHING:
            if not synced:
                SK.on_book(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, b_ts[jl], bid_px[jl], bid_sz[jl],
                           ask_px[jl], ask_sz[jl])  # fmt: skip
            if what == CO.SEND_MARKET:
                SK.submit_order(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, t + decision_ns, D[D_OID],
                                SL.MARKET, side, np.nan, np.nan, qty, SL.IOC, False, reduce_only)  # fmt: skip
            elif what == CO.SEND_LIMIT:
                SK.submit_order(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, t + decision_ns, D[D_OID],
                                SL.LIMIT, side, px, np.nan, qty, SL.GTC, True, reduce_only)  # fmt: skip
            else:
                SK.cancel_order(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, t + decision_ns, D[D_CUR_OID])
            _pump(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)  # an immediate answer

    # ---- the end: deliver everything in flight, then close what is still open against the last book
    # (an idle exchange may not have seen the last book: on_book below applies it)
    big = np.int64(2**62)
    vs = np.int64(vol_state[jl]) if jl >= 0 and math.isfinite(vol_state[jl]) else np.int64(-1)
    if jl >= 0:
        SK.on_book(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, max(XI[SL.I_NEXT_ARR], b_ts[jl])
                   if XI[SL.I_NEXT_ARR] < big else b_ts[jl], bid_px[jl], bid_sz[jl], ask_px[jl],
                   ask_sz[jl])  # fmt: skip
        _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)
    _deliver(big, D, Df, ib_fi, ib_ff, ib_ri, ib_rf, P, G, H, SC, RS, vs, fo_i, fo_f, tr_i, tr_f)
    if close_at_end and jl >= 0:
        send, side, qty = CO.core_close(D, Df, G, P)
        if send:
            t_end = t + decision_ns
            SK.submit_order(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, t_end, D[D_OID], SL.MARKET, side,
                            np.nan, np.nan, qty, SL.IOC, False, True)  # fmt: skip
            ta = XI[SL.I_NEXT_ARR] if XI[SL.I_NEXT_ARR] < big else t_end
            SK.on_book(XI, XF, XC, OI, OF, XB, FI, FF, RI, RF, max(ta, b_ts[jl]), bid_px[jl], bid_sz[jl],
                       ask_px[jl], ask_sz[jl])  # fmt: skip
            _to_inbox(XI, FI, FF, RI, RF, D, ib_fi, ib_ff, ib_ri, ib_rf)
            _deliver(big, D, Df, ib_fi, ib_ff, ib_ri, ib_rf, P, G, H, SC, RS, vs, fo_i, fo_f, tr_i, tr_f)
    if jl >= 0:
        t_last = t
        if D[D_NFO] > 0:
            t_last = max(t_last, fo_i[D[D_NFO] - 1, FO_TS])
        CO.core_final_equity(D, Df, P, eq_ts, eq_f, t_last, vol_state[jl])
    return D[D_NFO], D[D_NEQ], D[D_NTR], D[D_OVERFLOW] != 0, D[D_OID]
