"""Dry run (``orderflow paper --fills local``): the paper engine on a venue's market data alone (Binance,
or any Binance-protocol venue such as the replay server), with the fills of the backtester's simulated
exchange. No account, no API key, no order request leaves the process: no signed endpoint, no user data
stream.

:class:`SimulatedVenue` stands where the trading client stands for the
:class:`~orderflow.execution.orders.OrderManager`: the manager journals each intent and "sends" it to the
venue, which hands it to a :class:`~orderflow.execution.sim_exchange.SimulatedExchange` (the kernels of
:mod:`orderflow.execution.sim_kernels`: matching on the live L2 book, latency model, queue position,
fees, as configured in ``backtest.exchange``) fed in-process with the feed's book and trade events. The
venue's fills and final reports wait in an inbox and reach the manager (and through its callbacks the
trading core) as :class:`~orderflow.adapters.binance.trading.events.OrderUpdate` s at their response
time, exactly as in the backtester's loop (:mod:`orderflow.backtest.loop`): at a book event, before the
strategy's turn, every fill and then every report whose response time is at or before the event's time.
The journal, the telemetry and the run summary are the paper engine's.

Time, as the backtester's (:meth:`orderflow.backtest.engine.Market.from_frames`): the exchange applies
market events at their exchange time (``ts_event``); the core decides and books at
``max(ts_recv, ts_event)``, and an order leaves at that time plus ``backtest.decision_latency_us``. With
the receive times of a recording (a lockstep clock) or receive times that trail the exchange times (a
replay served faster than it was recorded) a dry run therefore gives the backtest's fills. A venue whose
clock is more than :data:`REPLAY_SKEW_NS` from the local clock (``GET time``; a replay of a past
recording) has the receive times stamped on its clock: local time plus the measured offset.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from orderflow.adapters.binance.trading.events import ExecType, Order, OrderStatus, OrderUpdate
from orderflow.core.events import BookDelta, BookSnapshot, Trade
from orderflow.core.orders import OrderIntent, OrderRequest, OrderType, Side, TimeInForce
from orderflow.engine.paper import FeedOptions, PaperEngine
from orderflow.execution import sim_layout as SL
from orderflow.execution.order_state import ManagedOrder, NoJournal, OrderState
from orderflow.execution.orders import OrderManager
from orderflow.execution.sim_exchange import Fill as SimFill
from orderflow.execution.sim_exchange import OrderReport, SimulatedExchange

if TYPE_CHECKING:
    from orderflow.adapters.binance.feed import BinanceFeed
    from orderflow.config import Config
    from orderflow.core.instruments import Instrument
    from orderflow.execution.sim_config import SimConfig
    from orderflow.journal import Journal
    from orderflow.models.serving import EnsembleModel, HotReloader

log = logging.getLogger(__name__)

NS = 1_000_000_000
BIG = 2**62
REPLAY_SKEW_NS = 60 * NS  # a venue clock further than this from the local one is a replay's
SIM_LEVELS = 20  # book levels the simulated exchange matches on: the stored book's, as the backtester's
_FINAL = {"FILLED": OrderStatus.FILLED, "CANCELED": OrderStatus.CANCELED,
          "REJECTED": OrderStatus.REJECTED, "EXPIRED": OrderStatus.EXPIRED}  # fmt: skip
_EXEC = {OrderStatus.FILLED: ExecType.TRADE, OrderStatus.CANCELED: ExecType.CANCELED,
         OrderStatus.REJECTED: ExecType.REJECTED, OrderStatus.EXPIRED: ExecType.EXPIRED}  # fmt: skip


class _SimOrder:
    """One order the venue accepted: its intent and what has been reported filled of it."""

    __slots__ = ("filled", "intent", "quote", "sim_id")

    def __init__(self, sim_id: int, intent: OrderIntent) -> None:
        self.sim_id, self.intent = sim_id, intent
        self.filled = 0.0  # base units reported filled so far
        self.quote = 0.0  # their quote value


class SimulatedVenue:
    """The simulated exchange behind the order manager's client interface (module docstring).

    ``cfg``: the simulated exchange's config (``backtest.exchange`` with its venue); ``decision_ns``:
    the time from a decision to its request leaving (ns); ``quote_asset``: the asset fees are paid in.
    The engine sets :attr:`now` (the decision time of the current event, ns) and feeds
    :meth:`on_book` / :meth:`on_trade`; :meth:`release` hands out the updates due by a time."""

    def __init__(self, cfg: SimConfig, venue: str, symbol: str, decision_ns: int, quote_asset: str,
                 levels: int = SIM_LEVELS) -> None:  # fmt: skip
        self.ex = SimulatedExchange(cfg, levels=levels)
        self.venue, self.symbol = venue, symbol.upper()
        self.decision_ns = int(decision_ns)
        self.quote_asset = quote_asset
        self.now = 0
        self._book: tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._synced = False  # the exchange has the last book (applied lazily while no order is live)
        self._orders: dict[int, _SimOrder] = {}
        self._ids: dict[str, int] = {}  # client order id -> the exchange's order id
        self._fills: deque[SimFill] = deque()  # the inbox: answers waiting for their response time
        self._reports: deque[OrderReport] = deque()
        self._trade_id = 0
        self._next_cid = 0
        self.stats = {"orders": 0, "cancels": 0, "fills": 0, "reports": 0}

    # -- the order manager's client interface -------------------------------------------------------
    def next_client_id(self) -> str:
        """A client order id for an intent the manager makes itself (the engine names its own)."""
        self._next_cid += 1
        return f"dry-{self._next_cid}"

    def intent_params(self, intent: OrderIntent) -> OrderIntent:
        """The request as sent: the intent itself (no exchange filters: the simulated exchange checks
        what it would refuse on its face, as in the backtester)."""
        return intent

    async def send_intent(self, intent: OrderIntent) -> Order:
        """Hand the order to the simulated exchange, leaving at :attr:`now` plus the decision latency;
        the answer acknowledges it (``NEW``): its fills and final state come through :meth:`release`."""
        sim_id = len(self._orders) + 1
        self._orders[sim_id] = _SimOrder(sim_id, intent)
        self._ids[intent.client_order_id] = sim_id
        req = OrderRequest(sim_id, intent.side, intent.quantity, intent.reduce_only, intent.order_type,
                           intent.price, intent.time_in_force, post_only=intent.post_only,
                           stop_price=intent.stop_price)  # fmt: skip
        self._sync_book()
        self.ex.submit(req, self.now + self.decision_ns)
        self._collect()
        self.stats["orders"] += 1
        return self._order(sim_id, OrderStatus.NEW)

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Send the cancel of an order (it arrives after the entry latency); the answer is the order's
        state at the exchange now, its final report comes through :meth:`release`."""
        sim_id = self._ids[client_order_id]
        self.ex.cancel(sim_id, self.now + self.decision_ns)
        self._collect()
        self.stats["cancels"] += 1
        return await self.get_order(symbol, client_order_id=client_order_id)

    async def get_order(self, symbol: str, client_order_id: str) -> Order:
        """The order as the exchange holds it now (its fills may not have been released yet)."""
        sim_id = self._ids[client_order_id]
        rec = self.ex.order(sim_id)
        known = rec is not None and rec.status in OrderStatus.__members__  # not PENDING_NEW / UNKNOWN
        return self._order(sim_id, OrderStatus(rec.status) if rec is not None and known else OrderStatus.NEW)

    def _order(self, sim_id: int, status: OrderStatus) -> Order:
        o = self._orders[sim_id]
        it = o.intent
        return Order(self.venue, self.symbol, sim_id, it.client_order_id, it.side, it.order_type,
                     it.time_in_force, it.post_only, it.reduce_only, it.price, it.stop_price, it.quantity,
                     o.filled, o.quote, status, self.now)  # fmt: skip

    # -- market events ------------------------------------------------------------------------------
    def on_book(self, ts_event: int, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray,
                ask_sz: np.ndarray) -> None:  # fmt: skip
        """A book event at exchange time ``ts_event`` (top levels best first, NaN: no level). Applied at
        once while an order is live, else kept for the next order (the backtester's lazy book)."""
        self._book = (int(ts_event), bid_px.copy(), bid_sz.copy(), ask_px.copy(), ask_sz.copy())
        self._synced = False
        if self.ex.state.I[SL.I_NLIVE] > 0:
            self._sync_book()

    def on_trade(self, ts_event: int, price: float, size: float, aggressor: int) -> None:
        """A public trade at exchange time ``ts_event`` (``aggressor`` +1 buyer, -1 seller); it matters
        only while an order is live."""
        if self.ex.state.I[SL.I_NLIVE] > 0:
            self.ex.on_trade(int(ts_event), float(price), float(size), int(aggressor))
            self._collect()

    def finish(self) -> None:
        """The end of the market data: orders still on their way meet the last book (at their arrival
        time, or the book's when later), as at the end of a backtest."""
        if self._book is None:
            return
        ts, bp, bs, ap, asz = self._book
        nxt = int(self.ex.state.I[SL.I_NEXT_ARR])
        self.ex.on_book(max(nxt, ts) if nxt < BIG else ts, bp, bs, ap, asz)
        self._synced = True
        self._collect()

    def _sync_book(self) -> None:
        if self._synced or self._book is None:
            return
        ts, bp, bs, ap, asz = self._book
        self.ex.on_book(ts, bp, bs, ap, asz)
        self._synced = True
        self._collect()

    def _collect(self) -> None:
        self._fills.extend(self.ex.drain_fills(None))
        self._reports.extend(self.ex.drain_reports(None))

    # -- answers --------------------------------------------------------------------------------------
    def release(self, upto: int | None) -> list[OrderUpdate]:
        """The updates the strategy has received by ``upto`` (ns; None: all): every fill whose response
        time has come, then every final report, in the order the exchange made them. Non-final reports
        (acknowledgements, cancels in flight, a cancel of an order no longer open) change nothing the
        manager or the core keep, and are dropped."""
        out: list[OrderUpdate] = []
        due = (lambda ts: True) if upto is None else (lambda ts: ts <= upto)
        while self._fills and due(self._fills[0].ts_strategy):
            out.append(self._fill_update(self._fills.popleft()))
        while self._reports and due(self._reports[0].ts_strategy):
            r = self._reports.popleft()
            status = _FINAL.get(r.status)
            if status is not None and r.order_id in self._orders:
                out.append(self._report_update(r, status))
        return out

    def _fill_update(self, f: SimFill) -> OrderUpdate:
        o = self._orders[f.order_id]
        it = o.intent
        o.filled += f.qty
        o.quote += f.qty * f.price
        self._trade_id += 1
        self.stats["fills"] += 1
        return OrderUpdate(self.venue, self.symbol, f.ts_exchange, f.ts_strategy, f.order_id,
                           it.client_order_id, it.side, it.order_type, ExecType.TRADE,
                           OrderStatus.PARTIALLY_FILLED, it.price, it.quantity, o.filled, o.quote, f.price,
                           f.qty, f.fee, self.quote_asset, self._trade_id, f.maker, it.reduce_only, "",
                           "simulated")  # fmt: skip

    def _report_update(self, r: OrderReport, status: OrderStatus) -> OrderUpdate:
        o = self._orders[r.order_id]
        it = o.intent
        why = r.reason if status in (OrderStatus.REJECTED, OrderStatus.EXPIRED) else ""
        self.stats["reports"] += 1
        return OrderUpdate(self.venue, self.symbol, r.ts_exchange, r.ts_strategy, r.order_id,
                           it.client_order_id, it.side, it.order_type, _EXEC[status], status, it.price,
                           it.quantity, o.filled, o.quote, math.nan, 0.0, math.nan, "", -1, False,
                           it.reduce_only, why, "simulated")  # fmt: skip


class DryRunEngine(PaperEngine):
    """The paper engine with the simulated venue's fills (module docstring): market data from
    ``rest_url`` / ``ws_url`` (no credentials), orders to an in-process simulated exchange."""

    def __init__(
        self,
        cfg: Config,
        market: str,
        symbol: str,
        rest_url: str,
        ws_url: str,
        instrument: Instrument,
        model: EnsembleModel | None = None,  # None: AI score 0
        journal: Journal | None = None,
        on_stop: str = "close",
        clock: Any = None,  # receive times (ns); None: the local clock (on a replay's, see the module)
        reloader: HotReloader | None = None,
        feeds: FeedOptions | None = None,
    ) -> None:
        from orderflow.adapters.binance.common.signing import Credentials

        unused = Credentials.hmac("dry-run", "dry-run")  # never sent: the dry run has no trading client
        super().__init__(cfg, market, symbol, rest_url, ws_url, unused, instrument, model, journal=journal,
                         mode="paper", on_stop=on_stop, clock=clock or time.time_ns, reloader=reloader,
                         feeds=feeds)  # fmt: skip
        self._own_clock = clock is None
        self.depth_stream = ""  # the market's default diff stream (USD-M depth@0ms, as recorded)
        xcfg = cfg.backtest.exchange.model_copy(update={"venue": self.venue})
        decision_ns = int(cfg.backtest.decision_latency_us * 1000)
        self.sim = SimulatedVenue(xcfg, self.venue, self.symbol, decision_ns, self.instrument_quote)
        self._sim_row = np.empty(4 * SIM_LEVELS)
        self.clock_offset_ns = 0  # added to the local clock on a replay's clock
        self._settled = False

    def compile_kernels(self) -> None:
        """The paper engine's kernels and the simulated exchange's (a throwaway order on a tiny book)."""
        super().compile_kernels()
        ex = SimulatedExchange(self.sim.ex.cfg, levels=2)
        px, sz = np.array([100.0, 99.9]), np.ones(2)
        ex.on_book(1, px, sz, px + 0.2, sz)
        ex.submit(OrderRequest(1, Side.BUY, 1.0, False, OrderType.LIMIT, 99.9, TimeInForce.GTC), 1)
        ex.on_trade(2, 99.9, 5.0, -1)
        ex.cancel(1, 3)
        ex.on_book(10**9, px, sz, px + 0.2, sz)

    async def _before_start(self, ep: Any) -> None:
        """Ask the venue its time (the first request: a venue that does not answer fails the start at
        once, naming its URL), compile the kernels, then measure the venue's clock again and, on a
        replay's clock, stamp receive times on it."""
        await self._venue_offset(ep)
        self.compile_kernels()  # before the measurement that counts: compiling may take seconds
        offset = await self._venue_offset(ep)
        if self._own_clock and abs(offset) > REPLAY_SKEW_NS:
            self.clock_offset_ns = offset
            self.clock = lambda: time.time_ns() + offset
            log.warning("dry run: the venue's clock is %.0f s from the local one (a replay): receive times "
                        "are stamped on the venue's clock", offset / NS)  # fmt: skip

    async def _venue_offset(self, ep: Any) -> int:
        """The venue's clock minus the local one (ns), from one ``GET time``; ConnectionError naming the
        URL when the venue does not answer."""
        import aiohttp

        from orderflow.adapters.binance.common.errors import BinanceError
        from orderflow.adapters.binance.market import BinanceRest

        t0 = time.time_ns()
        try:
            async with BinanceRest(ep, max_retries=0, timeout_s=10.0) as rest:
                server_ms = await rest.server_time()
        except (aiohttp.ClientError, OSError, TimeoutError, BinanceError, ValueError, KeyError) as e:
            why = " ".join(str(e).split()) or type(e).__name__
            raise ConnectionError(f"no market data from {self.rest_url}: {why}") from None
        return server_ms * 1_000_000 - (t0 + time.time_ns()) // 2

    async def _trade_on_venue(self, feed: BinanceFeed, ep: Any, minutes: float) -> None:
        """No client, no recovery (no account: the run starts flat), no user data stream: the order
        manager sends to the simulated venue."""
        self.orders = OrderManager(self.sim, self.journal if self.journal is not None else NoJournal(),
                                   self.cfg.execution, run_id=self.run_id or 0, clock=time.time_ns,
                                   on_fill=self._on_fill, on_done=self._on_done, fee_rate=self.taker_fee,
                                   on_report=self._on_report)  # fmt: skip
        self.orders.stream_reports = True  # fills and final states come as updates, at their time
        self._started = True
        await self._trade(feed, ep, None, minutes)

    # -- the paper engine's hooks ------------------------------------------------------------------------
    def _event_time(self, ev: Trade | BookDelta | BookSnapshot) -> int:
        """The backtester's decision time: the receive time, or the exchange time when later."""
        return max(ev.ts_recv, ev.ts_event)

    def _on_venue_trade(self, ev: Trade) -> None:
        self.sim.on_trade(ev.ts_event, ev.price, ev.size, int(ev.aggressor))

    def _before_decision(self, ev: BookDelta | BookSnapshot, t: int) -> None:
        """The book to the simulated exchange, then the answers due by ``t`` to the order manager (and
        through it to the core), before the strategy's turn."""
        assert self.feed is not None  # the events come from it
        L = SIM_LEVELS
        row = self._sim_row
        self.feed.book(self.symbol).top_into(L, row)
        self.sim.now = t
        self.sim.on_book(ev.ts_event, row[:L], row[L : 2 * L], row[2 * L : 3 * L], row[3 * L :])
        self._apply(self.sim.release(t))

    def _apply(self, updates: list[OrderUpdate]) -> None:
        assert self.orders is not None  # made before the event loop
        for u in updates:
            self.orders.on_update(u)

    def _deliver_in_flight(self) -> None:
        """The end of the run, as the backtester's: orders on their way meet the last book, and every
        answer is delivered."""
        self.sim.finish()
        self._apply(self.sim.release(None))
        self._settled = True

    async def _settle_in_flight(self) -> None:
        self._deliver_in_flight()

    async def _await_closing_fill(self) -> None:
        self._deliver_in_flight()

    async def _after_stop(self) -> None:
        if not self._settled:
            self._deliver_in_flight()

    def _on_done(self, mo: ManagedOrder) -> None:
        """As the paper engine's; a post-only limit the simulated exchange refused is counted."""
        super()._on_done(mo)
        ours = mo.client_order_id in self._core_ids
        if ours and mo.state is OrderState.REJECTED and "post_only" in mo.reason:
            self.stats.post_only_rejected += 1
