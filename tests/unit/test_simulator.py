"""Market simulator: determinism, grids, an uncrossed book, price formed by order flow, real-like OFI
impact and a modest informed-flow signal."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from orderflow.data.facts import compute_facts
from orderflow.data.schema import book_arrays
from orderflow.data.simulator import SimulatorConfig, simulate
from orderflow.features.ofi import bucket_ofi, mid_price, ofi_per_event

NS = 1_000_000_000


@pytest.fixture(scope="module")
def hour(tmp_path_factory):
    from orderflow.data.store import Store

    store = Store(tmp_path_factory.mktemp("sim") / "store")
    res = simulate(SimulatorConfig(hours=1.0, seed=1), store=store)
    return store, res


def test_same_seed_same_output_and_other_seed_differs():
    a = simulate(SimulatorConfig(hours=0.05, seed=3))
    b = simulate(SimulatorConfig(hours=0.05, seed=3))
    c = simulate(SimulatorConfig(hours=0.05, seed=4))
    assert a.book.equals(b.book) and a.trades.equals(b.trades) and a.regimes.equals(b.regimes)
    assert len(a.book) == 1800
    assert not a.trades.equals(c.trades)


def test_config_is_strict_and_frozen():
    with pytest.raises(pydantic.ValidationError, match="hourz"):
        SimulatorConfig(hourz=2)
    cfg = SimulatorConfig()
    with pytest.raises(pydantic.ValidationError):
        cfg.hours = 3  # type: ignore[misc]
    assert (cfg.symbol, cfg.venue, cfg.tick_size, cfg.lot_size, cfg.levels) == (
        "BTCUSDT",
        "sim",
        0.1,
        0.001,
        20,
    )


def test_store_contents_grid_and_uncrossed_book(hour):
    store, res = hour
    assert store.instrument("sim", "BTCUSDT").tick_size == 0.1
    book = store.read("sim", "BTCUSDT", "book")
    trades = store.read("sim", "BTCUSDT", "trade")
    regimes = store.read("sim", "BTCUSDT", "regime")
    assert len(book) == res.book_rows == 36_000
    assert len(regimes) == 3600 and set(regimes["regime"].unique()) <= {0, 1, 2}
    assert np.all(np.diff(book["ts_event"].to_numpy()) == 100_000_000)
    lat = book["ts_recv"].to_numpy() - book["ts_event"].to_numpy()
    assert lat.min() >= 0 and 1e6 < lat.mean() < 20e6
    bp, bs, ap, as_ = book_arrays(book)
    assert np.all(bp[:, 0] < ap[:, 0])  # never crossed
    db, da = np.diff(bp, axis=1), np.diff(ap, axis=1)
    assert np.all(db[np.isfinite(db)] < 0) and np.all(da[np.isfinite(da)] > 0)
    assert np.isfinite(bp).mean() > 0.99 and np.isfinite(ap).mean() > 0.99  # 20 levels nearly always
    for px in (bp, ap, trades["price"].to_numpy()):
        ticks = px[np.isfinite(px)] / 0.1
        assert np.allclose(ticks, np.round(ticks), atol=1e-6)
    for sz in (bs, as_, trades["size"].to_numpy()):
        lots = sz[np.isfinite(sz)] / 0.001
        assert np.allclose(lots, np.round(lots), atol=1e-6) and np.nanmin(sz) >= 0.001
    assert np.array_equal(trades["trade_id"].to_numpy(), np.arange(1, len(trades) + 1))
    assert set(trades["side"].unique()) == {-1, 1}


def test_price_moves_with_order_flow(hour):
    store, _ = hour
    book = store.read("sim", "BTCUSDT", "book")
    bp, bs, ap, as_ = book_arrays(book, 1)
    mid = mid_price(bp, ap)
    assert (mid.max() - mid.min()) / 0.1 > 100  # the price wanders tens of dollars
    b = bucket_ofi(book["ts_event"].to_numpy(), ofi_per_event(bp, bs, ap, as_), mid, NS, tick=0.1)
    corr = np.corrcoef(b.ofi[1:, 0], b.dmid[1:])[0, 1]
    assert corr > 0.4


def test_ofi_impact_inside_the_real_range(hour):
    store, _ = hour
    f = compute_facts(store, "sim", "BTCUSDT")
    # min..max over four real Binance recordings (see /work/shared/data/README.md)
    assert 0.227 <= f["ofi_1s_r2_best"] <= 0.514
    assert 0.262 <= f["ofi_1s_r2_5level"] <= 0.561
    assert 0.334 <= f["ofi_10s_r2_best"] <= 0.688
    assert 0.509 <= f["ofi_10s_r2_5level"] <= 0.858
    assert f["spread_1tick_share"] > 0.97
    assert f["ret_1s_kurtosis"] > 5 and f["abs_ret_acf_1_10"] > 0
    assert 0.1 < f["ret_1s_zero_share"] < 0.8
    assert 20 < f["trades_per_s"] < 150


def flow_return_corr(book, trades, flow_s: int = 10, ahead_s: int = 30) -> float:
    """Correlation of signed trade volume over ``flow_s`` with the mid log return over the next
    ``ahead_s`` seconds."""
    ts0 = int(book["ts_event"].iloc[0])
    step = flow_s * NS
    nb = int((int(book["ts_event"].iloc[-1]) - ts0) // step) - ahead_s // flow_s
    signed = trades["size"].to_numpy() * trades["side"].to_numpy()
    flow = np.bincount((trades["ts_event"].to_numpy() - ts0) // step, weights=signed, minlength=nb + 10)[:nb]
    mid = (book["bid_px_1"].to_numpy() + book["ask_px_1"].to_numpy()) / 2
    ends = ts0 + np.arange(1, nb + 1) * step
    at = np.searchsorted(book["ts_event"].to_numpy(), ends, side="right") - 1
    later = np.searchsorted(book["ts_event"].to_numpy(), ends + ahead_s * NS, side="right") - 1
    return float(np.corrcoef(flow, np.log(mid[later] / mid[at]))[0, 1])


def test_informed_flow_predicts_modestly(hour):
    store, _ = hour
    corr = flow_return_corr(store.read("sim", "BTCUSDT", "book"), store.read("sim", "BTCUSDT", "trade"))
    assert 0.0 < corr < 0.3
