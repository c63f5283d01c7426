"""Streaming outcomes equal the batch triple-barrier labels (the training labels) on the same prices."""

from __future__ import annotations

import numpy as np
import pytest

from orderflow.engine.outcomes import OutcomeTracker
from orderflow.features.config import LabelConfig
from orderflow.features.labels import triple_barrier

NS = 1_000_000_000


def _prices(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dt = rng.integers(50_000_000, 400_000_000, n)  # 50-400 ms between events
    dt[rng.random(n) < 0.05] = 0  # some events share a timestamp
    ts = 1_700_000_000 * NS + np.cumsum(dt)
    steps = rng.normal(0, 2e-4, n) * (rng.random(n) < 0.7)  # many unchanged mids
    return ts.astype(np.int64), 100.0 * np.exp(np.cumsum(steps))


@pytest.mark.parametrize(
    "cfg",
    [
        LabelConfig(horizon_s=20.0, vol_window_s=30.0),
        LabelConfig(horizon_s=20.0, vol_window_s=30.0, vol_kind="rolling"),
        LabelConfig(horizon_s=15.0, vol_window_n=50),
        LabelConfig(horizon_s=15.0, vol_window_n=50, vol_kind="rolling", pt=0.5, sl=0.7),
    ],
    ids=["ewm-time", "rolling-time", "ewm-count", "rolling-count"],
)
def test_streaming_outcomes_equal_the_batch_labels(cfg: LabelConfig):
    ts, px = _prices(6000, 7)
    tracker = OutcomeTracker(cfg, sample_s=0.0)
    samples, resolved = [], {}
    for i in range(ts.size):
        for r in tracker.on_price(int(ts[i]), float(px[i])):
            resolved[r.pred_ts_ns, r.probs[0]] = r
        if i % 7 == 0 and tracker.predict(int(ts[i]), (float(i), 0.0, 0.0), force=True):
            samples.append(i)
    batch = triple_barrier(ts, px, np.array(samples), cfg, by="index")
    labelled = batch[batch["label"].notna()]
    assert len(labelled) > 300
    for k, row in zip(samples, batch.itertuples(), strict=True):
        got = resolved.get((int(ts[k]), float(k)))
        if np.isnan(row.label):
            # unlabelled in batch: the horizon runs past the data end (never earlier: R was finite)
            assert int(ts[k]) + round(cfg.horizon_s * NS) > ts[-1]
            continue
        assert got is not None, f"sample {k} not resolved"
        assert got.label == int(row.label), k
        assert got.ts_ns == row.t_touch, k
        assert got.ret == pytest.approx(row.ret, abs=1e-12), k


def test_warm_up_predictions_are_not_kept():
    cfg = LabelConfig(horizon_s=10.0, vol_window_s=30.0)
    t = OutcomeTracker(cfg)
    t.on_price(0, 100.0)
    t.on_price(NS, 100.1)
    assert not t.predict(NS, (0.2, 0.5, 0.3))  # R is NaN for the first 30 s


def test_predictions_are_sampled():
    cfg = LabelConfig(horizon_s=10.0, vol_window_n=2)
    t = OutcomeTracker(cfg, sample_s=1.0)
    for i, p in enumerate([100.0, 100.1, 100.0, 100.2]):
        t.on_price(i * NS // 10, p)
    assert t.predict(3 * NS // 10, (0.2, 0.5, 0.3))
    assert not t.predict(4 * NS // 10, (0.2, 0.5, 0.3))  # within a second of the last sample
