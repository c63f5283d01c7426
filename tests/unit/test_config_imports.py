"""The configuration is light: loading it imports none of the heavy numeric or ML libraries."""

from __future__ import annotations

import subprocess
import sys

# compiled kernels, indicators, networks, the store's engine, the learners, ONNX serving, tracking
HEAVY = ("numba", "talib", "torch", "duckdb", "sklearn", "lightgbm", "onnxruntime", "mlflow")


def test_loading_the_configuration_imports_no_heavy_library():
    code = (
        "import sys\n"
        "import orderflow.config\n"
        "orderflow.config.load_config(orderflow.config.REPO_CONFIG_DIR, environ={})\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"orderflow.config imports {out.stdout.strip()}"
