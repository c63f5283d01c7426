"""The paper/live driver: Binance-protocol market data -> book -> streaming features -> ensemble (ONNX,
stream state) -> the trading core (``TradingSession``: strategy, risk, portfolio) -> orders through the
Binance trading client -> fills from the user data stream back into the core.

Against the local exchange (``orderflow paper`` with no URLs starts one in-process on the simulator)
fills are simulated by the backtester's matching rules; against Binance (``orderflow live``) they are
real. Only the clock (wall time), the data source (the WebSocket feed) and the exchange client differ
from the backtester: the per-event logic is ``engine.core``.

This module is the wiring and the event loop. Orders are placed, tracked, cancelled and recovered by the
:class:`~orderflow.execution.orders.OrderManager` (an order's route: :meth:`PaperEngine._send` ->
``OrderManager.submit`` -> ``BinanceTradingClient.intent_params`` / ``send_intent`` / ``signed_payload``);
start-up recovery is :mod:`orderflow.engine.recovery`, the journal's signal rows
:mod:`orderflow.engine.signals`, its predictions and their outcomes :mod:`orderflow.engine.predictions`,
the kill switch :mod:`orderflow.engine.control` and the account of a run :mod:`orderflow.engine.report`.

With a journal the engine also records, per order, the decision's mid (the intent's ``ref_price``: the
core's reference for the order, its parent's mid for a slice), which the journal copies onto the
order's fills, and each funding payment: the core's, when its booked funding changes at a book event,
and the exchange's, from the user data stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from orderflow.core.events import BookDelta, BookSnapshot, GapEvent, Liquidation, MarkPrice, Trade
from orderflow.core.instruments import Instrument
from orderflow.core.orders import CancelRequest, Fill, OrderIntent, OrderRequest, OrderType
from orderflow.engine import core as CO
from orderflow.engine.recovery import recover_at_start
from orderflow.engine.report import PaperStats
from orderflow.engine.session import TradingSession
from orderflow.execution.order_state import ManagedOrder, NoJournal
from orderflow.execution.orders import OrderManager
from orderflow.execution.portfolio import P_FUNDING as PF_FUNDING
from orderflow.execution.portfolio import P_POS as PF_POS

if TYPE_CHECKING:  # imported when a run starts (the engine module stays light to import)
    from orderflow.adapters.binance.common.signing import Credentials
    from orderflow.adapters.binance.feed import BinanceFeed
    from orderflow.adapters.binance.userstream import UserDataStream
    from orderflow.config import Config
    from orderflow.engine.context_feed import ContextFeed
    from orderflow.engine.control import Control
    from orderflow.engine.predictions import PredictionLog
    from orderflow.engine.signals import SignalJournal
    from orderflow.engine.telemetry import PaperTap
    from orderflow.journal import Journal
    from orderflow.models.serving import EnsembleModel, HotReloader

log = logging.getLogger(__name__)

NS = 1_000_000_000


class RunStartError(RuntimeError):
    """The run could not start (the venue refused the credentials, the journal failed, ...); the run is
    closed as failed in the journal, with this message as its reason."""


@dataclass(frozen=True)
class FeedOptions:
    """What a :class:`PaperEngine` reads besides the book and the trades, and how."""

    ws_routes: str = "combined"  # USD-M WebSocket layout: "split" on Binance since 2026-04-23
    announced_funding: bool = False  # USD-M: book the rate the markPrice stream announces
    fear_greed_url: str | None = None  # context features: alternative.me's base (None: cfg.data's)
    context_poll_s: float = 10.0  # context features: REST polling interval of the statistics


class PaperEngine:
    """One symbol's engine over a Binance-protocol venue (``rest_url``/``ws_url``)."""

    def __init__(
        self,
        cfg: Config,
        market: str,
        symbol: str,
        rest_url: str,
        ws_url: str,
        credentials: Credentials,
        instrument: Instrument,
        model: EnsembleModel | None = None,  # None: AI score 0
        client_prefix: str = "of",
        journal: Journal | None = None,  # intents, reports, fills, positions, equity
        mode: str = "paper",
        on_stop: str = "close",  # "close" the position when the run ends, or "keep" it
        clock: Callable[[], int] = time.time_ns,  # event receive times (ns); a ManualClock in lockstep
        reloader: HotReloader | None = None,  # follow the registry's swaps
        snapshot_on_connect: bool = False,  # fetch book snapshots at connect (the lockstep driver's need)
        feeds: FeedOptions | None = None,  # stream layout, announced funding, context polling
    ) -> None:
        from orderflow.features.config import FeatureConfig
        from orderflow.features.engine import StreamingFeatureEngine

        self.cfg = cfg
        self.market = market
        feeds = feeds or FeedOptions()
        ws_routes = feeds.ws_routes
        self.announced_funding = feeds.announced_funding and market != "spot"
        self.symbol = symbol.upper()
        self.rest_url, self.ws_url = rest_url, ws_url
        from orderflow.core.instruments import split_symbol

        self.instrument_quote = split_symbol(self.symbol)[1]  # the margin asset funding is paid in
        if ws_routes not in ("combined", "split") or (ws_routes == "split" and market == "spot"):
            raise ValueError(f"ws_routes {ws_routes!r}: use combined, or split on usdm")
        self.ws_routes = ws_routes
        self.credentials = credentials
        self.instrument = instrument
        fcfg: FeatureConfig = cfg.features.model_copy(update={"tick_size": instrument.tick_size})
        if market == "spot" and fcfg.futures:
            fcfg = fcfg.model_copy(update={"futures": False})
        # the market context group (features.context): streams and REST polls feed it (ContextFeed)
        self.context_feed: ContextFeed | None = None
        fg_url = feeds.fear_greed_url
        self.fear_greed_url = fg_url if fg_url is not None else cfg.data.fear_greed_url
        self.context_poll_s = float(feeds.context_poll_s)
        kinds = None
        if fcfg.context is not None:
            if market == "spot":
                raise ValueError("features.context reads USD-M context (funding, open interest...): "
                                 "not available on spot; set features.context: null")  # fmt: skip
            from orderflow.engine.context_feed import live_kinds

            kinds = live_kinds(fcfg.context, fear_greed=bool(self.fear_greed_url))
        self.features = StreamingFeatureEngine(fcfg, context_kinds=kinds)
        self._fcfg = fcfg
        self.names = list(self.features.names())
        self.levels = fcfg.levels
        self.reloader = reloader
        if reloader is not None and model is None:
            model = reloader.model  # the version it serves now (its feature names are the engine's map)
        self.model = model
        self.state = model.new_state() if model is not None else None
        self.hot = reloader.stream() if reloader is not None else None
        self.model_version: str | None = reloader.current_version if reloader is not None else None
        if model is not None:
            missing = [n for n in model.manifest.feature_names if n not in self.names]
            if missing:
                raise ValueError(
                    f"model {model.source} needs features the engine does not make: {missing[:5]}"
                )
            self.model_cols = np.array([self.names.index(n) for n in model.manifest.feature_names])
        s = cfg.strategy
        self.col = {k: self.names.index(v) for k, v in (("ofi", s.ofi_feature), ("rv", s.rv_feature),
                                                       ("vs", "vol_state"), ("ts", "trend_state"),
                                                       ("vp", "vol_pct"))}  # fmt: skip
        venue = "binance-spot" if market == "spot" else "binance-usdm"
        xcfg = cfg.backtest.exchange.model_copy(update={"venue": venue})
        # funding as the backtester books it: the configured rate at every funding time, unless the
        # exchange announced the rate of that funding (on_funding_announced: the core's funding schedule);
        # what the exchange charged is read back and reported apart
        funding = xcfg.funding_rate if xcfg.perpetual else 0.0
        self.session = TradingSession(instrument, venue, xcfg.taker_rate, funding, xcfg.funding_interval_ns,
                                      cfg.strategy, cfg.risk, cfg.backtest, execution=cfg.execution,
                                      maker_fee=xcfg.maker_rate)  # fmt: skip
        self.taker_fee = xcfg.taker_rate
        self.prefix = client_prefix
        self.journal = journal
        self.mode = mode
        if on_stop not in ("close", "keep"):
            raise ValueError(f"on_stop {on_stop!r}: use close or keep")
        self.on_stop = on_stop
        self.kill_mode = "off"
        self.stop_reason = "completed"
        self.venue = venue
        self.run_id: int | None = None
        self._last_eq = 0
        self.stats = PaperStats()
        self._row = np.empty(4 * self.levels)
        self.orders: OrderManager | None = None  # the live order path, once the client is up
        self._core_ids: dict[str, int] = {}  # client order id -> the core's order number
        self._stop = asyncio.Event()
        self._sending: asyncio.Future[None] | None = None  # the order being sent, if any
        self.clock = clock
        self.snapshot_on_connect = snapshot_on_connect
        self.busy = False  # True while a book event's order is being sent (the lockstep driver waits)
        self.depth_stream = "depth@100ms"  # the diff stream the feed subscribes to
        self.feed: BinanceFeed | None = None
        self.user_stream: UserDataStream | None = None
        self._last_t = 0
        self._last_vs = float("nan")
        self.signals: SignalJournal | None = None  # the journal's decision rows (with a journal)
        self.telemetry_url = cfg.monitor.telemetry_url()  # telemetry and metrics: the monitor section
        self.tap: PaperTap | None = None  # telemetry and metrics, when published
        self.predictions: PredictionLog | None = None  # sampled predictions (a model, a journal or telemetry)
        self.prediction_sample_s = 1.0  # exchange time between two sampled predictions
        self.prediction_inputs_every = 10  # one prediction row in this many carries the model's inputs
        self._funding = 0.0  # the core's booked funding (paid) already journaled
        self._funding_rate = funding
        self._funding_sched = 0  # funding times booked at announced rates, already journaled

    async def run(self, minutes: float) -> PaperStats:
        """Trade for ``minutes`` (wall time), then stop by the stop policy. A run that fails is closed
        in the journal with the reason ``failed at start: ...`` (before the user data stream is up:
        e.g. a wrong API secret) or ``failed: ...``, never left open; a failure at start raises
        :class:`RunStartError` (one line), a later one re-raises the error."""
        self._started = False
        self._adopted: tuple[float, float] | None = None  # the exchange's position at start (futures)
        try:
            return await self._run(minutes)
        except Exception as e:
            cause = " ".join(f"{type(e).__name__}: {e}".split())
            when = "failed" if self._started else "failed at start"
            if self.journal is not None and self.run_id is not None:
                try:
                    self.journal.stop_run(self.run_id, time.time_ns(), f"{when}: {cause}")
                except Exception as je:  # the journal itself is what failed: nowhere to record it
                    log.warning("journal: run %s not closed as failed: %s", self.run_id, je)
            if self.tap is not None:
                self.tap.close(f"{when}: {cause}")
                self.tap = None
            if self._started:
                raise
            run = f"{self.mode} run" + ("" if self.run_id is None else f" {self.run_id}")
            raise RunStartError(f"{run} {when}: {cause}") from e

    async def _run(self, minutes: float) -> PaperStats:
        from orderflow.adapters.binance.common.endpoints import BinanceEndpoints, FeedConfig
        from orderflow.adapters.binance.feed import BinanceFeed

        ep = BinanceEndpoints(market=self.market, rest_base_url=self.rest_url, ws_base_url=self.ws_url,
                              ws_routes=self.ws_routes)  # fmt: skip
        await self._before_start(ep)
        self.compile_kernels()
        ctx = self._fcfg.context is not None
        fc = FeedConfig(market=self.market, depth_stream=self.depth_stream,
                        mark_price=self.announced_funding or ctx, liquidations=ctx,
                        snapshot_on_connect=self.snapshot_on_connect)  # fmt: skip
        feed = self.feed = BinanceFeed(self.market, [self.symbol], ep, fc, clock=self.clock)
        if self.journal is not None:
            from orderflow.models.registry import code_version

            self.run_id = self.journal.start_run(self.mode, self.venue, [self.symbol], time.time_ns(),
                                                 code_version=code_version())  # fmt: skip
            if self.model is not None:
                what = self.model_version if self.model_version is not None else str(self.model.source)
                self.journal.record_model_version(time.time_ns(), what, "loaded", self.model.schema_hash,
                                                  run_id=self.run_id)  # fmt: skip
            self.prefix = f"{self.prefix}{self.run_id}"  # client ids unique across runs of one journal
            from orderflow.engine.signals import SignalJournal

            self.signals = SignalJournal(self.journal, self.run_id, self.symbol, self.cfg.strategy.ofi_scale)
        if self.telemetry_url is not None:
            self._start_telemetry()
        if self.model is not None and (self.journal is not None or self.tap is not None):
            self._start_predictions()
        await self._trade_on_venue(feed, ep, minutes)
        reason = self.stop_reason
        if self._last_t:
            self.session.finish(self._last_t, self._last_vs)
        if self.predictions is not None:
            self.predictions.flush(self.clock())
        if self.journal is not None and self.run_id is not None:
            if self.signals is not None:
                self.signals.flush(self.clock())
            self._journal_position(time.time_ns())
            self.journal.stop_run(self.run_id, time.time_ns(), reason)
        self.stats.kill_mode, self.stats.stop_reason = self.kill_mode, reason
        if self.tap is not None:
            self.tap.close(reason)
            self.tap = None
        return self.stats

    async def _before_start(self, ep: Any) -> None:
        """What the run needs from the venue before it starts: nothing more here (the trading client
        checks the venue, its clock and the credentials when it opens)."""

    async def _trade_on_venue(self, feed: BinanceFeed, ep: Any, minutes: float) -> None:
        """Open the trading client (orders through the :class:`OrderManager`), adopt what the exchange
        holds (start-up recovery) and trade for ``minutes`` with fills from the user data stream."""
        from orderflow.adapters.binance.common.config import TradingClientConfig
        from orderflow.adapters.binance.trading.client import BinanceTradingClient
        from orderflow.adapters.binance.userstream import UserDataStream

        tcfg = TradingClientConfig(market=self.market, rest_base_url=self.rest_url, ws_base_url=self.ws_url,
                                   client_id_prefix=self.prefix, ws_routes=self.ws_routes)  # fmt: skip
        async with BinanceTradingClient(tcfg, self.credentials) as client:
            # journal stamps in wall time (the event clock may be a lockstep ManualClock)
            self.orders = OrderManager(client, self.journal if self.journal is not None else NoJournal(),
                                       self.cfg.execution, run_id=self.run_id or 0, clock=time.time_ns,
                                       on_fill=self._on_fill, on_done=self._on_done,
                                       fee_rate=self.taker_fee, on_report=self._on_report)  # fmt: skip
            await self.recover()
            async with UserDataStream(client, clock=self.clock) as stream:
                self.user_stream = stream
                self.orders.stream_reports = True  # fills and final states from the stream from now on
                self._started = True
                fills = asyncio.create_task(self._user_events(stream))
                try:
                    await self._trade(feed, ep, client, minutes)
                finally:
                    fills.cancel()

    async def _trade(self, feed: BinanceFeed, ep: Any, client: Any, minutes: float) -> None:
        """The event loop for ``minutes`` (wall time) or until a stop, then the stop policy: the feed
        stops, the order being sent is awaited, and with on_stop=close what is in flight is settled and
        the position closed. ``client``: the trading client the monitor reads (None: no account)."""
        ctx = self._fcfg.context is not None
        market = asyncio.create_task(self._market(feed))
        control = asyncio.create_task(self._control())
        monitor = asyncio.create_task(self._monitor(client))
        context = asyncio.create_task(self._context(ep)) if ctx else None
        self._install_signals()
        stop = asyncio.create_task(self._stop.wait())
        tasks = [market, control, stop]
        await asyncio.wait(tasks, timeout=minutes * 60.0, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        for t in (market, control, monitor, context):
            if t is not None:
                t.cancel()
        await feed.stop()
        if self._sending is not None and not self._sending.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._sending), 30.0)
        if self.on_stop == "close":
            await self._settle_in_flight()
        if self.on_stop == "close" and self.kill_mode != "halt":
            req = self.session.close_position()
            if req is not None:
                if self.signals is not None:
                    self.signals.note(self.clock(), self.session, req, math.nan, 0.0, 0.0)
                await self._send(req, self.clock())
                await self._await_closing_fill()
        await self._after_stop()
        assert self.orders is not None  # made with the venue, before the event loop
        with contextlib.suppress(TimeoutError):  # an order whose outcome is unknown: resolved
            await asyncio.wait_for(self.orders.drain(), 10.0)

    async def _await_closing_fill(self) -> None:
        """Let the closing order's fill arrive on the user data stream."""
        await asyncio.sleep(1.0)

    async def _after_stop(self) -> None:
        """After the stop policy, before the last unknown outcomes are resolved: nothing here (the
        exchange's reports arrive on the user data stream)."""

    def _start_telemetry(self) -> None:
        """Publish this run's telemetry (and serve its metrics); the run id is the journal's."""
        from orderflow.engine.telemetry import EngineTelemetry, PaperTap

        assert self.telemetry_url is not None
        run_id = self.run_id if self.run_id is not None else int(time.time())
        tele = EngineTelemetry(
            self.telemetry_url,
            run_id,
            mode=self.mode,
            venue=self.venue,
            symbols=(self.symbol,),
            metrics_port=self.cfg.monitor.metrics_port,
            metrics_host=self.cfg.monitor.metrics_host,
            journal_url=self.journal.url if self.journal is not None else "",
        )
        self.tap = PaperTap(tele, self)
        if self.signals is not None:
            self.signals.on_row = self.tap.decision
        if tele.metrics_url:
            log.warning("metrics: %s", tele.metrics_url)

    def _start_predictions(self) -> None:
        """Sample the model's predictions and resolve them (:mod:`orderflow.engine.predictions`): into
        the journal, and to the telemetry when it is published."""
        from orderflow.engine.outcomes import OutcomeTracker
        from orderflow.engine.predictions import PredictionLog

        assert self.model is not None
        version = self.model_version or str(getattr(self.model, "source", ""))
        tracker = OutcomeTracker(self.cfg.labels, sample_s=self.prediction_sample_s)
        names = list(self.model.manifest.feature_names)
        self.predictions = PredictionLog(tracker, self.symbol, version, names, self.model_cols,
                                         journal=self.journal, run_id=self.run_id,
                                         inputs_every=self.prediction_inputs_every,
                                         ts_ns=time.time_ns())  # fmt: skip
        if self.tap is not None:
            self.predictions.on_output = self.tap.model_output
            self.predictions.on_outcome = self.tap.outcome

    def compile_kernels(self) -> None:
        """Run the numba kernels (features, trading core) once on throwaway state before connecting,
        so that the first market event does not wait seconds for the compiler (on a fresh install)
        while the feed's watchdog counts."""
        from orderflow.features.engine import StreamingFeatureEngine

        fe = StreamingFeatureEngine(self._fcfg)
        s = TradingSession(self.instrument, self.venue, self.taker_fee, 0.0, 8 * 3600 * NS, self.cfg.strategy,
                           self.cfg.risk, self.cfg.backtest, capacity=16,
                           execution=self.cfg.execution)  # fmt: skip
        L, t = self.levels, 1_000_000_000
        px = 100.0 + self.instrument.tick_size * np.arange(1, L + 1)
        bp, ap, sz = 100.0 - (px - 100.0), px, np.ones(L)
        fe.on_trade(t, 100.0, 1.0, 1)
        fe.on_book(t, bp, sz, ap, sz)
        s.on_trade(t)
        s.on_book(t, t, False, 0.0, 0.0, 0.0, math.nan, math.nan, math.nan, math.nan, bp, sz, ap, sz)
        s.on_fill(t, 1, 1.0, 100.0, 0.0, False)
        s.on_report(1, True)
        s.close_position()
        t2 = t + 3600 * NS  # an hour on: the technical indicators' bars close, and the run's final equity
        fe.on_trade(t2, 100.0, 1.0, -1)
        fe.on_book(t2, bp, sz, ap, sz)
        s.finish(t2, 0.0)

    def _install_signals(self) -> None:
        """SIGTERM / SIGINT stop the run gracefully (the stop policy then applies)."""
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread, or no signals
                loop.add_signal_handler(sig, self.request_stop, f"signal {sig.name}")

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._stop.set()

    async def _control(self) -> None:
        """The kill switch (``engine.control``): reduce_only refuses entries, halt refuses everything and
        stops."""
        from orderflow.engine.control import watch_kill_switch

        await watch_kill_switch(self.kill_mode, self._on_kill, run_id=self.run_id)

    def _on_kill(self, control: Control) -> bool:
        """The kill switch moved (the stricter of the global and this run's file): tell the risk engine,
        journal it with who set it and why; False (stop) on halt."""
        from orderflow.risk import kernels as RK
        from orderflow.risk.layout import KILL_MODES

        mode = control.mode
        log.warning(
            "kill switch: %s -> %s%s",
            self.kill_mode,
            mode,
            f" ({control.who}: {control.why})" if control.who else "",
        )
        self.kill_mode = mode
        RK.set_kill(self.session.RS, KILL_MODES.index(mode))
        if self.journal is not None:
            by = (
                f" by {control.who}: {control.why}"
                if control.who
                else (f": {control.why}" if control.why else "")
            )
            self.journal.record_risk_event(time.time_ns(), "kill_switch", float(KILL_MODES.index(mode)), 0.0,
                                           f"kill switch set to {mode}{by}", run_id=self.run_id,
                                           symbol=self.symbol)  # fmt: skip
        if self.tap is not None:
            self.tap.kill(control)
        if mode == "halt":
            self.request_stop("kill switch: halt")
            return False
        return True

    async def _monitor(self, client: Any) -> None:
        """Every second, the periodic state if no book event published it (a silent feed shows as
        stale). Every ``monitor.reconcile_s``: publish the API's 429/418 counts and, on a venue with
        positions, the exchange's position against the engine's (skipped while an order is in flight,
        whose fill may have reached one side only). Telemetry only: a failure here is logged, never
        fatal. With no ``client`` (no account: a dry run) only the periodic state."""
        from orderflow.adapters.binance.common.venues import caps
        from orderflow.telemetry import schema as S

        every = self.cfg.monitor.reconcile_s
        last = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            tap = self.tap
            if tap is None:
                continue
            tap.idle(time.time_ns())  # the state goes on while the feed is silent
            if client is None or every <= 0 or time.monotonic() - last < every:
                continue
            last = time.monotonic()
            st = client.limiter.stats
            lim = client.limiter
            retry = max(0.0, (max(lim.blocked_until_ns, lim.banned_until_ns) - lim.clock()) / 1e9)
            tap.tele.emit(S.ApiHealth, time.time_ns(), http_429=int(st.get("http_429", 0)),
                          http_418=int(st.get("http_418", 0)), waits=int(st.get("waits", 0)),
                          retry_after_s=retry)  # fmt: skip
            if not caps(self.market).positions or self.orders is None or self.orders.open_orders(self.symbol):
                continue
            if self._sending is not None and not self._sending.done():
                continue
            try:
                pos = (await client.positions()).get(self.symbol)
            except Exception as exc:  # a monitoring read: the trading path reports its own errors
                log.warning("position reconciliation: %s", exc)
                continue
            if self.orders.open_orders(self.symbol) or (
                self._sending is not None and not self._sending.done()
            ):
                continue  # an order went out while we asked
            tap.tele.emit(S.Reconcile, time.time_ns(), symbol=self.symbol,
                          engine_qty=float(self.session.position),
                          exchange_qty=float(pos.quantity) if pos is not None else 0.0)  # fmt: skip

    async def recover(self) -> None:
        """Start-up reconciliation with the exchange (``engine.recovery``); what it changed goes to the
        run's statistics."""
        assert self.orders is not None  # made with the client
        rec = await recover_at_start(self.orders, self.market, self.symbol, self.session)
        self.stats.recovered.extend(rec.notes)
        self._adopted = rec.adopted

    def _journal_position(self, ts: int) -> None:
        # exact decimals from the journaled fills (the core's floats carry rounding error); funding:
        # the core books it paid-positive, the journal stores it received-positive
        funding = -float(self.session.P[PF_FUNDING])
        assert self.journal is not None and self.run_id is not None  # a journal has a run from the start
        self.journal.sync_position(
            self.run_id,
            self.symbol,
            ts,
            funding=funding,
            quote_asset=self.instrument_quote,
            opening=self._adopted,
        )

    def _event_time(self, ev: Trade | BookDelta | BookSnapshot) -> int:
        """The time (ns) the core decides at and books an event at: its receive time."""
        return ev.ts_recv

    def _on_venue_trade(self, ev: Trade) -> None:
        """A public trade, for a venue that matches in-process: nothing here (the exchange matches)."""

    def _before_decision(self, ev: BookDelta | BookSnapshot, t: int) -> None:
        """A book event before the strategy's turn at time ``t``, for a venue that matches in-process:
        nothing here (fills arrive on the user data stream as the exchange reports them)."""

    async def _market(self, feed: BinanceFeed) -> None:
        async for ev in feed.events():
            if isinstance(ev, Trade) and ev.symbol == self.symbol:
                self.features.on_trade(ev.ts_event, ev.price, ev.size, int(ev.aggressor))
                self._on_venue_trade(ev)
                self.session.on_trade(self._event_time(ev))
                self.stats.trades += 1
                if self.tap is not None:
                    self.tap.trade(ev.ts_recv, ev.price, ev.size, int(ev.aggressor) > 0)
            elif isinstance(ev, (BookDelta, BookSnapshot)) and ev.symbol == self.symbol:
                await self._on_book(feed, ev)
            elif isinstance(ev, MarkPrice) and ev.symbol == self.symbol:
                if self.announced_funding:  # r is the rate of the funding at T; the last before T stands
                    self.on_funding_announced(ev.next_funding_ns, ev.funding_rate)
                if self.context_feed is not None:
                    self.context_feed.on_event(ev)
                self.stats.mark_prices += 1
            elif isinstance(ev, Liquidation) and self.context_feed is not None:
                self.context_feed.on_event(ev)
            elif isinstance(ev, GapEvent):
                self.features.on_gap(ev.ts_event, ev.reason)
                self.stats.gaps += 1
                if not self.stats.invalid_since_ns:  # a second gap before re-warming extends the first
                    self.stats.invalid_since_ns = ev.ts_recv

    async def _context(self, ep: Any) -> None:
        """Poll the REST context series the features read (engine.context_feed) until cancelled."""
        from orderflow.adapters.binance.context import ContextRest, FearGreedClient
        from orderflow.adapters.binance.market import BinanceRest
        from orderflow.engine.context_feed import ContextFeed

        assert self._fcfg.context is not None
        async with BinanceRest(ep, clock=self.clock) as rest:
            fg = FearGreedClient(self.fear_greed_url) if self.fear_greed_url else None
            try:
                feed = ContextFeed(self.features.on_context, self._fcfg.context, self.symbol,
                                   ContextRest(rest, clock=self.clock), fg, poll_s=self.context_poll_s,
                                   clock=self.clock)  # fmt: skip
                self.context_feed = feed
                await feed.run()
            finally:
                if fg is not None:
                    await fg.close()

    async def _on_book(self, feed: BinanceFeed, ev: BookDelta | BookSnapshot) -> None:
        t0 = time.perf_counter_ns()
        feed.book(self.symbol).top_into(self.levels, self._row)
        L = self.levels
        bp, bs, ap, asz = self._row[:L], self._row[L : 2 * L], self._row[2 * L : 3 * L], self._row[3 * L :]
        x = self.features.on_book(ev.ts_event, bp, bs, ap, asz)
        valid = bool(self.features.valid)
        self.stats.book_events += 1
        self.stats.valid_rows += valid
        if self.stats.invalid_since_ns:
            if valid:
                self.stats.rewarm_s.append((ev.ts_recv - self.stats.invalid_since_ns) / NS)
                self.stats.invalid_since_ns = 0
            else:
                self.stats.gap_invalid_events += 1
        p_dn = p_fl = p_up = 0.0
        t_model = time.perf_counter_ns()
        if self.hot is not None:  # a registry alias: the served version may change between events
            version, probs = self.hot.update(x[self.model_cols])
            if version != self.model_version:
                self._on_new_version(version, ev.ts_recv)
            p_dn, p_fl, p_up = float(probs[0, 0]), float(probs[0, 1]), float(probs[0, 2])
        elif self.model is not None:
            probs = self.model.predict(x[self.model_cols].astype(np.float32), self.state)
            p_dn, p_fl, p_up = float(probs[0, 0]), float(probs[0, 1]), float(probs[0, 2])
        infer_us = (time.perf_counter_ns() - t_model) / 1e3
        c = self.col
        t = self._event_time(ev)
        self._before_decision(ev, t)
        req = self.session.on_book(t, ev.ts_event, valid, x[c["ofi"]], p_dn, p_up, x[c["rv"]],
                                   x[c["vs"]], x[c["ts"]], x[c["vp"]], bp.copy(), bs.copy(), ap.copy(),
                                   asz.copy())  # fmt: skip
        dt = (time.perf_counter_ns() - t0) / 1e3
        self.stats.event_us.append(dt)
        self._last_t, self._last_vs = t, float(x[c["vs"]])
        if self.journal is not None and t - self._last_eq >= 10 * NS:  # equity every 10 s
            mid = self.session.mid
            if math.isfinite(mid):
                from orderflow.execution.portfolio import equity

                self._last_eq = t
                assert self.run_id is not None  # a journal has a run from the start
                self.journal.record_equity(self.run_id, t, equity(self.session.P, mid),
                                           exposure=abs(self.session.position) * mid)  # fmt: skip
        if self.signals is not None:
            self.signals.note(t, self.session, req, float(x[c["ofi"]]), p_dn, p_up)
        if req is not None:
            self.stats.tick_to_order_us.append(dt)
            self.busy = True
            try:
                # shielded: a stop that cancels this task must not cut an order between its journaled
                # intent and the exchange's answer (the stop waits for it instead)
                self._sending = asyncio.ensure_future(self._send(req, t))
                await asyncio.shield(self._sending)
            finally:
                self.busy = False
        # after the order has gone out: never between a book event and its order
        if self.predictions is not None:
            cid = f"{self.prefix}-{req.order_id}" if isinstance(req, OrderRequest) else None
            self.predictions.on_book(t, ev.ts_event, self.session, x, (p_dn, p_fl, p_up), cid,
                                     infer_us, valid)  # fmt: skip
        if self.journal is not None and self.session.P[PF_FUNDING] != self._funding:
            self._journal_funding(t)
        if self.tap is not None:
            uid = ev.update_id if isinstance(ev, BookSnapshot) else ev.last_update_id
            t2o = dt if req is not None else None
            self.tap.book(ev.ts_recv, uid, bp, bs, ap, asz, t2o)

    def on_funding_announced(self, funding_ns: int, rate: float, mark: float = float("nan")) -> None:
        """The exchange announced the rate of the funding at ``funding_ns`` (exchange time, ns): the
        markPrice stream's ``r`` for its next funding time ``T``, or ``GET /fapi/v1/premiumIndex``'s
        ``lastFundingRate`` / ``nextFundingTime``. The core books that rate then instead of the
        configured constant (:meth:`TradingSession.set_funding`); a repeated announcement for the same
        time replaces the rate, so the last one before the funding time is booked. ``mark``: the mark
        price to book it at (NaN: the mid at the time). Ignored on spot."""
        if self.market == "spot" or not math.isfinite(rate):
            return
        self.session.set_funding(int(funding_ns), float(rate), float(mark))

    def _journal_funding(self, t: int) -> None:
        """The core booked a funding payment at this book event: journal it (received positive), with
        the rate it booked (the announced one when the core's schedule booked it)."""
        assert self.journal is not None and self.run_id is not None  # a journal has a run from the start
        booked = float(self.session.P[PF_FUNDING])
        paid, self._funding = booked - self._funding, booked
        rate = self._funding_rate
        n_sched = int(self.session.D[CO.D_NFUND_SCHED])
        if n_sched != self._funding_sched:
            self._funding_sched = n_sched
            rate = float(self.session.funding.rate[int(self.session.D[CO.D_FUND_I]) - 1])
        self.journal.record_funding(self.run_id, t, self.symbol, -paid, "model",
                                    position=float(self.session.P[PF_POS]), mark=self.session.mid,
                                    rate=rate)  # fmt: skip

    def _on_new_version(self, version: str, t: int) -> None:
        """The registry's alias moved and the reloader swapped models (its state re-warmed on recent
        rows): record it."""
        log.warning("model: now serving version %s (was %s)", version, self.model_version)
        self.stats.model_swaps.append(f"{self.model_version} -> {version}")
        self.model_version = version
        self.stats.model_version = f"version {version}"
        if self.predictions is not None:
            self.predictions.set_version(version, t)
        if self.journal is not None:
            assert self.reloader is not None  # only a reloader's stream changes versions
            self.journal.record_model_version(t, version, "loaded", self.reloader.model.schema_hash,
                                              run_id=self.run_id, message="hot reload")  # fmt: skip

    async def _settle_in_flight(self) -> None:
        """Graceful stop with on_stop=close: cancel the resting limit of ours, and wait (briefly) for the
        final report of the order in flight so that its fills are booked before the position is closed."""
        oid = self.session.order_in_flight
        if oid < 0:
            return
        if self.session.resting_limit:
            await self._send(CancelRequest(oid), self.clock())
        for _ in range(150):
            if self.session.order_in_flight != oid:
                return
            await asyncio.sleep(0.02)
        log.warning("order %s-%d: no final report 3 s into the stop", self.prefix, oid)

    async def _send(self, req: OrderRequest | CancelRequest, t: int) -> None:
        """Hand the core's request (decided at event time ``t``) to the order manager: a new order as an
        intent (journaled before it leaves) under client order id ``{prefix}-{order number}``, or the
        cancel of the order in flight (its final report comes on the user data stream)."""
        assert self.orders is not None  # made with the client, before any market event
        cid = f"{self.prefix}-{req.order_id}"
        if isinstance(req, CancelRequest):
            if cid in self.orders.orders:
                await self.orders.cancel(cid)
            return
        self._core_ids[cid] = req.order_id
        self.stats.orders_sent += 1
        limit = req.order_type is OrderType.LIMIT
        # the core's decision mid for this order; a mid of two exchange prices has at most 9 decimals,
        # so rounding there drops the float tail of 0.5 * (bid + ask) and keeps the exact mid
        ref = round(float(self.session.Df[CO.DF_CUR_MID]), 9)
        intent = OrderIntent(cid, self.symbol, req.side, round(req.qty, 9), req.order_type,
                             req.price if limit else math.nan, req.time_in_force, post_only=req.post_only,
                             reduce_only=req.reduce_only and self.market != "spot",
                             purpose="exit" if req.reduce_only else "entry", ts_created=t,
                             ref_price=ref if math.isfinite(ref) and ref > 0 else math.nan)  # fmt: skip
        await self.orders.submit(intent)

    def _on_fill(self, mo: ManagedOrder, f: Fill) -> None:
        """A fill of one of this run's orders (the manager booked it in the journal): into the core. (A
        dead run's fills found at start-up are the journal's only: the core adopts the position.)"""
        if mo.client_order_id not in self._core_ids:
            return
        self.session.on_fill(f.ts, int(f.side), f.qty, f.price, f.fee, f.is_maker)
        self.stats.fills += 1
        if self.tap is not None:
            self.tap.fill(mo, f)

    def _on_report(self, mo: ManagedOrder, ts: int) -> None:
        """A state of one of this run's orders the manager journaled: to the telemetry."""
        if self.tap is not None and mo.client_order_id in self._core_ids:
            self.tap.order(mo, ts)

    def _on_done(self, mo: ManagedOrder) -> None:
        """One of our orders is final: the core's order in flight is done. One refused before the
        exchange had it is counted (a post-only limit the book moved through is a normal outcome);
        after the exchange's final report the journal's position is brought up to date."""
        from orderflow.adapters.binance.common.errors import PostOnlyRejected

        oid = self._core_ids.get(mo.client_order_id)
        if oid is None:  # a dead run's order, settled at start-up
            return
        self.session.on_report(oid, True)
        if isinstance(mo.error, PostOnlyRejected):
            self.stats.post_only_rejected += 1
        elif mo.error is not None:
            self.stats.order_errors.append(f"{mo.client_order_id}: {type(mo.error).__name__}: {mo.error}")
        elif self.journal is not None:
            self._journal_position(mo.ts_update)

    async def _user_events(self, stream: UserDataStream) -> None:
        """The user data stream: order updates to the order manager, the funding the exchange charged
        to the run's statistics."""
        from orderflow.adapters.binance.trading.events import AccountUpdate, OrderUpdate

        assert self.orders is not None  # made with the client, before the stream
        while True:
            ev = await stream.get()
            if isinstance(ev, AccountUpdate) and ev.reason == "FUNDING_FEE":
                paid = -sum(bc for a, bc in ev.changes if a == self.instrument_quote)
                self.stats.exchange_funding += paid
                self.stats.exchange_fundings += 1
                if self.journal is not None and self.run_id is not None:
                    self.journal.record_funding(self.run_id, ev.ts_event or ev.ts_recv, self.symbol, -paid,
                                                "exchange")  # fmt: skip
                log.info("funding charged by the exchange: %.6f (booked by the model: %.6f in all)", paid,
                         float(self.session.P[PF_FUNDING]))  # fmt: skip
            elif isinstance(ev, OrderUpdate) and ev.symbol == self.symbol:
                self.orders.on_update(ev)
