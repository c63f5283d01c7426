"""The paper/live driver: Binance-protocol market data -> book -> streaming features -> ensemble (ONNX,
stream state) -> the trading core (``TradingSession``: strategy, risk, portfolio) -> orders through the
Binance trading client -> fills from the user data stream back into the core.

Against the local exchange (``orderflow paper`` with no URLs starts one in-process on the simulator)
fills are simulated by the backtester's matching rules; against Binance (``orderflow live``) they are
real. Only the clock (wall time), the data source (the WebSocket feed) and the exchange client differ
from the backtester: the per-event logic is ``engine.core``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orderflow.core.events import BookDelta, BookSnapshot, GapEvent, Trade
from orderflow.core.instruments import Instrument
from orderflow.engine.session import TradingSession

log = logging.getLogger(__name__)

NS = 1_000_000_000
TERMINAL = {"FILLED", "CANCELED", "REJECTED", "EXPIRED"}
_CID = re.compile(r"-(\d+)$")


@dataclass
class PaperStats:
    book_events: int = 0
    trades: int = 0
    valid_rows: int = 0
    gaps: int = 0
    orders_sent: int = 0
    order_errors: list[str] = field(default_factory=list)
    fills: int = 0
    tick_to_order_us: list[float] = field(default_factory=list)  # book event received -> order handed on
    event_us: list[float] = field(default_factory=list)  # per book event: book, features, model, core
    model_version: str | None = None
    recovered: list[str] = field(default_factory=list)  # what start-up reconciliation changed
    kill_mode: str = "off"
    stop_reason: str = ""


class PaperEngine:
    """One symbol's engine over a Binance-protocol venue (``rest_url``/``ws_url``)."""

    def __init__(
        self,
        cfg: Any,  # orderflow.config.Config
        market: str,
        symbol: str,
        rest_url: str,
        ws_url: str,
        credentials: Any,
        instrument: Instrument,
        model: Any | None = None,  # EnsembleModel or None (AI score 0)
        client_prefix: str = "of",
        journal: Any | None = None,  # orderflow.journal.Journal: intents, reports, fills, positions, equity
        mode: str = "paper",
        on_stop: str = "close",  # "close" the position when the run ends, or "keep" it
    ) -> None:
        from orderflow.features.engine import FeatureConfig, StreamingFeatureEngine

        self.cfg = cfg
        self.market = market
        self.symbol = symbol.upper()
        self.rest_url, self.ws_url = rest_url, ws_url
        self.credentials = credentials
        self.instrument = instrument
        fcfg: FeatureConfig = cfg.features.model_copy(update={"tick_size": instrument.tick_size})
        if market == "spot" and fcfg.futures:
            fcfg = fcfg.model_copy(update={"futures": False})
        self.features = StreamingFeatureEngine(fcfg)
        self.names = list(self.features.names())
        self.levels = fcfg.levels
        self.model = model
        self.state = model.new_state() if model is not None else None
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
        self.session = TradingSession(instrument, venue, xcfg.taker_rate, 0.0, xcfg.funding_interval_ns,
                                      cfg.strategy, cfg.risk, cfg.backtest)  # fmt: skip
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
        self._sides: dict[int, int] = {}
        self._stop = asyncio.Event()

    def _oid(self, client_id: str) -> int | None:
        m = _CID.search(client_id)
        return int(m.group(1)) if m and client_id.startswith(self.prefix + "-") else None

    async def run(self, minutes: float) -> PaperStats:
        from orderflow.data.binance.endpoints import BinanceEndpoints, FeedConfig
        from orderflow.data.binance.feed import BinanceFeed
        from orderflow.execution.binance import BinanceTradingClient, TradingClientConfig, UserDataStream

        ep = BinanceEndpoints(market=self.market, rest_base_url=self.rest_url, ws_base_url=self.ws_url)
        fc = FeedConfig(market=self.market, depth_stream="depth@100ms")
        feed = BinanceFeed(self.market, [self.symbol], ep, fc)
        tcfg = TradingClientConfig(market=self.market, rest_base_url=self.rest_url, ws_base_url=self.ws_url,
                                   client_id_prefix=self.prefix)  # fmt: skip
        if self.journal is not None:
            from orderflow.models.registry import code_version

            self.run_id = self.journal.start_run(self.mode, self.venue, [self.symbol], time.time_ns(),
                                                 code_version=code_version())  # fmt: skip
            if self.model is not None:
                self.journal.record_model_version(time.time_ns(), str(self.model.source), "loaded",
                                                  self.model.schema_hash, run_id=self.run_id)  # fmt: skip
            self.prefix = f"{self.prefix}{self.run_id}"  # client ids unique across runs of one journal
            tcfg = tcfg.model_copy(update={"client_id_prefix": self.prefix})
        reason = "completed"
        async with BinanceTradingClient(tcfg, self.credentials) as client:
            self.client = client
            await self.recover()
            async with UserDataStream(client) as stream:
                fills = asyncio.create_task(self._user_events(stream))
                market = asyncio.create_task(self._market(feed))
                control = asyncio.create_task(self._control())
                self._install_signals()
                stop = asyncio.create_task(self._stop.wait())
                tasks = [market, control, stop]
                await asyncio.wait(tasks, timeout=minutes * 60.0, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                for t in (market, control):
                    t.cancel()
                await feed.stop()
                if self.on_stop == "close" and self.kill_mode != "halt":
                    req = self.session.close_position()
                    if req is not None:
                        await self._send(req, time.time_ns())
                        await asyncio.sleep(1.0)  # let the closing fill arrive on the user stream
                fills.cancel()
        reason = self.stop_reason
        if self.journal is not None and self.run_id is not None:
            self._journal_position(time.time_ns())
            self.journal.stop_run(self.run_id, time.time_ns(), reason)
        self.stats.kill_mode, self.stats.stop_reason = self.kill_mode, reason
        return self.stats

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
        """Poll the kill switch; reduce_only refuses entries, halt refuses everything and stops."""
        from orderflow.engine.control import read_kill
        from orderflow.risk import kernels as RK
        from orderflow.risk.layout import KILL_MODES

        while True:
            mode = read_kill()
            if mode != self.kill_mode:
                log.warning("kill switch: %s -> %s", self.kill_mode, mode)
                self.kill_mode = mode
                RK.set_kill(self.session.RS, KILL_MODES.index(mode))
                if self.journal is not None:
                    code = float(KILL_MODES.index(mode))
                    self.journal.record_risk_event(time.time_ns(), "kill_switch", code, 0.0,
                                                   f"kill switch set to {mode}", run_id=self.run_id,
                                                   symbol=self.symbol)  # fmt: skip
                if mode == "halt":
                    self.request_stop("kill switch: halt")
                    return
            await asyncio.sleep(0.5)

    async def recover(self) -> None:
        """Start-up reconciliation with the exchange: every order the journal holds as open or unresolved
        (an earlier run that died) is resolved by its client order id, never re-sent: its final state
        and any fill the journal missed are recorded; an order the exchange never received is marked
        rejected. Then the exchange's position (futures) is adopted by the trading core, whose exits
        manage it from here."""
        from orderflow.execution.binance import UnknownOrder

        if self.journal is not None:
            for o in self.journal.open_orders():
                if o.symbol != self.symbol:
                    continue
                now = time.time_ns()
                try:
                    x = await self.client.get_order(self.symbol, client_order_id=o.client_order_id)
                except UnknownOrder:
                    why = "not received by the exchange (found at start-up)"
                    self.journal.apply_report(o.client_order_id, "rejected", 0, None, None, now, reason=why)
                    self.stats.recovered.append(f"{o.client_order_id}: not received")
                    continue
                have = sum(float(f.qty) for f in self.journal.fills(client_order_id=o.client_order_id))
                if x.filled_qty > have + 1e-12:  # fills the dead run never booked
                    self.journal.record_fill(o.client_order_id, f"recovered-{x.filled_qty:g}", x.avg_price,
                                             x.filled_qty - have, now, fee=self.taker_fee * x.filled_quote,
                                             liquidity="taker")  # fmt: skip
                status = str(x.status.value if hasattr(x.status, "value") else x.status)
                avg = x.avg_price if x.filled_qty > 0 else None
                self._journal_report_values(o.client_order_id, status, x.filled_qty, avg, x.order_id, now)
                self.stats.recovered.append(f"{o.client_order_id}: {status.lower()} {x.filled_qty:g}")
        if self.market == "usdm":
            pos = (await self.client.positions()).get(self.symbol)
            if pos is not None and pos.quantity != 0:
                from orderflow.strategy import kernels as SKN

                P = self.session.P
                P[0], P[1] = pos.quantity, pos.entry_price  # position, average entry price
                SKN.on_position(self.session.G, self.session.H, self.session.SC, np.int64(time.time_ns()),
                                float(pos.quantity), float(pos.entry_price))  # fmt: skip
                self.stats.recovered.append(f"adopted position {pos.quantity:g} @ {pos.entry_price:g}")

    def _journal_report_values(self, cid: str, status: str, filled: float, avg: float | None, oid: int,
                               ts: int) -> None:  # fmt: skip
        from orderflow.journal import JournalError

        try:
            self.journal.apply_report(cid, status, filled, avg, oid, ts, reason="recovered at start-up")
        except JournalError as e:
            log.info("journal: recovered report for %s not applied: %s", cid, e)

    def _journal_position(self, ts: int) -> None:
        P = self.session.P
        self.journal.upsert_position(
            self.run_id, self.symbol, P[0], P[1] if P[0] else None, P[2], P[3], P[4], ts
        )

    async def _market(self, feed: Any) -> None:
        async for ev in feed.events():
            if isinstance(ev, Trade) and ev.symbol == self.symbol:
                self.features.on_trade(ev.ts_event, ev.price, ev.size, int(ev.aggressor))
                self.session.on_trade(ev.ts_recv)
                self.stats.trades += 1
            elif isinstance(ev, (BookDelta, BookSnapshot)) and ev.symbol == self.symbol:
                await self._on_book(feed, ev)
            elif isinstance(ev, GapEvent):
                self.features.on_gap(ev.ts_event, ev.reason)
                self.stats.gaps += 1

    async def _on_book(self, feed: Any, ev: Any) -> None:
        t0 = time.perf_counter_ns()
        feed.book(self.symbol).top_into(self.levels, self._row)
        L = self.levels
        bp, bs, ap, asz = self._row[:L], self._row[L : 2 * L], self._row[2 * L : 3 * L], self._row[3 * L :]
        x = self.features.on_book(ev.ts_event, bp, bs, ap, asz)
        valid = bool(self.features.valid)
        self.stats.book_events += 1
        self.stats.valid_rows += valid
        p_dn = p_up = 0.0
        if self.model is not None:
            probs = self.model.predict(x[self.model_cols].astype(np.float32), self.state)
            p_dn, p_up = float(probs[0, 0]), float(probs[0, 2])
        c = self.col
        req = self.session.on_book(ev.ts_recv, ev.ts_event, valid, x[c["ofi"]], p_dn, p_up, x[c["rv"]],
                                   x[c["vs"]], x[c["ts"]], x[c["vp"]], bp.copy(), bs.copy(), ap.copy(),
                                   asz.copy())  # fmt: skip
        dt = (time.perf_counter_ns() - t0) / 1e3
        self.stats.event_us.append(dt)
        if self.journal is not None and ev.ts_recv - self._last_eq >= 10 * NS:  # equity every 10 s
            mid = self.session.Df[1]
            if math.isfinite(mid):
                from orderflow.execution.portfolio import equity

                self._last_eq = ev.ts_recv
                self.journal.record_equity(self.run_id, ev.ts_recv, equity(self.session.P, mid),
                                           exposure=abs(self.session.P[0]) * mid)  # fmt: skip
        if req is not None:
            self.stats.tick_to_order_us.append(dt)
            await self._send(req, ev.ts_recv)

    async def _send(self, req: Any, t: int) -> None:
        from orderflow.execution.binance import BinanceTradingError

        cid = f"{self.prefix}-{req.order_id}"
        self._sides[req.order_id] = req.side
        self.stats.orders_sent += 1
        if self.journal is not None:  # the intent is on disk before the order leaves
            from orderflow.journal import OrderIntent

            purpose = "exit" if req.reduce_only else "entry"
            self.journal.record_intent(OrderIntent(cid, self.run_id, self.symbol, req.side, req.qty, t,
                                                   order_type="market", tif="ioc",
                                                   reduce_only=req.reduce_only, purpose=purpose))  # fmt: skip
            self.journal.mark_sent(cid, time.time_ns())
        try:
            await self.client.place_order(self.symbol, "BUY" if req.side > 0 else "SELL", "MARKET",
                                          round(req.qty, 9), reduce_only=req.reduce_only and
                                          self.market != "spot", client_order_id=cid,
                                          ref_price=None)  # fmt: skip
        except BinanceTradingError as e:
            self.stats.order_errors.append(f"{cid}: {type(e).__name__}: {e}")
            log.warning("order %s failed: %s", cid, e)
            self.session.on_report(req.order_id, True)
            if self.journal is not None:
                self.journal.apply_report(cid, "rejected", 0, None, None, time.time_ns(), reason=str(e))

    async def _user_events(self, stream: Any) -> None:
        from orderflow.execution.binance import OrderUpdate

        while True:
            ev = await stream.get()
            if not isinstance(ev, OrderUpdate) or ev.symbol != self.symbol:
                continue
            oid = self._oid(ev.client_order_id)
            if oid is None:
                continue
            status = str(ev.status.value if hasattr(ev.status, "value") else ev.status)
            if ev.last_fill_qty > 0:
                qty, px = ev.last_fill_qty, ev.last_fill_price
                fee = ev.fee if math.isfinite(ev.fee) else self.taker_fee * qty * px
                side = int(ev.side)  # core.events.Side: +1 buy, -1 sell
                self.session.on_fill(ev.ts_recv, side, qty, px, fee, ev.is_maker)
                self.stats.fills += 1
                if self.journal is not None:
                    self.journal.record_fill(ev.client_order_id, ev.trade_id, px, qty, ev.ts_recv, fee=fee,
                                             fee_asset=ev.fee_asset or None,
                                             liquidity="maker" if ev.is_maker else "taker")  # fmt: skip
            if self.journal is not None:
                self._journal_report(ev, status)
            if status in TERMINAL:
                self.session.on_report(oid, True)
                if self.journal is not None:
                    self._journal_position(ev.ts_recv)

    def _journal_report(self, ev: Any, status: str) -> None:
        from orderflow.journal import JournalError

        avg = ev.filled_quote / ev.filled_qty if ev.filled_qty > 0 else None
        try:
            self.journal.apply_report(ev.client_order_id, status, ev.filled_qty, avg, ev.order_id, ev.ts_recv)
        except JournalError as e:  # a stale report (the stream after REST recovery): already recorded
            log.info("journal: report for %s not applied: %s", ev.client_order_id, e)


def render_paper(stats: PaperStats, session: TradingSession, seconds: float) -> str:
    """A readable account of what the engine did."""
    res = session.result()
    rej = sorted(res.rejections.items(), key=lambda kv: -kv[1])
    lat = np.array(stats.tick_to_order_us)
    lines = [
        f"ran {seconds:.0f} s: {stats.book_events:,} book events ({stats.valid_rows:,} with valid features), "
        f"{stats.trades:,} trades, {stats.gaps} gaps",
        f"orders sent {stats.orders_sent}, fills {stats.fills}, round trips {len(res.trades)}, "
        f"position {session.P[0]:g}",
        f"net PnL {res.trades['net_pnl'].sum() if len(res.trades) else 0.0:,.2f} (fees "
        f"{res.trades['fees'].sum() if len(res.trades) else 0.0:,.2f})",
        "rejections: " + (", ".join(f"{k} {v:,}" for k, v in rej) or "none"),
    ]
    if lat.size:
        p50, p99 = np.percentile(lat, [50, 99])
        lines.append(f"tick-to-order: p50 {p50:.0f} us, p99 {p99:.0f} us over {lat.size} orders")
    if stats.model_version:
        lines.append(f"model: {stats.model_version}")
    if stats.kill_mode != "off":
        lines.append(f"kill switch: {stats.kill_mode}")
    if stats.recovered:
        lines.append("recovered at start-up: " + "; ".join(stats.recovered))
    for e in stats.order_errors[:5]:
        lines.append(f"order error: {e}")
    return "\n".join(lines)
