"""OFI: the vectorised definition equals a plain loop; buckets and price-impact fits behave."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orderflow.features.ofi import bucket_ofi, ofi_per_event, ofi_price_impact


def _ref_ofi(bp, bs, ap, as_):
    n, levels = bp.shape
    out = np.zeros((n, levels))
    for i in range(1, n):
        for m in range(levels):
            pb, pb0 = bp[i, m], bp[i - 1, m]
            pa, pa0 = ap[i, m], ap[i - 1, m]
            pb = -math.inf if math.isnan(pb) else pb
            pb0 = -math.inf if math.isnan(pb0) else pb0
            pa = math.inf if math.isnan(pa) else pa
            pa0 = math.inf if math.isnan(pa0) else pa0
            qb = 0.0 if math.isnan(bs[i, m]) else bs[i, m]
            qb0 = 0.0 if math.isnan(bs[i - 1, m]) else bs[i - 1, m]
            qa = 0.0 if math.isnan(as_[i, m]) else as_[i, m]
            qa0 = 0.0 if math.isnan(as_[i - 1, m]) else as_[i - 1, m]
            e = 0.0
            if pb >= pb0:
                e += qb
            if pb <= pb0:
                e -= qb0
            if pa <= pa0:
                e -= qa
            if pa >= pa0:
                e += qa0
            out[i, m] = e
    return out


def _random_book(n=400, levels=5, seed=0):
    rng = np.random.default_rng(seed)
    best = 1000 + np.cumsum(rng.integers(-1, 2, n))
    bp = best[:, None] - np.arange(levels)[None, :] - rng.integers(0, 2, (n, 1))
    ap = best[:, None] + 1 + np.arange(levels)[None, :]
    bs = rng.integers(1, 5, (n, levels)).astype(float)
    as_ = rng.integers(1, 5, (n, levels)).astype(float)
    bp = bp.astype(float)
    ap = ap.astype(float)
    holes = rng.random((n, levels)) < 0.1
    bp[holes], bs[holes] = np.nan, np.nan
    ap[np.roll(holes, 3, axis=0)] = np.nan
    as_[np.roll(holes, 3, axis=0)] = np.nan
    return bp, bs, ap, as_


def test_ofi_equals_reference_loop():
    book = _random_book()
    got = ofi_per_event(*book)
    assert got.shape == (400, 5)
    np.testing.assert_allclose(got, _ref_ofi(*book))
    assert np.all(got[0] == 0)
    assert np.count_nonzero(got) > 300


def test_ofi_hand_cases():
    # bid 100x5 ask 101x3 ->: bid size +2; bid price up (new 4); ask down (new 2); bid and ask gone
    bp = np.array([100, 100, 100.5, 100.5, np.nan])
    bs = np.array([5, 7, 4, 4, np.nan])
    ap = np.array([101, 101, 101, 100.8, 100.8])
    as_ = np.array([3, 3, 3, 2, 2])
    e = ofi_per_event(bp, bs, ap, as_)[:, 0]
    assert e.tolist() == [0.0, 2.0, 4.0, -2.0, -4.0]


def test_ofi_rejects_bad_shapes():
    with pytest.raises(ValueError, match="ask_sz"):
        ofi_per_event(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((4, 2)))


def test_bucket_ofi_alignment_and_mid_change():
    ts = np.array([10, 15, 25, 26, 49]) * 1_000_000_000 // 10  # 1.0, 1.5, 2.5, 2.6, 4.9 s
    e = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    mid = np.array([100.0, 100.1, 100.3, 100.2, 100.6])
    b = bucket_ofi(ts, e, mid, 1_000_000_000, depth=np.ones((5, 1)) * 2, tick=0.1)
    assert b.start_ns.tolist() == [1_000_000_000 + k * 1_000_000_000 for k in range(4)]
    assert b.ofi[:, 0].tolist() == [1.0, 5.0, 0.0, 4.0]
    assert b.events.tolist() == [2, 2, 0, 1]
    assert math.isnan(b.dmid[0])
    np.testing.assert_allclose(b.dmid[1:], [1.0, 0.0, 4.0])
    assert math.isnan(b.depth[2, 0]) and b.depth[0, 0] == 2.0
    np.testing.assert_allclose(b.normalised(np.array([2.0]))[:, 0], [0.5, 2.5, 0.0, 2.0])


def test_price_impact_of_a_linear_book_is_perfect():
    # each event lifts bid and ask by one tick with 2-lot queues: OFI +4, mid +1 tick, uneven timing
    n = 200
    rng = np.random.default_rng(1)
    ts = np.sort(rng.integers(0, 20_000_000_000, n))
    ts[0] = 0
    bp = (1000 + np.arange(n)).astype(float)[:, None] * 0.1
    ap = bp + 0.1
    sz = np.full((n, 1), 2.0)
    fit = ofi_price_impact(ts, bp, sz, ap, sz, 1_000_000_000, 0.1, levels=1)
    assert fit.n == 19
    assert fit.r2_best > 0.999
    assert fit.beta_best == pytest.approx(0.5)  # 1 tick per 4 lots of OFI; average depth is 2
