"""The local Binance-compatible exchange over real sockets: aiohttp as the client and a signer written
here from Binance's documentation (HMAC-SHA256 of the query string + body, hex)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from orderflow.execution.local import LocalExchange, LocalExchangeConfig, running_local_exchange
from orderflow.execution.local.auth import hmac_signature

KEY, SECRET = "testkey123", "testsecret456"
BASE = {"sim_hours": 0.05, "api_key": KEY, "api_secret": SECRET}


def sign(secret: str, payload: str) -> str:
    """Binance's HMAC signature: hex(HMAC-SHA256(secret, totalParams))."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def test_signer_matches_binance_documented_example():
    # "SIGNED Endpoint Examples for POST /api/v3/order - HMAC Keys" in Binance's spot API docs
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    query = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
        "&timestamp=1499827319559"
    )
    doc = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    assert sign(secret, query) == doc
    assert hmac_signature(secret, query) == doc


class Api:
    """A minimal Binance REST client over aiohttp (the test's own, independent of the server code)."""

    def __init__(
        self, session: aiohttp.ClientSession, ex: LocalExchange, key: str = KEY, secret: str = SECRET
    ):
        self.s, self.base, self.key, self.secret = session, ex.rest_url, key, secret
        self.pre = "/fapi/v1" if ex.futures else "/api/v3"

    async def raw(
        self, method: str, path: str, query: str = "", headers: dict | None = None, body: str | None = None
    ):
        url = self.base + path + ("?" + query if query else "")
        async with self.s.request(method, url, headers=headers, data=body) as r:
            return r.status, await r.json(content_type=None), dict(r.headers)

    async def call(self, method: str, path: str, signed: bool = True, in_body: bool = False, **params: Any):
        path = path if path.startswith("/") else f"{self.pre}/{path}"
        if signed:
            params.setdefault("timestamp", int(time.time() * 1000))
        q = urlencode(params)
        headers = {"X-MBX-APIKEY": self.key} if signed else {}
        if signed:
            q += "&signature=" + sign(self.secret, q)
        if in_body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return await self.raw(method, path, "", headers, q)
        return await self.raw(method, path, q, headers)

    async def ok(self, method: str, path: str, **params: Any) -> Any:
        status, body, _ = await self.call(method, path, **params)
        assert status == 200, (status, body)
        return body


async def _ws_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 2.0) -> list[dict]:
    """Messages already sent on ``ws`` (stops after ``timeout`` s without one)."""
    out = []
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), timeout)
        except TimeoutError:
            return out
        if msg.type != aiohttp.WSMsgType.TEXT:
            return out
        m = json.loads(msg.data)
        if isinstance(m, dict) and "subscriptionId" in m and "event" in m:  # spot WebSocket API event
            m = m["event"]
        out.append(m)
        timeout = 0.3


def ws_api_params(key: str = KEY, secret: str = SECRET, **extra: Any) -> dict[str, Any]:
    """Signed WebSocket API parameters: HMAC over ``k=v`` sorted by name, joined by ``&``."""
    params = {"apiKey": key, "timestamp": int(time.time() * 1000), **extra}
    params["signature"] = sign(secret, "&".join(f"{k}={v}" for k, v in sorted(params.items())))
    return params


async def _user_stream(
    s: aiohttp.ClientSession, api: Api, ex: LocalExchange
) -> aiohttp.ClientWebSocketResponse:
    """The account's user data stream: USD-M a listen key's ``/ws/<key>``; spot a signed subscription on
    the WebSocket API (Binance retired spot listen keys)."""
    if ex.futures:
        _, lk, _ = await api.raw("POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEY})
        return await s.ws_connect(f"{ex.ws_url}/ws/{lk['listenKey']}")
    ws = await s.ws_connect(f"{ex.ws_url}/ws-api/v3")
    await ws.send_str(json.dumps({"id": "sub", "method": "userDataStream.subscribe.signature",
                                  "params": ws_api_params()}))  # fmt: skip
    ans = await ws.receive_json()
    assert (ans["id"], ans["status"], ans["result"]) == ("sub", 200, {"subscriptionId": 0}), ans
    return ws


async def _exchange(market: str, **kw: Any) -> LocalExchange:
    return await LocalExchange(LocalExchangeConfig(market=market, **{**BASE, **kw})).start()


# ------------------------------------------------------------------------------------ order flow
async def test_futures_place_query_cancel_each_type():
    ex = await _exchange("usdm")
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            book = (await api.call("GET", "depth", signed=False, symbol="BTCUSDT", limit=5))[1]
            bid, ask = float(book["bids"][0][0]), float(book["asks"][0][0])
            # MARKET: filled at once, RESULT shows the fill
            o = await api.ok(
                "POST",
                "order",
                symbol="BTCUSDT",
                side="BUY",
                type="MARKET",
                quantity="0.010",
                newOrderRespType="RESULT",
            )
            assert o["status"] == "FILLED" and o["executedQty"] == "0.010" and float(o["avgPrice"]) >= ask
            q = await api.ok("GET", "order", symbol="BTCUSDT", orderId=o["orderId"])
            assert q["status"] == "FILLED"
            st, err, _ = await api.call("DELETE", "order", symbol="BTCUSDT", orderId=o["orderId"])
            assert (st, err["code"]) == (400, -2011)
            # LIMIT resting below the bid (ACK answer: NEW), then canceled
            lim = await api.ok(
                "POST",
                "order",
                symbol="BTCUSDT",
                side="BUY",
                type="LIMIT",
                timeInForce="GTC",
                quantity="0.010",
                price=f"{bid - 50:.1f}",
                newClientOrderId="lim-1",
            )
            assert lim["status"] == "NEW" and lim["clientOrderId"] == "lim-1"
            q = await api.ok("GET", "order", symbol="BTCUSDT", origClientOrderId="lim-1")
            assert q["orderId"] == lim["orderId"] and q["status"] == "NEW" and q["price"] == f"{bid - 50:.1f}"
            opened = await api.ok("GET", "openOrders", symbol="BTCUSDT")
            assert [x["orderId"] for x in opened] == [lim["orderId"]]
            c = await api.ok("DELETE", "order", symbol="BTCUSDT", orderId=lim["orderId"])
            assert c["status"] == "CANCELED"
            assert (await api.ok("GET", "order", symbol="BTCUSDT", orderId=lim["orderId"]))[
                "status"
            ] == "CANCELED"
            # STOP (stop-limit) above the market: waits untriggered, then canceled
            stop = await api.ok(
                "POST",
                "order",
                symbol="BTCUSDT",
                side="BUY",
                type="STOP",
                quantity="0.010",
                price=f"{ask + 60:.1f}",
                stopPrice=f"{ask + 50:.1f}",
                newOrderRespType="RESULT",
            )
            assert (
                stop["status"] == "NEW" and stop["type"] == "STOP" and stop["stopPrice"] == f"{ask + 50:.1f}"
            )
            assert (
                await api.ok("DELETE", "order", symbol="BTCUSDT", origClientOrderId=stop["clientOrderId"])
            )["status"] == "CANCELED"
            # IOC limit far away: expires without a fill; reduce-only sell closes the long
            ioc = await api.ok(
                "POST",
                "order",
                symbol="BTCUSDT",
                side="BUY",
                type="LIMIT",
                timeInForce="IOC",
                quantity="0.010",
                price=f"{bid - 100:.1f}",
                newOrderRespType="RESULT",
            )
            assert ioc["status"] == "EXPIRED" and ioc["executedQty"] == "0.000"
            ro = await api.ok(
                "POST",
                "order",
                symbol="BTCUSDT",
                side="SELL",
                type="MARKET",
                quantity="0.020",
                reduceOnly="true",
                newOrderRespType="RESULT",
            )
            assert ro["status"] == "FILLED" and ro["executedQty"] == "0.010"  # trimmed to the position
            pos = await api.ok("GET", "/fapi/v2/positionRisk", symbol="BTCUSDT")
            assert float(pos[0]["positionAmt"]) == 0.0
            acct = await api.ok("GET", "/fapi/v3/account")
            fees = 0.0005 * 0.010 * (float(o["avgPrice"]) + float(ro["avgPrice"]))
            pnl = 0.010 * (float(ro["avgPrice"]) - float(o["avgPrice"]))
            assert float(acct["totalWalletBalance"]) == pytest.approx(100_000 + pnl - fees, abs=1e-6)
            all_ = await api.ok("GET", "allOrders", symbol="BTCUSDT")
            assert [x["status"] for x in all_] == ["FILLED", "CANCELED", "CANCELED", "EXPIRED", "FILLED"]
    finally:
        await ex.stop()


async def test_spot_place_query_cancel_each_type_and_balances():
    ex = await _exchange("spot")
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            book = (await api.call("GET", "depth", signed=False, symbol="BTCUSDT", limit=5))[1]
            bid, ask = float(book["bids"][0][0]), float(book["asks"][0][0])

            def bal(acct, asset):
                b = next(x for x in acct["balances"] if x["asset"] == asset)
                return float(b["free"]), float(b["locked"])

            lim = await api.ok(
                "POST",
                "order",
                in_body=True,
                symbol="BTCUSDT",
                side="BUY",
                type="LIMIT",
                timeInForce="GTC",
                quantity="0.01000",
                price=f"{bid - 50:.2f}",
            )
            assert lim["status"] == "NEW" and lim["fills"] == []
            acct = await api.ok("GET", "account")
            assert bal(acct, "USDT") == pytest.approx((100_000 - 0.01 * (bid - 50), 0.01 * (bid - 50)))
            maker = await api.ok(
                "POST",
                "order",
                symbol="BTCUSDT",
                side="SELL",
                type="LIMIT_MAKER",
                quantity="0.01000",
                price=f"{ask + 50:.2f}",
            )
            assert maker["status"] == "NEW"
            stop = await api.ok(
                "POST",
                "order",
                symbol="BTCUSDT",
                side="SELL",
                type="STOP_LOSS_LIMIT",
                timeInForce="GTC",
                quantity="0.01000",
                price=f"{bid - 200:.2f}",
                stopPrice=f"{bid - 150:.2f}",
            )
            assert stop["status"] == "NEW" and stop["type"] == "STOP_LOSS_LIMIT"
            assert not (await api.ok("GET", "order", symbol="BTCUSDT", orderId=stop["orderId"]))["isWorking"]
            acct = await api.ok("GET", "account")
            assert bal(acct, "BTC") == pytest.approx((0.98, 0.02))
            for o in (lim, maker, stop):
                c = await api.ok("DELETE", "order", symbol="BTCUSDT", orderId=o["orderId"])
                assert c["status"] == "CANCELED" and c["origClientOrderId"] == o["clientOrderId"]
            acct = await api.ok("GET", "account")
            assert bal(acct, "USDT") == pytest.approx((100_000, 0)) and bal(acct, "BTC") == pytest.approx(
                (1, 0)
            )
            mkt = await api.ok(
                "POST", "order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01000"
            )
            assert mkt["status"] == "FILLED" and len(mkt["fills"]) >= 1
            cost = float(mkt["cummulativeQuoteQty"])
            fee = sum(float(f["commission"]) for f in mkt["fills"])
            assert all(f["commissionAsset"] == "BTC" for f in mkt["fills"])
            assert fee == pytest.approx(0.001 * 0.01)
            acct = await api.ok("GET", "account")
            assert bal(acct, "USDT")[0] == pytest.approx(100_000 - cost)
            assert bal(acct, "BTC")[0] == pytest.approx(1 + 0.01 - fee)
            q = await api.ok("GET", "order", symbol="BTCUSDT", orderId=mkt["orderId"])
            assert q["status"] == "FILLED" and q["executedQty"] == "0.01000"
    finally:
        await ex.stop()


@pytest.mark.parametrize("market", ["usdm", "spot"])
async def test_partial_fills_arrive_as_separate_execution_reports(market: str):
    ex = await _exchange(market, spot_balances={"USDT": 1_000_000.0, "BTC": 10.0})
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            ws = await _user_stream(s, api, ex)
            book = (await api.call("GET", "depth", signed=False, symbol="BTCUSDT", limit=5))[1]
            asks = [(float(p), float(q)) for p, q in book["asks"]]
            qty = asks[0][1] + asks[1][1] + 1.0  # takes two levels, rests the rest at the 2nd level's price
            dec = 3 if ex.futures else 5
            o = await api.ok(
                "POST",
                "order",
                symbol="BTCUSDT",
                side="BUY",
                type="LIMIT",
                timeInForce="GTC",
                quantity=f"{qty:.{dec}f}",
                price=f"{asks[1][0]:.2f}",
                newOrderRespType="RESULT",
            )
            assert o["status"] == "PARTIALLY_FILLED"
            msgs = await _ws_json(ws)
            if ex.futures:
                reps = [
                    (m["o"]["x"], m["o"]["X"], m["o"]["l"], m["o"]["L"])
                    for m in msgs
                    if m["e"] == "ORDER_TRADE_UPDATE"
                ]
                assert any(m["e"] == "ACCOUNT_UPDATE" for m in msgs)
            else:
                reps = [(m["x"], m["X"], m["l"], m["L"]) for m in msgs if m["e"] == "executionReport"]
                assert any(m["e"] == "outboundAccountPosition" for m in msgs)
            assert reps[0][:2] == ("NEW", "NEW")
            trades = [r for r in reps if r[0] == "TRADE"]
            assert len(trades) == 2 and all(r[1] == "PARTIALLY_FILLED" for r in trades)
            assert [float(r[3]) for r in trades] == [asks[0][0], asks[1][0]]
            assert [float(r[2]) for r in trades] == pytest.approx([asks[0][1], asks[1][1]])
            c = await api.ok("DELETE", "order", symbol="BTCUSDT", orderId=o["orderId"])
            assert c["status"] == "CANCELED"
            msgs = await _ws_json(ws)
            x = [
                (m["o"]["x"] if ex.futures else m["x"])
                for m in msgs
                if m["e"] in ("ORDER_TRADE_UPDATE", "executionReport")
            ]
            assert x == ["CANCELED"]
            await ws.close()
    finally:
        await ex.stop()


@pytest.mark.slow
async def test_resting_order_fills_on_replayed_trades_and_market_streams_track_the_book():
    ex = await _exchange("usdm", seed=3)
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            names = ["depth@100ms", "depth5@100ms", "trade", "aggTrade", "bookTicker", "kline_1m"]
            streams = "/".join(f"btcusdt@{n}" for n in names)
            mws = await s.ws_connect(f"{ex.ws_url}/stream?streams={streams}")
            _, lk, _ = await api.raw("POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEY})
            uws = await s.ws_connect(f"{ex.ws_url}/ws/{lk['listenKey']}")
            snap = (await api.call("GET", "depth", signed=False, symbol="BTCUSDT", limit=20))[1]
            bid = float(snap["bids"][0][0])
            o = await api.ok(
                "POST",
                "order",
                symbol="BTCUSDT",
                side="BUY",
                type="LIMIT",
                timeInForce="GTC",
                quantity="0.500",
                price=f"{bid:.1f}",
            )
            await _ws_json(uws, 0.5)
            book = {"b": {p: q for p, q in snap["bids"]}, "a": {p: q for p, q in snap["asks"]}}
            last_u = snap["lastUpdateId"]
            seen: set[str] = set()
            status = "NEW"
            for _ in range(60):
                await ex.advance(events=200)
                for m in await _ws_json(mws, 0.5):
                    kind = m["stream"].split("@", 1)[1]
                    seen.add(kind)
                    if kind == "depth@100ms":
                        d = m["data"]
                        assert d["pu"] == last_u and d["U"] == last_u + 1
                        last_u = d["u"]
                        for side in ("b", "a"):
                            for p, q in d[side]:
                                if float(q) == 0:
                                    book[side].pop(p, None)
                                else:
                                    book[side][p] = q
                for m in await _ws_json(uws, 0.3):
                    if m["e"] == "ORDER_TRADE_UPDATE" and m["o"]["i"] == o["orderId"]:
                        status = m["o"]["X"]
                if status == "FILLED":
                    break
            assert status == "FILLED"
            assert seen >= {"depth@100ms", "depth5@100ms", "trade", "aggTrade", "bookTicker", "kline_1m"}
            now = (await api.call("GET", "depth", signed=False, symbol="BTCUSDT", limit=20))[1]
            assert now["lastUpdateId"] == last_u
            assert sorted(book["b"].items()) == sorted((p, q) for p, q in now["bids"])
            assert sorted(book["a"].items()) == sorted((p, q) for p, q in now["asks"])
            q = await api.ok("GET", "order", symbol="BTCUSDT", orderId=o["orderId"])
            assert q["status"] == "FILLED" and q["avgPrice"] == f"{bid:.1f}"
            kl = (await api.call("GET", "klines", signed=False, symbol="BTCUSDT", interval="1m"))[1]
            assert kl and all(len(r) == 12 for r in kl)
            await mws.close()
            await uws.close()
    finally:
        await ex.stop()


# ------------------------------------------------------------------------------------- bad input
LIMIT_OK = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}


@pytest.mark.parametrize("market", ["usdm", "spot"])
async def test_bad_input_gets_binance_status_and_code(market: str):
    ex = await _exchange(market)
    fut = market == "usdm"
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            book = (await api.call("GET", "depth", signed=False, symbol="BTCUSDT", limit=5))[1]
            bid, ask = float(book["bids"][0][0]), float(book["asks"][0][0])
            q = "0.010" if fut else "0.01000"
            px = f"{bid - 20:.1f}"
            cases: list[tuple[str, dict, int, int, str]] = [
                (
                    "unknown symbol",
                    {**LIMIT_OK, "symbol": "NOPEUSDT", "quantity": q, "price": px},
                    400,
                    -1121,
                    "",
                ),
                (
                    "off tick",
                    {**LIMIT_OK, "quantity": q, "price": f"{bid - 20:.1f}" + ("5" if fut else "55")},
                    400,
                    -4014 if fut else -1013,
                    "" if fut else "Filter failure: PRICE_FILTER",
                ),
                (
                    "under lot",
                    {**LIMIT_OK, "quantity": "0.0001" if fut else "0.000001", "price": px},
                    400,
                    -4004 if fut else -1013,
                    "" if fut else "Filter failure: LOT_SIZE",
                ),
                (
                    "off step",
                    {**LIMIT_OK, "quantity": "0.0105" if fut else "0.010005", "price": px},
                    400,
                    -4023 if fut else -1013,
                    "" if fut else "Filter failure: LOT_SIZE",
                ),
                (
                    "min notional",
                    {**LIMIT_OK, "quantity": "0.001" if fut else "0.00005", "price": px},
                    400,
                    -4164 if fut else -1013,
                    "" if fut else "Filter failure: NOTIONAL",
                ),
                ("zero qty", {**LIMIT_OK, "quantity": "0", "price": px}, 400, -4003 if fut else -1013, ""),
                (
                    "insufficient",
                    {**LIMIT_OK, "quantity": "50.000" if fut else "50.00000", "price": px},
                    400,
                    -2019 if fut else -2010,
                    "Margin is insufficient."
                    if fut
                    else "Account has insufficient balance for requested action.",
                ),
                ("missing qty", {**LIMIT_OK, "price": px}, 400, -1102, "Mandatory parameter 'quantity'"),
                (
                    "missing tif",
                    {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": q, "price": px},
                    400,
                    -1102,
                    "timeInForce",
                ),
                ("illegal chars", {**LIMIT_OK, "quantity": q, "price": "12a"}, 400, -1100, "'price'"),
                ("unread param", {**LIMIT_OK, "quantity": q, "price": px, "bogus": "1"}, 400, -1104, ""),
                ("bad side", {**LIMIT_OK, "side": "UP", "quantity": q, "price": px}, 400, -1117, ""),
                ("bad type", {**LIMIT_OK, "type": "ICEBERG", "quantity": q, "price": px}, 400, -1116, ""),
                (
                    "post-only takes",
                    {**LIMIT_OK, "timeInForce": "GTX", "quantity": q, "price": f"{ask:.1f}"}
                    if fut
                    else {
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "LIMIT_MAKER",
                        "quantity": q,
                        "price": f"{ask:.2f}",
                    },
                    400,
                    -5022 if fut else -2010,
                    "",
                ),
            ]
            for name, params, status, code, msg in cases:
                st, body, _ = await api.call("POST", "order", **params)
                assert (st, body["code"]) == (status, code), name
                assert msg in body["msg"], (name, body)
            # duplicate client id while live, then allowed again once canceled
            await api.ok("POST", "order", **LIMIT_OK, quantity=q, price=px, newClientOrderId="dup1")
            st, body, _ = await api.call(
                "POST", "order", **LIMIT_OK, quantity=q, price=px, newClientOrderId="dup1"
            )
            assert (st, body["code"]) == ((400, -4116) if fut else (400, -2010))
            if not fut:
                assert body["msg"] == "Duplicate order sent."
            await api.ok("DELETE", "order", symbol="BTCUSDT", origClientOrderId="dup1")
            await api.ok("POST", "order", **LIMIT_OK, quantity=q, price=px, newClientOrderId="dup1")
            # unknown order on cancel and query
            st, body, _ = await api.call("DELETE", "order", symbol="BTCUSDT", orderId=999)
            assert (st, body["code"], body["msg"]) == (400, -2011, "Unknown order sent.")
            st, body, _ = await api.call("GET", "order", symbol="BTCUSDT", orderId=999)
            assert (st, body["code"], body["msg"]) == (400, -2013, "Order does not exist.")
            # authentication: bad signature, stale / future timestamp, missing and unknown API key
            qs = urlencode({**LIMIT_OK, "quantity": q, "price": px, "timestamp": int(time.time() * 1000)})
            path = f"{api.pre}/order"
            st, body, _ = await api.raw(
                "POST", path, qs + "&signature=" + sign("wrong", qs), {"X-MBX-APIKEY": KEY}
            )
            assert (st, body["code"]) == (400, -1022)
            st, body, _ = await api.raw("POST", path, qs, {"X-MBX-APIKEY": KEY})
            assert (st, body["code"]) == (400, -1102)
            st, body, _ = await api.raw("POST", path, qs + "&signature=" + sign(SECRET, qs))
            assert (st, body["code"]) == (401, -2014)
            st, body, _ = await api.raw(
                "POST", path, qs + "&signature=" + sign(SECRET, qs), {"X-MBX-APIKEY": "other"}
            )
            assert (st, body["code"]) == (401, -2015)
            for ts in (int(time.time() * 1000) - 70_000, int(time.time() * 1000) + 5_000):
                st, body, _ = await api.call("POST", "order", **LIMIT_OK, quantity=q, price=px, timestamp=ts)
                assert (st, body["code"]) == (400, -1021)
            st, body, _ = await api.call(
                "GET",
                "order",
                symbol="BTCUSDT",
                orderId=1,
                timestamp=int(time.time() * 1000) - 7_000,
                recvWindow=10_000,
            )
            assert st == 200
            st, body, _ = await api.call("GET", "depth", signed=False, symbol="NOPE")
            assert (st, body["code"]) == (400, -1121)
    finally:
        await ex.stop()


# ------------------------------------------------------------------------------------ rate limits
async def test_weight_limit_429_with_retry_after_then_418_ban():
    ex = await _exchange("usdm", weight_limit=5, ban_after=2, ban_s=30)
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            used = []
            for _ in range(5):
                st, _, h = await api.call("GET", "ping", signed=False)
                assert st == 200
                used.append(int(h["X-MBX-USED-WEIGHT-1M"]))
            assert used == [1, 2, 3, 4, 5] or used[-1] <= 5  # a minute boundary may reset the count
            st, body, h = await api.call("GET", "ping", signed=False)
            if st == 200:  # the window rolled over during the loop: fill it again
                for _ in range(5):
                    st, body, h = await api.call("GET", "ping", signed=False)
            assert (st, body["code"]) == (429, -1003) and int(h["Retry-After"]) >= 1
            st, body, h = await api.call("GET", "ping", signed=False)
            assert st == 429
            st, body, h = await api.call("GET", "ping", signed=False)
            assert (st, body["code"]) == (418, -1003) and int(h["Retry-After"]) == 30
            assert "banned" in body["msg"]
    finally:
        await ex.stop()


async def test_order_count_limit_429():
    ex = await _exchange("usdm", order_limit=2, order_window_s=3600)
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            counts = []
            for _ in range(2):
                st, _, h = await api.call(
                    "POST", "order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.002"
                )
                assert st == 200
                counts.append(int(h["X-MBX-ORDER-COUNT-10S"]))
            assert counts == [1, 2]
            st, body, h = await api.call(
                "POST", "order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.002"
            )
            assert (st, body["code"]) == (429, -1015) and int(h["Retry-After"]) >= 1
    finally:
        await ex.stop()


# ---------------------------------------------------------------------------------- determinism
async def _session_transcript(market: str) -> list[Any]:
    ex = await _exchange(market, seed=5, start_ms=1_700_000_000_000, spot_balances={"USDT": 1e6, "BTC": 10.0})
    out: list[Any] = []
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            ws = await _user_stream(s, api, ex)
            dec = 3 if ex.futures else 5
            for i in range(6):
                book = (await api.call("GET", "depth", signed=False, symbol="BTCUSDT", limit=5))[1]
                bid, ask = float(book["bids"][0][0]), float(book["asks"][0][0])
                side, px = ("BUY", bid) if i % 2 == 0 else ("SELL", ask)
                out.append(
                    await api.ok(
                        "POST",
                        "order",
                        **{**LIMIT_OK, "side": side},
                        quantity=f"{0.3:.{dec}f}",
                        price=f"{px:.2f}",
                        newOrderRespType="RESULT",
                    )
                )
                out.append(
                    await api.ok(
                        "POST",
                        "order",
                        symbol="BTCUSDT",
                        side="BUY",
                        type="MARKET",
                        quantity=f"{0.05:.{dec}f}",
                        newOrderRespType="RESULT",
                    )
                )
                out.append(await ex.advance(events=300))
                out.extend(await _ws_json(ws, 0.5))
            out.append(await api.ok("GET", "openOrders", symbol="BTCUSDT"))
            await ws.close()
    finally:
        await ex.stop()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("market", ["usdm", "spot"])
async def test_manual_clock_is_deterministic(market: str):
    a = await _session_transcript(market)
    b = await _session_transcript(market)
    assert len(a) > 20
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    kinds = {m.get("e") for m in a if isinstance(m, dict)}
    assert ("ORDER_TRADE_UPDATE" if market == "usdm" else "executionReport") in kinds


# ------------------------------------------------------------------------- control, keys, secrets
async def test_advance_endpoint_retired_spot_listen_keys_and_websocket_requests():
    ex = await _exchange("spot")
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            st, state, _ = await api.raw("GET", "/_local/state")
            assert st == 200 and state["clock"] == "manual"
            st, body, _ = await api.raw("POST", "/_local/advance", body="{not json")
            assert (st, body["code"]) == (400, -1102)
            st, body, _ = await api.raw("POST", "/_local/advance", body=json.dumps({"events": 10}))
            assert st == 200 and body["applied"] == 10 and body["remaining"] == state["remaining"] - 10
            until = body["now_ns"] + 2_000_000_000
            st, body, _ = await api.raw("POST", "/_local/advance", body=json.dumps({"until_ns": until}))
            assert st == 200 and body["now_ns"] == until
            # spot listen keys are retired (as on Binance since 2026-02-20)
            async with s.post(f"{ex.rest_url}/api/v3/userDataStream", headers={"X-MBX-APIKEY": KEY}) as r:
                assert r.status == 404
            ws = await s.ws_connect(f"{ex.ws_url}/ws")
            await ws.send_str("{bad json")
            assert (await ws.receive_json())["error"]["code"] == 3
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 7}))
            assert await ws.receive_json() == {"result": None, "id": 7}
            await ex.advance(events=400)
            msgs = await _ws_json(ws, 1.0)
            assert msgs and all(set(m) == {"u", "s", "b", "B", "a", "A"} for m in msgs)
            await ws.close()
    finally:
        await ex.stop()


async def test_usdm_listen_keys():
    ex = await _exchange("usdm")
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            h, path = {"X-MBX-APIKEY": KEY}, "/fapi/v1/listenKey"
            _, lk1, _ = await api.raw("POST", path, headers=h)
            _, lk2, _ = await api.raw("POST", path, headers=h)
            assert lk1 == lk2 and len(lk1["listenKey"]) == 60  # a live key is returned again
            st, body, _ = await api.raw("PUT", path, headers=h)
            assert (st, body) == (200, lk1)
            st, body, _ = await api.raw("POST", path)
            assert (st, body["code"]) == (401, -2014)
            ws = await s.ws_connect(f"{ex.ws_url}/ws/{lk1['listenKey']}")
            st, _, _ = await api.raw("DELETE", path, headers=h)
            assert st == 200
            assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            st, body, _ = await api.raw("PUT", path, headers=h)
            assert (st, body["code"]) == (400, -1125)
            ws = await s.ws_connect(f"{ex.ws_url}/ws/{lk1['listenKey']}")
            assert (await ws.receive_json())["error"]["code"] == -1125
    finally:
        await ex.stop()


@pytest.mark.slow
async def test_spot_user_stream_on_the_websocket_api():
    """``userDataStream.subscribe.signature`` as Binance's WebSocket API documents it: signed parameters,
    one subscription per account and connection, events wrapped with their subscription id, and each
    bad request answered with its status and code."""
    ex = await _exchange("spot", spot_balances={"USDT": 1e6, "BTC": 10.0})
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            ws = await s.ws_connect(f"{ex.ws_url}/ws-api/v3")

            async def ask(method: str, params: dict[str, Any] | None = None, rid: Any = 1) -> dict[str, Any]:
                req: dict[str, Any] = {"id": rid, "method": method}
                if params is not None:
                    req["params"] = params
                await ws.send_str(json.dumps(req))
                ans = await ws.receive_json()
                assert ans["id"] == rid
                return ans

            def code(ans: dict[str, Any]) -> tuple[int, int]:
                return ans["status"], ans["error"]["code"]

            sub = "userDataStream.subscribe.signature"
            bad_sig = {**ws_api_params(), "signature": "0" * 64}
            assert code(await ask(sub, bad_sig)) == (400, -1022)
            assert code(await ask(sub, ws_api_params(secret="wrong"))) == (400, -1022)
            assert code(await ask(sub, ws_api_params(key="otherkey99"))) == (401, -2015)
            no_key = {k: v for k, v in ws_api_params().items() if k != "apiKey"}
            assert code(await ask(sub, no_key)) == (400, -1102)
            stale = ws_api_params()
            stale["timestamp"] -= 10_000
            stale["signature"] = sign(SECRET, "&".join(f"{k}={v}" for k, v in sorted(stale.items())
                                                       if k != "signature"))  # fmt: skip
            assert code(await ask(sub, stale)) == (400, -1021)
            assert code(await ask("order.nothing", {})) == (400, -1000)
            assert (await ask("session.subscriptions", {}))["result"] == []

            ok = await ask(sub, ws_api_params(recvWindow=10000), rid="a-string-id")
            assert ok["status"] == 200 and ok["result"] == {"subscriptionId": 0}
            assert ok["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
            assert code(await ask(sub, ws_api_params())) == (400, -2035)  # one per account and connection
            assert (await ask("session.subscriptions", {}))["result"] == [{"subscriptionId": 0}]

            # an order's events arrive wrapped: {"subscriptionId": 0, "event": {...}}
            book = (await api.call("GET", "depth", signed=False, symbol="BTCUSDT", limit=5))[1]
            await api.ok("POST", "order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01000",
                         newClientOrderId="wsapi-1")  # fmt: skip
            assert book["asks"]
            frames = []
            while True:
                try:
                    frames.append(await asyncio.wait_for(ws.receive_json(), 2.0))
                except TimeoutError:
                    break
            assert frames and all(
                set(f) == {"subscriptionId", "event"} and f["subscriptionId"] == 0 for f in frames
            )
            reports = [f["event"] for f in frames if f["event"]["e"] == "executionReport"]
            assert reports and reports[-1]["c"] == "wsapi-1" and reports[-1]["X"] == "FILLED"
            assert any(f["event"]["e"] == "outboundAccountPosition" for f in frames)

            assert (await ask("userDataStream.unsubscribe", {}))["status"] == 200
            last = await ws.receive_json()  # the stream's last event
            assert last["subscriptionId"] == 0 and last["event"]["e"] == "eventStreamTerminated"
            assert code(await ask("userDataStream.unsubscribe", {})) == (400, -2036)
            assert (await ask("session.subscriptions", {}))["result"] == []
            again = await ask(sub, ws_api_params())
            assert again["result"] == {"subscriptionId": 1}  # ids count up on a connection
            await ws.close()
    finally:
        await ex.stop()


async def test_secrets_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    cfg = LocalExchangeConfig(market="usdm", **BASE)
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.model_dump())
    ex = await LocalExchange(cfg).start()
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            qs = urlencode(
                {**LIMIT_OK, "quantity": "0.010", "price": "1.0", "timestamp": int(time.time() * 1000)}
            )
            sig = sign("wrong-secret", qs)
            st, body, _ = await api.raw(
                "POST", "/fapi/v1/order", qs + "&signature=" + sig, {"X-MBX-APIKEY": KEY}
            )
            assert (st, body["code"]) == (400, -1022)
            _, body, _ = await api.call("POST", "order", **LIMIT_OK, quantity="0.010", price="1.05")
            assert body["code"] == -4014
            text = caplog.text + repr(ex) + repr(ex.auth)
            assert "-1022" in caplog.text
            for secret in (SECRET, KEY, sig):
                assert secret not in text
            assert SECRET not in json.dumps(body)
    finally:
        await ex.stop()


def test_running_local_exchange_in_a_thread():
    with running_local_exchange(market="usdm", sim_hours=0.05, api_key=KEY, api_secret=SECRET) as ex:
        assert ex.api_key == KEY and ex.api_secret == SECRET and ex.symbols == ["BTCUSDT"]
        assert SECRET not in repr(ex)
        t0 = ex.now_ns
        res = ex.advance(events=50)
        assert res["applied"] == 50 and res["now_ns"] >= t0
        res = ex.advance(until_ns=res["now_ns"] + 1_000_000_000)
        assert res["now_ns"] == t0 + (res["now_ns"] - t0)

        async def probe() -> tuple[int, dict]:
            async with aiohttp.ClientSession() as s, s.get(f"{ex.rest_url}/fapi/v1/time") as r:
                return r.status, await r.json()

        st, body = asyncio.run(probe())
        assert st == 200 and abs(body["serverTime"] - time.time() * 1000) < 5_000


async def test_store_source(store):
    from orderflow.data.config import SimulatorConfig
    from orderflow.data.simulator import simulate

    simulate(SimulatorConfig(hours=0.02, seed=2), store=store)
    ex = await _exchange("usdm", source="sim/BTCUSDT", store=str(store.root))
    try:
        assert list(ex.venue.markets) == ["BTCUSDT"] and ex.venue.remaining_events > 100
        res = await ex.advance(events=100)
        assert res["applied"] == 100
    finally:
        await ex.stop()


async def test_ed25519_key_signs_requests():
    import base64
    from urllib.parse import quote

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv = Ed25519PrivateKey.generate()
    pem = (
        priv.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    ex = await _exchange("usdm", api_secret=None, ed25519_public_key=pem)
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            qs = urlencode({"timestamp": int(time.time() * 1000)})
            good = quote(base64.b64encode(priv.sign(qs.encode())).decode(), safe="")
            st, body, _ = await api.raw(
                "GET", "/fapi/v2/balance", f"{qs}&signature={good}", {"X-MBX-APIKEY": KEY}
            )
            assert st == 200 and body[0]["asset"] == "USDT"
            other = Ed25519PrivateKey.generate()
            bad = quote(base64.b64encode(other.sign(qs.encode())).decode(), safe="")
            st, body, _ = await api.raw(
                "GET", "/fapi/v2/balance", f"{qs}&signature={bad}", {"X-MBX-APIKEY": KEY}
            )
            assert (st, body["code"]) == (400, -1022)
    finally:
        await ex.stop()


async def test_realtime_clock_releases_events_at_pace():
    # 180 s of replay at 10x lasts 18 s of wall time: a loaded machine cannot finish it before the look
    ex = await _exchange("usdm", clock="realtime", speed=10.0)
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, ex)
            _, st0, _ = await api.raw("GET", "/_local/state")
            await asyncio.sleep(0.6)
            _, st1, _ = await api.raw("GET", "/_local/state")
            assert st1["remaining"] > 0, "the replay ended before the second look"
            assert st1["position"] > st0["position"]
            # 0.6 s at 10x is ~6 s of replay: never far ahead of the pace
            assert st1["now_ns"] - st0["now_ns"] <= 60 * 1_000_000_000
            st, body, _ = await api.raw("POST", "/_local/advance", body=json.dumps({"events": 1}))
            assert (st, body["code"]) == (400, -1020)
    finally:
        await ex.stop()
