"""Model bundles for tests: a small sklearn model exported to ONNX, registered like a trained one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orderflow.models.registry import BundleManifest, EnsembleEntry, MemberEntry, write_manifest

FEATURES = ["ofi_l1", "cvd_1s", "spread_bps"]
METRICS = {
    "ensemble": {"log_loss": [0.95, 0.96, 0.94], "ece": [0.02, 0.02, 0.02]},
    "baselines": {"majority": {"log_loss": [1.09, 1.09, 1.09]}},
}


def lr_bundle(d: Path, sign: float, features: list[str] = FEATURES, schema: str = "schema-A") -> Path:
    """A bundle holding one sklearn LogisticRegression exported to ONNX (output "probs")."""
    import onnx
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    d.mkdir(parents=True)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, len(features))).astype(np.float32)
    clf = LogisticRegression(max_iter=500).fit(x, np.digitize(sign * x[:, 0], [-0.4, 0.4]))
    model = to_onnx(
        clf,
        initial_types=[("x", FloatTensorType([None, len(features)]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    for node in model.graph.node:
        node.output[:] = ["probs" if o == "probabilities" else o for o in node.output]
    for out in model.graph.output:
        out.name = "probs" if out.name == "probabilities" else out.name
    model.ir_version = min(model.ir_version, 9)
    onnx.save(model, str(d / "lr.onnx"))
    member = MemberEntry(name="lr", input_kind="tabular", feature_names=features, onnx="lr.onnx")
    manifest = BundleManifest(
        feature_names=features,
        schema_hash=schema,
        members=[member],
        ensemble=EnsembleEntry(weights={"lr": 1.0}),
        metrics=METRICS,
    )
    write_manifest(d, manifest)
    return d
