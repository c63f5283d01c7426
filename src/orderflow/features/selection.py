"""Feature selection by out-of-sample permutation importance across purged walk-forward folds.

Folds: the labelled samples, in time order, are cut into ``n_folds + 1`` blocks of equal count. Fold k
(k = 1..n_folds) tests on block k and trains on every sample before it (an expanding window;
``scheme="purged_kfold"`` trains on every other block instead). The training set is then

- **purged**: a training sample whose label span ``[ts_event, t_touch]`` overlaps the test fold's span
  ``[first test ts_event, last test t_touch]`` is removed;
- **embargoed**: a training sample starting in ``(test end, test end + embargo_s]`` is removed. In the
  expanding walk-forward scheme no training sample lies after the test fold, so the embargo removes
  nothing there; it matters for ``purged_kfold``.

Importance: :func:`sklearn.inspection.permutation_importance` of the fitted model on the test fold, with
the **log-loss** scorer (the score is minus the multi-class log loss over the training classes, so an
importance is the rise in test log loss when the feature is shuffled); ``n_repeats`` shuffles.
Each fold's model score is compared with a class-prior baseline (predicting the training class
frequencies for every test sample); balanced accuracy is reported alongside.

Ranking: ``stability`` = share of scored folds where the feature is among the ``n_keep`` highest
importances *and* its importance is positive; ``score = mean_importance · stability``; features are
ranked by score, then mean importance, then name; the top ``n_keep`` are selected.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from orderflow.features.config import SelectionConfig

log = logging.getLogger(__name__)

NS = 1_000_000_000
_NON_FEATURES = {"ts_event", "ts_recv", "valid", "reason", "invalid_reason"}


@dataclass(frozen=True)
class Fold:
    """Row positions (into the time-sorted labelled samples) of one fold."""

    k: int
    train: np.ndarray
    test: np.ndarray
    n_purged: int
    n_embargoed: int


@dataclass
class SelectionResult:
    ranking: pd.DataFrame  # feature, mean_importance, std, stability, score, rank
    selected: list[str]
    folds: pd.DataFrame  # fold, n_train, n_test, n_purged, n_embargoed, test_start, test_end, ...
    fold_rank_corr: float  # mean pairwise Spearman correlation of the fold importances
    config: SelectionConfig
    importances: pd.DataFrame = field(repr=False)  # fold x feature

    def to_json(self) -> str:
        """The chosen set and the evidence, as JSON text (NaN written as null)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float | np.floating):
                return None if not np.isfinite(v) else float(v)
            if isinstance(v, np.integer):
                return int(v)
            return v

        def records(df: pd.DataFrame) -> list[dict]:
            return [{k: clean(v) for k, v in r.items()} for r in df.to_dict(orient="records")]

        doc = {
            "selected": self.selected,
            "ranking": records(self.ranking),
            "folds": records(self.folds),
            "fold_rank_corr": clean(self.fold_rank_corr),
            "config": self.config.model_dump(),
        }
        return json.dumps(doc, indent=2)


def purge_mask(
    t0: np.ndarray, t1: np.ndarray, test_start: int, test_end: int, embargo_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """(overlap, embargoed) boolean masks over samples with label spans ``[t0, t1]``: ``overlap`` where the
    span intersects ``[test_start, test_end]``, ``embargoed`` where ``t0`` is in
    ``(test_end, test_end + embargo_ns]``."""
    t0 = np.asarray(t0, dtype=np.int64)
    t1 = np.asarray(t1, dtype=np.int64)
    overlap = (t0 <= test_end) & (t1 >= test_start)
    embargoed = (t0 > test_end) & (t0 <= test_end + embargo_ns)
    return overlap, embargoed


def make_folds(t0: np.ndarray, t1: np.ndarray, cfg: SelectionConfig) -> list[Fold]:
    """Purged folds over samples sorted by ``t0`` (see the module docstring)."""
    n = len(t0)
    t0 = np.asarray(t0, dtype=np.int64)
    t1 = np.asarray(t1, dtype=np.int64)
    if n and np.any(np.diff(t0) < 0):
        raise ValueError("make_folds: samples must be sorted by ts_event")
    bounds = np.linspace(0, n, cfg.n_folds + 2).astype(np.int64)
    pos = np.arange(n)
    folds = []
    for k in range(1, cfg.n_folds + 1):
        a, b = int(bounds[k]), int(bounds[k + 1])
        if b <= a:
            continue
        test = pos[a:b]
        start, end = int(t0[a]), int(t1[a:b].max())
        cand = pos < a if cfg.scheme == "walk_forward" else (pos < a) | (pos >= b)
        overlap, emb = purge_mask(t0, t1, start, end, round(cfg.embargo_s * NS))
        overlap &= cand
        emb &= cand & ~overlap
        train = pos[cand & ~overlap & ~emb]
        folds.append(Fold(k, train, test, int(overlap.sum()), int(emb.sum())))
    return folds


def _model(cfg: SelectionConfig):
    if cfg.model == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            n_estimators=cfg.n_estimators,
            learning_rate=0.05,
            num_leaves=15,
            min_child_samples=20,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=cfg.seed,
            n_jobs=1,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=cfg.n_estimators,
        min_samples_leaf=5,
        max_features="sqrt",
        random_state=cfg.seed,
        n_jobs=1,
    )


def _neg_log_loss(estimator, x, y) -> float:
    """Minus the multi-class log loss over the estimator's classes (the permutation-importance scorer)."""
    from sklearn.metrics import log_loss

    return -float(log_loss(y, estimator.predict_proba(x), labels=estimator.classes_))


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    with warnings.catch_warnings():  # a predicted class absent from the fold is not an error here
        warnings.simplefilter("ignore", UserWarning)
        from sklearn.metrics import balanced_accuracy_score

        return float(balanced_accuracy_score(y, pred))


def align(x: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Join features and labels on ``ts_event``. Equal-length frames with equal ``ts_event`` are joined by
    position; otherwise the k-th row at a timestamp in one joins the k-th row at it in the other."""
    for name, df, cols in (("X", x, ["ts_event"]), ("labels", labels, ["ts_event", "label", "t_touch"])):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"select_features: {name} lacks column(s) {missing}")
    lab = labels[["ts_event", "label", "t_touch"]].reset_index(drop=True)
    xx = x.reset_index(drop=True)
    if len(xx) == len(lab) and np.array_equal(xx["ts_event"].to_numpy(), lab["ts_event"].to_numpy()):
        return pd.concat([xx, lab[["label", "t_touch"]]], axis=1)
    xx = xx.assign(_k=xx.groupby("ts_event").cumcount())
    lab = lab.assign(_k=lab.groupby("ts_event").cumcount())
    return xx.merge(lab, on=["ts_event", "_k"], how="inner").drop(columns="_k")


def feature_columns(x: pd.DataFrame) -> list[str]:
    """Numeric columns of a feature matrix other than ts_event / ts_recv / valid."""
    return [
        c
        for c in x.columns
        if c not in _NON_FEATURES and c not in ("label", "t_touch") and pd.api.types.is_numeric_dtype(x[c])
    ]


def select_features(
    x: pd.DataFrame, labels: pd.DataFrame, cfg: SelectionConfig | None = None
) -> SelectionResult:
    """Rank the feature columns of ``x`` (ts_event + features + optional ``valid``) by out-of-sample
    permutation importance over purged walk-forward folds and keep ``cfg.n_keep`` (module docstring).
    ``labels`` has ts_event, label (+1/−1/0, NaN rows dropped) and t_touch, e.g. from triple_barrier."""
    cfg = cfg or SelectionConfig()
    feats = feature_columns(x)
    if not feats:
        raise ValueError("select_features: X has no numeric feature columns")
    df = align(x, labels)
    if "valid" in df.columns:
        df = df[df["valid"].astype(bool)]
    df = df[np.isfinite(df["label"].to_numpy(np.float64))]
    df = df.sort_values("ts_event", kind="stable").reset_index(drop=True)
    if cfg.sample_every_s > 0 and len(df):
        step = np.int64(round(cfg.sample_every_s * 1e9))
        bucket = df["ts_event"].to_numpy(np.int64) // step
        df = df[np.r_[True, bucket[1:] != bucket[:-1]]].reset_index(drop=True)  # first sample per step
    if len(df) < cfg.min_train_samples + cfg.n_folds:
        raise ValueError(
            f"select_features: {len(df)} valid labelled samples, need at least "
            f"{cfg.min_train_samples + cfg.n_folds} (min_train_samples + n_folds)"
        )
    xm = df[feats].to_numpy(np.float64, copy=True)
    xm[~np.isfinite(xm)] = np.nan
    xf = pd.DataFrame(xm, columns=feats)
    y = df["label"].to_numpy(np.float64).astype(np.int64)
    t0 = df["ts_event"].to_numpy(np.int64)
    t1 = df["t_touch"].to_numpy(np.int64)

    rows, imps = [], {}
    for fold in make_folds(t0, t1, cfg):
        info: dict[str, Any] = {
            "fold": fold.k,
            "n_train": int(fold.train.size),
            "n_test": int(fold.test.size),
            "n_purged": fold.n_purged,
            "n_embargoed": fold.n_embargoed,
            "test_start": int(t0[fold.test[0]]),
            "test_end": int(t1[fold.test].max()),
        }
        ytr = y[fold.train]
        classes = np.unique(ytr)
        if fold.train.size < cfg.min_train_samples or classes.size < 2:
            log.info(
                "select_features: fold %d skipped (%d training samples, classes %s)",
                fold.k,
                fold.train.size,
                classes.tolist(),
            )
            rows.append({**info, "skipped": True})
            continue
        test = fold.test[np.isin(y[fold.test], classes)]  # a class unseen in training cannot be scored
        model = _model(cfg).fit(xf.iloc[fold.train], ytr)
        xte, yte = xf.iloc[test], y[test]
        prior = np.array([np.mean(ytr == c) for c in model.classes_])
        score = _neg_log_loss(model, xte, yte)
        from sklearn.inspection import permutation_importance
        from sklearn.metrics import log_loss

        base = -float(log_loss(yte, np.tile(prior, (yte.size, 1)), labels=model.classes_))
        sub = np.unique(np.linspace(0, test.size - 1, min(test.size, cfg.max_importance_rows)).astype(int))
        pi = permutation_importance(
            model,
            xte.iloc[sub],
            yte[sub],
            scoring=_neg_log_loss,
            n_repeats=cfg.n_repeats,
            random_state=cfg.seed,
            n_jobs=1,
        )
        imps[fold.k] = pi.importances_mean
        rows.append(
            {
                **info,
                "skipped": False,
                "n_scored": int(test.size),
                "log_loss": -score,
                "log_loss_prior": -base,
                "balanced_accuracy": _balanced_accuracy(yte, model.predict(xte)),
            }
        )
        log.info("select_features: fold %d log loss %.4f (prior %.4f)", fold.k, -score, -base)
    if not imps:
        raise ValueError("select_features: every fold was skipped (too few training samples or one class)")
    imp = pd.DataFrame(imps, index=feats).T  # fold x feature
    return _rank(imp, pd.DataFrame(rows), cfg)


def _rank(imp: pd.DataFrame, folds: pd.DataFrame, cfg: SelectionConfig) -> SelectionResult:
    keep = min(cfg.n_keep, imp.shape[1])
    fold_rank = imp.rank(axis=1, ascending=False, method="first")
    top = (fold_rank <= keep) & (imp > 0)
    mean = imp.mean(axis=0)
    ranking = pd.DataFrame(
        {
            "feature": imp.columns,
            "mean_importance": mean.to_numpy(),
            "std": imp.std(axis=0, ddof=0).to_numpy(),
            "stability": top.mean(axis=0).to_numpy(),
        }
    )
    ranking["score"] = ranking["mean_importance"] * ranking["stability"]
    ranking = ranking.sort_values(
        ["score", "mean_importance", "feature"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)
    ranking["rank"] = np.arange(1, len(ranking) + 1)
    corr = float("nan")
    if len(imp) >= 2:
        c = imp.T.rank().corr().to_numpy()
        corr = float(np.nanmean(c[np.triu_indices_from(c, k=1)]))
    return SelectionResult(
        ranking=ranking,
        selected=ranking["feature"].head(keep).tolist(),
        folds=folds,
        fold_rank_corr=corr,
        config=cfg,
        importances=imp,
    )
