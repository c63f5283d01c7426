"""Numba kernel of the order-flow market simulator (see :mod:`orderflow.data.simulator`).

The book is two arrays of queue sizes in lots on an integer tick grid (a window of ``W`` ticks that is
re-centred as the price wanders). Events arrive one at a time (Gillespie: exponential waits at the
total rate, rates held constant between events) and only events change the book; the mid is whatever
the book says. Two latent prices in ticks: the *value* ``V`` that informed traders know and the
*public fair value* ``F`` that market makers quote around; ``V - F`` is private information that
leaks into ``F`` through news and through the market makers' reading of order flow. Scalars that
persist across chunks live in ``sf`` (float) and ``si`` (int) arrays. The output buffers of a chunk
are grouped in the named tuples :class:`BookRows`, :class:`RegimeRows` and :class:`TradeRows`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit


class BookRows(NamedTuple):
    """Book rows of a chunk: grid time (s), top levels (4 * levels), update id."""

    t: np.ndarray
    rows: np.ndarray
    uid: np.ndarray


class RegimeRows(NamedTuple):
    """Regime rows at whole seconds: time (s), regime, value ``V``."""

    t: np.ndarray
    reg: np.ndarray
    val: np.ndarray


class TradeRows(NamedTuple):
    """Trade prints: time (s), price (ticks), size (lots), aggressor side."""

    t: np.ndarray
    px: np.ndarray
    sz: np.ndarray
    side: np.ndarray


# -- parameter vector layout (filled by simulator.py from SimulatorConfig) ---------------------------
P_NAMES = (
    "mo_rate",
    "mo_size_med",
    "mo_size_sigma",
    "hawkes_alpha",
    "hawkes_beta",
    "join_rate",
    "join_size_med",
    "join_size_sigma",
    "cancel_rate",
    "queue_ref",
    "deep_rate",
    "deep_size_med",
    "deep_size_sigma",
    "deep_max",
    "deep_cancel",
    "inside_rate",
    "inside_size_med",
    "follow",
    "fair_pull",
    "informed_rate",
    "informed_scale",
    "informed_cap",
    "kyle",
    "impact_follow",
    "requote_rate",
    "requote_thr",
    "requote_step",
    "news_rate",
    "news_df",
    "news_reveal",
    "news_alpha",
    "news_beta",
    "private_vol",
    "prints_per_lot",
    "snap_s",
    "act_0",
    "act_1",
    "act_2",
    "news_0",
    "news_1",
    "news_2",
    "fv_vol_0",
    "fv_vol_1",
    "fv_vol_2",
    "drift_1",
    "jump_rate",
    "jump_scale",
    "dur_0",
    "dur_1",
    "dur_2",
)
PI = {n: i for i, n in enumerate(P_NAMES)}
(
    MO_RATE,
    MO_MED,
    MO_SIG,
    H_ALPHA,
    H_BETA,
    J_RATE,
    J_MED,
    J_SIG,
    C_RATE,
    Q_REF,
    D_RATE,
    D_MED,
    D_SIG,
    D_MAX,
    D_CANCEL,
    IN_RATE,
    IN_MED,
    FOLLOW,
    FAIR_PULL,
    INF_RATE,
    INF_SCALE,
    INF_CAP,
    KYLE,
    IMPACT_FOLLOW,
    RQ_RATE,
    RQ_THR,
    RQ_STEP,
    NEWS_RATE,
    NEWS_DF,
    NEWS_REVEAL,
    NEWS_ALPHA,
    NEWS_BETA,
    PRIV_VOL,
    PRINTS,
    SNAP_S,
    ACT0,
    ACT1,
    ACT2,
    NEWS0,
    NEWS1,
    NEWS2,
    VOL0,
    VOL1,
    VOL2,
    DRIFT1,
    JUMP_RATE,
    JUMP_SCALE,
    DUR0,
    DUR1,
    DUR2,
) = range(len(P_NAMES))

# -- persistent state layout --------------------------------------------------------------------------
SF_T, SF_FAIR, SF_EXC, SF_LAST_DIR, SF_TREND, SF_VALUE, SF_NEWS_EXC = range(7)
SI_BASE, SI_BB, SI_BA, SI_REGIME, SI_NSNAP, SI_UPDATE_ID, SI_NSEC, SI_LAST_UID = range(8)
W = 1 << 15
MARGIN = 4096
MAX_MOVE = 1000  # ticks one re-quote may move the quotes (keeps the window valid after huge jumps)


@njit(cache=True)
def seed_rng(seed: int) -> None:
    np.random.seed(seed)


@njit(cache=True)
def _lognormal_lots(med: float, sigma: float) -> int:
    v = med * math.exp(sigma * np.random.standard_normal())
    return max(1, int(v + 0.5))


@njit(cache=True)
def _next_bid(bq, start: int) -> int:
    i = start
    while i > 0 and bq[i] <= 0:
        i -= 1
    return i


@njit(cache=True)
def _next_ask(aq, start: int) -> int:
    i = start
    n = aq.shape[0]
    while i < n - 1 and aq[i] <= 0:
        i += 1
    return i


@njit(cache=True)
def init_book(bq, aq, sf, si, p, price_ticks: int) -> None:
    """Empty arrays -> a book around ``price_ticks`` with a 1-tick spread."""
    si[SI_BASE] = price_ticks - W // 2
    bb = W // 2 - 1
    ba = W // 2
    si[SI_BB] = bb
    si[SI_BA] = ba
    si[SI_LAST_UID] = -1
    bq[bb] = int(p[Q_REF])
    aq[ba] = int(p[Q_REF])
    occ = p[D_RATE] / p[D_MAX] / (p[D_RATE] / p[D_MAX] + p[D_CANCEL])
    for d in range(1, int(p[D_MAX]) + 1):
        if np.random.random() < occ:
            bq[bb - d] = _lognormal_lots(p[D_MED], p[D_SIG])
        if np.random.random() < occ:
            aq[ba + d] = _lognormal_lots(p[D_MED], p[D_SIG])
    sf[SF_FAIR] = price_ticks - 0.5
    sf[SF_VALUE] = price_ticks - 0.5
    sf[SF_EXC] = 0.0
    sf[SF_NEWS_EXC] = 0.0
    sf[SF_LAST_DIR] = 0.0
    sf[SF_TREND] = 1.0


@njit(cache=True)
def _recentre(bq, aq, si) -> None:
    bb, ba = si[SI_BB], si[SI_BA]
    if bb > MARGIN and ba < W - MARGIN:
        return
    shift = (bb + ba) // 2 - W // 2
    nb = np.zeros_like(bq)
    na = np.zeros_like(aq)
    for i in range(W):
        j = i + shift
        if 0 <= j < W:
            nb[i] = bq[j]
            na[i] = aq[j]
    bq[:] = nb
    aq[:] = na
    si[SI_BASE] += shift
    si[SI_BB] = bb - shift
    si[SI_BA] = ba - shift


@njit(cache=True)
def _snapshot(bq, aq, si, levels: int, row) -> None:
    base = si[SI_BASE]
    i = si[SI_BB]
    k = 0
    while k < levels:
        while i > 0 and bq[i] <= 0:
            i -= 1
        if i <= 0:
            break
        row[k] = base + i
        row[levels + k] = bq[i]
        k += 1
        i -= 1
    for j in range(k, levels):
        row[j] = np.nan
        row[levels + j] = np.nan
    i = si[SI_BA]
    k = 0
    while k < levels:
        while i < W - 1 and aq[i] <= 0:
            i += 1
        if i >= W - 1:
            break
        row[2 * levels + k] = base + i
        row[3 * levels + k] = aq[i]
        k += 1
        i += 1
    for j in range(k, levels):
        row[2 * levels + j] = np.nan
        row[3 * levels + j] = np.nan


@njit(cache=True)
def _same_row(a, b) -> bool:
    for j in range(a.shape[0]):
        x, y = a[j], b[j]
        if x != y and not (math.isnan(x) and math.isnan(y)):
            return False
    return True


@njit(cache=True)
def _emit_prints(price: int, lots: int, side: int, t: float, p, tr_t, tr_px, tr_sz, tr_side, nt: int) -> int:
    """Split one fill at one level into maker-order prints (Binance reports one trade per maker order)."""
    n = 1 + np.random.poisson(p[PRINTS] * lots)
    if n > lots:
        n = lots
    if n > 64:
        n = 64
    left = lots
    for k in range(n):
        q = left
        if k < n - 1:  # a share of what is left, keeping at least one lot for every later print
            q = 1 + int(np.random.random() * np.random.random() * (left - (n - k)))
        tr_t[nt] = t
        tr_px[nt] = price
        tr_sz[nt] = q
        tr_side[nt] = side
        nt += 1
        left -= q
    return nt


@njit(cache=True)
def _market(bq, aq, si, p, side: int, lots: int, t: float, tr_t, tr_px, tr_sz, tr_side, nt: int) -> int:
    base = si[SI_BASE]
    if side > 0:
        i = si[SI_BA]
        while lots > 0 and i < W - 1:
            if aq[i] > 0:
                f = min(lots, aq[i])
                nt = _emit_prints(base + i, f, 1, t, p, tr_t, tr_px, tr_sz, tr_side, nt)
                aq[i] -= f
                lots -= f
            if aq[i] <= 0:
                i += 1
        si[SI_BA] = _next_ask(aq, i)
    else:
        i = si[SI_BB]
        while lots > 0 and i > 0:
            if bq[i] > 0:
                f = min(lots, bq[i])
                nt = _emit_prints(base + i, f, -1, t, p, tr_t, tr_px, tr_sz, tr_side, nt)
                bq[i] -= f
                lots -= f
            if bq[i] <= 0:
                i -= 1
        si[SI_BB] = _next_bid(bq, i)
    return nt


@njit(cache=True)
def _requote(bq, aq, si, sf, p) -> None:
    """Market makers move their quotes toward the public fair value ``F`` by at most ``requote_step``
    ticks: the stale side's levels between the old best and the new quotes are cancelled and a 1-tick
    market is quoted there (a large move of ``F`` is followed in several steps)."""
    base = si[SI_BASE]
    bb, ba = si[SI_BB], si[SI_BA]
    target = sf[SF_FAIR] - base
    mid = 0.5 * (bb + ba)
    step = min(p[RQ_STEP], MAX_MOVE)
    target = min(max(target, mid - step), mid + step)
    nb = int(target // 1.0)
    na = nb + 1
    if na > ba:  # up: asks below the new ask are stale
        for i in range(ba, na):
            aq[i] = 0
        sf[SF_LAST_DIR] = 1.0
    elif nb < bb:  # down: bids above the new bid are stale
        for i in range(nb + 1, bb + 1):
            bq[i] = 0
        sf[SF_LAST_DIR] = -1.0
    else:
        return
    bq[nb] += _lognormal_lots(p[IN_MED], p[J_SIG])
    aq[na] += _lognormal_lots(p[IN_MED], p[J_SIG])
    si[SI_BB] = nb
    si[SI_BA] = na


@njit(cache=True)
def _ensure_sides(bq, aq, si, p) -> None:
    """Keep both sides non-empty (a swept-out side is re-quoted 50 ticks away)."""
    if si[SI_BB] <= 0 or bq[si[SI_BB]] <= 0:
        si[SI_BB] = max(1, si[SI_BA] - 50)
        bq[si[SI_BB]] = int(p[J_MED])
    if si[SI_BA] >= W - 1 or aq[si[SI_BA]] <= 0:
        si[SI_BA] = min(W - 2, si[SI_BB] + 50)
        aq[si[SI_BA]] = int(p[J_MED])


@njit(cache=True)
def _record_grid(t_until, t_end, bq, aq, si, sf, p, levels, last_row, ns, cap_s, snaps, nr, cap_r, regs):
    """Book rows (``snaps``) due at grid times <= ``t_until`` (only when the top ``levels`` changed since
    the last row) and regime rows (``regs``) at whole seconds. Returns (book rows, regime rows) written
    so far."""
    snap_t, snap_rows, snap_uid = snaps
    reg_t, reg_reg, reg_val = regs
    t_snap = si[SI_NSNAP] * p[SNAP_S]
    while t_snap <= t_until and t_snap < t_end and ns < cap_s:
        row = snap_rows[ns]
        _snapshot(bq, aq, si, levels, row)
        if si[SI_LAST_UID] < 0 or not _same_row(row, last_row):
            snap_t[ns] = t_snap
            snap_uid[ns] = si[SI_UPDATE_ID]
            si[SI_LAST_UID] = si[SI_UPDATE_ID]
            last_row[:] = row
            ns += 1
        si[SI_NSNAP] += 1
        t_snap = si[SI_NSNAP] * p[SNAP_S]
    t_sec = float(si[SI_NSEC])
    while t_sec <= t_until and t_sec < t_end and nr < cap_r:
        reg_t[nr] = t_sec
        reg_reg[nr] = si[SI_REGIME]
        reg_val[nr] = sf[SF_VALUE]
        nr += 1
        si[SI_NSEC] += 1
        t_sec = float(si[SI_NSEC])
    return ns, nr


@njit(cache=True)
def _student_t(df: float, clip: float) -> float:
    x = np.random.standard_t(df)
    return min(max(x, -clip), clip)


@njit(cache=True)
def _latent_step(sf, p, reg: int, act: float, dt: float) -> None:
    """Evolve value ``V`` and public fair value ``F`` over ``dt``: public diffusion, trend and rare
    jumps move both; private information moves ``V`` only."""
    sq = math.sqrt(dt)
    pub = p[VOL0 + reg] * sq * np.random.standard_normal()
    if reg == 1:
        pub += p[DRIFT1] * sf[SF_TREND] * dt
    if np.random.random() < p[JUMP_RATE] * act * dt:
        pub += p[JUMP_SCALE] * _student_t(3.0, 50.0)
    sf[SF_FAIR] += pub
    sf[SF_VALUE] += pub + p[PRIV_VOL] * sq * np.random.standard_normal()
    sf[SF_EXC] *= math.exp(-p[H_BETA] * dt)
    sf[SF_NEWS_EXC] *= math.exp(-p[NEWS_BETA] * dt)


@njit(cache=True)
def run_chunk(
    bq,
    aq,
    sf,
    si,
    p,
    trans,
    t_end: float,
    levels: int,
    last_row,
    snaps,
    regs,
    trades,
):
    """Advance the simulation to ``t_end`` seconds or until an output buffer (``snaps``:
    :class:`BookRows`, ``regs``: :class:`RegimeRows`, ``trades``: :class:`TradeRows`) is nearly full.

    Returns (book rows, regime rows, trades) written. Book rows are taken at k * ``snap_s`` < t_end
    and kept only when the top ``levels`` differ from the last kept row (``last_row``)."""
    snap_t = snaps.t
    reg_t = regs.t
    tr_t, tr_px, tr_sz, tr_side = trades
    ns = 0
    nr = 0
    nt = 0
    cap_t = tr_t.shape[0] - 20_000
    cap_s = snap_t.shape[0]
    cap_r = reg_t.shape[0]
    t = sf[SF_T]
    while True:
        reg = si[SI_REGIME]
        act = p[ACT0 + reg]
        bb = si[SI_BB]
        ba = si[SI_BA]
        mid = si[SI_BASE] + 0.5 * (bb + ba)
        gap_f = sf[SF_FAIR] - mid
        gap_v = sf[SF_VALUE] - mid
        # rates
        r_mo = (p[MO_RATE] * act + sf[SF_EXC]) * 0.5  # per side (noise traders, self-exciting)
        r_inf = p[INF_RATE] * min(abs(gap_v) / p[INF_SCALE], p[INF_CAP]) * act  # informed, toward V
        r_join = p[J_RATE] * act
        r_cb = p[C_RATE] * act * bq[bb] / p[Q_REF]
        r_ca = p[C_RATE] * act * aq[ba] / p[Q_REF]
        r_deep = p[D_RATE]
        r_dc = p[D_CANCEL] * p[D_MAX]
        r_in = p[IN_RATE] if ba - bb > 1 else 0.0
        r_rq = p[RQ_RATE] if abs(gap_f) > p[RQ_THR] else 0.0
        r_news = p[NEWS_RATE] * act + sf[SF_NEWS_EXC]
        r_reg = 1.0 / p[DUR0 + reg]
        total = (
            2 * r_mo + r_inf + 2 * r_join + r_cb + r_ca + 2 * r_deep + 2 * r_dc + r_in + r_rq + r_news + r_reg
        )
        dt = np.random.exponential(1.0 / total)
        # grid rows due before the next event see the current book
        ns, nr = _record_grid(
            t + dt,
            t_end,
            bq,
            aq,
            si,
            sf,
            p,
            levels,
            last_row,
            ns,
            cap_s,
            snaps,
            nr,
            cap_r,
            regs,
        )
        if ns >= cap_s or nr >= cap_r or nt >= cap_t:
            break  # the drawn wait is discarded: exact for exponential waits
        if t + dt >= t_end:
            t = t_end
            break
        t += dt
        _latent_step(sf, p, reg, act, dt)
        si[SI_UPDATE_ID] += 1
        u = np.random.random() * total
        if u < 2 * r_mo + r_inf:  # market order
            side = 1 if gap_v > 0 else -1  # informed: toward the value
            if u < 2 * r_mo:  # noise: either side
                side = 1 if u < r_mo else -1
            lots = _lognormal_lots(p[MO_MED], p[MO_SIG])
            before_b, before_a = si[SI_BB], si[SI_BA]
            nt = _market(bq, aq, si, p, side, lots, t, tr_t, tr_px, tr_sz, tr_side, nt)
            if si[SI_BA] != before_a:
                sf[SF_LAST_DIR] = 1.0
            elif si[SI_BB] != before_b:
                sf[SF_LAST_DIR] = -1.0
            sf[SF_EXC] += p[H_ALPHA]
            # market makers read the flow: a share of the trade's own price move becomes permanent
            moved = 0.5 * (si[SI_BB] - before_b + si[SI_BA] - before_a)
            sf[SF_FAIR] += p[KYLE] * side * lots + p[IMPACT_FOLLOW] * moved
            _ensure_sides(bq, aq, si, p)
            _recentre(bq, aq, si)
            continue
        u -= 2 * r_mo + r_inf
        if u < 2 * r_join:  # join the best queue
            if u < r_join:
                bq[bb] += _lognormal_lots(p[J_MED], p[J_SIG])
            else:
                aq[ba] += _lognormal_lots(p[J_MED], p[J_SIG])
        elif u < 2 * r_join + r_cb + r_ca:  # partial cancel at the best
            u -= 2 * r_join
            if u < r_cb:
                bq[bb] = max(0, bq[bb] - _lognormal_lots(p[J_MED], p[J_SIG]))
                if bq[bb] == 0:
                    si[SI_BB] = _next_bid(bq, bb)
                    sf[SF_LAST_DIR] = -1.0
            else:
                aq[ba] = max(0, aq[ba] - _lognormal_lots(p[J_MED], p[J_SIG]))
                if aq[ba] == 0:
                    si[SI_BA] = _next_ask(aq, ba)
                    sf[SF_LAST_DIR] = 1.0
        else:
            u -= 2 * r_join + r_cb + r_ca
            if u < 2 * r_deep:  # limit order behind the best, more often near it
                x = np.random.random()
                d = 1 + int(x * x * p[D_MAX])
                if u < r_deep:
                    bq[bb - d] += _lognormal_lots(p[D_MED], p[D_SIG])
                else:
                    aq[ba + d] += _lognormal_lots(p[D_MED], p[D_SIG])
            elif u < 2 * r_deep + 2 * r_dc:  # a resting level behind the best is cancelled
                d = 1 + int(np.random.random() * p[D_MAX])
                if u < 2 * r_deep + r_dc:
                    bq[bb - d] = 0
                else:
                    aq[ba + d] = 0
            else:
                u -= 2 * r_deep + 2 * r_dc
                if u < r_in:  # a new quote inside the spread, next to the other side
                    z = p[FOLLOW] * sf[SF_LAST_DIR] + p[FAIR_PULL] * gap_f
                    if np.random.random() < 1.0 / (1.0 + math.exp(-z)):
                        si[SI_BB] = ba - 1
                        bq[ba - 1] += _lognormal_lots(p[IN_MED], p[J_SIG])
                    else:
                        si[SI_BA] = bb + 1
                        aq[bb + 1] += _lognormal_lots(p[IN_MED], p[J_SIG])
                elif u < r_in + r_rq:  # market makers re-quote around the public fair value
                    _requote(bq, aq, si, sf, p)
                elif u < r_in + r_rq + r_news:  # public news, revealing part of the private information
                    jump = p[NEWS0 + reg] * _student_t(p[NEWS_DF], 30.0)
                    sf[SF_VALUE] += jump
                    sf[SF_FAIR] += jump + p[NEWS_REVEAL] * (sf[SF_VALUE] - sf[SF_FAIR] - jump)
                    sf[SF_NEWS_EXC] += p[NEWS_ALPHA]
                else:  # regime switch
                    x = np.random.random()
                    acc = 0.0
                    for j in range(3):
                        acc += trans[reg, j]
                        if x < acc:
                            si[SI_REGIME] = j
                            break
                    if si[SI_REGIME] == 1:
                        sf[SF_TREND] = 1.0 if np.random.random() < 0.5 else -1.0
        _ensure_sides(bq, aq, si, p)
        _recentre(bq, aq, si)
    sf[SF_T] = t
    return ns, nr, nt
