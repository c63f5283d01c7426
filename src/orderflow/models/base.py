"""The ensemble member protocol and small helpers shared by every model.

A member reads its own columns (``feature_names``, a subset of the dataset's) in one of two ways:

- ``input_kind == "tabular"``: one row per sample, ``x`` of shape (n, f);
- ``input_kind == "stream"``: a causal, stateful network fed consecutive feature rows; its input is a
  :class:`StreamInput` (the rows from a start row up to the last sample, and the positions of the
  samples among them), and it scores every row while carrying its state (see
  :mod:`orderflow.models.nets`). ``context_rows`` rows are streamed before the first sample.

``predict_proba_raw`` returns uncalibrated (n, 3) probabilities of the classes (-1, 0, +1); its ONNX
export has input ``x`` (float32) and output ``probs`` (float32) equal to it (stream members also take
and return their state tensors). Calibration is applied afterwards, in numpy, on both paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from orderflow.models.calibration import VectorScaling
    from orderflow.models.dataset import Dataset

N_CLASSES = 3
ONNX_IR_VERSION = 10  # ONNX Runtime 1.31 refuses newer IR versions
ONNX_OPSET = 17


@runtime_checkable
class Member(Protocol):
    """An ensemble member (module docstring)."""

    name: str  # "expert_rf", "expert_lgbm", "lstm", "transformer", "cnn", "ppo", ...
    input_kind: str  # "tabular" or "stream"
    seq_len: int  # rows of history one prediction reads: 1 for tabular
    feature_names: list[str]

    def fit(self, ds: Dataset, train_idx: np.ndarray, val_idx: np.ndarray) -> None: ...

    def predict_proba_raw(self, x: Any) -> np.ndarray: ...  # ndarray (tabular) or StreamInput

    def export_onnx(self, path: Path) -> None: ...


@dataclass(frozen=True)
class StreamInput:
    """Input of a stream member: consecutive feature rows (m, f) float32 and the positions ``at`` (k,)
    of the rows to score among them (ascending); the state starts at zero at row 0."""

    rows: np.ndarray
    at: np.ndarray

    def __len__(self) -> int:
        return int(self.at.size)


def member_inputs(member: Member, ds: Dataset, idx: np.ndarray) -> np.ndarray | StreamInput:
    """The inputs of ``member`` for samples ``idx`` of ``ds``, restricted to ``member.feature_names`` in
    order: (n, f) rows for tabular members; for stream members a :class:`StreamInput` over the rows from
    ``context_rows`` before the first sample to the last one."""
    cols = ds.columns(list(member.feature_names))
    if member.input_kind == "tabular":
        return np.ascontiguousarray(ds.tabular(idx)[:, cols])
    if member.input_kind == "stream":
        rows = ds.sample_idx[np.asarray(idx, dtype=np.int64)]
        if rows.size and np.any(np.diff(rows) < 0):
            raise ValueError(f"member {member.name!r}: stream samples must be in time order")
        if rows.size == 0:
            return StreamInput(np.zeros((0, cols.size), np.float32), np.zeros(0, np.int64))
        start = max(0, int(rows[0]) - int(getattr(member, "context_rows", 0)))
        x = np.ascontiguousarray(ds.X[start : int(rows[-1]) + 1][:, cols], dtype=np.float32)
        return StreamInput(x, rows - start)
    raise ValueError(f"member {member.name!r}: unknown input_kind {member.input_kind!r}")


def predict_proba(member: Member, calib: VectorScaling | None, x: np.ndarray | StreamInput) -> np.ndarray:
    """Calibrated probabilities: ``calib.apply(member.predict_proba_raw(x))`` (raw when no calib)."""
    raw = member.predict_proba_raw(x)
    return raw if calib is None else calib.apply(raw)


def expand_classes(probs: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(n, 3) float32 probabilities from a classifier's (n, k) output over ``classes`` (a subset of
    0, 1, 2): classes it never saw get probability 0."""
    return (np.asarray(probs, dtype=np.float64) @ class_map(classes)).astype(np.float32)


def class_map(classes: np.ndarray) -> np.ndarray:
    """(k, 3) float32 0/1 matrix sending a classifier's k probability columns to columns 0, 1, 2."""
    classes = np.asarray(classes, dtype=np.int64)
    if classes.size == 0 or classes.min() < 0 or classes.max() >= N_CLASSES:
        raise ValueError(f"class_map: classes must lie in 0..{N_CLASSES - 1}, got {classes.tolist()}")
    m = np.zeros((classes.size, N_CLASSES), dtype=np.float32)
    m[np.arange(classes.size), classes] = 1.0
    return m


def save_onnx(model: object, path: Path) -> None:
    """Check an ``onnx.ModelProto``, set an IR version ONNX Runtime 1.31 accepts and write it."""
    import onnx

    model.ir_version = min(int(model.ir_version), ONNX_IR_VERSION)  # type: ignore[attr-defined]
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))


def onnx_session(path: Path):
    """An ONNX Runtime inference session on one CPU thread."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(path_or_session, x: np.ndarray) -> np.ndarray:
    """Output ``probs`` of an exported member for inputs ``x`` (cast to float32)."""
    sess = onnx_session(path_or_session) if isinstance(path_or_session, str | Path) else path_or_session
    return sess.run(["probs"], {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]


def with_probs_output(model: object, prob_output: str, classes: np.ndarray) -> object:
    """Finish a converted classifier graph: append ``probs = MatMul(prob_output, class_map(classes))``
    (float32 (n, 3) over the classes -1, 0, +1, zeros for classes never seen in training) and make
    ``probs`` the only graph output. Returns the same ``onnx.ModelProto``."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph  # type: ignore[attr-defined]
    if prob_output not in [o.name for o in g.output]:
        raise ValueError(f"with_probs_output: graph has no output {prob_output!r}")
    g.initializer.append(numpy_helper.from_array(class_map(classes), name="class_map"))
    g.node.append(helper.make_node("MatMul", [prob_output, "class_map"], ["probs"], name="to_probs"))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, N_CLASSES]))
    return model
