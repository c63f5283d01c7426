"""A loopback Binance: serves recorded raw Binance traffic in Binance's own wire format.

Sources (see :mod:`orderflow.adapters.binance.replay.source`):

- hftbacktest raw files, ``<local_ts> <raw json>`` per line (combined-stream messages and one REST
  depth snapshot body ``{"lastUpdateId",...}`` near the start); consecutive files continue one chain;
- cryptofeed recordings (``BINANCE*.jsonl.gz``): ``{"t":"http"|"recv", "ts": <s>, "data": "<raw>"}``.

Endpoints: WS ``/stream?streams=a/b/c`` (combined) and ``/ws/<stream>`` (raw); REST ``depth``, ``time``,
``exchangeInfo`` and ``klines`` under both ``/api/v3`` and ``/fapi/v1``. An unknown symbol gets HTTP 400
``{"code":-1121,"msg":"Invalid symbol."}``. With ``context_store`` (USD-M): the context endpoints
(``fundingRate``, ``premiumIndex``, ``/futures/data/*``) and the ``markPrice@1s`` / ``forceOrder`` streams
of :mod:`orderflow.execution.local.context`, from that store's context kinds, on the replay's clock.

Market data only: every order, account or user-data-stream request (a path such as ``/fapi/v1/order``,
``/api/v3/order``, ``listenKey``/``userDataStream``, ``account``, ``positionRisk``, or any request that
carries a ``signature`` or an ``X-MBX-APIKEY`` header) is refused with HTTP 401 and code -2015, logged
as a warning and kept in :attr:`ReplayServer.refused` (``"METHOD /path"``), so a test can assert that a
client sent none.

Order (``order``): ``"local"`` (the default) serves the messages in recorded receive order, as they
arrived; ``"exchange"`` serves them in exchange-time order, the backtester's order (trades and depth
diffs by their event time, a trade before a diff of the same time, ties in recorded order; other
messages by their receive time; a recorded REST snapshot by its own exchange time), so that a client
reading the replay sees the events in the order ``orderflow backtest`` replays the same recording. In
that order the pump also waits (up to 10 s) at a recorded snapshot until a client subscribed to that
symbol's depth has been answered with it, so that the client syncs its book where the recording (and
the importer) does, however fast the replay runs.

One replay position per server: a pump walks the merged recording while at least one client is
connected (it pauses with none) and sends each message to the clients subscribed to its stream, so a
reconnecting client continues where the stream is. ``speed`` 1.0 follows the recorded local
timestamps, 0 sends as fast as the clients read. The server keeps its own book per symbol
(:class:`DepthSync` over every diff, including dropped ones) and answers a depth request with the
recorded snapshot while the replay has not passed it, else with its current book
(``lastUpdateId`` = ``u`` of the last diff sent), like a live exchange.

Faults (deterministic for a given file set and options): ``drop_diff={"BTCUSDT": k}`` skips the k-th
depth diff of that symbol (a gap); ``close_after=n`` closes every socket after n messages (once);
``silent_after=n`` stops sending after n messages while keeping sockets open, for ``silent_s`` seconds
or until the sockets open at that moment have all closed (once); ``reject_depth=m`` answers the
first m depth requests with HTTP 429 and ``Retry-After: retry_after_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from orderflow.adapters.binance.common.venues import caps
from orderflow.adapters.binance.decode import DecodeError, decode_snapshot
from orderflow.adapters.binance.replay.source import Recording, load_recording
from orderflow.adapters.binance.sync import DepthSync
from orderflow.core.timeutil import NS_PER_MS

log = logging.getLogger(__name__)

# order, account and user-data-stream endpoints (none is served: market data only)
_TRADING_PATH = re.compile(
    r"/(order|batchOrders|openOrders?|allOpenOrders|allOrders|listenKey|userDataStream|account|balance|"
    r"positionRisk|positionSide|leverage|marginType|income|userTrades|myTrades|commissionRate)(/|$)"
)


def _fmt(x: float) -> str:
    return np.format_float_positional(x, trim="-")


class _Client:
    __slots__ = ("combined", "streams", "ws")

    def __init__(self, ws: web.WebSocketResponse, streams: set[str], combined: bool) -> None:
        self.ws, self.streams, self.combined = ws, streams, combined


class ReplayServer:
    """Serve a recording on ``host:port`` (port 0 = ephemeral). Use ``async with`` in tests or
    :func:`serve` from the command line. After start, :attr:`port` and :meth:`endpoints` are set."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 0.0,
        market: str | None = None,
        max_messages: int | None = None,
        drop_diff: dict[str, int] | None = None,
        close_after: int | None = None,
        silent_after: int | None = None,
        silent_s: float = 30.0,
        reject_depth: int = 0,
        retry_after_s: int = 1,
        kline_file: str | Path | None = None,
        kline_symbol: str | None = None,
        context_store: str | Path | None = None,
        order: str = "local",
    ) -> None:
        if order not in ("local", "exchange"):
            raise ValueError(f"order {order!r}: use local (receive order) or exchange (exchange-time order)")
        self.rec: Recording = load_recording(
            paths, market=market, max_messages=max_messages, kline_file=kline_file, kline_symbol=kline_symbol
        )
        self.order = order
        if order == "exchange":
            self.rec.msgs = _exchange_order(self.rec)
        self.market = self.rec.market
        self.caps = caps(self.market)
        self.host, self.port, self.speed = host, port, speed
        self.drop_diff = {k.upper(): v for k, v in (drop_diff or {}).items()}
        self.close_after, self.silent_after, self.silent_s = close_after, silent_after, silent_s
        self.reject_depth, self.retry_after_s = reject_depth, retry_after_s
        self.pos = 0
        self.sent = 0  # messages walked past (sent or dropped)
        self.finished = asyncio.Event()
        self.stats: dict[str, int] = {
            "ws_connections": 0,
            "depth_requests": 0,
            "rejected_depth": 0,
            "dropped_diffs": 0,
            "closes": 0,
            "silences": 0,
            "built_snapshots": 0,
            "recorded_snapshots": 0,
            "refused": 0,
            "ws_messages": 0,  # stream messages sent, summed over the clients
        }
        self.refused: list[str] = []  # order/account/signed requests, "METHOD /path" (all refused)
        pu = self.caps.depth_continuity == "pu"  # futures diffs chain on pu, spot on U/u
        self.syncs = {s: DepthSync(self.rec.venue, s, pu) for s in self.rec.symbols}
        self._diff_count = dict.fromkeys(self.rec.symbols, 0)
        self._snap_passed = dict.fromkeys(self.rec.symbols, 0)
        self._snap_answered = dict.fromkeys(self.rec.symbols, 0)  # recorded snapshots served, by position
        self._clients: set[_Client] = set()
        self._wake = asyncio.Event()
        self._pump: asyncio.Task | None = None
        self._runner: web.AppRunner | None = None
        self._closed_once = self._silenced_once = False
        self._weight_minute, self._weight = -1, 0
        self.context = None
        if context_store is not None and self.caps.futures:
            from orderflow.adapters.binance.replay.context import ContextService, load_context

            frames = {s: load_context(context_store, self.rec.venue, s) for s in self.rec.symbols}
            self.context = ContextService(frames, lambda: self._now_ms() * NS_PER_MS)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> ReplayServer:
        app = web.Application(middlewares=[self._refuse_trading])
        app.router.add_get("/stream", self._ws_combined)
        app.router.add_get("/ws/{stream}", self._ws_raw)
        for prefix in ("/api/v3", "/fapi/v1"):
            app.router.add_get(f"{prefix}/depth", self._depth)
            app.router.add_get(f"{prefix}/time", self._time)
            app.router.add_get(f"{prefix}/exchangeInfo", self._exchange_info)
            app.router.add_get(f"{prefix}/klines", self._klines)
        for path, fn, weight in self.context.routes() if self.context else ():
            app.router.add_get(path, self._context_handler(fn, weight))
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info(
            "replay server on %s:%d: %s, %d messages, symbols %s",
            self.host,
            self.port,
            self.rec.venue,
            len(self.rec.msgs),
            ",".join(self.rec.symbols),
        )
        return self

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        for c in list(self._clients):
            await c.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> ReplayServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def endpoints(self, market: str | None = None):
        from orderflow.adapters.binance.common.endpoints import loopback_endpoints

        mk = market or self.caps.market
        return loopback_endpoints(mk, self.host, self.port)  # type: ignore[arg-type]

    # -- websocket --------------------------------------------------------------------------------
    async def _ws_combined(self, request: web.Request) -> web.WebSocketResponse:
        streams = {s for s in request.query.get("streams", "").split("/") if s}
        return await self._serve_ws(request, streams, combined=True)

    async def _ws_raw(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve_ws(request, {request.match_info["stream"]}, combined=False)

    async def _serve_ws(
        self, request: web.Request, streams: set[str], combined: bool
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        unknown = {s for s in streams - self.rec.streams if "@markPrice" not in s and "@forceOrder" not in s}
        if unknown:
            log.warning(
                "replay server: streams not in the recording (nothing will be sent): %s",
                ",".join(sorted(unknown)),
            )
        client = _Client(ws, streams, combined)
        self._clients.add(client)
        self.stats["ws_connections"] += 1
        self._wake.set()
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run_pump())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._clients.discard(client)
        return ws

    async def _run_pump(self) -> None:
        msgs = self.rec.msgs
        n = len(msgs)
        t0_rec = msgs[0][0] if msgs else 0
        t0_wall = time.monotonic()
        paused_at: float | None = None
        while self.pos < n:
            if not self._clients:
                paused_at = time.monotonic()
                self._wake.clear()
                await self._wake.wait()
            if paused_at is not None:
                t0_wall += time.monotonic() - paused_at
                paused_at = None
            ts, symbol, stream, text = msgs[self.pos]
            if self.speed > 0:
                due = t0_wall + (ts - t0_rec) / 1e9 / self.speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if self.context is not None:
                for name, payload in self.context.due_messages(ts):
                    await self._broadcast_context(name, payload)
            self.pos += 1
            self.sent += 1
            if stream is None:  # a recorded REST snapshot: the exchange state at that moment
                if self.order == "exchange":
                    await self._await_snapshot_request(symbol)
                self._snap_passed[symbol] += 1
                snap = decode_snapshot(text)
                ts_ev = (snap.T or snap.E) * NS_PER_MS or ts
                self.syncs[symbol].on_snapshot(snap.lastUpdateId, snap.bids, snap.asks, ts_ev, ts)
            else:
                if self.rec.kinds[stream] != "depth" or self._on_diff(symbol, text, ts):
                    await self._broadcast(stream, text)
            await self._faults()
            if self.speed <= 0 and self.sent % 16 == 0:
                await asyncio.sleep(0)
        self.finished.set()
        log.info("replay server: end of recording after %d messages", self.sent)

    async def _await_snapshot_request(self, symbol: str, timeout_s: float = 10.0) -> None:
        """Hold the pump before the recorded snapshot of ``symbol`` until a depth request has been
        answered with it (only while a client is subscribed to that symbol's depth; at most
        ``timeout_s``)."""
        prefix = f"{symbol.lower()}@depth"
        end = time.monotonic() + timeout_s
        while self._snap_answered[symbol] <= self._snap_passed[symbol] and time.monotonic() < end:
            if not any(s.startswith(prefix) for c in self._clients for s in c.streams):
                return
            await asyncio.sleep(0.005)
        if self._snap_answered[symbol] <= self._snap_passed[symbol]:
            log.warning("replay server: no depth request for %s within %.0f s; passing its snapshot", symbol,
                        timeout_s)  # fmt: skip

    def _on_diff(self, symbol: str, text: str, ts: int) -> bool:
        """Apply a diff to the server's book; False when the drop fault swallows it."""
        self._diff_count[symbol] += 1
        try:
            d = self.rec.decoder.decode(text, ts)
        except DecodeError as e:  # pragma: no cover - recording damage
            log.warning("replay server: undecodable diff for %s: %s", symbol, e)
            return True
        self.syncs[symbol].on_diff(d)
        if self.drop_diff.get(symbol) == self._diff_count[symbol]:
            self.stats["dropped_diffs"] += 1
            log.info(
                "replay server: dropped depth diff #%d of %s (u=%d)",
                self._diff_count[symbol],
                symbol,
                d.last_update_id,
            )
            return False
        return True

    async def _broadcast(self, stream: str, text: str) -> None:
        data: str | None = None
        for c in list(self._clients):
            if stream not in c.streams or c.ws.closed:
                continue
            try:
                if c.combined:
                    await c.ws.send_str(text)
                else:
                    if data is None:
                        data = text[text.index('"data":') + 7 : text.rindex("}")]
                    await c.ws.send_str(data)
                self.stats["ws_messages"] += 1
            except (ConnectionError, RuntimeError):
                self._clients.discard(c)

    async def _broadcast_context(self, name: str, payload: dict[str, Any]) -> None:
        """A context stream message to the clients subscribed to ``name`` (``@1s`` or not)."""
        for c in list(self._clients):
            subs = [s for s in c.streams if s == name or s.startswith(name + "@")]
            if not subs or c.ws.closed:
                continue
            data = json.dumps(payload, separators=(",", ":"))
            text = f'{{"stream":"{subs[0]}","data":{data}}}' if c.combined else data
            try:
                await c.ws.send_str(text)
                self.stats["ws_messages"] += 1
            except (ConnectionError, RuntimeError):
                self._clients.discard(c)

    def _context_handler(self, fn: Any, weight: Any) -> Any:
        from orderflow.adapters.binance.replay.context import Params, WireError

        async def handler(request: web.Request) -> web.Response:
            p = Params(dict(request.query))
            w = weight(p) if callable(weight) else weight
            try:
                return self._json(fn(p), weight=w)
            except WireError as e:
                return self._json(e.body(), status=e.status, weight=w)

        return handler

    async def _faults(self) -> None:
        if self.close_after is not None and not self._closed_once and self.sent >= self.close_after:
            self._closed_once = True
            self.stats["closes"] += 1
            log.info("replay server: closing %d sockets after %d messages", len(self._clients), self.sent)
            for c in list(self._clients):
                self._clients.discard(c)
                await c.ws.close()
        if self.silent_after is not None and not self._silenced_once and self.sent >= self.silent_after:
            self._silenced_once = True
            self.stats["silences"] += 1
            held = set(self._clients)
            log.info("replay server: silent after %d messages (up to %.1f s)", self.sent, self.silent_s)
            end = time.monotonic() + self.silent_s
            while time.monotonic() < end and any(not c.ws.closed and c in self._clients for c in held):
                await asyncio.sleep(0.02)

    # -- REST ---------------------------------------------------------------------------------------
    @web.middleware
    async def _refuse_trading(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Refuse (HTTP 401, code -2015), log and count every order, account, user-data-stream or
        signed request: this server serves market data only."""
        signed = "signature" in request.query or "X-MBX-APIKEY" in request.headers
        if not (signed or _TRADING_PATH.search(request.path)):
            return await handler(request)
        what = f"{request.method} {request.path}"
        self.refused.append(what)
        self.stats["refused"] += 1
        log.warning("replay server: refused %s (market data only: no orders, accounts or listen keys)", what)
        msg = "replay server: market data only; order and account requests are refused"
        return self._json({"code": -2015, "msg": msg}, status=401)

    def _json(
        self, obj: Any, status: int = 200, weight: int = 1, headers: dict | None = None
    ) -> web.Response:
        minute = int(time.time() // 60)
        if minute != self._weight_minute:
            self._weight_minute, self._weight = minute, 0
        self._weight += weight
        h = {"X-MBX-USED-WEIGHT-1M": str(self._weight), **(headers or {})}
        body = obj if isinstance(obj, str | bytes) else json.dumps(obj, separators=(",", ":"))
        return web.Response(body=body, status=status, content_type="application/json", headers=h)

    def _bad_symbol(self) -> web.Response:
        return self._json({"code": -1121, "msg": "Invalid symbol."}, status=400)

    def _now_ms(self) -> int:
        msgs = self.rec.msgs
        if not msgs:
            return int(time.time() * 1000)
        return msgs[min(max(self.pos - 1, 0), len(msgs) - 1)][0] // NS_PER_MS

    async def _time(self, request: web.Request) -> web.Response:
        return self._json({"serverTime": self._now_ms()})

    async def _depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "").upper()
        if symbol not in self.syncs:
            return self._bad_symbol()
        try:
            limit = int(request.query.get("limit", str(self.caps.depth_default_limit)))
        except ValueError:
            return self._json({"code": -1100, "msg": "Illegal characters found in parameter 'limit'."}, 400)
        self.stats["depth_requests"] += 1
        weight = self.caps.depth_weight(limit)
        if self.stats["depth_requests"] <= self.reject_depth:
            self.stats["rejected_depth"] += 1
            return self._json(
                {"code": -1003, "msg": "Too many requests; replay server fault injection."},
                status=429,
                weight=weight,
                headers={"Retry-After": str(self.retry_after_s)},
            )
        recorded = self.rec.snapshots.get(symbol, [])
        passed = self._snap_passed[symbol]
        if passed < len(recorded):
            self.stats["recorded_snapshots"] += 1
            self._snap_answered[symbol] = passed + 1
            body = recorded[passed]
            return self._json(self._truncate(body, limit), weight=weight)
        sync = self.syncs[symbol]
        if sync.needs_snapshot:
            return self._json(
                {"code": -1000, "msg": f"replay server has no book for {symbol} yet"}, status=503
            )
        self.stats["built_snapshots"] += 1
        bids, asks = sync.book.top(limit)
        out: dict[str, Any] = {"lastUpdateId": sync.book.update_id}
        if self.caps.futures:
            out["E"] = out["T"] = self._now_ms()
        out["bids"] = [[_fmt(p), _fmt(q)] for p, q in bids]
        out["asks"] = [[_fmt(p), _fmt(q)] for p, q in asks]
        return self._json(out, weight=weight)

    @staticmethod
    def _truncate(body: str, limit: int) -> str:
        obj = json.loads(body)
        if len(obj.get("bids", ())) <= limit and len(obj.get("asks", ())) <= limit:
            return body
        obj["bids"], obj["asks"] = obj["bids"][:limit], obj["asks"][:limit]
        return json.dumps(obj, separators=(",", ":"))

    async def _exchange_info(self, request: web.Request) -> web.Response:
        wanted = None
        if "symbols" in request.query:
            try:
                wanted = [s.upper() for s in json.loads(request.query["symbols"])]
            except ValueError:
                return self._json(
                    {"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."}, 400
                )
        elif "symbol" in request.query:
            wanted = [request.query["symbol"].upper()]
        if wanted and any(s not in self.syncs for s in wanted):
            return self._bad_symbol()
        info = self.rec.exchange_info()
        if wanted:
            info = {**info, "symbols": [s for s in info["symbols"] if s["symbol"] in wanted]}
        return self._json(info, weight=self.caps.exchange_info_weight)

    async def _klines(self, request: web.Request) -> web.Response:
        q = request.query
        symbol = q.get("symbol", "").upper()
        if symbol not in self.rec.symbols and symbol != self.rec.kline_symbol:
            return self._bad_symbol()
        interval = q.get("interval", "")
        max_limit = self.caps.klines_max_limit
        try:
            limit = int(q.get("limit", "500"))
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return self._json({"code": -1100, "msg": "Illegal characters found in a parameter."}, 400)
        if not 1 <= limit <= max_limit:
            return self._json(
                {"code": -1130, "msg": f"Invalid data sent for a parameter: limit={limit}."}, 400
            )
        try:
            rows = self.rec.klines(symbol, interval)
        except ValueError:
            return self._json({"code": -1120, "msg": "Invalid interval."}, 400)
        opens = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        lo = int(np.searchsorted(opens, start, "left")) if start is not None else 0
        hi = int(np.searchsorted(opens, end, "right")) if end is not None else len(rows)
        # with a start, the first `limit` klines from it; without, the latest `limit` up to the end
        sel = rows[lo:hi][:limit] if start is not None else rows[lo:hi][-limit:]
        return self._json(sel, weight=self.caps.klines_weight(limit))


def _exchange_order(rec: Recording) -> list:
    """``rec.msgs`` in exchange-time order (module docstring): trades and depth diffs keyed by their
    event time (ns), a trade before a diff of the same time; everything else by its receive time."""
    keys = []
    for i, (ts, _sym, stream, text) in enumerate(rec.msgs):
        kind = rec.kinds.get(stream, "other") if stream is not None else "snapshot"
        t, rank = ts, 1
        if kind == "snapshot":
            with contextlib.suppress(DecodeError):
                snap = decode_snapshot(text)
                t = (snap.T or snap.E) * NS_PER_MS or ts
        elif kind in ("trade", "aggtrade", "depth"):
            with contextlib.suppress(DecodeError):  # recording damage: keep its receive time
                t = rec.decoder.decode(text, ts).ts_event
            rank = 1 if kind == "depth" else 0
        keys.append((t, rank, i))
    keys.sort()
    return [rec.msgs[i] for _, _, i in keys]


async def serve_forever(server: ReplayServer) -> None:
    async with server:
        streams = ",".join(sorted(server.rec.streams))
        log.warning(
            "replay server listening on %s:%d (%s: %s; streams %s)",
            server.host,
            server.port,
            server.rec.venue,
            ",".join(server.rec.symbols),
            streams,
        )
        await asyncio.Event().wait()


class EmptyRecording(ValueError):
    """The files hold no message to replay (empty, or not a recording this server reads)."""


def serve(paths: Sequence[str | Path], **kwargs: Any) -> None:
    """Blocking entry point for ``orderflow data replay-server`` (Ctrl-C to stop). Raises
    :class:`EmptyRecording` rather than serving empty streams forever."""
    server = ReplayServer(paths, **kwargs)
    if not server.rec.msgs:
        names = ", ".join(Path(p).name for p in paths)
        raise EmptyRecording(
            f"no recorded events in {names}: empty, or neither a raw Binance (hftbacktest) "
            "nor a cryptofeed recording"
        )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(server))
