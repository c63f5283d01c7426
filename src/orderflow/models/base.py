"""The ensemble member protocol and small helpers shared by every model.

A member reads its own columns (``feature_names``, a subset of the dataset's) either as one row per
sample (``input_kind == "tabular"``, ``x`` of shape (n, f)) or as the last ``seq_len`` rows up to the
sample (``"sequence"``, (n, seq_len, f)). ``predict_proba_raw`` returns uncalibrated (n, 3)
probabilities of the classes (-1, 0, +1); its ONNX export has input ``x`` (float32) and output
``probs`` (float32, (n, 3)) equal to it. Calibration is applied afterwards, in numpy, on both paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

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
    input_kind: str  # "tabular" or "sequence"
    seq_len: int  # 1 for tabular
    feature_names: list[str]

    def fit(self, ds: Dataset, train_idx: np.ndarray, val_idx: np.ndarray) -> None: ...

    def predict_proba_raw(self, x: np.ndarray) -> np.ndarray: ...

    def export_onnx(self, path: Path) -> None: ...


def member_inputs(member: Member, ds: Dataset, idx: np.ndarray) -> np.ndarray:
    """The inputs of ``member`` for samples ``idx`` of ``ds``: (n, f) rows for tabular members,
    (n, seq_len, f) windows for sequence members, restricted to ``member.feature_names`` in order."""
    cols = ds.columns(list(member.feature_names))
    if member.input_kind == "tabular":
        return np.ascontiguousarray(ds.tabular(idx)[:, cols])
    if member.input_kind == "sequence":
        return np.ascontiguousarray(ds.sequences(idx, int(member.seq_len))[:, :, cols])
    raise ValueError(f"member {member.name!r}: unknown input_kind {member.input_kind!r}")


def predict_proba(member: Member, calib: VectorScaling | None, x: np.ndarray) -> np.ndarray:
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
