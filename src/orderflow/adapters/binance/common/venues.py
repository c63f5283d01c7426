"""What differs between Binance spot and USD-M futures, declared once as data.

The adapter reads these facts instead of testing ``market == "spot"``: REST paths and weights, the
WebSocket layout, the depth-stream continuity rule, how the user data stream is reached, the order
types and flags each market accepts, and its account model. Sources: Binance spot API docs
("General API Information", "LIMITS", "Trading endpoints", "WebSocket API user data stream") and
USD-M futures docs ("General Info", "New Order", "User Data Streams", "How to manage a local order
book correctly").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MarketName = Literal["usdm", "spot"]


@dataclass(frozen=True, slots=True)
class TradingPaths:
    """The trading client's REST paths and their request weights ("" = the market has no such path)."""

    order: str
    open_orders: str
    account: str
    positions: str
    exchange_info: str
    listen_key: str
    w_new: int
    w_query: int
    w_cancel: int
    w_open_sym: int
    w_open_all: int
    w_account: int
    w_info: int
    w_listen: int


@dataclass(frozen=True, slots=True)
class VenueCaps:
    """The facts of one Binance market."""

    market: MarketName
    venue: str  # the domain venue name events carry
    futures: bool
    # -- REST ------------------------------------------------------------------------------------------
    mainnet: tuple[str, str]  # (REST base, WebSocket base)
    testnet: tuple[str, str]
    rest_prefix: str  # market data: depth, klines, time, exchangeInfo
    max_weight_per_minute: int  # REQUEST_WEIGHT per minute (Binance's published default)
    # every published limit as (rateLimitType, interval, intervalNum, limit), used until exchangeInfo
    # is loaded; the REQUEST_WEIGHT MINUTE 1 entry is max_weight_per_minute
    rate_limits: tuple[tuple[str, str, int, int], ...]
    exchange_info_weight: int
    exchange_info_by_symbols: bool  # exchangeInfo takes a ``symbols`` JSON list
    klines_max_limit: int  # the largest ``limit`` GET klines accepts
    depth_default_limit: int  # ``limit`` of GET depth when the request has none
    # -- WebSocket -------------------------------------------------------------------------------------
    default_ws_routes: Literal["combined", "split"]  # the layout of the live endpoints
    split_routes: bool  # whether the /public, /market, /private layout exists
    default_depth_stream: str
    depth_continuity: Literal["U/u", "pu"]  # spot: next U == last u + 1; futures: pu == last u
    user_stream: Literal["ws-api", "listen-key"]  # spot: signed WS-API subscription; USD-M: listen key
    # -- trading ---------------------------------------------------------------------------------------
    paths: TradingPaths
    stop_limit_type: str  # the order type of a stop-limit order
    post_only_as_limit_maker: bool  # spot: post-only is type LIMIT_MAKER; futures: time in force GTX
    reduce_only: bool
    positions: bool
    funding: bool
    shorts: bool  # a position can go below zero (spot sells only what the account holds)

    def depth_weight(self, limit: int) -> int:
        """Request weight of GET depth with ``limit`` levels."""
        if not self.futures:
            return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20

    def klines_weight(self, limit: int) -> int:
        """Request weight of GET klines with ``limit`` rows."""
        if not self.futures:
            return 2
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


SPOT = VenueCaps(
    market="spot",
    venue="binance-spot",
    futures=False,
    mainnet=("https://api.binance.com", "wss://stream.binance.com:9443"),
    testnet=("https://testnet.binance.vision", "wss://stream.testnet.binance.vision"),
    rest_prefix="/api/v3",
    max_weight_per_minute=6000,
    rate_limits=(
        ("REQUEST_WEIGHT", "MINUTE", 1, 6000),
        ("ORDERS", "SECOND", 10, 100),
        ("ORDERS", "DAY", 1, 200000),
        ("RAW_REQUESTS", "MINUTE", 5, 61000),
    ),
    exchange_info_weight=20,
    exchange_info_by_symbols=True,
    klines_max_limit=1000,
    depth_default_limit=100,
    default_ws_routes="combined",
    split_routes=False,
    default_depth_stream="depth@100ms",
    depth_continuity="U/u",
    user_stream="ws-api",
    paths=TradingPaths(
        order="/api/v3/order",
        open_orders="/api/v3/openOrders",
        account="/api/v3/account",
        positions="",
        exchange_info="/api/v3/exchangeInfo",
        listen_key="",  # spot: the WebSocket API
        w_new=1,
        w_query=4,
        w_cancel=1,
        w_open_sym=6,
        w_open_all=80,
        w_account=20,
        w_info=20,
        w_listen=2,
    ),
    stop_limit_type="STOP_LOSS_LIMIT",
    post_only_as_limit_maker=True,
    reduce_only=False,
    positions=False,
    funding=False,
    shorts=False,
)

USDM = VenueCaps(
    market="usdm",
    venue="binance-usdm",
    futures=True,
    mainnet=("https://fapi.binance.com", "wss://fstream.binance.com"),
    testnet=("https://testnet.binancefuture.com", "wss://fstream.binancefuture.com"),
    rest_prefix="/fapi/v1",
    max_weight_per_minute=2400,
    rate_limits=(
        ("REQUEST_WEIGHT", "MINUTE", 1, 2400),
        ("ORDERS", "MINUTE", 1, 1200),
        ("ORDERS", "SECOND", 10, 300),
    ),
    exchange_info_weight=1,
    exchange_info_by_symbols=False,
    klines_max_limit=1500,
    depth_default_limit=500,
    default_ws_routes="split",
    split_routes=True,
    default_depth_stream="depth@0ms",
    depth_continuity="pu",
    user_stream="listen-key",
    paths=TradingPaths(
        order="/fapi/v1/order",
        open_orders="/fapi/v1/openOrders",
        account="/fapi/v3/account",
        positions="/fapi/v3/positionRisk",
        exchange_info="/fapi/v1/exchangeInfo",
        listen_key="/fapi/v1/listenKey",
        w_new=1,
        w_query=1,
        w_cancel=1,
        w_open_sym=1,
        w_open_all=40,
        w_account=5,
        w_info=1,
        w_listen=1,
    ),
    stop_limit_type="STOP",
    post_only_as_limit_maker=False,
    reduce_only=True,
    positions=True,
    funding=True,
    shorts=True,
)

# USD-M first: the default market, and the order the command line lists them in
VENUES: dict[str, VenueCaps] = {USDM.market: USDM, SPOT.market: SPOT}


def caps(market: str) -> VenueCaps:
    """The facts of ``market``; anything but ``spot`` is USD-M (the callers validate the name first)."""
    return SPOT if market == SPOT.market else USDM


# The same facts by the venue name events and the store carry ("binance-usdm", "binance-spot").
BY_VENUE: dict[str, VenueCaps] = {c.venue: c for c in VENUES.values()}

# Venues the data layer records and imports but the adapter does not trade: their depth diffs chain
# on ``pu`` (Binance COIN-M futures, "How to manage a local order book correctly").
_RECORDED_ONLY_CONTINUITY: dict[str, Literal["U/u", "pu"]] = {"binance-coinm": "pu"}


def venue_caps(venue: str) -> VenueCaps:
    """The facts of the Binance market behind ``venue`` (e.g. ``"binance-spot"``); a ``ValueError``
    names any other venue (use ``BY_VENUE.get`` where simulated or foreign venues are allowed)."""
    try:
        return BY_VENUE[venue]
    except KeyError:
        raise ValueError(f"unknown Binance venue {venue!r}; expected one of {sorted(BY_VENUE)}") from None


def depth_continuity(venue: str) -> Literal["U/u", "pu"]:
    """How stored depth diffs of ``venue`` chain: the table's rule for spot and USD-M, ``pu`` for COIN-M
    and for venues outside the table (simulated or imported books; the quality check still falls back
    to ``U``/``u`` when their rows carry no ``pu``)."""
    c = BY_VENUE.get(venue)
    return c.depth_continuity if c is not None else _RECORDED_ONLY_CONTINUITY.get(venue, "pu")
