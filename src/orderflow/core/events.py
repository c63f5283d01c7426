"""Frozen domain events.

Every event carries ``ts_event`` (exchange time) and ``ts_recv`` (local receive time) as integer
nanoseconds since the Unix epoch. Nothing here knows Binance field names: adapters in
``orderflow.adapters.binance`` decode raw payloads and build these.

Prices and sizes are floats parsed from the exchange's decimal strings; the exchange's precision is
kept by the instrument's tick and lot sizes (see :mod:`orderflow.core.instruments`).
"""

from __future__ import annotations

import msgspec

from orderflow.core.orders import Side  # an aggressor's side is an order side: one definition

Level = tuple[float, float]  # (price, size)


class BookSnapshot(msgspec.Struct, frozen=True, gc=False):
    """The top N levels of a book after ``update_id``; bids best-first (descending), asks ascending."""

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]

    @property
    def best_bid(self) -> float:
        return self.bids[0][0] if self.bids else float("nan")

    @property
    def best_ask(self) -> float:
        return self.asks[0][0] if self.asks else float("nan")

    @property
    def mid(self) -> float:
        return 0.5 * (self.best_bid + self.best_ask)


class BookDelta(msgspec.Struct, frozen=True, gc=False):
    """A diff of price levels. A size of 0 removes the level.

    ``first_update_id``..``last_update_id`` is the range of exchange updates folded into this diff;
    ``prev_update_id`` is the last update id of the previous diff where the venue gives it (Binance
    futures ``pu``), else -1.
    """

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    first_update_id: int
    last_update_id: int
    prev_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class Trade(msgspec.Struct, frozen=True, gc=False):
    """A trade with the aggressor's side (the side that crossed the spread)."""

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    trade_id: int
    price: float
    size: float
    aggressor: Side


class Quote(msgspec.Struct, frozen=True, gc=False):
    """Best bid and offer (Binance ``bookTicker``)."""

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    update_id: int
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float


class Bar(msgspec.Struct, frozen=True, gc=False):
    """An OHLCV bar covering [ts_open, ts_open + interval). ``ts_event`` is the bar's close time."""

    venue: str
    symbol: str
    interval: str
    ts_open: int
    ts_event: int
    ts_recv: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float = float("nan")
    trades: int = -1
    taker_buy_volume: float = float("nan")
    closed: bool = True


class MarkPrice(msgspec.Struct, frozen=True, gc=False):
    """A perpetual's mark price, index price, estimated settlement price and current funding rate
    (Binance ``markPriceUpdate``); ``next_funding_ns`` is the next funding time."""

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    mark_price: float
    index_price: float
    est_settle_price: float
    funding_rate: float
    next_funding_ns: int


class Liquidation(msgspec.Struct, frozen=True, gc=False):
    """A forced liquidation order (Binance ``forceOrder``): ``side`` is the liquidation order's side
    (a long liquidated sells), ``qty`` its size, ``filled_qty`` what it filled at ``avg_price``."""

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    side: Side
    price: float
    avg_price: float
    qty: float
    filled_qty: float
    status: str = "FILLED"


class GapEvent(msgspec.Struct, frozen=True, gc=False):
    """A break in a book's update-id chain (or a lost stream): the book is invalid until resynced."""

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    reason: str
    expected: int = -1
    got: int = -1


class BookSynced(msgspec.Struct, frozen=True, gc=False):
    """The local book for a symbol is (again) in sync with the exchange at ``update_id``."""

    venue: str
    symbol: str
    ts_event: int
    ts_recv: int
    update_id: int
    resync: bool


class FeedStatus(msgspec.Struct, frozen=True, gc=False):
    """A change in a feed connection's state: connected, disconnected, stale, reconnecting, stopped."""

    venue: str
    ts_recv: int
    state: str
    detail: str = ""


MarketEvent = (
    BookSnapshot
    | BookDelta
    | Trade
    | Quote
    | Bar
    | MarkPrice
    | Liquidation
    | GapEvent
    | BookSynced
    | FeedStatus
)
