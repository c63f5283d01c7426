"""The order vocabulary, one definition each: sides, order types, times in force, what the trading
core asks for (:class:`OrderRequest`, :class:`CancelRequest`), what the journal records before an order
leaves (:class:`OrderIntent`) and one fill of an order (:class:`Fill`).

The compiled kernels speak small ints (``engine.core``'s ``SEND_MARKET``/``SEND_LIMIT``/``CANCEL``, the
simulator's ``MARKET``/``LIMIT``); they turn into these types at one boundary each
(``engine.session.request_from_core``, ``SimulatedExchange.submit``), and the Binance client maps them to
wire strings in one place (``BinanceTradingClient.order_params``). Nothing here knows a venue.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

import msgspec

NAN = float("nan")


class Side(IntEnum):
    """Aggressor side of a trade, or the side of an order. Values are signs."""

    BUY = 1
    SELL = -1


class OrderType(StrEnum):
    """LIMIT (post-only is a flag), MARKET, STOP_LIMIT (a stop that rests a limit)."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderRequest(msgspec.Struct, frozen=True):
    """A new order for an exchange by its order number ``order_id``: the trading core's (``D[D_OID]``,
    from which the engine makes the client order id) or the local exchange's. The core's passive entry
    is a post-only GTC LIMIT at ``price``, everything else it sends a MARKET order (IOC: the remainder
    beyond the book expires); a STOP_LIMIT rests a limit at ``price`` once a trade reaches
    ``stop_price``."""

    order_id: int
    side: Side
    qty: float
    reduce_only: bool
    order_type: OrderType = OrderType.MARKET
    price: float = NAN
    time_in_force: TimeInForce = TimeInForce.IOC
    post_only: bool = False
    stop_price: float = NAN


class CancelRequest(msgspec.Struct, frozen=True):
    """The trading core wants its order ``order_id`` (the order in flight) cancelled."""

    order_id: int


class OrderIntent(msgspec.Struct, frozen=True):
    """An order about to be sent: what the journal records before anything leaves.

    ``quantity`` in base units; ``price``/``stop_price`` in quote currency (NaN: none, e.g. MARKET);
    ``parent_id`` is the sliced parent's client id ("" for none); ``purpose`` entry/add/exit;
    ``ev`` is the signal's expected value in quote currency for the whole quantity and ``ref_price`` the
    mid when it was decided (NaN: no cost control); ``ts_created`` int ns since the epoch (the engine
    time of the decision); ``reason`` free text for the journal."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType = OrderType.LIMIT
    price: float = NAN
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    stop_price: float = NAN
    parent_id: str = ""
    purpose: str = "entry"
    ev: float = NAN
    ref_price: float = NAN
    ts_created: int = 0
    reason: str = ""


class Fill(msgspec.Struct, frozen=True):
    """One fill of an order: ``qty`` base units at ``price`` quote, ``fee`` in ``fee_asset`` (NaN when
    unknown, e.g. a fill found by a REST query, whose price is then the average of the recovered
    quantity). ``trade_id`` is the exchange's, or for a recovered fill ``-round(cumulative filled *
    1e8)``, the same for the same recovered state. ``ts`` int ns; ``source`` "stream" or "rest"."""

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    fee: float
    fee_asset: str
    trade_id: int
    is_maker: bool
    ts: int
    source: str
