"""The two baselines every reported metric sits next to.

- :class:`MajorityClass`: the training class frequencies, predicted for every sample (so its log loss
  is the entropy of the training prior on the test labels; its accuracy is the majority class share).
- :class:`LogisticOFI`: a multinomial logistic regression on best-level order-flow imbalance alone,
  the 1 s sum of level-1 OFI (``ofi_l1_1s``) and its z-score (``ofi_l1_z_1s``), with missing values
  imputed by training medians and standardised, all inside one sklearn pipeline so the ONNX graph
  does the same.

Both are tabular :class:`~orderflow.models.base.Member` s with ONNX exports.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from orderflow.models.base import N_CLASSES, ONNX_OPSET, save_onnx, with_probs_output
from orderflow.models.dataset import Dataset

log = logging.getLogger(__name__)

OFI_BASELINE_FEATURES = ["ofi_l1_1s", "ofi_l1_z_1s"]


def _check_x(name: str, x: np.ndarray, n_features: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(f"{name}: input must have shape (n, {n_features}), got {x.shape}")
    return x


class MajorityClass:
    """Predicts the training class frequencies for every sample."""

    input_kind = "tabular"
    seq_len = 1

    def __init__(self, feature_names: list[str] | None = None, name: str = "baseline_majority") -> None:
        self.name = name
        self.feature_names = list(feature_names or OFI_BASELINE_FEATURES)
        self.prior: np.ndarray | None = None

    def fit(self, ds: Dataset, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
        y = ds.y[np.asarray(train_idx, dtype=np.int64)]
        if y.size == 0:
            raise ValueError(f"{self.name}: no training samples")
        self.prior = (np.bincount(y, minlength=N_CLASSES) / y.size).astype(np.float32)

    def _fitted(self) -> np.ndarray:
        if self.prior is None:
            raise RuntimeError(f"{self.name}: not fitted")
        return self.prior

    def predict_proba_raw(self, x: np.ndarray) -> np.ndarray:
        x = _check_x(self.name, x, len(self.feature_names))
        return np.tile(self._fitted(), (x.shape[0], 1))

    def export_onnx(self, path: Path) -> None:
        """probs = Expand(prior (1, 3), [n, 3]) with n read from the input's shape."""
        from onnx import TensorProto, helper, numpy_helper

        prior = self._fitted().reshape(1, N_CLASSES)
        inits = [
            numpy_helper.from_array(prior, "prior"),
            numpy_helper.from_array(np.array([0], np.int64), "zero"),
            numpy_helper.from_array(np.array([1], np.int64), "one"),
            numpy_helper.from_array(np.array([N_CLASSES], np.int64), "ncls"),
        ]
        nodes = [
            helper.make_node("Shape", ["x"], ["xshape"]),
            helper.make_node("Slice", ["xshape", "zero", "one"], ["n"]),
            helper.make_node("Concat", ["n", "ncls"], ["oshape"], axis=0),
            helper.make_node("Expand", ["prior", "oshape"], ["probs"]),
        ]
        graph = helper.make_graph(
            nodes,
            self.name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, len(self.feature_names)])],
            [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, N_CLASSES])],
            inits,
        )
        save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)]), path)


class LogisticOFI:
    """Multinomial logistic regression on best-level OFI (module docstring)."""

    input_kind = "tabular"
    seq_len = 1

    def __init__(
        self, feature_names: list[str] | None = None, c: float = 1.0, name: str = "baseline_logistic_ofi"
    ) -> None:
        self.name = name
        self.feature_names = list(feature_names or OFI_BASELINE_FEATURES)
        self.c = c
        self.pipe = None
        self.classes: np.ndarray | None = None

    def fit(self, ds: Dataset, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        idx = np.asarray(train_idx, dtype=np.int64)
        x = ds.tabular(idx)[:, ds.columns(self.feature_names)]
        y = ds.y[idx]
        if np.unique(y).size < 2:
            raise ValueError(f"{self.name}: training labels have one class only ({np.unique(y).tolist()})")
        self.pipe = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
                ("logit", LogisticRegression(C=self.c, max_iter=1000)),
            ]
        ).fit(x, y)
        self.classes = self.pipe.classes_.astype(np.int64)

    def predict_proba_raw(self, x: np.ndarray) -> np.ndarray:
        from orderflow.models.base import expand_classes

        if self.pipe is None:
            raise RuntimeError(f"{self.name}: not fitted")
        x = _check_x(self.name, x, len(self.feature_names))
        return expand_classes(self.pipe.predict_proba(x), self.classes)

    def export_onnx(self, path: Path) -> None:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        if self.pipe is None:
            raise RuntimeError(f"{self.name}: not fitted")
        onx = convert_sklearn(
            self.pipe,
            initial_types=[("x", FloatTensorType([None, len(self.feature_names)]))],
            options={id(self.pipe.steps[-1][1]): {"zipmap": False}},
            target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3},
        )
        save_onnx(with_probs_output(onx, "probabilities", self.classes), path)
