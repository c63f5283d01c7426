"""BinanceTradingClient end to end against the local Binance-compatible exchange (real sockets).

A small HTTP proxy sits between the client and the exchange where a test needs a fault the
exchange does not make by itself: a lost response (the order reached the exchange, the answer did
not come back) or an injected 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import aiohttp
import pytest

from orderflow.adapters.binance.common.config import TradingClientConfig
from orderflow.adapters.binance.common.errors import (
    BadRequest,
    FilterError,
    InsufficientBalance,
    SignatureError,
    UnknownOrder,
    UnknownSymbol,
)
from orderflow.adapters.binance.common.signing import Credentials
from orderflow.adapters.binance.trading.client import BinanceTradingClient, sequential_ids
from orderflow.adapters.binance.trading.events import ExecType, OrderStatus, OrderUpdate, StreamStatus
from orderflow.adapters.binance.userstream import UserDataStream
from support.httpfault import RestFaultProxy

MARKETS = ["spot", "usdm"]


@pytest.fixture(params=MARKETS)
async def exchange(request):
    from orderflow.execution.local.testing import running_local_exchange

    with running_local_exchange(
        source="sim",
        seed=0,
        clock="manual",
        market=request.param,
        spot_balances={"USDT": 5_000_000.0, "BTC": 50.0},
    ) as ex:
        assert ex.market == request.param
        yield ex


async def _advance(ex, **kw) -> None:
    await asyncio.to_thread(ex.advance, **kw)


def make_client(ex, rest_url: str | None = None, secret: str | None = None, **cfg) -> BinanceTradingClient:
    config = TradingClientConfig(
        market=ex.market, rest_base_url=rest_url or ex.rest_url, ws_base_url=ex.ws_url, **cfg
    )
    creds = Credentials.hmac(ex.api_key, secret or ex.api_secret)
    return BinanceTradingClient(config, creds, client_id_gen=sequential_ids("it", "0"))


async def book(client: BinanceTradingClient, sym: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    prefix = "/api/v3" if client.config.market == "spot" else "/fapi/v1"
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{client.rest.base_url}{prefix}/depth?symbol={sym}&limit=5") as r,
    ):
        b = await r.json()
    return (
        Decimal(b["bids"][0][0]),
        Decimal(b["bids"][0][1]),
        Decimal(b["asks"][0][0]),
        Decimal(b["asks"][0][1]),
    )


def snap(x: Decimal, step: Decimal) -> Decimal:
    """``x`` rounded down to a multiple of ``step``."""
    return (x / step).to_integral_value(rounding="ROUND_FLOOR") * step


def small_qty(client: BinanceTradingClient, sym: str, price: Decimal, mult: int = 2) -> Decimal:
    f = client.filters[sym]
    q = snap(f.min_notional * mult / price, f.step_size) + f.step_size
    return max(q, f.min_qty)


async def test_place_query_cancel_each_order_type(exchange):
    async with make_client(exchange) as c:
        sym = next(iter(c.filters))
        f = c.filters[sym]
        bid, _, ask, _ = await book(c, sym)
        far = snap(bid * Decimal("0.9"), f.tick_size)
        qty = small_qty(c, sym, far)
        resting = [
            await c.place_order(sym, "BUY", "LIMIT", qty, far),
            await c.place_order(sym, "BUY", "LIMIT", qty, far, post_only=True),
            await c.place_order(sym, "SELL", "STOP_LIMIT", qty, far, stop_price=far),
        ]
        for o in resting:
            assert o.status is OrderStatus.NEW and o.client_order_id.startswith("it-0-")
            q = await c.get_order(sym, client_order_id=o.client_order_id)
            assert (q.order_id, q.status) == (o.order_id, OrderStatus.NEW)
            assert (await c.get_order(sym, order_id=o.order_id)).client_order_id == o.client_order_id
        assert resting[1].post_only and resting[2].order_type.value == "STOP_LIMIT"
        open_ids = {o.client_order_id for o in await c.open_orders(sym)}
        assert {o.client_order_id for o in resting} <= open_ids
        for o in resting:
            done = await c.cancel_order(sym, client_order_id=o.client_order_id)
            assert done.status is OrderStatus.CANCELED
        assert not {o.client_order_id for o in await c.open_orders(sym)} & open_ids
        with pytest.raises(UnknownOrder):
            await c.cancel_order(sym, client_order_id=resting[0].client_order_id)
        ioc = await c.place_order(sym, "BUY", "LIMIT", qty, far, time_in_force="IOC")
        assert ioc.status is OrderStatus.EXPIRED and ioc.filled_qty == 0
        mkt = await c.place_order(sym, "BUY", "MARKET", small_qty(c, sym, ask), ref_price=ask)
        assert mkt.status is OrderStatus.FILLED and mkt.filled_qty > 0 and mkt.avg_price > 0
        assert (await c.balances()) and (not c.futures or sym in await c.positions())


async def test_partial_fills_arrive_on_the_user_stream(exchange):
    async with make_client(exchange) as c:
        sym = next(iter(c.filters))
        f = c.filters[sym]
        stream = UserDataStream(c)
        async with stream:
            await asyncio.wait_for(stream.connected.wait(), 10)
            _, _, ask, ask_qty = await book(c, sym)
            quote = (await c.balances())[f.quote_asset or "USDT"].free
            affordable = Decimal(str(quote)) * (20 if c.futures else 1) / ask / 2
            if affordable <= ask_qty:  # cannot take the whole level: buy into it at a better price
                pytest.fail(f"test account too small: {affordable} < top ask size {ask_qty}")
            qty = snap(min(ask_qty * Decimal("1.5"), affordable), f.step_size)
            o = await c.place_order(sym, "BUY", "LIMIT", qty, ask)
            updates: list[OrderUpdate] = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    ev = await stream.get(timeout=0.5)
                except TimeoutError:
                    await _advance(exchange, events=200)
                    continue
                if isinstance(ev, OrderUpdate) and ev.client_order_id == o.client_order_id:
                    updates.append(ev)
                    if ev.status is OrderStatus.FILLED or (
                        ev.status is OrderStatus.PARTIALLY_FILLED and len(updates) >= 2
                    ):
                        break
            partial = [u for u in updates if u.status is OrderStatus.PARTIALLY_FILLED]
            assert partial, [u.status for u in updates]
            assert all(u.last_fill_qty > 0 and u.last_fill_price > 0 for u in partial)
            assert sum(u.last_fill_qty for u in updates) == pytest.approx(updates[-1].filled_qty)
            await c.cancel_order(sym, client_order_id=o.client_order_id)


@pytest.mark.slow
async def test_dropped_stream_is_detected_and_state_recovered_by_rest(exchange):
    async with make_client(exchange, reconnect_initial_s=1.0, poll_interval_s=5.0) as c:
        sym = next(iter(c.filters))
        stream = UserDataStream(c)
        async with stream:
            await asyncio.wait_for(stream.connected.wait(), 10)
            _, _, ask, _ = await book(c, sym)
            await stream.drop_connection()
            await asyncio.sleep(0.05)
            o = await c.place_order(sym, "BUY", "MARKET", small_qty(c, sym, ask), ref_price=ask)
            seen: list[object] = []
            deadline = time.monotonic() + 15
            got = None
            while time.monotonic() < deadline and got is None:
                ev = await stream.get(timeout=15)
                seen.append(ev)
                if isinstance(ev, OrderUpdate) and ev.client_order_id == o.client_order_id:
                    got = ev
            states = [e.state for e in seen if isinstance(e, StreamStatus)]
            assert "disconnected" in states
            assert got is not None and got.status is OrderStatus.FILLED and got.filled_qty == o.filled_qty
            assert got.execution is ExecType.RECOVERED and got.source == "rest"
            assert stream.stats["drops"] >= 1 and stream.stats["connects"] >= 2


# -- faults through an HTTP proxy ------------------------------------------------------------------


@pytest.mark.slow
async def test_lost_order_response_is_not_duplicated(exchange):
    async with (
        RestFaultProxy(exchange.rest_url) as proxy,
        make_client(exchange, rest_url=proxy.url, recv_window_ms=1000, request_timeout_s=5) as c,
    ):
        sym = next(iter(c.filters))
        f = c.filters[sym]
        bid, _, _, _ = await book(c, sym)
        far = snap(bid * Decimal("0.9"), f.tick_size)
        proxy.drop_answer = True
        o = await c.place_order(sym, "BUY", "LIMIT", small_qty(c, sym, far), far, client_order_id="lost-1")
        assert o.client_order_id == "lost-1" and o.status is OrderStatus.NEW
        assert proxy.order_posts == 1 and c.stats["orders_recovered"] == 1
        mine = [x for x in await c.open_orders(sym) if x.client_order_id == "lost-1"]
        assert len(mine) == 1
        await c.cancel_order(sym, client_order_id="lost-1")


@pytest.mark.slow
async def test_429_retry_after_is_honoured(exchange):
    async with RestFaultProxy(exchange.rest_url) as proxy, make_client(exchange, rest_url=proxy.url) as c:
        sym = next(iter(c.filters))
        f = c.filters[sym]
        bid, _, _, _ = await book(c, sym)
        far = snap(bid * Decimal("0.9"), f.tick_size)
        proxy.inject_429 = 1
        t0 = time.monotonic()
        o = await c.place_order(sym, "BUY", "LIMIT", small_qty(c, sym, far), far)
        assert time.monotonic() - t0 >= 1.0
        assert o.status is OrderStatus.NEW and proxy.order_posts == 1
        assert c.limiter.stats["http_429"] == 1
        await c.cancel_order(sym, order_id=o.order_id)


async def test_bad_inputs_give_typed_errors_and_are_not_retried(exchange):
    async with make_client(exchange) as c:
        sym = next(iter(c.filters))
        f = c.filters[sym]
        bid, _, _, _ = await book(c, sym)
        far = snap(bid * Decimal("0.9"), f.tick_size)
        qty = small_qty(c, sym, far)
        off_tick = far + f.tick_size / 2
        with pytest.raises(FilterError, match="PRICE_FILTER"):
            await c.place_order(sym, "BUY", "LIMIT", qty, off_tick)
        with pytest.raises(UnknownSymbol):
            await c.place_order("NOPEUSDT", "BUY", "LIMIT", qty, far)
        sent = c.rest.stats["requests"]
        c.filters = {}  # no local checks: the exchange must answer each bad input itself
        with pytest.raises(UnknownSymbol):
            await c.place_order("NOPEUSDT", "BUY", "LIMIT", qty, far)
        with pytest.raises(FilterError) as ei:
            await c.place_order(sym, "BUY", "LIMIT", qty, off_tick)
        assert ei.value.code in (-1013, -4014)
        with pytest.raises(FilterError):
            await c.place_order(sym, "BUY", "LIMIT", f.step_size / 10 if f.step_size else "0.0000001", far)
        with pytest.raises(InsufficientBalance):
            # notional far above the balance / margin, within spot's NOTIONAL maxNotional (9,000,000),
            # which the exchange checks before the balance
            notional = Decimal(8_000_000 if exchange.market == "spot" else 50_000_000)
            big = snap(notional / far, f.step_size)
            await c.place_order(sym, "BUY", "LIMIT", min(big, f.max_qty) if f.max_qty else big, far)
        with pytest.raises(BadRequest):
            await c.rest.request("POST", c.paths.order, {"symbol": sym, "side": "BUY"}, signed=True)
        assert c.rest.stats["requests"] - sent == 5  # one request each, no retries
    async with make_client(exchange, secret="wrong-secret") as bad:
        with pytest.raises(SignatureError) as ei:
            await bad.open_orders(sym)
        assert exchange.api_key not in str(ei.value) and "wrong-secret" not in repr(bad)


async def test_stale_timestamp_resyncs_the_clock_and_retries_once(exchange):
    async with make_client(exchange) as c:
        sym = next(iter(c.filters))
        c.server_clock.offset_ms -= 120_000  # two minutes behind: -1021
        await c.open_orders(sym)
        assert c.rest.stats["timestamp_resyncs"] == 1


# -- spot user data stream: a signed subscription on the WebSocket API ------------------------------


@pytest.fixture
async def spot_exchange():
    from orderflow.execution.local.testing import running_local_exchange

    with running_local_exchange(source="sim", seed=0, clock="manual", market="spot",
                                spot_balances={"USDT": 5_000_000.0, "BTC": 50.0}) as ex:  # fmt: skip
        yield ex


async def test_spot_user_stream_subscription_refused_raises_at_start(spot_exchange):
    async with make_client(spot_exchange) as good:
        await good.open_orders(next(iter(good.filters)))  # REST works with the right secret
    async with make_client(spot_exchange, secret="not-the-secret") as c:
        stream = UserDataStream(c)
        with pytest.raises(SignatureError) as ei:
            await stream.start()
        assert ei.value.code == -1022 and "subscribe" in ei.value.path
        assert not stream.connected.is_set() and stream._tasks == []


async def test_spot_user_stream_resubscribes_when_the_venue_ends_the_subscription(spot_exchange):
    ex = spot_exchange
    async with make_client(ex, reconnect_initial_s=0.2) as c:
        sym = next(iter(c.filters))
        assert c.config.user_stream_url() == f"{ex.ws_url}/ws-api/v3"
        async with UserDataStream(c) as stream:
            await asyncio.wait_for(stream.connected.wait(), 10)
            assert stream.subscription_id == 0 and stream.stats["connects"] == 1
            ended = await asyncio.to_thread(
                lambda: asyncio.run_coroutine_threadsafe(
                    ex.exchange.end_user_subscriptions(), ex.loop
                ).result(10)
            )
            assert ended == 1
            deadline = time.monotonic() + 10
            while stream.stats["connects"] < 2:
                assert time.monotonic() < deadline, "no new subscription after eventStreamTerminated"
                await asyncio.sleep(0.02)
            await asyncio.wait_for(stream.connected.wait(), 10)
            assert stream.subscription_id == 0  # a new connection numbers its subscriptions from 0
            _, _, ask, _ = await book(c, sym)
            o = await c.place_order(sym, "BUY", "MARKET", small_qty(c, sym, ask), ref_price=ask)
            mine: list[OrderUpdate] = []
            while not mine or mine[-1].status is not OrderStatus.FILLED:
                ev = await stream.get(timeout=10)
                if isinstance(ev, OrderUpdate) and ev.client_order_id == o.client_order_id:
                    mine.append(ev)
            assert all(u.source == "stream" for u in mine)  # over the new subscription, not REST
            assert sum(u.last_fill_qty for u in mine) == pytest.approx(o.filled_qty)
