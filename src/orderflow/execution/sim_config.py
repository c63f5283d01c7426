"""Configuration of the simulated exchange: fees, latency model, queue model, funding.

Rates are fractions (0.0005 = 5 bp); latencies are milliseconds here and ns in the kernel array.
``SimConfig.to_array()`` packs the config into the float64 array the kernels read (indices ``C_*`` in
:mod:`orderflow.execution.sim_layout`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

NS_PER_MS = 1_000_000
NS_PER_H = 3_600_000_000_000

Venue = Literal["binance-usdm", "binance-spot", "sim"]

# (maker, taker) fee rates at Binance's base tier (no BNB discount, VIP 0)
_FEES: dict[str, tuple[float, float]] = {
    "binance-usdm": (0.0002, 0.0005),
    "binance-spot": (0.001, 0.001),
    "sim": (0.0002, 0.0005),
}
_PERPETUAL = {"binance-usdm": True, "binance-spot": False, "sim": True}


def default_fees(venue: str) -> tuple[float, float]:
    """(maker, taker) fee rates of a venue as fractions: binance-usdm 0.0002 / 0.0005, binance-spot
    0.001 / 0.001, sim like binance-usdm."""
    try:
        return _FEES[venue]
    except KeyError:
        raise ValueError(f"unknown venue {venue!r}: use one of {sorted(_FEES)}") from None


class LatencyConfig(BaseModel):
    """Order entry latency (submit -> active at the exchange) and response latency (exchange event ->
    the strategy learns of it). "constant": the ms values; "lognormal": the ms values are medians and
    each message draws median * exp(sigma * z), z standard normal from a seeded RNG held in the state
    (a run is deterministic for a seed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["constant", "lognormal"] = Field("constant", description="latency model")
    entry_ms: float = Field(10.0, ge=0, le=60_000, description="entry latency (or median), ms")
    response_ms: float = Field(10.0, ge=0, le=60_000, description="response latency (or median), ms")
    sigma: float = Field(0.5, ge=0, le=3, description="lognormal sigma (log-space std); unused if constant")
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the lognormal draws")


class SimConfig(BaseModel):
    """Settings of one simulated exchange (one symbol)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    venue: Venue = Field("binance-usdm", description="fee defaults and whether funding applies")
    maker_fee: float | None = Field(
        None, ge=-0.001, le=0.01, description="maker fee rate (fraction); None = default_fees(venue)"
    )
    taker_fee: float | None = Field(
        None, ge=0, le=0.01, description="taker fee rate (fraction); None = default_fees(venue)"
    )
    latency: LatencyConfig = Field(default_factory=LatencyConfig, description="latency model")
    queue_model: Literal["risk_averse", "power", "log"] = Field(
        "risk_averse",
        description="share of a level's cancellations that happened ahead of a resting order: "
        "risk_averse none, power ahead^n/(ahead^n+behind^n), log log(1+ahead)/(log(1+ahead)+log(1+behind))",
    )
    queue_power: float = Field(2.0, gt=0, le=20, description="exponent n of the power queue model")
    funding_rate: float = Field(0.0001, ge=-0.03, le=0.03, description="funding rate per interval (fraction)")
    funding_interval_h: int = Field(8, ge=1, le=24, description="hours between fundings, from 00:00 UTC")
    max_orders: int = Field(256, ge=1, le=1_000_000, description="order table capacity (open orders)")

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        if 24 % self.funding_interval_h:
            raise ValueError(f"funding_interval_h must divide 24, got {self.funding_interval_h}")
        return self

    @property
    def maker_rate(self) -> float:
        return self.maker_fee if self.maker_fee is not None else default_fees(self.venue)[0]

    @property
    def taker_rate(self) -> float:
        return self.taker_fee if self.taker_fee is not None else default_fees(self.venue)[1]

    @property
    def perpetual(self) -> bool:
        """Funding applies (perpetual futures venues)."""
        return _PERPETUAL[self.venue]

    @property
    def funding_interval_ns(self) -> int:
        return self.funding_interval_h * NS_PER_H

    def to_array(self) -> np.ndarray:
        """The float64 config array of the kernels (indices ``C_*``)."""
        # the layout module compiles its numba helpers on import: configuration code stays light
        from orderflow.execution import sim_layout as SL

        C = np.zeros(SL.N_C)
        C[SL.C_MAKER] = self.maker_rate
        C[SL.C_TAKER] = self.taker_rate
        C[SL.C_LAT_KIND] = SL.LATENCY_KINDS.index(self.latency.kind)
        C[SL.C_ENTRY_NS] = self.latency.entry_ms * NS_PER_MS
        C[SL.C_RESP_NS] = self.latency.response_ms * NS_PER_MS
        C[SL.C_LAT_SIGMA] = self.latency.sigma
        C[SL.C_QUEUE_MODEL] = SL.QUEUE_MODELS.index(self.queue_model)
        C[SL.C_QUEUE_N] = self.queue_power
        C[SL.C_FUNDING_RATE] = self.funding_rate if self.perpetual else 0.0
        C[SL.C_FUNDING_NS] = self.funding_interval_ns
        C[SL.C_PERPETUAL] = float(self.perpetual)
        return C
