"""The header-driven rate limiter (fake clock) and the transport's 429 / 418 / no-retry behaviour."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from orderflow.adapters.binance.common.config import TradingClientConfig
from orderflow.adapters.binance.common.errors import IpBanned, RateLimited, SignatureError
from orderflow.adapters.binance.common.signing import Credentials
from orderflow.adapters.binance.http.ratelimit import LimitRule, RateLimiter, rules_from_exchange_info
from orderflow.adapters.binance.trading.client import BinanceTradingClient

NS = 1_000_000_000


class FakeClock:
    def __init__(self, t_ns: int = 1_700_000_000 * NS) -> None:
        self.t = t_ns
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.t

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += int(s * NS)


def limiter(clock: FakeClock, rules=None, **kw) -> RateLimiter:
    rules = rules or [LimitRule("REQUEST_WEIGHT", "MINUTE", 1, 100), LimitRule("ORDERS", "SECOND", 10, 5)]
    return RateLimiter(rules, clock=clock, sleep=clock.sleep, safety=1.0, **kw)


def test_rules_from_exchange_info_and_header_names():
    rules = rules_from_exchange_info(
        [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
        ]
    )
    assert [r.header for r in rules] == [
        "x-mbx-used-weight-1m",
        "x-mbx-order-count-10s",
        "x-mbx-order-count-1d",
    ]
    assert rules[1].interval_ns == 10 * NS


async def test_waits_for_next_window_before_exceeding_weight():
    c = FakeClock(1_700_000_000 * NS + 20 * NS)  # 20 s into a minute (1_700_000_000 % 60 == 20)
    rl = limiter(c)
    for _ in range(10):
        await rl.acquire(weight=10)
    assert c.slept == []
    await rl.acquire(weight=10)
    assert c.slept == [pytest.approx(20.0)]  # to the start of the next minute
    assert rl.used(rl.rules[0]) == 10


async def test_order_count_limit_uses_its_own_window():
    c = FakeClock(1_700_000_000 * NS + 3 * NS)
    rl = limiter(c)
    for _ in range(5):
        await rl.acquire(weight=1, orders=1)
    assert rl.delay_s(weight=1, orders=1) == pytest.approx(7.0)  # 10 s window started at ...0 s
    assert rl.delay_s(weight=1, orders=0) == 0.0  # a query does not count against ORDERS


async def test_headers_raise_counters_to_server_counts():
    c = FakeClock()
    rl = limiter(c)
    await rl.acquire(weight=1)
    rl.update_from_headers({"X-MBX-USED-WEIGHT-1M": "95", "X-MBX-ORDER-COUNT-10S": "5"})
    assert rl.used(rl.rules[0]) == 95
    assert rl.delay_s(weight=10) > 0 and rl.delay_s(weight=5) == 0
    assert rl.delay_s(weight=1, orders=1) > 0
    rl.update_from_headers({"x-mbx-used-weight-1m": "3"})  # never lowers below what is known
    assert rl.used(rl.rules[0]) == 95


async def test_429_blocks_for_retry_after_and_backs_off_without_it():
    c = FakeClock()
    rl = limiter(c, backoff_initial_s=1.0)
    assert rl.on_429(7) == 7.0
    await rl.acquire()
    assert c.slept == [pytest.approx(7.0)]
    assert rl.on_429(None) == 2.0  # second 429 in a row: exponential back-off
    rl.on_success()
    assert rl.on_429(None) == 1.0


async def test_418_bans_until_retry_after_then_allows():
    c = FakeClock()
    rl = limiter(c)
    err = rl.on_418(300)
    assert isinstance(err, IpBanned) and err.ban_until_ns == c.t + 300 * NS
    with pytest.raises(IpBanned) as ei:
        await rl.acquire()
    assert ei.value.ban_until_ns == c.t + 300 * NS and c.slept == []
    c.t += 301 * NS
    await rl.acquire()


async def test_too_long_wait_raises_rate_limited():
    c = FakeClock()
    rl = limiter(c, max_wait_s=5.0)
    rl.on_429(60)
    with pytest.raises(RateLimited, match="exceeds max_wait_s"):
        await rl.acquire()


# -- the transport against a loopback server -------------------------------------------------------
class Script:
    """A tiny HTTP server answering /api/v3/time and /api/v3/order from a script of responses."""

    def __init__(self, responses):
        self.responses = list(responses)
        self.hits: list[str] = []

    async def time(self, request):
        return web.json_response({"serverTime": 1_700_000_000_000})

    async def order(self, request):
        self.hits.append(request.method)
        status, body, headers = self.responses.pop(0)
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture()
async def scripted(request):
    script = Script(request.param)
    app = web.Application()
    app.router.add_get("/api/v3/time", script.time)
    app.router.add_route("*", "/api/v3/order", script.order)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    cfg = TradingClientConfig(
        market="spot",
        rest_base_url=f"http://127.0.0.1:{port}",
        ws_base_url=f"ws://127.0.0.1:{port}",
        max_retries=2,
    )
    clock = FakeClock()

    async def fake_sleep(s):
        await clock.sleep(s)
        await asyncio.sleep(0)

    client = BinanceTradingClient(cfg, Credentials.hmac("K" * 64, "S" * 64), clock=clock, sleep=fake_sleep)
    await client.start(load_markets=False)
    yield client, script, clock.slept
    await client.close()
    await runner.cleanup()


ORDER_BODY = {
    "symbol": "BTCUSDT",
    "orderId": 1,
    "clientOrderId": "c1",
    "transactTime": 1,
    "price": "100",
    "origQty": "1",
    "executedQty": "0",
    "cummulativeQuoteQty": "0",
    "status": "NEW",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "side": "BUY",
}


@pytest.mark.parametrize(
    "scripted",
    [[(429, {"code": -1003, "msg": "Too many requests"}, {"Retry-After": "3"}), (200, ORDER_BODY, {})]],
    indirect=True,
)
async def test_transport_honours_retry_after_then_succeeds(scripted):
    client, script, slept = scripted
    o = await client.place_order("BTCUSDT", "BUY", "LIMIT", "1", "100", client_order_id="c1")
    assert o.order_id == 1 and script.hits == ["POST", "POST"]
    assert slept == [pytest.approx(3.0)]


@pytest.mark.parametrize(
    "scripted", [[(418, {"code": -1003, "msg": "banned"}, {"Retry-After": "120"})]], indirect=True
)
async def test_transport_stops_on_418(scripted):
    client, script, _ = scripted
    with pytest.raises(IpBanned):
        await client.place_order("BTCUSDT", "BUY", "LIMIT", "1", "100", client_order_id="c1")
    with pytest.raises(IpBanned):  # no request is sent during the ban
        await client.get_order("BTCUSDT", client_order_id="c1")
    assert script.hits == ["POST"]


@pytest.mark.parametrize(
    "scripted",
    [[(400, {"code": -1022, "msg": "Signature for this request is not valid."}, {})]],
    indirect=True,
)
async def test_errors_that_cannot_succeed_are_not_retried_and_are_redacted(scripted):
    client, script, _ = scripted
    with pytest.raises(SignatureError) as ei:
        await client.place_order("BTCUSDT", "BUY", "LIMIT", "1", "100", client_order_id="c1")
    assert script.hits == ["POST"]
    assert "K" * 64 not in str(ei.value) and "S" * 64 not in repr(client)
