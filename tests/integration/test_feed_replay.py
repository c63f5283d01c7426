"""BinanceFeed against the loopback replay server over real sockets, on real recordings.

Every test replays recorded Binance traffic (usdm BTCUSDT + ETHUSDT 2024-08-08 as one two-symbol feed,
or spot) as fast as the client reads, and checks the rebuilt books against the recorded bookTickers:
whenever a bookTicker's ``u`` equals the ``u`` of the last applied diff, best bid/ask must be equal.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from orderflow.adapters.binance.common.endpoints import FeedConfig
from orderflow.adapters.binance.feed import BinanceFeed
from orderflow.adapters.binance.replay.server import ReplayServer
from orderflow.core.events import BookDelta, BookSynced, FeedStatus, GapEvent, Quote, Trade

pytestmark = pytest.mark.shared_data
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@pytest.fixture()
def usdm_files(shared_data):
    d = shared_data / "hftbacktest_binance_raw" / "usdm"
    return [d / "btcusdt_20240808.gz", d / "ethusdt_20240808.gz"]


@pytest.fixture()
def spot_files(shared_data):
    d = shared_data / "hftbacktest_binance_raw" / "spot"
    return [d / "btcusdt_20240808.gz", d / "ethusdt_20240808.gz"]


class Run:
    """Collects a feed's events and compares its books with the bookTickers."""

    def __init__(self, feed: BinanceFeed) -> None:
        self.feed = feed
        self.counts: Counter = Counter()
        self.control: list = []  # FeedStatus, GapEvent, BookSynced in order
        self.last_u: dict[str, int | None] = {}
        self.last_quote: dict[str, Quote] = {}
        self.matches: Counter = Counter()
        self.mismatches: list = []
        self.matches_after_resync: Counter = Counter()
        self.resynced: set[str] = set()
        self.last_data_ts = 0
        self.stale_gaps_s: list[float] = []  # receive time of the last data message -> stale status
        self.end_index: int | None = None
        self.wall: list[tuple[float, object]] = []  # (monotonic time handed out, control event)
        self.stats: dict[str, int] = {}

    def add(self, ev) -> None:
        self.counts[type(ev).__name__] += 1
        if isinstance(ev, FeedStatus | BookSynced):
            self.wall.append((time.monotonic(), ev))
        if isinstance(ev, BookDelta):
            self.last_u[ev.symbol] = ev.last_update_id
            q = self.last_quote.get(ev.symbol)
            if q is not None and q.update_id == ev.last_update_id:
                self._compare(q)
        elif isinstance(ev, Quote):
            self.last_quote[ev.symbol] = ev
            if self.last_u.get(ev.symbol) == ev.update_id:
                self._compare(ev)
        elif isinstance(ev, GapEvent):
            self.last_u[ev.symbol] = None
            self.control.append(ev)
        elif isinstance(ev, BookSynced):
            if ev.resync:
                self.resynced.add(ev.symbol)
            self.control.append(ev)
        elif isinstance(ev, FeedStatus):
            if ev.state == "stale":
                self.stale_gaps_s.append((ev.ts_recv - self.last_data_ts) / 1e9)
            self.control.append(ev)
        if isinstance(ev, BookDelta | Quote | Trade):
            self.last_data_ts = ev.ts_recv

    def _compare(self, q: Quote) -> None:
        if not self.feed.is_valid(q.symbol):
            return
        book = self.feed.book(q.symbol)
        if book.best_bid()[0] == q.bid_price and book.best_ask()[0] == q.ask_price:
            self.matches[q.symbol] += 1
            if q.symbol in self.resynced:
                self.matches_after_resync[q.symbol] += 1
        else:
            self.mismatches.append((q, book.best_bid(), book.best_ask()))

    def states(self) -> list[str]:
        return [e.state for e in self.control if isinstance(e, FeedStatus)]

    def before_end(self) -> list:
        """Control events before the end-of-recording stale/disconnect."""
        return self.control[: self.end_index]


async def run_feed(srv: ReplayServer, market: str = "usdm", timeout: float = 60.0, **cfg) -> Run:
    cfg = {"watchdog_s": 0.5, "reconnect_initial_s": 0.05, **cfg}
    config = FeedConfig(market=market, book_ticker=True, **cfg)
    feed = BinanceFeed(market, SYMBOLS, srv.endpoints(), config, seed=1)
    run = Run(feed)

    async def consume() -> None:
        async for ev in feed.events():
            run.add(ev)
            if isinstance(ev, FeedStatus) and ev.state == "stale" and srv.finished.is_set():
                run.end_index = len(run.control) - 1
                await feed.stop()

    await asyncio.wait_for(consume(), timeout)
    run.stats = feed.stats()
    return run


def synced(run: Run, resync: bool) -> set[str]:
    return {e.symbol for e in run.before_end() if isinstance(e, BookSynced) and e.resync is resync}


def gaps(run: Run) -> list[GapEvent]:
    return [e for e in run.before_end() if isinstance(e, GapEvent)]


@pytest.mark.slow
async def test_normal_sync_two_symbols_books_match_book_tickers(usdm_files) -> None:
    async with ReplayServer(usdm_files, max_messages=60_000) as srv:
        run = await run_feed(srv)
    assert synced(run, resync=False) == set(SYMBOLS)
    assert gaps(run) == [] and synced(run, resync=True) == set()
    assert run.matches["BTCUSDT"] > 20 and run.matches["ETHUSDT"] > 20
    assert run.mismatches == []
    assert run.counts["Trade"] > 1000 and run.counts["BookDelta"] > 1000
    assert run.stats["messages"] == 60_000 - 2  # the two recorded REST snapshot lines are not WS messages
    assert run.states()[0] == "connected"


@pytest.mark.slow
async def test_spot_sync(spot_files) -> None:
    async with ReplayServer(spot_files, max_messages=40_000) as srv:
        assert srv.market == "spot"
        run = await run_feed(srv, market="spot")
    assert synced(run, resync=False) == set(SYMBOLS) and gaps(run) == []
    assert sum(run.matches.values()) > 0 and run.mismatches == []


@pytest.mark.slow
async def test_dropped_diff_resyncs_only_that_symbol(usdm_files) -> None:
    async with ReplayServer(usdm_files, max_messages=60_000, drop_diff={"BTCUSDT": 300}) as srv:
        run = await run_feed(srv)
        assert srv.stats["dropped_diffs"] == 1
        assert srv.stats["depth_requests"] == 3  # one per symbol, then BTCUSDT again
    g = gaps(run)
    assert [(e.symbol, e.reason) for e in g] == [("BTCUSDT", "update-id gap")]
    assert synced(run, resync=True) == {"BTCUSDT"}
    assert run.matches_after_resync["BTCUSDT"] > 0 and run.mismatches == []
    assert run.matches["ETHUSDT"] > 0
    assert run.stats["gaps"] >= 1 and run.stats["resyncs"] == 1


@pytest.mark.slow
async def test_disconnect_reconnects_and_resyncs_both(usdm_files) -> None:
    async with ReplayServer(usdm_files, max_messages=60_000, close_after=20_000) as srv:
        run = await run_feed(srv)
        assert srv.stats["ws_connections"] >= 2
    states = run.states()
    i = states.index("disconnected")
    assert states[:i] == ["connected"] and states[i + 1 : i + 3] == ["reconnecting", "connected"]
    assert sorted(e.symbol for e in gaps(run) if e.reason == "disconnect") == SYMBOLS
    assert synced(run, resync=True) == set(SYMBOLS)
    assert sum(run.matches_after_resync.values()) > 0 and run.mismatches == []
    assert run.stats["reconnects"] >= 1


@pytest.mark.slow
async def test_stale_stream_watchdog_reconnects(usdm_files) -> None:
    watchdog = 0.5
    async with ReplayServer(usdm_files, max_messages=40_000, silent_after=15_000, silent_s=20.0) as srv:
        run = await run_feed(srv, watchdog_s=watchdog)
        assert srv.stats["silences"] == 1
    stale = [e for e in run.before_end() if isinstance(e, FeedStatus) and e.state == "stale"]
    assert len(stale) == 1
    # the watchdog fired within watchdog_s + margin of the last message before the silence
    assert watchdog - 0.05 <= run.stale_gaps_s[0] <= watchdog + 1.0
    states = run.states()
    assert states[: states.index("stale") + 4] == [
        "connected",
        "stale",
        "disconnected",
        "reconnecting",
        "connected",
    ]
    assert synced(run, resync=True) == set(SYMBOLS)
    assert run.matches_after_resync["BTCUSDT"] + run.matches_after_resync["ETHUSDT"] > 0
    assert run.mismatches == [] and run.stats["stale"] >= 1


@pytest.mark.slow
async def test_429_then_success(usdm_files) -> None:
    # the whole recording (about 4 s at full speed) outlasts the 2 s of Retry-After waits, so the books
    # sync while diffs are still streaming
    async with ReplayServer(usdm_files, reject_depth=2, retry_after_s=1) as srv:
        run = await run_feed(srv)
        assert srv.stats["rejected_depth"] == 2
    assert synced(run, resync=False) == set(SYMBOLS)
    connected = next(t for t, e in run.wall if isinstance(e, FeedStatus) and e.state == "connected")
    first_sync = next(t for t, e in run.wall if isinstance(e, BookSynced))
    assert first_sync - connected >= 1.0  # Retry-After: 1 was honoured
    assert run.stats["rest_retries_429"] == 2
    assert run.counts["BookDelta"] > 100 and run.mismatches == []


def test_streams_url_and_config() -> None:
    from orderflow.adapters.binance.common.endpoints import default_endpoints

    feed = BinanceFeed(
        "usdm",
        ["btcusdt", "ETHUSDT"],
        default_endpoints("usdm"),
        FeedConfig(book_ticker=True, kline_intervals=["1m"]),
    )
    # Binance's USD-M layout since 2026-04-23: depth and bookTicker on /public, the rest on /market
    assert feed.urls == [
        "wss://fstream.binance.com/public/stream?streams=btcusdt@depth@0ms/btcusdt@bookTicker/"
        "ethusdt@depth@0ms/ethusdt@bookTicker",
        "wss://fstream.binance.com/market/stream?streams=btcusdt@trade/btcusdt@kline_1m/"
        "ethusdt@trade/ethusdt@kline_1m",
    ]
    legacy = default_endpoints("usdm").model_copy(update={"ws_routes": "combined"})
    assert BinanceFeed("usdm", ["btcusdt"], legacy, FeedConfig(book_ticker=True)).urls == [
        "wss://fstream.binance.com/stream?streams=btcusdt@depth@0ms/btcusdt@trade/btcusdt@bookTicker"
    ]
    spot = BinanceFeed("spot", ["btcusdt"], default_endpoints("spot"), FeedConfig(market="spot"))
    assert spot.urls == ["wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms/btcusdt@trade"]
    with pytest.raises(ValueError, match="endpoints are for 'usdm'"):
        BinanceFeed("spot", ["BTCUSDT"], default_endpoints("usdm"), FeedConfig(market="spot"))


async def test_cryptofeed_futures_recording(shared_data) -> None:
    f = shared_data / "cryptofeed_sample_data" / "BINANCE_FUTURES.jsonl.gz"
    async with ReplayServer([f]) as srv:
        symbols = srv.rec.symbols
        assert symbols == ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]
        cfg = FeedConfig(
            depth_stream="depth@100ms", trades=False, book_ticker=True, kline_intervals=["1m"], watchdog_s=0.5
        )
        feed = BinanceFeed("usdm", symbols, srv.endpoints(), cfg)
        run = Run(feed)
        async for ev in feed.events():
            run.add(ev)
            if isinstance(ev, FeedStatus) and ev.state == "stale" and srv.finished.is_set():
                run.end_index = len(run.control) - 1
                await feed.stop()
        assert srv.stats["recorded_snapshots"] + srv.stats["built_snapshots"] == 4
    assert {e.symbol for e in run.before_end() if isinstance(e, BookSynced)} == set(symbols)
    assert gaps(run) == [] and run.mismatches == []
    assert run.counts["Bar"] == 67 and run.counts["BookDelta"] > 500
