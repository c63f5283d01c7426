"""Prometheus metrics of one engine, derived from the telemetry it publishes.

:class:`EngineMetrics` is a :class:`~orderflow.telemetry.bus.Publisher` observer: it runs on the
publisher's thread and turns each drained event into metric updates, so the trading thread pays
nothing for metrics. :func:`serve` exposes the registry on ``/metrics`` (loopback by default).

Names follow Prometheus conventions: the ``orderflow_`` prefix, base units (seconds, ratios; money in
the quote asset, positions in the base asset), ``_total`` on counters. Labels are bounded: symbol,
gate, action, rule, side, order type, liquidity and a reject reason clipped to a short code; never an
order id. Counters the engine keeps itself (book updates, gaps, refusals by rule) arrive as running
totals and are advanced by their increase.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    start_http_server,
)

from orderflow.telemetry import schema as S

KILL_SWITCH_STATES = ["off", "reduce_only", "halt"]
# order latency buckets, seconds: 20 us .. 100 ms for tick-to-order, 1 ms .. 10 s for acknowledgements
TICK_TO_ORDER_BUCKETS = (2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2.5e-2, 1e-1)
ACK_BUCKETS = (1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
INFERENCE_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2)
SLIPPAGE_BUCKETS = (-1e-3, -5e-4, -2e-4, -1e-4, 0.0, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3)
BRIER_WINDOW = 500


def reason_label(reason: str) -> str:
    """A bounded label for a reject reason: its first token (an error code or a word), at most 32 chars."""
    token = reason.strip().split(" ", 1)[0].strip(":;,.").lower() if reason.strip() else "none"
    return token[:32] or "none"


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = r = registry or CollectorRegistry()
        if process:
            ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes...
        self.run_info = Info("orderflow_run", "The run: id, mode, venue and symbols.", registry=r)
        self.heartbeat = Gauge(
            "orderflow_heartbeat_timestamp_seconds", "Wall time of the last heartbeat.", registry=r
        )
        self.state = Enum(
            "orderflow_engine_state",
            "The engine's component state.",
            states=["starting", "running", "degraded", "halted", "stopped", "unknown"],
            registry=r,
        )
        sym = ["symbol"]
        self.book_updates = Counter(
            "orderflow_book_updates_total", "Order book updates applied.", sym, registry=r
        )
        self.trades = Counter("orderflow_trades_total", "Market trades received.", sym, registry=r)
        self.gaps = Counter("orderflow_feed_gaps_total", "Update-id gaps detected.", sym, registry=r)
        self.resyncs = Counter(
            "orderflow_feed_resyncs_total", "Book resyncs from a snapshot.", sym, registry=r
        )
        self.reconnects = Counter("orderflow_feed_reconnects_total", "Stream reconnects.", sym, registry=r)
        self.watchdog = Counter(
            "orderflow_feed_watchdog_trips_total", "Stale-feed watchdog trips.", sym, registry=r
        )
        self.feed_lag = Gauge("orderflow_feed_lag_seconds", "Receive lag of the last event.", sym, registry=r)
        self.feed_synced = Gauge("orderflow_feed_synced", "1 when the book is in sync.", sym, registry=r)
        self.decisions = Counter(
            "orderflow_decisions_total",
            "Signals by the gate that decided them.",
            ["symbol", "gate", "action"],
            registry=r,
        )
        self.refusals = Counter(
            "orderflow_risk_refusals_total", "Risk refusals by rule.", ["rule"], registry=r
        )
        self.risk_usage = Gauge(
            "orderflow_risk_usage_ratio",
            "Each risk rule's current value over its limit.",
            ["rule"],
            registry=r,
        )
        self.orders = Counter(
            "orderflow_orders_total", "Orders placed.", ["symbol", "side", "type"], registry=r
        )
        self.rejects = Counter(
            "orderflow_order_rejects_total", "Orders rejected, by reason.", ["symbol", "reason"], registry=r
        )
        self.fills = Counter(
            "orderflow_fills_total", "Fills received.", ["symbol", "side", "liquidity"], registry=r
        )
        self.fees = Counter("orderflow_fees_total", "Fees paid, in the quote asset.", sym, registry=r)
        self.slippage = Histogram(
            "orderflow_slippage_ratio",
            "Fill price against the decision's mid (adverse > 0).",
            sym,
            buckets=SLIPPAGE_BUCKETS,
            registry=r,
        )
        self.tick_to_order = Histogram(
            "orderflow_tick_to_order_seconds",
            "Book event received to order sent.",
            sym,
            buckets=TICK_TO_ORDER_BUCKETS,
            registry=r,
        )
        self.ack = Histogram(
            "orderflow_order_ack_seconds",
            "Order sent to the exchange's acknowledgement.",
            sym,
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.position = Gauge("orderflow_position", "Signed position, in the base asset.", sym, registry=r)
        self.unrealized = Gauge("orderflow_unrealized_pnl", "Unrealised PnL, quote asset.", sym, registry=r)
        self.equity = Gauge("orderflow_equity", "Account equity, in the quote asset.", registry=r)
        self.day_pnl = Gauge(
            "orderflow_day_pnl", "PnL since the start of the UTC day, quote asset.", registry=r
        )
        self.drawdown = Gauge("orderflow_drawdown_ratio", "Drawdown from the equity high.", registry=r)
        self.exposure = Gauge("orderflow_exposure", "Gross notional exposure, quote asset.", registry=r)
        self.kill_switch = Enum(
            "orderflow_kill_switch", "The kill switch's state.", states=KILL_SWITCH_STATES, registry=r
        )
        self.inference = Histogram(
            "orderflow_model_inference_seconds",
            "Model inference time per prediction.",
            sym,
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.predictions = Counter("orderflow_model_predictions_total", "Model predictions.", sym, registry=r)
        self.brier = Gauge(
            "orderflow_model_brier_score",
            f"Brier score of the last {BRIER_WINDOW} realised predictions.",
            sym,
            registry=r,
        )
        self._totals: dict[tuple[str, ...], int] = {}
        self._brier: dict[str, deque[float]] = {}
        self._seen_orders: set[str] = set()
        self._lock = threading.Lock()

    def _advance(self, counter: Counter, labels: tuple[str, ...], total: int) -> None:
        key = (counter._name, *labels)
        last = self._totals.get(key, 0)
        child = counter.labels(*labels)  # exists from the first report: a rate of nothing is 0, not absent
        if total > last:
            child.inc(total - last)
        self._totals[key] = max(total, last)

    def observe_all(self, events: Iterable[S._Event]) -> None:
        with self._lock:
            for e in events:
                self._observe(e)

    def observe(self, event: S._Event) -> None:
        with self._lock:
            self._observe(event)

    def _observe(self, e: S._Event) -> None:
        if isinstance(e, S.Heartbeat):
            self.heartbeat.set(e.ts_ns / 1e9)
            self.state.state(e.state if e.state in self.state._states else "unknown")
        elif isinstance(e, S.RunStarted):
            from orderflow import __version__

            self.run_info.info(
                {
                    "run_id": str(e.run_id),
                    "mode": e.mode,
                    "venue": e.venue,
                    "symbols": ",".join(e.symbols),
                    "version": __version__,
                }
            )
        elif isinstance(e, S.Decision):
            self.decisions.labels(e.symbol, e.gate, e.action).inc()
        elif isinstance(e, S.OrderUpdate):
            if e.client_order_id not in self._seen_orders:
                self._seen_orders.add(e.client_order_id)
                self.orders.labels(e.symbol, e.side.lower(), e.order_type.lower()).inc()
            if e.state == "rejected":
                self.rejects.labels(e.symbol, reason_label(e.reason)).inc()
        elif isinstance(e, S.FillEvent):
            self.fills.labels(e.symbol, e.side.lower(), e.liquidity or "unknown").inc()
            self.fees.labels(e.symbol).inc(max(e.fee, 0.0))
            self.slippage.labels(e.symbol).observe(e.slippage)
        elif isinstance(e, S.PositionEvent):
            self.position.labels(e.symbol).set(e.qty)
            self.unrealized.labels(e.symbol).set(e.unrealized_pnl)
        elif isinstance(e, S.EquityPoint):
            self.equity.set(e.equity)
            self.day_pnl.set(e.day_pnl)
            self.drawdown.set(e.drawdown)
            self.exposure.set(e.exposure)
        elif isinstance(e, S.RiskState):
            for rule in e.rules:
                self._advance(self.refusals, (rule.rule,), rule.refusals)
                if rule.limit > 0:
                    self.risk_usage.labels(rule.rule).set(rule.value / rule.limit)
            if e.kill_switch in KILL_SWITCH_STATES:
                self.kill_switch.state(e.kill_switch)
        elif isinstance(e, S.FeedHealth):
            labels = (e.symbol,)
            self._advance(self.book_updates, labels, e.book_updates)
            self._advance(self.trades, labels, e.trades)
            self._advance(self.gaps, labels, e.gaps)
            self._advance(self.resyncs, labels, e.resyncs)
            self._advance(self.reconnects, labels, e.reconnects)
            self._advance(self.watchdog, labels, e.watchdog_trips)
            self.feed_lag.labels(e.symbol).set(e.lag_ms / 1e3)
            self.feed_synced.labels(e.symbol).set(1.0 if e.synced else 0.0)
        elif isinstance(e, S.Latency):
            hist = self.tick_to_order if e.what == "tick_to_order" else self.ack if e.what == "ack" else None
            if hist is not None:
                hist.labels(e.symbol).observe(e.us / 1e6)
        elif isinstance(e, S.ModelOutput):
            self.predictions.labels(e.symbol).inc()
            if e.latency_us > 0:
                self.inference.labels(e.symbol).observe(e.latency_us / 1e6)
        elif isinstance(e, S.Outcome):
            y = (1.0 if e.label == -1 else 0.0, 1.0 if e.label == 0 else 0.0, 1.0 if e.label == 1 else 0.0)
            score = (e.p_down - y[0]) ** 2 + (e.p_flat - y[1]) ** 2 + (e.p_up - y[2]) ** 2
            window = self._brier.setdefault(e.symbol, deque(maxlen=BRIER_WINDOW))
            window.append(score)
            self.brier.labels(e.symbol).set(sum(window) / len(window))
        elif isinstance(e, S.ControlAction) and e.action == "kill_switch" and e.value in KILL_SWITCH_STATES:
            self.kill_switch.state(e.value)


def serve(metrics: EngineMetrics, port: int = 0, host: str = "127.0.0.1") -> tuple[WSGIServer, int]:
    """Serve ``/metrics`` on ``host:port`` (port 0 picks a free one) from a daemon thread.

    Returns the server (``shutdown()`` stops it) and the bound port.
    """
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, server.server_port
