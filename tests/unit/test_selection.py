"""Walk-forward feature selection: signal features rank first; purging and embargo are exact; no test
sample ever trains."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from orderflow.features.config import SelectionConfig
from orderflow.features.selection import make_folds, purge_mask, select_features

NS = 1_000_000_000
T0 = 1_723_160_000 * NS
SIGNAL = ["f03", "f11", "f17"]


def synthetic(n=1800, seed=1, horizon_s=20):
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(n, dtype=np.int64) * NS
    x = pd.DataFrame(rng.normal(size=(n, 20)), columns=[f"f{i:02d}" for i in range(20)])
    z = 1.5 * x["f03"] - 1.2 * x["f11"] + 1.0 * x["f17"] + rng.normal(size=n)
    y = np.where(z > 0.8, 1.0, np.where(z < -0.8, -1.0, 0.0))
    x.insert(0, "ts_event", ts)
    labels = pd.DataFrame({"ts_event": ts, "label": y, "t_touch": ts + horizon_s * NS})
    return x, labels


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lightgbm", "random_forest"])
def test_signal_features_rank_top(model):
    x, labels = synthetic()
    cfg = SelectionConfig(n_keep=5, n_folds=3, model=model, n_estimators=60, min_train_samples=100)
    res = select_features(x, labels, cfg)
    assert set(res.ranking["feature"].head(3)) == set(SIGNAL)
    assert res.selected[:3] == res.ranking["feature"].head(3).tolist() and len(res.selected) == 5
    top = res.ranking.set_index("feature").loc[SIGNAL]
    assert (top["stability"] == 1.0).all() and (top["mean_importance"] > 0.05).all()
    noise = res.ranking[~res.ranking["feature"].isin(SIGNAL)]
    assert noise["mean_importance"].max() < top["mean_importance"].min() / 5
    folds = res.folds
    assert len(folds) == 3 and not folds["skipped"].any()
    assert (folds["log_loss"] < folds["log_loss_prior"]).all()  # beats the class-prior baseline
    assert (folds["balanced_accuracy"] > 0.5).all()
    doc = json.loads(res.to_json())
    assert doc["selected"] == res.selected and doc["config"]["model"] == model
    assert len(doc["ranking"]) == 20 and len(doc["folds"]) == 3


@pytest.mark.slow
def test_selection_is_deterministic():
    x, labels = synthetic(n=900)
    cfg = SelectionConfig(n_keep=4, n_folds=2, n_estimators=30, min_train_samples=100)
    a, b = select_features(x, labels, cfg), select_features(x, labels, cfg)
    pd.testing.assert_frame_equal(a.ranking, b.ranking)


def test_purge_mask_on_a_hand_built_case():
    # spans [t0, t1] in seconds; the test span is [10, 20], embargo 5 s
    t0 = np.array([0, 2, 5, 9, 10, 15, 20, 21, 24, 25, 26]) * NS
    t1 = np.array([9, 10, 12, 9, 30, 16, 22, 30, 28, 40, 27]) * NS
    overlap, emb = purge_mask(t0, t1, 10 * NS, 20 * NS, 5 * NS)
    assert np.flatnonzero(overlap).tolist() == [1, 2, 4, 5, 6]  # touch 10 or start by 20
    assert np.flatnonzero(emb).tolist() == [7, 8, 9]  # start in (20, 25]


def test_folds_purge_exactly_the_overlapping_samples():
    # 12 samples, 1 s apart, label spans of 2.5 s, 3 test folds of 3 after an initial block of 3
    t0 = np.arange(12, dtype=np.int64) * NS
    t1 = t0 + 2_500_000_000
    folds = make_folds(t0, t1, SelectionConfig(n_folds=3, embargo_s=0, min_train_samples=2))
    assert [f.test.tolist() for f in folds] == [[3, 4, 5], [6, 7, 8], [9, 10, 11]]
    # test fold 1 starts at 3 s: samples 1 (ends 3.5 s) and 2 (ends 4.5 s) overlap, sample 0 (2.5 s) not
    assert folds[0].train.tolist() == [0] and folds[0].n_purged == 2
    assert folds[1].train.tolist() == [0, 1, 2, 3] and folds[1].n_purged == 2
    assert folds[2].train.tolist() == [0, 1, 2, 3, 4, 5, 6] and folds[2].n_purged == 2
    kf = make_folds(
        t0, t1, SelectionConfig(n_folds=3, embargo_s=2, scheme="purged_kfold", min_train_samples=2)
    )
    # fold 1 spans [3 s, 7.5 s]: purge 1, 2 (before) and 6, 7 (start <= 7.5 s); embargo (7.5, 9.5]: 8, 9
    assert kf[0].train.tolist() == [0, 10, 11] and (kf[0].n_purged, kf[0].n_embargoed) == (4, 2)


@pytest.mark.parametrize("scheme", ["walk_forward", "purged_kfold"])
def test_no_test_sample_is_ever_in_training(scheme):
    rng = np.random.default_rng(5)
    t0 = np.sort(T0 + rng.integers(0, 3600 * NS, 2000))
    t1 = t0 + rng.integers(1, 120 * NS, 2000)
    cfg = SelectionConfig(n_folds=5, embargo_s=30, scheme=scheme)
    folds = make_folds(t0, t1, cfg)
    assert len(folds) == 5
    tested = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(333, 2000))  # every sample after block 0, once
    for f in folds:
        assert not np.intersect1d(f.train, f.test).size
        start, end = t0[f.test].min(), t1[f.test].max()
        tr0, tr1 = t0[f.train], t1[f.train]
        assert not np.any((tr0 <= end) & (tr1 >= start))  # no training label overlaps the test span
        assert not np.any((tr0 > end) & (tr0 <= end + 30 * NS))
        if scheme == "walk_forward":
            assert tr1.max() < start  # training is strictly in the past
        assert f.train.size + f.test.size + f.n_purged + f.n_embargoed == (
            f.test.max() + 1 if scheme == "walk_forward" else 2000
        )


def test_invalid_rows_and_missing_labels_are_dropped():
    x, labels = synthetic(n=1200)
    x["valid"] = True
    x.loc[::4, "valid"] = False
    labels.loc[1::10, "label"] = np.nan
    x["reason"] = np.where(x["valid"], "", "warmup")  # a text column is not a feature
    cfg = SelectionConfig(n_keep=3, n_folds=2, n_estimators=30, min_train_samples=100)
    res = select_features(x, labels, cfg)
    kept = (x["valid"] & labels["label"].notna()).sum()
    f = res.folds
    assert int(f["n_test"].sum()) == kept - kept // 3  # two test blocks of a third each
    assert set(res.ranking["feature"]) == {f"f{i:02d}" for i in range(20)}


def test_labels_joined_by_timestamp_when_rows_differ():
    x, labels = synthetic(n=1200)
    cfg = SelectionConfig(n_keep=3, n_folds=2, n_estimators=30, min_train_samples=100)
    shuffled = labels.iloc[100:].sample(frac=1.0, random_state=0)  # fewer rows, other order
    res = select_features(x, shuffled, cfg)
    assert int(res.folds["n_test"].sum()) == 1100 - 1100 // 3
    assert set(res.selected) == set(SIGNAL)


def test_errors_name_the_problem():
    x, labels = synthetic(n=150)
    with pytest.raises(ValueError, match="150 valid labelled samples"):
        select_features(x, labels, SelectionConfig())
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['t_touch'\]"):
        select_features(x, labels.drop(columns="t_touch"), SelectionConfig())
    with pytest.raises(ValidationError):
        SelectionConfig(model="xgboost")
    with pytest.raises(ValidationError):
        SelectionConfig(n_kept=3)
