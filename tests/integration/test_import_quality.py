"""Importers and quality checks on the recorded files in ../shared/data."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from orderflow.data.importers import ImportError_, import_paths
from orderflow.data.importers.binance_raw import import_binance_raw
from orderflow.data.quality import check


@pytest.mark.slow
def test_usdm_book_has_no_gaps_and_is_never_crossed(store, shared_data):
    import_binance_raw(store, [shared_data / "hftbacktest_binance_raw/usdm/btcusdt_20240808.gz"])
    rep = check(store)
    book = rep.get("binance-usdm", "BTCUSDT", "book")
    assert book.events == 6547 and book.gaps == 0 and book.crossed == 0
    assert rep.get("binance-usdm", "BTCUSDT", "depth").chain_breaks == 0
    assert rep.get("binance-usdm", "BTCUSDT", "trade").duplicates == 0
    assert rep.get("binance-usdm", "BTCUSDT", "quote").crossed == 0


@pytest.mark.slow
def test_chain_continues_across_two_files(store, shared_data):
    d = shared_data / "hftbacktest_binance_raw/usdm"
    import_paths(store, [d / "btcusdt_20240718.gz", d / "btcusdt_20240719.gz"], "binance-raw")
    rep = check(store)
    for kind in ("book", "depth"):
        assert rep.get("binance-usdm", "BTCUSDT", kind).gaps == 0
    assert rep.get("binance-usdm", "BTCUSDT", "book").crossed == 0
    assert not [f for f in rep.failures() if "/book:" in f or "/depth:" in f]


def test_tardis_files(store, shared_data):
    d = shared_data / "nautilus_trader_testdata/tardis"
    rep = import_paths(store, sorted(d.glob("*.csv")), "tardis")
    assert rep.rows == {
        "binance-usdm/BTCUSDT/book": 20,
        "binance-usdm/BTCUSDT/quote": 9999,
        "binance-usdm/BTCUSDT/trade": 9999,
        "bitmex/XBTUSD/trade": 10,
        "deribit/BTC-PERPETUAL/depth": 15,
        "deribit/BTC-PERPETUAL/book": 1,
        "huobi-dm-swap/BTC-USD/quote": 10,
    }
    t = store.read("binance-usdm", "BTCUSDT", "trade")
    assert t.trade_id.iloc[0] == 42377944 and t.trade_id.iloc[-1] == 42387942
    q = check(store, venue="binance-usdm")
    assert q.get("binance-usdm", "BTCUSDT", "trade").duplicates == 0
    assert q.get("binance-usdm", "BTCUSDT", "book").crossed == 0


@pytest.mark.slow
def test_kline_files(store, shared_data):
    k = shared_data / "binance_klines"
    vision = sorted((shared_data / "nautilus_trader_testdata/binance_vision").glob("ADABTC-1m-*.csv"))
    import_paths(store, vision, "binance-vision", venue="binance-spot")
    import_paths(store, [k / "bo-chia0_cryptodatadownload/BTCUSDT_1h.csv"], "ohlcv", venue="binance-spot")
    import_paths(store, [k / "rocketalerts_binance_spot/ETHUSDT_1m.csv"], "ohlcv", venue="binance-spot")
    import_paths(store, [k / "iaqf_binance_us/BTCUSD_1m_20230301_20230321.csv"], "ohlcv", venue="binance-us")
    ft = shared_data / "freqtrade_testdata"
    import_paths(
        store,
        [ft / "ETH_BTC-5m.feather", ft / "futures/XRP_USDT_USDT-1h-futures.feather"],
        "ohlcv",
        venue="freqtrade",
    )
    rep = check(store)
    got = {(d.symbol, d.kind): (d.events, d.missing_bars, d.duplicates) for d in rep.datasets}
    assert got[("ADABTC", "bar_1m")] == (2880, 0, 0)
    assert got[("BTCUSDT", "bar_1h")] == (16319, 0, 0)  # newest-first file, no missing hours
    assert got[("ETHUSDT", "bar_1m")][0] == 1000
    assert got[("BTCUSD", "bar_1m")] == (30240, 0, 0)
    assert got[("ETHBTC", "bar_5m")][0] == 5760 and got[("XRPUSDT", "bar_1h")][0] == 100
    cdd = store.read("binance-spot", "BTCUSDT", "bar_1h")
    assert np.all(np.diff(cdd.ts_open) == 3600 * 10**9)
    assert cdd.open.iloc[-1] == 26564.70 and cdd.trades.iloc[-1] == 252233


def test_broken_reimport_keeps_stored_rows(store, shared_data, tmp_path):
    src = shared_data / "nautilus_trader_testdata/binance_vision/ADABTC-1m-2021-11-27.csv"
    import_paths(store, [src], "binance-vision", venue="binance-spot")
    before = store.read("binance-spot", "ADABTC", "bar_1m")
    assert len(before) == 1440
    import_paths(store, [src], "binance-vision", venue="binance-spot")  # the same file again: no duplicates
    assert len(store.read("binance-spot", "ADABTC", "bar_1m")) == 1440
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    empty = broken_dir / src.name
    empty.write_text("")
    with pytest.raises(ImportError_, match="empty file"):
        import_paths(store, [empty], "binance-vision", venue="binance-spot")
    bad = broken_dir / "ADABTC-1m-2021-11-27-part.csv"
    shutil.copy(src, bad)
    text = bad.read_text().splitlines()
    bad.write_text("\n".join([*text[:10], "1637971800000,0.0000285,x", "garbage"]))
    with pytest.raises(ImportError_, match="no header row"):
        import_paths(store, [bad], "ohlcv", venue="binance-spot", symbol="ADABTC")
    rep = import_paths(store, [bad], "binance-vision", venue="binance-spot", symbol="ADABTC", interval="1m")
    assert any(":11: expected 12 fields" in p for p in rep.problems)
    # the broken file's 10 good rows are bars stored already (same open times): left out, not doubled
    key = "binance-spot/ADABTC/bar_1m"
    assert rep.duplicates == {key: 10} and rep.rows[key] == 0
    after = store.read("binance-spot", "ADABTC", "bar_1m")
    assert len(after) == 1440
    assert after.set_index("ts_open").close.equals(before.set_index("ts_open").close)
    assert check(store).get("binance-spot", "ADABTC", "bar_1m").duplicates == 0
