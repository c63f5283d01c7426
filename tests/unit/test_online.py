"""OnlineLearner: drift after an abrupt concept change, retrain, shadow accept/reject, updates."""

from __future__ import annotations

import numpy as np
import pytest

from orderflow.models.config import EnsembleConfig
from orderflow.models.ensemble import HedgeEnsemble
from orderflow.models.online import DriftEvent, OnlineConfig, OnlineLearner, SGDLogisticMember

CHANGE = 1200  # sample index of the abrupt concept change
N = 2400


class RuleModel:
    """Stub member: class +1 if sign * x0 > 0.3, -1 if < -0.3, else 0, with confidence ``conf``."""

    def __init__(self, sign: float, conf: float = 0.8) -> None:
        self.sign, self.conf = sign, conf
        self.name = f"rule{sign:+.0f}"
        self.feature_names: list[str] = []

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        s = self.sign * x[:, 0]
        cls = np.where(s > 0.3, 2, np.where(s < -0.3, 0, 1))
        p = np.full((len(x), 3), (1 - self.conf) / 2)
        p[np.arange(len(x)), cls] = self.conf
        return p


def _stream(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 3))
    sign = np.where(np.arange(N) < CHANGE, 1.0, -1.0)
    s = sign * x[:, 0]
    y = np.where(s > 0.3, 2, np.where(s < -0.3, 0, 1))
    noise = rng.random(N) < 0.1
    y[noise] = rng.integers(0, 3, noise.sum())
    return x, y


def _run(learner: OnlineLearner, members: dict, x: np.ndarray, y: np.ndarray, chunk: int = 10) -> None:
    for s in range(0, len(y), chunk):
        sl = slice(s, s + chunk)
        # members predict before the labels are known (out of sample), then the labels mature
        probs = {n: m.predict_proba(x[sl]) for n, m in members.items()}
        learner.learn(x[sl], y[sl], probs)


@pytest.mark.parametrize("detector", ["adwin", "page_hinkley"])
@pytest.mark.parametrize("better", [True, False])
def test_drift_retrain_and_shadow(detector: str, better: bool) -> None:
    x, y = _stream()
    members = {"old": RuleModel(+1), "sgd": SGDLogisticMember("sgd", seed=0)}
    ens = HedgeEnsemble(list(members), EnsembleConfig(floor=0.05, cap=0.95))
    calls: list[DriftEvent] = []
    replaced: list[object] = []
    good, bad = RuleModel(-1), RuleModel(+1, conf=0.95)  # bad: confidently the old concept

    def retrain(ev: DriftEvent):
        calls.append(ev)
        return good if better else bad

    cfg = OnlineConfig(detector=detector, shadow_min_samples=200, ph_threshold=20.0)
    learner = OnlineLearner(ens, cfg, members=members, retrain=retrain, on_replace=replaced.append)
    _run(learner, members, x, y)

    assert learner.n_seen == N
    assert learner.drift_at, "no drift detected"
    assert CHANGE < learner.drift_at[0] < CHANGE + 300  # after the change, not before
    assert len(calls) >= 1 and calls[0].n_seen == learner.drift_at[0]
    assert calls[0].recent_loss > 0
    res = learner.shadow_results[0]
    assert res.n_samples == 200
    if better:
        assert res.accepted and res.candidate_loss < res.current_loss
        assert replaced and replaced[0] is good
    else:
        assert not res.accepted and res.candidate_loss > res.current_loss
        assert replaced == []


def test_no_drift_on_stationary_stream() -> None:
    x, y = _stream()
    x, y = x[:CHANGE], y[:CHANGE]
    members = {"old": RuleModel(+1)}
    called: list[DriftEvent] = []
    learner = OnlineLearner(HedgeEnsemble(["old"]), OnlineConfig(), members, retrain=called.append)
    _run(learner, members, x, y)
    assert learner.drift_at == [] and called == []


def test_incremental_members_and_weights_update_every_n() -> None:
    x, y = _stream()
    x, y = x[:CHANGE], y[:CHANGE]
    sgd = SGDLogisticMember("sgd", seed=0)
    members = {"old": RuleModel(+1, conf=0.34), "sgd": sgd}  # "old" is almost uniform
    ens = HedgeEnsemble(list(members), EnsembleConfig(floor=0.05, cap=0.95))
    learner = OnlineLearner(ens, OnlineConfig(update_every=50), members)
    probs = {n: m.predict_proba(x[:49]) for n, m in members.items()}
    learner.learn(x[:49], y[:49], probs)
    assert ens.n_updates == 0 and not sgd._fitted  # nothing happens before 50 labelled samples
    np.testing.assert_allclose(ens.weights, 0.5)
    _run(learner, members, x[49:], y[49:])
    assert ens.n_updates == 1200  # 24 flushes of 50
    assert sgd._fitted
    # the SGD member learned the concept well enough to beat the weak rule in the weights
    acc = (sgd.predict_proba(x).argmax(axis=1) == y).mean()
    assert acc > 0.7  # chance is about 0.4
    assert ens.weight_of()["sgd"] > ens.weight_of()["old"]


def test_delayed_candidate_and_member_columns() -> None:
    x, y = _stream()
    members = {"old": RuleModel(+1)}
    learner = OnlineLearner(
        HedgeEnsemble(["old"]), OnlineConfig(shadow_min_samples=50), members, retrain=lambda ev: None
    )
    _run(learner, members, x, y)
    assert len(learner.drift_at) == 1  # retrain pending: no new alarms until a candidate arrives
    learner.submit_candidate(RuleModel(-1))
    _run(learner, members, x[-60:], y[-60:])
    assert learner.shadow_results[-1].accepted
    with pytest.raises(ValueError, match="labels"):
        learner.learn(x[:3], y[:2], {"old": np.full((3, 3), 1 / 3)})
