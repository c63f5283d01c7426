"""Per-event kernels of the simulated exchange (numba): the one definition of the fill rules, called
by the backtester's compiled loop and, one event at a time, by :class:`sim_exchange.SimulatedExchange`.

Every public kernel takes the exchange's state first, a ``SimState`` named tuple of the arrays
``(I, F, C, OI, OF, B, FI, FF, RI, RF)`` (see :mod:`orderflow.execution.sim_layout`); internal kernels
take the arrays themselves.

- ``submit_order`` / ``cancel_order`` (strategy time ``ts``): the request arrives at the exchange at
  ``ts + entry latency`` (FIFO) and takes effect at the first market event with ``ts_event >=``
  that time; pending arrivals are processed, in the order they were sent, before that event is
  applied, against the book as it was. Their exchange time is ``max(arrival, last event ts)``.
  Requests that are invalid on their face (qty, price, side, type, duplicate live id, full table,
  cancel of an id that is not open) are rejected at once; the report carries the exchange time the
  request would have arrived.
- ``on_book`` (top L levels): pending arrivals, then the new book replaces the old one (taken
  liquidity is reset), queue positions of resting orders are updated (see :mod:`sim_queue`), and a
  resting order whose opposite best price is at or through its price fills its remainder at its own
  price (maker).
- ``on_trade``: pending arrivals, then resting orders: a trade at the order's price with the aggressor
  on the other side first consumes ``queue_ahead``, the excess fills the order (maker); a trade
  strictly through the order's price fills it up to the trade size. One trade's volume fills our
  orders at most once in total. Then stop-limits trigger (buy: trade price >= stop, sell: <= stop)
  and act as a limit order arriving at that moment. An unknown aggressor (0) is inferred from the
  last mid (price >= mid: buyer). Trades with size <= 0 or price <= 0 (or NaN) are
  ignored and counted in ``I[I_BAD_TRADES]``.

MARKET orders (and the crossing part of LIMIT orders) take liquidity at the book's prices, level by
level (``sim_fills.take``); the part of a market order beyond the visible levels is EXPIRED (a partial
fill), as is the remainder of an IOC limit. Reduce-only orders are checked when they become active
(arrival, or trigger for a stop-limit) against the position the exchange holds for us
(``F[F_POS]``, moved by every fill; set it directly to start from a position): rejected when the
position is flat or on the same side, trimmed to the position when larger (a ``reduce_only_trimmed``
report), and capped at fill time so that they never flip it.

Limitation: the replayed book does not know our trades, so a level we took is shown again by the next
book event (no market impact beyond one book state).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from orderflow.execution.sim_fills import (
    fill_order,
    report_order,
    write_report,
)
from orderflow.execution.sim_latency import arrival_ts
from orderflow.execution.sim_layout import (
    B_ASK_PX,
    B_ASK_SZ,
    B_BID_PX,
    B_BID_SZ,
    B_TAKEN_ASK,
    B_TAKEN_BID,
    BUY,
    F_MID,
    GTC,
    I_BAD_TRADES,
    I_HI,
    I_LAST_TS,
    I_NEXT_ARR,
    I_NLIVE,
    I_SEQ,
    IOC,
    LIMIT,
    MARKET,
    NO_TS,
    OF_FEES,
    OF_FILLED,
    OF_LEVEL,
    OF_NOTIONAL,
    OF_PRICE,
    OF_QTY,
    OF_QUEUE,
    OF_STOP,
    OF_TRADED,
    OI_ARRIVED,
    OI_CANCEL_AT,
    OI_CANCEL_SEQ,
    OI_ID,
    OI_POST_ONLY,
    OI_REDUCE_ONLY,
    OI_RESTING,
    OI_SEQ,
    OI_SIDE,
    OI_STATUS,
    OI_TIF,
    OI_TRIGGERED,
    OI_TS_ARRIVE,
    OI_TS_SUBMIT,
    OI_TYPE,
    OI_USED,
    PENDING_CANCEL,
    PENDING_NEW,
    PX_REL_EPS,
    R_CANCEL_NOT_OPEN,
    R_CANCEL_PENDING,
    R_DUPLICATE_ID,
    R_INVALID_PRICE,
    R_INVALID_QTY,
    R_INVALID_SIDE,
    R_INVALID_TYPE,
    R_TOO_MANY_ORDERS,
    R_TRIGGERED,
    REJECTED,
    SELL,
    STOP_LIMIT,
    UNKNOWN,
    SimState,
    is_live,
    is_terminal,
    px_eq,
    px_reaches,
)
from orderflow.execution.sim_queue import own_level, queue_after_book
from orderflow.execution.sim_requests import activate, process_arrivals

Arr = np.ndarray


# ------------------------------------------------------------------------------------ public kernels
@njit(cache=True)
def submit_order(
    S: SimState,
    ts: int,
    oid: int,
    otype: int,
    side: int,
    price: float,
    stop_px: float,
    qty: float,
    tif: int,
    post_only: bool,
    reduce_only: bool,
) -> int:
    """Send an order at strategy time ``ts`` (int ns). ``otype``: LIMIT / MARKET / STOP_LIMIT; ``side``
    +1 / -1; ``price`` limit price (ignored for MARKET), ``stop_px`` (STOP_LIMIT only), ``qty`` base
    units; ``tif`` GTC / IOC (MARKET is always IOC); flags 0/1. Returns 0, or the reason code of an
    immediate rejection (also written as a REJECTED report)."""
    I, C, OI, OF, RI, RF = S.I, S.C[0], S.OI, S.OF, S.RI, S.RF
    arr = arrival_ts(I, C, ts)
    code = 0
    value = np.nan
    limit = np.nan
    slot = -1
    if side != BUY and side != SELL:
        code, value = R_INVALID_SIDE, float(side)
    elif otype < LIMIT or otype > STOP_LIMIT or tif < GTC or tif > IOC:
        code, value, limit = R_INVALID_TYPE, float(otype), float(tif)
    elif not (qty > 0.0) or math.isinf(qty):
        code, value, limit = R_INVALID_QTY, qty, 0.0
    elif otype != MARKET and (not (price > 0.0) or math.isinf(price)):
        code, value, limit = R_INVALID_PRICE, price, 0.0
    elif otype == STOP_LIMIT and (not (stop_px > 0.0) or math.isinf(stop_px)):
        code, value, limit = R_INVALID_PRICE, stop_px, 0.0
    else:
        for s in range(I[I_HI]):
            if OI[s, OI_USED] == 0:
                if slot < 0:
                    slot = s
            elif OI[s, OI_ID] == oid and not is_terminal(OI[s, OI_STATUS]):
                code, value = R_DUPLICATE_ID, float(oid)
                break
        if code == 0 and slot < 0:
            if I[I_HI] < OI.shape[0]:
                slot = I[I_HI]
            else:
                code, value, limit = R_TOO_MANY_ORDERS, float(I[I_NLIVE]), float(OI.shape[0])
    if code != 0:
        write_report(I, C, RI, RF, arr, False, oid, REJECTED, code, 0.0, np.nan, qty, value, limit)
        return code
    s = slot
    OI[s, :] = 0
    OI[s, OI_USED] = 1
    OI[s, OI_ID] = oid
    OI[s, OI_STATUS] = PENDING_NEW
    OI[s, OI_SIDE] = side
    OI[s, OI_TYPE] = otype
    OI[s, OI_TIF] = IOC if otype == MARKET else tif
    OI[s, OI_POST_ONLY] = 1 if post_only else 0
    OI[s, OI_REDUCE_ONLY] = 1 if reduce_only else 0
    OI[s, OI_SEQ] = I[I_SEQ]
    I[I_SEQ] += 1
    OI[s, OI_TS_SUBMIT] = ts
    OI[s, OI_TS_ARRIVE] = arr
    OI[s, OI_CANCEL_AT] = NO_TS
    OF[s, :] = np.nan
    OF[s, OF_PRICE] = np.nan if otype == MARKET else price
    OF[s, OF_STOP] = stop_px if otype == STOP_LIMIT else np.nan
    OF[s, OF_QTY] = qty
    OF[s, OF_FILLED] = 0.0
    OF[s, OF_NOTIONAL] = 0.0
    OF[s, OF_FEES] = 0.0
    OF[s, OF_TRADED] = 0.0
    if s == I[I_HI]:
        I[I_HI] = s + 1
    I[I_NLIVE] += 1
    if arr < I[I_NEXT_ARR]:
        I[I_NEXT_ARR] = arr
    return 0


@njit(cache=True)
def cancel_order(
    S: SimState,
    ts: int,
    oid: int,
) -> int:
    """Send a cancel at strategy time ``ts``. Returns 0, or the reason code of an immediate answer
    (id not open: R_CANCEL_NOT_OPEN; a cancel already in flight: R_CANCEL_PENDING), also reported."""
    I, C, OI, OF, RI, RF = S.I, S.C[0], S.OI, S.OF, S.RI, S.RF
    arr = arrival_ts(I, C, ts)
    for s in range(I[I_HI]):
        if OI[s, OI_USED] == 1 and OI[s, OI_ID] == oid and not is_terminal(OI[s, OI_STATUS]):
            if OI[s, OI_CANCEL_AT] != NO_TS:
                filled = OF[s, OF_FILLED]
                avg = OF[s, OF_NOTIONAL] / filled if filled > 0.0 else np.nan
                rem = OF[s, OF_QTY] - filled
                write_report(
                    I, C, RI, RF, arr, False, oid, PENDING_CANCEL, R_CANCEL_PENDING, filled, avg, rem,
                    np.nan, np.nan,
                )  # fmt: skip
                return R_CANCEL_PENDING
            OI[s, OI_CANCEL_AT] = arr
            OI[s, OI_CANCEL_SEQ] = I[I_SEQ]
            I[I_SEQ] += 1
            if arr < I[I_NEXT_ARR]:
                I[I_NEXT_ARR] = arr
            return 0
    nan = np.nan
    write_report(I, C, RI, RF, arr, False, oid, UNKNOWN, R_CANCEL_NOT_OPEN, 0.0, nan, nan, nan, nan)
    return R_CANCEL_NOT_OPEN


@njit(cache=True)
def on_book(
    S: SimState,
    ts: int,
    bid_px: Arr,
    bid_sz: Arr,
    ask_px: Arr,
    ask_sz: Arr,
) -> None:
    """Apply a book event at exchange time ``ts``: the top levels, best first (bids descending, asks
    ascending; NaN = no level; arrays longer than L are cut, shorter ones padded with NaN)."""
    I, F, C, OI, OF, B, FI, FF, RI, RF = S
    C = C[0]  # the config record
    process_arrivals(I, F, C, OI, OF, B, FI, FF, RI, RF, ts)
    I[I_LAST_TS] = ts
    L = B.shape[1]
    for i in range(L):
        B[B_BID_PX, i] = bid_px[i] if i < bid_px.shape[0] else np.nan
        B[B_BID_SZ, i] = bid_sz[i] if i < bid_sz.shape[0] else np.nan
        B[B_ASK_PX, i] = ask_px[i] if i < ask_px.shape[0] else np.nan
        B[B_ASK_SZ, i] = ask_sz[i] if i < ask_sz.shape[0] else np.nan
        B[B_TAKEN_BID, i] = 0.0
        B[B_TAKEN_ASK, i] = 0.0
    bb = B[B_BID_PX, 0]
    ba = B[B_ASK_PX, 0]
    F[F_MID] = 0.5 * (bb + ba)  # NaN if a side is empty
    model = C.queue_model
    n = C.queue_power
    for s in range(I[I_HI]):
        if OI[s, OI_USED] == 0 or OI[s, OI_RESTING] == 0 or not is_live(OI[s, OI_STATUS]):
            continue
        side = OI[s, OI_SIDE]
        px = OF[s, OF_PRICE]
        lvl = own_level(B, side, px)
        OF[s, OF_QUEUE] = queue_after_book(model, n, OF[s, OF_QUEUE], OF[s, OF_LEVEL], OF[s, OF_TRADED], lvl)
        OF[s, OF_LEVEL] = lvl
        OF[s, OF_TRADED] = 0.0
        opp = ba if side == BUY else bb
        if not math.isnan(opp) and px_reaches(side, opp, px):
            rem = OF[s, OF_QTY] - OF[s, OF_FILLED]
            fill_order(I, F, C, OI, OF, FI, FF, RI, RF, s, px, rem, True, ts)


@njit(cache=True)
def on_trade(
    S: SimState,
    ts: int,
    price: float,
    size: float,
    side: int,
) -> None:
    """Apply a trade at exchange time ``ts``: ``price``, ``size`` (base units), aggressor ``side``
    (+1 buyer, -1 seller, 0 unknown)."""
    I, F, C, OI, OF, B, FI, FF, RI, RF = S
    C = C[0]  # the config record
    process_arrivals(I, F, C, OI, OF, B, FI, FF, RI, RF, ts)
    I[I_LAST_TS] = ts
    if not (size > 0.0) or not (price > 0.0):
        I[I_BAD_TRADES] += 1
        return
    agg = side
    if agg == 0 and not math.isnan(F[F_MID]):
        agg = BUY if price >= F[F_MID] else SELL
    left = size
    for s in range(I[I_HI]):
        if OI[s, OI_USED] == 0 or OI[s, OI_RESTING] == 0 or not is_live(OI[s, OI_STATUS]):
            continue
        oside = OI[s, OI_SIDE]
        px = OF[s, OF_PRICE]
        rem = OF[s, OF_QTY] - OF[s, OF_FILLED]
        if px_eq(price, px):
            if agg != 0 and agg != -oside:
                continue
            OF[s, OF_TRADED] += size
            q = OF[s, OF_QUEUE]
            if size <= q:
                OF[s, OF_QUEUE] = q - size
                continue
            OF[s, OF_QUEUE] = 0.0
            f = min(size - q, left, rem)
        else:
            tol = PX_REL_EPS * abs(px)
            through = price < px - tol if oside == BUY else price > px + tol
            if not through:
                continue
            OF[s, OF_QUEUE] = 0.0
            f = min(size, left, rem)
        if f > 0.0:
            left -= fill_order(I, F, C, OI, OF, FI, FF, RI, RF, s, px, f, True, ts)
    for s in range(I[I_HI]):
        if OI[s, OI_USED] == 0 or OI[s, OI_TYPE] != STOP_LIMIT or OI[s, OI_TRIGGERED] == 1:
            continue
        if OI[s, OI_ARRIVED] == 0 or not is_live(OI[s, OI_STATUS]):
            continue
        stop = OF[s, OF_STOP]
        if px_reaches(-OI[s, OI_SIDE], price, stop):  # buy: price >= stop; sell: price <= stop
            OI[s, OI_TRIGGERED] = 1
            report_order(I, C, OI, OF, RI, RF, s, ts, OI[s, OI_STATUS], R_TRIGGERED, price, stop)
            activate(I, F, C, OI, OF, B, FI, FF, RI, RF, s, ts, False)
