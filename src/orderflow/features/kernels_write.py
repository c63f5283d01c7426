"""The output writer of the book kernel: turns the kernel state into the feature vector (one place
that fills every column, in registry order). See :mod:`kernels`."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# the state layout (index constants) is shared by a star import; private helpers are imported by name
from orderflow.features.kernels_layout import *
from orderflow.features.kernels_layout import _sign, _std, _z, _z_push


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
def _write(S, e, ofi_w, ofi_i, ts, bp, bs, ap, aq, out, bad):
    """Write the feature vector of book event ``ts`` into ``out`` (``S``: the ``FeatureState``)."""
    I, F, P, Q, IX = S.I, S.F, S.P, S.Q, S.IX
    bwns, bptr, bacc, bref = S.bwns, S.bptr, S.bacc, S.bref
    vt, twns, tptr, tacc, dq = S.vt, S.twns, S.tptr, S.tacc, S.dq
    zv, zs, kv, vp, pv = S.zv, S.zs, S.kv, S.vp, S.pv
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
