"""BinanceRest over real loopback sockets: the replay server, and tiny aiohttp apps for 418 and weights."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from orderflow.adapters.binance.common.endpoints import loopback_endpoints
from orderflow.adapters.binance.common.errors import (
    BinanceError,
    ExchangeUnavailable,
    IpBanned,
    UnknownSymbol,
)
from orderflow.adapters.binance.common.venues import USDM
from orderflow.adapters.binance.market import BinanceRest
from orderflow.adapters.binance.replay.server import ReplayServer

pytestmark = pytest.mark.shared_data


@pytest.fixture()
def btc_file(shared_data):
    return shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240808.gz"


async def test_depth_time_info_klines(btc_file) -> None:
    async with ReplayServer([btc_file]) as srv, BinanceRest(srv.endpoints()) as rest:
        snap = await rest.depth("btcusdt", 100)
        assert snap.lastUpdateId == 5123107852948  # the recorded snapshot: the replay has not passed it
        assert len(snap.bids) == 100 and snap.bids[0] == (61800.2, 2.909)
        assert rest.used_weight == USDM.depth_weight(100) == 5
        assert abs(await rest.server_time() - 1723161255030) < 1000
        info = await rest.exchange_info(["BTCUSDT"])
        assert (info["BTCUSDT"].tick_size, info["BTCUSDT"].lot_size) == (0.1, 0.001)
        bars = await rest.klines("BTCUSDT", "1m", limit=100)
        assert len(bars) == 4 and all(b.closed for b in bars)
        assert all(b.ts_event - b.ts_open == 60_000_000_000 for b in bars)
        assert bars[0].ts_open == 1723161300 * 10**9 and bars[0].open == 61807.7 and bars[0].trades == 2005
        assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)


async def test_invalid_symbol_is_typed_and_not_retried(btc_file) -> None:
    async with ReplayServer([btc_file]) as srv, BinanceRest(srv.endpoints()) as rest:
        with pytest.raises(UnknownSymbol) as ei:
            await rest.depth("NOSUCHUSDT", 1000)
        assert (ei.value.code, ei.value.status, ei.value.msg) == (-1121, 400, "Invalid symbol.")
        assert "NOSUCHUSDT" in str(ei.value)
        assert rest.stats["requests"] == 1
        with pytest.raises(UnknownSymbol):
            await rest.exchange_info(["NOSUCHUSDT"])


@pytest.mark.slow
async def test_429_retry_after_is_honoured(btc_file) -> None:
    async with (
        ReplayServer([btc_file], reject_depth=1, retry_after_s=1) as srv,
        BinanceRest(srv.endpoints()) as rest,
    ):
        t0 = time.monotonic()
        snap = await rest.depth("BTCUSDT", 1000)
        assert time.monotonic() - t0 >= 1.0
        assert snap.lastUpdateId == 5123107852948
        assert rest.stats["retries_429"] == 1 and srv.stats["rejected_depth"] == 1


async def _app_server(handler) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/fapi/v1/depth", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def test_418_raises_ip_banned_and_stops() -> None:
    calls = 0

    async def banned(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response({"code": -1003, "msg": "banned"}, status=418, headers={"Retry-After": "120"})

    runner, port = await _app_server(banned)
    try:
        async with BinanceRest(loopback_endpoints("usdm", "127.0.0.1", port)) as rest:
            with pytest.raises(IpBanned) as ei:
                await rest.depth("BTCUSDT", 1000)
            assert ei.value.retry_after_s == 120 and calls == 1
    finally:
        await runner.cleanup()


async def test_waits_for_next_minute_when_weight_would_pass_budget() -> None:
    body = b'{"lastUpdateId":7,"bids":[["1.0","2.0"]],"asks":[["1.1","3.0"]]}'

    async def depth(request: web.Request) -> web.Response:
        # lowercase header variant; 1915 used of 2400 * 0.8 = 1920
        return web.Response(
            body=body, content_type="application/json", headers={"x-mbx-used-weight-1m": "1915"}
        )

    minute_end = (time.time_ns() // 60_000_000_000 + 10) * 60_000_000_000
    fake_now = minute_end - 300_000_000  # 0.3 s before a minute boundary
    slept_ns = 0

    async def sleep(s: float) -> None:  # a real sleep that also moves the fake clock
        nonlocal slept_ns
        slept_ns += int(s * 1e9)
        await asyncio.sleep(s)

    runner, port = await _app_server(depth)
    try:
        async with BinanceRest(
            loopback_endpoints("usdm", "127.0.0.1", port), clock=lambda: fake_now + slept_ns, sleep=sleep
        ) as rest:
            await rest.depth("BTCUSDT", 50)
            assert rest.used_weight == 1915
            await rest.depth("BTCUSDT", 5)  # weight 2: 1917 <= 1920, no wait
            assert rest.stats["weight_waits"] == 0
            t0 = time.monotonic()
            snap = await rest.depth("BTCUSDT", 1000)  # weight 20 would pass the budget: wait
            assert rest.stats["weight_waits"] == 1 and time.monotonic() - t0 >= 0.3
            assert snap.lastUpdateId == 7
    finally:
        await runner.cleanup()


async def test_5xx_is_exchange_unavailable_after_the_get_retries() -> None:
    calls = 0

    async def down(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response(
            {"code": -1001, "msg": "Internal error; unable to process your request."}, status=503
        )

    runner, port = await _app_server(down)
    try:
        async with BinanceRest(loopback_endpoints("usdm", "127.0.0.1", port), max_retries=2) as rest:
            with pytest.raises(ExchangeUnavailable) as ei:
                await rest.depth("BTCUSDT", 100)
            assert (ei.value.code, ei.value.status, ei.value.path) == (-1001, 503, "/fapi/v1/depth")
            assert calls == 3 and rest.stats["unknown_outcomes"] == 3  # a GET is retried: 1 + 2 retries
            # the market-data transport has no credentials: a signed call is refused before it is sent
            with pytest.raises(BinanceError, match="needs an API key"):
                await rest.rest.request("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT"}, signed=True)
            assert calls == 3
    finally:
        await runner.cleanup()
