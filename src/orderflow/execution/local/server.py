"""``LocalExchange``: an aiohttp server speaking Binance's protocol over a replayed or simulated market.

REST (one market per server, ``cfg.market``): spot under ``/api/v3`` or USD-M futures under ``/fapi/v1``
(account, balance and positionRisk also under ``/fapi/v2`` and ``/fapi/v3``): ping, time, exchangeInfo,
depth, klines, trades, aggTrades, ticker/bookTicker; signed: order (POST / GET / DELETE), openOrders,
allOrders, account (+ futures balance, positionRisk, leverage); USD-M listen keys (``/fapi/v1/listenKey``:
POST / PUT / DELETE, API key only).

WebSocket: ``/ws/<stream>``, ``/ws`` + ``{"method":"SUBSCRIBE","params":[...],"id":1}``,
``/stream?streams=a/b`` (combined ``{"stream","data"}``). The user data stream: USD-M ``/ws/<listenKey>``;
spot, as Binance since it retired spot listen keys (2026-02-20), a subscription on the WebSocket API
``/ws-api/v3``: ``userDataStream.subscribe.signature`` (``apiKey``, ``timestamp``, ``recvWindow``,
``signature``) answers ``{"id", "status": 200, "result": {"subscriptionId"}, "rateLimits"}`` and events
follow as ``{"subscriptionId", "event"}``; also ``userDataStream.unsubscribe``, ``session.subscriptions``,
``ping`` and ``time``. Errors answer ``{"id", "status", "error": {"code", "msg"}}``.

Clocks. Event times (stream ``E``/``T``, order ``time``/``transactTime``) are the source's times shifted
so the replay starts at ``start_ms`` (now by default). ``clock="realtime"`` releases events at their
recorded pace times ``speed``; ``clock="manual"`` applies events only on ``POST /_local/advance`` with
``{"events": n}`` or ``{"until_ns": t}`` (answer ``{"applied", "now_ns", "remaining"}``, sent once the
events are applied and their stream messages written). Request ``timestamp`` / ``recvWindow`` checks and
``/time`` use the wall clock, so a client's clock offset stays ~0 whatever the replay position.
``GET /_local/state`` reports the replay position.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from orderflow.adapters.binance.common.endpoints import stream_route
from orderflow.adapters.binance.common.venues import caps
from orderflow.execution.local import errors as E
from orderflow.execution.local import trading as T
from orderflow.execution.local.auth import Authenticator, redact
from orderflow.execution.local.config import LocalExchangeConfig
from orderflow.execution.local.context import context_service
from orderflow.execution.local.info import exchange_info
from orderflow.execution.local.limits import RateLimiter
from orderflow.execution.local.market import load_source
from orderflow.execution.local.params import Params
from orderflow.execution.local.streams import KLINE_INTERVALS
from orderflow.execution.local.venue import LocalVenue

log = logging.getLogger(__name__)
_SPEEDS = ("@100ms", "@250ms", "@500ms", "@1000ms", "@1s")
PUBLIC, USER_STREAM, SIGNED = 0, 1, 2


def _norm(stream: str) -> str:
    s = stream.strip()
    if "@" in s:
        sym, rest = s.split("@", 1)
        s = f"{sym.lower()}@{rest}"
    for sp in _SPEEDS:
        if s.endswith(sp):
            s = s[: -len(sp)]
    return s


class _Client:
    __slots__ = ("combined", "events", "n_subs", "route", "streams", "sub_id", "user", "ws")

    def __init__(self, ws: web.WebSocketResponse, combined: bool, route: str | None = None) -> None:
        self.ws, self.combined = ws, combined
        self.route = route  # USD-M split layout: "public" / "market" (None: the legacy URL, every stream)
        self.events: set[str] | None = None  # /private: the user data events asked for (None: all)
        self.streams: dict[str, str] = {}  # normalized -> as subscribed
        self.user = False
        self.sub_id: int | None = None  # WebSocket API: the account's user data subscription
        self.n_subs = 0  # subscriptions made on this connection (ids count from 0)


class LocalExchange:
    """The local exchange server. ``async with LocalExchange(cfg) as ex`` (or start/stop); then
    ``ex.rest_url`` / ``ex.ws_url``; :meth:`advance` is the manual clock (also over HTTP)."""

    def __init__(self, cfg: LocalExchangeConfig, wall_clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.futures = caps(cfg.market).futures
        self.wall = wall_clock
        start_ns = cfg.start_ms * 1_000_000 if cfg.start_ms is not None else time.time_ns()
        data = load_source(
            cfg.source,
            cfg.venue,
            seed=cfg.seed,
            symbol=cfg.symbol,
            sim_hours=cfg.sim_hours,
            store_dir=cfg.store,
            levels=cfg.levels,
        )
        self.venue = LocalVenue(cfg, data, start_ns)
        self._warm_up()
        self.context = context_service(cfg, self.venue) if self.futures else None
        self.auth = Authenticator(cfg.api_key, cfg.secret, cfg.ed25519_public_key)
        self.weight_limit = cfg.weight_limit or (2400 if self.futures else 6000)
        self.order_limit = cfg.order_limit or (300 if self.futures else 100)
        self.limiter = RateLimiter(
            self.weight_limit,
            self.order_limit,
            cfg.weight_window_s,
            cfg.order_window_s,
            cfg.ban_after,
            cfg.ban_s,
            wall_clock,
        )
        self.listen_keys: dict[str, float] = {}  # key -> wall expiry
        self._n_keys = 0
        self._clients: set[_Client] = set()
        self.sent = {"market": 0, "user": 0}  # messages sent to clients, by kind
        self.ws_paths: collections.Counter[str] = collections.Counter()  # WebSocket connections by path
        self._send_lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._pump: asyncio.Task | None = None
        self.port = cfg.port

    def __repr__(self) -> str:
        return f"LocalExchange(market={self.cfg.market}, source={self.cfg.source!r}, port={self.port})"

    def _warm_up(self) -> None:
        """Apply events until every symbol has a book (so depth and matching work from the start)."""
        v = self.venue
        while v.remaining_events and any(m.update_id == 0 for m in v.markets.values()):
            v.step()
        v.market_out.clear()
        v.user_out.clear()

    # ------------------------------------------------------------------------------ lifecycle
    @property
    def rest_url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.cfg.host}:{self.port}"

    async def start(self) -> LocalExchange:
        app = web.Application()
        r = app.router
        pre = "/fapi/v1" if self.futures else "/api/v3"
        r.add_get(f"{pre}/ping", self._h(lambda p: {}, 1))
        r.add_get(f"{pre}/time", self._h(lambda p: {"serverTime": int(self.wall() * 1000)}, 1))
        r.add_get(f"{pre}/exchangeInfo", self._h(self._exchange_info, 1 if self.futures else 20))
        r.add_get(f"{pre}/depth", self._h(self._depth, self._depth_weight))
        r.add_get(f"{pre}/klines", self._h(self._klines, self._klines_weight))
        r.add_get(f"{pre}/trades", self._h(self._trades, 5 if self.futures else 25))
        r.add_get(f"{pre}/aggTrades", self._h(self._agg_trades, 20 if self.futures else 4))
        r.add_get(f"{pre}/ticker/bookTicker", self._h(self._book_ticker, 2))
        for path, fn, weight in self.context.routes() if self.context else ():
            r.add_get(path, self._h(fn, weight))
        v = self.venue
        r.add_post(f"{pre}/order", self._h(lambda p: T.new_order(v, p), 1, SIGNED, order=True))
        r.add_get(f"{pre}/order", self._h(lambda p: T.query_order(v, p), 1 if self.futures else 4, SIGNED))
        r.add_delete(f"{pre}/order", self._h(lambda p: T.cancel_order(v, p), 1, SIGNED))
        r.add_get(
            f"{pre}/openOrders", self._h(lambda p: T.open_orders(v, p), 40 if self.futures else 80, SIGNED)
        )
        r.add_get(
            f"{pre}/allOrders", self._h(lambda p: T.all_orders(v, p), 5 if self.futures else 20, SIGNED)
        )
        if self.futures:
            r.add_delete(f"{pre}/allOpenOrders", self._h(lambda p: T.cancel_all(v, p), 1, SIGNED))
            r.add_post(f"{pre}/leverage", self._h(self._leverage, 1, SIGNED))
            lk = f"{pre}/listenKey"
            r.add_post(lk, self._h(self._lk_new, 1, USER_STREAM))
            r.add_put(lk, self._h(self._lk_keep, 1, USER_STREAM))
            r.add_delete(lk, self._h(self._lk_close, 1, USER_STREAM))
            for ver in ("v2", "v3"):
                r.add_get(f"/fapi/{ver}/account", self._h(self._fut_account, 5, SIGNED))
                r.add_get(f"/fapi/{ver}/balance", self._h(self._fut_balance, 5, SIGNED))
                r.add_get(f"/fapi/{ver}/positionRisk", self._h(self._fut_positions, 5, SIGNED))
        else:  # no /api/v3/userDataStream: retired by Binance; the user stream is on the WebSocket API
            r.add_delete(f"{pre}/openOrders", self._h(lambda p: T.cancel_all(v, p), 1, SIGNED))
            r.add_get(f"{pre}/account", self._h(self._spot_account, 20, SIGNED))
            r.add_get("/ws-api/v3", self._ws_api)
        r.add_get("/ws", self._ws_raw)
        r.add_get("/ws/{name}", self._ws_raw)
        r.add_get("/stream", self._ws_combined)
        if self.futures:  # Binance's USD-M layout since 2026-04-23 (the legacy URLs above still served)
            for route in ("public", "market"):
                r.add_get(f"/{route}/ws", self._ws_raw)
                r.add_get(f"/{route}/ws/{{name}}", self._ws_raw)
                r.add_get(f"/{route}/stream", self._ws_combined)
            r.add_get("/private/ws", self._ws_private)
        r.add_post("/_local/advance", self._advance_http)
        r.add_get("/_local/state", self._state_http)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.cfg.clock == "realtime":
            self._pump = asyncio.create_task(self._run_realtime())
        log.info("local exchange %s listening on %s", self.cfg.market, self.rest_url)
        return self

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        for c in list(self._clients):
            await c.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> LocalExchange:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --------------------------------------------------------------------------------- clock
    async def advance(self, events: int | None = None, until_ns: int | None = None) -> dict[str, int]:
        """Manual clock: apply ``events`` events or all events up to ``until_ns``, send their messages."""
        n = self.venue.advance(events=events, until_ns=until_ns)
        await self._publish()
        return {"applied": n, "now_ns": self.venue.now_ns, "remaining": self.venue.remaining_events}

    async def _run_realtime(self) -> None:
        v = self.venue
        wall0 = self.wall()
        t0 = v.now_ns
        while v.remaining_events:
            nxt = v.next_event_ns()
            assert nxt is not None
            due = wall0 + (nxt - t0) / 1e9 / self.cfg.speed
            delay = due - self.wall()
            if delay > 0:
                await asyncio.sleep(min(delay, 0.5))
                continue
            v.step()
            await self._publish()
            await asyncio.sleep(0)  # catching up must not starve the REST and WebSocket handlers

    async def _advance_http(self, request: web.Request) -> web.Response:
        if self.cfg.clock != "manual":
            return self._json({"code": -1020, "msg": "advance needs clock=manual"}, 400)
        try:
            body = json.loads(await request.text() or "{}")
            if not isinstance(body, dict) or not set(body) <= {"events", "until_ns"}:
                raise ValueError
            ev, until = body.get("events"), body.get("until_ns")
            if (
                (ev is None) == (until is None)
                or not isinstance(ev or until, int)
                or (ev is not None and ev < 0)
            ):
                raise ValueError
        except ValueError:
            return self._json(
                {"code": -1102, "msg": 'Body must be JSON {"events": n} or {"until_ns": t}.'}, 400
            )
        return self._json(await self.advance(events=ev, until_ns=until))

    async def _state_http(self, request: web.Request) -> web.Response:
        v = self.venue
        return self._json(
            {
                "now_ns": v.now_ns,
                "position": v.pos,
                "remaining": v.remaining_events,
                "start_ns": v.start_ns,
                "clock": self.cfg.clock,
            }
        )

    # ---------------------------------------------------------------------------------- REST
    @staticmethod
    def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        body = json.dumps(obj, separators=(",", ":"))
        return web.Response(text=body, status=status, content_type="application/json", headers=headers)

    def _h(
        self,
        fn: Callable[[Params], Any],
        weight: int | Callable[[Params], int],
        auth: int = PUBLIC,
        order: bool = False,
    ) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            query = request.query_string
            body = await request.text() if request.method in ("POST", "PUT", "DELETE") else ""
            if request.content_type == "application/json":
                form: list[tuple[str, str]] = []
            else:
                form = parse_qsl(body, keep_blank_values=True)
            values = dict(form)
            values.update(parse_qsl(query, keep_blank_values=True))
            p = Params(values)
            headers: dict[str, str] = {}
            try:
                w = weight(p) if callable(weight) else weight
                headers = self.limiter.admit(w, order)
                if auth != PUBLIC:
                    self.auth.check_key(request.headers.get("X-MBX-APIKEY"))
                if auth == SIGNED:
                    self.auth.check_timestamp(values, int(self.wall() * 1000))
                    self.auth.check_signature(query, body)
                result = fn(p)
            except E.ApiError as e:
                log.info(
                    "%s %s -> %d %d %s",
                    request.method,
                    request.path,
                    e.status,
                    e.code,
                    redact(query, self.cfg.api_key),
                )
                await self._publish()
                return self._json(e.body(), e.status, {**headers, **e.headers})
            await self._publish()
            return self._json(result, 200, headers)

        return handler

    def _symbol_market(self, p: Params):
        sym = p.symbol()
        if sym not in self.venue.markets:
            raise E.bad_symbol()
        return self.venue.markets[sym]

    def _exchange_info(self, p: Params) -> dict[str, Any]:
        insts = [m.inst for m in self.venue.markets.values()]
        wanted = p.get("symbol")
        if p.get("symbols"):
            try:
                wanted_l = [s.upper() for s in json.loads(p.req("symbols"))]
            except (ValueError, AttributeError):
                raise E.illegal_chars(
                    "symbols", '^\\["[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}\\]$'
                ) from None
        else:
            wanted_l = [wanted.upper()] if wanted else []
        if any(s not in self.venue.markets for s in wanted_l):
            raise E.bad_symbol()
        if wanted_l:
            insts = [i for i in insts if i.symbol in wanted_l]
        return exchange_info(
            self.futures,
            insts,
            int(self.wall() * 1000),
            self.weight_limit,
            self.order_limit,
            self.venue.filters,
        )

    def _depth_weight(self, p: Params) -> int:
        try:
            lim = int(p.get("limit") or (500 if self.futures else 100))
        except ValueError:
            lim = 100
        return caps(self.cfg.market).depth_weight(lim)

    def _depth(self, p: Params) -> dict[str, Any]:
        m = self._symbol_market(p)
        limit = p.integer("limit", 500 if self.futures else 100)
        assert limit is not None
        if not 1 <= limit <= 5000:
            raise E.invalid_param("limit", str(limit))
        return m.depth_snapshot(limit)

    def _klines_weight(self, p: Params) -> int:
        try:
            lim = int(p.get("limit") or 500)
        except ValueError:
            lim = 500
        return caps(self.cfg.market).klines_weight(lim)

    def _klines(self, p: Params) -> list[list[Any]]:
        m = self._symbol_market(p)
        interval = p.req("interval")
        if interval not in KLINE_INTERVALS or (self.futures and interval == "1s"):
            raise E.bad_interval()
        limit = p.integer("limit", 500)
        start, end = p.integer("startTime"), p.integer("endTime")
        assert limit is not None
        if not 1 <= limit <= (1500 if self.futures else 1000):
            raise E.invalid_param("limit", str(limit))
        rows = [
            r for r in m.klines(interval) if (start is None or r[0] >= start) and (end is None or r[0] <= end)
        ]
        return rows[:limit] if start is not None else rows[-limit:]

    def _trades(self, p: Params) -> list[dict[str, Any]]:
        m = self._symbol_market(p)
        return m.recent_trades(p.integer("limit", 500) or 500)

    def _agg_trades(self, p: Params) -> list[dict[str, Any]]:
        m = self._symbol_market(p)
        return m.agg_trades(p.integer("limit", 500) or 500)

    def _book_ticker(self, p: Params) -> Any:
        bt = self._symbol_market(p).book_ticker()
        out = {
            "symbol": bt["s"],
            "bidPrice": bt["b"],
            "bidQty": bt["B"],
            "askPrice": bt["a"],
            "askQty": bt["A"],
        }
        if self.futures:
            out["time"] = bt["T"]
        return out

    def _spot_account(self, p: Params) -> dict[str, Any]:
        p.check_known({"omitZeroBalances"})
        return self.venue.spot.account_json(self.venue.sim_cfg.maker_rate, self.venue.sim_cfg.taker_rate)

    def _fut_account(self, p: Params) -> dict[str, Any]:
        return self.venue.fut.account_json(list(self.venue.markets), self.venue.marks())

    def _fut_balance(self, p: Params) -> list[dict[str, Any]]:
        return self.venue.fut.balance_json(self.venue.marks())

    def _fut_positions(self, p: Params) -> list[dict[str, Any]]:
        p.check_known({"symbol"})
        syms = list(self.venue.markets)
        if p.get("symbol"):
            syms = [self._symbol_market(p).symbol]
        return self.venue.fut.positions_json(syms, self.venue.marks())

    def _leverage(self, p: Params) -> dict[str, Any]:
        p.check_known({"symbol", "leverage"})
        m = self._symbol_market(p)
        lev = p.integer("leverage")
        if lev is None:
            raise E.mandatory("leverage")
        if not 1 <= lev <= 125:
            raise E.ApiError(400, -4028, f"Leverage {lev} is not valid")
        self.venue.fut.position(m.symbol).leverage = lev
        return {"leverage": lev, "maxNotionalValue": "1000000", "symbol": m.symbol}

    # ---------------------------------------------------------------------------- listen keys
    def _live_key(self, key: str | None) -> bool:
        return key is not None and self.listen_keys.get(key, 0.0) > self.wall()

    def _lk_new(self, p: Params) -> dict[str, str]:
        for k in list(self.listen_keys):
            if self._live_key(k):
                self.listen_keys[k] = self.wall() + self.cfg.listen_key_ttl_s
                return {"listenKey": k}
        self._n_keys += 1
        key = hashlib.sha256(f"{self.cfg.seed}:{self.cfg.market}:{self._n_keys}".encode()).hexdigest()[:60]
        self.listen_keys[key] = self.wall() + self.cfg.listen_key_ttl_s
        return {"listenKey": key}

    def _lk_key(self, p: Params) -> str:
        key = p.get("listenKey")
        if key is None:  # USD-M: the account's live key
            live = [k for k in self.listen_keys if self._live_key(k)]
            key = live[0] if live else None
        if not self._live_key(key):
            raise E.invalid_listen_key()
        assert key is not None
        return key

    def _lk_keep(self, p: Params) -> dict[str, str]:
        key = self._lk_key(p)
        self.listen_keys[key] = self.wall() + self.cfg.listen_key_ttl_s
        return {"listenKey": key}

    def _lk_close(self, p: Params) -> dict[str, str]:
        key = self._lk_key(p)
        del self.listen_keys[key]
        for c in list(self._clients):
            if c.user and key in c.streams:
                asyncio.get_running_loop().create_task(c.ws.close())
        return {}

    # ------------------------------------------------------------------------------ websocket
    @staticmethod
    def _route(request: web.Request) -> str | None:
        head = request.path.split("/", 2)[1]
        return head if head in ("public", "market") else None

    async def _ws_raw(self, request: web.Request) -> web.WebSocketResponse:
        name = request.match_info.get("name")
        names = [name] if name else []
        return await self._serve_ws(request, names, combined=False, route=self._route(request))

    async def _ws_combined(self, request: web.Request) -> web.WebSocketResponse:
        names = [s for s in request.query.get("streams", "").split("/") if s]
        return await self._serve_ws(request, names, combined=True, route=self._route(request))

    async def _ws_private(self, request: web.Request) -> web.WebSocketResponse:
        """``/private/ws?listenKey=<key>&events=ORDER_TRADE_UPDATE/ACCOUNT_UPDATE``: the user data stream
        of the split layout, with only the events asked for (all when ``events`` is absent)."""
        key = request.query.get("listenKey", "")
        events = {e for e in request.query.get("events", "").split("/") if e}
        return await self._serve_ws(request, [key] if key else ["-"], combined=False, events=events or None)

    def _subscribe(self, c: _Client, names: list[str]) -> bool:
        for n in names:
            if "@" not in n:
                if c.route is not None or not self._live_key(n):  # user data only on legacy or /private
                    return False
                c.user = True
            c.streams[_norm(n)] = n
        return True

    async def _serve_ws(
        self,
        request: web.Request,
        names: list[str],
        combined: bool,
        route: str | None = None,
        events: set[str] | None = None,
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.ws_paths[request.path] += 1
        c = _Client(ws, combined, route)
        c.events = events
        if not self._subscribe(c, names):
            await ws.send_str(json.dumps({"error": {"code": -1125, "msg": "This listenKey does not exist."}}))
            await ws.close()
            return ws
        self._clients.add(c)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await self._ws_request(c, msg.data)
        finally:
            self._clients.discard(c)
        return ws

    async def _ws_request(self, c: _Client, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError:
            await self._send_to(
                c,
                json.dumps({"error": {"code": 3, "msg": "Invalid JSON: expected a JSON object"}, "id": None}),
            )
            return
        if not isinstance(req, dict) or req.get("method") not in (
            "SUBSCRIBE",
            "UNSUBSCRIBE",
            "LIST_SUBSCRIPTIONS",
        ):
            rid = req.get("id") if isinstance(req, dict) else None
            await self._send_to(
                c, json.dumps({"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": rid})
            )
            return
        params = req.get("params") or []
        if req["method"] == "SUBSCRIBE":
            ok = (
                isinstance(params, list)
                and all(isinstance(x, str) for x in params)
                and self._subscribe(c, params)
            )
            if not ok:
                await self._send_to(
                    c,
                    json.dumps(
                        {"error": {"code": 2, "msg": "Invalid request: bad params"}, "id": req.get("id")}
                    ),
                )
                return
            result: Any = None
        elif req["method"] == "UNSUBSCRIBE":
            for n in params if isinstance(params, list) else []:
                c.streams.pop(_norm(str(n)), None)
            result = None
        else:
            result = list(c.streams.values())
        await self._send_to(c, json.dumps({"result": result, "id": req.get("id")}))

    # ------------------------------------------------------------------ spot WebSocket API
    async def _ws_api(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        c = _Client(ws, combined=False)
        self._clients.add(c)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    had = c.sub_id
                    await self._send_to(
                        c, json.dumps(self._ws_api_answer(c, msg.data), separators=(",", ":"))
                    )
                    if had is not None and c.sub_id is None:  # unsubscribed: the stream's last event
                        await self._send_to(c, self._terminated(had))
        finally:
            self._clients.discard(c)
        return ws

    def _terminated(self, sub_id: int) -> str:
        event = {"e": "eventStreamTerminated", "E": int(self.wall() * 1000)}
        return json.dumps({"subscriptionId": sub_id, "event": event}, separators=(",", ":"))

    async def end_user_subscriptions(self) -> int:
        """End every spot user data subscription as the venue does when it stops one (each gets
        ``eventStreamTerminated``); returns how many were ended."""
        n = 0
        async with self._send_lock:
            subscribed = [(c, s) for c in self._clients if (s := c.sub_id) is not None and not c.ws.closed]
            for c, sid in subscribed:
                c.sub_id, c.user = None, False
                await self._send_to(c, self._terminated(sid))
                n += 1
        return n

    def _rate_limits(self) -> list[dict[str, Any]]:
        used = int(self.limiter.headers()["X-MBX-USED-WEIGHT-1M"])
        return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": self.weight_limit, "count": used}]  # fmt: skip

    def _ws_api_answer(self, c: _Client, text: str) -> dict[str, Any]:
        """The answer to one WebSocket API request (the methods of the user data stream, ping, time)."""
        try:
            req = json.loads(text)
        except ValueError:
            return {"id": None, "status": 400, "error": {"code": -1000, "msg": "Malformed JSON request."}}
        rid = req.get("id") if isinstance(req, dict) else None
        try:
            if not isinstance(req, dict) or not isinstance(req.get("method"), str):
                raise E.ApiError(400, -1000, "Invalid request: no method.")
            params = req.get("params") or {}
            if not isinstance(params, dict):
                raise E.ApiError(400, -1000, "Invalid request: params must be an object.")
            method = req["method"]
            weights = {"ping": 1, "time": 1, "session.subscriptions": 2, "userDataStream.unsubscribe": 2,
                       "userDataStream.subscribe.signature": 2}  # fmt: skip
            if method not in weights:
                raise E.ApiError(400, -1000, f"Unknown method '{method}'.")
            self.limiter.admit(weights[method])
            if method == "ping":
                result: Any = {}
            elif method == "time":
                result = {"serverTime": int(self.wall() * 1000)}
            elif method == "session.subscriptions":
                result = [] if c.sub_id is None else [{"subscriptionId": c.sub_id}]
            elif method == "userDataStream.unsubscribe":
                sid = params.get("subscriptionId")
                if c.sub_id is None or (sid is not None and sid != c.sub_id):
                    raise E.ApiError(400, -2036, "User Data Stream subscription not active.")
                c.sub_id, c.user = None, False
                result = {}
            else:
                values = {k: str(v) for k, v in params.items()}
                for k in ("apiKey", "timestamp", "signature"):
                    if not values.get(k):
                        raise E.mandatory(k)
                self.auth.check_key(values["apiKey"])
                self.auth.check_timestamp(values, int(self.wall() * 1000))
                self.auth.check_ws_signature(values)
                if c.sub_id is not None:  # one subscription per account and connection
                    raise E.ApiError(400, -2035, "User Data Stream subscription already active.")
                c.sub_id, c.user = c.n_subs, True
                c.n_subs += 1
                result = {"subscriptionId": c.sub_id}
        except E.ApiError as e:
            log.info(
                "ws-api %s -> %d %d", req.get("method") if isinstance(req, dict) else "?", e.status, e.code
            )
            return {"id": rid, "status": e.status, "error": e.body(), "rateLimits": self._rate_limits()}
        return {"id": rid, "status": 200, "result": result, "rateLimits": self._rate_limits()}

    async def _send_to(self, c: _Client, text: str) -> None:
        """Send to one client; a client whose socket closed meanwhile is dropped, as a venue would, and
        does not stop the market pump."""
        try:
            await c.ws.send_str(text)
        except (ConnectionError, RuntimeError) as e:  # aiohttp's ClientConnectionResetError included
            log.info("dropping a websocket client: %s", e)
            self._clients.discard(c)

    async def publish(self, market: bool = True, user: bool = True) -> None:
        """Send the venue's pending market and/or user data messages (the lockstep driver sends the user
        messages due before an event, waits until they are consumed, then the event's own messages)."""
        await self._publish(market, user)

    def has_subscriber(self, stream: str) -> bool:
        """Whether a connected client subscribes to ``stream`` (e.g. ``btcusdt@depth``)."""
        n = _norm(stream)
        return any(n in c.streams for c in self._clients if not c.ws.closed)

    def has_user_client(self) -> bool:
        return any(c.user for c in self._clients if not c.ws.closed)

    async def _publish(self, with_market: bool = True, with_user: bool = True) -> None:
        v = self.venue
        if self.context is not None:  # mark price and liquidation messages due by the replay's time
            v.market_out.extend(self.context.due_messages(v.now_ns))
        market = v.market_out if with_market else []
        user = v.user_out if with_user else []
        if not market and not user:
            return
        if with_market:
            v.market_out = []
        if with_user:
            v.user_out = []
        async with self._send_lock:
            clients = [c for c in self._clients if not c.ws.closed]
            for name, payload in market:
                text = None
                route = stream_route(name) if self.futures else None
                for c in clients:
                    sub = c.streams.get(name)
                    if sub is None or (c.route is not None and c.route != route):
                        continue  # a stream asked on the other route is accepted but never sent (as Binance)
                    self.sent["market"] += 1
                    if c.combined:
                        await self._send_to(
                            c, json.dumps({"stream": sub, "data": payload}, separators=(",", ":"))
                        )
                    else:
                        text = text or json.dumps(payload, separators=(",", ":"))
                        await self._send_to(c, text)
            for payload in user:
                text = json.dumps(payload, separators=(",", ":"))
                for c in clients:
                    if not c.user or (c.events is not None and payload.get("e") not in c.events):
                        continue
                    if c.sub_id is not None:  # spot WebSocket API subscription
                        self.sent["user"] += 1
                        await self._send_to(c, json.dumps({"subscriptionId": c.sub_id, "event": payload},
                                                          separators=(",", ":")))  # fmt: skip
                        continue
                    keys = [k for k in c.streams if "@" not in k and self._live_key(k)]
                    if not keys:
                        continue
                    self.sent["user"] += 1
                    if c.combined:
                        await self._send_to(
                            c, json.dumps({"stream": keys[0], "data": payload}, separators=(",", ":"))
                        )
                    else:
                        await self._send_to(c, text)


async def serve_forever(cfg: LocalExchangeConfig) -> None:
    """Run a local exchange until cancelled (the CLI entry point)."""
    async with LocalExchange(cfg) as ex:
        log.warning(
            "local Binance %s exchange on %s (ws %s), source %s, clock %s",
            cfg.market,
            ex.rest_url,
            ex.ws_url,
            cfg.source,
            cfg.clock,
        )
        await asyncio.Event().wait()
