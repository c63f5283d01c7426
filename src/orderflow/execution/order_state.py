"""Order states, the legal transitions, the per-order record and the journal protocol (the data side
of :mod:`orderflow.execution.orders`; intents and fills are :mod:`orderflow.core.orders`')."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from orderflow.adapters.binance.trading.events import OrderStatus
from orderflow.core.orders import OrderIntent, Side

CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
NAN = float("nan")


class OrderState(StrEnum):
    """Where an order is in its life (values are the journal's state names)."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def code(self) -> int:
        """Small int for kernels (index into ``TRANSITIONS``)."""
        return _CODES[self]

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def open(self) -> bool:
        """Possibly resting on the exchange (not terminal)."""
        return self not in TERMINAL


_CODES = {s: i for i, s in enumerate(OrderState)}
N_STATES = len(_CODES)
TERMINAL = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED})
_S = OrderState
LEGAL: dict[OrderState, frozenset[OrderState]] = {
    _S.PENDING_NEW: frozenset(
        {_S.NEW, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.REJECTED, _S.EXPIRED, _S.UNKNOWN}
    ),
    _S.NEW: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.REJECTED, _S.EXPIRED, _S.UNKNOWN}),
    _S.PARTIALLY_FILLED: frozenset(
        {_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.REJECTED, _S.EXPIRED, _S.UNKNOWN}
    ),
    _S.UNKNOWN: frozenset({_S.NEW, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.REJECTED, _S.EXPIRED}),
    _S.FILLED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}
TRANSITIONS = np.zeros((N_STATES, N_STATES), dtype=np.bool_)
for _a, _bs in LEGAL.items():
    for _b in _bs:
        TRANSITIONS[_a.code, _b.code] = True

# progress rank: a report is applied only when it moves an order forward (fill or rank)
RANK = {
    _S.PENDING_NEW: 0,
    _S.UNKNOWN: 0,
    _S.NEW: 1,
    _S.PARTIALLY_FILLED: 2,
    _S.FILLED: 3,
    _S.CANCELED: 3,
    _S.REJECTED: 3,
    _S.EXPIRED: 3,
}
FROM_EXCHANGE: dict[OrderStatus, OrderState | None] = {
    OrderStatus.NEW: _S.NEW,
    OrderStatus.PARTIALLY_FILLED: _S.PARTIALLY_FILLED,
    OrderStatus.FILLED: _S.FILLED,
    OrderStatus.CANCELED: _S.CANCELED,
    OrderStatus.PENDING_CANCEL: None,  # not a state of ours: only its fill progress is applied
    OrderStatus.REJECTED: _S.REJECTED,
    OrderStatus.EXPIRED: _S.EXPIRED,
}


class IllegalTransition(ValueError):
    """An order was asked to move between two states the table does not connect."""

    def __init__(self, client_order_id: str, old: OrderState, new: OrderState) -> None:
        self.client_order_id, self.old, self.new = client_order_id, old, new
        super().__init__(f"order {client_order_id}: illegal transition {old.value} -> {new.value}")


class DuplicateIntent(ValueError):
    """An intent reuses a client order id the manager already holds (one id, one order)."""


def check_transition(client_order_id: str, old: OrderState, new: OrderState) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is in the table."""
    if not TRANSITIONS[old.code, new.code]:
        raise IllegalTransition(client_order_id, old, new)


def check_client_id(cid: str) -> str:
    """``cid`` if Binance accepts it as a client order id (1-36 of ``[.A-Za-z:/0-9_-]``), else ValueError."""
    if not CLIENT_ID_RE.match(cid):
        raise ValueError(f"client order id {cid!r} does not match {CLIENT_ID_RE.pattern}")
    return cid


@dataclass
class ManagedOrder:
    """What the manager knows of one order: state, cumulative fill, exchange id and history
    (``(ts ns, old, new, reason)`` per transition)."""

    intent: OrderIntent
    state: OrderState = OrderState.PENDING_NEW
    filled_qty: float = 0.0
    filled_quote: float = 0.0
    exchange_id: int = -1
    reason: str = ""
    sent_ns: int = 0
    sent_ms: int = 0
    ts_update: int = 0
    history: list[tuple[int, OrderState, OrderState, str]] = field(default_factory=list)
    error: Exception | None = None  # why the order was refused before the exchange had it, if it was

    @property
    def client_order_id(self) -> str:
        return self.intent.client_order_id

    @property
    def symbol(self) -> str:
        return self.intent.symbol

    @property
    def avg_price(self) -> float:
        return self.filled_quote / self.filled_qty if self.filled_qty > 0 else math.nan

    @property
    def remaining(self) -> float:
        return max(0.0, self.intent.quantity - self.filled_qty)

    def move(self, new: OrderState, ts: int, reason: str = "") -> bool:
        """Apply ``new`` (validated); return whether the state changed. A same-state move is allowed
        only where the table allows it (partially_filled -> partially_filled on a fill)."""
        check_transition(self.client_order_id, self.state, new)
        old = self.state
        self.state = new
        self.ts_update = ts
        if reason:
            self.reason = reason
        self.history.append((ts, old, new, reason))
        return old is not new


class Journal(Protocol):
    """What the manager needs of the journal: the methods of :class:`orderflow.journal.Journal`, which
    meets it (states are :class:`OrderState` values; the journal's own ``intent``/``sent`` are
    ``pending_new`` here). Records returned by the queries are read through :func:`field_of`."""

    def record_intent(self, order: OrderIntent, run_id: int) -> None: ...

    def mark_sent(self, client_order_id: str, ts_ns: int) -> None: ...

    def apply_report(
        self,
        client_order_id: str,
        state: str,
        filled: float,
        avg: float | None,
        exchange_id: int | None,
        ts_ns: int,
        reason: str | None = None,
    ) -> object: ...

    def record_fill(
        self,
        client_order_id: str,
        trade_id: str,
        price: float,
        qty: float,
        ts_ns: int,
        *,
        fee: float,
        fee_asset: str | None,
        liquidity: str | None,
    ) -> object: ...

    def open_orders(self) -> Sequence[Any]: ...

    def unresolved_intents(self) -> Sequence[Any]: ...

    def fills(self, *, client_order_id: str) -> Sequence[Any]: ...


class NoJournal:
    """The journal of a run that keeps none: records nothing, and holds no order at start."""

    def record_intent(self, order: OrderIntent, run_id: int) -> None:
        return None

    def mark_sent(self, client_order_id: str, ts_ns: int) -> None:
        return None

    def apply_report(self, client_order_id: str, state: str, filled: float, avg: float | None,
                     exchange_id: int | None, ts_ns: int, reason: str | None = None) -> object:  # fmt: skip
        return False

    def record_fill(self, client_order_id: str, trade_id: str, price: float, qty: float, ts_ns: int, *,
                    fee: float, fee_asset: str | None, liquidity: str | None) -> object:  # fmt: skip
        return False

    def open_orders(self) -> Sequence[Any]:
        return []

    def unresolved_intents(self) -> Sequence[Any]:
        return []

    def fills(self, *, client_order_id: str) -> Sequence[Any]:
        return []


def side_of(x: Any) -> Side:
    """``x`` (a Side, +1/-1, or "buy"/"sell") as a :class:`Side`."""
    if isinstance(x, Side):
        return x
    if isinstance(x, str):
        return Side.BUY if x.strip().lower() in ("buy", "1", "+1") else Side.SELL
    return Side.BUY if float(x) > 0 else Side.SELL


def recovered_fill_id(filled_qty: float) -> str:
    """Journal key of a fill found by a REST query (it has no trade id): the order's cumulative
    quantity, so two recovered partial fills of one order stay two fills, and the same recovered state
    is stored once."""
    return f"recovered-{filled_qty:g}"


def field_of(rec: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` present on a journal record (attribute or mapping key)."""
    for n in names:
        if isinstance(rec, dict):
            if rec.get(n) is not None:
                return rec[n]
        elif getattr(rec, n, None) is not None:
            return getattr(rec, n)
    return default


# ------------------------------------------------------------------------------------------ manager
log = logging.getLogger(__name__)
