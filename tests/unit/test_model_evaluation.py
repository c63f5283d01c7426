"""The report's model metrics on tiny hand-made data whose answers are worked out in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from orderflow.reports import evaluation as EV

# two samples: probabilities (down, flat, up) and the realised labels
P = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
Y = np.array([1, 0])


def test_brier_score():
    # sample 1, label up: 0.2^2 + 0.3^2 + (0.5 - 1)^2 = 0.04 + 0.09 + 0.25 = 0.38
    # sample 2, label flat: 0.6^2 + (0.2 - 1)^2 + 0.2^2 = 0.36 + 0.64 + 0.04 = 1.04; mean 0.71
    assert EV.brier(P, Y) == pytest.approx(0.71, abs=1e-15)
    assert EV.brier(np.array([[0.0, 0.0, 1.0]]), np.array([1])) == 0.0
    assert EV.brier(np.array([[1.0, 0.0, 0.0]]), np.array([1])) == 2.0  # the worst: 1 + 1


def test_log_loss():
    # -(ln 0.5 + ln 0.2) / 2 = ln(10) / 2
    assert EV.log_loss(P, Y) == pytest.approx(math.log(10) / 2, abs=1e-15)
    # a zero probability on the realised class costs -ln(1e-15), not infinity
    assert EV.log_loss(np.array([[1.0, 0.0, 0.0]]), np.array([0])) == pytest.approx(-math.log(1e-15))


def test_top_label_reliability_and_ece():
    rel = EV.reliability(P, Y)
    # top labels: up at 0.5 (a hit: the label is up), down at 0.6 (a miss: the label is flat)
    # bins [0.5, 0.6) and [0.6, 0.7): ECE = 1/2 |1 - 0.5| + 1/2 |0 - 0.6| = 0.25 + 0.3
    assert rel["ece"] == pytest.approx(0.55, abs=1e-15)
    assert [(b["lo"], b["n"], b["predicted"], b["realised"]) for b in rel["bins"]] == [
        (0.5, 1, 0.5, 1.0),
        (0.6, 1, 0.6, 0.0),
    ]
    # per class: p(flat) is 0.3 (label not flat) and 0.2 (label flat): bins 3 and 2,
    # |0 - 0.3| / 2 + |1 - 0.2| / 2 = 0.55; p(down): 0.2 (no) and 0.6 (no): (0.2 + 0.6) / 2 = 0.4;
    # p(up): 0.5 (yes) and 0.2 (no): (0.5 + 0.2) / 2 = 0.35; classwise ECE = (0.4 + 0.55 + 0.35) / 3
    assert rel["classwise_ece"] == pytest.approx(1.3 / 3, abs=1e-15)
    assert [b["realised"] for b in rel["per_class"]["flat"]] == [1.0, 0.0]


def test_a_probability_of_one_is_in_the_last_bin():
    rel = EV.reliability(np.array([[0.0, 0.0, 1.0]]), np.array([1]))
    assert rel["bins"][0]["lo"] == 0.9 and rel["ece"] == 0.0


def test_hit_rate_by_decile():
    # 20 samples: confidences 0.40, 0.41, ... 0.59 in a shuffled order; the hits are the samples whose
    # confidence is at least 0.50 and the one at 0.40; two samples per decile
    conf = 0.40 + 0.01 * np.array([5, 0, 19, 12, 3, 8, 17, 1, 14, 10, 6, 2, 18, 11, 4, 16, 9, 13, 7, 15])
    hit = (conf >= 0.495) | (conf < 0.405)
    dec = EV.deciles(conf, hit)
    assert [d["n"] for d in dec] == [2] * 10
    assert [d["hit_rate"] for d in dec] == [0.5, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert dec[0]["conf_lo"] == pytest.approx(0.40) and dec[0]["conf_hi"] == pytest.approx(0.41)
    assert dec[9]["confidence"] == pytest.approx(0.585)
    # five samples: floor(10 i / 5) puts them in deciles 1, 3, 5, 7, 9
    assert [d["decile"] for d in EV.deciles(conf[:5], hit[:5])] == [1, 3, 5, 7, 9]


def test_prequential_prior_uses_only_labels_known_before_each_sample():
    # outcomes known at t=10 (up), t=20 (down), t=30 (up), given out of time order
    known_t = np.array([30, 10, 20])
    known_y = np.array([1, 1, -1])
    samples = np.array([5, 10, 25, 40])
    got = EV.prequential_prior(samples, known_t, known_y, np.zeros(3))
    # add-one smoothing: nothing known -> 1/3 each; at t=10 the up at 10 is known -> (1, 1, 2) / 4
    want = np.array([[1, 1, 1], [1, 1, 2], [2, 1, 2], [2, 1, 3]], dtype=float)
    np.testing.assert_allclose(got, want / want.sum(axis=1, keepdims=True), rtol=0, atol=1e-15)
    # counts known before every sample (e.g. before the period) add to every row
    got0 = EV.prequential_prior(samples[:1], known_t, known_y, np.array([2.0, 0.0, 0.0]))
    np.testing.assert_allclose(got0, [[3 / 5, 1 / 5, 1 / 5]], atol=1e-15)


def test_spearman_with_ties():
    a = np.array([1.0, 2, 3, 4, 5])
    b = np.array([5.0, 6, 7, 8, 7])
    # ranks of b: 1, 2, 3.5, 5, 3.5 (the two 7s share 3.5); centred: a -2..2, b -2, -1, .5, 2, .5
    # sum of products 4 + 1 + 0 + 2 + 1 = 8; sums of squares 10 and 9.5: rho = 8 / sqrt(95)
    assert EV.spearman(a, b) == pytest.approx(8 / math.sqrt(95), abs=1e-15)
    np.testing.assert_array_equal(EV.rankdata(b), [1, 2, 3.5, 5, 3.5])
    assert EV.spearman(a, np.ones(5)) is None  # a constant side has no rank correlation
    assert EV.spearman(a[:2], b[:2]) is None
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=300), np.round(rng.normal(size=300), 1)
    assert EV.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_rolling_ic_windows():
    s = np.array([1.0, 2, 3, 4, 5, 6, 7])
    r = np.array([1.0, 2, 3, 4, 5, 0, -1])
    roll = EV.rolling_ic(s, r, window=5, step=3)
    # windows end at 4 and (the last sample) 6: [1..5] vs [1..5] is +1; [3..7] vs [3,4,5,0,-1] is
    # ranks 1..5 against 3, 4, 5, 2, 1: centred products -2*0 + -1*1 + 0*2 + 1*-1 + 2*-2 = -6 -> -0.6
    assert roll["end"] == [4, 6]
    assert roll["ic"] == [pytest.approx(1.0), pytest.approx(-0.6)]
    assert EV.rolling_ic(s[:4], r[:4], window=5, step=1)["end"] == []


def test_psi():
    ref = np.arange(100.0)  # deciles: edges 9.9, 19.8, ..., 89.1: ten bins of ten values
    same = EV.psi(ref, ref.copy())
    assert same[0] == 0.0 and same[1] == [0.1] * 10
    cur = np.tile(np.arange(10.0), 5)  # every value in the first bin
    value, _, a = EV.psi(ref, cur)
    assert a == [1.0] + [0.0] * 9
    # (1 - 0.1) ln(1 / 0.1) + 9 x (1e-4 - 0.1) ln(1e-4 / 0.1): the empty bins floored at 1e-4
    assert value == pytest.approx(0.9 * math.log(10) + 9 * (1e-4 - 0.1) * math.log(1e-3), abs=1e-12)
    # a NaN bin when either side has NaN: 10% of the reference is NaN, none of the compared
    ref_nan = np.r_[np.arange(90.0), np.full(10, np.nan)]
    v2, e2, a2 = EV.psi(ref_nan, np.arange(90.0))
    assert len(e2) == 11 and e2[-1] == pytest.approx(0.1) and a2[-1] == 0.0
    assert v2 == pytest.approx(
        sum((max(x, 1e-4) - y) * math.log(max(x, 1e-4) / y) for x, y in zip(a2, e2, strict=True))
    )
    # a constant reference: one edge, two bins (at or below it, above it)
    v3, e3, a3 = EV.psi(np.zeros(50), np.r_[np.zeros(25), np.ones(25)])
    assert e3 == [1.0, 0.0] and a3 == [0.5, 0.5]
    assert v3 == pytest.approx((0.5 - 1) * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4))
