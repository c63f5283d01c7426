"""The market context group end to end: stream = batch on the simulator with its context and on a real
Binance recording joined with the real funding and fear & greed histories, and point in time: the
features a backtest builds from the store cannot see a 5-minute statistic before its period closed
(+ the publication delay), nor a fear & greed day before its publication."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orderflow.data.config import ContextSimConfig, SimulatorConfig
from orderflow.data.context import asof
from orderflow.data.importers.binance_raw import import_binance_raw
from orderflow.data.importers.context import import_fear_greed, import_funding
from orderflow.data.simulator import simulate
from orderflow.data.store import Store
from orderflow.features.batch import batch_features, build_features, read_context, stream_features
from orderflow.features.config import ContextFeatureConfig, FeatureConfig

pytestmark = pytest.mark.shared_data
NS = 1_000_000_000
CTX = ContextFeatureConfig()
FNG_CSV = ("context", "fear_and_greed", "fear_and_greed_index.csv")
FUNDING = ("context", "binance_usdm_funding_2022-2025", "BTC_USDT_USDT-8h-funding_rate.feather")


def t(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


def fear_greed_slice(shared_data, tmp_path, first: str, last: str):
    """The real index's rows of [first, last] as a CSV file (the importer writes one partition a day:
    the whole 8-year file takes ~15 s to store)."""
    rows = pd.read_csv(shared_data.joinpath(*FNG_CSV))
    day = pd.to_datetime(rows["date"], utc=True)
    out = tmp_path / "fear_and_greed_slice.csv"
    rows[(day >= pd.Timestamp(first, tz="UTC")) & (day <= pd.Timestamp(last, tz="UTC"))].to_csv(
        out, index=False
    )
    return out


def assert_context_equal(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """Every column equal within 1e-9 (relative), NaN where NaN; returns the context columns."""
    assert list(a.columns) == list(b.columns)
    cols = [c for c in a.columns if c not in ("valid", "invalid_reason")]
    x, y = a[cols].to_numpy(np.float64), b[cols].to_numpy(np.float64)
    same = (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= 1e-9 * np.maximum(np.abs(x), np.abs(y)))
    bad = [c for c, ok in zip(cols, same.all(axis=0), strict=True) if not ok]
    assert not bad, f"columns differ: {bad}"
    assert (a["valid"] == b["valid"]).all() and (a["invalid_reason"] == b["invalid_reason"]).all()
    return [c for c in cols if c.startswith("ctx_")]


@pytest.fixture(scope="module")
def sim_store(shared_data, tmp_path_factory):
    """0.3 h from 2024-01-01 00:00 with context, and the real fear & greed index."""
    d = tmp_path_factory.mktemp("ctx")
    store = Store(d / "store")
    simulate(SimulatorConfig(hours=0.3, seed=4, start="2024-01-01"), store=store)
    import_fear_greed(store, [fear_greed_slice(shared_data, d, "2023-12-01", "2024-01-31")])
    return store


def test_a_backtest_cannot_see_a_5_minute_statistic_before_its_period_closed(sim_store):
    cfg = FeatureConfig(technical=None, tick_size=0.1, context=CTX)
    x = build_features(sim_store, "sim", "BTCUSDT", cfg)
    ts = x.ts_event.to_numpy()
    rows = sim_store.read("sim", "BTCUSDT", "taker_ratio_5m")
    assert len(rows) == 3 and (rows.ts_recv == rows.ts_event + 310 * NS).all()  # 5 min + 10 s
    share = (rows.buy_volume / (rows.buy_volume + rows.sell_volume)).to_numpy()
    got = x["ctx_taker_buy_share_5m"].to_numpy()
    # nothing before 00:05:10 although the period [00:00, 00:05) began at the first sample
    t0 = t("2024-01-01 00:05:10")
    assert np.isnan(got[ts < t0]).all() and (ts < t0).sum() > 1000
    # from each publication on, that period's value, and never the next period's before its own
    want = asof(rows.assign(s=share), ts, ["s"])["s"].to_numpy()
    np.testing.assert_array_equal(got, want)
    first = np.flatnonzero(ts >= rows.ts_recv.iloc[1])[0]
    assert got[first - 1] == share[0] and got[first] == share[1]
    # a changed future statistic changes nothing before its publication
    ctx = read_context(sim_store, "sim", "BTCUSDT", cfg)
    book = sim_store.read("sim", "BTCUSDT", "book")
    trades = sim_store.read("sim", "BTCUSDT", "trade", columns=["ts_event", "price", "size", "side"])
    altered = ctx["taker_ratio_5m"].copy()
    altered.loc[2, "buy_volume"] *= 3
    y = batch_features(book, trades, cfg, context={**ctx, "taker_ratio_5m": altered})
    before = ts < rows.ts_recv.iloc[2]
    pd.testing.assert_frame_equal(y[before], x[before])
    assert (y.loc[~before, "ctx_taker_buy_share_5m"] != x.loc[~before, "ctx_taker_buy_share_5m"]).all()
    # the engine's own trades agree with the simulated statistic exactly
    seen = x["ctx_taker_share_diff_5m"].dropna()
    assert len(seen) > 1000 and (seen.abs() < 1e-12).all() and (x["ctx_taker_bad_5m"].dropna() == 0).all()


def test_a_backtest_cannot_see_the_fear_and_greed_value_before_its_publication(sim_store):
    x = build_features(sim_store, "sim", "BTCUSDT", FeatureConfig(technical=None, context=CTX))
    ts, fng = x.ts_event.to_numpy(), x["ctx_fng"].to_numpy()
    # the file: 2023-12-30 68 (published 12-31 00:10), 2023-12-31 67 (published 2024-01-01 00:10)
    pub = t("2024-01-01 00:10")
    assert (fng[ts < pub] == 68).all() and (fng[ts >= pub] == 67).all()
    assert (ts < pub).sum() > 1000 and (ts >= pub).sum() > 1000
    assert (x["ctx_fng_class"] == 3).all() and (x["ctx_fng_regime"] == 1).all()  # Greed
    # the context never invalidates a vector
    plain = build_features(sim_store, "sim", "BTCUSDT", FeatureConfig(technical=None))
    assert (plain["valid"] == x["valid"]).all()
    assert x.shape[1] == plain.shape[1] + 19


@pytest.mark.slow
def test_stream_equals_batch_on_the_simulator_with_context(shared_data, tmp_path):
    """1 h over the 08:00 funding, with liquidations made likelier, every kind delivered."""
    store = Store(tmp_path / "store")
    sim = ContextSimConfig(liq_threshold=0.001)
    simulate(SimulatorConfig(hours=1.0, seed=6, start="2024-01-01 07:30", context=sim), store=store)
    import_fear_greed(store, [fear_greed_slice(shared_data, tmp_path, "2023-12-01", "2024-01-31")])
    cfg = FeatureConfig(technical=None, tick_size=0.1, context=ContextFeatureConfig(oi_window=6))
    book = store.read("sim", "BTCUSDT", "book")
    trades = store.read("sim", "BTCUSDT", "trade", columns=["ts_event", "price", "size", "side"])
    ctx = read_context(store, "sim", "BTCUSDT", cfg)
    assert set(ctx) == {"funding", "mark_price", "open_interest_5m", "taker_ratio_5m", "ls_global_5m",
                        "ls_top_accounts_5m", "ls_top_positions_5m", "liquidation", "fear_greed"}  # fmt: skip
    m = build_features(store, "sim", "BTCUSDT", cfg)
    s = stream_features(book, trades, cfg, context=ctx)
    cols = assert_context_equal(m, s)
    defined = m[cols].notna().mean()
    assert (defined.drop("ctx_funding_z") > 0.2).all(), defined  # every feature but the z-score seen
    assert (m["ctx_liq_sell_1m"] + m["ctx_liq_buy_1m"] > 0).any()
    funding = m.loc[m.ts_event >= t("2024-01-01 08:00"), "ctx_funding_rate"]
    assert (
        funding.notna().all() and m.loc[m.ts_event < t("2024-01-01 08:00"), "ctx_funding_rate"].isna().all()
    )


@pytest.mark.slow
def test_stream_equals_batch_on_a_real_recording_with_the_real_funding_and_fear_greed(shared_data, tmp_path):
    """Binance USD-M BTCUSDT 2024-07-18 23:57 -> 07-19 00:05 across the 00:00 funding, with the recorded
    funding history (rate 3.1e-5 settled 07-18 16:00, 4.0e-5 at 07-19 00:00) and the fear & greed
    index (07-17: 69, published 07-18 00:10; 07-18's is published after the recording)."""
    store = Store(tmp_path / "store")
    raw = shared_data / "hftbacktest_binance_raw" / "usdm"
    rep = import_binance_raw(store, [raw / "btcusdt_20240718.gz", raw / "btcusdt_20240719.gz"])
    assert rep.gaps == 0
    import_funding(store, [shared_data.joinpath(*FUNDING)], symbol="BTCUSDT")
    import_fear_greed(store, [fear_greed_slice(shared_data, tmp_path, "2024-06-01", "2024-08-31")])
    cfg = FeatureConfig(technical=None, tick_size=0.1, context=CTX)
    book = store.read("binance-usdm", "BTCUSDT", "book")
    trades = store.read("binance-usdm", "BTCUSDT", "trade", columns=["ts_event", "price", "size", "side"])
    ctx = read_context(store, "binance-usdm", "BTCUSDT", cfg)
    assert set(ctx) == {"funding", "fear_greed"}  # what the shared data has for this span
    m = build_features(store, "binance-usdm", "BTCUSDT", cfg)
    assert_context_equal(m, stream_features(book, trades, cfg, context=ctx))
    ts = m.ts_event.to_numpy()
    f0 = t("2024-07-19 00:00")
    assert (ts < f0).sum() > 1000 and (ts >= f0).sum() > 1000
    rate = m["ctx_funding_rate"].to_numpy()
    assert rate[ts < f0] == pytest.approx(3.1e-5, abs=5e-7) and rate[ts >= f0] == pytest.approx(
        4.0e-5, abs=5e-7
    )
    assert m["ctx_funding_z"].notna().all() and m.loc[ts >= f0, "ctx_funding_z"].nunique() == 1
    assert (m["ctx_fng"] == 69).all() and (m["ctx_fng_class"] == 3).all()
    # no mark price, statistics or liquidations recorded here: NaN, never 0
    assert (
        m[["ctx_premium", "ctx_taker_buy_share_5m", "ctx_liq_buy_1m", "ctx_ls_global_5m"]].isna().all().all()
    )
