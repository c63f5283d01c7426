"""Frozen domain events of the trading client (no Binance field names past this point).

Times are int ns since the epoch (``ts_event`` exchange time, ``ts_recv`` local receive time); prices
in quote currency, quantities in base units, fees in ``fee_asset`` units.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from orderflow.core.orders import OrderType, Side, TimeInForce


class OrderStatus(StrEnum):
    """Lifecycle of an order. Terminal: FILLED, CANCELED, REJECTED, EXPIRED."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    PENDING_CANCEL = "PENDING_CANCEL"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED)


class ExecType(StrEnum):
    """What happened in an :class:`OrderUpdate`: acknowledged, traded, cancelled, rejected, expired,
    amended, or ``RECOVERED`` (a change found by a REST query after the stream was down)."""

    NEW = "NEW"
    TRADE = "TRADE"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    AMENDMENT = "AMENDMENT"
    RECOVERED = "RECOVERED"


class Order(msgspec.Struct, frozen=True):
    """An order's state as the exchange reports it (REST answer or the state after an update)."""

    venue: str
    symbol: str
    order_id: int
    client_order_id: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    reduce_only: bool
    price: float
    stop_price: float
    quantity: float
    filled_qty: float
    filled_quote: float
    status: OrderStatus
    ts_update: int

    @property
    def avg_price(self) -> float:
        return self.filled_quote / self.filled_qty if self.filled_qty > 0 else float("nan")

    @property
    def remaining(self) -> float:
        return max(0.0, self.quantity - self.filled_qty)


class OrderUpdate(msgspec.Struct, frozen=True):
    """One change of an order: the new status and cumulative fill, and the last fill when it traded.

    ``fee`` is the fee of the last fill (NaN when unknown, e.g. a fill recovered by REST, whose price
    is then the average price of the recovered quantity). ``source`` is "stream" or "rest"."""

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    order_id: int
    client_order_id: str
    side: Side
    order_type: OrderType
    execution: ExecType
    status: OrderStatus
    price: float
    quantity: float
    filled_qty: float
    filled_quote: float
    last_fill_price: float
    last_fill_qty: float
    fee: float
    fee_asset: str
    trade_id: int
    is_maker: bool
    reduce_only: bool
    reject_reason: str
    source: str


class Balance(msgspec.Struct, frozen=True):
    """An asset balance: ``free`` and ``locked`` (spot) or wallet balance in ``free`` with ``locked``
    = wallet - available (futures); ``total`` = free + locked."""

    asset: str
    free: float
    locked: float

    @property
    def total(self) -> float:
        return self.free + self.locked


class Position(msgspec.Struct, frozen=True):
    """A futures position: signed ``quantity`` (base units, >0 long), entry price, unrealised PnL."""

    symbol: str
    quantity: float
    entry_price: float
    unrealized_pnl: float
    position_side: str = "BOTH"


class AccountUpdate(msgspec.Struct, frozen=True):
    """Balances (and futures positions) that changed, from the user data stream."""

    venue: str
    ts_event: int
    ts_recv: int
    reason: str
    balances: tuple[Balance, ...]
    positions: tuple[Position, ...]
    # USD-M: each balance's change in this event (``bc``), e.g. the funding paid with reason FUNDING_FEE
    changes: tuple[tuple[str, float], ...] = ()


class StreamStatus(msgspec.Struct, frozen=True):
    """The user stream's state changed: ``state`` is "connected", "disconnected", "recovered" or
    "polling"; ``detail`` says why."""

    venue: str
    ts_recv: int
    state: str
    detail: str
