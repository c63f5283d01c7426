"""Triple-barrier labels: the numba kernels equal a plain loop; barrier edge cases; no look-ahead in R."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from orderflow.features.config import LabelConfig
from orderflow.features.labels import sample_weights_by_uniqueness, triple_barrier, vol_unit

NS = 1_000_000_000
T0 = 1_723_160_000 * NS


# -- plain-Python reference ------------------------------------------------------------------------


def ref_var(ts, logp, cfg: LabelConfig) -> list[float]:
    """Variance of log returns per second, straight from the definitions (no running sums)."""
    n = len(ts)
    r = [math.nan] + [logp[i] - logp[i - 1] for i in range(1, n)]
    out = [math.nan] * n
    if cfg.vol_window_n is not None:
        m = cfg.vol_window_n
        alpha = 2.0 / (m + 1.0)
        a = b = 0.0
        for i in range(1, n):
            if cfg.vol_kind == "ewm":
                if i == 1:
                    a, b = r[1] ** 2, float(ts[1] - ts[0])
                else:
                    a = (1 - alpha) * a + alpha * r[i] ** 2
                    b = (1 - alpha) * b + alpha * (ts[i] - ts[i - 1])
                if i >= m and b > 0:
                    out[i] = a / (b / NS)
            elif i >= m and ts[i] > ts[i - m]:
                out[i] = sum(r[k] ** 2 for k in range(i - m + 1, i + 1)) / ((ts[i] - ts[i - m]) / NS)
        return out
    w = cfg.vol_window_s * NS
    for i in range(1, n):
        if ts[i] - ts[0] < w:
            continue
        if cfg.vol_kind == "rolling":
            out[i] = sum(r[k] ** 2 for k in range(1, i + 1) if ts[k] > ts[i] - w) / cfg.vol_window_s
        else:
            s = sum(r[k] ** 2 * math.exp(-(ts[i] - ts[k]) / w) for k in range(1, i + 1))
            out[i] = s / (cfg.vol_window_s * (1 - math.exp(-(ts[i] - ts[0]) / w)))
    return out


def ref_labels(ts, price, idx, cfg: LabelConfig, unit=None) -> pd.DataFrame:
    logp = [math.log(p) for p in price]
    if unit is None:
        unit = [max(math.sqrt(v * cfg.horizon_s), cfg.min_vol) for v in ref_var(ts, logp, cfg)]
    h = round(cfg.horizon_s * NS)
    rows = []
    for i in idx:
        tv = ts[i] + h
        u = unit[i]
        row = {"ts_event": ts[i], "label": math.nan, "t_touch": tv, "ret": math.nan, "barrier": "none"}
        if math.isnan(u) or u <= 0 or tv > ts[-1]:
            rows.append(row)
            continue
        last = i
        for j in range(i + 1, len(ts)):
            if ts[j] > tv:
                break
            ret = logp[j] - logp[i]
            if ret >= cfg.pt * u:
                row.update(label=1.0, t_touch=ts[j], ret=ret, barrier="pt")
                break
            if ret <= -cfg.sl * u:
                row.update(label=-1.0, t_touch=ts[j], ret=ret, barrier="sl")
                break
            last = j
        if row["barrier"] == "none":
            row.update(label=0.0, ret=logp[last] - logp[i], barrier="vertical")
        rows.append(row)
    return pd.DataFrame(rows)


def random_series(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    dt = rng.exponential(0.05 * NS, n).astype(np.int64)
    dt[rng.random(n) < 0.05] = 0  # some events share a timestamp
    ts = T0 + np.cumsum(dt)
    steps = rng.choice([-1, 0, 0, 0, 1], n) * 0.1
    steps[300:380] = 0.0  # a flat stretch
    price = 60000.0 + np.cumsum(steps)
    return ts, price


def assert_same(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert len(got) == len(ref)
    np.testing.assert_array_equal(got["ts_event"].to_numpy(), ref["ts_event"].to_numpy())
    np.testing.assert_array_equal(got["label"].to_numpy(), ref["label"].to_numpy())  # NaN == NaN here
    np.testing.assert_array_equal(got["t_touch"].to_numpy(), ref["t_touch"].to_numpy())
    np.testing.assert_allclose(got["ret"].to_numpy(), ref["ret"].to_numpy(), rtol=0, atol=1e-12)
    assert got["barrier"].tolist() == ref["barrier"].tolist()


CONFIGS = [
    LabelConfig(horizon_s=5, vol_window_s=10, vol_kind="rolling"),
    LabelConfig(horizon_s=5, vol_window_s=10, vol_kind="ewm"),
    LabelConfig(horizon_s=3, vol_window_n=50, vol_kind="rolling", pt=0.5, sl=2.0),
    LabelConfig(horizon_s=3, vol_window_n=50, vol_kind="ewm", min_vol=1e-6),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["rolling_s", "ewm_s", "rolling_n", "ewm_n"])
def test_numba_equals_plain_loop_on_random_data(cfg):
    ts, price = random_series()
    idx = np.arange(0, len(ts), 3)
    got = triple_barrier(ts, price, idx, cfg)
    ref = ref_labels(ts.tolist(), price.tolist(), idx.tolist(), cfg)
    assert_same(got, ref)
    labelled = got["label"].notna()
    assert labelled.sum() > 300 and set(got.loc[labelled, "label"]) == {-1.0, 0.0, 1.0}
    var = ref_var(ts.tolist(), np.log(price).tolist(), cfg)
    ref_unit = np.maximum(np.sqrt(np.array(var) * cfg.horizon_s), cfg.min_vol)
    np.testing.assert_allclose(vol_unit(ts, price, cfg), ref_unit, rtol=1e-9, atol=1e-15)


@pytest.mark.slow
@pytest.mark.shared_data
def test_numba_equals_plain_loop_on_real_mid(shared_data: Path, store):
    from orderflow.data.importers.binance_raw import import_binance_raw
    from orderflow.features.ofi import mid_price

    import_binance_raw(store, [shared_data / "hftbacktest_binance_raw/usdm/btcusdt_20240808.gz"])
    book = store.read("binance-usdm", "BTCUSDT", "book", columns=["ts_event", "bid_px_1", "ask_px_1"])
    ts = book["ts_event"].to_numpy(np.int64)
    mid = mid_price(book["bid_px_1"].to_numpy(), book["ask_px_1"].to_numpy())
    cfg = LabelConfig(horizon_s=10, vol_window_s=30, vol_kind="rolling")
    idx = np.arange(0, len(ts), 2)
    got = triple_barrier(ts, mid, idx, cfg)
    assert_same(got, ref_labels(ts.tolist(), mid.tolist(), idx.tolist(), cfg))
    counts = got["barrier"].value_counts()
    assert counts["pt"] > 100 and counts["sl"] > 100 and counts["vertical"] > 100
    # the default EWM kind, checked against the recursive plain loop on the same real data
    cfg = LabelConfig(horizon_s=10, vol_window_s=30)
    got = triple_barrier(ts, mid, idx, cfg)
    assert_same(got, ref_labels(ts.tolist(), mid.tolist(), idx.tolist(), cfg, unit=_ewm_loop(ts, mid, cfg)))


def _ewm_loop(ts, price, cfg):
    w = cfg.vol_window_s * NS
    logp = np.log(price)
    out, s = [math.nan], 0.0
    for i in range(1, len(ts)):
        s = s * math.exp(-(ts[i] - ts[i - 1]) / w) + (logp[i] - logp[i - 1]) ** 2
        if ts[i] - ts[0] >= w:
            var = s / (cfg.vol_window_s * (1 - math.exp(-(ts[i] - ts[0]) / w)))
            out.append(max(math.sqrt(var * cfg.horizon_s), cfg.min_vol))
        else:
            out.append(math.nan)
    return out


# -- edge cases (unit given explicitly) ------------------------------------------------------------


def _lab(prices, secs, unit, samples=(0,), **kw):
    ts = T0 + np.asarray(secs, dtype=np.int64) * NS
    cfg = LabelConfig(**{"horizon_s": 10, "pt": 1.0, "sl": 1.0, **kw})
    u = np.full(len(ts), unit, dtype=np.float64)
    return triple_barrier(ts, np.asarray(prices, dtype=float), np.asarray(samples), cfg, unit=u)


def test_touch_at_exactly_the_barrier_counts():
    assert math.log(2.0) - math.log(1.0) == 1.0 * math.log(2.0)
    out = _lab([1.0, 1.5, 2.0, 1.0, 1.0], [0, 1, 2, 3, 20], math.log(2.0))
    assert out.loc[0, ["label", "barrier", "t_touch"]].tolist() == [1.0, "pt", T0 + 2 * NS]
    assert out.loc[0, "ret"] == math.log(2.0)
    assert math.log(0.5) == -math.log(2.0)
    out = _lab([1.0, 0.5, 2.0, 1.0], [0, 4, 5, 20], math.log(2.0))
    assert out.loc[0, ["label", "barrier", "t_touch"]].tolist() == [-1.0, "sl", T0 + 4 * NS]


def test_both_barriers_crossed_the_first_in_time_wins():
    # up through +R at 1 s, then down through −R at 2 s: pt; the mirror path: sl
    assert _lab([1.0, 1.2, 0.8, 1.0], [0, 1, 2, 30], 0.1).loc[0, "barrier"] == "pt"
    assert _lab([1.0, 0.8, 1.2, 1.0], [0, 1, 2, 30], 0.1).loc[0, "barrier"] == "sl"
    # two rows at the same timestamp, one above and one below: the earlier row (stored order) wins
    out = _lab([1.0, 0.8, 1.2, 1.0], [0, 1, 1, 30], 0.1)
    assert out.loc[0, ["barrier", "t_touch"]].tolist() == ["sl", T0 + NS]


def test_vertical_barrier_label_zero_with_return_at_the_horizon():
    out = _lab([1.0, 1.01, 0.99, 1.02, 1.5], [0, 3, 10, 11, 30], 0.5)
    assert out.loc[0, ["label", "barrier", "t_touch"]].tolist() == [0.0, "vertical", T0 + 10 * NS]
    assert out.loc[0, "ret"] == pytest.approx(math.log(0.99), abs=1e-15)  # the event at exactly t + 10 s


def test_horizon_past_the_end_of_data_is_unlabelled_even_when_touched():
    out = _lab([1.0, 2.0, 1.0, 2.0], [0, 1, 2, 11], 0.1, samples=(0, 1, 2, 3))
    assert out["label"].tolist()[:2] == [1.0, -1.0]  # verticals at 10 s and 11 s: inside the data
    # verticals at 12 s and 21 s lie after the last event (11 s); sample 2 touches pt at 11 s, still NaN
    assert out["label"].isna().tolist() == [False, False, True, True]
    assert out["barrier"].tolist()[2:] == ["none", "none"]
    assert out["t_touch"].tolist()[2:] == [T0 + 12 * NS, T0 + 21 * NS]


def test_zero_vol_is_unlabelled_unless_min_vol():
    secs = np.arange(0, 40)
    prices = np.where(secs < 25, 100.0, 101.0)
    kw = {"vol_window_s": 5, "vol_kind": "rolling"}
    out = _lab_cfg(prices, secs, kw)
    assert out.loc[10, "vol_unit"] == 0.0 and np.isnan(out.loc[10, "label"])  # flat history
    assert out.loc[2, "barrier"] == "none" and np.isnan(out.loc[2, "vol_unit"])  # warm-up
    out = _lab_cfg(prices, secs, {**kw, "min_vol": 1e-3})
    assert out.loc[10, "vol_unit"] == 1e-3
    assert out.loc[20, ["label", "barrier", "t_touch"]].tolist() == [1.0, "pt", T0 + 25 * NS]
    # the flat period after the jump leaves the window after 5 s: exactly zero again, not ~1e-20
    assert out.loc[29, "vol_unit"] > 1e-3 and _lab_cfg(prices, secs, kw).loc[30, "vol_unit"] == 0.0


def _lab_cfg(prices, secs, kw):
    ts = T0 + np.asarray(secs, dtype=np.int64) * NS
    cfg = LabelConfig(**{"horizon_s": 10, "pt": 1.0, "sl": 1.0, **kw})
    return triple_barrier(ts, np.asarray(prices, dtype=float), None, cfg)


def test_vol_unit_has_no_look_ahead():
    ts, price = random_series(seed=3)
    for cfg in CONFIGS:
        full = vol_unit(ts, price, cfg)
        cut = 900
        part = vol_unit(ts[:cut], price[:cut], cfg)
        np.testing.assert_array_equal(full[:cut], part)


def test_samples_given_as_times():
    ts = T0 + np.array([0, 1, 2, 3, 30]) * NS
    price = np.array([1.0, 1.0, 1.3, 1.0, 1.0])
    cfg = LabelConfig(horizon_s=10, pt=1.0, sl=1.0)
    u = np.full(5, 0.2)
    out = triple_barrier(ts, price, np.array([T0 + NS + 5, T0 - 1]), cfg, by="ts", unit=u)
    assert out["ts_event"].tolist() == [T0 + NS + 5, T0 - 1]
    # the first sample takes the price of the row at 1 s; its vertical barrier is 10 s after the sample
    assert out.loc[0, ["label", "t_touch"]].tolist() == [1.0, T0 + 2 * NS]
    assert np.isnan(out.loc[1, "label"])  # before the first event


def test_bad_input_is_named():
    ts = T0 + np.arange(4) * NS
    with pytest.raises(ValueError, match="row 2"):
        triple_barrier(ts, np.array([1.0, 1.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="decreases at row 1"):
        triple_barrier(ts[::-1], np.ones(4))
    with pytest.raises(ValidationError):
        LabelConfig(ptt=1.0)
    with pytest.raises(ValidationError, match="exactly one"):
        LabelConfig(vol_window_s=10, vol_window_n=10)
    assert LabelConfig(vol_window_n=10).vol_window_s is None


def test_uniqueness_weights():
    t0 = np.array([0, 0, 10, 20])
    t1 = np.array([5, 5, 15, 25])
    np.testing.assert_allclose(sample_weights_by_uniqueness(t0, t1), [0.5, 0.5, 1.0, 1.0])
    # a span covering two sample times, one of them shared with another span
    w = sample_weights_by_uniqueness(np.array([0, 10]), np.array([10, 20]))
    np.testing.assert_allclose(w, [0.75, 0.5])  # the sample times are 0 and 10
