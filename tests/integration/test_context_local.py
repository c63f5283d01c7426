"""The local exchange's context endpoints compared field by field with Binance's documented answers
(``tests/data/context/``): keys, strings for numbers, ms times, limit caps, the 30-day window of
``/futures/data/*`` on the server's clock, errors, request weights in ``X-MBX-USED-WEIGHT-1M``; and the
markPrice@1s / forceOrder streams over its WebSocket, decoded and recorded by ``data record``'s code."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from orderflow.adapters.binance.common.endpoints import FeedConfig, loopback_endpoints
from orderflow.adapters.binance.decode import Decoder
from orderflow.core.events import Liquidation, MarkPrice
from orderflow.data import context_schema as cs
from orderflow.data.recorder import record_async
from orderflow.data.store import Store
from support.context_frames import SIM_START_NS, exchange_with_context, make_frames

DATA = Path(__file__).resolve().parents[1] / "data" / "context"
NS, MS, DAY = cs.NS, 1_000_000, 86_400 * cs.NS
STATS = {
    "openInterestHist": "open_interest",
    "globalLongShortAccountRatio": "ls_global",
    "topLongShortAccountRatio": "ls_top_accounts",
    "topLongShortPositionRatio": "ls_top_positions",
    "takerlongshortRatio": "taker_ratio",
}


@pytest.fixture(scope="module")
def frames():
    # statistics and funding over 35 days before the replay starts (hourly funding over 46 days, for
    # the 1000 cap), mark prices and liquidations from 1 hour before to 1 hour after it
    return make_frames(
        SIM_START_NS - 35 * DAY,
        SIM_START_NS + 3600 * NS,
        seed=3,
        funding_start_ns=SIM_START_NS - 46 * DAY,
        funding_every_h=1,  # hourly funding (as some symbols have): 1100 rows, for the 1000 cap
        stream_start_ns=SIM_START_NS - 3600 * NS,
    )


@pytest.fixture(scope="module")
def exchange(tmp_path_factory, frames):
    with exchange_with_context(tmp_path_factory.mktemp("ctx") / "store", frames) as (ex, shift):
        yield ex, shift


def get(ex, path: str) -> tuple[int, object, int]:
    """(status, JSON body, X-MBX-USED-WEIGHT-1M) of a GET."""
    try:
        with urllib.request.urlopen(ex.rest_url + path) as r:
            return r.status, json.loads(r.read()), int(r.headers["X-MBX-USED-WEIGHT-1M"])
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), int(e.headers["X-MBX-USED-WEIGHT-1M"])


def weight_of(ex, path: str) -> int:
    _, _, before = get(ex, "/fapi/v1/ping")
    _, _, after = get(ex, path)
    return after - before - 0  # ping weighs 1 and is counted in `before`


def same_shape(got: dict, documented: dict) -> None:
    assert list(got) == list(documented)
    for k, v in documented.items():
        assert type(got[k]) is type(v), (k, got[k], v)


def test_funding_rate_shape_caps_and_windows(exchange, frames) -> None:
    ex, shift = exchange
    now_ms = ex.now_ns // MS
    documented = json.loads((DATA / "binance_fundingRate.json").read_text())[0]
    status, rows, _ = get(ex, "/fapi/v1/fundingRate?symbol=BTCUSDT")
    assert status == 200 and len(rows) == 100  # default limit: the latest 100
    same_shape(rows[0], documented)
    f = frames["funding"]
    t_ms = (f["ts_event"].to_numpy() + shift) // MS
    published = t_ms[t_ms <= now_ms]
    assert [r["fundingTime"] for r in rows] == published[-100:].tolist()
    last = {c: f[c].to_numpy()[len(published) - 1] for c in f.columns}
    assert (
        rows[-1]["fundingRate"] == f"{last['rate']:.8f}"
        and rows[-1]["markPrice"] == f"{last['mark_price']:.8f}"
    )
    # a limit above 1000 is cut to 1000; with a startTime the first rows from it, both ends inclusive
    _, rows, _ = get(ex, f"/fapi/v1/fundingRate?symbol=BTCUSDT&startTime={published[0]}&limit=1500")
    assert len(rows) == 1000 and rows[0]["fundingTime"] == published[0]
    _, rows, _ = get(
        ex, f"/fapi/v1/fundingRate?symbol=BTCUSDT&startTime={published[5]}&endTime={published[8]}"
    )
    assert [r["fundingTime"] for r in rows] == published[5:9].tolist()
    assert weight_of(ex, "/fapi/v1/fundingRate?symbol=BTCUSDT&limit=5") == 1


def test_premium_index_shape_and_weights(exchange, frames) -> None:
    ex, shift = exchange
    documented = json.loads((DATA / "binance_premiumIndex.json").read_text())
    status, body, _ = get(ex, "/fapi/v1/premiumIndex?symbol=BTCUSDT")
    assert status == 200
    same_shape(body, documented)
    m = frames["mark_price"]
    t = m["ts_recv"].to_numpy() + shift
    i = int(np.searchsorted(t, ex.now_ns, "right")) - 1  # the latest mark published by now
    last = {c: m[c].to_numpy()[i] for c in m.columns}
    assert (
        body["markPrice"] == f"{last['mark_price']:.8f}"
        and body["indexPrice"] == f"{last['index_price']:.8f}"
    )
    assert body["nextFundingTime"] == (int(last["next_funding_ns"]) + shift) // MS
    assert body["time"] == ex.now_ns // MS
    _, all_, _ = get(ex, "/fapi/v1/premiumIndex")
    assert isinstance(all_, list) and all_[0]["symbol"] == "BTCUSDT"
    assert weight_of(ex, "/fapi/v1/premiumIndex?symbol=BTCUSDT") == 1
    assert weight_of(ex, "/fapi/v1/premiumIndex") == 10


@pytest.mark.parametrize("name", list(STATS))
def test_statistics_shape_window_caps_and_errors(exchange, frames, name) -> None:
    ex, shift = exchange
    now = ex.now_ns
    documented = json.loads((DATA / f"binance_{name}.json").read_text())[0]
    kind = f"{STATS[name]}_5m"
    base = f"/futures/data/{name}?symbol=BTCUSDT&period=5m"
    status, rows, _ = get(ex, base)
    assert status == 200 and len(rows) == 30  # default limit 30, the most recent
    same_shape(rows[0], documented)
    f = frames[kind]
    ts = f["ts_event"].to_numpy() + shift
    pub = f["ts_recv"].to_numpy() + shift <= now
    latest = ts[pub][-30:] // MS
    assert [int(r["timestamp"]) for r in rows] == latest.tolist()
    assert (ts[pub][-1] + 310 * NS) <= now < ts[~pub][0] + 310 * NS  # the open period is not served yet
    i = int(np.flatnonzero(ts // MS == latest[-1])[0])
    first_col = cs.columns(kind)[0]
    decimals = 8 if kind.startswith("open_interest") else 4
    assert (
        rows[-1][list(documented)[1 if "symbol" in documented else 0]]
        == f"{f[first_col].iloc[i]:.{decimals}f}"
    )
    # the window: 30 days of the server's clock; an older startTime is refused as Binance does
    oldest_ms = now // MS - 30 * 86_400_000
    status, body, _ = get(ex, f"{base}&startTime={oldest_ms - 60_000}")
    assert status == 400 and body == json.loads((DATA / "binance_error_startTime.json").read_text())
    _, rows, _ = get(ex, f"{base}&startTime={oldest_ms + 1}&limit=500")
    assert len(rows) == 500 and int(rows[0]["timestamp"]) >= oldest_ms
    _, rows, _ = get(ex, f"{base}&endTime={oldest_ms + 3_600_000}&limit=500")  # rows before it are gone
    ms = ts // MS
    assert [int(r["timestamp"]) for r in rows] == ms[
        (ms >= oldest_ms) & (ms <= oldest_ms + 3_600_000)
    ].tolist()
    assert len(rows) in (12, 13)
    status, body, _ = get(ex, f"{base}&limit=501")
    assert (status, body) == (400, {"code": -1130, "msg": "parameter 'limit' is invalid."})
    assert weight_of(ex, base) == 0


def test_context_errors(exchange) -> None:
    ex, _ = exchange
    status, body, _ = get(ex, "/futures/data/openInterestHist?symbol=BTCUSDT")
    assert status == 400 and body["code"] == -1102 and "'period'" in body["msg"]
    status, body, _ = get(ex, "/futures/data/openInterestHist?symbol=ETHUSDT&period=5m")
    assert (status, body) == (400, {"code": -1121, "msg": "Invalid symbol."})
    status, body, _ = get(ex, "/futures/data/openInterestHist?symbol=BTCUSDT&period=7m")
    assert (status, body["code"]) == (400, -1130)
    now_ms = ex.now_ns // MS
    status, body, _ = get(ex, f"/fapi/v1/fundingRate?symbol=BTCUSDT&startTime={now_ms}&endTime={now_ms - 1}")
    assert (status, body["code"]) == (400, -1023)
    status, body, _ = get(ex, "/fapi/v1/fundingRate?symbol=BTCUSDT&startTime=abc")
    assert (status, body["code"]) == (400, -1100)


async def _read(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict]:
    out = []
    while len(out) < n:
        msg = await asyncio.wait_for(ws.receive(), 10)
        out.append(json.loads(msg.data))
    return out


async def test_streams_over_the_websocket(exchange, frames) -> None:
    ex, shift = exchange
    t0 = ex.now_ns
    until = t0 + 1100 * NS  # a liquidation every 1013 s
    m, lq = frames["mark_price"], frames["liquidation"]
    mt, lt = m["ts_event"].to_numpy() + shift, lq["ts_event"].to_numpy() + shift
    want_m, want_l = np.flatnonzero((mt > t0) & (mt <= until)), np.flatnonzero((lt > t0) & (lt <= until))
    assert len(want_m) >= 2 and len(want_l) >= 1
    url = ex.ws_url + "/market/stream?streams=btcusdt@markPrice@1s/btcusdt@forceOrder"
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        while not ex.call(ex.exchange.has_subscriber, "btcusdt@forceOrder"):
            await asyncio.sleep(0.01)
        await asyncio.to_thread(ex.advance, None, until)
        got = await _read(ws, len(want_m) + len(want_l))
    dec = Decoder("binance-usdm")
    events = [dec.decode(json.dumps(g), 1) for g in got]
    marks = [e for e in events if isinstance(e, MarkPrice)]
    liqs = [e for e in events if isinstance(e, Liquidation)]
    assert [e.ts_event for e in marks] == (mt[want_m] // MS * MS).tolist()
    assert [e.mark_price for e in marks] == m["mark_price"].to_numpy()[want_m].tolist()
    assert [e.next_funding_ns for e in marks] == (
        (m["next_funding_ns"].to_numpy()[want_m] + shift) // MS * MS
    ).tolist()
    assert [e.qty for e in liqs] == lq["qty"].to_numpy()[want_l].tolist()
    assert [int(e.side) for e in liqs] == lq["side"].to_numpy()[want_l].tolist()
    assert {g["stream"] for g in got} == {"btcusdt@markPrice@1s", "btcusdt@forceOrder"}


async def test_record_context_streams(exchange, frames, tmp_path) -> None:
    ex, shift = exchange
    store = Store(tmp_path / "rec")
    t0 = ex.now_ns
    until = t0 + 1100 * NS
    stop = asyncio.Event()
    ep = loopback_endpoints("usdm", "127.0.0.1", ex.exchange.port)
    cfg = FeedConfig(market="usdm", mark_price=True, liquidations=True, trades=False)
    task = asyncio.create_task(
        record_async(store, "usdm", ["btcusdt"], 1.0, ep, cfg, tmp_path / "raw", 0.2, stop_event=stop)
    )
    while not ex.call(ex.exchange.has_subscriber, "btcusdt@markPrice@1s"):
        await asyncio.sleep(0.02)
    await asyncio.to_thread(ex.advance, None, until)
    m, lq = frames["mark_price"], frames["liquidation"]
    mt, lt = m["ts_event"].to_numpy() + shift, lq["ts_event"].to_numpy() + shift
    n_m = int(((mt > t0) & (mt <= until)).sum())
    n_l = int(((lt > t0) & (lt <= until)).sum())
    await asyncio.sleep(1.0)  # the messages are on their way over loopback; the recorder flushes on stop
    stop.set()
    summary = await task
    marks = store.read("binance-usdm", "BTCUSDT", "mark_price")
    liqs = store.read("binance-usdm", "BTCUSDT", "liquidation")
    assert summary["rows"]["binance-usdm/BTCUSDT/mark_price"] == n_m == len(marks)
    assert len(liqs) == n_l
    sel = (mt > t0) & (mt <= until)
    assert marks["ts_event"].tolist() == (mt[sel] // MS * MS).tolist()
    assert marks["funding_rate"].tolist() == m["funding_rate"].to_numpy()[sel].tolist()
    assert (marks["ts_recv"] >= marks["ts_event"]).all()  # the receive time, never before the event
    assert liqs["price"].tolist() == lq["price"].to_numpy()[(lt > t0) & (lt <= until)].tolist()


def test_context_streams_are_refused_on_spot() -> None:
    with pytest.raises(ValueError, match="markPrice@1s is a USD-M stream"):
        FeedConfig(market="spot", mark_price=True)
    with pytest.raises(ValueError, match="forceOrder is a USD-M stream"):
        FeedConfig(market="spot", liquidations=True)
    assert FeedConfig(market="usdm", mark_price=True, liquidations=True).streams(["BTCUSDT"])[-2:] == [
        "btcusdt@markPrice@1s",
        "btcusdt@forceOrder",
    ]


def test_record_cli_refuses_context_on_spot(capsys) -> None:
    from orderflow.cli import main

    rc = main(["data", "record", "--market", "spot", "--symbols", "btcusdt", "--minutes", "1", "--context"])
    err = capsys.readouterr().err
    assert rc != 0 and "markPrice@1s" in err and "forceOrder" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_simulated_exchange_serves_the_simulators_own_context():
    """With source ``sim`` and no context store, the context endpoints answer the series the simulator
    derived from its own flow (sim_context), shifted with the replay: funding at the simulated funding
    times, the 5-minute statistics published so far, and its mark prices."""
    from orderflow.data.config import SimulatorConfig
    from orderflow.data.simulator import simulate
    from orderflow.execution.local.testing import running_local_exchange

    hours = 0.4
    sim = simulate(SimulatorConfig(symbol="BTCUSDT", seed=0, hours=hours, levels=20))
    assert sim.context and {"funding", "mark_price", "open_interest_5m", "liquidation"} <= set(sim.context)
    with running_local_exchange(sim_hours=hours, seed=0) as ex:
        off = ex.call(lambda: ex.exchange.venue.timeline.offset)
        shift = off - off % MS
        ex.advance(until_ns=sim.start_ns + off + 21 * 60 * NS)  # four 5-minute periods closed
        now = ex.now_ns
        code, body, _ = get(ex, "/fapi/v1/fundingRate?symbol=BTCUSDT&startTime=0&limit=1000")
        assert code == 200
        fund = sim.context["funding"]
        want = fund[fund["ts_recv"] + shift <= now]
        assert len(body) == len(want)  # none yet: the first simulated funding settles at 08:00
        assert [r["fundingTime"] for r in body] == list((want["ts_event"] + shift) // MS)
        assert [float(r["fundingRate"]) for r in body] == pytest.approx(list(want["rate"]), abs=1e-8)
        code, body, _ = get(ex, "/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&limit=500")
        assert code == 200
        oi = sim.context["open_interest_5m"]
        pub = oi[oi["ts_recv"] + shift <= now]
        assert len(body) == len(pub) == 4
        assert [int(r["timestamp"]) for r in body] == list((pub["ts_event"] + shift) // MS)
        served = [float(r["sumOpenInterest"]) for r in body]
        assert served == pytest.approx(list(pub["open_interest"]), rel=1e-8)
        code, body, _ = get(ex, "/fapi/v1/premiumIndex?symbol=BTCUSDT")
        assert code == 200 and float(body["markPrice"]) > 0
