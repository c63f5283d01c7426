"""Vector scaling, expected calibration error and the out-of-sample metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orderflow.models.calibration import VectorScaling, effective_n, expected_calibration_error
from orderflow.models.metrics import auc_macro_ovr, classification_metrics


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _draw(p, rng):
    c = p.cumsum(axis=1)
    return (rng.random(len(p))[:, None] > c).sum(axis=1)


def test_identity_leaves_probabilities_unchanged():
    p = np.array([[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]])
    np.testing.assert_allclose(VectorScaling.identity().apply(p), p, atol=1e-12)


def test_fit_recovers_the_scaling_that_generated_the_labels():
    rng = np.random.default_rng(0)
    raw = rng.dirichlet([2, 2, 2], 40_000)
    a, b = np.array([2.0, 1.5, 0.7]), np.array([0.3, 0.0, -0.2])
    y = _draw(_softmax(np.log(raw) * a + b), rng)
    vs = VectorScaling(l2=1e-3).fit(raw, y)
    # a softmax is unchanged by a common shift of b
    np.testing.assert_allclose(vs.a, a, atol=0.1)
    np.testing.assert_allclose(vs.b - vs.b.mean(), b - b.mean(), atol=0.1)
    before, after = expected_calibration_error(raw, y), expected_calibration_error(vs.apply(raw), y)
    assert after < 0.02 < before


def test_small_effective_sample_keeps_the_map_near_identity():
    rng = np.random.default_rng(1)
    raw = rng.dirichlet([1, 1, 1], 600)
    y = np.ones(600, dtype=int)  # a validation window with one class only
    free = VectorScaling(l2=1.0).fit(raw, y)
    tied = VectorScaling(l2=1.0).fit(raw, y, n_eff=5.0)

    def dist(v):
        return float(np.sum((v.a - 1) ** 2) + np.sum(v.b**2))

    assert dist(tied) < 0.5 * dist(free)
    p_ones = tied.apply(raw)[:, 1].mean()
    assert raw[:, 1].mean() < p_ones < free.apply(raw)[:, 1].mean()


def test_dict_round_trip_and_errors():
    vs = VectorScaling(a=np.array([1.0, 2.0, 3.0]), b=np.array([0.1, 0.2, 0.3]))
    back = VectorScaling.from_dict(vs.to_dict())
    p = np.array([[0.2, 0.3, 0.5]])
    np.testing.assert_allclose(back.apply(p), vs.apply(p))
    with pytest.raises(ValueError, match="kind"):
        VectorScaling.from_dict({"kind": "platt"})
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        VectorScaling().apply(np.ones((2, 2)))
    with pytest.raises(ValueError, match="classes must be 0, 1 or 2"):
        VectorScaling().fit(np.full((2, 3), 1 / 3), np.array([0, 3]))


def test_ece_by_hand():
    p = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.5, 0.3], [0.2, 0.3, 0.5]])
    y = np.array([0, 1, 1, 0])
    # bin 9: conf 0.9, acc 0.5 -> |0.5-0.9|*2 ; bin 5: conf 0.5, acc 0.5 -> 0.5 (sum 1 correct vs 1.0)
    assert expected_calibration_error(p, y) == pytest.approx((abs(1 - 1.8) + abs(1 - 1.0)) / 4)


def test_effective_n_of_disjoint_and_identical_spans():
    assert effective_n(np.array([0, 10, 20]), np.array([5, 15, 25])) == pytest.approx(3.0)
    assert effective_n(np.array([0, 0, 0]), np.array([5, 5, 5])) == pytest.approx(1.0)


def test_metrics_by_hand():
    p = np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.6, 0.2, 0.2]])
    y = np.array([0, 1, 2, 2])
    m = classification_metrics(p, y)
    assert m["n"] == 4
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.5, 0.8, 0.6, 0.2])))
    brier = (0.25 + 0.0625 * 2 + 0.01 + 0.04 + 0.01 + 0.04 * 2 + 0.16 + 0.36 + 0.04 + 0.64) / 4
    assert m["brier"] == pytest.approx(brier)
    assert m["accuracy"] == 0.75 and m["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert 0.5 < m["auc_macro_ovr"] <= 1.0


def test_auc_of_a_perfect_and_a_constant_forecast():
    y = np.array([0, 1, 2, 0, 1, 2])
    assert auc_macro_ovr(np.eye(3)[y], y) == 1.0
    assert auc_macro_ovr(np.full((6, 3), 1 / 3), y) == 0.5
    assert math.isnan(auc_macro_ovr(np.full((2, 3), 1 / 3), np.array([1, 1])))
    with pytest.raises(ValueError, match="probs must be"):
        classification_metrics(np.ones((3, 2)), np.zeros(3, dtype=int))
