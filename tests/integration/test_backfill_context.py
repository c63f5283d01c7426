"""``backfill-context`` end to end against the local exchange (and a loopback fear & greed server): every
series of a 3-day span into a fresh store, exact page boundaries, the 30-day window note, a second run
that adds nothing, and a run killed with SIGKILL then restarted that ends with the rows of an
uninterrupted run."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orderflow.adapters.binance.common.endpoints import loopback_endpoints
from orderflow.data import context_schema as cs
from orderflow.data.backfill_context import backfill_context_async
from orderflow.data.importers.context import FEAR_GREED_DELAY_S
from orderflow.data.store import Store
from orderflow.execution.local.fear_greed import FearGreedServer
from support.context_frames import SIM_START_NS, exchange_with_context, make_frames

NS, MS, DAY = cs.NS, 1_000_000, 86_400 * cs.NS
VENUE, SYM = "binance-usdm", "BTCUSDT"
SRC = Path(__file__).resolve().parents[2] / "src"
STAT_KINDS = [f"{s}_5m" for s in cs.PERIODIC]


@pytest.fixture(scope="module")
def frames():
    return make_frames(SIM_START_NS - 5 * DAY, SIM_START_NS + 600 * NS, seed=7, stream_start_ns=SIM_START_NS)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory, frames):
    with exchange_with_context(tmp_path_factory.mktemp("bctx") / "store", frames) as (ex, shift):
        yield ex, shift, loopback_endpoints("usdm", "127.0.0.1", ex.exchange.port)


@pytest.fixture(scope="module")
def fear_greed():
    """A loopback alternative.me with the last 10 days (on the wall clock), in its own thread."""
    today = time.time_ns() // DAY * DAY
    days = today - np.arange(10)[::-1] * DAY
    frame = cs.frame(
        "fear_greed", days, days + 87_000 * NS, value=np.arange(10) * 7 + 20, classification=np.arange(10) % 5
    )
    loop = asyncio.new_event_loop()
    srv = FearGreedServer(frame)
    loop.run_until_complete(srv.start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield srv, frame
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)


def expected(frames, kind: str, shift: int, start: int, end: int, now: int) -> pd.DataFrame:
    """The source rows of ``kind`` in [start, end) (served times) that the server had published by now."""
    f = frames[kind].copy()
    for c in ("ts_event", "ts_recv"):
        f[c] = f[c] + shift
    f = f[(f["ts_event"] >= start) & (f["ts_event"] < end) & (f["ts_recv"] <= now)]
    return f.reset_index(drop=True)


def stored(store: Store, kind: str, venue: str = VENUE, sym: str = SYM) -> pd.DataFrame:
    df = store.read(venue, sym, kind)
    return df[["ts_event", "ts_recv", *cs.columns(kind)]] if not df.empty else df


async def test_three_days_of_every_series_then_a_second_run_adds_nothing(
    exchange, frames, fear_greed, tmp_path
):
    ex, shift, ep = exchange
    fg, fg_frame = fear_greed
    store = Store(tmp_path / "s")
    a = SIM_START_NS + shift
    start, end = a - 3 * DAY, a
    series = ["funding", *cs.PERIODIC, "fear_greed"]
    rep = await backfill_context_async(store, SYM, start, end, series, endpoints=ep, fear_greed_url=fg.url)
    now = ex.now_ns
    for kind in ["funding", *STAT_KINDS]:
        want = expected(frames, kind, shift, start, end, now)
        got = stored(store, kind)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
        assert rep.rows[kind] == len(want) > 0
    assert len(stored(store, "funding")) == 9  # every 8 h for 3 days
    assert len(stored(store, "open_interest_5m")) == 864 - 1  # the last period is not published yet
    assert rep.pages["open_interest_5m"] == 2  # 500 + 363
    # fear & greed: the days of [start, end), available a day and 10 minutes after the day's start
    days = fg_frame["ts_event"].to_numpy()
    want_days = days[(days >= start) & (days < end)]
    got = stored(store, "fear_greed", "alternative.me", "FNG")
    assert got["ts_event"].tolist() == want_days.tolist()
    assert (got["ts_recv"] - got["ts_event"] == round(FEAR_GREED_DELAY_S * NS)).all()
    assert fg.requests[-1] == f"limit={int((time.time_ns() - start) // DAY) + 2}&format=json"
    assert rep.notes == []
    where = {k: ("alternative.me", "FNG") if k == "fear_greed" else (VENUE, SYM) for k in rep.rows}
    before = {k: stored(store, k, *where[k]) for k in rep.rows}
    rep2 = await backfill_context_async(store, SYM, start, end, series, endpoints=ep, fear_greed_url=fg.url)
    assert all(n == 0 for n in rep2.rows.values()), rep2.rows
    for k, df in before.items():
        pd.testing.assert_frame_equal(stored(store, k, *where[k]), df)


@pytest.mark.parametrize(("extra", "pages"), [(0, 3), (1, 4)], ids=["exactly-3-pages", "3-pages-plus-1-row"])
async def test_statistics_page_boundaries(exchange, frames, tmp_path, extra, pages) -> None:
    _, shift, ep = exchange
    ts = frames["open_interest_5m"]["ts_event"].to_numpy() + shift
    k, limit = 100, 50
    start, end = int(ts[k]), int(ts[k + 3 * limit + extra])  # 150 (+1) periods
    store = Store(tmp_path / "s")
    rep = await backfill_context_async(
        store, SYM, start, end, ["open_interest"], endpoints=ep, limits={"stats": limit}
    )
    got = stored(store, "open_interest_5m")
    assert (
        len(got) == 3 * limit + extra and got["ts_event"].tolist() == ts[k : k + 3 * limit + extra].tolist()
    )
    assert rep.pages["open_interest_5m"] == pages  # a full last page ends the span: no empty request


async def test_funding_pages_ending_on_a_funding_time(exchange, frames, tmp_path) -> None:
    _, shift, ep = exchange
    ft = frames["funding"]["ts_event"].to_numpy() + shift
    store = Store(tmp_path / "s")
    # 9 funding times in pages of 4: each page ends on a funding time, the next starts 1 ms after it
    rep = await backfill_context_async(
        store, SYM, int(ft[0]), int(ft[8]) + MS, ["funding"], endpoints=ep, limits={"funding": 4}
    )
    assert stored(store, "funding")["ts_event"].tolist() == ft[:9].tolist()
    assert rep.pages["funding"] == 3
    # an end exactly on a funding time leaves that time out (the span is [start, end))
    store2 = Store(tmp_path / "s2")
    rep = await backfill_context_async(
        store2, SYM, int(ft[0]), int(ft[8]), ["funding"], endpoints=ep, limits={"funding": 4}
    )
    assert stored(store2, "funding")["ts_event"].tolist() == ft[:8].tolist()
    assert rep.pages["funding"] == 3  # the third asks (ft[7], ft[8]) and gets nothing


def test_cli_older_start_fetches_what_it_can_and_says_so(exchange, frames, tmp_path, capsys) -> None:
    from orderflow.cli import main

    ex, shift, _ = exchange
    a = SIM_START_NS + shift
    iso = lambda ns: dt.datetime.fromtimestamp(ns / NS, dt.UTC).isoformat()  # noqa: E731
    store = tmp_path / "s"
    args = ["data", "backfill-context", "--store", str(store), "--symbol", "btcusdt", "--kinds", "ls_global"]
    rc = main(
        [*args, "--start", iso(a - 40 * DAY), "--end", iso(a), "--rest-url", ex.rest_url, "--period", "5m"]
    )
    out, err = capsys.readouterr()
    assert rc == 0
    note = [line for line in err.splitlines() if "30 days" in line]
    assert len(note) == 1 and "ls_global" not in note[0] and "/futures/data/*" in note[0]
    assert json.loads(out)["notes"] == [note[0].split("BTCUSDT: ", 1)[1]]
    rows = json.loads(out)["rows"]
    assert rows == {"ls_global_5m": len(expected(frames, "ls_global_5m", shift, a - 40 * DAY, a, ex.now_ns))}


_SCRIPT = """
import asyncio, logging, sys
from orderflow.adapters.binance.common.endpoints import loopback_endpoints
from orderflow.data.backfill_context import backfill_context_async
from orderflow.data.store import Store
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
root, port, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ep = loopback_endpoints("usdm", "127.0.0.1", port)
limits = {"stats": 20, "funding": 1}
asyncio.run(backfill_context_async(Store(root), "BTCUSDT", a, b, endpoints=ep, limits=limits, chunk_rows=20))
"""


def _run(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, *args], stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.slow
def test_killed_mid_way_and_restarted_ends_with_the_same_rows(exchange, tmp_path) -> None:
    ex, shift, ep = exchange
    a = SIM_START_NS + shift
    span = [str(ex.exchange.port), str(a - DAY), str(a)]
    killed = tmp_path / "killed"
    p = _run([str(killed), *span])
    pages = 0
    assert p.stderr is not None
    for line in p.stderr:
        pages += ": page " in line
        if pages == 25:  # funding done (3 pages), well into the statistics
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait(30)
    assert p.returncode == -signal.SIGKILL
    partial = {k: len(Store(killed).read(VENUE, SYM, k)) for k in ["funding", *STAT_KINDS]}
    assert 0 < sum(partial.values()) < 3 + 5 * 287, partial
    restart = _run([str(killed), *span])
    _, err = restart.communicate(timeout=120)
    assert restart.returncode == 0, err[-2000:]
    whole = Store(tmp_path / "whole")
    asyncio.run(
        backfill_context_async(whole, SYM, a - DAY, a, endpoints=ep, limits={"stats": 20, "funding": 1})
    )
    for kind in ["funding", *STAT_KINDS]:
        got, want = stored(Store(killed), kind), stored(whole, kind)
        pd.testing.assert_frame_equal(got, want)
        assert not got["ts_event"].duplicated().any()
    assert len(stored(whole, "open_interest_5m")) == 287


@pytest.mark.slow
async def test_three_days_of_the_simulators_own_series(tmp_path) -> None:
    """The simulator's context model (funding from its premium, open interest from its flow, taker
    volumes from its trades, long/short ratios) over 3 days of simulated trades, served by the local
    exchange and backfilled into a fresh store: every series, every row, the values as printed on the
    wire (ratios and taker volumes to 4 decimals, the rest to 8)."""
    from orderflow.data.sim_context import simulate_context

    rng = np.random.default_rng(11)
    start = SIM_START_NS - 3 * DAY
    ts = start + np.arange(0, 3 * 86_400, 2, dtype=np.int64) * NS + 500_000_000  # a trade every 2 s
    side = np.where(rng.random(ts.size) < 0.5, 1, -1)
    px = 60_000.0 * np.exp(np.cumsum(rng.normal(0, 2e-4, ts.size)))
    trades = pd.DataFrame({"ts_event": ts, "price": px, "size": rng.exponential(0.05, ts.size), "side": side})
    sim = simulate_context(trades, start, SIM_START_NS, seed=4)
    served = {k: v for k, v in sim.items() if k not in ("mark_price", "liquidation")}  # streams only
    with exchange_with_context(tmp_path / "ctx", served) as (ex, shift):
        ep = loopback_endpoints("usdm", "127.0.0.1", ex.exchange.port)
        store = Store(tmp_path / "s")
        a = SIM_START_NS + shift
        rep = await backfill_context_async(
            store, SYM, a - 3 * DAY, a, ["funding", *cs.PERIODIC], endpoints=ep
        )
        rep_1h = await backfill_context_async(store, SYM, a - 3 * DAY, a, list(cs.PERIODIC), endpoints=ep,
                                              period="1h")  # fmt: skip
    assert len(stored(store, "funding")) == 8  # 3 days of 8 h fundings after the start
    for kind, want in served.items():
        # the span is [a - 3 days, a), and at a the last period's statistic is not published yet
        want = want[(want["ts_event"] < SIM_START_NS) & (want["ts_recv"] <= SIM_START_NS)]
        got = stored(store, kind)
        assert len(got) == len(want) > 0, kind
        assert (got["ts_event"].to_numpy() == want["ts_event"].to_numpy() + shift).all(), kind
        assert (got["ts_recv"].to_numpy() == want["ts_recv"].to_numpy() + shift).all(), kind
        for c in cs.columns(kind):
            four = kind.startswith(("ls_", "taker_ratio"))  # ratios and taker volumes: 4 decimals
            tol = {"rel": 1e-4, "abs": 5e-5} if four else {"rel": 1e-7, "abs": 5e-9}
            assert got[c].tolist() == pytest.approx(want[c].tolist(), **tol), (kind, c)
    assert rep.rows["open_interest_5m"] == len(served["open_interest_5m"]) - 1 == 863
    assert rep_1h.rows["taker_ratio_1h"] == 71
