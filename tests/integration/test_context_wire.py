"""Contract tests of the context client: the exact query string it sends for every endpoint, and how it
parses the answers Binance documents (``tests/data/context/``), served by a loopback aiohttp server that
records each request. Expected values are the fixtures' own numbers."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from orderflow.adapters.binance.common.endpoints import loopback_endpoints
from orderflow.adapters.binance.common.errors import BadRequest
from orderflow.adapters.binance.context import ContextRest, FearGreedClient
from orderflow.adapters.binance.decode import Decoder
from orderflow.adapters.binance.market import BinanceRest
from orderflow.core.events import Liquidation, MarkPrice, Side
from orderflow.data import context_schema as cs

DATA = Path(__file__).resolve().parents[1] / "data" / "context"
MS = 1_000_000
STAT_FILES = {
    "open_interest": "openInterestHist",
    "ls_global": "globalLongShortAccountRatio",
    "ls_top_accounts": "topLongShortAccountRatio",
    "ls_top_positions": "topLongShortPositionRatio",
    "taker_ratio": "takerlongshortRatio",
}


class Recorder:
    """Answers each GET path with a fixed (status, body) and records ``path?query`` of every request."""

    def __init__(self, answers: dict[str, tuple[int, bytes]]) -> None:
        self.answers, self.seen = answers, []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _any(self, request: web.Request) -> web.Response:
        self.seen.append(request.path_qs)
        status, body = self.answers.get(request.path, (404, b'{"code":-1,"msg":"no route"}'))
        return web.Response(body=body, status=status, content_type="application/json")

    async def __aenter__(self) -> Recorder:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._any)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def _answers() -> dict[str, tuple[int, bytes]]:
    out = {
        "/fapi/v1/fundingRate": (200, (DATA / "binance_fundingRate.json").read_bytes()),
        "/fapi/v1/premiumIndex": (200, (DATA / "binance_premiumIndex.json").read_bytes()),
    }
    for name in STAT_FILES.values():
        out[f"/futures/data/{name}"] = (200, (DATA / f"binance_{name}.json").read_bytes())
    return out


@pytest.fixture
async def wire():
    async with Recorder(_answers()) as srv:
        rest = BinanceRest(loopback_endpoints("usdm", "127.0.0.1", srv.port))
        try:
            yield srv, rest, ContextRest(rest)
        finally:
            await rest.close()


async def test_funding_rate_history_request_and_parse(wire) -> None:
    srv, rest, ctx = wire
    df = await ctx.funding_rates("btcusdt", 1570608000000, 1570636800000, 1000)
    assert srv.seen == [
        "/fapi/v1/fundingRate?symbol=BTCUSDT&startTime=1570608000000&endTime=1570636800000&limit=1000"
    ]
    assert list(df.columns) == ["ts_event", "ts_recv", "rate", "mark_price"]
    assert df["ts_event"].tolist() == [1570608000000 * MS, 1570636800000 * MS]
    assert (df["ts_recv"] == df["ts_event"]).all()  # a rate is published at its funding time
    assert df["rate"].tolist() == [-0.0375, 0.0001]
    assert df["mark_price"].tolist() == [34287.54619963, 34651.4]
    await ctx.funding_rates("BTCUSDT")  # no times: only symbol and limit
    assert srv.seen[-1] == "/fapi/v1/fundingRate?symbol=BTCUSDT&limit=1000"
    assert rest.used_weight == 2  # weight 1 each
    assert ctx.funding_window.used(ctx.funding_window.rules[0]) == 2  # the 500 / 5 min window


async def test_premium_index_request_parse_and_weights(wire) -> None:
    srv, rest, ctx = wire
    df = await ctx.premium_index("btcusdt")
    assert srv.seen == ["/fapi/v1/premiumIndex?symbol=BTCUSDT"]
    r = df.iloc[0]
    assert (r["ts_event"], r["ts_recv"]) == (1597370495002 * MS, 1597370495002 * MS)
    assert (r["mark_price"], r["index_price"], r["est_settle_price"]) == (
        11793.63104562,
        11781.80495970,
        11781.16138815,
    )
    assert r["funding_rate"] == 0.00038246 and r["next_funding_ns"] == 1597392000000 * MS
    assert r["symbol"] == "BTCUSDT"
    assert rest.used_weight == 1
    await ctx.premium_index()  # every symbol: weight 10
    assert srv.seen[-1] == "/fapi/v1/premiumIndex"
    assert rest.used_weight == 11


@pytest.mark.parametrize("stem", list(STAT_FILES))
async def test_statistics_request_and_parse(wire, stem) -> None:
    srv, rest, ctx = wire
    df = await ctx.statistics(stem, "btcusdt", "5m", 1583127900000, 1583139900000, 500)
    name = STAT_FILES[stem]
    assert srv.seen == [
        f"/futures/data/{name}?symbol=BTCUSDT&period=5m&limit=500&startTime=1583127900000&endTime=1583139900000"
    ]
    raw = json.loads((DATA / f"binance_{name}.json").read_text())
    kind = f"{stem}_5m"
    assert list(df.columns) == ["ts_event", "ts_recv", *cs.columns(kind)]
    ts = np.array([int(r["timestamp"]) for r in raw]) * MS
    assert df["ts_event"].tolist() == ts.tolist()
    # published when the 5-minute period closes, plus the statistics' delay (10 s)
    assert df["ts_recv"].tolist() == (ts + 300_000 * MS + 10_000 * MS).tolist()
    fields = {
        "open_interest": ("sumOpenInterest", "sumOpenInterestValue"),
        "taker_ratio": ("buySellRatio", "buyVol", "sellVol"),
    }.get(stem, ("longShortRatio", "longAccount", "shortAccount"))
    for col, f in zip(cs.columns(kind), fields, strict=True):
        assert df[col].tolist() == [float(r[f]) for r in raw], col
    assert rest.used_weight == 0  # weight 0, counted in the 1000 / 5 min window instead
    assert ctx.stats_window.used(ctx.stats_window.rules[0]) == 1


async def test_statistics_refused_locally_by_name() -> None:
    rest = BinanceRest(loopback_endpoints("usdm", "127.0.0.1", 9))
    ctx = ContextRest(rest)
    with pytest.raises(ValueError, match="period '7m'"):
        await ctx.statistics("open_interest", "BTCUSDT", "7m")
    with pytest.raises(ValueError, match="limit 501"):
        await ctx.statistics("ls_global", "BTCUSDT", "5m", limit=501)
    with pytest.raises(ValueError, match="limit 1001"):
        await ctx.funding_rates("BTCUSDT", limit=1001)
    await rest.close()
    spot = BinanceRest(loopback_endpoints("spot", "127.0.0.1", 9))
    with pytest.raises(ValueError, match="USD-M only"):
        ContextRest(spot)
    await spot.close()


async def test_start_time_outside_the_30_days_is_a_typed_error() -> None:
    body = (DATA / "binance_error_startTime.json").read_bytes()
    async with (
        Recorder({"/futures/data/openInterestHist": (400, body)}) as srv,
        BinanceRest(loopback_endpoints("usdm", "127.0.0.1", srv.port)) as rest,
    ):
        with pytest.raises(BadRequest) as e:
            await ContextRest(rest).statistics("open_interest", "BTCUSDT", "1h", 1, None, 30)
    assert e.value.code == -1130 and "startTime" in str(e.value)
    assert srv.seen == ["/futures/data/openInterestHist?symbol=BTCUSDT&period=1h&limit=30&startTime=1"]


async def test_fear_greed_request_and_parse() -> None:
    body = (DATA / "fear_greed_api.json").read_bytes()
    async with (
        Recorder({"/fng/": (200, body)}) as srv,
        FearGreedClient(f"http://127.0.0.1:{srv.port}/") as fg,
    ):
        df = await fg.history(2, delay_s=87_000)
    assert srv.seen == ["/fng/?limit=2&format=json"]
    day = 86_400 * cs.NS
    assert df["ts_event"].tolist() == [1773187200 * cs.NS, 1773273600 * cs.NS]  # oldest first
    assert (df["ts_recv"] - df["ts_event"]).tolist() == [87_000 * cs.NS] * 2
    assert df["value"].tolist() == [15.0, 18.0]
    assert df["classification"].tolist() == [0, 0]  # Extreme Fear
    assert (df["ts_event"] % day == 0).all()


def test_stream_messages_decode_to_events() -> None:
    dec = Decoder("binance-usdm")
    mp = dec.decode((DATA / "binance_ws_markPrice.json").read_bytes(), 7)
    assert mp == MarkPrice(
        "binance-usdm",
        "BTCUSDT",
        1562305380000 * MS,
        7,
        11794.15,
        11784.62659091,
        11784.25641265,
        0.00038167,
        1562306400000 * MS,
    )
    lq = dec.decode((DATA / "binance_ws_forceOrder.json").read_bytes(), 9)
    assert lq == Liquidation(
        "binance-usdm", "BTCUSDT", 1568014460893 * MS, 9, Side.SELL, 9910.0, 9910.0, 0.014, 0.014, "FILLED"
    )


async def test_loopback_fear_greed_answers_the_documented_shape() -> None:
    from orderflow.execution.local.fear_greed import FearGreedServer

    documented = json.loads((DATA / "fear_greed_api.json").read_text())
    days = np.array([1773187200, 1773273600]) * cs.NS
    frame = cs.frame("fear_greed", days, days + 87_000 * cs.NS, value=[15, 18], classification=[0, 0])
    async with (
        FearGreedServer(frame, clock=lambda: 1773273600 + 14_400) as srv,
        FearGreedClient(srv.url) as fg,
    ):
        df = await fg.history(0, delay_s=87_000)  # 0: the whole history
        async with aiohttp.ClientSession() as s, s.get(f"{srv.url}/fng/?limit=2&format=json") as r:
            body = await r.json()
    assert list(body) == list(documented) and list(body["metadata"]) == list(documented["metadata"])
    assert [list(r) for r in body["data"]] == [list(r) for r in documented["data"]]  # newest first
    assert [r["value"] for r in body["data"]] == ["18", "15"] and body["data"][0][
        "time_until_update"
    ] == "72000"
    assert df["value"].tolist() == [15.0, 18.0] and srv.requests[0] == "limit=0&format=json"
