"""The OFI expert: a random forest and a LightGBM model on the order-flow feature groups.

Both members read the registry's ``ofi`` and ``cvd`` groups (``ExpertConfig.groups``), one row per
sample. Missing values: the forest imputes training medians inside an sklearn pipeline (so the ONNX
graph imputes the same way); LightGBM handles NaN natively (its ONNX trees route missing values the
same way). Configurations are small and deterministic (fixed seeds, one thread).

ONNX: skl2onnx converts the forest pipeline and onnxmltools the LightGBM model, both without ZipMap;
a final MatMul maps the classifier's probability columns onto the classes (-1, 0, +1) as the output
``probs`` (a class missing from the training labels gets probability 0 in both paths).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from orderflow.models.base import ONNX_OPSET, expand_classes, save_onnx, with_probs_output
from orderflow.models.config import ExpertConfig
from orderflow.models.dataset import Dataset

log = logging.getLogger(__name__)

LGBM_OPSET = 15  # the highest opset onnxmltools' LightGBM converter supports


def expert_feature_names(ds_names: list[str], groups: tuple[str, ...] = ("ofi", "cvd")) -> list[str]:
    """The dataset columns whose registry group is in ``groups``, in dataset order."""
    from orderflow.features.config import FeatureConfig
    from orderflow.features.registry import default_specs

    group_of = {s.name: s.group for s in default_specs(FeatureConfig())}
    names = [n for n in ds_names if group_of.get(n) in groups]
    if not names:
        raise ValueError(f"expert: no dataset column belongs to the feature groups {list(groups)}")
    return names


def _xy(ds: Dataset, idx: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    idx = np.asarray(idx, dtype=np.int64)
    return ds.tabular(idx)[:, ds.columns(names)], ds.y[idx]


class _TabularExpert:
    input_kind = "tabular"
    seq_len = 1
    name = "expert"

    def __init__(self, cfg: ExpertConfig | None = None, feature_names: list[str] | None = None) -> None:
        self.cfg = cfg or ExpertConfig()
        self.feature_names: list[str] = list(feature_names or [])
        self.model = None
        self.classes: np.ndarray | None = None

    def _prepare(self, ds: Dataset, train_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.feature_names:
            self.feature_names = expert_feature_names(ds.feature_names, self.cfg.groups)
        x, y = _xy(ds, train_idx, self.feature_names)
        if y.size == 0 or np.unique(y).size < 2:
            raise ValueError(f"{self.name}: training labels need two classes, got {np.unique(y).tolist()}")
        return x, y

    def _check(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.name}: not fitted")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(
                f"{self.name}: input must have shape (n, {len(self.feature_names)}), got {x.shape}"
            )
        return x

    def predict_proba_raw(self, x: np.ndarray) -> np.ndarray:
        x = self._check(x)
        return expand_classes(self.model.predict_proba(x), self.classes)  # type: ignore[union-attr]


class RandomForestExpert(_TabularExpert):
    """Random forest on the OFI/CVD features, training medians imputed for NaN."""

    name = "expert_rf"

    def fit(self, ds: Dataset, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline

        x, y = self._prepare(ds, train_idx)
        c = self.cfg
        rf = RandomForestClassifier(
            n_estimators=c.rf_n_estimators,
            max_depth=c.rf_max_depth,
            min_samples_leaf=c.rf_min_samples_leaf,
            max_features=c.rf_max_features,
            random_state=c.seed,
            n_jobs=c.n_jobs,
        )
        self.model = Pipeline(
            [("impute", SimpleImputer(strategy="median", keep_empty_features=True)), ("rf", rf)]
        ).fit(x, y)
        self.classes = self.model.classes_.astype(np.int64)
        log.info("%s: fitted on %d samples, %d features", self.name, y.size, x.shape[1])

    def export_onnx(self, path: Path) -> None:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        self._check(np.zeros((0, len(self.feature_names)), np.float32))
        onx = convert_sklearn(
            self.model,
            initial_types=[("x", FloatTensorType([None, len(self.feature_names)]))],
            options={id(self.model.steps[-1][1]): {"zipmap": False}},  # type: ignore[union-attr]
            target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3},
        )
        save_onnx(with_probs_output(onx, "probabilities", self.classes), path)


class LightGBMExpert(_TabularExpert):
    """LightGBM on the OFI/CVD features (native NaN handling), early-stopped on the validation fold."""

    name = "expert_lgbm"

    def fit(self, ds: Dataset, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
        import lightgbm as lgb

        x, y = self._prepare(ds, train_idx)
        c = self.cfg
        self.model = lgb.LGBMClassifier(
            n_estimators=c.lgbm_n_estimators,
            learning_rate=c.lgbm_learning_rate,
            num_leaves=c.lgbm_num_leaves,
            min_child_samples=c.lgbm_min_child_samples,
            subsample=c.lgbm_subsample,
            subsample_freq=1,
            colsample_bytree=c.lgbm_colsample,
            reg_lambda=c.lgbm_reg_lambda,
            random_state=c.seed,
            n_jobs=c.n_jobs,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
        kw: dict = {}
        val_idx = np.asarray(val_idx, dtype=np.int64)
        if c.early_stopping_rounds and val_idx.size:
            xv, yv = _xy(ds, val_idx, self.feature_names)
            seen = np.isin(yv, np.unique(y))  # a class unseen in training cannot be scored
            if seen.any():
                kw = {
                    "eval_X": (xv[seen],),
                    "eval_y": (yv[seen],),
                    "callbacks": [lgb.early_stopping(c.early_stopping_rounds, verbose=False)],
                }
        self.model.fit(x, y, **kw)
        self.classes = self.model.classes_.astype(np.int64)
        log.info(
            "%s: fitted on %d samples, %d features, %s rounds",
            self.name,
            y.size,
            x.shape[1],
            self.model.best_iteration_ or c.lgbm_n_estimators,
        )

    def export_onnx(self, path: Path) -> None:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        self._check(np.zeros((0, len(self.feature_names)), np.float32))
        onx = convert_lightgbm(
            self.model,
            initial_types=[("x", FloatTensorType([None, len(self.feature_names)]))],
            target_opset=LGBM_OPSET,
            zipmap=False,
        )
        save_onnx(with_probs_output(onx, "probabilities", self.classes), path)


def expert_members(cfg: ExpertConfig | None = None) -> list[_TabularExpert]:
    """The two expert members (random forest, LightGBM), unfitted."""
    return [RandomForestExpert(cfg), LightGBMExpert(cfg)]
