"""Disconnect test of the running paper engine (issue 7): a TCP fault proxy between the engine and the
local exchange cuts the market-data connection, then the user-data connection (kept down while orders
are filled at the exchange), during one run.

Market data: the feed reconnects and resyncs from a REST snapshot, the features are invalid from the
gap until warm again, and the engine's book equals the exchange's book at the same update id.
User data: the fills made while the stream is down are recovered by REST, and afterwards the engine's
position and its fills (quantity and notional per side) equal the exchange's, every order reached the
exchange once and no fill is booked twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from orderflow.adapters.binance.common.config import TradingClientConfig
from orderflow.adapters.binance.common.signing import Credentials
from orderflow.adapters.binance.feed import BinanceFeed
from orderflow.adapters.binance.trading.client import BinanceTradingClient
from orderflow.adapters.binance.trading.decode import order_from_rest
from orderflow.adapters.binance.trading.events import OrderUpdate
from orderflow.adapters.binance.userstream import UserDataStream
from orderflow.config import load_config
from orderflow.core.events import BookDelta
from orderflow.core.instruments import KNOWN
from orderflow.engine.paper import PaperEngine
from orderflow.execution.local.testing import running_local_exchange
from support.netfault import FaultProxy

REPO = Path(__file__).resolve().parents[2]
OFI_ONLY = REPO / "config" / "examples" / "ofi-only"
SYMBOL = "BTCUSDT"
SPEED = 20.0  # replay seconds per wall second: ~200 book events and ~600 trades a second
DEPTH = 20  # levels the local exchange keeps (its default), so the feed's book is exactly its top 20
ZSCORE_WINDOW = 300
# short feature windows (60 s of replay = 3 s of wall time) and an eager strategy: the engine warms and
# trades within seconds, so both faults happen while it is trading
FAST = {
    "ORDERFLOW__FEATURES__RV_WINDOWS_S": "[10, 30, 60]",
    "ORDERFLOW__FEATURES__REGIME_VOL_WINDOWS_S": "[30, 60]",
    "ORDERFLOW__FEATURES__TREND_HALFLIVES_S": "[10, 60]",
    "ORDERFLOW__FEATURES__KYLE_BUCKETS": "30",
    "ORDERFLOW__FEATURES__VOL_PCT_BUCKETS": "60",
    "ORDERFLOW__FEATURES__WARMUP_S": "60",
    "ORDERFLOW__FEATURES__ZSCORE_WINDOW": str(ZSCORE_WINDOW),
    "ORDERFLOW__STRATEGY__RV_FEATURE": "rv_60s",
    "ORDERFLOW__STRATEGY__RV_WINDOW_S": "60",
    "ORDERFLOW__STRATEGY__TIMEOUT_S": "2",
    "ORDERFLOW__RISK__MIN_TRADE_INTERVAL_S": "4",
}


class RecordingFeed(BinanceFeed):
    """The engine's feed, observed: its book's top levels after each diff, by update id (the last
    ``keep`` diffs)."""

    def __init__(self, *args: Any, keep: int = 4096, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.at: dict[int, np.ndarray] = {}
        self._ids: deque[int] = deque()
        self._keep = keep
        self._row = np.empty(4 * DEPTH)

    async def events(self) -> AsyncIterator[Any]:
        async for ev in super().events():
            if isinstance(ev, BookDelta) and ev.symbol == SYMBOL:
                book = self.book(SYMBOL)
                book.top_into(DEPTH, self._row)
                self.at[book.update_id] = self._row.copy()
                self._ids.append(book.update_id)
                if len(self._ids) > self._keep:
                    self.at.pop(self._ids.popleft(), None)
            yield ev


def observe(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Have the engine build a :class:`RecordingFeed` and a user stream whose instance is kept."""
    seen: dict[str, Any] = {}

    class Feed(RecordingFeed):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            seen["feed"] = self

    class Stream(UserDataStream):
        """Counts the order updates it hands to the engine by source: "stream" or "rest" (recovered)."""

        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self.sources: Counter[str] = Counter()
            seen["stream"] = self

        async def get(self, timeout: float | None = None) -> Any:
            ev = await super().get(timeout)
            if isinstance(ev, OrderUpdate):
                self.sources[ev.source] += 1
            return ev

    monkeypatch.setattr("orderflow.adapters.binance.feed.BinanceFeed", Feed)
    monkeypatch.setattr("orderflow.adapters.binance.userstream.UserDataStream", Stream)
    return seen


async def until(what: str, cond: Callable[[], bool], run: asyncio.Task, timeout: float) -> None:
    """Wait until ``cond()`` (polling); fail naming ``what`` on timeout or if the run ended."""
    deadline = time.monotonic() + timeout
    while not cond():
        if run.done():
            raise AssertionError(f"the engine stopped before {what}: {run.result()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        await asyncio.sleep(0.01)


async def book_matches(rest_url: str, feed: RecordingFeed, run: asyncio.Task) -> bool:
    """Compare the exchange's REST depth (read directly, not through the proxy) with the feed's book at
    the same update id; False when that update id was not a diff boundary the feed saw."""
    async with aiohttp.ClientSession() as s:
        url = f"{rest_url}/fapi/v1/depth?symbol={SYMBOL}&limit={DEPTH}"
        async with s.get(url) as r:
            depth = await r.json()
    uid = int(depth["lastUpdateId"])
    await until(f"book update {uid} in the feed", lambda: feed.book(SYMBOL).update_id >= uid, run, 10)
    mine = feed.at.get(uid)
    if mine is None:
        return False
    want = np.full(4 * DEPTH, np.nan)
    for side, off in (("bids", 0), ("asks", 2 * DEPTH)):
        levels = np.array(depth[side], dtype=float).reshape(-1, 2)
        want[off : off + len(levels)] = levels[:, 0]
        want[off + DEPTH : off + DEPTH + len(levels)] = levels[:, 1]
    np.testing.assert_allclose(mine, want, rtol=0, atol=1e-6, equal_nan=True, err_msg=f"update {uid}")
    return True


async def exchange_orders(client: BinanceTradingClient, prefix: str) -> list[Any]:
    rows = await client.rest.request("GET", "/fapi/v1/allOrders", {"symbol": SYMBOL, "limit": 1000},
                                     weight=5, signed=True)  # fmt: skip
    orders = [order_from_rest(r, client.venue) for r in rows]
    return [o for o in orders if o.client_order_id.startswith(prefix)]


async def positions_agree(engine: PaperEngine, client: BinanceTradingClient, run: asyncio.Task) -> None:
    """The engine's position equals the exchange's, read at a moment with no order in flight and none
    sent while the exchange answered."""

    def idle() -> bool:
        return engine.session.order_in_flight < 0  # -1: none

    for _ in range(40):
        await until("a moment without an order in flight", idle, run, 20)
        before = engine.stats.orders_sent
        pos = (await client.positions()).get(SYMBOL)
        if engine.stats.orders_sent == before and idle():
            theirs = pos.quantity if pos is not None else 0.0
            assert engine.session.P[0] == pytest.approx(theirs, abs=1e-9), (engine.session.P[0], theirs)
            return
    raise AssertionError("orders kept arriving while the position was read")


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_engine_survives_market_and_user_stream_disconnects(monkeypatch):
    cfg = load_config(OFI_ONLY, environ=FAST)
    inst = KNOWN[("binance-usdm", SYMBOL)]
    seen = observe(monkeypatch)
    with running_local_exchange(source="sim", seed=0, clock="realtime", speed=SPEED, market="usdm",
                                sim_hours=0.5, symbol=SYMBOL) as ex:  # fmt: skip
        host, port = ex.rest_url.removeprefix("http://").split(":")
        creds = Credentials.hmac(ex.api_key, ex.api_secret)
        direct = TradingClientConfig(market="usdm", rest_base_url=ex.rest_url, ws_base_url=ex.ws_url,
                                     client_id_prefix="check")  # fmt: skip
        async with FaultProxy(host, int(port)) as proxy, BinanceTradingClient(direct, creds) as client:
            engine = PaperEngine(cfg, "usdm", SYMBOL, proxy.http_url, proxy.ws_url, creds, inst)
            run = asyncio.create_task(engine.run(minutes=3.0))
            st = engine.stats
            await until("trading with valid features", lambda: st.valid_rows > 0 and st.fills >= 1, run, 90)
            feed, stream = seen["feed"], seen["stream"]
            assert proxy.live("market") == 1 and proxy.live("user") == 1

            # 1. market data: cut the stream, refuse reconnects for 1.5 s
            gaps, snapshots, valid_before = st.gaps, feed.counters["snapshots"], st.valid_rows
            rewarms, invalid = len(st.rewarm_s), st.gap_invalid_events
            proxy.block("market", seconds=1.5)
            assert proxy.drop("market") == 1
            await until("re-warmed features after the gap", lambda: len(st.rewarm_s) > rewarms, run, 30)
            assert proxy.refused["market"] >= 1  # the feed tried to reconnect while the network was down
            assert st.gaps > gaps and feed.counters["reconnects"] >= 1
            assert feed.counters["snapshots"] > snapshots  # resynced from a new REST snapshot
            # invalid from the gap until warm: at least the z-score window of book events after the
            # resync, and for longer than the outage
            assert st.gap_invalid_events - invalid >= ZSCORE_WINDOW - 1, st.gap_invalid_events - invalid
            assert st.rewarm_s[rewarms] > 1.5, st.rewarm_s
            await until("valid rows after re-warming", lambda: st.valid_rows > valid_before + 100, run, 10)
            matched = 0
            for _ in range(20):
                matched += await book_matches(ex.rest_url, feed, run)
                if matched >= 3:
                    break
            assert matched >= 3, "the exchange's depth never landed on a diff boundary the feed saw"

            # 2. user data: cut the stream and keep it down until an order placed meanwhile was filled
            # at the exchange and its final report recovered by REST
            sent, fills, drops = st.orders_sent, st.fills, stream.stats["drops"]
            by_stream, by_rest = stream.sources["stream"], stream.sources["rest"]
            proxy.block("user")
            assert proxy.drop("user") == 1
            await until("an order sent while the user stream is down", lambda: st.orders_sent > sent, run, 30)
            oid = engine.session.order_in_flight  # that order (-1 if done already, or a later one)
            # one order is in flight at a time and it stays so until its final report
            await until("the order's final report", lambda: engine.session.order_in_flight != oid, run, 30)
            assert not stream.connected.is_set() and proxy.live("user") == 0
            assert stream.stats["drops"] > drops and proxy.refused["user"] >= 1
            assert stream.sources["stream"] == by_stream and stream.sources["rest"] > by_rest
            assert st.fills > fills
            await positions_agree(engine, client, run)

            # let it reconnect: order updates come over the stream again
            proxy.unblock("user")
            by_stream = stream.sources["stream"]
            await until("an update over the reconnected stream", lambda: stream.sources["stream"] > by_stream,
                        run, 30)  # fmt: skip
            await positions_agree(engine, client, run)
            engine.request_stop("test done")
            stats = await run

            # 3. the engine's record equals the exchange's
            assert stats.order_errors == []
            orders = await exchange_orders(client, engine.prefix + "-")
            ids = [o.client_order_id for o in orders]
            assert len(ids) == len(set(ids)) == stats.orders_sent  # each order reached the exchange once
            assert all(o.status.terminal for o in orders)
            fills = engine.session.result().fills
            for side in (1, -1):
                mine = fills[fills.side == side]
                theirs = [o for o in orders if int(o.side) == side]
                assert mine.qty.sum() == pytest.approx(sum(o.filled_qty for o in theirs), abs=1e-9)
                assert (mine.qty * mine.price).sum() == pytest.approx(sum(o.filled_quote for o in theirs),
                                                                      rel=1e-9)  # fmt: skip
            pos = (await client.positions()).get(SYMBOL)
            assert engine.session.P[0] == pytest.approx(pos.quantity if pos else 0.0, abs=1e-9)
            assert proxy.accepted["market"] >= 2 and proxy.accepted["user"] >= 2
