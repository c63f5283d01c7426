"""Technical indicators: bars, hand-checked values, stream == batch, no look-ahead, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from pydantic import ValidationError

from orderflow.features.config import TechnicalConfig
from orderflow.features.spec import N_INDICATORS, FeatureSpec, technical_names, technical_specs
from orderflow.features.technical import TechnicalStream, _indicators, build_bars, technical_batch

NS = 1_000_000_000
T0 = 1_704_067_200 * NS  # 2024-01-01 00:00:00 UTC, a multiple of every interval up to 1d


def replay(cfg: TechnicalConfig, ts, px, sz, side, samples) -> np.ndarray:
    """The stream's values after advance(sample) given every trade with ts <= sample."""
    st = TechnicalStream(cfg)
    out = np.empty((len(samples), N_INDICATORS * len(cfg.intervals)))
    tl, pl, zl, dl = (np.asarray(a).tolist() for a in (ts, px, sz, side))
    j, n = 0, len(tl)
    for i, t in enumerate(np.asarray(samples).tolist()):
        while j < n and tl[j] <= t:
            st.on_trade(tl[j], pl[j], zl[j], dl[j])
            j += 1
        st.advance(t)
        out[i] = st.values
    return out


def assert_agree(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True)


def col(cfg: TechnicalConfig, name: str) -> int:
    return technical_names(cfg).index(name)


# ---------------------------------------------------------------- config and registry


def test_config_rejects_bad_values():
    with pytest.raises(ValidationError, match="7m"):
        TechnicalConfig(intervals=("1m", "7m"))
    with pytest.raises(ValidationError, match="duplicates"):
        TechnicalConfig(intervals=("1m", "1m"))
    with pytest.raises(ValidationError):
        TechnicalConfig(intervals=())
    with pytest.raises(ValidationError):
        TechnicalConfig(lookback_bars=50)
    with pytest.raises(ValidationError):
        TechnicalConfig(lookbak_bars=1000)  # a typo is an error, not a default


def test_specs_name_every_column():
    cfg = TechnicalConfig()
    specs = technical_specs(cfg)
    assert all(isinstance(s, FeatureSpec) for s in specs)
    assert [s.name for s in specs] == technical_names(cfg)
    assert len(specs) == 2 * N_INDICATORS == len(TechnicalStream(cfg).values)
    assert N_INDICATORS >= 25 and len({s.name for s in specs}) == len(specs)
    assert {s.group for s in specs} == {"technical"}
    rsi = specs[technical_names(cfg).index("tech_1m_rsi_14")]
    assert "talib.RSI(close, 14)" in rsi.definition and rsi.window == "14 bars of 1m"
    assert specs[-1].name.startswith("tech_5m_") and all(s.unit for s in specs)


# ---------------------------------------------------------------- bars


def _bar_trades():
    ts = np.array([T0 + 5 * NS, T0 + 30 * NS, T0 + 60 * NS - 1, T0 + 60 * NS, T0 + 200 * NS])
    px = np.array([100.0, 102.0, 99.0, 101.0, 105.0])
    sz = np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    side = np.array([1, -1, 1, 1, -1])
    return ts, px, sz, side


def test_bars_align_to_epoch_carry_gaps_and_put_boundary_trades_in_the_next_bar():
    ts, px, sz, side = _bar_trades()
    starts, bars = build_bars(ts, px, sz, side, "1m", T0 + 300 * NS)
    np.testing.assert_array_equal(starts, T0 + np.array([0, 60, 120, 180, 240]) * NS)
    expected = [
        [100, 102, 99, 99, 3.5, 1.5, 3],  # the trade at 59.999999999 s is still in bar 0
        [101, 101, 101, 101, 1.0, 1.0, 1],  # the trade exactly at 60 s opens bar 1
        [101, 101, 101, 101, 0.0, 0.0, 0],  # empty: carries the close
        [105, 105, 105, 105, 3.0, 0.0, 1],
        [105, 105, 105, 105, 0.0, 0.0, 0],
    ]
    np.testing.assert_array_equal(bars, np.array(expected, dtype=float))
    starts5, bars5 = build_bars(ts, px, sz, side, "5m", T0 + 300 * NS)
    assert starts5.tolist() == [T0] and bars5[0].tolist() == [100, 105, 99, 105, 7.5, 2.5, 5]
    # a bar closes only when its end is reached: at 299.999999999 s bar 4 is still open
    assert len(build_bars(ts, px, sz, side, "1m", T0 + 300 * NS - 1)[0]) == 4


def test_stream_builds_the_same_bars():
    ts, px, sz, side = _bar_trades()
    st = TechnicalStream(TechnicalConfig(intervals=("1m",), lookback_bars=200))
    for a, b, c, d in zip(ts.tolist(), px.tolist(), sz.tolist(), side.tolist(), strict=True):
        st.on_trade(a, b, c, d)
    assert st.advance(T0 + 300 * NS) is True
    assert st.advance(T0 + 300 * NS) is False  # nothing new closed
    _, bars = build_bars(ts, px, sz, side, "1m", T0 + 300 * NS)
    np.testing.assert_array_equal(st._states[0].window().T, bars)


def _walk(n: int, step_s: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    ts = T0 + (np.arange(1, n + 1) * step_s * NS).astype(np.int64)
    px = np.round(100 + np.cumsum(rng.normal(0, 0.1, n)), 2)
    sz = np.round(rng.exponential(1.0, n), 3)
    side = rng.choice([-1, 1], n)
    return ts, px, sz, side


def test_trade_exactly_at_advance_time_counts_in_the_next_bar_either_order():
    ts, px, sz, side = _walk(600, 10.0)  # every 10 s: one trade sits on each 1m boundary
    cfg = TechnicalConfig(intervals=("1m",), lookback_bars=200)
    a, b = TechnicalStream(cfg), TechnicalStream(cfg)
    rows_a, rows_b, samples = [], [], []
    for t, p, s, d in zip(ts.tolist(), px.tolist(), sz.tolist(), side.tolist(), strict=True):
        a.on_trade(t, p, s, d)  # trade first, then the sample at the same ts
        a.advance(t)
        b.advance(t)  # sample first, then the trade
        b.on_trade(t, p, s, d)
        b.advance(t)
        rows_a.append(a.values.copy())
        rows_b.append(b.values.copy())
        samples.append(t)
    rows_a, rows_b = np.array(rows_a), np.array(rows_b)
    np.testing.assert_array_equal(rows_a, rows_b)
    assert_agree(rows_a, technical_batch(ts, px, sz, side, np.array(samples), cfg))
    assert np.isfinite(rows_a[-1]).all()


# ---------------------------------------------------------------- hand-checked values


def _per_minute(prices, buy=True):
    n = len(prices)
    ts = T0 + np.arange(n, dtype=np.int64) * 60 * NS + NS
    return ts, np.asarray(prices, float), np.ones(n), np.full(n, 1 if buy else -1)


def test_monotonic_rise_gives_rsi_100_and_textbook_ratios():
    cfg = TechnicalConfig(intervals=("1m",), lookback_bars=200)
    ts, px, sz, side = _per_minute(100.0 + np.arange(60))
    row = technical_batch(ts, px, sz, side, np.array([T0 + 3600 * NS]), cfg)[0]
    close = 159.0
    assert row[col(cfg, "tech_1m_rsi_14")] == pytest.approx(100.0)
    assert row[col(cfg, "tech_1m_cmo_14")] == pytest.approx(100.0)
    assert row[col(cfg, "tech_1m_willr_14")] == pytest.approx(0.0, abs=1e-12)
    assert row[col(cfg, "tech_1m_sma20_ratio")] == pytest.approx(close / np.mean(px[-20:]) - 1)
    assert row[col(cfg, "tech_1m_mom_10")] == pytest.approx(10.0 / close)
    assert row[col(cfg, "tech_1m_roc_10")] == pytest.approx(100.0 * 10.0 / 149.0)
    assert row[col(cfg, "tech_1m_obv_flow_20")] == pytest.approx(1.0)
    assert row[col(cfg, "tech_1m_buy_share_20")] == pytest.approx(1.0)
    assert row[col(cfg, "tech_1m_log_vol_ratio_20")] == pytest.approx(0.0, abs=1e-15)
    assert row[col(cfg, "tech_1m_natr_14")] == pytest.approx(1.0 / close, rel=0.05)


def test_constant_price_gives_zero_ratios_and_nan_where_undefined():
    cfg = TechnicalConfig(intervals=("1m",), lookback_bars=200)
    ts, px, sz, side = _per_minute(np.full(80, 250.0), buy=False)
    row = technical_batch(ts, px, sz, side, np.array([T0 + 80 * 60 * NS]), cfg)[0]
    for name in ("sma20_ratio", "ema20_ratio", "ema50_ratio", "mom_10", "roc_10", "bb_width"):
        assert row[col(cfg, f"tech_1m_{name}")] == 0.0, name
    for name in ("macd_line", "macd_signal", "macd_hist", "natr_14", "buy_share_20", "obv_flow_20"):
        assert row[col(cfg, f"tech_1m_{name}")] == 0.0, name
    assert np.isnan(row[col(cfg, "tech_1m_bb_pctb")])  # zero band width: undefined, not 0


def test_warmup_is_nan_and_one_bar_before_first_value():
    cfg = TechnicalConfig(intervals=("1m",), lookback_bars=200)
    ts, px, sz, side = _per_minute(100.0 + np.sin(np.arange(40)))
    samples = T0 + np.array([0, 14, 15, 40]) * 60 * NS  # bars closed: none, 14, 15, 40
    out = technical_batch(ts, px, sz, side, samples, cfg)
    assert np.isnan(out[0]).all() and np.isnan(out[1, col(cfg, "tech_1m_rsi_14")])
    assert np.isfinite(out[2, col(cfg, "tech_1m_rsi_14")])  # RSI(14) needs 15 closes
    assert np.isnan(out[3, col(cfg, "tech_1m_ema50_ratio")])


def test_obv_flow_matches_talib_obv():
    rng = np.random.default_rng(3)
    n = 300
    c = 100 + np.cumsum(rng.normal(0, 1, n))
    h, lo = c + rng.uniform(0, 1, n), c - rng.uniform(0, 1, n)
    v = rng.exponential(5, n)
    got = _indicators(h, lo, c, v, v * 0.3)[10]
    obv = talib.OBV(c, v)
    ref = (obv[20:] - obv[:-20]) / talib.SUM(v, 20)[20:]
    np.testing.assert_allclose(got[20:], ref, rtol=1e-9)
    assert np.isnan(got[:20]).all()


# ---------------------------------------------------------------- stream == batch, look-ahead


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from orderflow.data.config import SimulatorConfig
    from orderflow.data.simulator import simulate
    from orderflow.data.store import Store

    store = Store(tmp_path_factory.mktemp("sim") / "store")
    simulate(SimulatorConfig(hours=3, seed=2), store)
    tr = store.read("sim", "BTCUSDT", "trade", columns=["ts_event", "price", "size", "side"])
    book = store.read("sim", "BTCUSDT", "book", columns=["ts_event"])
    trades = tuple(tr[c].to_numpy() for c in ("ts_event", "price", "size", "side"))
    return trades, book.ts_event.to_numpy()


@pytest.mark.slow
def test_stream_equals_batch_on_simulated_market(sim):
    trades, samples = sim
    # 1s bars (10,800 of them) make the window move many times; 1m and 5m are the defaults
    cfg = TechnicalConfig(intervals=("1s", "1m", "5m"))
    batch = technical_batch(*trades, samples, cfg)
    assert_agree(replay(cfg, *trades, samples), batch)
    assert np.isfinite(batch[-1]).sum() >= 2 * N_INDICATORS + N_INDICATORS - 4  # 5m EMA50, TRIX...


def test_no_look_ahead_on_truncated_trades(sim):
    trades, samples = sim
    cfg = TechnicalConfig(intervals=("1s", "1m"), lookback_bars=200)
    full = technical_batch(*trades, samples, cfg)
    for t in (samples[len(samples) // 3], samples[2 * len(samples) // 3] + 60 * NS):
        keep = trades[0] <= t
        cut = technical_batch(*(a[keep] for a in trades), samples, cfg)
        before = samples <= t
        np.testing.assert_array_equal(cut[before], full[before])
        assert not np.array_equal(cut[~before], full[~before], equal_nan=True)


def test_long_gap_fast_forward_matches_batch():
    a = _walk(1500, 0.3, seed=5)
    b = _walk(1000, 0.3, seed=6)
    gap = 5000 * NS  # 5000 1s bars with no trade: longer than the window
    trades = [
        np.concatenate([x, y + (gap if i == 0 else 0)]) for i, (x, y) in enumerate(zip(a, b, strict=True))
    ]
    trades[0][1500:] += trades[0][1499] - T0
    samples = np.sort(np.concatenate([trades[0][::7], trades[0][1499] + np.array([1, 130, 2600, 4999]) * NS]))
    cfg = TechnicalConfig(intervals=("1s",), lookback_bars=200)
    assert_agree(replay(cfg, *trades, samples), technical_batch(*trades, samples, cfg))


# ---------------------------------------------------------------- bad input


def test_bad_trades_are_dropped_alike_and_bad_arrays_are_errors():
    ts, px, sz, side = _walk(900, 1.0, seed=7)
    px[100], sz[200], px[300] = np.nan, -1.0, 0.0
    cfg = TechnicalConfig(intervals=("1s",), lookback_bars=200)
    samples = ts[::5]
    st_rows = replay(cfg, ts, px, sz, side, samples)
    assert_agree(st_rows, technical_batch(ts, px, sz, side, samples, cfg))
    st = TechnicalStream(cfg)
    for args in zip(ts.tolist(), px.tolist(), sz.tolist(), side.tolist(), strict=True):
        st.on_trade(*args)
    assert st.bad_trades == 3
    with pytest.raises(ValueError, match="not sorted at index 4"):
        technical_batch(ts[[0, 1, 2, 4, 3]], px[:5], sz[:5], side[:5], samples, cfg)
    with pytest.raises(ValueError, match="trade_sz has shape"):
        technical_batch(ts, px, sz[:-1], side, samples, cfg)


def test_no_trades_or_samples_before_first_bar_are_nan():
    cfg = TechnicalConfig()
    empty = np.array([], dtype=np.int64)
    out = technical_batch(empty, empty.astype(float), empty.astype(float), empty, np.array([T0]), cfg)
    assert out.shape == (1, 2 * N_INDICATORS) and np.isnan(out).all()
    st = TechnicalStream(cfg)
    assert st.advance(T0) is False and np.isnan(st.values).all()


# ---------------------------------------------------------------- real recording


@pytest.mark.slow
@pytest.mark.shared_data
def test_stream_equals_batch_on_real_binance_trades(shared_data, store):
    from orderflow.data.importers.binance_raw import import_binance_raw

    path = shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240808.gz"
    import_binance_raw(store, [path])
    tr = store.read("binance-usdm", "BTCUSDT", "trade", columns=["ts_event", "price", "size", "side"])
    samples = store.read("binance-usdm", "BTCUSDT", "book", columns=["ts_event"]).ts_event.to_numpy()
    trades = tuple(tr[c].to_numpy() for c in ("ts_event", "price", "size", "side"))
    assert len(trades[0]) == 21_313
    cfg = TechnicalConfig(intervals=("1s", "1m"))
    batch = technical_batch(*trades, samples, cfg)
    assert_agree(replay(cfg, *trades, samples), batch)
    # under 6 minutes: 1s indicators warm up, 1m RSI(14) never does
    assert np.isfinite(batch[-1, :N_INDICATORS]).all()
    assert np.isnan(batch[:, col(cfg, "tech_1m_rsi_14")]).all()
