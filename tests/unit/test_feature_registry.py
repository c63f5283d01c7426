"""Feature registry: size, unique names, documentation, and agreement with the matrix columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from orderflow.features.batch import batch_features
from orderflow.features.config import FeatureConfig
from orderflow.features.engine import StreamingFeatureEngine
from orderflow.features.registry import default_specs, group_counts
from orderflow.features.spec import GROUPS

NS = 1_000_000_000


def test_default_set_has_at_least_128_documented_unique_features():
    specs = default_specs(FeatureConfig(tick_size=0.1))
    names = [s.name for s in specs]
    assert len(specs) >= 128
    assert len(set(names)) == len(names)
    for s in specs:
        assert s.group in GROUPS and s.definition and s.window and s.unit, s
    counts = group_counts(specs)
    assert set(counts) == set(GROUPS) - {"context"}  # the context group is opt-in
    assert counts["ofi"] >= 30 and counts["cvd"] >= 15 and counts["micro"] >= 25
    assert counts["technical"] >= 40 and counts["time"] == 7 and counts["regime"] == 6


def test_names_follow_the_config():
    cfg = FeatureConfig(
        tick_size=0.1, levels=5, futures=False, technical=None, momentum_windows_s=(2.0, 30.0)
    )
    names = [s.name for s in default_specs(cfg)]
    assert "ofi_e5" in names and "ofi_e6" not in names
    assert "funding_s" not in names and not any(n.startswith("tech_") for n in names)
    assert "ofi_w_2s" in names and "ofi_w_1s" not in names and "depth_imb_cum5" in names


def _tiny_frames(levels=10, n=50):
    rng = np.random.default_rng(0)
    ts = 1_700_000_000 * NS + np.arange(n) * NS // 10
    cols = {"ts_event": ts}
    best = 100 + rng.integers(0, 2, n)
    for i in range(1, levels + 1):
        cols[f"bid_px_{i}"] = (best - i + 1).astype(float)
    for i in range(1, levels + 1):
        cols[f"bid_sz_{i}"] = rng.uniform(1, 2, n)
    for i in range(1, levels + 1):
        cols[f"ask_px_{i}"] = (best + i).astype(float)
    for i in range(1, levels + 1):
        cols[f"ask_sz_{i}"] = rng.uniform(1, 2, n)
    trades = pd.DataFrame({"ts_event": ts[::2], "price": 100.5, "size": 0.1, "side": 1})
    return pd.DataFrame(cols), trades


def test_names_equal_matrix_columns_and_stream_vector():
    cfg = FeatureConfig(tick_size=1.0)
    book, trades = _tiny_frames()
    m = batch_features(book, trades, cfg)
    names = [s.name for s in default_specs(cfg)]
    assert list(m.columns) == ["ts_event", *names, "valid", "invalid_reason"]
    eng = StreamingFeatureEngine(cfg)
    assert eng.names() == names and eng.values.shape == (len(names),)
    assert m.invalid_reason.eq("warmup").all() and not m.valid.any()


@pytest.mark.parametrize(
    "bad",
    [
        {"warmup_s": 10.0},
        {"ofi_weights": (1.0, 2.0)},
        {"integrated_weights": (1.0,)},
        {"regime_vol_windows_s": (30.0, 300.0)},
        {"vol_windows_s": (10.0, 10.0)},
        {"nonsense": 1},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValidationError):
        FeatureConfig(tick_size=0.1, **bad)


def test_engine_requires_tick_size():
    with pytest.raises(ValueError, match="tick_size"):
        StreamingFeatureEngine(FeatureConfig(technical=None))
