"""OFI expert and baselines on simulated features: fit, native vs ONNX Runtime within 1e-5."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from orderflow.data.config import SimulatorConfig
from orderflow.data.simulator import simulate
from orderflow.features.batch import build_features
from orderflow.features.config import FeatureConfig, LabelConfig
from orderflow.features.labels import triple_barrier
from orderflow.features.registry import default_specs
from orderflow.models.base import Member, member_inputs, run_onnx
from orderflow.models.baselines import OFI_BASELINE_FEATURES, LogisticOFI, MajorityClass
from orderflow.models.config import ExpertConfig
from orderflow.models.dataset import make_dataset, split_train_val
from orderflow.models.expert import LightGBMExpert, RandomForestExpert


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from orderflow.data.store import Store

    store = Store(tmp_path_factory.mktemp("expert") / "store")
    cfg = SimulatorConfig(hours=0.75, seed=3)
    simulate(cfg, store)
    feats = build_features(store, cfg.venue, cfg.symbol, FeatureConfig())
    book = store.read(cfg.venue, cfg.symbol, "book", columns=["ts_event", "bid_px_1", "ask_px_1"])
    mid = (book["bid_px_1"].to_numpy() + book["ask_px_1"].to_numpy()) / 2
    labels = triple_barrier(book["ts_event"].to_numpy(), mid, None, LabelConfig(horizon_s=30.0))
    return make_dataset(feats, labels, sample_every_s=1.0)


def _members():
    q = ExpertConfig.quick()
    return [RandomForestExpert(q), LightGBMExpert(q), MajorityClass(), LogisticOFI()]


@pytest.mark.slow
@pytest.mark.parametrize("k", range(4), ids=["rf", "lgbm", "majority", "logistic_ofi"])
def test_native_and_onnx_agree_within_1e5(ds, tmp_path, k):
    m = _members()[k]
    assert isinstance(m, Member)
    n = ds.n_samples
    fit, val = split_train_val(ds, np.arange(int(n * 0.7)))
    m.fit(ds, fit, val)
    x = member_inputs(m, ds, np.arange(int(n * 0.7), n))
    x_nan = x.copy()
    x_nan[::7, ::3] = np.nan  # missing values take the same path in both
    path = tmp_path / f"{m.name}.onnx"
    m.export_onnx(path)
    model = onnx.load(str(path))
    assert model.ir_version <= 10
    assert [i.name for i in model.graph.input] == ["x"] and [o.name for o in model.graph.output] == ["probs"]
    for xx in (x, x_nan):
        native = m.predict_proba_raw(xx)
        served = run_onnx(path, xx)
        assert native.shape == served.shape == (len(xx), 3) and served.dtype == np.float32
        np.testing.assert_allclose(served, native, atol=1e-5, rtol=0)
        np.testing.assert_allclose(native.sum(axis=1), 1.0, atol=1e-5)


def test_expert_reads_the_ofi_and_cvd_groups_and_is_deterministic(ds):
    group = {s.name: s.group for s in default_specs(FeatureConfig())}
    fit, val = split_train_val(ds, np.arange(ds.n_samples // 2))
    a, b = LightGBMExpert(ExpertConfig.quick()), LightGBMExpert(ExpertConfig.quick())
    a.fit(ds, fit, val)
    b.fit(ds, fit, val)
    assert {group[n] for n in a.feature_names} == {"ofi", "cvd"}
    assert len(a.feature_names) == sum(g in ("ofi", "cvd") for g in group.values())
    x = member_inputs(a, ds, np.arange(ds.n_samples // 2, ds.n_samples))
    np.testing.assert_array_equal(a.predict_proba_raw(x), b.predict_proba_raw(x))
    assert LogisticOFI().feature_names == OFI_BASELINE_FEATURES == ["ofi_l1_1s", "ofi_l1_z_1s"]


def test_a_class_missing_from_training_gets_zero_probability_in_both_paths(ds, tmp_path):
    fit = np.flatnonzero(ds.y[: ds.n_samples // 2] != 0)  # no -1 labels
    m = RandomForestExpert(ExpertConfig.quick())
    m.fit(ds, fit, np.array([], dtype=np.int64))
    x = member_inputs(m, ds, np.arange(ds.n_samples // 2, ds.n_samples))
    m.export_onnx(tmp_path / "rf.onnx")
    native, served = m.predict_proba_raw(x), run_onnx(tmp_path / "rf.onnx", x)
    assert np.all(native[:, 0] == 0) and np.all(served[:, 0] == 0)
    np.testing.assert_allclose(served, native, atol=1e-5)


def test_unfitted_and_misshaped_inputs_are_refused(ds):
    m = LightGBMExpert(ExpertConfig.quick())
    with pytest.raises(RuntimeError, match="expert_lgbm: not fitted"):
        m.predict_proba_raw(np.zeros((1, 3), np.float32))
    fit, val = split_train_val(ds, np.arange(ds.n_samples // 2))
    m.fit(ds, fit, val)
    with pytest.raises(ValueError, match="expert_lgbm: input must have shape"):
        m.predict_proba_raw(np.zeros((1, 3), np.float32))
