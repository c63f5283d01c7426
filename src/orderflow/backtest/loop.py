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

Inputs are named tuples numba compiles: the events (:class:`BookArrays`, :class:`TradeArrays`), the
per-book-event signal columns (:class:`SignalArrays`), the exchange's state
(:class:`orderflow.execution.sim_layout.SimState`) and the core's (:class:`~orderflow.engine.core.CoreState`,
:class:`~orderflow.engine.core.CoreOutputs`, :class:`~orderflow.engine.core.CoreParams`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

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
from orderflow.strategy.layout import BookLevels

INBOX = 4096


class BookArrays(NamedTuple):
    """Book events: exchange / receive times (n,) int64, top-L levels (n, L) float64 best first."""

    ts: np.ndarray
    recv: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray


class TradeArrays(NamedTuple):
    """Trades: exchange / receive times (n,) int64, price, size (float64), aggressor side (int64)."""

    ts: np.ndarray
    recv: np.ndarray
    px: np.ndarray
    sz: np.ndarray
    side: np.ndarray


class SignalArrays(NamedTuple):
    """Per book event, what the strategy reads (the columns of :class:`~orderflow.engine.core.SignalRow`)."""

    valid: np.ndarray  # bool
    ofi_z: np.ndarray
    p_dn: np.ndarray
    p_up: np.ndarray
    rv_bps: np.ndarray
    vol_state: np.ndarray
    trend_state: np.ndarray
    vol_pct: np.ndarray


class Inbox(NamedTuple):
    """Fills and reports waiting for their response time (FIFO rings of INBOX rows, pointers in D)."""

    fi: np.ndarray
    ff: np.ndarray
    ri: np.ndarray
    rf: np.ndarray


@njit(cache=True)
def _to_inbox(ex, D, ib):
    """Move the exchange's new fills and reports into the strategy's inbox."""
    XI, FI, FF, RI, RF = ex.I, ex.FI, ex.FF, ex.RI, ex.RF
    ib_fi, ib_ff, ib_ri, ib_rf = ib
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
def _deliver(upto, S, O, ib, vstate):
    """Hand the core every fill and report whose response time is <= ``upto``."""
    D, Df, G = S.D, S.Df, S.G
    ib_fi, ib_ff, ib_ri = ib.fi, ib.ff, ib.ri
    while D[D_F_HEAD] < D[D_F_TAIL] and ib_fi[D[D_F_HEAD] % INBOX, SL.FI_TS_ST] <= upto:
        s = D[D_F_HEAD] % INBOX
        CO.core_fill(S, O, ib_fi[s, SL.FI_TS_ST], ib_fi[s, SL.FI_SIDE], ib_ff[s, SL.FF_QTY],
                     ib_ff[s, SL.FF_PRICE], ib_ff[s, SL.FF_FEE], ib_fi[s, SL.FI_MAKER], vstate)  # fmt: skip
        D[D_F_HEAD] += 1
    while D[D_R_HEAD] < D[D_R_TAIL] and ib_ri[D[D_R_HEAD] % INBOX, SL.RI_TS_ST] <= upto:
        s = D[D_R_HEAD] % INBOX
        CO.core_report(D, Df, G, ib_ri[s, SL.RI_ID], SL.is_terminal(ib_ri[s, SL.RI_STATUS]))
        D[D_R_HEAD] += 1


@njit(cache=True)
def _pump(ex, D, ib):
    if ex.I[SL.I_NFILL] or ex.I[SL.I_NREP]:
        _to_inbox(ex, D, ib)


@njit(cache=True)
def new_inbox():
    """An empty inbox (:class:`Inbox`)."""
    return Inbox(
        np.zeros((INBOX, SL.N_FI), dtype=np.int64),
        np.zeros((INBOX, SL.N_FF)),
        np.zeros((INBOX, SL.N_RI), dtype=np.int64),
        np.zeros((INBOX, SL.N_RF)),
    )


@njit(cache=True)
def finish_run(book, sig, ex, S, O, ib, jl, t, decision_ns, close_at_end):
    """The end of a run: deliver everything in flight, then close what is still open against the last
    book (event ``jl``, decided at ``t``; an idle exchange may not have seen it: on_book applies it), and
    the last equity sample."""
    XI, D = ex.I, S.D
    big = np.int64(2**62)
    vsl = sig.vol_state[jl] if jl >= 0 else np.nan
    vs = np.int64(vsl) if math.isfinite(vsl) else np.int64(-1)
    if jl >= 0:
        SK.on_book(ex, max(XI[SL.I_NEXT_ARR], book.ts[jl]) if XI[SL.I_NEXT_ARR] < big else book.ts[jl],
                   book.bid_px[jl], book.bid_sz[jl], book.ask_px[jl], book.ask_sz[jl])  # fmt: skip
        _to_inbox(ex, D, ib)
    _deliver(big, S, O, ib, vs)
    if close_at_end and jl >= 0:
        send, side, qty = CO.core_close(D, S.Df, S.G, S.P)
        if send:
            t_end = t + decision_ns
            SK.submit_order(ex, t_end, D[D_OID], SL.MARKET, side, np.nan, np.nan, qty, SL.IOC, False, True)
            ta = XI[SL.I_NEXT_ARR] if XI[SL.I_NEXT_ARR] < big else t_end
            SK.on_book(ex, max(ta, book.ts[jl]), book.bid_px[jl], book.bid_sz[jl], book.ask_px[jl],
                       book.ask_sz[jl])  # fmt: skip
            _to_inbox(ex, D, ib)
            _deliver(big, S, O, ib, vs)
    if jl >= 0:
        t_last = t
        if D[D_NFO] > 0:
            t_last = max(t_last, O.fo_i[D[D_NFO] - 1, FO_TS])
        CO.core_final_equity(D, S.Df, S.P, O.eq_ts, O.eq_f, t_last, sig.vol_state[jl])


@njit(cache=True)
def run_loop(book, trades, sig, ex, S, O, prm, decision_ns, close_at_end):
    """Replay the events ``book`` (:class:`BookArrays`) and ``trades`` (:class:`TradeArrays`) with the
    signals ``sig`` (:class:`SignalArrays`) through the exchange ``ex`` (``SimState``) and the core
    (state ``S``, outputs ``O``, parameters ``prm``; module docstring). Orders leave ``decision_ns``
    after the decision; ``close_at_end`` closes what is still open after the last event.
    Returns ``(n_fills, n_equity, n_trades, overflow, orders_sent)``."""
    b_ts, b_recv, bid_px, bid_sz, ask_px, ask_sz = book
    t_ts, t_recv, t_px, t_sz, t_side = trades
    valid, ofi_z, p_dn, p_up, rv_bps, vol_state, trend_state, vol_pct = sig
    XI = ex.I
    D = S.D
    nb = b_ts.shape[0]
    nt = t_ts.shape[0]
    ib = new_inbox()
    i = 0
    j = 0
    jl = -1  # last book event
    t = np.int64(0)
    while i < nt or j < nb:
        if i < nt and (j >= nb or t_ts[i] <= b_ts[j]):
            if XI[SL.I_NLIVE] > 0:  # with no order at the exchange a trade changes nothing there
                SK.on_trade(ex, t_ts[i], t_px[i], t_sz[i], t_side[i])
                if XI[SL.I_NFILL] or XI[SL.I_NREP]:
                    _to_inbox(ex, D, ib)
            D[CO.D_LAST_TRADE] = t_recv[i]  # core_trade, inlined: the hot path
            i += 1
            continue
        synced = XI[SL.I_NLIVE] > 0  # idle exchange: the book is applied lazily, just before an order
        if synced:
            SK.on_book(ex, b_ts[j], bid_px[j], bid_sz[j], ask_px[j], ask_sz[j])
            if XI[SL.I_NFILL] or XI[SL.I_NREP]:
                _to_inbox(ex, D, ib)
        jp = jl  # fills delivered now carry the regime known when they arrive: the previous event's
        jl = j
        j += 1
        t = b_recv[jl]
        if D[D_F_HEAD] < D[D_F_TAIL] or D[D_R_HEAD] < D[D_R_TAIL]:
            vs = np.int64(vol_state[jp]) if jp >= 0 and math.isfinite(vol_state[jp]) else np.int64(-1)
            _deliver(t, S, O, ib, vs)
        if t >= D[CO.D_NEXT_FUND]:
            CO.core_funding(S, prm, t, bid_px[jl, 0], ask_px[jl, 0])
        what, side, qty, reduce_only, px = CO.core_book(
            S, O, prm, t, b_ts[jl],
            CO.SignalRow(valid[jl], ofi_z[jl], p_dn[jl], p_up[jl], rv_bps[jl], vol_state[jl],
                         trend_state[jl], vol_pct[jl]),
            BookLevels(bid_px[jl], bid_sz[jl], ask_px[jl], ask_sz[jl]),
        )  # fmt: skip
        if what != CO.NOTHING:
            if not synced:
                SK.on_book(ex, b_ts[jl], bid_px[jl], bid_sz[jl], ask_px[jl], ask_sz[jl])
            if what == CO.SEND_MARKET:
                SK.submit_order(ex, t + decision_ns, D[D_OID], SL.MARKET, side, np.nan, np.nan, qty, SL.IOC,
                                False, reduce_only)  # fmt: skip
            elif what == CO.SEND_LIMIT:
                SK.submit_order(ex, t + decision_ns, D[D_OID], SL.LIMIT, side, px, np.nan, qty, SL.GTC, True,
                                reduce_only)  # fmt: skip
            else:
                SK.cancel_order(ex, t + decision_ns, D[D_CUR_OID])
            _pump(ex, D, ib)  # an immediate answer

    finish_run(book, sig, ex, S, O, ib, jl, t, decision_ns, close_at_end)
    return D[D_NFO], D[D_NEQ], D[D_NTR], D[D_OVERFLOW] != 0, D[D_OID]
