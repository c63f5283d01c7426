"""Live Binance market-data feed: combined-stream WebSockets (one; or on USD-M since Binance split its
URLs, one for the public route and one for the market route, see
:meth:`~orderflow.adapters.binance.common.endpoints.BinanceEndpoints.stream_urls`), a REST snapshot
per symbol, and a :class:`DepthSync` per symbol, delivering domain events in order (events of the two
sockets in the order they arrive).

Usage::

    feed = BinanceFeed("usdm", ["BTCUSDT", "ETHUSDT"], endpoints, FeedConfig(book_ticker=True))
    async for ev in feed.events():       # BookDelta (applied only), Trade, Quote, Bar, BookSnapshot,
        book = feed.book(ev.symbol)      # GapEvent, BookSynced, FeedStatus
        ...                              # the book is in the state right after ``ev``
    # elsewhere: await feed.stop()  -> FeedStatus("stopped") and the iterator ends

Events come from a pull loop: a reader task only receives frames (and runs the watchdog); decoding
and book updates happen inside ``events()`` as the consumer asks for the next event, so when an event
is handed out ``feed.book(symbol)`` is exactly the book after it. ``run(callback)`` is the same with a
(sync or async) callback.

Trouble handling: a gap in one symbol's update ids resyncs only that symbol (new REST snapshot); the
other symbols keep streaming. A disconnect invalidates every book (GapEvent reason "disconnect"),
reconnects with exponential backoff and jitter and resyncs all. No message for ``watchdog_s`` means
the stream is stale: FeedStatus "stale", close, reconnect. The sockets of a split layout are one
connection for this purpose: when one drops or goes stale, all are closed and reconnected together
(trades lost on one socket are a gap in the same way as lost diffs).

Raw tap: ``raw_tap(ts_recv_ns, raw_bytes, symbol)`` is called for every WS message (``symbol`` None;
the combined message names its stream) and every REST snapshot body (``symbol`` = its symbol), in the
order the feed processes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp

from orderflow.adapters.binance.common.endpoints import BinanceEndpoints, FeedConfig
from orderflow.adapters.binance.common.errors import BinanceError, IpBanned
from orderflow.adapters.binance.common.venues import VENUES, caps
from orderflow.adapters.binance.decode import DecodeError, Decoder, decode_snapshot
from orderflow.adapters.binance.market import BinanceRest
from orderflow.adapters.binance.sync import DepthSync
from orderflow.core.book import OrderBook
from orderflow.core.events import BookDelta, BookSnapshot, BookSynced, FeedStatus, GapEvent
from orderflow.core.timeutil import NS_PER_MS

log = logging.getLogger(__name__)
RawTap = Callable[[int, bytes, "str | None"], None]

# items of the internal input queue
_WS, _SNAP, _STATUS, _DISCONNECT, _END = range(5)


class BinanceFeed:
    def __init__(
        self,
        market: str,
        symbols: list[str],
        endpoints: BinanceEndpoints,
        config: FeedConfig | None = None,
        clock: Callable[[], int] = time.time_ns,
        raw_tap: RawTap | None = None,
        session: aiohttp.ClientSession | None = None,
        seed: int | None = None,
    ) -> None:
        market = market.removeprefix("binance-")
        if market not in VENUES:
            raise ValueError(f"unknown Binance market {market!r}; expected one of {list(VENUES)}")
        if endpoints.market != market:
            raise ValueError(f"endpoints are for {endpoints.market!r}, the feed for {market!r}")
        if not symbols:
            raise ValueError("BinanceFeed needs at least one symbol")
        self.market = market
        self.venue = endpoints.venue
        self.symbols = [s.upper() for s in symbols]
        self.endpoints = endpoints
        self.config = config or FeedConfig(market=market)
        if self.config.market != market:
            raise ValueError(f"FeedConfig.market is {self.config.market!r}, the feed is {market!r}")
        self.clock = clock
        self.raw_tap = raw_tap
        self._session = session
        self._own_session = session is None
        self._rng = random.Random(seed)
        pu = caps(market).depth_continuity == "pu"  # futures diffs chain on pu, spot on U/u
        self._syncs = {s: DepthSync(self.venue, s, pu) for s in self.symbols}
        self._decoder = Decoder(self.venue)
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=50_000)
        self._gen = 0  # connection generation; snapshots of an older connection are discarded
        self._fetching: dict[str, asyncio.Task] = {}
        self._reader: asyncio.Task | None = None
        self._socks: list[aiohttp.ClientWebSocketResponse] = []
        self._stopping = False
        self._rest: BinanceRest | None = None
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "messages",
                "gaps",
                "resyncs",
                "reconnects",
                "snapshots",
                "stale",
                "decode_errors",
                "rest_errors",
            ),
            0,
        )
        self.last_error: str = ""

    # -- public -----------------------------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        """The WebSocket URLs the feed connects to."""
        return self.endpoints.stream_urls(self.config.streams(self.symbols))

    @property
    def url(self) -> str:
        return " + ".join(self.urls)

    def book(self, symbol: str) -> OrderBook:
        return self._syncs[symbol.upper()].book

    def sync_state(self, symbol: str) -> str:
        """``waiting_snapshot``, ``waiting_bridge`` (snapshot loaded, waiting for the bridging diff) or
        ``synced``."""
        return str(self._syncs[symbol.upper()].state.value)

    def is_valid(self, symbol: str) -> bool:
        return self._syncs[symbol.upper()].valid

    def stats(self) -> dict[str, int]:
        """Counters: messages, gaps, resyncs, reconnects, snapshots, stale, decode_errors, rest_errors,
        plus the REST client's (rest_requests, rest_retries_429, rest_weight_waits)."""
        out = dict(self.counters)
        if self._rest is not None:
            out.update({f"rest_{k}": v for k, v in self._rest.stats.items()})
        return out

    async def stop(self) -> None:
        """Close the socket and end ``events()`` after a FeedStatus "stopped"."""
        if self._stopping:
            return
        self._stopping = True
        for ws in list(self._socks):
            await ws.close()
        if self._reader is not None:
            self._reader.cancel()
        for t in self._fetching.values():
            t.cancel()
        self._put_nowait((_END, 0, None, None))

    async def run(self, callback: Callable[[Any], Awaitable[None] | None]) -> None:
        """Call ``callback(event)`` for every event until :meth:`stop`."""
        async for ev in self.events():
            r = callback(ev)
            if asyncio.iscoroutine(r):
                await r

    async def events(self) -> AsyncIterator[Any]:
        """The feed's domain events in order; connects on first iteration, ends after :meth:`stop`."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        cfg = self.config
        self._rest = BinanceRest(
            self.endpoints, self._session, cfg.max_weight_per_minute, cfg.weight_safety, clock=self.clock
        )
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())
        try:
            while True:
                kind, gen, a, b = await self._queue.get()
                if kind == _WS:
                    for ev in self._on_message(a, b):
                        yield ev
                elif kind == _SNAP:
                    if gen == self._gen:
                        for ev in self._on_snapshot(a, b):
                            yield ev
                elif kind == _STATUS:
                    if cfg.snapshot_on_connect and a.state == "connected" and gen == self._gen:
                        for sym, sync in self._syncs.items():
                            if sync.needs_snapshot:
                                self._request_snapshot(sym)
                    yield a
                elif kind == _DISCONNECT:
                    for ev in self._on_disconnect(a):
                        yield ev
                else:
                    yield FeedStatus(self.venue, self.clock(), "stopped")
                    return
        finally:
            await self._shutdown()

    # -- processing (runs inside events()) ---------------------------------------------------------
    def _on_message(self, ts_recv: int, raw: str) -> list:
        """A combined-stream message, e.g. ``{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,
        "T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}``."""
        self.counters["messages"] += 1
        try:
            ev = self._decoder.decode(raw, ts_recv)
        except DecodeError as e:
            if '"result"' not in raw[:40]:  # subscription acks are not market data
                self.counters["decode_errors"] += 1
                log.warning("feed: undecodable message skipped: %s", e)
            return []
        if isinstance(ev, BookDelta):
            return self._on_diff(ev)
        if isinstance(ev, tuple):  # partial depth (symbol, PartialDepthMsg)
            sym, p = ev
            ts = (p.T or p.E) * NS_PER_MS or ts_recv
            bids, asks = p.bids or p.b, p.asks or p.a
            return [
                BookSnapshot(
                    self.venue,
                    p.s or sym,
                    ts,
                    ts_recv,
                    p.lastUpdateId if p.lastUpdateId >= 0 else p.u,
                    tuple(bids),
                    tuple(asks),
                )
            ]
        return [ev]

    def _on_diff(self, d: BookDelta) -> list:
        """A diff, e.g. ``{"e":"depthUpdate","E":1723161256352,"T":1723161256352,"s":"BTCUSDT",
        "U":5123107837801,"u":5123107842679,"pu":5123107837557,"b":[["61800.20","2.909"]],"a":[]}``."""
        sync = self._syncs.get(d.symbol)
        if sync is None:
            return []
        out = sync.on_diff(d)
        self._count(out)
        if sync.needs_snapshot:
            self._request_snapshot(d.symbol)
        return out

    def _on_snapshot(self, symbol: str, payload: tuple[int, bytes]) -> Iterator[Any]:
        """A REST snapshot body, e.g. ``{"lastUpdateId":5123107852948,"E":1723161256501,
        "T":1723161256493,"bids":[["61800.20","2.909"],...],"asks":[...]}``."""
        _ts_recv, raw = payload
        self._fetching.pop(symbol, None)
        sync = self._syncs[symbol]
        if not sync.needs_snapshot:  # already synced by an earlier snapshot
            return
        try:
            snap = decode_snapshot(raw)
        except DecodeError as e:
            self.counters["rest_errors"] += 1
            log.warning("feed: bad snapshot for %s: %s", symbol, e)
            self._request_snapshot(symbol)
            return
        self.counters["snapshots"] += 1
        # buffered diffs are applied one at a time, each handed out while the book is in its state
        pending = sync.load_snapshot(snap.lastUpdateId, snap.bids, snap.asks)
        for i, d in enumerate(pending):
            out = sync.on_diff(d)
            self._count(out)
            yield from out
            if sync.needs_snapshot:  # the snapshot was older than the buffered diffs
                sync.buffer.extend(pending[i + 1 :])
                self._request_snapshot(symbol)
                return

    def _on_disconnect(self, ts_recv: int) -> list:
        out = []
        for sym, sync in self._syncs.items():
            t = self._fetching.pop(sym, None)
            if t is not None:
                t.cancel()
            out.append(sync.reset("disconnect", ts_recv))
            self.counters["gaps"] += 1
        return out

    def _count(self, events: list) -> None:
        for ev in events:
            if isinstance(ev, GapEvent):
                self.counters["gaps"] += 1
                log.warning(
                    "feed: %s gap (%s, expected %d got %d): resyncing this symbol",
                    ev.symbol,
                    ev.reason,
                    ev.expected,
                    ev.got,
                )
            elif isinstance(ev, BookSynced):
                if ev.resync:
                    self.counters["resyncs"] += 1
                log.info(
                    "feed: %s book synced at %d%s", ev.symbol, ev.update_id, " (resync)" if ev.resync else ""
                )

    def _request_snapshot(self, symbol: str) -> None:
        """Fetch a snapshot unless one is in flight or waiting in the queue (until _on_snapshot)."""
        if symbol in self._fetching or self._stopping:
            return
        self._fetching[symbol] = asyncio.get_running_loop().create_task(
            self._fetch_snapshot(symbol, self._gen)
        )

    # -- I/O tasks -----------------------------------------------------------------------------------
    def _put_nowait(self, item: tuple) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:  # only control items use this; make room by waiting in a task
            asyncio.get_running_loop().create_task(self._queue.put(item))

    async def _fetch_snapshot(self, symbol: str, gen: int) -> None:
        assert self._rest is not None
        try:
            raw = await self._rest.depth_raw(symbol, self.config.snapshot_limit)
        except IpBanned as e:
            self.last_error = str(e)
            log.error("feed: %s; stopping the feed", e)
            self._put_nowait((_STATUS, gen, FeedStatus(self.venue, self.clock(), "stopped", str(e)), None))
            asyncio.get_running_loop().create_task(self.stop())
            return
        except (TimeoutError, BinanceError, aiohttp.ClientError, OSError) as e:
            self.counters["rest_errors"] += 1
            self.last_error = f"depth snapshot {symbol}: {e}"
            log.warning("feed: depth snapshot for %s failed: %s; retrying", symbol, e)
            await asyncio.sleep(self.config.reconnect_initial_s)
            if gen == self._gen and not self._stopping:
                self._fetching.pop(symbol, None)
                self._request_snapshot(symbol)
            return
        if gen != self._gen or self._stopping:
            return
        ts = self.clock()
        if self.raw_tap is not None:
            self.raw_tap(ts, raw, symbol)
        await self._queue.put((_SNAP, gen, symbol, (ts, raw)))

    async def _read_loop(self) -> None:
        cfg = self.config
        attempt = 0
        assert self._session is not None
        while not self._stopping:
            got_message = [False]
            if self.counters["reconnects"]:
                self._put_nowait(
                    (_STATUS, self._gen, FeedStatus(self.venue, self.clock(), "reconnecting", self.url), None)
                )
            try:
                async with contextlib.AsyncExitStack() as stack:
                    self._socks = [
                        await stack.enter_async_context(
                            self._session.ws_connect(u, heartbeat=None, max_msg_size=0, autoping=True)
                        )
                        for u in self.urls
                    ]
                    await self._queue.put(
                        (_STATUS, self._gen, FeedStatus(self.venue, self.clock(), "connected"), None)
                    )
                    pumps = [asyncio.create_task(self._pump(ws, got_message)) for ws in self._socks]
                    try:
                        done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for t in pumps:
                            t.cancel()
                        await asyncio.gather(*pumps, return_exceptions=True)
                    for t in done:  # a socket error ends the connection like a close
                        if not t.cancelled() and t.exception() is not None:
                            raise t.exception()  # type: ignore[misc]
            except asyncio.CancelledError:
                raise
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                self.last_error = f"connect {self.endpoints.ws_base_url}: {e}"
                log.warning("feed: WebSocket error: %s", e)
            finally:
                self._socks = []
            if self._stopping:
                return
            # a lost connection: every book is invalid; the next connection resyncs all
            self._gen += 1
            ts = self.clock()
            await self._queue.put(
                (_STATUS, self._gen, FeedStatus(self.venue, ts, "disconnected", self.last_error), None)
            )
            await self._queue.put((_DISCONNECT, self._gen, ts, None))
            attempt = 0 if got_message[0] else attempt + 1
            delay = min(cfg.reconnect_max_s, cfg.reconnect_initial_s * 2**attempt)
            delay *= 0.5 + 0.5 * self._rng.random()
            self.counters["reconnects"] += 1
            log.info("feed: reconnecting in %.2f s", delay)
            await asyncio.sleep(delay)

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse, got_message: list[bool]) -> None:
        """Queue one socket's frames until it closes or goes stale (then return)."""
        cfg = self.config
        while True:
            try:
                msg = await ws.receive(timeout=cfg.watchdog_s)
            except TimeoutError:
                self.counters["stale"] += 1
                log.warning("feed: no message for %.1f s: stream is stale, reconnecting", cfg.watchdog_s)
                status = FeedStatus(self.venue, self.clock(), "stale", f"no message for {cfg.watchdog_s} s")
                await self._queue.put((_STATUS, self._gen, status, None))
                return
            if msg.type == aiohttp.WSMsgType.TEXT:
                ts = self.clock()
                got_message[0] = True
                if self.raw_tap is not None:
                    self.raw_tap(ts, msg.data.encode(), None)
                await self._queue.put((_WS, self._gen, ts, msg.data))
            elif msg.type == aiohttp.WSMsgType.BINARY:
                ts = self.clock()
                got_message[0] = True
                if self.raw_tap is not None:
                    self.raw_tap(ts, msg.data, None)
                await self._queue.put((_WS, self._gen, ts, msg.data.decode()))
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return

    async def _shutdown(self) -> None:
        self._stopping = True
        tasks = [t for t in (self._reader, *self._fetching.values()) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for ws in list(self._socks):
            await ws.close()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
