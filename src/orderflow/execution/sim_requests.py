"""Requests reaching the simulated exchange (numba): processing of pending order and cancel arrivals
in the order sent, order activation (reduce-only check, taker part, IOC/market expiry, joining the
queue) and cancel arrival. Rules and timing are described in :mod:`orderflow.execution.sim_kernels`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from orderflow.execution.sim_fills import (
    best_available,
    finish,
    release,
    report_order,
    take,
)
from orderflow.execution.sim_layout import (
    BUY,
    CANCELED,
    EXPIRED,
    F_POS,
    I_HI,
    I_LAST_TS,
    I_NEXT_ARR,
    IOC,
    LIMIT,
    MARKET,
    NEW,
    NO_TS,
    OF_FILLED,
    OF_LEVEL,
    OF_PRICE,
    OF_QTY,
    OF_QUEUE,
    OF_TRADED,
    OI_ARRIVED,
    OI_CANCEL_AT,
    OI_CANCEL_SEQ,
    OI_POST_ONLY,
    OI_REDUCE_ONLY,
    OI_RESTING,
    OI_SEQ,
    OI_SIDE,
    OI_STATUS,
    OI_TIF,
    OI_TS_ARRIVE,
    OI_TYPE,
    OI_USED,
    QTY_REL_EPS,
    R_ACCEPTED,
    R_CANCEL_NOT_OPEN,
    R_CANCELED,
    R_EXPIRED,
    R_POST_ONLY,
    R_REDUCE_ONLY,
    R_REDUCE_ONLY_TRIMMED,
    REJECTED,
    STOP_LIMIT,
    T_C,
    T_MF,
    T_MI,
    T_VF,
    T_VI,
    b1,
    i8,
    is_live,
    is_terminal,
    px_reaches,
    void,
)
from orderflow.execution.sim_queue import own_level


@njit(void(T_VI, T_VF, T_C, T_MI, T_MF, T_MF, T_MI, T_MF, T_MI, T_MF, i8, i8, b1), cache=True)
def activate(I, F, C, OI, OF, B, FI, FF, RI, RF, s, t_ex, announce) -> None:
    """A limit or market order becomes active: reduce-only check, 'accepted' report (``announce``),
    taker part, then IOC/market remainder expires or the rest joins the queue at its price."""
    side = OI[s, OI_SIDE]
    otype = OI[s, OI_TYPE]
    if OI[s, OI_REDUCE_ONLY] == 1:
        room = -F[F_POS] * side
        if room <= 0.0:
            finish(I, C, OI, OF, RI, RF, s, t_ex, REJECTED, R_REDUCE_ONLY, F[F_POS], 0.0)
            return
    if announce:
        OI[s, OI_STATUS] = NEW
        report_order(I, C, OI, OF, RI, RF, s, t_ex, NEW, R_ACCEPTED, np.nan, np.nan)
    if OI[s, OI_REDUCE_ONLY] == 1:
        room = -F[F_POS] * side
        old = OF[s, OF_QTY]
        if old - OF[s, OF_FILLED] > room * (1.0 + QTY_REL_EPS):
            OF[s, OF_QTY] = OF[s, OF_FILLED] + room
            report_order(
                I, C, OI, OF, RI, RF, s, t_ex, OI[s, OI_STATUS], R_REDUCE_ONLY_TRIMMED, old, OF[s, OF_QTY]
            )
    limit = (math.inf if side == BUY else -math.inf) if otype == MARKET else OF[s, OF_PRICE]
    take(I, F, C, OI, OF, B, FI, FF, RI, RF, s, limit, t_ex)
    if not is_live(OI[s, OI_STATUS]):
        return
    if otype == MARKET or OI[s, OI_TIF] == IOC:
        rem = OF[s, OF_QTY] - OF[s, OF_FILLED]
        finish(I, C, OI, OF, RI, RF, s, t_ex, EXPIRED, R_EXPIRED, rem, OF[s, OF_QTY])
        return
    lvl = own_level(B, side, limit)
    OI[s, OI_RESTING] = 1
    OF[s, OF_LEVEL] = lvl
    OF[s, OF_QUEUE] = math.inf if math.isnan(lvl) else lvl
    OF[s, OF_TRADED] = 0.0


@njit(void(T_VI, T_VF, T_C, T_MI, T_MF, T_MF, T_MI, T_MF, T_MI, T_MF, i8, i8), cache=True)
def arrive(I, F, C, OI, OF, B, FI, FF, RI, RF, s, t_ex) -> None:
    OI[s, OI_ARRIVED] = 1
    side = OI[s, OI_SIDE]
    otype = OI[s, OI_TYPE]
    if otype == STOP_LIMIT:
        OI[s, OI_STATUS] = NEW
        report_order(I, C, OI, OF, RI, RF, s, t_ex, NEW, R_ACCEPTED, np.nan, np.nan)
        return
    if otype == LIMIT and OI[s, OI_POST_ONLY] == 1:
        best = best_available(B, side)
        if not math.isnan(best) and px_reaches(side, best, OF[s, OF_PRICE]):
            finish(I, C, OI, OF, RI, RF, s, t_ex, REJECTED, R_POST_ONLY, OF[s, OF_PRICE], best)
            return
    activate(I, F, C, OI, OF, B, FI, FF, RI, RF, s, t_ex, True)


@njit(void(T_VI, T_C, T_MI, T_MF, T_MI, T_MF, i8, i8), cache=True)
def cancel_arrive(I, C, OI, OF, RI, RF, s, t_ex) -> None:
    OI[s, OI_CANCEL_AT] = NO_TS
    st = OI[s, OI_STATUS]
    if is_terminal(st):  # the cancel lost the race (filled, expired...): answer it, then free the slot
        report_order(I, C, OI, OF, RI, RF, s, t_ex, st, R_CANCEL_NOT_OPEN, np.nan, np.nan)
        release(I, OI, s)
        return
    OI[s, OI_ARRIVED] = 1
    rem = OF[s, OF_QTY] - OF[s, OF_FILLED]
    finish(I, C, OI, OF, RI, RF, s, t_ex, CANCELED, R_CANCELED, rem, OF[s, OF_QTY])


@njit(void(T_VI, T_VF, T_C, T_MI, T_MF, T_MF, T_MI, T_MF, T_MI, T_MF, i8), cache=True)
def process_arrivals(I, F, C, OI, OF, B, FI, FF, RI, RF, ts) -> None:
    """Process every request that has arrived by ``ts``, in the order sent."""
    if I[I_NEXT_ARR] > ts:
        return
    while True:
        best = -1
        kind = 0
        bseq = NO_TS
        for s in range(I[I_HI]):
            if OI[s, OI_USED] == 0:
                continue
            if OI[s, OI_ARRIVED] == 0 and OI[s, OI_TS_ARRIVE] <= ts and OI[s, OI_SEQ] < bseq:
                best, kind, bseq = s, 0, OI[s, OI_SEQ]
            if OI[s, OI_CANCEL_AT] <= ts and OI[s, OI_CANCEL_SEQ] < bseq:
                best, kind, bseq = s, 1, OI[s, OI_CANCEL_SEQ]
        if best < 0:
            break
        if kind == 0:
            t_ex = max(OI[best, OI_TS_ARRIVE], I[I_LAST_TS])
            arrive(I, F, C, OI, OF, B, FI, FF, RI, RF, best, t_ex)
        else:
            t_ex = max(OI[best, OI_CANCEL_AT], I[I_LAST_TS])
            cancel_arrive(I, C, OI, OF, RI, RF, best, t_ex)
    nxt = NO_TS
    for s in range(I[I_HI]):
        if OI[s, OI_USED] == 0:
            continue
        if OI[s, OI_ARRIVED] == 0 and OI[s, OI_TS_ARRIVE] < nxt:
            nxt = OI[s, OI_TS_ARRIVE]
        if OI[s, OI_CANCEL_AT] < nxt:
            nxt = OI[s, OI_CANCEL_AT]
    I[I_NEXT_ARR] = nxt
