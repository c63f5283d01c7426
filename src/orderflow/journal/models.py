"""The journal's schema (SQLAlchemy 2.0 typed ORM) and the order state machine.

Units: timestamps are int nanoseconds since the Unix epoch (``BigInteger``); prices in quote currency,
quantities in base units, money (PnL, fees, funding, equity) in quote currency.

Prices, quantities and money are stored as exact decimals (:class:`Decimal` in Python): ``NUMERIC``
without precision on PostgreSQL and the canonical decimal text on SQLite (whose ``NUMERIC`` affinity
would silently turn them into binary floats). Reasons: the journal is the record the exchange is
reconciled against (``0.1 + 0.2`` must equal ``0.3`` there), the exchange itself speaks decimal
strings, and both back ends then return identical values. Floats from the engine are converted
through their shortest ``repr`` (``0.1`` -> ``Decimal('0.1')``). Model scores and risk numbers
(``signals``, ``risk_events``, ``predictions``) are floats: they are kernel outputs, not amounts.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# -- order state machine ---------------------------------------------------------------------------
ORDER_STATES = (
    "intent",  # journaled, not yet sent
    "sent",  # handed to the exchange client, no acknowledgement yet
    "new",  # acknowledged, resting
    "partially_filled",
    "filled",
    "canceled",
    "expired",
    "rejected",
    "unknown",  # no answer within the timeout; resolved later by querying the client order id
)
TERMINAL_STATES = frozenset({"filled", "canceled", "expired", "rejected"})
UNRESOLVED_STATES = frozenset({"intent", "sent", "unknown"})
OPEN_STATES = frozenset(ORDER_STATES) - TERMINAL_STATES
_AFTER_SEND = frozenset({"new", "partially_filled", "filled", "canceled", "expired", "rejected", "unknown"})
TRANSITIONS: dict[str, frozenset[str]] = {
    # a report may overtake mark_sent (or the process may die between send and mark_sent)
    "intent": _AFTER_SEND | {"sent"},
    "sent": _AFTER_SEND,
    "new": frozenset({"partially_filled", "filled", "canceled", "expired", "rejected", "unknown"}),
    "partially_filled": frozenset(
        {"partially_filled", "filled", "canceled", "expired", "rejected", "unknown"}
    ),
    "unknown": frozenset(ORDER_STATES),  # resolved by querying: whatever the exchange says
    "filled": frozenset(),
    "canceled": frozenset(),
    "expired": frozenset(),
    "rejected": frozenset(),
}
SIDES = ("buy", "sell")
PURPOSES = ("entry", "add", "exit")
ORDER_TYPES = ("limit", "market", "stop_limit", "stop_market")
TIME_IN_FORCE = ("gtc", "ioc", "fok", "gtx")
RUN_MODES = ("paper", "live", "backtest")
MODEL_EVENTS = ("loaded", "refused")
SEVERITIES = ("info", "warning", "critical")
ALERT_KINDS = ("trigger", "resolved", "escalation", "test", "report")
DELIVERY_STATES = ("pending", "sent", "failed")
FUNDING_SOURCES = ("model", "exchange")  # booked by the engine at the configured rate / charged by the venue


class JournalError(Exception):
    """Base of the journal's errors."""


class IllegalTransitionError(JournalError):
    """A report would move an order along an edge the state machine does not have."""

    def __init__(self, client_order_id: str, old: str, new: str) -> None:
        self.client_order_id, self.old, self.new = client_order_id, old, new
        allowed = ", ".join(sorted(TRANSITIONS.get(old, ()))) or "none: terminal"
        super().__init__(f"order {client_order_id}: illegal transition {old} -> {new} (allowed: {allowed})")


class UnknownOrderError(JournalError):
    """The client order id was never journaled."""

    def __init__(self, client_order_id: str) -> None:
        self.client_order_id = client_order_id
        super().__init__(f"order {client_order_id}: not in the journal (record_intent first)")


class DuplicateOrderError(JournalError):
    """``record_intent`` with a client order id that is already journaled."""

    def __init__(self, client_order_id: str) -> None:
        self.client_order_id = client_order_id
        super().__init__(f"order {client_order_id}: already journaled; client order ids are unique")


class InconsistentReportError(JournalError):
    """A report whose numbers contradict the journal (filled quantity decreasing or above the order's)."""

    def __init__(self, client_order_id: str, what: str, value: Decimal, limit: Decimal) -> None:
        self.client_order_id, self.what, self.value, self.limit = client_order_id, what, value, limit
        super().__init__(f"order {client_order_id}: {what} {value} vs {limit}")


def check_transition(client_order_id: str, old: str, new: str) -> None:
    """Raise :class:`IllegalTransitionError` unless ``old -> new`` is an edge of the state machine."""
    if new not in TRANSITIONS or old not in TRANSITIONS or new not in TRANSITIONS[old]:
        raise IllegalTransitionError(client_order_id, old, new)


def normalize_state(state: str) -> str:
    """``'FILLED'`` / ``OrderStatus.FILLED`` / ``'filled'`` -> ``'filled'``; ``ValueError`` if not a state."""
    s = str(state).strip().lower()
    if s == "cancelled":
        s = "canceled"
    if s not in ORDER_STATES:
        raise ValueError(f"unknown order state {state!r}; known: {', '.join(ORDER_STATES)}")
    return s


def to_decimal(x: Decimal | float | int | str | None, what: str = "value") -> Decimal | None:
    """Exact decimal of ``x``; floats through their shortest ``repr``; ``None``/NaN -> ``None``."""
    if x is None:
        return None
    if isinstance(x, float):
        if math.isnan(x):
            return None
        if math.isinf(x):
            raise ValueError(f"{what}: not finite ({x})")
        return Decimal(repr(float(x)))  # float(): numpy floats repr as "np.float64(...)"
    if hasattr(x, "dtype"):  # a numpy scalar (integer or float): through its Python value
        return to_decimal(x.item(), what)
    try:
        d = x if isinstance(x, Decimal) else Decimal(str(x))
    except InvalidOperation:
        raise ValueError(f"{what}: not a number ({x!r})") from None
    if d.is_nan():
        return None
    if not d.is_finite():
        raise ValueError(f"{what}: not finite ({x})")
    return d


class Dec(TypeDecorator[Decimal]):
    """Exact decimal: ``NUMERIC`` on PostgreSQL, canonical decimal text on SQLite (see module doc)."""

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(64))
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        d = to_decimal(value)
        if d is None:
            return None
        return format(d, "f") if dialect.name == "sqlite" else d

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(col: str, values: tuple[str, ...]) -> str:
    return f"{col} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class Run(Base):
    """One engine run: ``mode`` paper/live/backtest, the symbols it traded, how and why it stopped."""

    __tablename__ = "runs"
    __table_args__ = (sa.CheckConstraint(_in("mode", RUN_MODES), name="mode"),)
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    mode: Mapped[str] = mapped_column(sa.String(16))
    venue: Mapped[str] = mapped_column(sa.String(64))
    symbols: Mapped[str] = mapped_column(sa.Text)  # comma-separated, upper case
    started_ns: Mapped[int] = mapped_column(sa.BigInteger)
    stopped_ns: Mapped[int | None] = mapped_column(sa.BigInteger)
    config_hash: Mapped[str] = mapped_column(sa.String(128))
    code_version: Mapped[str] = mapped_column(sa.String(64))
    stop_reason: Mapped[str | None] = mapped_column(sa.Text)


class Order(Base):
    """An order from its intent to its terminal state; one row per client order id."""

    __tablename__ = "orders"
    __table_args__ = (
        sa.CheckConstraint(_in("side", SIDES), name="side"),
        sa.CheckConstraint(_in("purpose", PURPOSES), name="purpose"),
        sa.CheckConstraint(_in("state", ORDER_STATES), name="state"),
        sa.CheckConstraint(_in("order_type", ORDER_TYPES), name="order_type"),
        sa.Index("ix_orders_run_id_state", "run_id", "state"),
    )
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"))
    symbol: Mapped[str] = mapped_column(sa.String(32))
    side: Mapped[str] = mapped_column(sa.String(4))
    order_type: Mapped[str] = mapped_column(sa.String(16))
    tif: Mapped[str | None] = mapped_column(sa.String(8))
    price: Mapped[Decimal | None] = mapped_column(Dec)
    stop_price: Mapped[Decimal | None] = mapped_column(Dec)
    qty: Mapped[Decimal] = mapped_column(Dec)
    reduce_only: Mapped[bool] = mapped_column(sa.Boolean)
    post_only: Mapped[bool] = mapped_column(sa.Boolean)
    parent_id: Mapped[str | None] = mapped_column(sa.String(64))  # the parent (algo) order of a slice
    purpose: Mapped[str] = mapped_column(sa.String(8))
    state: Mapped[str] = mapped_column(sa.String(20), index=True)
    exchange_order_id: Mapped[str | None] = mapped_column(sa.String(64))
    filled_qty: Mapped[Decimal] = mapped_column(Dec)
    avg_price: Mapped[Decimal | None] = mapped_column(Dec)
    created_ns: Mapped[int] = mapped_column(sa.BigInteger)
    sent_ns: Mapped[int | None] = mapped_column(sa.BigInteger)
    updated_ns: Mapped[int] = mapped_column(sa.BigInteger)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    # the mid when the order was decided (its parent's decision for a slice): the slippage reference
    ref_price: Mapped[Decimal | None] = mapped_column(Dec)  # migration 0003


class OrderEvent(Base):
    """Every state change of an order (``old_state`` is NULL for the intent) with the report's fields."""

    __tablename__ = "order_events"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(sa.ForeignKey("orders.client_order_id"), index=True)
    ts_ns: Mapped[int] = mapped_column(sa.BigInteger)
    old_state: Mapped[str | None] = mapped_column(sa.String(20))
    new_state: Mapped[str] = mapped_column(sa.String(20))
    filled_qty: Mapped[Decimal | None] = mapped_column(Dec)
    avg_price: Mapped[Decimal | None] = mapped_column(Dec)
    exchange_order_id: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    report: Mapped[str | None] = mapped_column(sa.Text)  # JSON of further report fields


class FillRow(Base):
    """One trade of an order; unique per (client order id, trade id), so a repeat is stored once."""

    __tablename__ = "fills"
    __table_args__ = (
        sa.UniqueConstraint("client_order_id", "trade_id", name="uq_fills_client_order_id_trade_id"),
        sa.CheckConstraint(_in("side", SIDES), name="side"),
        sa.Index("ix_fills_run_id_ts_ns", "run_id", "ts_ns"),
    )
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(sa.ForeignKey("orders.client_order_id"))
    trade_id: Mapped[str] = mapped_column(sa.String(64))
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"))
    symbol: Mapped[str] = mapped_column(sa.String(32))
    side: Mapped[str] = mapped_column(sa.String(4))
    price: Mapped[Decimal] = mapped_column(Dec)
    qty: Mapped[Decimal] = mapped_column(Dec)
    fee: Mapped[Decimal] = mapped_column(Dec)  # paid, in fee_asset
    fee_asset: Mapped[str | None] = mapped_column(sa.String(16))
    liquidity: Mapped[str | None] = mapped_column(sa.String(8))  # maker / taker
    realized_pnl: Mapped[Decimal | None] = mapped_column(Dec)
    ts_ns: Mapped[int] = mapped_column(sa.BigInteger)
    # the order's decision mid (copied from ``orders.ref_price``): slippage = side * (price - ref) * qty
    ref_price: Mapped[Decimal | None] = mapped_column(Dec)  # migration 0003


class Position(Base):
    """A run's position in a symbol. ``realized_pnl`` is gross of ``fees`` (paid, positive) and
    ``funding`` (received, positive); all in quote currency."""

    __tablename__ = "positions"
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"), primary_key=True)
    symbol: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    qty: Mapped[Decimal] = mapped_column(Dec)  # signed, base units
    avg_price: Mapped[Decimal | None] = mapped_column(Dec)
    realized_pnl: Mapped[Decimal] = mapped_column(Dec)
    fees: Mapped[Decimal] = mapped_column(Dec)
    funding: Mapped[Decimal] = mapped_column(Dec)
    mark_price: Mapped[Decimal | None] = mapped_column(Dec)
    unrealized_pnl: Mapped[Decimal | None] = mapped_column(Dec)
    updated_ns: Mapped[int] = mapped_column(sa.BigInteger)


class EquitySnapshot(Base):
    """Account equity of a run at ``ts_ns`` (quote currency)."""

    __tablename__ = "equity"
    __table_args__ = (sa.Index("ix_equity_run_id_ts_ns", "run_id", "ts_ns"),)
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"))
    ts_ns: Mapped[int] = mapped_column(sa.BigInteger)
    equity: Mapped[Decimal] = mapped_column(Dec)
    balance: Mapped[Decimal | None] = mapped_column(Dec)
    unrealized_pnl: Mapped[Decimal | None] = mapped_column(Dec)
    exposure: Mapped[Decimal | None] = mapped_column(Dec)  # gross notional


class Signal(Base):
    """A fused signal and the gate that decided it (scores are floats; NaN is stored as NULL)."""

    __tablename__ = "signals"
    __table_args__ = (sa.Index("ix_signals_run_id_ts_ns", "run_id", "ts_ns"),)
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"))
    ts_ns: Mapped[int] = mapped_column(sa.BigInteger)
    symbol: Mapped[str] = mapped_column(sa.String(32))
    fused: Mapped[float | None] = mapped_column(sa.Float)
    ofi_score: Mapped[float | None] = mapped_column(sa.Float)
    ai_score: Mapped[float | None] = mapped_column(sa.Float)
    confidence: Mapped[float | None] = mapped_column(sa.Float)
    quality: Mapped[float | None] = mapped_column(sa.Float)
    ev: Mapped[float | None] = mapped_column(sa.Float)  # expected value, fraction of notional
    cost: Mapped[float | None] = mapped_column(sa.Float)  # expected cost, fraction of notional
    action: Mapped[str] = mapped_column(sa.String(16))
    gate: Mapped[str] = mapped_column(sa.String(32))


class RiskEvent(Base):
    """A risk decision: the rule, the value against its limit, and the quantity approved (if any)."""

    __tablename__ = "risk_events"
    __table_args__ = (sa.Index("ix_risk_events_run_id_ts_ns", "run_id", "ts_ns"),)
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"))
    ts_ns: Mapped[int] = mapped_column(sa.BigInteger)
    symbol: Mapped[str | None] = mapped_column(sa.String(32))
    rule: Mapped[str] = mapped_column(sa.String(64))
    value: Mapped[float | None] = mapped_column(sa.Float)
    limit: Mapped[float | None] = mapped_column("limit_value", sa.Float)
    message: Mapped[str] = mapped_column(sa.Text)
    approved_qty: Mapped[Decimal | None] = mapped_column(Dec)
    client_order_id: Mapped[str | None] = mapped_column(sa.String(64))


class ModelVersion(Base):
    """A model version loaded or refused (schema mismatch, failed checks) by an engine."""

    __tablename__ = "model_versions"
    __table_args__ = (sa.CheckConstraint(_in("event", MODEL_EVENTS), name="event"),)
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"))
    ts_ns: Mapped[int] = mapped_column(sa.BigInteger)
    version: Mapped[str] = mapped_column(sa.String(64))
    event: Mapped[str] = mapped_column(sa.String(16))
    schema_hash: Mapped[str] = mapped_column(sa.String(128))
    message: Mapped[str | None] = mapped_column(sa.Text)


class Alert(Base):
    """One message the alerter composed: an incident opening (``trigger``), its ``resolved`` or
    ``escalation`` follow-up, a ``test`` message or a scheduled ``report``. ``numbers`` is the JSON of
    the figures that triggered it; ``incident`` the key that deduplicates one incident's messages."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.CheckConstraint(_in("severity", SEVERITIES), name="severity"),
        sa.CheckConstraint(_in("kind", ALERT_KINDS), name="kind"),
        sa.Index("ix_alerts_ts_ns", "ts_ns"),
    )
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    ts_ns: Mapped[int] = mapped_column(sa.BigInteger)
    kind: Mapped[str] = mapped_column(sa.String(16))
    rule: Mapped[str] = mapped_column(sa.String(64))
    severity: Mapped[str] = mapped_column(sa.String(16))
    incident: Mapped[str] = mapped_column(sa.String(200), index=True)
    run_id: Mapped[int | None] = mapped_column(sa.Integer)  # no foreign key: an alert may outlive its run row
    symbol: Mapped[str | None] = mapped_column(sa.String(32))
    title: Mapped[str] = mapped_column(sa.Text)
    body: Mapped[str] = mapped_column(sa.Text)
    numbers: Mapped[str] = mapped_column(sa.Text)  # JSON object
    link: Mapped[str | None] = mapped_column(sa.Text)


class AlertDelivery(Base):
    """An alert's delivery to one channel: ``pending`` until sent or given up (``failed``), with the
    attempts made, the next try and the last error (secrets redacted)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("alert_id", "channel", name="uq_alert_deliveries_alert_id_channel"),
        sa.CheckConstraint(_in("state", DELIVERY_STATES), name="state"),
        sa.Index("ix_alert_deliveries_state_next_ns", "state", "next_ns"),
    )
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id"))
    channel: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.Integer)
    next_ns: Mapped[int] = mapped_column(sa.BigInteger)
    sent_ns: Mapped[int | None] = mapped_column(sa.BigInteger)
    last_error: Mapped[str | None] = mapped_column(sa.Text)


class AlertIncident(Base):
    """An incident the alerter has open (or had): survives a restart, so an open incident is not
    announced twice and its escalation clock keeps running."""

    __tablename__ = "alert_incidents"
    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    rule: Mapped[str] = mapped_column(sa.String(64))
    severity: Mapped[str] = mapped_column(sa.String(16))
    run_id: Mapped[int | None] = mapped_column(sa.Integer)
    symbol: Mapped[str | None] = mapped_column(sa.String(32))
    opened_ns: Mapped[int] = mapped_column(sa.BigInteger)
    last_sent_ns: Mapped[int] = mapped_column(sa.BigInteger)
    escalations: Mapped[int] = mapped_column(sa.Integer)
    resolved_ns: Mapped[int | None] = mapped_column(sa.BigInteger)


class ReportSend(Base):
    """A scheduled report claimed for sending, one row per (period kind, label): the claim is what
    makes a restart never send a period twice."""

    __tablename__ = "report_sends"
    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(sa.ForeignKey("alerts.id"))
    claimed_ns: Mapped[int] = mapped_column(sa.BigInteger)
    late: Mapped[bool] = mapped_column(sa.Boolean)
    note: Mapped[str | None] = mapped_column(sa.Text)


class AlerterState(Base):
    """Small durable values of the alerter (the Telegram update offset, pending confirmations)."""

    __tablename__ = "alerter_state"
    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)
    updated_ns: Mapped[int] = mapped_column(sa.BigInteger)


# -- model evaluation, funding (migration 0003) -----------------------------------------------------
class Prediction(Base):
    """A sampled prediction of a paper/live run and, once its horizon has passed, what happened.

    ``seq`` numbers a run's predictions (the key its outcome is written under). ``ts_ns`` is the
    engine's receive time of the book event, ``event_ns`` the exchange's (the outcome is labelled in
    exchange time, as the training labels are; ``outcome_ns`` is the touch or the vertical barrier).
    ``ev``, ``cost`` (fractions of notional) and ``side`` are the strategy's pricing of a trade at this
    very event, NULL when it priced none; ``client_order_id`` the order the event sent, if any.
    ``label`` (-1, 0, 1) and ``ret`` (log return to the outcome) are NULL until resolved, and stay NULL
    when the run ended first. ``inputs`` holds the model's input values (msgpack array of floats, in
    the order of ``model_inputs.names``) for a sampled subset of the rows, NULL otherwise."""

    __tablename__ = "predictions"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "seq", name="uq_predictions_run_id_seq"),
        sa.Index("ix_predictions_run_id_ts_ns", "run_id", "ts_ns"),
        sa.Index("ix_predictions_ts_ns", "ts_ns"),
    )
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"))
    seq: Mapped[int] = mapped_column(sa.Integer)
    ts_ns: Mapped[int] = mapped_column(sa.BigInteger)
    event_ns: Mapped[int] = mapped_column(sa.BigInteger)
    symbol: Mapped[str] = mapped_column(sa.String(32))
    version: Mapped[str] = mapped_column(sa.String(128))
    p_down: Mapped[float] = mapped_column(sa.Float)
    p_flat: Mapped[float] = mapped_column(sa.Float)
    p_up: Mapped[float] = mapped_column(sa.Float)
    horizon_ns: Mapped[int] = mapped_column(sa.BigInteger)
    mid: Mapped[float] = mapped_column(sa.Float)
    ev: Mapped[float | None] = mapped_column(sa.Float)
    cost: Mapped[float | None] = mapped_column(sa.Float)
    side: Mapped[int | None] = mapped_column(sa.SmallInteger)
    client_order_id: Mapped[str | None] = mapped_column(sa.String(64))
    label: Mapped[int | None] = mapped_column(sa.SmallInteger)
    ret: Mapped[float | None] = mapped_column(sa.Float)
    outcome_ns: Mapped[int | None] = mapped_column(sa.BigInteger)
    inputs: Mapped[bytes | None] = mapped_column(sa.LargeBinary)


class ModelInputs(Base):
    """The names of the values a run fed a model version (the order of ``predictions.inputs``)."""

    __tablename__ = "model_inputs"
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"), primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    ts_ns: Mapped[int] = mapped_column(sa.BigInteger)
    names: Mapped[str] = mapped_column(sa.Text)  # JSON list


class FundingEvent(Base):
    """One funding payment of a run's position, received positive (quote currency): ``model`` as the
    engine books it (the configured rate at each funding time; what its PnL carries), ``exchange`` as
    the venue charged it (USD-M ``ACCOUNT_UPDATE`` with reason ``FUNDING_FEE``). ``position`` (signed,
    base units), ``mark`` and ``rate`` are the engine's for a ``model`` payment, NULL for the venue's."""

    __tablename__ = "funding_events"
    __table_args__ = (
        sa.CheckConstraint(_in("source", FUNDING_SOURCES), name="source"),
        sa.Index("ix_funding_events_run_id_ts_ns", "run_id", "ts_ns"),
    )
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"))
    ts_ns: Mapped[int] = mapped_column(sa.BigInteger)
    symbol: Mapped[str] = mapped_column(sa.String(32))
    source: Mapped[str] = mapped_column(sa.String(16))
    amount: Mapped[Decimal] = mapped_column(Dec)
    position: Mapped[Decimal | None] = mapped_column(Dec)
    mark: Mapped[Decimal | None] = mapped_column(Dec)
    rate: Mapped[float | None] = mapped_column(sa.Float)
