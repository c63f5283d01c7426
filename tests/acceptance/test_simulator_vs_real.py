"""Acceptance: the simulator's OFI price impact falls inside the range measured on real recordings.

The range is measured here, with the same `orderflow data facts` code, on the four real files the
stylized-facts table in docs/results.md compares against (nothing hard-coded): the 1 s and 10 s R^2 of
the mid change on normalised OFI, best level and 5-level, of a 1-hour simulation (seeds 1 and 2) must
lie within [min, max] of the real files.
"""

from __future__ import annotations

import json

import pytest

from orderflow.cli import main

pytestmark = pytest.mark.shared_data
REAL = [
    "usdm/btcusdt_20240808.gz",
    "usdm/ethusdt_20240808.gz",
    "usdm/btcusdt_20240718.gz",
    "spot/btcusdt_20240808.gz",
]
KEYS = ["ofi_1s_r2_best", "ofi_1s_r2_5level", "ofi_10s_r2_best", "ofi_10s_r2_5level"]


def _facts(capsys, argv) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_simulator_ofi_r2_inside_real_range(shared_data, tmp_path, capsys):
    base = shared_data / "hftbacktest_binance_raw"
    real = [_facts(capsys, ["data", "facts", str(base / f), "--json"]) for f in REAL]
    lo = {k: min(r[k] for r in real) for k in KEYS}
    hi = {k: max(r[k] for r in real) for k in KEYS}
    assert 0.15 < lo["ofi_1s_r2_best"] < hi["ofi_1s_r2_best"] < 0.7  # the measurement itself is sane
    for seed in (1, 2):
        store = str(tmp_path / f"s{seed}")
        assert main(["data", "simulate", "--hours", "1", "--seed", str(seed), "--store", store]) == 0
        capsys.readouterr()
        sim = _facts(capsys, ["data", "facts", "sim/BTCUSDT", "--store", store, "--json"])
        for k in KEYS:
            assert lo[k] <= sim[k] <= hi[k], (
                f"seed {seed}: {k} = {sim[k]:.3f} outside real [{lo[k]:.3f}, {hi[k]:.3f}]"
            )
        assert sim["spread_1tick_share"] > 0.95
        assert sim["ret_1s_kurtosis"] > 6  # heavy tails
