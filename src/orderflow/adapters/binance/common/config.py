"""Configuration of the Binance trading client (no secrets here: keys come from the environment)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orderflow.adapters.binance.common.endpoints import BinanceEndpoints, default_endpoints
from orderflow.adapters.binance.common.signing import Credentials
from orderflow.adapters.binance.common.venues import MarketName, caps

# Binance spot WebSocket API (the user data stream is subscribed there since listen keys were retired)
_SPOT_WS_API = "wss://ws-api.binance.com:443/ws-api/v3"
_SPOT_WS_API_TESTNET = "wss://ws-api.testnet.binance.vision/ws-api/v3"


class TradingClientConfig(BaseModel):
    """Where and how the client trades. Times in seconds unless the name says ms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    market: MarketName = Field("usdm", description="spot or USD-M futures")
    testnet: bool = Field(False, description="use Binance's testnet base URLs")
    rest_base_url: str = Field("", description="REST base URL override (e.g. a local exchange)")
    ws_base_url: str = Field("", description="WebSocket base URL override")
    recv_window_ms: int = Field(5000, ge=1, le=60000, description="recvWindow of signed requests, ms")
    request_timeout_s: float = Field(10.0, gt=0, le=120, description="total timeout of one REST call")
    time_sync_interval_s: float = Field(300.0, gt=0, description="period of the server-clock resync")
    max_retries: int = Field(3, ge=0, le=20, description="retries after 429 / unknown outcome")
    settle_margin_ms: int = Field(
        250, ge=0, le=10000, description="extra wait past recvWindow before a lost order is re-queried"
    )
    rate_limit_safety: float = Field(0.95, gt=0, le=1, description="fraction of each rate limit used")
    max_rate_wait_s: float = Field(120.0, gt=0, description="longest wait the rate limiter accepts")
    round_to_grid: bool = Field(False, description="round price/qty to the filter grid instead of raising")
    client_id_prefix: str = Field(
        "of", pattern=r"^[A-Za-z0-9_-]{0,12}$", description="prefix of generated client ids"
    )
    ws_routes: Literal["auto", "combined", "split"] = Field(
        "auto",
        description="USD-M WebSocket layout: auto = split on Binance (since 2026-04-23), combined when "
        "ws_base_url is overridden (e.g. a local exchange serving the legacy layout)",
    )
    ws_api_url: str = Field(
        "",
        description="spot WebSocket API URL of the user data stream (default: Binance's, or "
        "ws_base_url + /ws-api/v3 when ws_base_url is set)",
    )
    listen_key_keepalive_s: float = Field(1800.0, gt=0, description="PUT listenKey period (Binance: 30 min)")
    ws_heartbeat_s: float = Field(20.0, gt=0, description="WebSocket ping period; no pong closes the socket")
    ws_idle_timeout_s: float = Field(
        120.0, gt=0, description="no message for this long: reconnect and recover"
    )
    reconnect_initial_s: float = Field(0.2, gt=0, description="first reconnect delay")
    reconnect_max_s: float = Field(30.0, gt=0, description="longest reconnect delay")
    poll_interval_s: float = Field(2.0, gt=0, description="REST polling period while the stream is down")

    @model_validator(mode="after")
    def _check(self) -> TradingClientConfig:
        if bool(self.rest_base_url) != bool(self.ws_base_url):
            raise ValueError("set both rest_base_url and ws_base_url, or neither")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self

    @property
    def futures(self) -> bool:
        return caps(self.market).futures

    def user_stream_url(self) -> str:
        """Spot: the WebSocket API, where the user data stream is a signed subscription (Binance retired
        spot listen keys on 2026-02-20). USD-M: the stream base; the listen key is appended."""
        if caps(self.market).user_stream == "ws-api":
            if self.ws_api_url:
                return self.ws_api_url.rstrip("/")
            if self.ws_base_url:
                return self.ws_base_url.rstrip("/") + "/ws-api/v3"
            return _SPOT_WS_API_TESTNET if self.testnet else _SPOT_WS_API
        return self.endpoints().ws_base_url

    def endpoints(self) -> BinanceEndpoints:
        if self.rest_base_url:
            ep = BinanceEndpoints(
                market=self.market, rest_base_url=self.rest_base_url, ws_base_url=self.ws_base_url
            )
        else:
            ep = default_endpoints(self.market, self.testnet)
        if self.ws_routes != "auto" and caps(self.market).split_routes:
            ep = ep.model_copy(update={"ws_routes": self.ws_routes})
        return ep


def credentials_from_env(prefix: str = "BINANCE") -> Credentials:
    """Credentials from ``{prefix}_API_KEY`` and ``{prefix}_API_SECRET`` (HMAC secret or an Ed25519
    PEM), or ``{prefix}_PRIVATE_KEY_PATH`` (a PEM file). Raises a ``KeyError`` naming the variable."""
    key = os.environ.get(f"{prefix}_API_KEY")
    if not key:
        raise KeyError(f"environment variable {prefix}_API_KEY is not set")
    path = os.environ.get(f"{prefix}_PRIVATE_KEY_PATH")
    if path:
        with open(path, "rb") as fh:
            return Credentials.ed25519(key, fh.read(), os.environ.get(f"{prefix}_PRIVATE_KEY_PASSPHRASE"))
    secret = os.environ.get(f"{prefix}_API_SECRET")
    if not secret:
        raise KeyError(f"environment variable {prefix}_API_SECRET (or {prefix}_PRIVATE_KEY_PATH) is not set")
    return Credentials.from_secret(key, secret)
