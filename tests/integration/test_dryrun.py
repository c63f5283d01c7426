"""Dry run (``orderflow paper --fills local``): the paper engine on a venue's market data only, with the
backtester's simulated exchange for fills, against the replay server serving a real USD-M recording. It
gives ``orderflow backtest``'s fills on the same recording, sends no order, account or signed request,
and fails in one line when the venue does not answer."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orderflow.adapters.binance.replay.server import ReplayServer
from orderflow.cli import main
from orderflow.config import load_config
from orderflow.core.instruments import KNOWN
from orderflow.engine.dryrun import DryRunEngine
from orderflow.journal import Journal
from support.replay_thread import ServerThread

ROOT = Path(__file__).resolve().parents[2]
# the short-recording example with the OFI score alone and gates low enough to trade without a model
TRADING = """\
features: {vol_pct_buckets: 20}
strategy: {w_ofi: 1.0, w_ai: 0.0, confidence_gate: 0.5, ev_cost_mult: 0.0, quality_gate: 0.5}
backtest: {exchange: {venue: binance-usdm}}
"""


@pytest.fixture()
def recording(shared_data) -> Path:
    return shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240808.gz"


@pytest.fixture()
def config_dir(tmp_path) -> Path:
    d = tmp_path / "config"
    d.mkdir()
    shutil.copy(ROOT / "config" / "examples" / "short-recording" / "short.yaml", d / "a_short.yaml")
    (d / "b_trading.yaml").write_text(TRADING)
    return d


async def dry_run(cfg, rec: Path, journal: Journal) -> tuple[DryRunEngine, ReplayServer]:
    """The engine against the replay server (exchange-time order, as fast as it reads) until it has
    read the whole recording, then stopped (on_stop close: the backtest's close at the end)."""
    async with ReplayServer([rec], order="exchange") as srv:
        url = f"127.0.0.1:{srv.port}"
        engine = DryRunEngine(cfg, "usdm", "BTCUSDT", f"http://{url}", f"ws://{url}",
                              KNOWN[("binance-usdm", "BTCUSDT")], journal=journal)  # fmt: skip
        task = asyncio.create_task(engine.run(minutes=5.0))

        def read_all() -> bool:
            f = engine.feed
            read = f is not None and f.counters["messages"] >= srv.stats["ws_messages"]
            return srv.finished.is_set() and read

        while not (read_all() and not engine.busy) and not task.done():
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)  # the last event's turn
        engine.request_stop("replay finished")
        await asyncio.wait_for(task, 60)
    return engine, srv


@pytest.mark.slow
def test_dry_run_on_the_replay_server_gives_the_backtests_fills(recording, config_dir, tmp_path, capsys):
    rc = main(["backtest", str(recording), "--model", "none", "--config", str(config_dir),
               "--report", str(tmp_path / "bt"), "--log-level", "WARNING"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    bt = pd.read_csv(tmp_path / "bt" / "fills.csv")
    cfg = load_config(config_dir, environ={})
    journal = Journal.open(str(tmp_path / "journal.db"))
    engine, srv = asyncio.run(dry_run(cfg, recording, journal))
    # nothing but market data was asked for
    assert srv.refused == [] and srv.stats["refused"] == 0
    assert srv.stats["recorded_snapshots"] == 1 and srv.stats["built_snapshots"] == 0
    # the same events as the backtest (27,860: 6,547 book events, 21,313 trades) and the same fills,
    # in the core and in the journal (time, side, quantity, price, fee)
    assert (engine.stats.book_events, engine.stats.trades) == (6547, 21313)
    assert len(bt) > 50 and engine.stats.fills == len(bt)
    a = engine.session.result().fills
    assert np.array_equal(a["ts"].to_numpy(), bt["ts"].to_numpy())
    assert np.array_equal(a["side"].to_numpy(), bt["side"].to_numpy())
    for c in ("qty", "price", "fee"):
        np.testing.assert_allclose(a[c].to_numpy(), bt[c].to_numpy(), rtol=1e-9, atol=1e-12, err_msg=c)
    print(f"dry run: {len(bt)} fills, equal to the backtest's; {engine.stats.book_events:,} book events")
    rows = journal.fills(engine.run_id)
    journal.close()
    assert [r.ts_ns for r in rows] == bt["ts"].tolist()
    assert [1 if r.side == "buy" else -1 for r in rows] == bt["side"].tolist()
    for c in ("qty", "price", "fee"):
        got = np.array([float(getattr(r, c)) for r in rows])
        np.testing.assert_allclose(got, bt[c].to_numpy(), rtol=1e-9, atol=1e-12, err_msg=c)


@pytest.mark.slow
def test_paper_fills_local_command_against_the_replay_server(recording, config_dir, tmp_path, capsys):
    with ServerThread([recording], order="exchange") as srv:
        url = f"127.0.0.1:{srv.port}"
        rc = main(["paper", "--fills", "local", "--rest-url", f"http://{url}", "--ws-url", f"ws://{url}",
                   "--model", "none", "--config", str(config_dir), "--minutes", "0.25", "--db",
                   str(tmp_path / "j.db"), "--telemetry", "off", "--log-level", "WARNING"])  # fmt: skip
        refused, served = list(srv.refused), srv.stats["ws_messages"]
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "fills: local simulation" in out and "book events" in out and "orders sent" in out, out
    assert served > 1000
    assert refused == []  # no /fapi/v1/order, listenKey, account or signed request reached the server


def test_paper_fills_local_with_an_unreachable_venue_is_a_one_line_error(tmp_path, capsys):
    rc = main(["paper", "--fills", "local", "--rest-url", "http://127.0.0.1:9", "--ws-url", "ws://127.0.0.1:9",
               "--model", "none", "--db", str(tmp_path / "j.db"), "--telemetry", "off"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "http://127.0.0.1:9" in err, err


async def test_replay_server_refuses_order_and_account_requests(recording):
    import aiohttp

    async with ReplayServer([recording], max_messages=100) as srv, aiohttp.ClientSession() as s:
        base = f"http://127.0.0.1:{srv.port}"
        for method, path in (("POST", "/fapi/v1/order"), ("POST", "/api/v3/order"),
                             ("POST", "/fapi/v1/listenKey"), ("GET", "/fapi/v2/account"),
                             ("GET", "/fapi/v1/depth?symbol=BTCUSDT&signature=ab")):  # fmt: skip
            async with s.request(method, base + path) as r:
                assert r.status == 401 and (await r.json())["code"] == -2015, path
        async with s.get(base + "/fapi/v1/time") as r:
            assert r.status == 200
    assert srv.refused == ["POST /fapi/v1/order", "POST /api/v3/order", "POST /fapi/v1/listenKey",
                           "GET /fapi/v2/account", "GET /fapi/v1/depth"]  # fmt: skip
