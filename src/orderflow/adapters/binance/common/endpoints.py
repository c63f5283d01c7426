"""Binance base URLs and the live feed's configuration.

Base URLs are configuration, so the same feed and REST client run against Binance mainnet, the
Binance testnets or the loopback :class:`~orderflow.adapters.binance.replay.server.ReplayServer`.

Testnet URLs (Binance docs, "Testnet General Info" for spot; USD-M futures testnet):
spot REST ``https://testnet.binance.vision``, streams ``wss://stream.testnet.binance.vision``;
USD-M REST ``https://testnet.binancefuture.com``, streams ``wss://fstream.binancefuture.com``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orderflow.adapters.binance.common.venues import VENUES, MarketName, caps

Market = MarketName  # the names of the capability table


WsRoutes = Literal["combined", "split"]
# USD-M streams by route since Binance split its WebSocket URLs (2026-04-23): high-frequency public
# data under /public, everything else under /market, user data under /private
_PUBLIC_STREAMS = ("depth", "bookTicker", "rpiDepth")


def stream_route(stream: str) -> str:
    """``public`` or ``market``: the USD-M route of a stream name such as ``btcusdt@depth@0ms``."""
    kind = stream.split("@", 2)[1] if "@" in stream else stream
    return "public" if kind.startswith(_PUBLIC_STREAMS) else "market"


class BinanceEndpoints(BaseModel):
    """Where to reach one Binance market: REST base (no trailing slash) and WebSocket base.

    ``ws_routes``: ``combined`` connects every stream to ``{ws_base}/stream`` and the USD-M user stream
    to ``{ws_base}/ws/<listenKey>`` (spot, and the layout USD-M had until 2026-04-23); ``split`` is
    USD-M's layout since: ``{ws_base}/public/stream`` (depth, bookTicker), ``{ws_base}/market/stream``
    (trades, klines, mark price) and ``{ws_base}/private/ws?listenKey=...&events=...``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    market: Market
    rest_base_url: str
    ws_base_url: str
    ws_routes: WsRoutes = "combined"

    @field_validator("rest_base_url", "ws_base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        v = v.strip()
        if "://" not in v:
            raise ValueError(f"not a URL: {v!r}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _routes(self) -> BinanceEndpoints:
        if self.ws_routes == "split" and not caps(self.market).split_routes:
            raise ValueError("ws_routes 'split' is USD-M's layout; spot streams are combined")
        return self

    @property
    def venue(self) -> str:
        return caps(self.market).venue

    def stream_urls(self, streams: list[str]) -> list[str]:
        """The WebSocket URLs carrying ``streams`` (one combined URL, or one per route in use)."""
        if self.ws_routes == "combined":
            return [f"{self.ws_base_url}/stream?streams=" + "/".join(streams)]
        out = []
        for route in ("public", "market"):
            mine = [s for s in streams if stream_route(s) == route]
            if mine:
                out.append(f"{self.ws_base_url}/{route}/stream?streams=" + "/".join(mine))
        return out

    def user_stream_url(self, listen_key: str) -> str:
        """The USD-M user data stream of ``listen_key``."""
        if self.ws_routes == "combined":
            return f"{self.ws_base_url}/ws/{listen_key}"
        events = "ORDER_TRADE_UPDATE/ACCOUNT_UPDATE"
        return f"{self.ws_base_url}/private/ws?listenKey={listen_key}&events={events}"

    @property
    def futures(self) -> bool:
        return caps(self.market).futures


def default_endpoints(market: Market, testnet: bool = False) -> BinanceEndpoints:
    """Mainnet (or testnet) endpoints of ``market`` ("usdm" or "spot")."""
    if market not in VENUES:
        raise ValueError(f"unknown Binance market {market!r}; expected one of {list(VENUES)}")
    v = VENUES[market]
    rest, ws = v.testnet if testnet else v.mainnet
    routes = v.default_ws_routes
    return BinanceEndpoints(market=market, rest_base_url=rest, ws_base_url=ws, ws_routes=routes)


def loopback_endpoints(market: Market, host: str, port: int) -> BinanceEndpoints:
    """Endpoints of a replay server on ``host:port`` (plain HTTP and WS)."""
    return BinanceEndpoints(
        market=market, rest_base_url=f"http://{host}:{port}", ws_base_url=f"ws://{host}:{port}"
    )


class FeedConfig(BaseModel):
    """What the live feed subscribes to and how it behaves on trouble.

    ``depth_stream`` defaults to ``depth@0ms`` on USD-M and ``depth@100ms`` on spot (set from
    ``market`` when left empty). ``max_weight_per_minute`` defaults to 2400 (USD-M) or 6000 (spot).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    market: Market = "usdm"
    depth_stream: str = ""
    partial_depth_levels: int = 0
    trades: bool = True
    book_ticker: bool = False
    kline_intervals: list[str] = Field(default_factory=list)
    # USD-M context streams: <symbol>@markPrice@1s and <symbol>@forceOrder (spot has neither)
    mark_price: bool = False
    liquidations: bool = False
    snapshot_limit: int = 1000
    # fetch each book's REST snapshot as soon as the stream connects (Binance's documented order:
    # connect, buffer, snapshot) instead of at the first diff; a snapshot older than the first diff
    # is detected and refetched
    snapshot_on_connect: bool = False
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    watchdog_s: float = Field(10.0, gt=0)
    max_weight_per_minute: int = 0
    weight_safety: float = Field(0.8, gt=0, le=1)

    @field_validator("partial_depth_levels")
    @classmethod
    def _levels(cls, v: int) -> int:
        if v not in (0, 5, 10, 20):
            raise ValueError(f"partial_depth_levels must be 0 (off), 5, 10 or 20, not {v}")
        return v

    @field_validator("depth_stream")
    @classmethod
    def _depth(cls, v: str) -> str:
        if v and v not in ("depth", "depth@100ms", "depth@250ms", "depth@500ms", "depth@0ms"):
            raise ValueError(f"unsupported depth stream {v!r}")
        return v

    @model_validator(mode="after")
    def _defaults(self) -> FeedConfig:
        if not self.depth_stream:
            object.__setattr__(self, "depth_stream", caps(self.market).default_depth_stream)
        if self.max_weight_per_minute <= 0:
            object.__setattr__(self, "max_weight_per_minute", caps(self.market).max_weight_per_minute)
        if not caps(self.market).futures:
            spot_has_not = [
                n for n, on in (("markPrice@1s", self.mark_price), ("forceOrder", self.liquidations)) if on
            ]
            if spot_has_not:
                raise ValueError(f"<symbol>@{spot_has_not[0]} is a USD-M stream; spot has no such stream")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self

    def streams(self, symbols: list[str]) -> list[str]:
        """Stream names for ``symbols`` in subscription order (lowercase, as Binance wants)."""
        out: list[str] = []
        for s in symbols:
            s = s.lower()
            out.append(f"{s}@{self.depth_stream}")
            if self.partial_depth_levels:
                out.append(f"{s}@depth{self.partial_depth_levels}@100ms")
            if self.trades:
                out.append(f"{s}@trade")
            if self.book_ticker:
                out.append(f"{s}@bookTicker")
            out.extend(f"{s}@kline_{iv}" for iv in self.kline_intervals)
            if self.mark_price:
                out.append(f"{s}@markPrice@1s")
            if self.liquidations:
                out.append(f"{s}@forceOrder")
        return out
