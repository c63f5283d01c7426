"""Honesty checks of the model pipeline (issue 4): purging on real folds, a shuffled-label control at
chance level, and out-of-sample metrics reported next to both baselines."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pandas as pd
import pytest

from orderflow.data.config import SimulatorConfig
from orderflow.data.simulator import simulate
from orderflow.data.store import Store
from orderflow.features.batch import build_features
from orderflow.features.config import FeatureConfig, LabelConfig
from orderflow.features.labels import triple_barrier
from orderflow.models.base import member_inputs
from orderflow.models.config import ExpertConfig
from orderflow.models.dataset import Dataset, folds, make_dataset, schema_hash, split_train_val
from orderflow.models.expert import LightGBMExpert, RandomForestExpert
from orderflow.models.metrics import BASELINES, METRICS, auc_macro_ovr, compare_to_baselines, evaluate_folds

S = 1_000_000_000
log = logging.getLogger(__name__)


def _labelled(store: Store, venue: str, symbol: str, fcfg: FeatureConfig, lcfg: LabelConfig) -> Dataset:
    """Features of the stored market and triple-barrier labels of the mid at one sample time per second."""
    feats = build_features(store, venue, symbol, fcfg)
    book = store.read(venue, symbol, "book", columns=["ts_event", "bid_px_1", "ask_px_1"])
    ts = book["ts_event"].to_numpy()
    mid = (book["bid_px_1"].to_numpy() + book["ask_px_1"].to_numpy()) / 2
    sec = ts // S
    rows = np.flatnonzero(np.r_[True, sec[1:] != sec[:-1]])  # first book row of each second
    labels = triple_barrier(ts, mid, rows, lcfg, by="index")
    return make_dataset(feats, labels, sample_every_s=1.0)


@pytest.fixture(scope="module")
def sim_ds(tmp_path_factory) -> Dataset:
    store = Store(tmp_path_factory.mktemp("honesty") / "store")
    cfg = SimulatorConfig(hours=3, seed=7)
    simulate(cfg, store)
    return _labelled(store, cfg.venue, cfg.symbol, FeatureConfig(), LabelConfig())


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["walk_forward", "purged_kfold"])
def test_no_training_label_window_overlaps_its_test_window(sim_ds, scheme):
    ds = sim_ds
    fs = folds(ds, n_folds=4, embargo_s=60.0, scheme=scheme)
    assert len(fs) == 4
    t0, t1 = ds.sample_ts, ds.t_touch
    for fd in fs:
        start, end = int(t0[fd.test[0]]), int(t1[fd.test].max())
        tr0, tr1 = t0[fd.train], t1[fd.train]
        assert not np.any((tr0 <= end) & (tr1 >= start)), f"fold {fd.k}: a training label overlaps the test"
        assert not np.any((tr0 > end) & (tr0 <= end + 60 * S)), f"fold {fd.k}: embargo violated"
        assert np.intersect1d(fd.train, fd.test).size == 0
        assert fd.n_purged > 0  # 60 s labels sampled every second do overlap the test start
        # and the fit/validation split inside the fold is purged too
        fit, val = split_train_val(ds, fd.train)
        if scheme == "walk_forward":
            assert t1[fit].max() < t0[val[0]]


@pytest.mark.slow
def test_shuffled_labels_score_at_chance(sim_ds):
    """LightGBM trained on labels permuted within the (purged) training set scores at chance out of
    sample. One permutation's AUC varies by about ±0.016 (1 sd, measured over 12 permutations: labels
    and features are autocorrelated over minutes, so ~4,000 test seconds hold far fewer independent
    observations), so the control averages 5 permutations and also bounds each one loosely."""
    ds = sim_ds
    n = ds.n_samples
    cut = int(n * 0.6)
    test = np.arange(cut, n)
    train = np.flatnonzero(ds.t_touch[:cut] < ds.sample_ts[cut])  # purged
    assert test.size >= 3000
    aucs = []
    for seed in range(11, 16):
        y = ds.y.copy()
        y[train] = np.random.default_rng(seed).permutation(y[train])  # within the training set only
        shuffled = dataclasses.replace(ds, y=y)
        fit, val = split_train_val(shuffled, train)
        m = LightGBMExpert(ExpertConfig.quick())
        m.fit(shuffled, fit, val)
        aucs.append(auc_macro_ovr(m.predict_proba_raw(member_inputs(m, ds, test)), ds.y[test]))
    log.info("shuffled-label control: out-of-sample macro AUC %s on %d samples", np.round(aucs, 4), test.size)
    assert abs(np.mean(aucs) - 0.5) <= 0.03, aucs
    assert max(abs(a - 0.5) for a in aucs) <= 0.06, aucs


@pytest.mark.slow
def test_every_metric_is_out_of_sample_and_next_to_both_baselines(sim_ds):
    ds = sim_ds
    fs = folds(ds, n_folds=2, embargo_s=60.0)
    q = ExpertConfig.quick()
    res = evaluate_folds([lambda: RandomForestExpert(q), lambda: LightGBMExpert(q)], ds, fs)
    assert len(res) == 2 * 4
    for k, grp in res.groupby("fold"):
        assert sorted(grp["model"]) == sorted(["expert_rf", "expert_lgbm", *BASELINES])
        fd = fs[int(k) - 1]
        assert (grp["n"] == fd.test.size).all() and (grp["n_test"] == fd.test.size).all()
        assert (grp["n_fit"] + grp["n_val"] <= fd.train.size).all()
    assert res[list(METRICS)].notna().all().all()
    table = compare_to_baselines(res)
    assert list(table["model"]) == ["expert_rf"] * 3 + ["expert_lgbm"] * 3
    assert {"baseline_majority", "baseline_logistic_ofi", "beats_baseline_majority"} <= set(table.columns)


class _Memoriser:
    """Knows the label of every sample it was fitted on (by a row-id feature), uniform elsewhere."""

    name, input_kind, seq_len, feature_names = "memoriser", "tabular", 1, ["rowid"]

    def fit(self, ds, train_idx, val_idx):
        self.seen = {int(ds.tabular(np.array([i]))[0, 0]): int(ds.y[i]) for i in train_idx}

    def predict_proba_raw(self, x):
        out = np.full((len(x), 3), 1 / 3, dtype=np.float32)
        for r, v in enumerate(x[:, 0]):
            if int(v) in self.seen:
                out[r] = np.eye(3)[self.seen[int(v)]]
        return out

    def export_onnx(self, path):  # pragma: no cover - not served
        raise NotImplementedError


def test_training_rows_never_enter_the_metric():
    n = 3000
    rng = np.random.default_rng(0)
    names = ["rowid", "ofi_l1_1s", "ofi_l1_z_1s"]
    x = np.c_[np.arange(n), rng.normal(size=(n, 2))].astype(np.float32)
    ts = np.arange(n, dtype=np.int64) * S
    ds = Dataset(x, names, ts, np.arange(n), rng.integers(0, 3, n), ts + 5 * S, schema_hash(names))
    fs = folds(ds, n_folds=3, embargo_s=0.0)
    res = evaluate_folds([_Memoriser], ds, fs, calibrate=False)
    mem = res[res["model"] == "memoriser"]
    # a memoriser scored on any training row would beat log(3); out of sample it is exactly uniform
    np.testing.assert_allclose(mem["log_loss"], math.log(3), atol=1e-6)
    np.testing.assert_allclose(mem["accuracy"], [np.mean(ds.y[f.test] == 0) for f in fs], atol=1e-12)


@pytest.mark.slow
def test_expert_on_the_real_recording(shared_data, store):
    """The expert on 6 minutes of Binance USD-M BTCUSDT, out of sample next to the baselines. The figures
    are logged, not asserted to beat the baselines: 6 minutes give a few hundred overlapping labels."""
    from orderflow.data.importers.binance_raw import import_binance_raw

    import_binance_raw(store, [shared_data / "hftbacktest_binance_raw/usdm/btcusdt_20240808.gz"])
    fcfg = FeatureConfig(warmup_s=60.0, rv_windows_s=(10.0, 60.0), regime_vol_windows_s=(10.0, 60.0),
                         trend_halflives_s=(10.0, 60.0), vol_pct_buckets=60, zscore_window=300)  # fmt: skip
    ds = _labelled(store, "binance-usdm", "BTCUSDT", fcfg, LabelConfig(horizon_s=10.0, vol_window_s=30.0))
    assert ds.n_samples > 200
    q = ExpertConfig.quick()
    fs = folds(ds, n_folds=3, embargo_s=10.0)
    res = evaluate_folds([lambda: RandomForestExpert(q), lambda: LightGBMExpert(q)], ds, fs, min_train=30)
    assert len(res) == 3 * 4 and res["log_loss"].notna().all()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        log.info("real recording, out of sample:\n%s", res.drop(columns=["test_start", "test_end"]))
        log.info("vs baselines:\n%s", compare_to_baselines(res))
