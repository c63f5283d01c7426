"""Out-of-sample metrics of 3-class probabilities, per fold, next to the two baselines.

:func:`classification_metrics` scores probabilities (n, 3) over the classes (-1, 0, +1) against
``y`` in {0, 1, 2}: log loss (probabilities clipped at 1e-7), multi-class Brier score (mean over samples
of the squared distance to the one-hot label, 0..2), accuracy, balanced accuracy (mean recall over the
classes present), macro one-vs-rest ROC AUC (over the classes with both positives and negatives in
``y``) and the top-label expected calibration error.

:func:`evaluate_folds` is the only way the package reports a model score: for every purged fold it
splits the fold's training samples into a fit part and a later validation part
(:func:`~orderflow.models.dataset.split_train_val`), fits each member and both baselines on the fit
part, fits a vector-scaling calibration on the validation part, and scores the fold's **test** samples
only. :func:`compare_to_baselines` puts each member's per-fold figure beside the baselines'.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from orderflow.features.selection import Fold
from orderflow.models.base import Member, member_inputs
from orderflow.models.calibration import VectorScaling, effective_n, expected_calibration_error
from orderflow.models.dataset import Dataset, split_train_val

log = logging.getLogger(__name__)

EPS = 1e-7
METRICS = ("log_loss", "brier", "accuracy", "balanced_accuracy", "auc_macro_ovr", "ece")
LOWER_IS_BETTER = {"log_loss": True, "brier": True, "ece": True, "accuracy": False,
                   "balanced_accuracy": False, "auc_macro_ovr": False}  # fmt: skip
BASELINES = ("baseline_majority", "baseline_logistic_ofi")


def _check(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] != y.size:
        raise ValueError(f"metrics: probs must be (n, 3) with n = len(y) = {y.size}, got {p.shape}")
    if y.size and (y.min() < 0 or y.max() > 2):
        raise ValueError(f"metrics: y must be 0, 1 or 2, got {np.unique(y).tolist()}")
    return p, y


def auc_macro_ovr(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes that have positives and negatives in ``y``."""
    p, y = _check(probs, y)
    aucs = [roc_auc_score(y == k, p[:, k]) for k in range(3) if 0 < int((y == k).sum()) < y.size]
    return float(np.mean(aucs)) if aucs else float("nan")


def classification_metrics(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """n and every metric of :data:`METRICS` (module docstring)."""
    p, y = _check(probs, y)
    if y.size == 0:
        return {"n": 0, **{m: float("nan") for m in METRICS}}
    onehot = np.eye(3)[y]
    pred = p.argmax(axis=1)
    with warnings.catch_warnings():  # a class predicted but absent from y is not an error here
        warnings.simplefilter("ignore", UserWarning)
        bacc = float(balanced_accuracy_score(y, pred))
    return {
        "n": int(y.size),
        "log_loss": float(-np.log(np.clip(p[np.arange(y.size), y], EPS, 1.0)).mean()),
        "brier": float(((p - onehot) ** 2).sum(axis=1).mean()),
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": bacc,
        "auc_macro_ovr": auc_macro_ovr(p, y),
        "ece": expected_calibration_error(p, y),
    }


def _baselines() -> list[Member]:
    from orderflow.models.baselines import LogisticOFI, MajorityClass

    return [MajorityClass(), LogisticOFI()]


def evaluate_folds(
    factories: Sequence[Callable[[], Member]],
    ds: Dataset,
    folds: Sequence[Fold],
    *,
    val_frac: float = 0.2,
    calibrate: bool = True,
    min_train: int = 50,
) -> pd.DataFrame:
    """Out-of-sample scores of fresh members from ``factories`` and of both baselines on every fold.

    One row per (fold, model): fold, model, role ("member"/"baseline"), n_fit, n_val, n_test,
    test_start, test_end (ns), calibrated, then ``n`` and :data:`METRICS` computed on the fold's test
    samples only (after calibration when ``calibrate``), and log_loss_raw / brier_raw before it.
    Folds with fewer than ``min_train`` training samples or one class are skipped."""
    rows = []
    for fold in folds:
        test = np.asarray(fold.test, dtype=np.int64)
        if fold.train.size < min_train or np.unique(ds.y[fold.train]).size < 2 or test.size == 0:
            log.info("evaluate_folds: fold %d skipped (%d training samples)", fold.k, fold.train.size)
            continue
        fit_idx, val_idx = split_train_val(ds, fold.train, val_frac)
        if np.intersect1d(fit_idx, test).size or np.intersect1d(val_idx, test).size:
            raise AssertionError(f"evaluate_folds: fold {fold.k} training and test samples intersect")
        y_test = ds.y[test]
        n_eff = effective_n(ds.sample_ts[val_idx], ds.t_touch[val_idx])
        info = {
            "fold": fold.k,
            "n_fit": int(fit_idx.size),
            "n_val": int(val_idx.size),
            "n_test": int(test.size),
            "test_start": int(ds.sample_ts[test[0]]),
            "test_end": int(ds.t_touch[test].max()),
        }
        members = [(f(), "member") for f in factories] + [(b, "baseline") for b in _baselines()]
        for m, role in members:
            m.fit(ds, fit_idx, val_idx)
            calib = None
            if calibrate:
                raw_val = m.predict_proba_raw(member_inputs(m, ds, val_idx))
                calib = VectorScaling().fit(raw_val, ds.y[val_idx], n_eff=n_eff)
            raw = m.predict_proba_raw(member_inputs(m, ds, test))
            scores = classification_metrics(raw if calib is None else calib.apply(raw), y_test)
            rawm = scores if calib is None else classification_metrics(raw, y_test)
            rows.append(
                {**info, "model": m.name, "role": role, "calibrated": calibrate, **scores,
                 "log_loss_raw": rawm["log_loss"], "brier_raw": rawm["brier"]}
            )  # fmt: skip
            log.info("evaluate_folds: fold %d %s log loss %.4f", fold.k, m.name, scores["log_loss"])
    cols = ["fold", "model", "role", "n_fit", "n_val", "n_test", "test_start", "test_end", "calibrated",
            "n", *METRICS, "log_loss_raw", "brier_raw"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def compare_to_baselines(results: pd.DataFrame, metric: str = "log_loss") -> pd.DataFrame:
    """Per (fold, member) row: the member's ``metric``, each baseline's, and whether the member is
    better than each (lower for losses, higher for scores); plus a "mean" row per member."""
    if metric not in LOWER_IS_BETTER:
        raise ValueError(f"compare_to_baselines: unknown metric {metric!r}; choose from {list(METRICS)}")
    base = results[results["role"] == "baseline"].pivot(index="fold", columns="model", values=metric)
    missing = [b for b in BASELINES if b not in base.columns]
    if missing:
        raise ValueError(f"compare_to_baselines: results lack baseline rows {missing}")
    sign = -1.0 if LOWER_IS_BETTER[metric] else 1.0
    rows = []
    for name, grp in results[results["role"] == "member"].groupby("model", sort=False):
        for _, r in grp.iterrows():
            row = {"model": name, "fold": r["fold"], "metric": metric, "value": r[metric]}
            for b in BASELINES:
                bv = base.loc[r["fold"], b]
                row[b] = bv
                row[f"beats_{b}"] = bool(sign * (r[metric] - bv) > 0) if math.isfinite(bv) else False
            rows.append(row)
        sub = pd.DataFrame([x for x in rows if x["model"] == name and x["fold"] != "mean"])
        mean = {"model": name, "fold": "mean", "metric": metric, "value": float(sub["value"].mean())}
        for b in BASELINES:
            mean[b] = float(sub[b].mean())
            mean[f"beats_{b}"] = int(sub[f"beats_{b}"].sum())  # folds won
        rows.append(mean)
    return pd.DataFrame(rows)
