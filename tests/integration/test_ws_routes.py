"""Binance's USD-M WebSocket layout since 2026-04-23 (its "Base URL Split & Migration" notice): depth and
bookTicker under ``/public``, trades and klines under ``/market``, user data under
``/private/ws?listenKey=...&events=...``. The local exchange serves it next to the legacy URLs; a stream
asked for on the wrong route is accepted and never sent, as on Binance. The paper engine in the split
layout syncs its book from ``/public``, reads trades from ``/market`` and its fills from ``/private``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from orderflow.adapters.binance.common.signing import Credentials
from orderflow.config import load_config
from orderflow.core.instruments import KNOWN
from orderflow.engine.paper import FeedOptions, PaperEngine
from orderflow.execution.local.testing import running_local_exchange

OFI_ONLY = Path(__file__).resolve().parents[2] / "config" / "examples" / "ofi-only"


async def _frames(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[dict]:
    out: list[dict] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            msg = await asyncio.wait_for(ws.receive(), left)
        except TimeoutError:
            break
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        out.append(json.loads(msg.data))
    return out


@pytest.mark.slow
async def test_streams_are_served_on_their_route_only():
    with running_local_exchange(source="sim", seed=0, clock="realtime", speed=20.0, market="usdm",
                                sim_hours=0.2) as ex:  # fmt: skip
        async with aiohttp.ClientSession() as s:
            base = ex.ws_url
            public = await s.ws_connect(f"{base}/public/stream?streams=btcusdt@depth@100ms/btcusdt@trade")
            market = await s.ws_connect(f"{base}/market/stream?streams=btcusdt@depth@100ms/btcusdt@trade")
            got_public, got_market = await asyncio.gather(_frames(public, 1.5), _frames(market, 1.5))
            assert got_public and {f["stream"] for f in got_public} == {"btcusdt@depth@100ms"}
            assert got_market and {f["stream"] for f in got_market} == {"btcusdt@trade"}
            # the user stream is not on the market routes, and /private needs a live listen key
            bad = await s.ws_connect(f"{base}/private/ws?listenKey=nosuchkey&events=ORDER_TRADE_UPDATE")
            assert (await bad.receive_json())["error"]["code"] == -1125
            for ws in (public, market, bad):
                await ws.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_paper_engine_on_the_split_layout_trades_and_books_every_fill():
    cfg = load_config(OFI_ONLY)
    inst = KNOWN[("binance-usdm", "BTCUSDT")]
    with running_local_exchange(source="sim", seed=0, clock="realtime", speed=25.0, market="usdm",
                                sim_hours=0.4, symbol="BTCUSDT") as ex:  # fmt: skip
        creds = Credentials.hmac(ex.api_key, ex.api_secret)
        engine = PaperEngine(
            cfg, "usdm", "BTCUSDT", ex.rest_url, ex.ws_url, creds, inst, feeds=FeedOptions(ws_routes="split")
        )
        stats = await engine.run(minutes=0.4)
        paths = dict(ex.exchange.ws_paths)
    assert paths == {"/public/stream": 1, "/market/stream": 1, "/private/ws": 1}, paths
    assert stats.valid_rows > 100 and stats.trades > 100
    assert stats.orders_sent >= 2 and stats.order_errors == []
    assert stats.fills >= stats.orders_sent  # every order's fill arrived on /private
    assert engine.session.P[0] == 0.0  # closed at the end
