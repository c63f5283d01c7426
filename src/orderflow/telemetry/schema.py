"""The telemetry a paper or live engine publishes, one versioned schema for every reader.

Every event is a frozen msgspec struct tagged by its ``kind`` and carries the run id, the engine's
wall clock ``ts_ns`` (integer nanoseconds) and, for per-symbol events, the symbol. Frames on the wire
are msgpack: ``encode(event)`` / ``decode(frame)``. A reader that meets a frame of a newer
``SCHEMA_VERSION`` it does not know refuses it by name rather than guessing.

Two delivery classes (``DURABLE`` and ``CONFLATED``):

- durable events (decisions, orders, fills, positions, equity, risk, model outputs and outcomes, feed
  health, latency, trades aggregated per interval, heartbeats) are never dropped: the publisher
  queues every one;
- conflated events (the book's top levels, process resources) keep only the latest
  value per ``(kind, symbol)`` between two drains, so a burst of book updates costs one frame.

A raw decision frame, decoded::

    {"kind": "decision", "v": 1, "run_id": 7, "ts_ns": 1733140800123456789, "symbol": "BTCUSDT",
     "fused": 0.41, "ofi_score": 0.55, "ai_score": 0.31, "confidence": 0.62, "quality": 0.9,
     "ev": 0.0004, "cost": 0.0006, "action": "refused", "gate": "ev"}
"""

from __future__ import annotations

import msgspec

SCHEMA_VERSION = 1


class SchemaError(ValueError):
    """A frame this reader cannot decode (unknown version or kind, or a malformed body)."""


class _Event(msgspec.Struct, frozen=True, tag_field="kind", kw_only=True):
    run_id: int
    ts_ns: int
    v: int = SCHEMA_VERSION


class Heartbeat(_Event, frozen=True, tag="heartbeat"):
    """The engine is alive; ``state`` is its component state (running, degraded, halted...)."""

    state: str
    mode: str = ""
    symbols: tuple[str, ...] = ()
    pid: int = 0
    interval_s: float = 1.0


class RunStarted(_Event, frozen=True, tag="run_started"):
    mode: str
    venue: str
    symbols: tuple[str, ...]
    pid: int
    journal_url: str = ""
    metrics_url: str = ""


class RunStopped(_Event, frozen=True, tag="run_stopped"):
    reason: str


class BookTop(_Event, frozen=True, tag="book"):
    """The top ``N`` levels after an update, best first; ``update_id`` is the exchange's."""

    symbol: str
    update_id: int
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]


class TradeAgg(_Event, frozen=True, tag="trades"):
    """Market trades aggregated over ``[start_ns, ts_ns]``."""

    symbol: str
    start_ns: int
    count: int
    buy_qty: float
    sell_qty: float
    vwap: float
    last: float
    high: float
    low: float


class Decision(_Event, frozen=True, tag="decision"):
    """One signal and its verdict; the same row the journal's ``signals`` table keeps."""

    symbol: str
    fused: float
    ofi_score: float
    ai_score: float
    confidence: float
    quality: float
    ev: float
    cost: float
    action: str
    gate: str


class OrderUpdate(_Event, frozen=True, tag="order"):
    symbol: str
    client_order_id: str
    side: str
    order_type: str
    state: str
    qty: float
    price: float | None = None
    filled_qty: float = 0.0
    avg_price: float | None = None
    reason: str = ""


class FillEvent(_Event, frozen=True, tag="fill"):
    symbol: str
    client_order_id: str
    trade_id: str
    side: str
    price: float
    qty: float
    fee: float
    liquidity: str = ""
    slippage: float = 0.0  # against the decision's mid, a fraction of it; adverse is positive


class PositionEvent(_Event, frozen=True, tag="position"):
    symbol: str
    qty: float
    avg_price: float | None
    realized_pnl: float
    unrealized_pnl: float
    mark_price: float | None = None


class EquityPoint(_Event, frozen=True, tag="equity"):
    equity: float
    balance: float
    unrealized_pnl: float
    exposure: float
    day_pnl: float = 0.0
    drawdown: float = 0.0


class RuleState(msgspec.Struct, frozen=True):
    rule: str
    value: float
    limit: float
    refusals: int = 0


class RiskState(_Event, frozen=True, tag="risk"):
    """Every risk rule's current value against its limit, the breaker and the kill switch."""

    rules: tuple[RuleState, ...]
    breaker: str
    kill_switch: str


class ModelOutput(_Event, frozen=True, tag="model"):
    """One prediction: class probabilities (down, flat, up) and the model version that made it."""

    symbol: str
    version: str
    p_down: float
    p_flat: float
    p_up: float
    horizon_ns: int
    latency_us: float = 0.0


class Outcome(_Event, frozen=True, tag="outcome"):
    """The realised label of the prediction made at ``pred_ts_ns``, once its horizon has passed."""

    symbol: str
    pred_ts_ns: int
    label: int  # -1 down, 0 flat, 1 up
    ret: float
    p_down: float
    p_flat: float
    p_up: float
    ev: float = 0.0


class FeedHealth(_Event, frozen=True, tag="feed"):
    """A symbol's feed: lag of the last event, and counters since the run started."""

    symbol: str
    lag_ms: float
    gaps: int
    resyncs: int
    reconnects: int
    watchdog_trips: int
    synced: bool
    book_updates: int = 0
    trades: int = 0


class Latency(_Event, frozen=True, tag="latency"):
    """One measured latency, in microseconds: ``what`` is ``tick_to_order`` (book event received to
    order sent) or ``ack`` (order sent to the exchange's acknowledgement)."""

    what: str
    symbol: str
    us: float


class Resources(_Event, frozen=True, tag="resources"):
    pid: int
    cpu_pct: float
    rss_bytes: int
    net_sent_bytes: int
    net_recv_bytes: int
    threads: int


class ControlAction(_Event, frozen=True, tag="control"):
    """A control action taken on the run (kill switch set), with who and why."""

    action: str
    value: str
    who: str
    why: str


class ApiHealth(_Event, frozen=True, tag="api"):
    """The exchange API's answers so far: HTTP 429 (a rate limit hit) and 418 (an IP ban) counts, the
    rate limiter's waits, and the ``Retry-After`` of the last one."""

    http_429: int
    http_418: int
    waits: int = 0
    retry_after_s: float = 0.0


class Reconcile(_Event, frozen=True, tag="reconcile"):
    """The engine's position (what the journal holds) against the exchange's, read back from it."""

    symbol: str
    engine_qty: float
    exchange_qty: float


class FeatureDrift(_Event, frozen=True, tag="drift"):
    """Population stability index of each model input against its training reference."""

    symbol: str
    psi: tuple[tuple[str, float], ...]
    samples: int = 0
    reference: str = ""


Event = (
    Heartbeat
    | RunStarted
    | RunStopped
    | BookTop
    | TradeAgg
    | Decision
    | OrderUpdate
    | FillEvent
    | PositionEvent
    | EquityPoint
    | RiskState
    | ModelOutput
    | Outcome
    | FeedHealth
    | Latency
    | Resources
    | ControlAction
    | ApiHealth
    | Reconcile
    | FeatureDrift
)

EVENT_TYPES: tuple[type[_Event], ...] = Event.__args__
KINDS: dict[str, type[_Event]] = {t.__struct_config__.tag: t for t in EVENT_TYPES}  # type: ignore[misc]
CONFLATED: frozenset[str] = frozenset({"book", "resources"})
DURABLE: frozenset[str] = frozenset(KINDS) - CONFLATED

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Event)


class _Probe(msgspec.Struct):
    kind: str = ""
    v: int = 0


_probe = msgspec.msgpack.Decoder(_Probe)


def kind_of(event: _Event) -> str:
    return type(event).__struct_config__.tag  # type: ignore[return-value]


def conflation_key(event: _Event) -> tuple[str, str]:
    """The key under which a conflated event replaces its predecessor."""
    return kind_of(event), getattr(event, "symbol", "")


def encode(event: _Event) -> bytes:
    return _encoder.encode(event)


def decode(frame: bytes) -> Event:
    """Decode one frame; :class:`SchemaError` names the kind or version it cannot read."""
    try:
        return _decoder.decode(frame)
    except msgspec.DecodeError as exc:
        try:
            probe = _probe.decode(frame)
        except msgspec.DecodeError:
            raise SchemaError(f"telemetry frame is not a msgpack map: {exc}") from None
        if probe.v > SCHEMA_VERSION:
            raise SchemaError(
                f"telemetry frame of kind {probe.kind!r} has schema v{probe.v}; "
                f"this reader knows v{SCHEMA_VERSION}"
            ) from None
        if probe.kind not in KINDS:
            raise SchemaError(f"unknown telemetry kind {probe.kind!r}") from None
        raise SchemaError(f"malformed telemetry frame of kind {probe.kind!r}: {exc}") from None


def to_builtins(event: _Event) -> dict[str, object]:
    """A JSON-ready dict of the event, its ``kind`` included (what the dashboard sends a browser)."""
    out = msgspec.to_builtins(event)
    assert isinstance(out, dict)
    return out
