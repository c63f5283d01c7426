"""Order-flow imbalance (OFI), batch form: the one definition used across the project.

OFI follows Cont, Kukanov & Stoikov (2014), "The price impact of order book events", taken level by
level as in Xu, Gould & Howison (2019), "Multi-level order-flow imbalance in a limit order book". For
each book event and each level m, with ``(Pb, qb, Pa, qa)`` the level-m bid/ask price and size after
the event and primes the values before it::

    e_m = 1{Pb >= Pb'}·qb − 1{Pb <= Pb'}·qb' − 1{Pa <= Pa'}·qa + 1{Pa >= Pa'}·qa'

A missing level (NaN price) counts with size 0 and a price of −inf on the bid side and +inf on the
ask side, so a level that stays missing is "unchanged" and contributes 0, a level that appears adds
its size and a level that disappears removes its previous size.

Price impact (Cont et al.): the mid change in ticks over a time bucket is regressed on the bucket's
OFI normalised by each level's average depth ((bid_sz + ask_sz) / 2 averaged over the sample).
Buckets are aligned to the first book event; the mid change of bucket k is the change between the
last book states of buckets k−1 and k, so the first bucket has none and is dropped from fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _clean(bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray):
    arrs = [np.asarray(a, dtype=np.float64) for a in (bid_px, bid_sz, ask_px, ask_sz)]
    if arrs[0].ndim == 1:
        arrs = [a[:, None] for a in arrs]
    shape = arrs[0].shape
    for name, a in zip(("bid_px", "bid_sz", "ask_px", "ask_sz"), arrs, strict=True):
        if a.shape != shape or a.ndim != 2:
            raise ValueError(f"ofi: {name} has shape {a.shape}, expected {shape} (rows, levels)")
    bp = np.where(np.isnan(arrs[0]), -np.inf, arrs[0])
    ap = np.where(np.isnan(arrs[2]), np.inf, arrs[2])
    bs = np.nan_to_num(arrs[1], nan=0.0)
    as_ = np.nan_to_num(arrs[3], nan=0.0)
    return bp, bs, ap, as_


def ofi_per_event(
    bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray
) -> np.ndarray:
    """Per-event, per-level OFI of shape (n, L) from (n, L) book arrays (row 0 is 0).

    1-D inputs are taken as a single level."""
    bp, bs, ap, as_ = _clean(bid_px, bid_sz, ask_px, ask_sz)
    out = np.zeros(bp.shape, dtype=np.float64)
    if bp.shape[0] < 2:
        return out
    b0, b1, a0, a1 = bp[:-1], bp[1:], ap[:-1], ap[1:]
    out[1:] = (b1 >= b0) * bs[1:] - (b1 <= b0) * bs[:-1] - (a1 <= a0) * as_[1:] + (a1 >= a0) * as_[:-1]
    return out


def mid_price(bid_px: np.ndarray, ask_px: np.ndarray) -> np.ndarray:
    """Mid of the best level ((n,) or (n, L) inputs), forward-filled where a side is missing."""
    b = np.asarray(bid_px, dtype=np.float64)
    a = np.asarray(ask_px, dtype=np.float64)
    if b.ndim == 2:
        b, a = b[:, 0], a[:, 0]
    mid = (b + a) / 2.0
    ok = np.isfinite(mid)
    if not ok.all():
        idx = np.where(ok, np.arange(mid.size), 0)
        np.maximum.accumulate(idx, out=idx)
        mid = mid[idx]
    return mid


def average_depth(bid_sz: np.ndarray, ask_sz: np.ndarray) -> np.ndarray:
    """Per-level average depth over the sample: mean of (bid_sz + ask_sz) / 2, missing sizes as 0."""
    bs = np.nan_to_num(np.asarray(bid_sz, dtype=np.float64), nan=0.0)
    as_ = np.nan_to_num(np.asarray(ask_sz, dtype=np.float64), nan=0.0)
    return ((bs + as_) / 2.0).reshape(bs.shape[0], -1).mean(axis=0)


@dataclass(frozen=True)
class BucketOFI:
    """Per-bucket aggregates. ``dmid[k]`` is the mid change in ticks from the last book state of bucket
    k−1 to that of bucket k (NaN for k = 0); empty buckets carry the previous mid (dmid 0, OFI 0)."""

    start_ns: np.ndarray  # (nb,) bucket start times
    ofi: np.ndarray  # (nb, L) summed OFI per level
    depth: np.ndarray  # (nb, L) mean depth per level over the bucket's events (NaN if empty)
    dmid: np.ndarray  # (nb,) mid change in ticks
    events: np.ndarray  # (nb,) number of book events

    def normalised(self, avg_depth: np.ndarray) -> np.ndarray:
        """Bucket OFI divided by each level's average depth over the sample."""
        d = np.asarray(avg_depth, dtype=np.float64)[: self.ofi.shape[1]]
        return self.ofi / np.where(d > 0, d, np.nan)


def bucket_ofi(
    ts_ns: np.ndarray,
    ofi: np.ndarray,
    mid: np.ndarray,
    bucket_ns: int,
    depth: np.ndarray | None = None,
    tick: float = 1.0,
    origin_ns: int | None = None,
) -> BucketOFI:
    """Sum per-event OFI (n, L) into buckets of ``bucket_ns`` starting at ``origin_ns`` (default: the
    first event). ``depth`` (n, L), e.g. (bid_sz + ask_sz) / 2, is averaged per bucket when given."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    e = np.asarray(ofi, dtype=np.float64)
    if e.ndim == 1:
        e = e[:, None]
    n, levels = e.shape
    if ts.shape != (n,) or np.shape(mid) != (n,):
        raise ValueError(f"bucket_ofi: ts_ns {ts.shape} and mid {np.shape(mid)} must be ({n},) like ofi rows")
    if bucket_ns <= 0:
        raise ValueError(f"bucket_ofi: bucket_ns must be positive, got {bucket_ns}")
    if n == 0:
        z = np.zeros((0, levels))
        return BucketOFI(np.zeros(0, np.int64), z, z.copy(), np.zeros(0), np.zeros(0, np.int64))
    if np.any(np.diff(ts) < 0):
        raise ValueError("bucket_ofi: ts_ns must be non-decreasing")
    origin = int(ts[0]) if origin_ns is None else int(origin_ns)
    if ts[0] < origin:
        raise ValueError(f"bucket_ofi: first event {ts[0]} is before origin {origin}")
    idx = (ts - origin) // bucket_ns
    nb = int(idx[-1]) + 1
    out = np.zeros((nb, levels))
    np.add.at(out, idx, e)
    counts = np.bincount(idx, minlength=nb)
    dep = np.full((nb, levels), np.nan)
    if depth is not None:
        d = np.asarray(depth, dtype=np.float64).reshape(n, -1)
        sums = np.zeros((nb, d.shape[1]))
        np.add.at(sums, idx, np.nan_to_num(d, nan=0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            dep = sums / counts[:, None]
        dep[counts == 0] = np.nan
    # last event index per bucket, carried forward over empty buckets
    last = np.full(nb, -1, dtype=np.int64)
    last[idx] = np.arange(n)  # later assignments win: the last event of each bucket
    np.maximum.accumulate(last, out=last)
    m = np.asarray(mid, dtype=np.float64)[last]
    dmid = np.empty(nb)
    dmid[0] = np.nan
    dmid[1:] = np.diff(m) / tick
    starts = origin + np.arange(nb, dtype=np.int64) * bucket_ns
    return BucketOFI(starts, out, dep, dmid, counts)


def _r2(y: np.ndarray, x: np.ndarray) -> float:
    """R^2 of an OLS of y on x (n, k) with an intercept."""
    if y.size < x.shape[1] + 2:
        return float("nan")
    a = np.column_stack([np.ones(y.size), x])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = y - a @ coef
    tss = float(np.sum((y - y.mean()) ** 2))
    return float("nan") if tss == 0 else 1.0 - float(res @ res) / tss


@dataclass(frozen=True)
class OFIImpact:
    """Fit of bucket mid change (ticks) on normalised OFI."""

    bucket_s: float
    n: int  # buckets in the fit
    r2_best: float  # level 1 alone
    r2_joint: float  # levels 1..L jointly
    beta_best: float  # slope on level-1 normalised OFI (ticks per unit)


def ofi_price_impact(
    ts_ns: np.ndarray,
    bid_px: np.ndarray,
    bid_sz: np.ndarray,
    ask_px: np.ndarray,
    ask_sz: np.ndarray,
    bucket_ns: int,
    tick: float,
    levels: int = 5,
) -> OFIImpact:
    """R^2 of bucket mid change in ticks on normalised OFI: level 1 alone and levels 1..``levels``
    jointly (OLS with intercept), buckets aligned to the first book event, the first bucket dropped."""
    x, y = impact_design(ts_ns, bid_px, bid_sz, ask_px, ask_sz, bucket_ns, tick, levels)
    r2_best = _r2(y, x[:, :1])
    beta = float(np.polyfit(x[:, 0], y, 1)[0]) if y.size > 2 and np.ptp(x[:, 0]) > 0 else float("nan")
    return OFIImpact(bucket_ns / 1e9, int(y.size), r2_best, _r2(y, x), beta)


# -- multi-level price-impact helpers: weighted and integrated OFI, joint OLS -----------------------


def impact_design(
    ts_ns: np.ndarray,
    bid_px: np.ndarray,
    bid_sz: np.ndarray,
    ask_px: np.ndarray,
    ask_sz: np.ndarray,
    bucket_ns: int,
    tick: float,
    levels: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of the price-impact regression, the same rows as :func:`ofi_price_impact`: ``x`` (n,
    levels) is bucket OFI normalised by each level's average depth, ``y`` the mid change in ticks."""
    bp, bs, ap, as_ = (np.asarray(a, dtype=np.float64)[:, :levels] for a in (bid_px, bid_sz, ask_px, ask_sz))
    b = bucket_ofi(ts_ns, ofi_per_event(bp, bs, ap, as_), mid_price(bid_px, ask_px), bucket_ns, tick=tick)
    x = b.normalised(average_depth(bs, as_))[1:]
    y = b.dmid[1:]
    ok = np.isfinite(y) & np.all(np.isfinite(x), axis=1)
    return x[ok], y[ok]


def ols_fit(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """OLS of y on x (n, k) with an intercept: (coefficients [intercept, slopes...], in-sample R^2).
    R^2 is NaN with fewer than k + 2 rows or a constant y."""
    x = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    a = np.column_stack([np.ones(len(y)), x])
    if len(y) < x.shape[1] + 2:
        return np.full(x.shape[1] + 1, np.nan), float("nan")
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return coef, _r2(y, x)


def r2_out_of_sample(y: np.ndarray, x: np.ndarray, coef: np.ndarray) -> float:
    """1 − SSE/SST of a fitted ``coef`` (intercept first) on new data, SST around the new data's mean."""
    x = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    if len(y) < 2 or not np.all(np.isfinite(coef)):
        return float("nan")
    res = y - (coef[0] + x @ coef[1:])
    tss = float(np.sum((y - y.mean()) ** 2))
    return float("nan") if tss == 0 else 1.0 - float(res @ res) / tss


def level_weights(levels: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Weights of weighted multi-level OFI: ``weights`` (checked to have ``levels`` entries) or 1/m."""
    if weights is None:
        return 1.0 / np.arange(1, levels + 1)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (levels,):
        raise ValueError(f"level_weights: {w.shape[0] if w.ndim else 0} weights given for {levels} levels")
    return w


def weighted_ofi(x_norm: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted multi-level OFI: Σ_m w_m · x_m over normalised levels (default w_m = 1/m)."""
    x = np.asarray(x_norm, dtype=np.float64)
    return x @ level_weights(x.shape[1], weights)


def pca_weights(x_norm: np.ndarray) -> np.ndarray:
    """Integrated-OFI weights (Cont, Cucuringu & Zhang): the first principal component of the covariance
    of the normalised levels ``x_norm`` (rows = the fitting window), scaled to unit L1 norm and signed so
    that the weights sum to a positive number."""
    x = np.asarray(x_norm, dtype=np.float64)
    if x.shape[0] < 2:
        raise ValueError(f"pca_weights: need at least 2 rows to fit, got {x.shape[0]}")
    _, vecs = np.linalg.eigh(np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]))
    w = vecs[:, -1]
    w = w / np.abs(w).sum()
    return -w if w.sum() < 0 else w


def integrated_ofi(x_norm: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Integrated OFI: the projection of the normalised levels on fitted :func:`pca_weights`."""
    return np.asarray(x_norm, dtype=np.float64) @ np.asarray(weights, dtype=np.float64)
