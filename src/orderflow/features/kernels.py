"""Numba step kernels: the one definition of every order-flow feature (groups ofi, cvd, micro, time,
regime). The streaming engine calls ``step_trade`` / ``step_book`` / ``reset`` once per event; the batch
engine calls the same functions from the compiled loop ``run_batch``. Same code, same float operations,
so both engines give the same numbers.

State lives in explicit arrays (see ``state.KernelState``; named by ``kernels_layout.FeatureState``):

- ``I`` / ``F``: int64 / float64 scalars (indices ``I_*`` / ``F_*`` below).
- book ring (``tsb``, ``vb``; columns ``CB_*``) and trade ring (``tst``, ``vt``; columns ``CT_*``): one
  ring per stream, shared by all time windows of that stream. Window j keeps a pointer (absolute
  sequence number) to its oldest event and running sums / sums of squares of every column. A window
  of length w at time t holds the events with ``ts > t - w`` (evicted when ``ts <= t - w``); its sums
  are set to exactly 0 whenever it empties, so rounding drift cannot outlive a quiet moment. When a
  ring is full the oldest event is dropped from every window (counted in ``I_OVERFLOW``).
- count rings: z-scores (last ``zscore_window`` samples, sliding Welford per column, NaN skipped),
  Kyle/Amihud (last N closed 1 s buckets), VPIN (last K volume buckets), vol percentile (last M 1 s
  buckets). Their sums are recomputed from the ring at each push (O(N) once per second or bucket).

A time-window feature is NaN until the engine has seen ``w`` of event time since its first event
after the last reset; count-ring features are NaN until their ring is full.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# the state layout (index constants) is shared by a star import; private helpers are imported by name
from orderflow.features.kernels_layout import *
from orderflow.features.kernels_layout import _decay, _win_evict, _win_push
from orderflow.features.kernels_write import _write


# ------------------------------------------------------------------------------------------- reset
@njit(cache=True)
def reset(S, reason):
    """Forget every window and running statistic of the state ``S`` (the arrays of
    :class:`FeatureState` as a plain tuple, module docstring) at a start, gap or bad book; ``reason`` is
    kept."""
    (I, F, prev, D, _tsb, _vb, _bwns, bptr, bacc, bref, _tst, _vt, _twns, tptr, tacc, _tref, _dq,
     _zv, zs, kv, vp, pv, _P, _Q, _W, _IX) = S  # fmt: skip
    hb = I[I_HEAD_B]
    ht = I[I_HEAD_T]
    over = I[I_OVERFLOW]
    bad = I[I_BAD_TRADES]
    I[:] = 0
    I[I_HEAD_B] = hb
    I[I_HEAD_T] = ht
    I[I_OVERFLOW] = over
    I[I_BAD_TRADES] = bad
    I[I_T0] = -1
    I[I_BUCKET] = -1
    I[I_REASON] = reason
    F[:] = np.nan
    F[F_CVD] = 0.0
    F[F_BK_X] = 0.0
    F[F_BK_NOT] = 0.0
    F[F_VP_BUY] = 0.0
    F[F_VP_SELL] = 0.0
    prev[:] = np.nan
    D[:] = 0.0
    bptr[:] = hb
    bacc[:] = 0.0
    bref[:] = np.nan
    tptr[:] = ht
    tacc[:] = 0.0
    zs[:] = 0.0
    kv[:] = 0.0
    vp[:] = 0.0
    pv[:] = np.nan


# ------------------------------------------------------------------------------------------ buckets
@njit(cache=True)
def _kyle_push(I, kv, x, y, absr, notional):
    kn = kv.shape[0]
    slot = I[I_KTOT] % kn
    kv[slot, 0] = x
    kv[slot, 1] = y
    kv[slot, 2] = absr
    kv[slot, 3] = notional
    I[I_KTOT] += 1


@njit(cache=True)
def _close_buckets(I, F, kv, pv, bucket):
    """Close the current 1 s bucket (and any empty ones) when an event of a later bucket arrives."""
    cur = I[I_BUCKET]
    if cur < 0:
        I[I_BUCKET] = bucket
        F[F_BK_PREV] = F[F_LOGMID]
        return
    if bucket <= cur:
        return
    lm = F[F_LOGMID]
    if not math.isnan(lm) and not math.isnan(F[F_BK_PREV]):
        r = (lm - F[F_BK_PREV]) * 1e4
        _kyle_push(I, kv, F[F_BK_X], r, abs(r), F[F_BK_NOT])
    empties = min(bucket - cur - 1, kv.shape[0])
    if not math.isnan(lm):
        for _ in range(empties):
            _kyle_push(I, kv, 0.0, 0.0, 0.0, 0.0)
    # vol percentile ring: the regime short-window vol at each bucket close
    rv = F[F_RV_SHORT]
    if not math.isnan(rv):
        pm = pv.shape[0]
        pv[I[I_PTOT] % pm] = rv
        I[I_PTOT] += 1
    F[F_BK_PREV] = lm
    F[F_BK_X] = 0.0
    F[F_BK_NOT] = 0.0
    I[I_BUCKET] = bucket


@njit(cache=True)
def _vpin_add(I, F, vp, notional, s, vbucket):
    """Fill volume buckets of ``vbucket`` notional with a trade (split across buckets)."""
    if s == 0.0 or notional <= 0.0:
        return
    k = vp.shape[0]
    rem = notional
    filled = F[F_VP_BUY] + F[F_VP_SELL]
    if rem - (vbucket - filled) > (k + 1) * vbucket:  # so large it fills the whole ring by itself
        for i in range(k):
            vp[i] = vbucket
        I[I_VTOT] += k
        rem = (rem - (vbucket - filled)) % vbucket
        F[F_VP_BUY] = rem if s > 0 else 0.0
        F[F_VP_SELL] = rem if s < 0 else 0.0
        return
    while rem > 0.0:
        room = vbucket - (F[F_VP_BUY] + F[F_VP_SELL])
        take = rem if rem < room else room
        if s > 0:
            F[F_VP_BUY] += take
        else:
            F[F_VP_SELL] += take
        rem -= take
        if take >= room:
            vp[I[I_VTOT] % k] = abs(F[F_VP_BUY] - F[F_VP_SELL])
            I[I_VTOT] += 1
            F[F_VP_BUY] = 0.0
            F[F_VP_SELL] = 0.0


# -------------------------------------------------------------------------------------------- trade
@njit(cache=True)
def step_trade(T, ts, px, sz, side):
    """One trade (aggressor ``side`` +1/-1, 0 = unknown: tick rule) applied to the trade state ``T``
    (the arrays of :class:`TradeState` as a plain tuple). Returns the signed size used."""
    I, F, tst, vt, twns, tptr, tacc, tref, dq, kv, vp, pv, P, Q = T
    if not (math.isfinite(px) and px > 0.0 and math.isfinite(sz) and sz >= 0.0):
        I[I_BAD_TRADES] += 1
        return np.nan
    if I[I_T0] < 0:
        I[I_T0] = ts
    _close_buckets(I, F, kv, pv, ts // NS)
    # tick rule state follows every trade; it decides the sign only where the flag is missing
    last = F[F_LAST_TPX]
    if not math.isnan(last) and px != last:
        I[I_LAST_SIGN] = 1 if px > last else -1
    F[F_LAST_TPX] = px
    s = float(side) if side != 0 else float(I[I_LAST_SIGN])
    signed = s * sz
    F[F_CVD] += signed
    notional = px * sz
    row = np.empty(N_CT)
    row[CT_SIGNED] = signed
    row[CT_BUY] = sz if s > 0 else 0.0
    row[CT_SELL] = sz if s < 0 else 0.0
    row[CT_NBUY] = 1.0 if s > 0 else 0.0
    row[CT_NSELL] = 1.0 if s < 0 else 0.0
    row[CT_SIZE] = sz
    row[CT_NOTIONAL] = notional
    _win_evict(tst, vt, twns, tptr, tacc, tref, I[I_HEAD_T], ts, -1)
    _dq_front(I, dq, tptr[Q[Q_TMAX_T]])
    seq = I[I_HEAD_T]
    I[I_HEAD_T] = _win_push(tst, vt, twns, tptr, tacc, tref, seq, ts, row, -1, I)
    _dq_front(I, dq, tptr[Q[Q_TMAX_T]])
    _dq_push(I, dq, vt, seq, sz)
    F[F_BK_X] += signed
    F[F_BK_NOT] += notional
    _vpin_add(I, F, vp, notional, s, P[P_VPIN_V])
    return signed


@njit(cache=True)
def _dq_front(I, dq, oldest):
    cap = dq.shape[0]
    h = I[I_DQ_HEAD]
    while h < I[I_DQ_TAIL] and dq[h % cap] < oldest:
        h += 1
    I[I_DQ_HEAD] = h


@njit(cache=True)
def _dq_push(I, dq, vt, seq, sz):
    cap = dq.shape[0]
    t = I[I_DQ_TAIL]
    while t > I[I_DQ_HEAD] and vt[dq[(t - 1) % cap] % cap, CT_SIZE] <= sz:
        t -= 1
    dq[t % cap] = seq
    I[I_DQ_TAIL] = t + 1


# --------------------------------------------------------------------------------------------- book
@njit(cache=True, inline="always")
def ofi_level(pb, qb, pa, qa, pb0, qb0, pa0, qa0):
    """e_m of one level (Cont et al.): a NaN price is absent (-inf bid, +inf ask), a NaN size is 0."""
    pb = -math.inf if math.isnan(pb) else pb
    pa = math.inf if math.isnan(pa) else pa
    pb0 = -math.inf if math.isnan(pb0) else pb0
    pa0 = math.inf if math.isnan(pa0) else pa0
    qb = 0.0 if math.isnan(qb) else qb
    qa = 0.0 if math.isnan(qa) else qa
    qb0 = 0.0 if math.isnan(qb0) else qb0
    qa0 = 0.0 if math.isnan(qa0) else qa0
    e = 0.0
    if pb >= pb0:
        e += qb
    if pb <= pb0:
        e -= qb0
    if pa <= pa0:
        e -= qa
    if pa >= pa0:
        e += qa0
    return e


@njit(cache=True)
def ofi_cvd_core(book_ts, bid_px, bid_sz, ask_px, ask_sz, trade_ts, trade_sz, trade_side, ofi, cvd):
    """The batch core on its own (benchmarks, cross-checks): per-event level OFI ``ofi`` (n, L; row 0
    is 0 as in ofi.ofi_per_event) and CVD at each book event from flagged trades with ts <= it."""
    n, levels = ofi.shape
    it = 0
    c = 0.0
    for i in range(n):
        while it < trade_ts.shape[0] and trade_ts[it] <= book_ts[i]:
            c += trade_side[it] * trade_sz[it]
            it += 1
        cvd[i] = c
        for m in range(levels):
            if i == 0:
                ofi[i, m] = 0.0
            else:
                ofi[i, m] = ofi_level(
                    bid_px[i, m], bid_sz[i, m], ask_px[i, m], ask_sz[i, m],
                    bid_px[i - 1, m], bid_sz[i - 1, m], ask_px[i - 1, m], ask_sz[i - 1, m],
                )  # fmt: skip


@njit(cache=True)
def step_book(S, ts, bp, bs, ap, aq, out):
    """One book event (top-L arrays after it) applied to the state ``S`` (the arrays of
    :class:`FeatureState` as a plain tuple): update the state, write the feature vector into ``out`` and
    return the status (OK, WARMUP, GAP or BAD_BOOK)."""
    (I, F, prev, D, tsb, vb, bwns, bptr, bacc, bref, tst, vt, twns, tptr, tacc, tref, dq,
     zv, zs, kv, vp, pv, P, Q, W, IX) = S  # fmt: skip
    L = Q[Q_L]
    bad = not (bs[0] > 0.0 and aq[0] > 0.0 and bp[0] < ap[0])  # NaN fails every comparison
    for m in range(L):
        if bs[m] < 0.0 or aq[m] < 0.0:
            bad = True
    e = np.full(L, np.nan)
    nrm = np.zeros(L)
    ofi_w = np.nan
    ofi_i = np.nan
    if bad:
        reset(S, BAD_BOOK)
    else:
        if I[I_T0] < 0:
            I[I_T0] = ts
        _close_buckets(I, F, kv, pv, ts // NS)
        has_prev = I[I_HAS_PREV] == 1
        a = _decay(float(ts - I[I_LAST_TB]), P[P_DEPTH_HL_NS]) if has_prev else 1.0
        row = np.zeros(L + 5)
        for m in range(L):
            qb = 0.0 if math.isnan(bs[m]) else bs[m]
            qa = 0.0 if math.isnan(aq[m]) else aq[m]
            x = 0.5 * (qb + qa)
            D[m] = x if D[m] <= 0.0 else D[m] + a * (x - D[m])
            if has_prev:
                em = ofi_level(bp[m], bs[m], ap[m], aq[m], prev[0, m], prev[1, m], prev[2, m], prev[3, m])
                e[m] = em
                nrm[m] = em / D[m] if D[m] > 0.0 else 0.0
        lm = math.log(0.5 * (bp[0] + ap[0]))
        if has_prev:
            ofi_w = 0.0
            ofi_i = 0.0
            for m in range(L):
                ofi_w += W[0, m] * nrm[m]
                ofi_i += W[1, m] * nrm[m]
            row[CB_E1] = e[0]
            for m in range(L):
                row[CB_N + m] = nrm[m]
            row[L + 1] = ofi_w
            row[L + 2] = ofi_i
            r = lm - F[F_LOGMID]
            row[L + 3] = r * r
            ae = _decay(float(ts - I[I_LAST_TB]), P[P_EMA_F_HL_NS])
            F[F_EMA_F] += ae * (lm - F[F_EMA_F])
            ae = _decay(float(ts - I[I_LAST_TB]), P[P_EMA_S_HL_NS])
            F[F_EMA_S] += ae * (lm - F[F_EMA_S])
        else:
            F[F_EMA_F] = lm
            F[F_EMA_S] = lm
        row[L + 4] = lm
        _win_evict(tsb, vb, bwns, bptr, bacc, bref, I[I_HEAD_B], ts, L + 4)
        I[I_HEAD_B] = _win_push(tsb, vb, bwns, bptr, bacc, bref, I[I_HEAD_B], ts, row, L + 4, I)
        F[F_LOGMID] = lm
        for m in range(L):
            prev[0, m] = bp[m]
            prev[1, m] = bs[m]
            prev[2, m] = ap[m]
            prev[3, m] = aq[m]
        I[I_HAS_PREV] = 1
        I[I_LAST_TB] = ts
        I[I_NSAMP] += 1
    _win_evict(tst, vt, twns, tptr, tacc, tref, I[I_HEAD_T], ts, -1)
    _dq_front(I, dq, tptr[Q[Q_TMAX_T]])
    N = FeatureState(I, F, prev, D, tsb, vb, bwns, bptr, bacc, bref, tst, vt, twns, tptr, tacc, tref, dq,
                     zv, zs, kv, vp, pv, P, Q, W, IX)  # fmt: skip
    return _write(N, e, ofi_w, ofi_i, ts, bp, bs, ap, aq, out, bad)


@njit(cache=True)
def run_batch(S, book_ts, bid_px, bid_sz, ask_px, ask_sz, trade_ts, trade_px, trade_sz, trade_side, gap_ts,
              out, status):  # fmt: skip
    """Replay events in time order (trades, then gaps, then the book event at equal ts) through the
    step kernels with the state ``S`` (``FeatureState``); ``out[i]`` / ``status[i]`` are the vector and
    status at book event i."""
    (I, F, prev, D, tsb, vb, bwns, bptr, bacc, bref, tst, vt, twns, tptr, tacc, tref, dq,
     zv, zs, kv, vp, pv, P, Q, W, IX) = S  # fmt: skip
    # the plain tuples the step kernels take (the same types the streaming engine passes: one compile)
    SS = (I, F, prev, D, tsb, vb, bwns, bptr, bacc, bref, tst, vt, twns, tptr, tacc, tref, dq,
          zv, zs, kv, vp, pv, P, Q, W, IX)  # fmt: skip
    T = (I, F, tst, vt, twns, tptr, tacc, tref, dq, kv, vp, pv, P, Q)
    it = 0
    ig = 0
    nt = trade_ts.shape[0]
    ng = gap_ts.shape[0]
    for i in range(book_ts.shape[0]):
        tb = book_ts[i]
        while (it < nt and trade_ts[it] <= tb) or (ig < ng and gap_ts[ig] <= tb):
            if it < nt and trade_ts[it] <= tb and (ig >= ng or trade_ts[it] <= gap_ts[ig]):
                step_trade(T, trade_ts[it], trade_px[it], trade_sz[it], trade_side[it])
                it += 1
            else:
                reset(SS, GAP)
                ig += 1
        status[i] = step_book(SS, tb, bid_px[i], bid_sz[i], ask_px[i], ask_sz[i], out[i])
    return it
