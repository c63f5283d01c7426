"""Order intents, the order state machine and the per-order record the :class:`OrderManager` keeps.

States (:class:`OrderState`)::

    pending_new ──► new ──► partially_filled ──► filled
        │            │  └──────────┬─────────────► canceled / expired / rejected
        │            └─────────────┴──► unknown ──► any state but pending_new (resolved by a query)
        └──► any of the above (the exchange's first answer may already be a fill or a rejection)

``unknown`` is entered when a request times out or the exchange answers 5xx (the outcome is unknown);
it is resolved by querying the order by client order id, never by sending it again: if the exchange
does not know the id once the request's ``recvWindow`` has passed, the order is ``rejected`` with
reason ``not_received``. Terminal states (filled, canceled, rejected, expired) have no way out. An
illegal transition raises :class:`IllegalTransition` naming both states.

The same table is ``TRANSITIONS`` (a bool matrix over ``OrderState.code``) for numba kernels.

:class:`OrderManager` (asyncio) is the one live order path: the paper/live engine places, tracks,
cancels and recovers its orders through it. It journals every intent before sending it, sends through a
:class:`~orderflow.adapters.binance.trading.client.BinanceTradingClient` (which maps the intent to
Binance's parameters and signs them), applies the exchange's answers and the user stream's
:class:`OrderUpdate` s, resolves ``unknown`` orders by query, reconciles with the exchange on start
(:mod:`orderflow.execution.order_reconcile`) and applies cost control to resting orders on book updates.

While a user data stream delivers the orders' reports (``stream_reports``), a REST answer only
acknowledges an order (its exchange id, ``new``): fills, with their trade ids, prices and fees, and final
states come from the stream alone, so each fill is booked once, as the exchange reported it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np

from orderflow.adapters.binance.common.errors import (
    BinanceError,
    DuplicateOrder,
    ExchangeUnavailable,
    PostOnlyRejected,
    RateLimited,
    UnknownOrder,
)
from orderflow.adapters.binance.trading.events import Order, OrderUpdate
from orderflow.core.orders import Fill, OrderIntent, OrderType, Side
from orderflow.execution.costs import CostDecision, decide
from orderflow.execution.exec_config import ExecutionConfig
from orderflow.execution.order_reconcile import ReconcileReport, reconcile
from orderflow.execution.order_state import (  # noqa: F401  (re-exported: the public API)
    _CODES,
    _S,
    CLIENT_ID_RE,
    FROM_EXCHANGE,
    N_STATES,
    NAN,
    RANK,
    TERMINAL,
    TRANSITIONS,
    DuplicateIntent,
    IllegalTransition,
    Journal,
    ManagedOrder,
    NoJournal,
    OrderState,
    check_client_id,
    check_transition,
    field_of,
    log,
    recovered_fill_id,
    side_of,
)

_REPRICE_RE = re.compile(r"-r\d+$")


def _num(x: float) -> Decimal:
    """A float as the Decimal the client formats (float noise of ``k * step`` removed)."""
    return Decimal(repr(round(float(x), 12)))


class OrderManager:
    """Orders of one account through ``client`` (a ``BinanceTradingClient``), journaled in ``journal``
    under run ``run_id``.

    ``on_fill(order, fill)``, ``on_done(order)`` and ``on_report(order, ts)`` (every state the journal
    records, the intent's ``pending_new`` once sent included) are the engine's callbacks; ``clock`` gives
    int ns (default: the client's local clock); ``id_gen`` makes client order ids (default: the client's);
    ``fee_rate`` is the fee rate booked for a fill whose report carries no fee (NaN: left unknown).
    Requests are sent once (``client.send_intent``, not ``place_order``, whose own recovery re-sends an
    order it cannot find) so an unknown outcome is visible as ``unknown``."""

    def __init__(
        self,
        client: Any,
        journal: Journal,
        config: ExecutionConfig | None = None,
        *,
        run_id: int = 0,
        clock: Callable[[], int] | None = None,
        id_gen: Callable[[], str] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        on_fill: Callable[[ManagedOrder, Fill], Any] | None = None,
        on_done: Callable[[ManagedOrder], Any] | None = None,
        fee_rate: float = NAN,
        on_report: Callable[[ManagedOrder, int], Any] | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.run_id = run_id
        self.fee_rate = fee_rate
        self.stream_reports = False  # True while a user data stream delivers fills and final states
        self.config = config or ExecutionConfig()
        self.X = self.config.to_record()[0]  # the config record the cost-control kernel reads
        self.clock = clock or client.server_clock.local_ns
        self.next_id = id_gen or client.next_client_id
        self._sleep = sleep
        self.on_fill = on_fill
        self.on_done = on_done
        self.on_report = on_report
        self.orders: dict[str, ManagedOrder] = {}
        self.fills: list[Fill] = []
        self.position: dict[str, float] = {}
        self.cost_decisions: list[CostDecision] = []
        self._reprices: dict[str, int] = {}
        self._tasks: set[asyncio.Task] = set()
        self.stats = {"sent": 0, "unknown": 0, "resolved": 0, "not_received": 0, "unmanaged_updates": 0}

    # -- intents -----------------------------------------------------------------------------------------
    def intent(
        self,
        symbol: str,
        side: Side | int | str,
        quantity: float,
        order_type: OrderType | str = OrderType.LIMIT,
        price: float = NAN,
        **kw: Any,
    ) -> OrderIntent:
        """A new intent with a fresh client order id (``kw``: other :class:`OrderIntent` fields)."""
        return OrderIntent(
            check_client_id(self.next_id()),
            symbol.upper(),
            side_of(side),
            float(quantity),
            OrderType(str(order_type)),
            float(price),
            ts_created=kw.pop("ts_created", self.clock()),
            **kw,
        )

    async def submit(self, intent: OrderIntent) -> ManagedOrder:
        """Journal ``intent``, then send it once. Returns the order in the state the answer gave:
        rejected (filters or exchange, with the reason), new/filled/..., or unknown (a background task
        resolves it by query; :meth:`resolve` / :meth:`drain` await it)."""
        cid = check_client_id(intent.client_order_id)
        if cid in self.orders:
            raise DuplicateIntent(f"client order id {cid} is already used by a managed order")
        mo = ManagedOrder(intent, ts_update=self.clock())
        self.orders[cid] = mo
        self.journal.record_intent(intent, self.run_id)
        c = self.client
        try:
            params = c.intent_params(intent)
        except BinanceError as e:
            self._reject(mo, f"refused before sending: {type(e).__name__}: {e}", e)
            return mo
        mo.sent_ns = self.clock()
        self.journal.mark_sent(cid, mo.sent_ns)
        self.stats["sent"] += 1
        if self.on_report is not None:
            self.on_report(mo, mo.sent_ns)
        try:
            o = await c.send_intent(params)
        except (ExchangeUnavailable, DuplicateOrder) as e:
            mo.sent_ms = int(getattr(e, "sent_timestamp_ms", 0) or c.server_clock.now_ms())
            self.stats["unknown"] += 1
            self._move(mo, OrderState.UNKNOWN, f"outcome unknown: {type(e).__name__}: {e}")
            self._spawn(self.resolve(cid))
            return mo
        except BinanceError as e:
            self._reject(mo, f"{type(e).__name__} code={e.code}: {e.msg}", e)
            return mo
        self.apply_order(o)
        return mo

    # -- reports -----------------------------------------------------------------------------------------
    def handle(self, event: Any) -> None:
        """Apply one user-stream event (only :class:`OrderUpdate` matters here)."""
        if isinstance(event, OrderUpdate):
            self.on_update(event)

    async def run(self, stream: Any) -> None:
        """Consume ``stream`` (a ``UserDataStream``) until cancelled."""
        async for ev in stream:
            self.handle(ev)

    def on_update(self, u: OrderUpdate) -> bool:
        """Apply a stream (or recovered) update, at its receive time; return whether it changed the
        order."""
        return self._apply(
            u.client_order_id,
            FROM_EXCHANGE[u.status],
            u.filled_qty,
            u.filled_quote,
            u.order_id,
            u.ts_recv,
            u.reject_reason,
            u,
            u.source,
        )

    def apply_order(self, o: Order, source: str = "rest", *, final: bool | None = None) -> bool:
        """Apply an order state from a REST answer (place, cancel, query). With ``final`` false (the
        default while ``stream_reports``) the answer only acknowledges the order (:meth:`_acknowledge`)."""
        if not (not self.stream_reports if final is None else final):
            return self._acknowledge(o)
        return self._apply(
            o.client_order_id,
            FROM_EXCHANGE[o.status],
            o.filled_qty,
            o.filled_quote,
            o.order_id,
            o.ts_update or self.clock(),
            "",
            None,
            source,
        )

    def _acknowledge(self, o: Order) -> bool:
        """A REST answer while the stream reports: the exchange has the order (its id; ``new`` unless
        the answer is already final, whose report the stream brings with the fills)."""
        mo = self.orders.get(o.client_order_id)
        if mo is None or mo.state.terminal:
            return False
        if o.order_id >= 0:
            mo.exchange_id = o.order_id
        if o.status.terminal or mo.state not in (OrderState.PENDING_NEW, OrderState.UNKNOWN):
            return False
        self._move(mo, OrderState.NEW, "acknowledged")
        return True

    def _apply(
        self,
        cid: str,
        new: OrderState | None,
        filled: float,
        quote: float,
        exchange_id: int,
        ts: int,
        reason: str,
        last: OrderUpdate | None,
        source: str,
    ) -> bool:
        mo = self.orders.get(cid)
        if mo is None:
            self.stats["unmanaged_updates"] += 1
            return False
        if mo.state.terminal or filled < mo.filled_qty - 1e-9:
            return False  # a late or stale copy
        dq = filled - mo.filled_qty
        fill = dq > 1e-12 * max(1.0, filled)
        target = new
        if target is None or (target is OrderState.NEW and filled > 0):
            target = OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.NEW
        if RANK[target] < RANK[mo.state] or (target is mo.state and not fill):
            if not fill:
                return False
            target = mo.state
        if exchange_id >= 0:
            mo.exchange_id = exchange_id
        f = None
        if fill:
            px, fee, asset, tid, maker = (quote - mo.filled_quote) / dq, NAN, "", -round(filled * 1e8), False
            key = recovered_fill_id(filled)
            if (
                last is not None
                and last.trade_id >= 0
                and abs(last.last_fill_qty - dq) <= 1e-9 * max(1.0, dq)
            ):
                px, fee, asset, tid, maker = (
                    last.last_fill_price,
                    last.fee,
                    last.fee_asset,
                    last.trade_id,
                    last.is_maker,
                )
                dq = last.last_fill_qty  # the exchange's quantity, not a difference of floats
                key = str(tid)
            if math.isnan(fee) and not math.isnan(self.fee_rate):
                fee = self.fee_rate * dq * px
            mo.filled_qty, mo.filled_quote = filled, quote
            f = Fill(cid, mo.symbol, mo.intent.side, dq, px, fee, asset, tid, maker, ts, source)
            self.fills.append(f)
            self.position[mo.symbol] = self.position.get(mo.symbol, 0.0) + int(mo.intent.side) * dq
            self.journal.record_fill(cid, key, px, dq, ts, fee=fee, fee_asset=asset or None,
                                    liquidity="maker" if maker else "taker")  # fmt: skip
        if target is not mo.state or target is OrderState.PARTIALLY_FILLED:
            self._move(mo, target, reason, ts)
        else:
            self._report(mo, ts, reason)
        if f is not None and self.on_fill is not None:
            self.on_fill(mo, f)
        if mo.state.terminal and self.on_done is not None:
            self.on_done(mo)
        return True

    def _move(self, mo: ManagedOrder, new: OrderState, reason: str = "", ts: int | None = None) -> None:
        t = self.clock() if ts is None else ts
        mo.move(new, t, reason)
        self._report(mo, t, reason)

    def _report(self, mo: ManagedOrder, ts: int, reason: str) -> None:
        avg = None if math.isnan(mo.avg_price) else mo.avg_price
        ex = None if mo.exchange_id < 0 else mo.exchange_id
        self.journal.apply_report(mo.client_order_id, mo.state.value, mo.filled_qty, avg, ex, ts, reason)
        if self.on_report is not None:
            self.on_report(mo, ts)

    def _reject(self, mo: ManagedOrder, reason: str, error: Exception | None = None) -> None:
        level = logging.INFO if isinstance(error, PostOnlyRejected) else logging.WARNING  # a normal outcome
        log.log(level, "order %s rejected: %s", mo.client_order_id, reason)
        mo.error = error
        self._move(mo, OrderState.REJECTED, reason)
        if self.on_done is not None:
            self.on_done(mo)

    # -- unknown outcomes ----------------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[Any]) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background resolutions to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def resolve(self, cid: str) -> ManagedOrder:
        """Resolve a pending/unknown order by querying its client id. Not found once the request's
        ``timestamp + recvWindow`` (+ the client's settle margin) has passed on the server clock:
        rejected ``not received``. A failing query is retried ``resolve_attempts`` times, then the
        order stays unknown (reconcile tries again)."""
        mo = self.orders[cid]
        c = self.client
        if mo.state not in (OrderState.UNKNOWN, OrderState.PENDING_NEW):
            return mo
        sent_ms = mo.sent_ms or (mo.sent_ns or mo.intent.ts_created or self.clock()) // 1_000_000
        deadline = sent_ms + c.config.recv_window_ms + c.config.settle_margin_ms
        failures, err = 0, ""
        while failures < self.config.resolve_attempts:
            try:
                o = await c.get_order(mo.symbol, client_order_id=cid)
            except UnknownOrder:
                wait_ms = deadline - c.server_clock.now_ms()
                if wait_ms > 0:
                    await self._sleep(wait_ms / 1000)
                    continue
                self.stats["not_received"] += 1
                self._reject(
                    mo,
                    f"not received: exchange does not know {cid} at server time "
                    f"{c.server_clock.now_ms()} ms >= sent {sent_ms} ms + recvWindow/margin",
                )
                return mo
            except (ExchangeUnavailable, RateLimited) as e:
                failures, err = failures + 1, str(e)
                await self._sleep(self.config.resolve_retry_s)
                continue
            if mo.state is OrderState.UNKNOWN or mo.state is OrderState.PENDING_NEW:
                self.stats["resolved"] += 1
            self.apply_order(o)
            return mo
        log.warning("order %s still unknown after %d failed queries: %s", cid, failures, err)
        if mo.state is OrderState.PENDING_NEW:
            self._move(mo, OrderState.UNKNOWN, f"query failed {failures} times: {err}")
        return mo

    # -- cancel --------------------------------------------------------------------------------------------
    async def cancel(self, cid: str) -> ManagedOrder:
        """Cancel one order by client id; its final state comes from the answer (or a query)."""
        mo = self.orders[cid]
        if mo.state.terminal:
            return mo
        if mo.state in (OrderState.UNKNOWN, OrderState.PENDING_NEW):
            await self.resolve(cid)
            if mo.state.terminal or mo.state is OrderState.UNKNOWN:
                return mo
        try:
            o = await self.client.cancel_order(mo.symbol, client_order_id=cid)
        except UnknownOrder:
            try:  # gone already (filled or expired before the cancel arrived)
                o = await self.client.get_order(mo.symbol, client_order_id=cid)
            except UnknownOrder:
                log.error("order %s (%s) is unknown to the exchange", cid, mo.state.value)
                return mo
        except ExchangeUnavailable as e:
            log.warning("cancel of %s: outcome unknown, order still open: %s", cid, e)
            return mo
        except BinanceError as e:  # refused (e.g. filled meanwhile): its reports say what happened
            log.info("cancel of %s not done: %s", cid, e)
            return mo
        self.apply_order(o)
        return mo

    async def cancel_all(self, symbol: str) -> list[ManagedOrder]:
        """Cancel every open managed order of ``symbol``; return them with their new states."""
        out = []
        for mo in self.open_orders(symbol):
            out.append(await self.cancel(mo.client_order_id))
        return out

    # -- queries -------------------------------------------------------------------------------------------
    def open_orders(self, symbol: str | None = None) -> list[ManagedOrder]:
        """Managed orders not in a terminal state (optionally of one symbol)."""
        sym = symbol.upper() if symbol else None
        return [m for m in self.orders.values() if m.state.open and (sym is None or m.symbol == sym)]

    def position_delta(self, symbol: str) -> float:
        """Signed base quantity bought minus sold through the managed orders' fills."""
        return self.position.get(symbol.upper(), 0.0)

    # -- cost control --------------------------------------------------------------------------------------
    async def on_book(
        self, symbol: str, bids: np.ndarray, asks: np.ndarray, tick: float | None = None
    ) -> list[CostDecision]:
        """Cost control on a book update (``bids``/``asks``: (n, 2) price/size arrays, best first) for
        the resting LIMIT orders of ``symbol`` that carry an ``ev`` (scaled to the remaining quantity):
        REPRICE cancels and re-sends the remainder at the touch (client id ``{root}-r{k}``, same
        parent), CANCEL cancels. Returns (and keeps in ``cost_decisions``) every non-keep decision."""
        sym = symbol.upper()
        if tick is None:
            tick = float(self.client.filters[sym].tick_size)
        out = []
        for mo in self.open_orders(sym):
            it = mo.intent
            if it.order_type is not OrderType.LIMIT or mo.state not in (
                OrderState.NEW,
                OrderState.PARTIALLY_FILLED,
            ):
                continue
            if math.isnan(it.ev) or mo.remaining <= 0:
                continue
            ev = it.ev * mo.remaining / it.quantity
            d = decide(
                mo.client_order_id,
                int(it.side),
                it.price,
                mo.remaining,
                it.ref_price,
                ev,
                bids,
                asks,
                tick,
                self.X,
            )
            if d.action == "keep":
                continue
            log.info(
                "cost control %s %s: %s (cost %.6g vs budget %.6g)",
                d.action,
                d.client_order_id,
                d.reason,
                d.cost,
                d.budget,
            )
            self.cost_decisions.append(d)
            out.append(d)
            await self.cancel(mo.client_order_id)
            if d.action == "reprice" and mo.state is OrderState.CANCELED and mo.remaining > 0:
                root = _REPRICE_RE.sub("", mo.client_order_id)
                k = self._reprices.get(root, 0) + 1
                self._reprices[root] = k
                new = msgspec.structs.replace(
                    it,
                    client_order_id=check_client_id(f"{root}-r{k}"),
                    price=d.new_price,
                    quantity=float(_num(mo.remaining)),
                    parent_id=it.parent_id or root,
                    ev=ev,
                    ts_created=self.clock(),
                )
                await self.submit(new)
        return out

    # -- reconcile -----------------------------------------------------------------------------------------
    async def reconcile(
        self, symbols: tuple[str, ...] | list[str] = (), only: str | None = None
    ) -> ReconcileReport:
        """On start: the journal's open and unresolved orders (of symbol ``only``, or all) checked
        against the exchange (:func:`orderflow.execution.order_reconcile.reconcile`)."""
        return await reconcile(self, symbols, only)
