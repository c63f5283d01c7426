"""Numba step kernels: the one definition of every order-flow feature (groups ofi, cvd, micro, time,
regime). The streaming engine calls ``step_trade`` / ``step_book`` / ``reset`` once per event; the batch
engine calls the same functions from the compiled loop ``run_batch``. Same code, same float operations,
so both engines give the same numbers.

State lives in explicit arrays (see ``engine.KernelState``):

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

NS = 1_000_000_000
DAY_NS = 86_400 * NS
LN2 = math.log(2.0)

# status codes returned by step_book (reasons)
OK, WARMUP, GAP, BAD_BOOK = 0, 1, 2, 3
REASONS = ("", "warmup", "gap", "bad_book")

# int state
(
    I_HEAD_B,  # next book-ring sequence number
    I_HEAD_T,  # next trade-ring sequence number
    I_T0,  # ts of the first event after the last reset (-1: none yet)
    I_NSAMP,  # book samples since the last reset
    I_REASON,  # why the engine was last reset (WARMUP at start, GAP, BAD_BOOK)
    I_HAS_PREV,  # a previous good book exists (OFI defined)
    I_LAST_TB,  # ts of the previous good book (EWMA time steps)
    I_BUCKET,  # current 1 s bucket id (-1: none)
    I_ZTOT,  # samples pushed into the z ring
    I_KTOT,  # buckets pushed into the Kyle ring
    I_VTOT,  # volume buckets pushed into the VPIN ring
    I_PTOT,  # values pushed into the vol-percentile ring
    I_DQ_HEAD,  # max-size deque (absolute positions)
    I_DQ_TAIL,
    I_LAST_SIGN,  # tick-rule sign of the last trade
    I_OVERFLOW,  # events dropped because a ring was full
    I_BAD_TRADES,  # trades ignored (NaN/negative size, non-positive price)
    I_NOUT,  # features written by the last step_book
) = range(18)
N_I = 18

# float state
(
    F_CVD,
    F_LAST_TPX,  # last trade price (tick rule)
    F_LOGMID,  # log mid of the last good book
    F_BK_X,  # current 1 s bucket: signed volume
    F_BK_NOT,  # current 1 s bucket: traded notional
    F_BK_PREV,  # log mid at the close of the previous bucket
    F_EMA_F,  # fast / slow EWMA of log mid (trend)
    F_EMA_S,
    F_VP_BUY,  # current VPIN bucket: buy / sell notional
    F_VP_SELL,
    F_RV_SHORT,  # last regime short-window realized vol (vol percentile ring input)
) = range(11)
N_F = 11

# book ring columns (L = levels): raw level-1 OFI, normalised levels, weighted, integrated, r^2, log mid
CB_E1 = 0
CB_N = 1


def book_cols(levels: int) -> int:
    return levels + 5


# trade ring columns
CT_SIGNED, CT_BUY, CT_SELL, CT_NBUY, CT_NSELL, CT_SIZE, CT_NOTIONAL = range(7)
N_CT = 7

# float params
(
    P_TICK,
    P_DEPTH_HL_NS,
    P_EMA_F_HL_NS,
    P_EMA_S_HL_NS,
    P_VPIN_V,
    P_VS_LO,
    P_VS_HI,
    P_TREND_THR,
    P_WARMUP_NS,
) = range(9)
N_P = 9

# int params
(
    Q_L,
    Q_ZN,  # zscore window (samples)
    Q_KN,  # Kyle/Amihud buckets
    Q_VK,  # VPIN buckets
    Q_PM,  # vol percentile buckets
    Q_LVL_B,  # index (book windows) of the level-sum window
    Q_DIV_B,  # index (book windows) of the divergence window
    Q_W0_B,  # index (book windows) of the first momentum window (z-scores)
    Q_C0_T,  # index (trade windows) of the first CVD window (z-score)
    Q_DIV_T,  # index (trade windows) of the divergence window
    Q_RVS_B,  # indices (book windows) of the regime short / long realized vol
    Q_RVL_B,
    Q_TMAX_T,  # index (trade windows) of the max-size window
    Q_FUTURES,
) = range(14)
N_Q = 14

# z ring columns
Z_OFI1, Z_OFIW, Z_OFII, Z_OFIW_DIV, Z_RET_DIV, Z_CVD0, Z_CVD_DIV = range(7)
N_Z = 7


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


# ------------------------------------------------------------------------------------------- reset
@njit(cache=True)
def reset(I, F, prev, D, bptr, bacc, bref, tptr, tacc, zs, kv, vp, pv, reason):
    """Forget every window and running statistic (start, gap, bad book); ``reason`` is kept."""
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
def step_trade(I, F, tst, vt, twns, tptr, tacc, tref, dq, kv, vp, pv, P, Q, ts, px, sz, side):
    """One trade (aggressor ``side`` +1/-1, 0 = unknown: tick rule). Returns the signed size used."""
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
def _full(I, ts, w):
    """A window of length w is defined once w of event time has passed since the first event."""
    t0 = I[I_T0]
    return t0 >= 0 and ts - t0 >= w


@njit(cache=True)
def _div_sign(a, b):
    if math.isnan(a) or math.isnan(b):
        return np.nan
    return 1.0 if a * b < 0.0 else 0.0


@njit(cache=True)
def step_book(
    I, F, prev, D, tsb, vb, bwns, bptr, bacc, bref, tst, vt, twns, tptr, tacc, tref, dq,
    zv, zs, kv, vp, pv, P, Q, W, IX, ts, bp, bs, ap, aq, out,
):  # fmt: skip
    """One book event (top-L arrays after it): update the state, write the feature vector into
    ``out`` and return the status (OK, WARMUP, GAP or BAD_BOOK)."""
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
        reset(I, F, prev, D, bptr, bacc, bref, tptr, tacc, zs, kv, vp, pv, BAD_BOOK)
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
    return _write(I, F, e, ofi_w, ofi_i, tsb, bwns, bptr, bacc, bref, twns, tptr, tacc, vt, dq,
                  zv, zs, kv, vp, pv, P, Q, IX, ts, bp, bs, ap, aq, out, bad)  # fmt: skip


@njit(cache=True)
def _bwin(I, bwns, bacc, j, c, ts):
    return bacc[j, 0, c] if _full(I, ts, bwns[j]) else np.nan


@njit(cache=True)
def _rv2(I, bwns, bacc, j, L, ts):
    """Sum of squared log mid changes in window j (clamped at 0 against rounding), NaN until full."""
    v = _bwin(I, bwns, bacc, j, L + 3, ts)
    return 0.0 if v < 0.0 else v


@njit(cache=True)
def _ret_bps(I, F, bwns, bref, j, ts):
    if not _full(I, ts, bwns[j]):
        return np.nan
    return (F[F_LOGMID] - bref[j]) * 1e4  # NaN if no book event has left the window yet


@njit(cache=True)
def _write(I, F, e, ofi_w, ofi_i, tsb, bwns, bptr, bacc, bref, twns, tptr, tacc, vt, dq,
           zv, zs, kv, vp, pv, P, Q, IX, ts, bp, bs, ap, aq, out, bad):  # fmt: skip
    L = Q[Q_L]
    zn = Q[Q_ZN]
    hb = I[I_HEAD_B]
    ht = I[I_HEAD_T]
    k = 0
    # ---- ofi
    for m in range(L):
        out[k] = e[m]
        k += 1
    out[k] = ofi_w
    out[k + 1] = ofi_i
    k += 2
    for i in range(IX[0, 0]):
        j = IX[0, 1 + i]
        for c in (CB_E1, L + 1, L + 2):
            out[k] = _bwin(I, bwns, bacc, j, c, ts)
            k += 1
    for m in range(L):
        out[k] = _bwin(I, bwns, bacc, Q[Q_LVL_B], CB_N + m, ts)
        k += 1
    ret_div = _ret_bps(I, F, bwns, bref, Q[Q_DIV_B], ts)
    zrow = np.empty(N_Z)
    zrow[Z_OFI1] = _bwin(I, bwns, bacc, Q[Q_W0_B], CB_E1, ts)
    zrow[Z_OFIW] = _bwin(I, bwns, bacc, Q[Q_W0_B], L + 1, ts)
    zrow[Z_OFII] = _bwin(I, bwns, bacc, Q[Q_W0_B], L + 2, ts)
    zrow[Z_OFIW_DIV] = _bwin(I, bwns, bacc, Q[Q_DIV_B], L + 1, ts)
    zrow[Z_RET_DIV] = ret_div
    full_c0 = _full(I, ts, twns[Q[Q_C0_T]])
    full_cd = _full(I, ts, twns[Q[Q_DIV_T]])
    zrow[Z_CVD0] = tacc[Q[Q_C0_T], 0, CT_SIGNED] if full_c0 else np.nan
    zrow[Z_CVD_DIV] = tacc[Q[Q_DIV_T], 0, CT_SIGNED] if full_cd else np.nan
    if not bad:
        _z_push(zv, zs, I, zrow)
    for c in (Z_OFI1, Z_OFIW, Z_OFII, Z_OFIW_DIV):
        out[k] = _z(zs, c, zrow[c], zn)
        k += 1
    for i in range(IX[1, 0]):
        j = IX[1, 1 + i]
        full = _full(I, ts, bwns[j])
        n = hb - bptr[j]
        for c in (CB_E1, L + 1):
            out[k] = _std(bacc, j, c, n) if full else np.nan
            k += 1
    z_ret = _z(zs, Z_RET_DIV, ret_div, zn)
    out[k] = _z(zs, Z_OFIW_DIV, zrow[Z_OFIW_DIV], zn) - z_ret
    out[k + 1] = _div_sign(zrow[Z_OFIW_DIV], ret_div)
    k += 2
    # ---- cvd
    out[k] = F[F_CVD] if not bad else np.nan
    k += 1
    for i in range(IX[3, 0]):
        j = IX[3, 1 + i]
        out[k] = tacc[j, 0, CT_SIGNED] if _full(I, ts, twns[j]) else np.nan
        k += 1
    for i in range(IX[4, 0]):
        j = IX[4, 1 + i]
        full = _full(I, ts, twns[j])
        b = tacc[j, 0, CT_BUY]
        s = tacc[j, 0, CT_SELL]
        out[k] = b if full else np.nan
        out[k + 1] = s if full else np.nan
        out[k + 2] = tacc[j, 0, CT_NBUY] if full else np.nan
        out[k + 3] = tacc[j, 0, CT_NSELL] if full else np.nan
        out[k + 4] = (b - s) / (b + s) if full and b + s > 0.0 else np.nan
        k += 5
    out[k] = _z(zs, Z_CVD0, zrow[Z_CVD0], zn)
    out[k + 1] = _z(zs, Z_CVD_DIV, zrow[Z_CVD_DIV], zn)
    k += 2
    for i in range(IX[5, 0]):
        j = IX[5, 1 + i]
        out[k] = _std(tacc, j, CT_SIGNED, ht - tptr[j]) if _full(I, ts, twns[j]) else np.nan
        k += 1
    out[k] = _z(zs, Z_CVD_DIV, zrow[Z_CVD_DIV], zn) - z_ret
    out[k + 1] = _div_sign(zrow[Z_CVD_DIV], ret_div)
    k += 2
    # ---- micro (snapshot features use the current book, even a bad one)
    mid = 0.5 * (bp[0] + ap[0])
    spread = ap[0] - bp[0]
    out[k] = spread / P[P_TICK]
    out[k + 1] = spread / mid * 1e4
    micro = (bp[0] * aq[0] + ap[0] * bs[0]) / (bs[0] + aq[0])
    out[k + 2] = (micro - mid) / mid * 1e4
    k += 3
    cb = 0.0
    ca = 0.0
    deep_b = np.nan
    deep_a = np.nan
    for m in range(L):
        qb = 0.0 if math.isnan(bs[m]) else bs[m]
        qa = 0.0 if math.isnan(aq[m]) else aq[m]
        out[k] = (qb - qa) / (qb + qa) if qb + qa > 0.0 else np.nan
        k += 1
        cb += qb
        ca += qa
        if not math.isnan(bp[m]):
            deep_b = bp[m]
        if not math.isnan(ap[m]):
            deep_a = ap[m]
        if m == 4 and L > 5:
            out[k + L - 5] = (cb - ca) / (cb + ca) if cb + ca > 0.0 else np.nan
    if L > 5:
        k += 1
    out[k] = (cb - ca) / (cb + ca) if cb + ca > 0.0 else np.nan
    k += 1
    db = (mid - deep_b) / mid * 1e4
    da = (deep_a - mid) / mid * 1e4
    out[k] = cb / db if db > 0.0 else np.nan
    out[k + 1] = ca / da if da > 0.0 else np.nan
    out[k + 2] = cb
    out[k + 3] = ca
    k += 4
    for i in range(IX[0, 0]):
        out[k] = _ret_bps(I, F, bwns, bref, IX[0, 1 + i], ts)
        k += 1
    for i in range(IX[2, 0]):
        out[k] = math.sqrt(_rv2(I, bwns, bacc, IX[2, 1 + i], L, ts)) * 1e4
        k += 1
    for i in range(IX[4, 0]):
        j = IX[4, 1 + i]
        full = _full(I, ts, twns[j])
        n = ht - tptr[j]
        out[k] = n / (twns[j] / NS) if full else np.nan
        out[k + 1] = tacc[j, 0, CT_SIZE] / n if full and n > 0 else np.nan
        k += 2
    jm = Q[Q_TMAX_T]
    cap = dq.shape[0]
    if _full(I, ts, twns[jm]) and I[I_DQ_HEAD] < I[I_DQ_TAIL]:
        out[k] = vt[dq[I[I_DQ_HEAD] % cap] % cap, CT_SIZE]
    elif _full(I, ts, twns[jm]):
        out[k] = 0.0  # no trade in the window: the largest trade size is 0 (consistent with rate 0)
    else:
        out[k] = np.nan
    k += 1
    kn = kv.shape[0]
    if I[I_KTOT] >= kn:
        sx = sy = sxx = sxy = sa = sn = 0.0
        for i in range(kn):
            x = kv[i, 0]
            y = kv[i, 1]
            sx += x
            sy += y
            sxx += x * x
            sxy += x * y
            sa += kv[i, 2]
            sn += kv[i, 3]
        var = sxx / kn - (sx / kn) ** 2
        out[k] = (sxy / kn - sx * sy / (kn * kn)) / var if var > 0.0 else np.nan
        out[k + 1] = sa / sn * 1e6 if sn > 0.0 else np.nan
    else:
        out[k] = np.nan
        out[k + 1] = np.nan
    k += 2
    vk = vp.shape[0]
    out[k] = np.sum(vp) / (vk * P[P_VPIN_V]) if I[I_VTOT] >= vk else np.nan
    k += 1
    # ---- time
    day = ts % DAY_NS
    ph = 2.0 * math.pi * day / DAY_NS
    out[k] = math.sin(ph)
    out[k + 1] = math.cos(ph)
    dow = ((ts // DAY_NS) + 3) % 7  # Monday = 0 (1970-01-01 was a Thursday)
    pw = 2.0 * math.pi * (dow + day / DAY_NS) / 7.0
    out[k + 2] = math.sin(pw)
    out[k + 3] = math.cos(pw)
    out[k + 4] = float((ts // (60 * NS)) % 60)
    k += 5
    if Q[Q_FUTURES] == 1:
        nf = IX[6, 0]
        nxt = IX[6, 1] + DAY_NS
        prv = IX[6, nf] - DAY_NS
        for i in range(nf):
            f = IX[6, 1 + i]
            if f > day:
                nxt = f
                break
        for i in range(nf):
            f = IX[6, 1 + i]
            if f <= day:
                prv = f
        out[k] = (nxt - day) / NS
        out[k + 1] = (nxt - day) / (nxt - prv)
        k += 2
    # ---- regime
    rvs = _rv2(I, bwns, bacc, Q[Q_RVS_B], L, ts)
    rvl = _rv2(I, bwns, bacc, Q[Q_RVL_B], L, ts)
    ws = bwns[Q[Q_RVS_B]] / NS
    wl = bwns[Q[Q_RVL_B]] / NS
    ratio = math.sqrt((rvs / ws) / (rvl / wl)) if rvl > 0.0 else np.nan
    out[k] = ratio
    out[k + 1] = (
        np.nan
        if math.isnan(ratio)
        else (0.0 if ratio < P[P_VS_LO] else (1.0 if ratio <= P[P_VS_HI] else 2.0))
    )
    rvs_bps = math.sqrt(rvs) * 1e4  # NaN stays NaN
    if not bad:
        F[F_RV_SHORT] = rvs_bps
    pm = pv.shape[0]
    if I[I_PTOT] >= pm and not math.isnan(rvs_bps):
        c = 0
        for i in range(pm):
            if pv[i] <= rvs_bps:
                c += 1
        out[k + 2] = c / pm
    else:
        out[k + 2] = np.nan
    k += 3
    if _full(I, ts, P[P_EMA_S_HL_NS]) and not bad:
        tb = (F[F_EMA_F] - F[F_EMA_S]) * 1e4
        rvl_bps = math.sqrt(rvl) * 1e4 if rvl > 0.0 else np.nan
        st = tb / rvl_bps
        out[k] = tb
        out[k + 1] = st
        out[k + 2] = np.nan if math.isnan(st) else (_sign(st) if abs(st) > P[P_TREND_THR] else 0.0)
    else:
        out[k] = np.nan
        out[k + 1] = np.nan
        out[k + 2] = np.nan
    k += 3
    I[I_NOUT] = k
    if bad:
        return BAD_BOOK
    t0 = I[I_T0]
    if ts - t0 < P[P_WARMUP_NS] or I[I_NSAMP] < zn:
        return I[I_REASON]
    I[I_REASON] = WARMUP  # once warm, a later reset starts from a plain warm-up unless told otherwise
    return OK


@njit(cache=True)
def run_batch(
    I, F, prev, D, tsb, vb, bwns, bptr, bacc, bref, tst, vt, twns, tptr, tacc, tref, dq,
    zv, zs, kv, vp, pv, P, Q, W, IX,
    book_ts, bid_px, bid_sz, ask_px, ask_sz, trade_ts, trade_px, trade_sz, trade_side, gap_ts,
    out, status,
):  # fmt: skip
    """Replay events in time order (trades, then gaps, then the book event at equal ts) through the
    step kernels; ``out[i]`` / ``status[i]`` are the vector and status at book event i."""
    it = 0
    ig = 0
    nt = trade_ts.shape[0]
    ng = gap_ts.shape[0]
    for i in range(book_ts.shape[0]):
        tb = book_ts[i]
        while (it < nt and trade_ts[it] <= tb) or (ig < ng and gap_ts[ig] <= tb):
            if it < nt and trade_ts[it] <= tb and (ig >= ng or trade_ts[it] <= gap_ts[ig]):
                step_trade(I, F, tst, vt, twns, tptr, tacc, tref, dq, kv, vp, pv, P, Q,
                           trade_ts[it], trade_px[it], trade_sz[it], trade_side[it])  # fmt: skip
                it += 1
            else:
                reset(I, F, prev, D, bptr, bacc, bref, tptr, tacc, zs, kv, vp, pv, GAP)
                ig += 1
        status[i] = step_book(
            I, F, prev, D, tsb, vb, bwns, bptr, bacc, bref, tst, vt, twns, tptr, tacc, tref, dq,
            zv, zs, kv, vp, pv, P, Q, W, IX, tb, bid_px[i], bid_sz[i], ask_px[i], ask_sz[i], out[i],
        )  # fmt: skip
    return it
