"""State layout of the feature kernels (indices into the I/F/P/Q arrays, ring columns, reasons)
and the ring-window and rolling z-score helpers every kernel uses. See :mod:`kernels`.

:class:`FeatureState` names the arrays of one engine (built by ``state.KernelState``) and
:class:`TradeState` the subset a trade touches. ``run_batch`` and ``_write`` take a ``FeatureState``;
``step_book`` / ``reset`` take the same arrays as a plain tuple in field order (``tuple(state)``) and
``step_trade`` a plain ``TradeState`` tuple, and name them by unpacking it on their first line. The
streaming engine calls them from Python once per event, and numba types a plain tuple of arrays in its
C dispatcher but a named tuple field by field in Python (measured with numba 0.68, 26 arrays: a named
tuple ~1.4 us more per call, a plain tuple ~0.3 us more than 26 separate arguments)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from orderflow.core.records import Indices

NS = 1_000_000_000
DAY_NS = 86_400 * NS
LN2 = math.log(2.0)

# status codes returned by step_book (reasons)
REASONS = ("", "warmup", "gap", "bad_book")
OK, WARMUP, GAP, BAD_BOOK = range(len(REASONS))

# int state
_i = Indices()
I_HEAD_B = _i()  # next book-ring sequence number
I_HEAD_T = _i()  # next trade-ring sequence number
I_T0 = _i()  # ts of the first event after the last reset (-1: none yet)
I_NSAMP = _i()  # book samples since the last reset
I_REASON = _i()  # why the engine was last reset (WARMUP at start, GAP, BAD_BOOK)
I_HAS_PREV = _i()  # a previous good book exists (OFI defined)
I_LAST_TB = _i()  # ts of the previous good book (EWMA time steps)
I_BUCKET = _i()  # current 1 s bucket id (-1: none)
I_ZTOT = _i()  # samples pushed into the z ring
I_KTOT = _i()  # buckets pushed into the Kyle ring
I_VTOT = _i()  # volume buckets pushed into the VPIN ring
I_PTOT = _i()  # values pushed into the vol-percentile ring
I_DQ_HEAD = _i()  # max-size deque (absolute positions)
I_DQ_TAIL = _i()
I_LAST_SIGN = _i()  # tick-rule sign of the last trade
I_OVERFLOW = _i()  # events dropped because a ring was full
I_BAD_TRADES = _i()  # trades ignored (NaN/negative size, non-positive price)
I_NOUT = _i()  # features written by the last step_book
N_I = _i.n

# float state
_f = Indices()
F_CVD = _f()
F_LAST_TPX = _f()  # last trade price (tick rule)
F_LOGMID = _f()  # log mid of the last good book
F_BK_X = _f()  # current 1 s bucket: signed volume
F_BK_NOT = _f()  # current 1 s bucket: traded notional
F_BK_PREV = _f()  # log mid at the close of the previous bucket
F_EMA_F = _f()  # fast / slow EWMA of log mid (trend)
F_EMA_S = _f()
F_VP_BUY = _f()  # current VPIN bucket: buy / sell notional
F_VP_SELL = _f()
F_RV_SHORT = _f()  # last regime short-window realized vol (vol percentile ring input)
N_F = _f.n

# book ring columns (L = levels): raw level-1 OFI, normalised levels, weighted, integrated, r^2, log mid
CB_E1 = 0
CB_N = 1


def book_cols(levels: int) -> int:
    return levels + 5


# trade ring columns
_ct = Indices()
CT_SIGNED = _ct()
CT_BUY = _ct()
CT_SELL = _ct()
CT_NBUY = _ct()
CT_NSELL = _ct()
CT_SIZE = _ct()
CT_NOTIONAL = _ct()
N_CT = _ct.n

# float params
_p = Indices()
P_TICK = _p()
P_DEPTH_HL_NS = _p()
P_EMA_F_HL_NS = _p()
P_EMA_S_HL_NS = _p()
P_VPIN_V = _p()
P_VS_LO = _p()
P_VS_HI = _p()
P_TREND_THR = _p()
P_WARMUP_NS = _p()
N_P = _p.n

# int params
_q = Indices()
Q_L = _q()
Q_ZN = _q()  # zscore window (samples)
Q_KN = _q()  # Kyle/Amihud buckets
Q_VK = _q()  # VPIN buckets
Q_PM = _q()  # vol percentile buckets
Q_LVL_B = _q()  # index (book windows) of the level-sum window
Q_DIV_B = _q()  # index (book windows) of the divergence window
Q_W0_B = _q()  # index (book windows) of the first momentum window (z-scores)
Q_C0_T = _q()  # index (trade windows) of the first CVD window (z-score)
Q_DIV_T = _q()  # index (trade windows) of the divergence window
Q_RVS_B = _q()  # indices (book windows) of the regime short / long realized vol
Q_RVL_B = _q()
Q_TMAX_T = _q()  # index (trade windows) of the max-size window
Q_FUTURES = _q()
N_Q = _q.n

# z ring columns
_z = Indices()
Z_OFI1 = _z()
Z_OFIW = _z()
Z_OFII = _z()
Z_OFIW_DIV = _z()
Z_RET_DIV = _z()
Z_CVD0 = _z()
Z_CVD_DIV = _z()
N_Z = _z.n


class FeatureState(NamedTuple):
    """All arrays the feature kernels read and write (one set per engine; columns and indices above)."""

    I: np.ndarray  # int64 scalars (I_*)
    F: np.ndarray  # float64 scalars (F_*)
    prev: np.ndarray  # (4, L) the previous good book (bid px, bid sz, ask px, ask sz)
    D: np.ndarray  # (L,) smoothed depth per level
    tsb: np.ndarray  # book ring: times
    vb: np.ndarray  # book ring: values (columns CB_*)
    bwns: np.ndarray  # book windows (ns)
    bptr: np.ndarray  # per book window: oldest event (absolute sequence number)
    bacc: np.ndarray  # per book window: sums and sums of squares of every column
    bref: np.ndarray  # per book window: log mid of the last event that left it
    tst: np.ndarray  # trade ring: times
    vt: np.ndarray  # trade ring: values (columns CT_*)
    twns: np.ndarray  # trade windows (ns)
    tptr: np.ndarray  # per trade window: oldest event
    tacc: np.ndarray  # per trade window: sums and sums of squares
    tref: np.ndarray  # per trade window: reference value
    dq: np.ndarray  # max-size deque (sequence numbers)
    zv: np.ndarray  # z ring (columns Z_*)
    zs: np.ndarray  # z ring: sliding Welford sums
    kv: np.ndarray  # Kyle/Amihud ring (1 s buckets)
    vp: np.ndarray  # VPIN ring (volume buckets)
    pv: np.ndarray  # vol percentile ring
    P: np.ndarray  # float64 params (P_*)
    Q: np.ndarray  # int64 params (Q_*)
    W: np.ndarray  # (2, L) level weights (weighted, integrated OFI)
    IX: np.ndarray  # window index lists (momentum, vol, rv, cvd, trade, trade vol, funding hours)


class TradeState(NamedTuple):
    """The arrays ``step_trade`` reads and writes (the same arrays as in :class:`FeatureState`)."""

    I: np.ndarray
    F: np.ndarray
    tst: np.ndarray
    vt: np.ndarray
    twns: np.ndarray
    tptr: np.ndarray
    tacc: np.ndarray
    tref: np.ndarray
    dq: np.ndarray
    kv: np.ndarray
    vp: np.ndarray
    pv: np.ndarray
    P: np.ndarray
    Q: np.ndarray

    @classmethod
    def of(cls, S: FeatureState) -> TradeState:
        """The trade subset of ``S``."""
        return cls(*(getattr(S, f) for f in cls._fields))


# ------------------------------------------------------------------------------------------ helpers
@njit(cache=True)
def _decay(dt_ns: float, hl_ns: float) -> float:
    """EWMA weight of a new observation after dt: 1 - 2^(-dt/half-life)."""
    return -math.expm1(-LN2 * dt_ns / hl_ns)


@njit(cache=True)
def _evict_one(v, slot, acc, j, ncol):
    for c in range(ncol):
        x = v[slot, c]
        acc[j, 0, c] -= x
        acc[j, 1, c] -= x * x


@njit(cache=True)
def _win_evict(ts, v, wns, ptr, acc, ref, head, t, ref_col):
    """Drop events with ts <= t - w from every window; ``ref[j]`` keeps the last dropped ref_col value."""
    cap = ts.shape[0]
    ncol = v.shape[1]
    for j in range(wns.shape[0]):
        lim = t - wns[j]
        p = ptr[j]
        while p < head and ts[p % cap] <= lim:
            slot = p % cap
            _evict_one(v, slot, acc, j, ncol)
            if ref_col >= 0:
                ref[j] = v[slot, ref_col]
            p += 1
        ptr[j] = p
        if p == head:
            for c in range(ncol):
                acc[j, 0, c] = 0.0
                acc[j, 1, c] = 0.0


@njit(cache=True)
def _win_push(ts, v, wns, ptr, acc, ref, head, t, row, ref_col, I):
    """Append one event (values ``row``) to the ring and every window; returns the new head."""
    cap = ts.shape[0]
    ncol = v.shape[1]
    for j in range(wns.shape[0]):
        if head - ptr[j] >= cap:  # ring full: the oldest event leaves this window early
            slot = ptr[j] % cap
            _evict_one(v, slot, acc, j, ncol)
            if ref_col >= 0:
                ref[j] = v[slot, ref_col]
            ptr[j] += 1
            I[I_OVERFLOW] += 1
    slot = head % cap
    ts[slot] = t
    for c in range(ncol):
        x = row[c]
        v[slot, c] = x
        for j in range(wns.shape[0]):
            acc[j, 0, c] += x
            acc[j, 1, c] += x * x
    return head + 1


@njit(cache=True)
def _std(acc, j, c, n):
    if n < 2:
        return np.nan
    m = acc[j, 0, c] / n
    var = acc[j, 1, c] / n - m * m
    return math.sqrt(var) if var > 0.0 else 0.0


@njit(cache=True)
def _z_push(zv, zs, I, row):
    """Push one sample into the z ring (sliding Welford per column; NaN values are skipped)."""
    zn = zv.shape[0]
    tot = I[I_ZTOT]
    slot = tot % zn
    for c in range(zv.shape[1]):
        if tot >= zn:
            y = zv[slot, c]
            if not math.isnan(y):
                n = zs[0, c] - 1.0
                zs[0, c] = n
                if n <= 0.0:
                    zs[1, c] = 0.0
                    zs[2, c] = 0.0
                else:
                    d = y - zs[1, c]
                    zs[1, c] -= d / n
                    zs[2, c] -= d * (y - zs[1, c])
        x = row[c]
        zv[slot, c] = x
        if not math.isnan(x):
            n = zs[0, c] + 1.0
            zs[0, c] = n
            d = x - zs[1, c]
            zs[1, c] += d / n
            zs[2, c] += d * (x - zs[1, c])
    I[I_ZTOT] = tot + 1


@njit(cache=True)
def _z(zs, c, x, zn):
    """z-score of x against the ring column c; NaN until the column holds zn values or if std is 0."""
    n = zs[0, c]
    if n < zn or math.isnan(x):
        return np.nan
    m2 = zs[2, c]
    if m2 <= 0.0:
        return np.nan
    return (x - zs[1, c]) / math.sqrt(m2 / n)


@njit(cache=True)
def _sign(x):
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)
