"""The replay server's context endpoints and streams on a real recording: context frames around the
recording's time, served on the replay's clock (the recorded time of the replay position)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from orderflow.adapters.binance.decode import Decoder
from orderflow.adapters.binance.replay.server import ReplayServer
from orderflow.core.events import MarkPrice
from orderflow.data.store import Store
from support.context_frames import make_frames, write_frames

pytestmark = pytest.mark.shared_data
NS, MS, DAY = 1_000_000_000, 1_000_000, 86_400 * 1_000_000_000


async def test_replay_serves_context_on_the_recorded_clock(shared_data, tmp_path) -> None:
    rec = shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240718.gz"
    probe = ReplayServer([rec])
    t0, t_last = probe.rec.msgs[0][0], probe.rec.msgs[-1][0]
    frames = make_frames(t0 - 3 * DAY, t_last + 60 * NS, seed=5, stream_start_ns=t0 - 120 * NS)
    write_frames(Store(tmp_path / "ctx"), "binance-usdm", "BTCUSDT", frames)
    async with ReplayServer([rec], context_store=tmp_path / "ctx") as srv, aiohttp.ClientSession() as s:
        base = f"http://127.0.0.1:{srv.port}"
        async with s.get(f"{base}/fapi/v1/fundingRate?symbol=BTCUSDT&limit=1000") as r:
            rows = await r.json()
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "1"
        ft = frames["funding"]["ts_event"].to_numpy() // MS
        assert [x["fundingTime"] for x in rows] == ft[
            ft <= t0 // MS
        ].tolist()  # published by the replay's time
        old = t0 // MS - 31 * 86_400_000
        async with s.get(
            f"{base}/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&startTime={old}"
        ) as r:
            assert r.status == 400 and await r.json() == {
                "code": -1130,
                "msg": "parameter 'startTime' is invalid.",
            }
        mt = frames["mark_price"]["ts_event"].to_numpy()
        want = mt[(mt > t0) & (mt <= t_last)] // MS * MS
        assert len(want) >= 2
        got: list[MarkPrice] = []
        dec = Decoder("binance-usdm")
        async with s.ws_connect(f"ws://127.0.0.1:{srv.port}/stream?streams=btcusdt@markPrice@1s") as ws:
            while len(got) < len(want):
                msg = await asyncio.wait_for(ws.receive(), 30)
                assert json.loads(msg.data)["stream"] == "btcusdt@markPrice@1s"
                got.append(dec.decode(msg.data, 0))
    assert [m.ts_event for m in got] == want.tolist()
    assert [m.mark_price for m in got] == frames["mark_price"]["mark_price"].to_numpy()[
        (mt > t0) & (mt <= t_last)
    ].tolist()
