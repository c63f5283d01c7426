"""Fill and report primitives of the simulated exchange (numba): writing rows to the output buffers,
filling an order (fees, reduce-only cap, status changes), walking the book as a taker, and freeing
order slots. The public per-event kernels are in :mod:`orderflow.execution.sim_kernels`.

Fees: ``rate * qty * price`` in quote currency on every fill, maker or taker rate from the config.
Taker liquidity: an order crossing the book takes the opposite levels at the book's prices, best
first, up to its limit price; what it took is recorded per level in ``B_TAKEN_*`` and is unavailable
to later orders until the next book event replaces the book.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from orderflow.execution.sim_latency import response_ts
from orderflow.execution.sim_layout import (
    B_ASK_PX,
    B_ASK_SZ,
    B_BID_PX,
    B_BID_SZ,
    B_TAKEN_ASK,
    B_TAKEN_BID,
    BUY,
    EXPIRED,
    F_POS,
    FF_FEE,
    FF_PRICE,
    FF_QTY,
    FF_REMAINING,
    FI_ID,
    FI_MAKER,
    FI_SIDE,
    FI_TS_EX,
    FI_TS_ST,
    FILLED,
    I_HI,
    I_LOST_FILLS,
    I_LOST_REPORTS,
    I_NFILL,
    I_NLIVE,
    I_NREP,
    NEW,
    NO_TS,
    OF_FEES,
    OF_FILLED,
    OF_NOTIONAL,
    OF_QTY,
    OI_CANCEL_AT,
    OI_ID,
    OI_REDUCE_ONLY,
    OI_RESTING,
    OI_SIDE,
    OI_STATUS,
    OI_USED,
    PARTIALLY_FILLED,
    QTY_REL_EPS,
    R_FILLED,
    R_PARTIALLY_FILLED,
    R_REDUCE_ONLY,
    RF_AVG_PX,
    RF_FILLED,
    RF_LIMIT,
    RF_REMAINING,
    RF_VALUE,
    RI_ID,
    RI_REASON,
    RI_STATUS,
    RI_TS_EX,
    RI_TS_ST,
    T_C,
    T_MF,
    T_MI,
    T_VF,
    T_VI,
    b1,
    f8,
    i8,
    is_live,
    px_reaches,
    void,
)


@njit(void(T_VI, T_C, T_MI, T_MF, i8, b1, i8, i8, i8, f8, f8, f8, f8, f8), cache=True)
def write_report(
    I, C, RI, RF, t_ex, ordered, oid, status, reason, filled, avg_px, remaining, value, limit
) -> None:
    """Append one report row (strategy time = t_ex + response latency); counts it as lost if full."""
    ts_st = response_ts(I, C, t_ex, ordered)
    n = I[I_NREP]
    if n >= RI.shape[0]:
        I[I_LOST_REPORTS] += 1
        return
    RI[n, RI_TS_EX] = t_ex
    RI[n, RI_TS_ST] = ts_st
    RI[n, RI_ID] = oid
    RI[n, RI_STATUS] = status
    RI[n, RI_REASON] = reason
    RF[n, RF_FILLED] = filled
    RF[n, RF_AVG_PX] = avg_px
    RF[n, RF_REMAINING] = remaining
    RF[n, RF_VALUE] = value
    RF[n, RF_LIMIT] = limit
    I[I_NREP] = n + 1


@njit(void(T_VI, T_C, T_MI, T_MF, T_MI, T_MF, i8, i8, i8, i8, f8, f8), cache=True)
def report_order(I, C, OI, OF, RI, RF, s, t_ex, status, reason, value, limit) -> None:
    """Report on the order in slot ``s`` with its filled qty, average price and remaining qty."""
    filled = OF[s, OF_FILLED]
    avg = OF[s, OF_NOTIONAL] / filled if filled > 0.0 else np.nan
    rem = OF[s, OF_QTY] - filled
    write_report(I, C, RI, RF, t_ex, True, OI[s, OI_ID], status, reason, filled, avg, rem, value, limit)


@njit(void(T_VI, T_MI, i8), cache=True)
def release(I, OI, s) -> None:
    """Free slot ``s`` of a terminal order, unless its cancel is still in flight (the slot is then held
    until the cancel arrives and is answered)."""
    if OI[s, OI_CANCEL_AT] != NO_TS or OI[s, OI_USED] == 0:
        return
    OI[s, OI_USED] = 0
    I[I_NLIVE] -= 1
    hi = I[I_HI]
    while hi > 0 and OI[hi - 1, OI_USED] == 0:
        hi -= 1
    I[I_HI] = hi


@njit(void(T_VI, T_C, T_MI, T_MF, T_MI, T_MF, i8, i8, i8, i8, f8, f8), cache=True)
def finish(I, C, OI, OF, RI, RF, s, t_ex, status, reason, value, limit) -> None:
    """Move the order in slot ``s`` to a terminal status, report it and free its slot."""
    OI[s, OI_STATUS] = status
    OI[s, OI_RESTING] = 0
    report_order(I, C, OI, OF, RI, RF, s, t_ex, status, reason, value, limit)
    release(I, OI, s)


@njit(f8(T_VI, T_VF, T_C, T_MI, T_MF, T_MI, T_MF, T_MI, T_MF, i8, f8, f8, b1, i8), cache=True)
def fill_order(I, F, C, OI, OF, FI, FF, RI, RF, s, px, q, maker, t_ex) -> float:
    """Fill up to ``q`` of the order in slot ``s`` at ``px``; returns the qty filled.

    A reduce-only order fills at most the position the exchange holds for us (never flips it); once
    that position is flat, its remainder expires with reason reduce_only (value = position, limit 0).
    A remainder below QTY_REL_EPS of the order qty counts as filled, and a fill below it is no fill
    (float noise)."""
    side = OI[s, OI_SIDE]
    capped = False
    if OI[s, OI_REDUCE_ONLY] == 1:
        room = -F[F_POS] * side  # > 0 when the position is on the other side
        if room <= 0.0:
            finish(I, C, OI, OF, RI, RF, s, t_ex, EXPIRED, R_REDUCE_ONLY, F[F_POS], 0.0)
            return 0.0
        if q >= room:
            q = room
            capped = True
    qty = OF[s, OF_QTY]
    if not capped and q <= QTY_REL_EPS * qty:
        return 0.0  # float dust (a queue estimate's or a level's rounding) is not a fill
    filled = OF[s, OF_FILLED]
    rem = qty - filled
    done = q >= rem - QTY_REL_EPS * qty
    if done:
        q = rem
        filled = qty
    else:
        filled += q
    fee = (C.maker_fee if maker else C.taker_fee) * q * px
    OF[s, OF_FILLED] = filled
    OF[s, OF_NOTIONAL] += q * px
    OF[s, OF_FEES] += fee
    pos = F[F_POS] + side * q
    if capped and abs(pos) <= QTY_REL_EPS * qty:
        pos = 0.0  # a reduce-only fill that closes the position leaves it exactly flat
    F[F_POS] = pos
    n = I[I_NFILL]
    ts_st = response_ts(I, C, t_ex, True)
    if n < FI.shape[0]:
        FI[n, FI_TS_EX] = t_ex
        FI[n, FI_TS_ST] = ts_st
        FI[n, FI_ID] = OI[s, OI_ID]
        FI[n, FI_SIDE] = side
        FI[n, FI_MAKER] = 1 if maker else 0
        FF[n, FF_PRICE] = px
        FF[n, FF_QTY] = q
        FF[n, FF_FEE] = fee
        FF[n, FF_REMAINING] = qty - filled
        I[I_NFILL] = n + 1
    else:
        I[I_LOST_FILLS] += 1
    if done:
        finish(I, C, OI, OF, RI, RF, s, t_ex, FILLED, R_FILLED, filled, qty)
    elif capped:
        finish(I, C, OI, OF, RI, RF, s, t_ex, EXPIRED, R_REDUCE_ONLY, F[F_POS], 0.0)
    elif OI[s, OI_STATUS] == NEW:
        OI[s, OI_STATUS] = PARTIALLY_FILLED
        report_order(I, C, OI, OF, RI, RF, s, t_ex, PARTIALLY_FILLED, R_PARTIALLY_FILLED, filled, qty)
    return q


@njit(void(T_VI, T_VF, T_C, T_MI, T_MF, T_MF, T_MI, T_MF, T_MI, T_MF, i8, f8, i8), cache=True)
def take(I, F, C, OI, OF, B, FI, FF, RI, RF, s, limit_px, t_ex) -> None:
    """Taker part of the order in slot ``s``: walk the opposite side best first at the book's prices
    while the price reaches ``limit_px`` (+inf / -inf for a market order), using only size not taken
    by earlier orders since the last book event."""
    side = OI[s, OI_SIDE]
    prow = B_ASK_PX if side == BUY else B_BID_PX
    srow = B_ASK_SZ if side == BUY else B_BID_SZ
    trow = B_TAKEN_ASK if side == BUY else B_TAKEN_BID
    for i in range(B.shape[1]):
        if not is_live(OI[s, OI_STATUS]):
            return
        p = B[prow, i]
        if math.isnan(p) or not px_reaches(side, p, limit_px):
            return
        avail = B[srow, i] - B[trow, i]
        if avail <= 0.0:
            continue
        want = min(avail, OF[s, OF_QTY] - OF[s, OF_FILLED])
        B[trow, i] += fill_order(I, F, C, OI, OF, FI, FF, RI, RF, s, p, want, False, t_ex)


@njit(f8(T_MF, i8), cache=True)
def best_available(B, side) -> float:
    """Best opposite price an order of ``side`` could take now (size left after earlier takers);
    NaN if none."""
    prow = B_ASK_PX if side == BUY else B_BID_PX
    srow = B_ASK_SZ if side == BUY else B_BID_SZ
    trow = B_TAKEN_ASK if side == BUY else B_TAKEN_BID
    for i in range(B.shape[1]):
        p = B[prow, i]
        if math.isnan(p):
            return np.nan
        if B[srow, i] - B[trow, i] > 0.0:
            return p
    return np.nan
