"""Model datasets: the time-ordered feature matrix, the labelled samples and their purged folds.

A :class:`Dataset` keeps **every** feature row (valid or not) in time order in ``X`` so sequence
models can look back over rows that are not samples themselves. The *samples* are the rows that

1. are valid (``valid == True`` in the feature matrix),
2. carry a finite triple-barrier label (joined on ``ts_event``; see :func:`make_dataset`),
3. survive thinning: at most one sample per ``sample_every_s`` (the first in each step of the time
   grid ``ts_event // step``), because book events arrive many times a second and their labels overlap
   almost entirely.

Classes are ordered (-1, 0, +1), so ``y = label + 1`` is 0, 1 or 2 and column k of every probability
array is class k. ``t_touch`` (the label's end) is kept per sample for purging: :func:`folds` builds
walk-forward or purged k-fold splits with :func:`orderflow.features.selection.make_folds` on the label
spans ``[ts, t_touch]`` (overlapping training samples purged, an embargo after each test window).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from orderflow.features.config import SelectionConfig
from orderflow.features.selection import Fold, feature_columns, make_folds

log = logging.getLogger(__name__)

NS = 1_000_000_000
CLASSES = (-1, 0, 1)  # label of probability column 0, 1, 2


def schema_hash(feature_names: list[str], dtype: str = "float32") -> str:
    """sha256 (hex) of the ordered feature names joined by newlines, then ``|`` and the dtype."""
    return hashlib.sha256(("\n".join(feature_names) + "|" + dtype).encode()).hexdigest()


@dataclass
class Dataset:
    """Feature rows, labelled samples and label spans (module docstring)."""

    X: np.ndarray  # (n_rows, n_features) float32, every time-ordered feature row (valid or not)
    feature_names: list[str]
    ts: np.ndarray  # (n_rows,) int64 ns
    sample_idx: np.ndarray  # (n_samples,) row index of each labelled, valid, thinned sample
    y: np.ndarray  # (n_samples,) int64 in {0, 1, 2} (label -1, 0, +1)
    t_touch: np.ndarray  # (n_samples,) int64 ns (label end, for purging)
    schema_hash: str

    @property
    def n_samples(self) -> int:
        return int(self.sample_idx.size)

    @property
    def sample_ts(self) -> np.ndarray:
        """(n_samples,) int64 ns: the time of each sample (start of its label span)."""
        return self.ts[self.sample_idx]

    def columns(self, names: list[str]) -> np.ndarray:
        """Column positions of ``names`` in ``feature_names`` (ValueError naming the missing ones)."""
        pos = {n: i for i, n in enumerate(self.feature_names)}
        missing = [n for n in names if n not in pos]
        if missing:
            raise ValueError(
                f"Dataset: feature(s) {missing} not in the dataset (schema {self.schema_hash[:12]})"
            )
        return np.array([pos[n] for n in names], dtype=np.int64)

    def tabular(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), n_features) float32: the feature rows of samples ``idx``."""
        return self.X[self.sample_idx[np.asarray(idx, dtype=np.int64)]]

    def sequences(self, idx: np.ndarray, seq_len: int) -> np.ndarray:
        """(len(idx), seq_len, n_features) float32: rows ``sample_idx[i] - seq_len + 1 .. sample_idx[i]``
        of every sample ``i`` in ``idx`` (oldest first); rows before row 0 are zeros."""
        if seq_len < 1:
            raise ValueError(f"Dataset.sequences: seq_len must be >= 1, got {seq_len}")
        end = self.sample_idx[np.asarray(idx, dtype=np.int64)]
        rows = end[:, None] + np.arange(-seq_len + 1, 1, dtype=np.int64)[None, :]
        out = self.X[np.maximum(rows, 0)]
        out[rows < 0] = 0.0
        return out


def _row_of_labels(feat_ts: np.ndarray, lab_ts: np.ndarray) -> np.ndarray:
    """Feature row of every label row, -1 when none: by position when the two time columns are equal,
    else the k-th label at a timestamp joins the k-th feature row at that timestamp."""
    if feat_ts.size == lab_ts.size and np.array_equal(feat_ts, lab_ts):
        return np.arange(feat_ts.size, dtype=np.int64)
    f = pd.DataFrame({"ts": feat_ts, "row": np.arange(feat_ts.size, dtype=np.int64)})
    f["k"] = f.groupby("ts").cumcount()
    lab = pd.DataFrame({"ts": lab_ts, "pos": np.arange(lab_ts.size, dtype=np.int64)})
    lab["k"] = lab.groupby("ts").cumcount()
    m = lab.merge(f, on=["ts", "k"], how="left").sort_values("pos")
    return m["row"].fillna(-1).to_numpy(np.int64)


def make_dataset(features: pd.DataFrame, labels: pd.DataFrame, sample_every_s: float = 1.0) -> Dataset:
    """Dataset from a feature matrix (``build_features``: ts_event, feature columns, valid,
    invalid_reason) and triple-barrier labels (ts_event, label in {-1, 0, +1} or NaN, t_touch).

    Labels join feature rows on ``ts_event`` (by position when both frames have the same times, else
    the k-th label at a time joins the k-th feature row at that time; labels at times with no feature
    row are dropped and counted in the log). Samples: valid rows with a finite label, thinned to the
    first one in each ``sample_every_s`` step (0 = keep all)."""
    if "ts_event" not in features.columns:
        raise ValueError("make_dataset: features lack column ts_event")
    missing = [c for c in ("ts_event", "label", "t_touch") if c not in labels.columns]
    if missing:
        raise ValueError(f"make_dataset: labels lack column(s) {missing}")
    if sample_every_s < 0:
        raise ValueError(f"make_dataset: sample_every_s must be >= 0, got {sample_every_s}")
    names = feature_columns(features)
    if not names:
        raise ValueError("make_dataset: features have no numeric feature columns")
    fts = features["ts_event"].to_numpy(np.int64)
    if fts.size > 1 and np.any(np.diff(fts) < 0):
        log.warning("make_dataset: feature rows are not in ts_event order: sorting them (stable)")
        features = features.sort_values("ts_event", kind="stable")
        fts = features["ts_event"].to_numpy(np.int64)
    X = features[names].to_numpy(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        X = X.astype(np.float32)
    X[~np.isfinite(X)] = np.nan
    valid = features["valid"].to_numpy(bool) if "valid" in features.columns else np.ones(fts.size, dtype=bool)

    lab_ts = labels["ts_event"].to_numpy(np.int64)
    label = labels["label"].to_numpy(np.float64)
    touch = labels["t_touch"].to_numpy(np.int64)
    row = _row_of_labels(fts, lab_ts)
    if (row < 0).any():
        log.info("make_dataset: %d label rows match no feature row, dropped", int((row < 0).sum()))
    keep = (row >= 0) & np.isfinite(label)
    keep[keep] &= valid[row[keep]]
    bad = keep & ~np.isin(label, CLASSES)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"make_dataset: label row {i} is {float(label[i])}, expected -1, 0 or +1")
    row, label, touch = row[keep], label[keep], touch[keep]
    order = np.argsort(row, kind="stable")
    row, label, touch = row[order], label[order], touch[order]
    _, first = np.unique(row, return_index=True)  # one label per feature row
    row, label, touch = row[first], label[first], touch[first]
    if sample_every_s > 0 and row.size:
        bucket = fts[row] // np.int64(round(sample_every_s * NS))
        first = np.r_[True, bucket[1:] != bucket[:-1]]
        row, label, touch = row[first], label[first], touch[first]
    ds = Dataset(
        X=X,
        feature_names=list(names),
        ts=fts.copy(),
        sample_idx=row.astype(np.int64),
        y=(label + 1).astype(np.int64),
        t_touch=touch.astype(np.int64),
        schema_hash=schema_hash(list(names)),
    )
    log.info(
        "make_dataset: %d rows, %d features, %d samples (classes %s)",
        fts.size,
        len(names),
        ds.n_samples,
        np.bincount(ds.y, minlength=3).tolist(),
    )
    return ds


def fold_config(cfg: Any | None = None, **overrides: Any) -> SelectionConfig:
    """A :class:`SelectionConfig` carrying ``n_folds``, ``embargo_s`` and ``scheme`` taken from ``cfg``
    (any object with those attributes, or None for the defaults) and then ``overrides``."""
    vals: dict[str, Any] = {}
    if cfg is not None:
        for k in ("n_folds", "embargo_s", "scheme"):
            if hasattr(cfg, k):
                vals[k] = getattr(cfg, k)
    vals.update({k: v for k, v in overrides.items() if v is not None})
    return SelectionConfig(**vals)


def folds(ds: Dataset, cfg: Any | None = None, **overrides: Any) -> list[Fold]:
    """Purged folds over the samples of ``ds`` (positions into ``ds.sample_idx``): walk-forward
    (expanding window) or purged k-fold (``scheme``), ``n_folds`` test blocks, training samples whose
    label span ``[ts, t_touch]`` overlaps the test span removed, then an ``embargo_s`` embargo.
    ``cfg`` is anything with ``n_folds``/``embargo_s``/``scheme``; keyword overrides win."""
    return make_folds(ds.sample_ts, ds.t_touch, fold_config(cfg, **overrides))


def split_train_val(
    ds: Dataset, train_idx: np.ndarray, val_frac: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Split training samples (time-ordered positions) into a fit part and the last ``val_frac`` as a
    validation part (for early stopping and calibration); fit samples whose label span reaches the
    first validation sample are purged."""
    idx = np.sort(np.asarray(train_idx, dtype=np.int64))
    if not 0 < val_frac < 1:
        raise ValueError(f"split_train_val: val_frac must be in (0, 1), got {val_frac}")
    n_val = max(1, round(idx.size * val_frac))
    if idx.size < 2 * n_val:
        raise ValueError(f"split_train_val: {idx.size} training samples are too few to split")
    fit, val = idx[:-n_val], idx[-n_val:]
    start = ds.sample_ts[val[0]]
    return fit[ds.t_touch[fit] < start], val
