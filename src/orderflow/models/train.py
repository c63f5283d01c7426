"""Training orchestration: features -> triple-barrier labels -> purged walk-forward evaluation of every
member, both baselines and the Hedge ensemble -> final members -> ONNX bundle -> registry version.

Honesty rules kept here:

- every reported metric is out of sample: on each walk-forward fold, members are fitted on the fold's
  purged training samples (the last ``val_frac`` of them held out for early stopping and calibration)
  and scored on the fold's test samples only;
- the ensemble's prediction on fold k uses weights learnt from folds < k only (Hedge updates happen
  after a fold's labels are known), so the ensemble is out of sample too;
- every member and the ensemble sit next to two baselines (majority class, logistic regression on
  best-level OFI) on the same test samples.

The final bundle is fitted on every sample (the last ``val_frac`` for early stopping and calibration);
its weights are the ensemble's weights after the last fold.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orderflow.features.config import LabelConfig
from orderflow.features.labels import triple_barrier
from orderflow.features.ofi import mid_price
from orderflow.models.base import Member, member_inputs
from orderflow.models.baselines import LogisticOFI, MajorityClass
from orderflow.models.calibration import VectorScaling, effective_n
from orderflow.models.config import ALL_MEMBERS, ModelsConfig
from orderflow.models.dataset import Dataset, folds, make_dataset, split_train_val
from orderflow.models.ensemble import HedgeEnsemble
from orderflow.models.expert import LightGBMExpert, RandomForestExpert
from orderflow.models.metrics import METRICS, classification_metrics
from orderflow.models.registry import (
    BundleManifest,
    EnsembleEntry,
    MemberEntry,
    TrainingWindow,
    code_version,
    write_manifest,
)

log = logging.getLogger(__name__)


def make_member(name: str, cfg: ModelsConfig, mid: np.ndarray | None = None) -> Member:
    """A fresh, untrained member. ``mid`` (the mid of every dataset row) is needed by ``ppo`` only."""
    from orderflow.models.nets_train import NetMember
    from orderflow.models.rl import PolicyMember

    if name == "expert_rf":
        return RandomForestExpert(cfg.expert)
    if name == "expert_lgbm":
        return LightGBMExpert(cfg.expert)
    if name in ("lstm", "transformer", "cnn"):
        return NetMember(getattr(cfg, name))
    if name == "ppo":
        if mid is None:
            raise ValueError("member 'ppo' needs the mid price of every dataset row")
        return PolicyMember(cfg=cfg.rl, mid=mid)
    raise ValueError(f"unknown member {name!r}; known: {', '.join(ALL_MEMBERS)}")


@dataclass
class TrainResult:
    bundle_dir: Path
    metrics: dict[str, Any]  # {"members": {name: {metric: [per fold]}}, "ensemble": ..., "baselines": ...}
    folds: pd.DataFrame  # one row per (fold, model)
    weights: dict[str, float]
    dataset_info: dict[str, Any]
    seconds: float
    version: str | None = None
    notes: list[str] = field(default_factory=list)


def labelled_dataset(
    features: pd.DataFrame, book: pd.DataFrame, labels_cfg: LabelConfig, sample_every_s: float
) -> tuple[Dataset, np.ndarray]:
    """Triple-barrier labels on the mid at every feature row, joined into a :class:`Dataset`; also the
    mid at every dataset row (the last book state at or before the row's time)."""
    book_ts = book["ts_event"].to_numpy()
    mid = mid_price(book["bid_px_1"].to_numpy(), book["ask_px_1"].to_numpy())
    feat_ts = features["ts_event"].to_numpy()
    labels = triple_barrier(book_ts, mid, feat_ts, labels_cfg, by="ts")
    row_mid = mid[np.clip(np.searchsorted(book_ts, feat_ts, side="right") - 1, 0, len(mid) - 1)]
    return make_dataset(features, labels, sample_every_s), row_mid


def _fit_predict(
    m: Member, ds: Dataset, fit_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray | None
) -> tuple[VectorScaling, np.ndarray | None]:
    m.fit(ds, fit_idx, val_idx)
    raw_val = m.predict_proba_raw(member_inputs(m, ds, val_idx))
    n_eff = effective_n(ds.sample_ts[val_idx], ds.t_touch[val_idx])
    calib = VectorScaling().fit(raw_val, ds.y[val_idx], n_eff=n_eff)
    if test_idx is None:
        return calib, None
    return calib, calib.apply(m.predict_proba_raw(member_inputs(m, ds, test_idx)))


def train_models(
    ds: Dataset,
    cfg: ModelsConfig,
    bundle_dir: Path,
    data_source: str,
    progress: Callable[[str], None] | None = None,
    mid: np.ndarray | None = None,
) -> TrainResult:
    """Walk-forward evaluation, then the final members exported as an ONNX bundle in ``bundle_dir``."""
    t_start = time.perf_counter()
    say = progress or (lambda s: log.info("%s", s))
    fold_list = [f for f in folds(ds, cfg, n_folds=cfg.n_folds) if f.train.size and f.test.size]
    ens = HedgeEnsemble(list(cfg.members), cfg.ensemble)
    rows: list[dict[str, Any]] = []
    for fold in fold_list:
        if np.unique(ds.y[fold.train]).size < 2 or fold.train.size < 50:
            say(f"fold {fold.k}: skipped ({fold.train.size} training samples)")
            continue
        fit_idx, val_idx = split_train_val(ds, fold.train, cfg.val_frac)
        test, y = fold.test, ds.y[fold.test]
        info = {
            "fold": fold.k,
            "n_fit": int(fit_idx.size),
            "n_val": int(val_idx.size),
            "n_test": int(test.size),
        }
        probs: dict[str, np.ndarray] = {}
        for name in cfg.members:
            t0 = time.perf_counter()
            _, p = _fit_predict(make_member(name, cfg, mid), ds, fit_idx, val_idx, test)
            assert p is not None
            probs[name] = p
            rows.append({**info, "model": name, "role": "member", **classification_metrics(p, y)})
            say(
                f"fold {fold.k}: {name} log loss {rows[-1]['log_loss']:.4f} "
                f"({time.perf_counter() - t0:.1f} s)"
            )
        for b in (MajorityClass(), LogisticOFI()):
            _, p = _fit_predict(b, ds, fit_idx, val_idx, test)
            assert p is not None
            rows.append({**info, "model": b.name, "role": "baseline", **classification_metrics(p, y)})
        p_ens = ens.predict(probs)  # weights learnt on earlier folds only
        rows.append({**info, "model": "ensemble", "role": "ensemble", **classification_metrics(p_ens, y)})
        say(f"fold {fold.k}: ensemble log loss {rows[-1]['log_loss']:.4f}, weights {ens.weight_of()}")
        ens.update(probs, y)  # fold k's labels are known once fold k is over
    table = pd.DataFrame(rows)
    metrics = _metrics_dict(table)

    # final members on every sample; the newest val_frac for early stopping and calibration
    say("final fit on every sample")
    weights = ens.weight_of()
    fit_bundle(ds, cfg, bundle_dir, data_source, weights, metrics, mid)
    info = {
        "samples": ds.n_samples,
        "rows": int(ds.X.shape[0]),
        "features": len(ds.feature_names),
        "class_counts": np.bincount(ds.y, minlength=3).tolist(),
        "folds": len(fold_list),
    }
    return TrainResult(bundle_dir, metrics, table, weights, info, time.perf_counter() - t_start)


def fit_bundle(
    ds: Dataset,
    cfg: ModelsConfig,
    bundle_dir: Path,
    data_source: str,
    weights: dict[str, float],
    metrics: dict[str, Any] | None = None,
    mid: np.ndarray | None = None,
) -> BundleManifest:
    """Fit every member on all samples of ``ds`` (the newest ``val_frac`` held out for early stopping and
    calibration), export each to ONNX in ``bundle_dir`` and write the manifest with ``weights``."""
    all_idx = np.arange(ds.n_samples)
    fit_idx, val_idx = split_train_val(ds, all_idx, cfg.val_frac)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in cfg.members:
        m = make_member(name, cfg, mid)
        calib, _ = _fit_predict(m, ds, fit_idx, val_idx, None)
        onnx_file = f"{name}.onnx"
        m.export_onnx(bundle_dir / onnx_file)
        entries.append(
            MemberEntry(
                name=name,
                input_kind=m.input_kind,
                seq_len=int(m.seq_len),
                feature_names=list(m.feature_names),
                onnx=onnx_file,
                calibration=calib.to_dict(),
            )
        )
    manifest = BundleManifest(
        feature_names=list(ds.feature_names),
        schema_hash=ds.schema_hash,
        members=entries,
        ensemble=EnsembleEntry(weights=weights, floor=cfg.ensemble.floor, cap=cfg.ensemble.cap),
        training_window=TrainingWindow(start_ns=int(ds.sample_ts[0]), end_ns=int(ds.t_touch.max())),
        data_source=data_source,
        hyperparameters=json.loads(cfg.model_dump_json()),
        metrics=metrics or {},
        code_version=code_version(),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    write_manifest(bundle_dir, manifest)
    return manifest


def _metrics_dict(table: pd.DataFrame) -> dict[str, Any]:
    """Per-fold metric lists in the layout the golden rule reads."""
    out: dict[str, Any] = {"members": {}, "baselines": {}, "ensemble": {}}
    if table.empty:
        return out
    for model, g in table.sort_values("fold").groupby("model", sort=False):
        role = g["role"].iloc[0]
        d = {m: [float(v) for v in g[m]] for m in METRICS}
        d["folds"] = [int(v) for v in g["fold"]]
        if role == "ensemble":
            out["ensemble"] = d
        elif role == "baseline":
            out["baselines"][model] = d
        else:
            out["members"][model] = d
    return out


def write_report(result: TrainResult, out_dir: Path, title: str) -> tuple[Path, Path]:
    """The evaluation report: JSON (every fold, every model) and a self-contained HTML page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "title": title,
        "version": result.version,
        "dataset": result.dataset_info,
        "weights": result.weights,
        "seconds": round(result.seconds, 1),
        "metrics": result.metrics,
        "folds": json.loads(result.folds.to_json(orient="records")),
        "notes": result.notes,
    }
    jpath = out_dir / "report.json"
    jpath.write_text(json.dumps(doc, indent=1))
    summary = summary_table(result.folds)
    html = [
        "<!doctype html><html><head><meta charset='utf-8'><title>orderflow models report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}"
        "</style></head><body>",
        f"<h1>{title}</h1>",
        f"<p>Version {result.version or '-'}; {result.dataset_info}; trained in {result.seconds:.0f} s. "
        "Every figure is out of sample (purged walk-forward folds); the ensemble on fold k uses weights "
        "learnt on earlier folds only. Baselines: majority class and logistic regression on "
        "best-level OFI.</p>",
        "<h2>Mean over folds</h2>",
        summary.to_html(float_format=lambda v: f"{v:.4f}"),
        "<h2>Every fold</h2>",
        result.folds.to_html(index=False, float_format=lambda v: f"{v:.4f}"),
        f"<h2>Ensemble weights</h2><p>{result.weights}</p>",
        *(f"<p>Note: {n}</p>" for n in result.notes),
        "</body></html>",
    ]
    hpath = out_dir / "report.html"
    hpath.write_text("\n".join(html))
    return jpath, hpath


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return pd.DataFrame()
    cols = [
        c
        for c in ("log_loss", "brier", "accuracy", "balanced_accuracy", "auc_macro_ovr", "ece")
        if c in table
    ]
    return table.groupby(["role", "model"])[cols].mean().sort_index()
