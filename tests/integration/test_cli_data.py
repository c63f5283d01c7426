"""The `orderflow data` commands end to end: record and backfill against the loopback replay server
(real sockets, recorded Binance traffic), then ls / check / facts on what was stored."""

from __future__ import annotations

import asyncio
import json

import pytest

from orderflow.cli import main
from support.replay_thread import ServerThread

pytestmark = pytest.mark.shared_data


@pytest.mark.slow
def test_record_then_import_check_and_facts(shared_data, tmp_path, capsys):
    d = shared_data / "hftbacktest_binance_raw" / "spot"
    store, raw = tmp_path / "store", tmp_path / "raw"
    with ServerThread([d / "btcusdt_20240808.gz"], speed=20.0) as srv:
        url = f"127.0.0.1:{srv.port}"
        rc = main(
            [
                "data",
                "record",
                "--market",
                "spot",
                "--symbols",
                "btcusdt",
                "--minutes",
                "0.08",
                "--store",
                str(store),
                "--out",
                str(raw),
                "--rest-url",
                f"http://{url}",
                "--ws-url",
                f"ws://{url}",
                "--flush-s",
                "1",
            ]
        )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary  # the recorder's own summary
    assert main(["data", "ls", "--store", str(store), "--json"]) == 0
    kinds = {e["kind"]: e["rows"] for e in json.loads(capsys.readouterr().out)}
    assert kinds.get("book", 0) > 10 and kinds.get("trade", 0) > 10
    files = sorted(raw.rglob("*.gz"))
    assert files, "no raw recording written"
    # the raw recording is importable: same trades as recorded live
    store2 = tmp_path / "store2"
    assert main(["data", "import", *map(str, files), "--format", "binance-raw", "--store", str(store2)]) == 0
    capsys.readouterr()
    assert main(["data", "ls", "--store", str(store2), "--json"]) == 0
    kinds2 = {e["kind"]: e["rows"] for e in json.loads(capsys.readouterr().out)}
    assert kinds2["trade"] == kinds["trade"]
    assert main(["data", "check", "--store", str(store2), "--json"]) == 0
    capsys.readouterr()


@pytest.mark.slow
def test_backfill_klines_from_replay_server(shared_data, tmp_path, capsys):
    k = shared_data / "binance_klines" / "bo-chia0_cryptodatadownload" / "BTCUSDT_1h.csv"
    d = shared_data / "hftbacktest_binance_raw" / "usdm"
    with ServerThread([d / "btcusdt_20240808.gz"], kline_file=k, kline_symbol="BTCUSDT") as srv:
        rc = main(
            [
                "data",
                "backfill-klines",
                "--market",
                "usdm",
                "--symbol",
                "btcusdt",
                "--interval",
                "1h",
                "--start",
                "2021-01-01",
                "--end",
                "2021-03-01",
                "--store",
                str(tmp_path / "s"),
                "--rest-url",
                f"http://127.0.0.1:{srv.port}",
            ]
        )
    assert rc == 0
    assert "stored 1416 1h bars of BTCUSDT" in capsys.readouterr().out
    assert main(["data", "check", "--store", str(tmp_path / "s"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    [bars] = [e for e in rep["datasets"] if e["kind"] == "bar_1h"]
    assert bars["events"] == 1416 and bars["missing_bars"] == 0


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    assert (
        main(
            [
                "data",
                "import",
                str(tmp_path / "nope.gz"),
                "--format",
                "binance-raw",
                "--store",
                str(tmp_path / "s"),
            ]
        )
        == 2
    )
    assert f"argument paths: no such file, got '{tmp_path / 'nope.gz'}'" in capsys.readouterr().err
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n")
    assert main(["data", "import", str(f), "--format", "parquet-magic", "--store", str(tmp_path / "s")]) == 2
    assert "unknown format 'parquet-magic'" in capsys.readouterr().err
    assert main(["data", "facts", "sim/NOPE", "--store", str(tmp_path / "s")]) == 2
    assert "no book data for sim/NOPE" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "backfill-klines",
                "--symbol",
                "btcusdt",
                "--start",
                "yesterday",
                "--store",
                str(tmp_path / "s"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "argument --start: must be an ISO date" in err and "got 'yesterday'" in err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
async def test_replay_server_command_serves_a_feed(shared_data):
    """`orderflow data replay-server` as its own process; the production feed syncs against it."""
    import subprocess
    import sys

    from orderflow.adapters.binance.common.endpoints import FeedConfig, loopback_endpoints
    from orderflow.adapters.binance.feed import BinanceFeed
    from orderflow.core.events import BookSynced, GapEvent

    f = shared_data / "hftbacktest_binance_raw" / "usdm" / "ethusdt_20240808.gz"
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orderflow.cli",
            "data",
            "replay-server",
            str(f),
            "--port",
            str(port),
            "--speed",
            "0",
            "--drop-diff",
            "ETHUSDT:3000",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(100):  # wait for the listening socket
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        feed = BinanceFeed(
            "usdm", ["ETHUSDT"], loopback_endpoints("usdm", "127.0.0.1", port), FeedConfig(watchdog_s=1.0)
        )
        seen = []

        async def consume():
            async for ev in feed.events():
                if isinstance(ev, BookSynced | GapEvent):
                    seen.append(ev)
                if isinstance(ev, BookSynced) and ev.resync:
                    await feed.stop()

        await asyncio.wait_for(consume(), 60)
    finally:
        proc.terminate()
        proc.wait(10)
    kinds = [(type(e).__name__, getattr(e, "reason", "")) for e in seen]
    assert kinds[0] == ("BookSynced", "")
    assert ("GapEvent", "update-id gap") in kinds  # the dropped diff was detected
    assert isinstance(seen[-1], BookSynced) and seen[-1].resync
