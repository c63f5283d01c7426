"""Configuration of the local Binance-compatible exchange (checked at start-up; secrets are never
printed: ``repr`` hides them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from orderflow.adapters.binance.common.venues import caps
from orderflow.execution.sim_config import SimConfig


class LocalExchangeConfig(BaseModel):
    """One local exchange: one market (spot or USD-M futures), one account, one market source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    market: Literal["usdm", "spot"] = Field("usdm", description="Binance market whose protocol is served")
    source: str = Field(
        "sim", description="'sim', a stored 'VENUE/SYMBOL' (needs store) or a raw recording file"
    )
    store: str | None = Field(None, description="Store directory of a 'VENUE/SYMBOL' source")
    symbol: str = Field("BTCUSDT", description="symbol of the simulator source")
    seed: int = Field(0, ge=0, description="simulator seed (same seed, same market)")
    sim_hours: float = Field(0.25, gt=0, le=24, description="hours of simulated market to generate")
    levels: int = Field(20, ge=1, le=100, description="book levels replayed and matched against")
    clock: Literal["manual", "realtime", "lockstep"] = Field(
        "manual",
        description="manual: events advance only through POST /_local/advance; realtime: paced; "
        "lockstep: advanced in process by orderflow.engine.lockstep, with the backtester's latency",
    )
    speed: float = Field(1.0, gt=0, le=10_000, description="realtime pace: replay seconds per wall second")
    start_ms: int | None = Field(
        None, ge=0, description="epoch ms the replay starts at (None = now); fixes event times for diffs"
    )
    context_store: str | None = Field(
        None,
        description="USD-M: a store directory whose context kinds (funding, mark_price, open_interest_5m, "
        "...) of each replayed symbol the context endpoints and streams serve, shifted with the replay",
    )
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(0, ge=0, le=65535, description="port (0 = ephemeral)")
    api_key: str = Field("localkey", min_length=1, max_length=128, description="the account's API key")
    api_secret: SecretStr | None = Field(SecretStr("localsecret"), description="HMAC secret of the API key")
    ed25519_public_key: str | None = Field(None, description="PEM Ed25519 public key (then Ed25519 signing)")
    spot_balances: dict[str, float] = Field(
        default_factory=lambda: {"USDT": 100_000.0, "BTC": 1.0, "ETH": 10.0},
        description="initial spot balances per asset",
    )
    futures_wallet: float = Field(100_000.0, ge=0, description="initial USD-M wallet balance, USDT")
    leverage: int = Field(20, ge=1, le=125, description="initial leverage of every USD-M symbol")
    maker_fee: float | None = Field(None, ge=0, le=0.01, description="maker fee rate; None = Binance default")
    taker_fee: float | None = Field(None, ge=0, le=0.01, description="taker fee rate; None = Binance default")
    max_open_orders: int = Field(200, ge=1, le=10_000, description="open orders per symbol (MAX_NUM_ORDERS)")
    max_position: float | None = Field(
        None, gt=0, description="spot only: MAX_POSITION filter (base asset held + open buys); None = none"
    )
    weight_limit: int | None = Field(
        None, ge=1, description="request weight per window; None = 6000 spot / 2400 usdm"
    )
    weight_window_s: float = Field(60.0, gt=0, description="request weight window, s")
    order_limit: int | None = Field(
        None, ge=1, description="new orders per window; None = 100 spot / 300 usdm"
    )
    order_window_s: float = Field(10.0, gt=0, description="order count window, s")
    ban_after: int = Field(
        3, ge=1, description="requests sent during a Retry-After period that earn a 418 ban"
    )
    ban_s: float = Field(120.0, gt=0, description="length of a 418 ban, s")
    listen_key_ttl_s: float = Field(3600.0, gt=0, description="listen key validity without keep-alive, s")
    matching: SimConfig | None = Field(
        None,
        description="lockstep clock only: the simulated exchange's configuration (latency, queue model, "
        "fees) orders are matched with, as in a backtest; None = the backtest's defaults",
    )
    decision_latency_us: float = Field(
        0.0, ge=0, description="lockstep clock only: added to the client's time when an order is sent"
    )

    @model_validator(mode="after")
    def _spot_only(self) -> LocalExchangeConfig:
        if self.max_position is not None and caps(self.market).futures:
            raise ValueError(f"max_position is a spot filter; market is {self.market!r}")
        return self

    @property
    def venue(self) -> str:
        return caps(self.market).venue

    @property
    def secret(self) -> str | None:
        return self.api_secret.get_secret_value() if self.api_secret is not None else None
