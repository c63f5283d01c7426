"""Kline backfill against the replay server's klines endpoint (trades-built and file-served klines)."""

from __future__ import annotations

import numpy as np
import pytest

from orderflow.adapters.binance.market import BinanceRest
from orderflow.adapters.binance.replay.server import ReplayServer
from orderflow.data.backfill import backfill_klines_async

pytestmark = pytest.mark.shared_data
S = 1_000_000_000


@pytest.mark.slow
async def test_backfill_from_recorded_trades_pages(shared_data, store) -> None:
    f = shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240808.gz"
    async with ReplayServer([f]) as srv:
        start, end = 1723161000 * S, 1723161600 * S  # 23:50 -> 00:00 UTC, wider than the recording
        async with BinanceRest(srv.endpoints()) as rest:
            n = await backfill_klines_async(
                store, "usdm", "BTCUSDT", "1s", start, end, srv.endpoints(), limit=100, rest=rest
            )
            assert rest.stats["requests"] == 5  # 342 klines in pages of 100, then an empty page
    assert n == 342
    bars = store.read("binance-usdm", "BTCUSDT", "bar_1s")
    assert len(bars) == 342
    opens = bars["ts_open"].to_numpy()
    assert (np.diff(opens) == S).all()  # contiguous, no duplicates across pages
    assert (bars["ts_event"] - bars["ts_open"] == S).all()
    assert (bars["high"] >= bars["low"]).all() and bars["volume"].sum() > 0
    # a second run replaces rather than duplicates
    async with ReplayServer([f]) as srv:
        await backfill_klines_async(store, "usdm", "BTCUSDT", "1s", start, end, srv.endpoints(), limit=100)
    assert len(store.read("binance-usdm", "BTCUSDT", "bar_1s")) == 342


async def test_backfill_from_kline_file_full_pages(shared_data, store) -> None:
    kf = shared_data / "binance_klines" / "bo-chia0_cryptodatadownload" / "BTCUSDT_1h.csv"
    async with ReplayServer([], market="usdm", kline_file=kf) as srv:
        start = 1596333600 * S  # 2020-08-02 02:00, the file's first hour
        end = start + 3000 * 3600 * S
        n = await backfill_klines_async(store, "usdm", "BTCUSDT", "1h", start, end, srv.endpoints())
    assert n == 3000  # two pages of 1500 (the USD-M maximum)
    bars = store.read("binance-usdm", "BTCUSDT", "bar_1h")
    assert bars["ts_open"].iloc[0] == start and bars["open"].iloc[0] == 11956.28
    assert (np.diff(bars["ts_open"].to_numpy()) == 3600 * S).all()


async def test_backfill_rejects_empty_range(store) -> None:
    with pytest.raises(ValueError, match="not after start"):
        await backfill_klines_async(store, "usdm", "BTCUSDT", "1m", 10 * S, 10 * S)
