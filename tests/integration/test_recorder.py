"""Recorder end-to-end against the replay server: store rows, raw files, re-import gives the same trades."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from orderflow.adapters.binance.common.endpoints import FeedConfig
from orderflow.adapters.binance.replay.server import ReplayServer
from orderflow.data.importers.binance_raw import import_binance_raw
from orderflow.data.recorder import record_async
from orderflow.data.store import Store

pytestmark = pytest.mark.shared_data


@pytest.mark.slow
async def test_record_then_reimport(shared_data, store, tmp_path) -> None:
    d = shared_data / "hftbacktest_binance_raw" / "usdm"
    out = tmp_path / "raw"
    async with ReplayServer(
        [d / "btcusdt_20240808.gz", d / "ethusdt_20240808.gz"], max_messages=30_000
    ) as srv:
        # record until the server has sent the whole excerpt (not for a fixed wall time, which a
        # slow machine might not fill), bounded by the 2-minute recording time
        stop = asyncio.Event()

        async def stop_when_replayed() -> None:
            await srv.finished.wait()
            await asyncio.sleep(0.5)  # let the last messages reach the recorder
            stop.set()

        watcher = asyncio.create_task(stop_when_replayed())
        summary = await record_async(
            store,
            "usdm",
            ["BTCUSDT", "ETHUSDT"],
            minutes=2.0,
            endpoints=srv.endpoints(),
            feed_config=FeedConfig(book_ticker=True, watchdog_s=5.0),
            out_dir=out,
            flush_s=0.5,
            stop_event=stop,
        )
        watcher.cancel()
        assert srv.finished.is_set()
    assert summary["batches"] >= 2 and summary["raw_lines"] >= 30_000 - 2
    venue = "binance-usdm"
    trades = {s: store.read(venue, s, "trade") for s in ("BTCUSDT", "ETHUSDT")}
    books = {s: store.read(venue, s, "book") for s in ("BTCUSDT", "ETHUSDT")}
    for s in ("BTCUSDT", "ETHUSDT"):
        assert len(trades[s]) > 500 and len(books[s]) > 200
        assert trades[s]["trade_id"].is_monotonic_increasing
        b = books[s]
        assert (b["bid_px_1"] < b["ask_px_1"]).all() and b["bid_px_20"].notna().all()
    assert len(store.read(venue, "BTCUSDT", "quote")) > 1000
    depth = store.read(venue, "BTCUSDT", "depth")
    assert depth["is_snapshot"].sum() == 1000 * 2  # the snapshot's 1000 bids and 1000 asks

    files = sorted(out.rglob("*.gz"))
    assert [f.name for f in files] == [
        f"btcusdt_{summary['raw_files'][0][-11:-3]}.gz",
        f"ethusdt_{summary['raw_files'][0][-11:-3]}.gz",
    ]
    with gzip.open(files[0], "rt") as fh:
        lines = fh.read().splitlines()
    ts, body = lines[0].split(" ", 1)
    assert int(ts) > 1_600_000_000 * 10**9 and body.startswith('{"stream":"btcusdt@')
    assert sum(1 for ln in lines if ln.split(" ", 1)[1].startswith('{"lastUpdateId"')) == 1

    # re-importing the recorded raw files rebuilds the same trades and a synced book
    again = Store(tmp_path / "again")
    for f in files:
        rep = import_binance_raw(again, [f], venue=venue)
        assert rep.gaps == 0, rep.to_dict()
    for s in ("BTCUSDT", "ETHUSDT"):
        t2 = again.read(venue, s, "trade")
        assert len(t2) == len(trades[s])
        assert (t2["trade_id"].to_numpy() == trades[s]["trade_id"].to_numpy()).all()
        b2 = again.read(venue, s, "book")
        assert len(b2) == len(books[s])
        assert (b2["bid_px_1"].to_numpy() == books[s]["bid_px_1"].to_numpy()).all()


@pytest.mark.slow
def test_recording_nothing_fails_and_says_why(tmp_path, capsys) -> None:
    """An endpoint that refuses every connection: exit 1 with the reason, not 0 with nothing recorded."""
    import json
    import socket

    from orderflow.cli import main

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["data", "record", "--symbols", "btcusdt", "--minutes", "0.04", "--flush-s", "1",
            "--store", str(tmp_path / "store"), "--out", str(tmp_path / "raw"),
            "--rest-url", f"http://127.0.0.1:{port}", "--ws-url", f"ws://127.0.0.1:{port}"]  # fmt: skip
    assert main(argv) == 1
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["raw_lines"] == 0 and summary["last_error"].startswith(f"connect ws://127.0.0.1:{port}")
    last = out.err.strip().splitlines()[-1]
    assert last.startswith("orderflow: recorded nothing in ") and f"connect ws://127.0.0.1:{port}" in last
