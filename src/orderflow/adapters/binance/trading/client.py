"""The asyncio Binance trading client (spot and USD-M futures).

Orders (spot ``/api/v3/order``, USD-M ``/fapi/v1/order``):

============  ==============================================  ==========================================
domain        spot                                            USD-M futures
============  ==============================================  ==========================================
LIMIT         ``type=LIMIT`` + ``timeInForce`` GTC/IOC/FOK    same; ``reduceOnly`` allowed
post-only     ``type=LIMIT_MAKER`` (no timeInForce)           ``type=LIMIT&timeInForce=GTX``
MARKET        ``type=MARKET``                                 same; ``reduceOnly`` allowed
STOP_LIMIT    ``type=STOP_LOSS_LIMIT`` + ``stopPrice``        ``type=STOP`` + ``price`` + ``stopPrice``
============  ==============================================  ==========================================

Every order carries ``newClientOrderId`` from an injected generator (default: prefix, a session
token and a counter). An id is used for one order intent only: a second :meth:`place_order` with an
id already used raises :class:`DuplicateOrder` locally. When the outcome of a placement is unknown
(timeout, dropped connection, 5xx), the client waits until the server clock passes the request's
``timestamp + recvWindow`` (after that Binance can no longer accept it), queries the order by client
id, and adopts it if it exists; only if it does not is the same request re-sent. A "duplicate order"
answer to a re-send also resolves to the existing order. So one intent makes at most one order.

The order vocabulary (:mod:`orderflow.core.orders`) becomes Binance's parameters in one place,
:meth:`BinanceTradingClient.order_params` (type, time in force and post-only by the table above), and an
order request is signed here, by :meth:`BinanceTradingClient.signed_payload` (the transport adds
``recvWindow`` and ``timestamp`` and sends exactly the string it returns).
:meth:`BinanceTradingClient.send_intent` sends an :class:`OrderIntent` once, without the re-send above
(the :class:`~orderflow.execution.orders.OrderManager` resolves an unknown outcome by query itself).

Filters from exchangeInfo are applied before sending (:mod:`.filters`); rate limits come from
exchangeInfo ``rateLimits`` and the response headers (:mod:`.ratelimit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp

from orderflow.adapters.binance.common.clock import ServerClock
from orderflow.adapters.binance.common.config import TradingClientConfig
from orderflow.adapters.binance.common.errors import (
    BadRequest,
    DuplicateOrder,
    ExchangeUnavailable,
    UnknownOrder,
    UnknownSymbol,
)
from orderflow.adapters.binance.common.signing import Credentials, encode_params
from orderflow.adapters.binance.common.venues import caps
from orderflow.adapters.binance.http.ratelimit import RateLimiter, default_rules, rules_from_exchange_info
from orderflow.adapters.binance.http.transport import RestTransport
from orderflow.adapters.binance.trading.decode import (
    balances_from_account,
    order_from_rest,
    positions_from_rest,
)
from orderflow.adapters.binance.trading.events import Balance, Order, Position
from orderflow.adapters.binance.trading.filters import SymbolFilters, check_order, parse_exchange_info
from orderflow.adapters.binance.trading.tracker import OrderTracker
from orderflow.core.orders import OrderIntent, OrderType, Side, TimeInForce

log = logging.getLogger(__name__)
CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
Number = Decimal | float | int | str


def sequential_ids(prefix: str = "of", token: str | None = None, start: int = 1) -> Callable[[], str]:
    """A generator of client order ids ``{prefix}-{token}-{n}``; ``token`` defaults to 6 random hex
    characters per process (so ids of two sessions differ); pass it for deterministic ids."""
    tok = token if token is not None else secrets.token_hex(3)
    counter = itertools.count(start)
    head = "-".join(x for x in (prefix, tok) if x)
    return lambda: f"{head}-{next(counter)}"


class BinanceTradingClient:
    """Signed trading calls against one Binance market. Use ``async with`` or :meth:`start`/:meth:`close`.

    ``client_id_gen`` makes client order ids (injected for deterministic tests); ``clock`` is the
    local clock in ns; ``sleep`` is ``asyncio.sleep``-like (the rate limiter's waits)."""

    def __init__(
        self,
        config: TradingClientConfig,
        credentials: Credentials,
        *,
        session: aiohttp.ClientSession | None = None,
        client_id_gen: Callable[[], str] | None = None,
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.futures = config.futures
        self.venue = config.endpoints().venue
        self.caps = caps(config.market)
        self.paths = self.caps.paths
        self.server_clock = ServerClock(clock)
        self.limiter = RateLimiter(
            default_rules(self.futures),
            clock=clock,
            sleep=sleep,
            safety=config.rate_limit_safety,
            max_wait_s=config.max_rate_wait_s,
        )
        self.rest = RestTransport(config, credentials, self.limiter, self.server_clock, session, sleep)
        self.next_client_id = client_id_gen or sequential_ids(config.client_id_prefix)
        self.filters: dict[str, SymbolFilters] = {}
        self.tracker = OrderTracker()
        self._used_ids: set[str] = set()
        self._sleep = sleep
        self._sync_task: asyncio.Task | None = None
        self.stats = {"orders_sent": 0, "orders_recovered": 0, "order_resends": 0}

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def __aenter__(self) -> BinanceTradingClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, load_markets: bool = True) -> None:
        """Measure the clock offset, load exchange filters and rate limits, start the periodic resync."""
        await self.rest.sync_clock()
        if load_markets:
            await self.load_exchange_info()
        if self._sync_task is None:
            self._sync_task = asyncio.create_task(self._resync_loop(), name="binance-time-sync")

    async def close(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
            self._sync_task = None
        await self.rest.close()

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.time_sync_interval_s)
            try:
                await self.rest.sync_clock()
            except Exception as e:  # keep trading on the last offset; log the cause
                log.warning("periodic clock resync failed: %s", e)

    async def load_exchange_info(self) -> dict[str, SymbolFilters]:
        """Load symbol filters and the rate limits from ``exchangeInfo``."""
        info = await self.rest.request("GET", self.paths.exchange_info, {}, weight=self.paths.w_info)
        self.filters = parse_exchange_info(info, self.futures)
        rules = rules_from_exchange_info(info.get("rateLimits", []))
        if rules:
            self.limiter.set_rules(rules)
        return self.filters

    # -- orders ------------------------------------------------------------------------------------------
    def order_params(
        self,
        symbol: str,
        side: Side | str,
        order_type: OrderType | str,
        quantity: Number,
        price: Number | None = None,
        *,
        stop_price: Number | None = None,
        time_in_force: TimeInForce | str = TimeInForce.GTC,
        post_only: bool = False,
        reduce_only: bool = False,
        client_order_id: str = "",
        ref_price: Number | None = None,
        round_to_grid: bool | None = None,
    ) -> dict[str, Any]:
        """The Binance parameters of an order, after the filter checks (no request is made)."""
        sym = symbol.upper()
        side_s = _side_str(side)
        otype = OrderType(order_type.value if isinstance(order_type, OrderType) else str(order_type).upper())
        tif = TimeInForce(
            time_in_force.value if isinstance(time_in_force, TimeInForce) else str(time_in_force).upper()
        )
        f = self.filters.get(sym)
        if self.filters and f is None:
            raise UnknownSymbol(
                f"symbol {sym} is not in exchangeInfo of {self.venue}", code=-1121, symbol=sym
            )
        if reduce_only and not self.caps.reduce_only:
            raise BadRequest("reduce_only exists only on futures", symbol=sym)
        if post_only and (otype is not OrderType.LIMIT or tif is not TimeInForce.GTC):
            raise BadRequest(f"post_only needs a GTC LIMIT order, not {otype.value} {tif.value}", symbol=sym)
        if otype is not OrderType.MARKET and price is None:
            raise BadRequest(f"{otype.value} order needs a price", symbol=sym)
        if otype is OrderType.STOP_LIMIT and stop_price is None:
            raise BadRequest("STOP_LIMIT order needs a stop_price", symbol=sym)
        if otype is OrderType.MARKET:
            price = None
        if otype is not OrderType.STOP_LIMIT:
            stop_price = None
        if f is not None:
            rnd = self.config.round_to_grid if round_to_grid is None else round_to_grid
            c = check_order(
                f,
                side=side_s,
                quantity=quantity,
                price=price,
                stop_price=stop_price,
                market=otype is OrderType.MARKET,
                reduce_only=reduce_only,
                ref_price=ref_price,
                round_to_grid=rnd,
            )
            qty_s, price_s, stop_s = c.quantity, c.price, c.stop_price
        else:
            qty_s = str(quantity)
            price_s = None if price is None else str(price)
            stop_s = None if stop_price is None else str(stop_price)
        p: dict[str, Any] = {"symbol": sym, "side": side_s}
        if otype is OrderType.LIMIT:
            if post_only and self.caps.post_only_as_limit_maker:
                p["type"] = "LIMIT_MAKER"
            else:
                p["type"] = "LIMIT"
                p["timeInForce"] = "GTX" if post_only else tif.value
        elif otype is OrderType.MARKET:
            p["type"] = "MARKET"
        else:
            p["type"] = self.caps.stop_limit_type
            p["timeInForce"] = tif.value
        p["quantity"] = qty_s
        if price_s is not None:
            p["price"] = price_s
        if stop_s is not None:
            p["stopPrice"] = stop_s
        if reduce_only:
            p["reduceOnly"] = "true"
        if client_order_id:
            p["newClientOrderId"] = client_order_id
        p["newOrderRespType"] = "RESULT"
        return p

    def signed_payload(self, params: dict[str, Any]) -> str:
        """The bytes a signed order request carries: ``params`` (the order's, then the transport's
        ``recvWindow`` and ``timestamp``) percent-encoded in insertion order, and ``&signature=`` over
        exactly that string (HMAC-SHA256 hex or Ed25519 base64, by the key)."""
        payload = encode_params(params)
        return f"{payload}&signature={self.credentials.signer.sign(payload)}"

    def intent_params(self, intent: OrderIntent) -> dict[str, Any]:
        """The Binance parameters of ``intent`` (:meth:`order_params`; NaN prices are none), after the
        filter checks (no request is made)."""
        return self.order_params(
            intent.symbol,
            intent.side,
            intent.order_type,
            _num(intent.quantity),
            _num_or_none(intent.price),
            stop_price=_num_or_none(intent.stop_price),
            time_in_force=intent.time_in_force,
            post_only=intent.post_only,
            reduce_only=intent.reduce_only,
            client_order_id=intent.client_order_id,
            ref_price=_num_or_none(intent.ref_price),
        )

    async def send_intent(self, params: dict[str, Any]) -> Order:
        """POST an order's parameters (:meth:`intent_params`) once; its state from the answer. An
        unknown outcome raises :class:`ExchangeUnavailable` (with ``sent_timestamp_ms``) and is not
        re-sent: the caller resolves it by querying the client order id."""
        body = await self.rest.request(
            "POST",
            self.paths.order,
            params,
            weight=self.paths.w_new,
            orders=1,
            signed=True,
            symbol=params["symbol"],
            sign=self.signed_payload,
        )
        o = order_from_rest(body, self.venue)
        self.tracker.on_order(o)
        return o

    async def place_order(
        self,
        symbol: str,
        side: Side | str,
        order_type: OrderType | str,
        quantity: Number,
        price: Number | None = None,
        *,
        stop_price: Number | None = None,
        time_in_force: TimeInForce | str = TimeInForce.GTC,
        post_only: bool = False,
        reduce_only: bool = False,
        client_order_id: str | None = None,
        ref_price: Number | None = None,
        round_to_grid: bool | None = None,
    ) -> Order:
        """Place an order; return its state from the exchange's answer (status, fills so far).

        ``quantity`` in base units, ``price``/``stop_price`` in quote currency. Filters are checked
        first (:class:`FilterError`); see the module docstring for idempotency."""
        cid = client_order_id if client_order_id is not None else self.next_client_id()
        if not CLIENT_ID_RE.match(cid):
            raise BadRequest(f"client order id {cid!r} does not match {CLIENT_ID_RE.pattern}", symbol=symbol)
        params = self.order_params(
            symbol,
            side,
            order_type,
            quantity,
            price,
            stop_price=stop_price,
            time_in_force=time_in_force,
            post_only=post_only,
            reduce_only=reduce_only,
            client_order_id=cid,
            ref_price=ref_price,
            round_to_grid=round_to_grid,
        )
        if cid in self._used_ids:
            raise DuplicateOrder(
                f"client order id {cid} was already used for an order", symbol=params["symbol"]
            )
        self._used_ids.add(cid)
        return await self._send_new_order(params, cid)

    async def _send_new_order(self, params: dict[str, Any], cid: str) -> Order:
        sym = params["symbol"]
        last: ExchangeUnavailable | None = None
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self.stats["order_resends"] += 1
                log.warning(
                    "re-sending order %s (attempt %d): not found after an unknown outcome", cid, attempt + 1
                )
            try:
                self.stats["orders_sent"] += 1
                body = await self.rest.request(
                    "POST",
                    self.paths.order,
                    params,
                    weight=self.paths.w_new,
                    orders=1,
                    signed=True,
                    symbol=sym,
                    sign=self.signed_payload,
                )
                o = order_from_rest(body, self.venue)
                self.tracker.on_order(o)
                return o
            except DuplicateOrder:
                log.warning("order %s: exchange reports the id in use; adopting the existing order", cid)
                return await self._adopt(sym, cid)
            except ExchangeUnavailable as e:
                last = e
                log.warning("order %s: outcome unknown (%s); reconciling by client id", cid, e)
                await self._settle(getattr(e, "sent_timestamp_ms", self.server_clock.now_ms()))
                try:
                    return await self._adopt(sym, cid)
                except UnknownOrder:
                    continue
        assert last is not None
        raise last

    async def _settle(self, sent_ms: int) -> None:
        """Wait until the server clock passes ``sent_ms + recvWindow`` (+ margin): after that Binance
        cannot accept the request any more, so a query that does not find the order is final."""
        deadline = sent_ms + self.config.recv_window_ms + self.config.settle_margin_ms
        wait_ms = deadline - self.server_clock.now_ms()
        if wait_ms > 0:
            await self._sleep(wait_ms / 1000)

    async def _adopt(self, symbol: str, cid: str) -> Order:
        o = await self.get_order(symbol, client_order_id=cid)
        self.stats["orders_recovered"] += 1
        return o

    async def cancel_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        """Cancel by exchange ``order_id`` or ``client_order_id``; return the cancelled order's state.
        A cancel whose outcome is unknown is resolved by querying the order."""
        params = self._id_params(symbol, order_id, client_order_id)
        try:
            body = await self.rest.request(
                "DELETE",
                self.paths.order,
                params,
                weight=self.paths.w_cancel,
                signed=True,
                symbol=params["symbol"],
            )
        except ExchangeUnavailable:
            o = await self.get_order(symbol, order_id=order_id, client_order_id=client_order_id)
            if not o.status.terminal:
                raise
            return o
        o = order_from_rest(body, self.venue)
        self.tracker.on_order(o)
        return o

    async def get_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        """The order's current state (raises :class:`UnknownOrder` when it does not exist)."""
        params = self._id_params(symbol, order_id, client_order_id)
        body = await self.rest.request(
            "GET", self.paths.order, params, weight=self.paths.w_query, signed=True, symbol=params["symbol"]
        )
        o = order_from_rest(body, self.venue)
        self.tracker.on_order(o)
        return o

    def _id_params(self, symbol: str, order_id: int | None, client_order_id: str | None) -> dict[str, Any]:
        p: dict[str, Any] = {"symbol": symbol.upper()}
        if order_id is not None:
            p["orderId"] = int(order_id)
        elif client_order_id:
            p["origClientOrderId"] = client_order_id
        else:
            raise BadRequest("give order_id or client_order_id", symbol=symbol)
        return p

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open orders of ``symbol`` (or of every symbol: a heavy call)."""
        params = {"symbol": symbol.upper()} if symbol else {}
        w = self.paths.w_open_sym if symbol else self.paths.w_open_all
        rows = await self.rest.request(
            "GET", self.paths.open_orders, params, weight=w, signed=True, symbol=symbol or ""
        )
        out = [order_from_rest(r, self.venue) for r in rows]
        for o in out:
            self.tracker.on_order(o)
        return out

    # -- account -----------------------------------------------------------------------------------------
    async def balances(self) -> dict[str, Balance]:
        """Balances by asset (spot free/locked; futures available and the rest of the wallet)."""
        body = await self.rest.request(
            "GET", self.paths.account, {}, weight=self.paths.w_account, signed=True
        )
        return balances_from_account(body, self.futures)

    async def positions(self) -> dict[str, Position]:
        """Non-zero futures positions by symbol (spot has none: :class:`BadRequest`)."""
        if not self.caps.positions:
            raise BadRequest("positions exist only on futures")
        rows = await self.rest.request("GET", self.paths.positions, {}, weight=5, signed=True)
        return positions_from_rest(rows)

    # -- user data stream listen key ----------------------------------------------------------------------
    async def create_listen_key(self) -> str:
        """USD-M listen key. (Spot listen keys were retired by Binance on 2026-02-20: the spot user data
        stream is a WebSocket API subscription, see :class:`UserDataStream`.)"""
        if self.caps.user_stream != "listen-key":
            raise ValueError("spot has no listen keys since 2026-02-20: use UserDataStream (WebSocket API)")
        body = await self.rest.request(
            "POST", self.paths.listen_key, {}, weight=self.paths.w_listen, api_key=True
        )
        return str(body["listenKey"])

    async def keepalive_listen_key(self, listen_key: str) -> None:
        """Extend the USD-M listen key (the account has one key; the request names none)."""
        await self.rest.request("PUT", self.paths.listen_key, {}, weight=self.paths.w_listen, api_key=True)

    async def close_listen_key(self, listen_key: str) -> None:
        await self.rest.request("DELETE", self.paths.listen_key, {}, weight=self.paths.w_listen, api_key=True)

    def __repr__(self) -> str:
        return f"BinanceTradingClient({self.venue} at {self.rest.base_url}, {self.credentials!r})"

    __str__ = __repr__


def _num(x: float) -> Decimal:
    """A float as the Decimal sent (float noise of ``k * step`` removed)."""
    return Decimal(repr(round(float(x), 12)))


def _num_or_none(x: float) -> Decimal | None:
    return None if x != x else _num(x)  # NaN: none


def _side_str(side: Side | str) -> str:
    if isinstance(side, Side):
        return "BUY" if side is Side.BUY else "SELL"
    s = str(side).upper()
    if s not in ("BUY", "SELL"):
        raise BadRequest(f"side must be BUY or SELL, not {side!r}")
    return s
