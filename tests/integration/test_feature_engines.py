"""Both feature engines on real Binance recordings and a simulator run: same values, no look-ahead,
kernel OFI/CVD equal to their independent vectorised definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orderflow.data.config import SimulatorConfig
from orderflow.data.importers.binance_raw import import_binance_raw
from orderflow.data.schema import book_arrays
from orderflow.data.simulator import simulate
from orderflow.data.store import Store
from orderflow.features.batch import batch_features, build_features, fit_integrated_weights, stream_features
from orderflow.features.config import FeatureConfig
from orderflow.features.kernels import ofi_cvd_core
from orderflow.features.ofi import ofi_per_event

pytestmark = pytest.mark.shared_data
NS = 1_000_000_000
RECORDINGS = {
    "usdm": ("usdm/btcusdt_20240808.gz", "binance-usdm", True),
    "spot": ("spot/btcusdt_20240808.gz", "binance-spot", False),
}


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("features") / "store")
    out = {}
    for key, (path, venue, futures) in RECORDINGS.items():
        rep = import_binance_raw(store, [shared_data / "hftbacktest_binance_raw" / path])
        assert rep.gaps == 0
        inst = store.instrument(venue, "BTCUSDT")
        out[key] = dict(
            store=store,
            venue=venue,
            book=store.read(venue, "BTCUSDT", "book"),
            trades=store.read(venue, "BTCUSDT", "trade", columns=["ts_event", "price", "size", "side"]),
            cfg=FeatureConfig(tick_size=inst.tick_size, futures=futures),
        )
    return out


def assert_frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    cols = [c for c in a.columns if c not in ("valid", "invalid_reason")]
    x, y = a[cols].to_numpy(np.float64), b[cols].to_numpy(np.float64)
    same = (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= 1e-9 * np.maximum(np.abs(x), np.abs(y)))
    bad = [c for c, ok in zip(cols, same.all(axis=0), strict=True) if not ok]
    assert not bad, f"columns differ: {bad[:10]}"
    assert (a["valid"].to_numpy() == b["valid"].to_numpy()).all()
    assert (a["invalid_reason"].to_numpy() == b["invalid_reason"].to_numpy()).all()


@pytest.mark.slow
@pytest.mark.parametrize("key", list(RECORDINGS))
def test_stream_equals_batch_on_real_recordings(real, key):
    r = real[key]
    m = build_features(r["store"], r["venue"], "BTCUSDT", r["cfg"])
    s = stream_features(r["book"], r["trades"], r["cfg"])
    assert_frames_equal(m, s)
    assert len(m) == len(r["book"])
    # with technical off the recordings warm up after 300 s and the core features are defined
    core = r["cfg"].model_copy(update={"technical": None})
    mc = batch_features(r["book"], r["trades"], core)
    assert mc.valid.sum() > 100 and (mc.invalid_reason[~mc.valid] == "warmup").all()
    valid = mc[mc.valid]
    for c in ("ofi_w_z_1s", "cvd_z_1s", "rv_60s", "kyle_lambda", "ofi_div_30s", "trend_bps"):
        assert valid[c].notna().all(), c
    # VPIN is volume-clocked (outside the time warm-up): 50 x 250k USD fill in ~30 s on USD-M only
    assert valid["vpin"].notna().all() if key == "usdm" else valid["vpin"].notna().any()
    assert_frames_equal(mc, stream_features(r["book"], r["trades"], core))


def test_kernel_ofi_and_cvd_equal_the_vectorised_definitions(real):
    r = real["usdm"]
    cfg = r["cfg"].model_copy(update={"technical": None})
    m = batch_features(r["book"], r["trades"], cfg)
    ref = ofi_per_event(*book_arrays(r["book"], cfg.levels))
    got = m[[f"ofi_e{k}" for k in range(1, cfg.levels + 1)]].to_numpy()
    assert np.isnan(got[0]).all()
    np.testing.assert_allclose(got[1:], ref[1:], rtol=0, atol=1e-12)
    assert np.count_nonzero(ref[:, 0]) > 1000
    t = r["trades"]
    assert t.side.ne(0).all()
    cum = np.cumsum(t["side"].to_numpy() * t["size"].to_numpy())
    upto = np.searchsorted(t.ts_event.to_numpy(), m.ts_event.to_numpy(), side="right")
    want = np.where(upto > 0, cum[np.maximum(upto - 1, 0)], 0.0)
    np.testing.assert_allclose(m["cvd"].to_numpy(), want, rtol=1e-12, atol=1e-9)


def test_compiled_core_equals_the_vectorised_definitions(real):
    r = real["usdm"]
    arrs = [np.ascontiguousarray(a) for a in book_arrays(r["book"], 10)]
    t = r["trades"]
    ofi = np.empty((len(r["book"]), 10))
    cvd = np.empty(len(r["book"]))
    bts = r["book"].ts_event.to_numpy()
    ofi_cvd_core(bts, *arrs, t.ts_event.to_numpy(), t["size"].to_numpy(), t.side.to_numpy(np.int64), ofi, cvd)
    np.testing.assert_array_equal(ofi, ofi_per_event(*arrs))
    want = batch_features(r["book"], t, r["cfg"].model_copy(update={"technical": None}))["cvd"]
    np.testing.assert_allclose(cvd, want.to_numpy(), rtol=1e-12, atol=1e-9)


def test_no_look_ahead_on_real_data(real):
    r = real["usdm"]
    cfg = r["cfg"]
    full = batch_features(r["book"], r["trades"], cfg)
    ts = r["book"].ts_event.to_numpy()
    for q in (0.2, 0.5, 0.93):
        t = int(ts[int(q * len(ts))])
        b = r["book"][r["book"].ts_event <= t]
        tr = r["trades"][r["trades"].ts_event <= t]
        part = batch_features(b, tr, cfg)
        assert len(part) == len(b)
        assert_frames_equal(part, full.iloc[: len(b)].reset_index(drop=True))


def test_gap_rows_reset_both_engines_the_same_way(real):
    r = real["usdm"]
    short = dict(
        technical=None, warmup_s=60.0, zscore_window=600, rv_windows_s=(10.0, 60.0),
        regime_vol_windows_s=(10.0, 60.0), trend_halflives_s=(10.0, 60.0), vol_pct_buckets=60,
    )  # fmt: skip
    cfg = r["cfg"].model_copy(update=short)
    cfg = FeatureConfig(**cfg.model_dump())  # re-validated
    ts = r["book"].ts_event.to_numpy()
    g = int(ts[4000])
    gaps = pd.DataFrame({"ts_event": [g], "reason": ["update-id gap"]})
    m = batch_features(r["book"], r["trades"], cfg, gaps)
    assert_frames_equal(m, stream_features(r["book"], r["trades"], cfg, gaps))
    before, after = m[m.ts_event < g], m[m.ts_event >= g]
    assert before.valid.iloc[-1] and after.cvd.abs().iloc[0] < before.cvd.abs().iloc[-1]
    cold = after[after.ts_event < g + 60 * NS]
    assert not cold.valid.any() and (cold.invalid_reason == "gap").all()
    warm = after[after.ts_event >= g + 60 * NS]
    assert len(warm) > 100 and warm.valid.all()


def test_integrated_weights_fit_on_a_training_window(real):
    r = real["usdm"]
    cfg = r["cfg"].model_copy(update={"technical": None})
    ts = r["book"].ts_event.to_numpy()
    w = fit_integrated_weights(r["book"], cfg, int(ts[0]), int(ts[3000]))
    assert len(w) == cfg.levels and sum(w) > 0 and sum(abs(x) for x in w) == pytest.approx(1.0)
    fitted = batch_features(r["book"], r["trades"], cfg.model_copy(update={"integrated_weights": w}))
    plain = batch_features(r["book"], r["trades"], cfg)
    assert not np.allclose(fitted.ofi_int.to_numpy()[1:], plain.ofi_int.to_numpy()[1:])
    np.testing.assert_array_equal(fitted.ofi_w.to_numpy(), plain.ofi_w.to_numpy())


@pytest.mark.slow
def test_stream_equals_batch_on_two_simulated_hours_with_technical(tmp_path):
    store = Store(tmp_path / "store")
    simulate(SimulatorConfig(hours=2), store)
    cfg = FeatureConfig(tick_size=0.1)
    book = store.read("sim", "BTCUSDT", "book")
    trades = store.read("sim", "BTCUSDT", "trade", columns=["ts_event", "price", "size", "side"])
    m = batch_features(book, trades, cfg)
    assert_frames_equal(m, stream_features(book, trades, cfg))
    tech = [c for c in m.columns if c.startswith("tech_")]
    assert len(tech) >= 50
    last = m.iloc[-1]
    assert last[tech].notna().sum() >= 40  # 1m and most 5m indicators are warm after 2 h
    assert last["tech_1m_rsi_14"] != m["tech_1m_rsi_14"].dropna().iloc[0]
