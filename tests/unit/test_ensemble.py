"""HedgeEnsemble: weights follow out-of-sample log loss, stay in [floor, cap], sum to 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.models.config import EnsembleConfig
from orderflow.models.ensemble import HedgeEnsemble, log_loss_per_sample, project_bounded_simplex


def _probs_for(y: np.ndarray, p_true: float) -> np.ndarray:
    """Probabilities that put ``p_true`` on the true class and split the rest."""
    p = np.full((len(y), 3), (1 - p_true) / 2)
    p[np.arange(len(y)), y] = p_true
    return p


@pytest.fixture
def stream() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    return y, {"good": _probs_for(y, 0.7), "bad": _probs_for(y, 0.3), "mid": _probs_for(y, 0.4)}


def test_better_member_weight_rises(stream) -> None:
    y, probs = stream
    ens = HedgeEnsemble(["good", "bad", "mid"], EnsembleConfig(eta=0.5, floor=0.05, cap=0.6))
    np.testing.assert_allclose(ens.weights, 1 / 3)
    history = []
    for s in range(0, 400, 50):
        sl = slice(s, s + 50)
        ens.update({k: v[sl] for k, v in probs.items()}, y[sl])
        history.append(ens.weight_of()["good"])
    w = ens.weight_of()
    assert w["good"] == pytest.approx(0.6)  # pinned at the cap
    assert w["bad"] == pytest.approx(0.05)  # pinned at the floor
    assert w["good"] > w["mid"] > w["bad"] - 1e-12
    assert history[0] > 1 / 3
    # the ensemble is better than the uniform average on the same samples
    uni = np.mean([probs[k] for k in probs], axis=0)
    assert log_loss_per_sample(ens.predict(probs), y).mean() < log_loss_per_sample(uni, y).mean()
    assert ens.recent_loss[0] == pytest.approx(-np.log(0.7))
    assert ens.n_updates == 400


def test_weights_recover_when_members_swap(stream) -> None:
    y, probs = stream
    ens = HedgeEnsemble(["a", "b"], EnsembleConfig(eta=0.5, floor=0.1, cap=0.9, halflife=50))
    ens.update({"a": probs["good"][:200], "b": probs["bad"][:200]}, y[:200])
    assert ens.weights[0] == pytest.approx(0.9)
    ens.update({"a": probs["bad"][200:], "b": probs["good"][200:]}, y[200:])
    assert ens.weights[1] == pytest.approx(0.9)  # old evidence faded; the new best member leads


def test_no_update_leaves_weights(stream) -> None:
    y, probs = stream
    ens = HedgeEnsemble(["good", "bad", "mid"])
    before = ens.weights.copy()
    p0 = ens.predict(probs)
    ens.update({k: v[:0] for k, v in probs.items()}, y[:0])
    np.testing.assert_array_equal(ens.weights, before)
    np.testing.assert_array_equal(ens.predict(probs), p0)
    assert ens.n_updates == 0


def test_equal_members_keep_uniform_weights(stream) -> None:
    y, probs = stream
    ens = HedgeEnsemble(["x", "y"])
    ens.update({"x": probs["mid"], "y": probs["mid"]}, y)
    np.testing.assert_allclose(ens.weights, 0.5)


def test_errors_name_the_bad_input(stream) -> None:
    y, probs = stream
    ens = HedgeEnsemble(["good", "bad"])
    with pytest.raises(KeyError, match="bad"):
        ens.predict({"good": probs["good"]})
    with pytest.raises(ValueError, match="'bad'"):
        ens.predict({"good": probs["good"], "bad": probs["bad"][:, :2]})
    with pytest.raises(ValueError, match="labels"):
        ens.update({"good": probs["good"], "bad": probs["bad"]}, y[:10])
    with pytest.raises(ValueError, match="duplicate"):
        HedgeEnsemble(["a", "a"])
    with pytest.raises(ValueError, match="infeasible"):
        project_bounded_simplex(np.ones(3), floor=0.4, cap=0.6)


def test_round_trip_and_stacking(stream) -> None:
    y, probs = stream
    ens = HedgeEnsemble(["good", "bad", "mid"], EnsembleConfig(stacking=True))
    ens.update({k: v[:100] for k, v in probs.items()}, y[:100])
    ens.fit_stacking({k: v[100:300] for k, v in probs.items()}, y[100:300])
    test = {k: v[300:] for k, v in probs.items()}
    p_stack = ens.predict(test)
    np.testing.assert_allclose(p_stack.sum(axis=1), 1.0)
    # the meta-model learns to trust "good": better than the plain average on later samples
    assert (
        log_loss_per_sample(p_stack, y[300:]).mean()
        < log_loss_per_sample(np.mean(list(test.values()), axis=0), y[300:]).mean()
    )
    back = HedgeEnsemble.from_dict(json.loads(json.dumps(ens.to_dict())))
    np.testing.assert_array_equal(back.weights, ens.weights)
    np.testing.assert_allclose(back.predict(test), p_stack)
    np.testing.assert_allclose(back.recent_loss, ens.recent_loss)
    assert back.n_updates == ens.n_updates


def test_bounds_adjusted_for_few_members() -> None:
    ens = HedgeEnsemble(["only"], EnsembleConfig(cap=0.6))
    assert ens.weights.tolist() == [1.0]
    ens.update({"only": np.full((5, 3), 1 / 3)}, np.zeros(5, dtype=int))
    assert ens.weights.tolist() == [1.0]


@settings(max_examples=200, deadline=None)
@given(
    v=st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=2, max_size=8),
    floor=st.floats(0.0, 0.12),
    cap=st.floats(0.5, 1.0),
)
def test_projection_invariants(v: list[float], floor: float, cap: float) -> None:
    w = project_bounded_simplex(np.asarray(v), floor, cap)
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(w >= floor - 1e-9) and np.all(w <= cap + 1e-9)
    # order preserving (a monotone map of the input)
    vv = np.asarray(v)
    order = np.argsort(vv, kind="stable")
    assert np.all(np.diff(w[order]) >= -1e-9)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_members=st.integers(2, 6),
    eta=st.floats(0.01, 5.0),
    batches=st.lists(st.integers(0, 40), min_size=1, max_size=5),
)
def test_update_invariants(seed: int, n_members: int, eta: float, batches: list[int]) -> None:
    rng = np.random.default_rng(seed)
    cfg = EnsembleConfig(eta=eta, floor=0.05, cap=0.6)
    ens = HedgeEnsemble([f"m{i}" for i in range(n_members)], cfg)
    for n in batches:
        probs = {name: rng.dirichlet(np.ones(3), n) for name in ens.member_names}
        ens.update(probs, rng.integers(0, 3, n))
        assert ens.weights.sum() == pytest.approx(1.0, abs=1e-9)
        assert np.all(ens.weights >= ens.floor - 1e-9) and np.all(ens.weights <= ens.cap + 1e-9)
        out = ens.predict(probs)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)
