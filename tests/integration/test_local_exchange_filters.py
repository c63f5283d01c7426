"""Every filter the local exchange advertises is enforced, with Binance's codes and messages.

The list of filters comes from the exchange's own ``exchangeInfo`` over its HTTP socket; each
advertised filter type must have a violation case in ``CASES`` (a filter added later without one
fails the test), every case is sent as a signed REST order and must get Binance's answer, and an
order just inside every bound is accepted. Values (bands, limits, sizes) are read from the
advertised filters, not repeated here.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import numpy as np
import pytest

from orderflow.core.instruments import lookup
from orderflow.execution.local import LocalExchange, LocalExchangeConfig
from orderflow.execution.local.errors import ApiError
from orderflow.execution.local.market import SymbolData
from orderflow.execution.local.params import Params
from orderflow.execution.local.trading import cancel_order, new_order
from orderflow.execution.local.venue import LocalVenue

KEY, SECRET = "filterkey", "filtersecret"
BASE = {"sim_hours": 0.05, "api_key": KEY, "api_secret": SECRET, "max_open_orders": 12}


def _grid(x: float, step: float, up: bool) -> str:
    n = x / step
    k = round(n) if abs(n - round(n)) < 1e-6 else (math.ceil(n) if up else math.floor(n))
    dec = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{k * step:.{dec}f}"


@dataclass
class Ctx:
    """A signed REST client and what a case needs to know about the symbol and its book."""

    s: aiohttp.ClientSession
    ex: LocalExchange
    f: dict[str, dict[str, Any]]  # advertised filters by type
    bid: float
    ask: float

    @property
    def fut(self) -> bool:
        return self.ex.futures

    @property
    def mid(self) -> float:
        return 0.5 * (self.bid + self.ask)

    @property
    def tick(self) -> float:
        return float(self.f["PRICE_FILTER"]["tickSize"])

    @property
    def step(self) -> float:
        return float(self.f["LOT_SIZE"]["stepSize"])

    def px(self, x: float, up: bool = False) -> str:
        """``x`` on the tick grid, rounded down (or up)."""
        return _grid(x, self.tick, up)

    def qty(self, x: float, up: bool = True) -> str:
        """``x`` on the step grid, rounded up (or down)."""
        return _grid(x, self.step, up)

    def min_qty(self, price: float | str | None = None) -> str:
        """A quantity meeting the minimum notional twice over at ``price`` (default the mid)."""
        mn = float(self.f["MIN_NOTIONAL"]["notional"] if self.fut else self.f["NOTIONAL"]["minNotional"])
        return self.qty(2 * mn / (self.mid if price is None else float(price)))

    async def send(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        pre = "/fapi/v1" if self.fut else "/api/v3"
        params["timestamp"] = int(time.time() * 1000)
        q = urlencode(params)
        q += "&signature=" + hmac.new(SECRET.encode(), q.encode(), hashlib.sha256).hexdigest()
        url = f"{self.ex.rest_url}{pre}/{path}?{q}"
        async with self.s.request(method, url, headers={"X-MBX-APIKEY": KEY}) as r:
            return r.status, await r.json(content_type=None)

    async def order(self, **params: Any) -> tuple[int, Any]:
        return await self.send("POST", "order", symbol="BTCUSDT", **params)

    async def accepted(self, **params: Any) -> dict[str, Any]:
        st, body = await self.order(**params)
        assert st == 200, (params, body)
        return body

    async def rejected(self, code: int, msg: str | re.Pattern[str], **params: Any) -> str:
        st, body = await self.order(**params)
        assert (st, body.get("code")) == (400, code), (params, body)
        if isinstance(msg, re.Pattern):
            assert msg.fullmatch(body["msg"]), (params, body)
        else:
            assert body["msg"] == msg, (params, body)
        return body["msg"]

    async def cancel_all(self) -> None:
        await self.send("DELETE", "allOpenOrders" if self.fut else "openOrders", symbol="BTCUSDT")

    def limit(self, side: str, price: str, qty: str, **kw: Any) -> dict[str, Any]:
        return {"side": side, "type": "LIMIT", "timeInForce": "GTC", "price": price, "quantity": qty, **kw}

    def stop(self, side: str, stop: str, price: str, qty: str) -> dict[str, Any]:
        return {
            "side": side,
            "type": "STOP" if self.fut else "STOP_LOSS_LIMIT",
            "timeInForce": "GTC",
            "stopPrice": stop,
            "price": price,
            "quantity": qty,
        }

    def resting(self) -> dict[str, Any]:
        """A compliant BUY LIMIT resting below the bid."""
        return self.limit("BUY", self.px(self.bid * 0.99), self.min_qty())


SPOT_FAIL = "Filter failure: {}".format


# ----------------------------------------------------------------------------------- the cases
async def price_filter(c: Ctx) -> None:
    f = c.f["PRICE_FILTER"]
    q, pmax = c.min_qty(), float(f["maxPrice"])
    off_tick = c.px(c.bid * 0.99) + "5"
    over_max = c.px(pmax + c.tick)
    if c.fut:
        await c.rejected(-4014, "Price not increased by tick size.", **c.limit("BUY", off_tick, q))
        await c.rejected(-4002, "Price greater than max price.", **c.limit("SELL", over_max, q))
        await c.rejected(-4013, "Price less than min price.", **c.limit("BUY", "0", q))
        st = c.stop("BUY", over_max, c.px(c.ask * 1.01), q)
        await c.rejected(-4007, "Stop price greater than max price.", **st)
    else:
        for p in (off_tick, over_max, "0"):
            await c.rejected(-1013, SPOT_FAIL("PRICE_FILTER"), **c.limit("BUY", p, q))


async def lot_size(c: Ctx) -> None:
    f = c.f["LOT_SIZE"]
    p = c.px(c.bid * 0.99)
    under = f"{float(f['minQty']) / 2:.12f}".rstrip("0")  # off the step grid too, as any sub-minimum
    over = c.qty(float(f["maxQty"]) + c.step)
    off_step = c.min_qty() + "5"
    if c.fut:
        await c.rejected(-4003, "Quantity less than or equal to zero.", **c.limit("BUY", p, "0"))
        await c.rejected(-4005, "Quantity greater than max quantity.", **c.limit("BUY", p, over))
        await c.rejected(-4023, "Quantity not increased by step size.", **c.limit("BUY", p, off_step))
        await c.rejected(-4004, "Quantity less than min quantity.", **c.limit("BUY", p, under))
    else:
        for q in ("0", under, over, off_step):
            await c.rejected(-1013, SPOT_FAIL("LOT_SIZE"), **c.limit("BUY", p, q))


async def market_lot_size(c: Ctx) -> None:
    """Over MARKET_LOT_SIZE's maxQty but under LOT_SIZE's: only the MARKET order is refused."""
    mx, lot_mx = float(c.f["MARKET_LOT_SIZE"]["maxQty"]), float(c.f["LOT_SIZE"]["maxQty"])
    assert mx < lot_mx, "MARKET_LOT_SIZE maxQty is meant to be Binance's, below LOT_SIZE's"
    q = c.qty(mx + c.step)
    if c.fut:
        await c.rejected(-4005, "Quantity greater than max quantity.", side="SELL", type="MARKET", quantity=q)
    else:
        await c.rejected(-1013, SPOT_FAIL("MARKET_LOT_SIZE"), side="SELL", type="MARKET", quantity=q)


async def percent_price(c: Ctx) -> None:
    """USD-M: a BUY above markPrice * multiplierUp, a SELL below markPrice * multiplierDown (the
    mark is the mid); the message names the bound, on the tick grid inside the band."""
    f = c.f["PERCENT_PRICE"]
    up, down, q = float(f["multiplierUp"]), float(f["multiplierDown"]), c.min_qty()
    pat = re.compile(r"Limit price can't be (higher|lower) than (\d+\.\d+)\.")
    m = pat.fullmatch(await c.rejected(-4016, pat, **c.limit("BUY", c.px(c.mid * up * 1.02, up=True), q)))
    assert m and m[1] == "higher" and c.mid * up - c.tick < float(m[2]) <= c.mid * up
    m = pat.fullmatch(await c.rejected(-4024, pat, **c.limit("SELL", c.px(c.mid * down * 0.98), q)))
    assert m and m[1] == "lower" and c.mid * down <= float(m[2]) < c.mid * down + c.tick
    # a stop-limit's price against its own stop price
    sp = c.ask * 1.01
    st = c.stop("BUY", c.px(sp, up=True), c.px(float(c.px(sp, up=True)) * up * 1.02, up=True), q)
    await c.rejected(-4183, pat, **st)


async def percent_price_by_side(c: Ctx) -> None:
    """Spot: each side within its own [down, up] band around the reference (the mid)."""
    f = c.f["PERCENT_PRICE_BY_SIDE"]
    for side, pre in (("BUY", "bid"), ("SELL", "ask")):
        up, down = float(f[f"{pre}MultiplierUp"]), float(f[f"{pre}MultiplierDown"])
        for p in (c.px(c.mid * up * 1.01, up=True), c.px(c.mid * down * 0.99)):
            q = c.min_qty(p)  # a notional well inside NOTIONAL's range
            await c.rejected(-1013, SPOT_FAIL("PERCENT_PRICE_BY_SIDE"), **c.limit(side, p, q))


async def min_notional(c: Ctx) -> None:
    q = c.f["LOT_SIZE"]["minQty"]
    n = c.f["MIN_NOTIONAL"]["notional"]
    msg = f"Order's notional must be no smaller than {n} (unless you choose reduce only)."
    await c.rejected(-4164, msg, **c.limit("BUY", c.px(c.bid * 0.99), q))
    await c.rejected(-4164, msg, side="BUY", type="MARKET", quantity=q)


async def notional(c: Ctx) -> None:
    f = c.f["NOTIONAL"]
    p = c.px(c.bid * 0.99)
    await c.rejected(-1013, SPOT_FAIL("NOTIONAL"), **c.limit("BUY", p, c.f["LOT_SIZE"]["minQty"]))
    over = c.qty(float(f["maxNotional"]) / float(p) * 1.01)
    assert float(over) <= float(c.f["LOT_SIZE"]["maxQty"])
    await c.rejected(-1013, SPOT_FAIL("NOTIONAL"), **c.limit("BUY", p, over))


async def max_num_orders(c: Ctx) -> None:
    f = c.f["MAX_NUM_ORDERS"]
    n = int(f["limit"] if c.fut else f["maxNumOrders"])
    for _ in range(n):
        await c.accepted(**c.resting())
    if c.fut:
        await c.rejected(-2025, "Reach max open order limit.", **c.resting())
    else:
        await c.rejected(-1013, SPOT_FAIL("MAX_NUM_ORDERS"), **c.resting())


async def max_num_algo_orders(c: Ctx) -> None:
    f = c.f["MAX_NUM_ALGO_ORDERS"]
    n = int(f["limit"] if c.fut else f["maxNumAlgoOrders"])
    stop = c.stop("BUY", c.px(c.ask * 1.01, up=True), c.px(c.ask * 1.02, up=True), c.min_qty())
    for _ in range(n):
        assert (await c.accepted(**stop))["status"] == "NEW"
    await c.accepted(**c.resting())  # an ordinary order is still accepted
    if c.fut:
        await c.rejected(-4045, "Reach max stop order limit.", **stop)
    else:
        await c.rejected(-1013, SPOT_FAIL("MAX_NUM_ALGO_ORDERS"), **stop)


async def max_position(c: Ctx) -> None:
    """Spot: base balance (free + locked) + open BUY quantities + the order's may not pass it."""
    cap = float(c.f["MAX_POSITION"]["maxPosition"])
    st, acct = await c.send("GET", "account")
    assert st == 200, acct
    held = sum(float(b["free"]) + float(b["locked"]) for b in acct["balances"] if b["asset"] == "BTC")
    room = cap - held
    assert room > 0
    p = c.px(c.bid * 0.99)
    first = c.qty(room * 0.6, up=False)
    await c.accepted(**c.limit("BUY", p, first))
    await c.rejected(-1013, SPOT_FAIL("MAX_POSITION"), **c.limit("BUY", p, c.qty(room * 0.6)))
    await c.accepted(**c.limit("SELL", c.px(c.ask * 1.01, up=True), c.min_qty()))  # sells are never refused


CASES: dict[str, dict[str, Callable[[Ctx], Awaitable[None]]]] = {
    "usdm": {
        "PRICE_FILTER": price_filter,
        "LOT_SIZE": lot_size,
        "MARKET_LOT_SIZE": market_lot_size,
        "MAX_NUM_ORDERS": max_num_orders,
        "MAX_NUM_ALGO_ORDERS": max_num_algo_orders,
        "MIN_NOTIONAL": min_notional,
        "PERCENT_PRICE": percent_price,
    },
    "spot": {
        "PRICE_FILTER": price_filter,
        "LOT_SIZE": lot_size,
        "MARKET_LOT_SIZE": market_lot_size,
        "PERCENT_PRICE_BY_SIDE": percent_price_by_side,
        "NOTIONAL": notional,
        "MAX_NUM_ORDERS": max_num_orders,
        "MAX_NUM_ALGO_ORDERS": max_num_algo_orders,
        "MAX_POSITION": max_position,
    },
}


async def compliant(c: Ctx) -> None:
    """Orders at the very edge of every band are accepted: a BUY at the cap, a SELL at the floor."""
    q = c.min_qty()
    if c.fut:
        f = c.f["PERCENT_PRICE"]
        up, down = float(f["multiplierUp"]), float(f["multiplierDown"])
        # Binance's USD-M band has one bound per side: a passive order far from the mark passes
        await c.accepted(**c.limit("BUY", c.px(c.mid * 0.5), q))
        await c.accepted(**c.limit("SELL", c.px(c.mid * 2.0, up=True), q))
    else:
        f = c.f["PERCENT_PRICE_BY_SIDE"]
        up, down = float(f["bidMultiplierUp"]), float(f["askMultiplierDown"])
    for side, p in (("BUY", c.px(c.mid * up)), ("SELL", c.px(c.mid * down, up=True))):
        await c.accepted(**c.limit(side, p, c.min_qty(p)))
    body = await c.accepted(side="BUY", type="MARKET", quantity=q, newOrderRespType="RESULT")
    assert body["status"] == "FILLED"


@pytest.mark.parametrize(
    ("market", "extra"),
    [("usdm", {}), ("spot", {}), ("spot", {"max_position": 1.5})],
    ids=["usdm", "spot", "spot-max-position"],
)
async def test_every_advertised_filter_is_enforced_with_binance_codes(market: str, extra: dict):
    ex = await LocalExchange(LocalExchangeConfig(market=market, **BASE, **extra)).start()
    try:
        async with aiohttp.ClientSession() as s:
            pre = "/fapi/v1" if ex.futures else "/api/v3"
            async with s.get(f"{ex.rest_url}{pre}/exchangeInfo") as r:
                info = await r.json()
            async with s.get(f"{ex.rest_url}{pre}/depth?symbol=BTCUSDT&limit=5") as r:
                book = await r.json()
            (sym,) = [x for x in info["symbols"] if x["symbol"] == "BTCUSDT"]
            filters = {f["filterType"]: f for f in sym["filters"]}
            assert len(filters) == len(sym["filters"]), "a filter type advertised twice"
            if "max_position" in extra:
                assert "MAX_POSITION" in filters
            missing = sorted(set(filters) - set(CASES[market]))
            assert not missing, f"advertised filters without a violation case in CASES: {missing}"
            c = Ctx(s, ex, filters, float(book["bids"][0][0]), float(book["asks"][0][0]))
            for ftype in filters:
                await CASES[market][ftype](c)
                await c.cancel_all()
            await compliant(c)
    finally:
        await ex.stop()


def test_usdm_market_order_outside_the_band_gets_4131():
    """A MARKET BUY whose best ask is above mark * multiplierUp (a book with a 20% spread)."""
    inst = lookup("binance-usdm", "BTCUSDT")
    assert inst is not None
    L = 5
    bids = 90_000.0 - np.arange(L)[None, :] * 10.0
    asks = 110_000.0 + np.arange(L)[None, :] * 10.0
    sz = np.ones((1, L))
    d = SymbolData("BTCUSDT", inst, np.array([0], np.int64), bids, sz, asks, sz.copy(),
                   np.array([], np.int64), np.array([]), np.array([]), np.array([], np.int64))  # fmt: skip
    cfg = LocalExchangeConfig(market="usdm", levels=L)
    v = LocalVenue(cfg, [d], start_ns=1_700_000_000_000_000_000)
    v.step()
    for side in ("BUY", "SELL"):
        with pytest.raises(ApiError) as ei:
            new_order(v, Params({"symbol": "BTCUSDT", "side": side, "type": "MARKET", "quantity": "0.010"}))
        assert (ei.value.code, ei.value.msg) == (
            -4131,
            "The counterparty's best price does not meet the PERCENT_PRICE filter limit.",
        )
    assert not v.orders


@pytest.mark.parametrize("market", ["usdm", "spot"])
def test_client_filter_helper_agrees_with_the_local_exchange_on_the_band(market: str):
    """The engine's pre-send check (binance/filters.py, reference = the mid) refuses exactly the limit
    prices the local exchange refuses for PERCENT_PRICE / PERCENT_PRICE_BY_SIDE."""
    from orderflow.adapters.binance.common.errors import FilterError
    from orderflow.adapters.binance.trading.filters import check_order, parse_exchange_info

    fut = market == "usdm"
    inst = lookup("binance-usdm" if fut else "binance-spot", "BTCUSDT")
    assert inst is not None
    L = 5
    bids = 59_999.9 - np.arange(L)[None, :] * inst.tick_size
    asks = 60_000.1 + np.arange(L)[None, :] * inst.tick_size
    sz = np.ones((1, L))
    d = SymbolData("BTCUSDT", inst, np.array([0], np.int64), bids, sz, asks, sz.copy(),
                   np.array([], np.int64), np.array([]), np.array([]), np.array([], np.int64))  # fmt: skip
    v = LocalVenue(LocalExchangeConfig(market=market, levels=L), [d], start_ns=1_700_000_000_000_000_000)
    v.step()
    mid = float(v.marks()["BTCUSDT"])
    helper = parse_exchange_info({"symbols": [{"symbol": "BTCUSDT", "filters": v.filters["BTCUSDT"]}]}, fut)
    band = {"usdm": "PERCENT_PRICE", "spot": "PERCENT_PRICE_BY_SIDE"}[market]
    checked = 0
    for mult in (0.1, 0.19, 0.2, 0.5, 0.9, 0.9499, 0.95, 0.951, 1.0, 1.049, 1.05, 1.0501, 1.2, 5, 5.01, 9):
        px = _grid(mid * mult, inst.tick_size, up=False)
        for side in ("BUY", "SELL"):
            qty = _grid(20.0 / float(px) if not fut else 200.0 / float(px), inst.lot_size, up=True)
            try:
                check_order(helper["BTCUSDT"], side=side, quantity=qty, price=px, ref_price=mid)
                helper_ok = True
            except FilterError as e:
                assert e.filter == band
                helper_ok = False
            p = {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC"}
            try:
                new_order(v, Params({**p, "price": px, "quantity": qty, "newOrderRespType": "ACK"}))
                venue_ok = True
            except ApiError as e:
                assert e.code in ((-4016, -4024) if fut else (-1013,)), e
                venue_ok = False
            assert helper_ok == venue_ok, (side, px)
            checked += not venue_ok
            for o in list(v.orders.values()):  # keep the open orders under MAX_NUM_ORDERS
                if o.is_open:
                    cancel_order(v, Params({"symbol": "BTCUSDT", "orderId": str(o.order_id)}))
    assert checked >= 4  # both sides were refused somewhere
