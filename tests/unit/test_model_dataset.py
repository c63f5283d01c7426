"""Model datasets: sample selection, thinning, label join, sequences, folds and member inputs."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from orderflow.models.base import class_map, expand_classes, member_inputs
from orderflow.models.dataset import folds, make_dataset, split_train_val

S = 1_000_000_000


def frame(n: int = 40, step_ns: int = S // 4) -> pd.DataFrame:
    ts = np.arange(n, dtype=np.int64) * step_ns
    return pd.DataFrame(
        {
            "ts_event": ts,
            "f_a": np.arange(n, dtype=float),
            "f_b": np.r_[np.inf, np.ones(n - 1)],
            "valid": np.r_[np.zeros(4, bool), np.ones(n - 4, bool)],
            "invalid_reason": "",
        }
    )


def labels_for(f: pd.DataFrame, horizon_ns: int = 2 * S) -> pd.DataFrame:
    lab = np.tile([-1.0, 0.0, 1.0], len(f))[: len(f)]
    lab[-3:] = np.nan
    return pd.DataFrame({"ts_event": f["ts_event"], "label": lab, "t_touch": f["ts_event"] + horizon_ns})


def test_samples_are_valid_labelled_and_thinned_to_the_first_row_per_step():
    f = frame()
    ds = make_dataset(f, labels_for(f), sample_every_s=1.0)
    assert ds.X.shape == (40, 2) and ds.X.dtype == np.float32
    assert np.isnan(ds.X[0, 1])  # inf becomes NaN
    # rows 0-3 invalid, rows 37-39 unlabelled; 4 rows per second -> first row of each second
    assert ds.sample_idx.tolist() == [4, 8, 12, 16, 20, 24, 28, 32, 36]
    assert ds.y.tolist() == [int(np.tile([-1, 0, 1], 14)[i]) + 1 for i in ds.sample_idx]
    assert ds.t_touch.tolist() == (ds.ts[ds.sample_idx] + 2 * S).tolist()
    assert ds.schema_hash == hashlib.sha256(b"f_a\nf_b|float32").hexdigest()
    assert make_dataset(f, labels_for(f), sample_every_s=0).n_samples == 33


def test_labels_on_a_subset_of_rows_join_on_time_including_repeated_timestamps():
    f = frame(12)
    f.loc[5, "ts_event"] = f.loc[4, "ts_event"]  # two rows at one time
    lab = pd.DataFrame(
        {"ts_event": [f.ts_event[4], f.ts_event[4], 999 * S], "label": [1.0, -1.0, 0.0], "t_touch": [9, 9, 9]}
    )
    ds = make_dataset(f, lab, sample_every_s=0)
    assert ds.sample_idx.tolist() == [4, 5]  # the second label joins the second row; 999 s matches none
    assert ds.y.tolist() == [2, 0]


def test_bad_labels_and_missing_columns_are_named():
    f = frame(10)
    lab = labels_for(f)
    lab.loc[6, "label"] = 2.0
    with pytest.raises(ValueError, match=r"label row 6 is 2\.0"):
        make_dataset(f, lab)
    with pytest.raises(ValueError, match="t_touch"):
        make_dataset(f, lab.drop(columns="t_touch"))


def test_sequences_end_at_the_sample_row_and_zero_pad_before_row_zero():
    f = frame(40)
    ds = make_dataset(f, labels_for(f), sample_every_s=0)
    seq = ds.sequences(np.array([0, 3]), 6)  # samples at rows 4 and 7
    assert seq.shape == (2, 6, 2)
    assert seq[0, :, 0].tolist() == [0, 0, 1, 2, 3, 4]  # rows -1 and 0 are zero / value 0
    assert seq[1, :, 0].tolist() == [2, 3, 4, 5, 6, 7]
    assert ds.tabular(np.array([3]))[0, 0] == 7
    with pytest.raises(ValueError, match="seq_len"):
        ds.sequences(np.array([0]), 0)


def test_walk_forward_folds_purge_overlapping_label_spans():
    f = frame(400)
    ds = make_dataset(f, labels_for(f, horizon_ns=3 * S), sample_every_s=0)
    fs = folds(ds, n_folds=3, embargo_s=0.0, scheme="walk_forward")
    assert len(fs) == 3
    t0, t1 = ds.sample_ts, ds.t_touch
    for fd in fs:
        start, end = t0[fd.test[0]], t1[fd.test].max()
        assert fd.train.max() < fd.test[0]
        assert not np.any((t0[fd.train] <= end) & (t1[fd.train] >= start))
        assert fd.n_purged == 12  # 3 s of 0.25 s samples end inside the test span


def test_purged_kfold_embargo_removes_samples_after_the_test_span():
    f = frame(400)
    ds = make_dataset(f, labels_for(f, horizon_ns=S), sample_every_s=0)
    fd = folds(ds, n_folds=3, embargo_s=5.0, scheme="purged_kfold")[0]
    end = ds.t_touch[fd.test].max()
    after = ds.sample_ts[fd.train][ds.sample_ts[fd.train] > end]
    assert after.size and after.min() > end + 5 * S
    assert fd.n_embargoed == 20


def test_split_train_val_purges_fit_labels_reaching_into_validation():
    f = frame(200)
    ds = make_dataset(f, labels_for(f, horizon_ns=2 * S), sample_every_s=0)
    fit, val = split_train_val(ds, np.arange(100), 0.2)
    assert val.tolist() == list(range(80, 100))
    assert ds.t_touch[fit].max() < ds.sample_ts[val[0]]
    assert fit.size == 80 - 8  # 2 s of 0.25 s samples purged


class _Stream:
    name, input_kind, seq_len, context_rows, feature_names = "s", "stream", 4, 3, ["f_b", "f_a"]


def test_member_inputs_select_and_order_columns():
    f = frame(40)
    ds = make_dataset(f, labels_for(f), sample_every_s=0)
    x = member_inputs(_Stream(), ds, np.array([2, 5]))  # samples at rows 6 and 9
    assert x.rows.shape == (7, 2) and x.at.tolist() == [3, 6]  # rows 3..9: 3 rows of context first
    np.testing.assert_array_equal(x.rows, ds.X[3:10][:, ds.columns(["f_b", "f_a"])])
    first = member_inputs(_Stream(), ds, np.array([0]))  # sample at row 4: context clipped at row 1
    assert first.rows.shape == (4, 2) and first.at.tolist() == [3]
    with pytest.raises(ValueError, match="time order"):
        member_inputs(_Stream(), ds, np.array([5, 2]))
    bad = _Stream()
    bad.feature_names = ["nope"]
    with pytest.raises(ValueError, match="nope"):
        member_inputs(bad, ds, np.array([0]))


def test_expand_classes_puts_unseen_classes_at_zero():
    p = expand_classes(np.array([[0.25, 0.75]]), np.array([0, 2]))
    assert p.tolist() == [[0.25, 0.0, 0.75]]
    with pytest.raises(ValueError, match="classes"):
        class_map(np.array([0, 3]))
