"""Configuration of the simulated exchange: fees, latency model, queue model, funding.

Rates are fractions (0.0005 = 5 bp); latencies are milliseconds here and ns in the kernels' record.
``SimConfig.to_record()`` builds the config record the kernels read by field name (``C.maker_fee``).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orderflow.core.records import Derived, RecordSpec

NS_PER_MS = 1_000_000
NS_PER_H = 3_600_000_000_000

Venue = Literal["binance-usdm", "binance-spot", "sim"]
LatencyKind = Literal["constant", "lognormal"]
LATENCY_KINDS: tuple[str, ...] = get_args(LatencyKind)
QueueModel = Literal["risk_averse", "power", "log"]
QUEUE_MODELS: tuple[str, ...] = get_args(QueueModel)

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

    kind: LatencyKind = Field("constant", description="latency model")
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
    queue_model: QueueModel = Field(
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

    def to_record(self) -> np.ndarray:
        """The kernels' config record ``C`` (:data:`RECORD`; kernels read ``rec[0]`` by field name)."""
        return RECORD.build(self)


def _latency_ns(path: str) -> Derived:
    """A latency (or its median) in ms as float64 ns, ``latency.entry_ms`` -> ``entry_ns``."""
    leaf = path.rsplit(".", 1)[1]
    return Derived(leaf[:-3] + "_ns", np.float64, lambda c, _: getattr(c.latency, leaf) * NS_PER_MS, (path,))


def _funding_rate(c: SimConfig, _: object) -> float:
    """Funding applies on perpetual venues only (the portfolio kernel is passed rate 0 elsewhere)."""
    return c.funding_rate if c.perpetual else 0.0


RECORD = RecordSpec(
    SimConfig,
    derived=(
        Derived("maker_fee", np.float64, lambda c, _: c.maker_rate, ("maker_fee",)),
        Derived("taker_fee", np.float64, lambda c, _: c.taker_rate, ("taker_fee",)),
        Derived(
            "latency_kind", np.int64, lambda c, _: LATENCY_KINDS.index(c.latency.kind), ("latency.kind",)
        ),
        _latency_ns("latency.entry_ms"),
        _latency_ns("latency.response_ms"),
        Derived("funding_rate", np.float64, _funding_rate, ("funding_rate",)),
        Derived("funding_ns", np.int64, lambda c, _: c.funding_interval_ns, ("funding_interval_h",)),
        Derived("perpetual", np.bool_, lambda c, _: c.perpetual),
    ),
)
