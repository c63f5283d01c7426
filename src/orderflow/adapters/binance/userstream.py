"""The user data stream: subscription, keep-alive, watchdog, reconnect, REST recovery and polling.

Two flows, as Binance serves them:

- USD-M futures: ``POST /fapi/v1/listenKey``, connect ``{ws_base}/private/ws?listenKey=...&events=...``
  (Binance's layout since 2026-04-23; ``{ws_base}/ws/{listenKey}`` in the legacy one, which the local
  exchange still serves), ``PUT`` the key every
  ``listen_key_keepalive_s`` (the key expires after 60 min without one; every 30 min is advised);
  ``listenKeyExpired`` or a -1125 on keep-alive makes a new key.
- Spot: Binance retired spot listen keys (``/api/v3/userDataStream``) on 2026-02-20. The stream is a
  subscription on the WebSocket API (``wss://ws-api.binance.com:443/ws-api/v3``): the request
  ``userDataStream.subscribe.signature`` carries ``apiKey``, ``timestamp``, ``recvWindow`` and a
  signature over those parameters sorted by name; the answer gives a ``subscriptionId`` and events then
  arrive as ``{"subscriptionId": n, "event": {...}}``. ``eventStreamTerminated`` or ``serverShutdown``
  make a new connection and subscription. A subscription refused at :meth:`start` (bad key, signature
  or clock) raises there, as the listen key's ``POST`` does.

Messages are decoded into :class:`OrderUpdate` / :class:`AccountUpdate` and put on a queue (:meth:`get`,
``async for``).

Failure handling: a socket that closes or errors, misses a pong (``ws_heartbeat_s``) or is silent for
``ws_idle_timeout_s`` is dropped and reconnected with exponential back-off; while it is down, the
tracked open orders are polled by REST every ``poll_interval_s``; after every (re)connect they are
reconciled by REST (open orders, then each tracked order no longer open by client id), so a fill made
while the stream was down arrives as an update with ``execution=RECOVERED``. The tracker drops the
stream's copies of states already recovered, so no fill is counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from orderflow.adapters.binance.common.errors import (
    BinanceError,
    ListenKeyError,
    UnknownOrder,
    error_from_response,
)
from orderflow.adapters.binance.common.signing import redact
from orderflow.adapters.binance.trading.client import BinanceTradingClient
from orderflow.adapters.binance.trading.decode import DecodeError, decode_user_event
from orderflow.adapters.binance.trading.events import AccountUpdate, OrderUpdate, StreamStatus

log = logging.getLogger(__name__)
Event = OrderUpdate | AccountUpdate | StreamStatus
# events after which the stream must be opened again (a new listen key, or a new subscription)
_RECONNECT_EVENTS = ("listenKeyExpired", "eventStreamTerminated", "serverShutdown")
SUBSCRIBE = "userDataStream.subscribe.signature"


class UserDataStream:
    """Order and account events of ``client``'s account. ``start()`` then ``get()`` / ``async for``."""

    def __init__(self, client: BinanceTradingClient, clock: Callable[[], int] | None = None) -> None:
        """``clock`` stamps the receive time of events (ns); default the client's local clock."""
        self.client = client
        self.clock = clock or client.server_clock.local_ns
        self.config = client.config
        self.endpoints = client.config.endpoints()
        self.ws_api = client.caps.user_stream == "ws-api"  # spot: a signed subscription on the WebSocket API
        self.url = client.config.user_stream_url()
        self.subscription_id: int | None = None
        self._n_requests = 0
        self._first: asyncio.Future[BaseException | None] | None = None
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.listen_key = ""
        self.connected = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self.stats = {
            "connects": 0,
            "drops": 0,
            "idle_timeouts": 0,
            "recovered": 0,
            "polls": 0,
            "decode_errors": 0,
            "messages": 0,
        }

    async def start(self) -> None:
        """Open the stream. Raises the exchange's error if it refuses the listen key or the
        subscription; a network failure instead leaves the stream reconnecting (REST polling meanwhile)."""
        self._session = aiohttp.ClientSession()
        if not self.ws_api:
            self.listen_key = await self.client.create_listen_key()
            self._tasks = [
                asyncio.create_task(self._run(), name="user-stream"),
                asyncio.create_task(self._keepalive(), name="user-stream-keepalive"),
            ]
            return
        self._first = asyncio.get_running_loop().create_future()
        self._tasks = [asyncio.create_task(self._run(), name="user-stream")]
        refused = await self._first
        if refused is not None:
            await self.stop()
            raise refused

    async def stop(self) -> None:
        """Stop reading: close the socket first (the reader sees CLOSED), then cancel the tasks and wait
        for them with a bound. Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that races
        a completed receive, so the reader also checks ``_stopping`` and is never awaited unbounded."""
        self._stopping = True
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=5)
            for t in pending:
                log.warning("user stream: task %s did not stop in 5 s", t.get_name())
                t.cancel()
        self._tasks = []
        self._ws = None
        if self.listen_key and not self.ws_api:
            with contextlib.suppress(BinanceError, aiohttp.ClientError, TimeoutError):
                await self.client.close_listen_key(self.listen_key)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> UserDataStream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def get(self, timeout: float | None = None) -> Event:
        """The next event (``TimeoutError`` after ``timeout`` seconds)."""
        return await asyncio.wait_for(self.queue.get(), timeout)

    def __aiter__(self) -> UserDataStream:
        return self

    async def __anext__(self) -> Event:
        return await self.queue.get()

    async def drop_connection(self) -> None:
        """Close the socket as a network failure would (tests, operators)."""
        if self._ws is not None:
            await self._ws.close()

    # -- internals ---------------------------------------------------------------------------------------
    def _status(self, state: str, detail: str) -> None:
        self.queue.put_nowait(
            StreamStatus(self.client.venue, self.client.server_clock.local_ns(), state, detail)
        )

    async def _run(self) -> None:
        delay = self.config.reconnect_initial_s
        poller: asyncio.Task | None = None
        while not self._stopping:
            reason = "closed"
            try:
                assert self._session is not None
                url = self.url if self.ws_api else self.endpoints.user_stream_url(self.listen_key)
                async with self._session.ws_connect(url, heartbeat=self.config.ws_heartbeat_s) as ws:
                    self._ws = ws
                    if self.ws_api:
                        await self._subscribe(ws)
                    self._first_outcome(None)
                    self.stats["connects"] += 1
                    if poller is not None:
                        poller.cancel()
                        poller = None
                    self.connected.set()
                    self._status("connected", "user data stream connected")
                    await self.recover()
                    delay = self.config.reconnect_initial_s
                    reason = await self._read(ws)
            except asyncio.CancelledError:
                if poller is not None:
                    poller.cancel()
                raise
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                reason = redact(f"{type(e).__name__}: {e}", self.listen_key)
                self._first_outcome(None)
            except BinanceError as e:
                reason = (
                    f"{'subscription refused' if self.subscription_id is None else 'recovery failed'}: {e}"
                )
                self._first_outcome(e)
                if self._first is not None and self._first.result() is e:
                    return  # refused at start: start() raises it
            self._ws = None
            self.connected.clear()
            if self._stopping:
                return
            self.stats["drops"] += 1
            log.warning(
                "user data stream down (%s); reconnecting in %.1f s, polling REST meanwhile", reason, delay
            )
            self._status("disconnected", reason)
            if poller is None:
                poller = asyncio.create_task(self._poll(), name="user-stream-poll")
            await asyncio.sleep(delay)
            delay = min(self.config.reconnect_max_s, delay * 2)
            if reason == "listenKeyExpired":
                with contextlib.suppress(BinanceError):
                    self.listen_key = await self.client.create_listen_key()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        while not self._stopping:
            try:
                msg = await asyncio.wait_for(ws.receive(), self.config.ws_idle_timeout_s)
            except TimeoutError:
                self.stats["idle_timeouts"] += 1
                return f"no message for {self.config.ws_idle_timeout_s:.1f} s (watchdog)"
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSE):
                return "closed by peer"
            if msg.type == aiohttp.WSMsgType.ERROR:
                return f"socket error: {ws.exception()!r}"
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                continue
            what = self._handle(msg.data)
            if what in _RECONNECT_EVENTS:
                return what
        return "stopping"

    def _first_outcome(self, error: BaseException | None) -> None:
        """Tell a waiting :meth:`start` how the first connection ended (``None``: not refused)."""
        if self._first is not None and not self._first.done():
            self._first.set_result(error)

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Spot: subscribe this connection to the account's events (``userDataStream.subscribe.signature``)
        and wait for the answer; a refusal raises the typed error of its code."""
        self.subscription_id = None
        creds = self.client.credentials
        params: dict[str, Any] = {
            "apiKey": creds.api_key,
            "timestamp": self.client.server_clock.now_ms(),
            "recvWindow": self.config.recv_window_ms,
        }
        params["signature"] = creds.ws_api_signature(params)
        self._n_requests += 1
        rid = f"{self.config.client_id_prefix or 'of'}-sub-{self._n_requests}"
        await self.client.limiter.acquire(2)
        await ws.send_str(json.dumps({"id": rid, "method": SUBSCRIBE, "params": params}))
        deadline = asyncio.get_running_loop().time() + self.config.request_timeout_s
        while True:
            left = deadline - asyncio.get_running_loop().time()
            msg = await asyncio.wait_for(ws.receive(), max(left, 0.001))
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise aiohttp.ClientConnectionError(
                    f"socket {msg.type.name} before the subscription's answer"
                )
            try:
                body = json.loads(msg.data)
            except ValueError:
                continue
            if not isinstance(body, dict) or body.get("id") != rid:
                continue
            status = int(body.get("status", 0))
            if status == 200:
                self.subscription_id = int(body["result"]["subscriptionId"])
                log.info("user data stream subscribed on the WebSocket API (subscription %d)",
                         self.subscription_id)  # fmt: skip
                return
            err = body.get("error") or {}
            raise error_from_response(
                status, int(err.get("code", 0)), str(err.get("msg", body)), path=SUBSCRIBE
            )

    def _handle(self, data: Any) -> str | None:
        self.stats["messages"] += 1
        ts_recv = self.clock()
        try:
            ev = decode_user_event(data, self.client.venue, ts_recv, self.client.futures)
        except DecodeError as e:
            self.stats["decode_errors"] += 1
            log.warning("user stream: undecodable message skipped: %s", e)
            return None
        if isinstance(ev, OrderUpdate):
            if self.client.tracker.on_stream(ev):
                self.queue.put_nowait(ev)
        elif isinstance(ev, AccountUpdate):
            self.queue.put_nowait(ev)
        elif isinstance(ev, str) and ev in _RECONNECT_EVENTS:
            return ev
        return None

    async def recover(self) -> int:
        """Reconcile tracked orders by REST; emit what changed; return the number of updates."""
        tracker = self.client.tracker
        live = tracker.live()
        n = 0
        now = self.clock
        for sym in sorted({o.symbol for o in live}):
            open_now = {o.client_order_id: o for o in await self.client.open_orders(sym)}
            for o in open_now.values():
                u = tracker.on_recovered(o, now())
                if u is not None:
                    self.queue.put_nowait(u)
                    n += 1
            for o in [x for x in live if x.symbol == sym and x.client_order_id not in open_now]:
                try:
                    q = await self.client.get_order(sym, client_order_id=o.client_order_id)
                except UnknownOrder:
                    continue
                u = tracker.on_recovered(q, now())
                if u is not None:
                    self.queue.put_nowait(u)
                    n += 1
        if n:
            self.stats["recovered"] += n
            log.info("user stream: %d order updates recovered by REST", n)
            self._status("recovered", f"{n} order updates recovered by REST")
        return n

    async def _poll(self) -> None:
        self._status("polling", f"REST polling every {self.config.poll_interval_s:.1f} s")
        while True:
            await asyncio.sleep(self.config.poll_interval_s)
            self.stats["polls"] += 1
            try:
                await self.recover()
            except BinanceError as e:
                log.warning("user stream polling failed: %s", e)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.config.listen_key_keepalive_s)
            try:
                await self.client.keepalive_listen_key(self.listen_key)
            except ListenKeyError:
                log.warning("listen key expired; creating a new one and reconnecting")
                self.listen_key = await self.client.create_listen_key()
                await self.drop_connection()
            except BinanceError as e:
                log.warning("listen key keep-alive failed: %s", e)

    def __repr__(self) -> str:
        return f"UserDataStream({self.client.venue}, connected={self.connected.is_set()})"
