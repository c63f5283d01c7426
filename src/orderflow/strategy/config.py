"""Strategy parameters (``strategy:`` section; defaults in ``config/strategy.yaml``).

Scores: ``ofi_score = tanh(ofi_z / ofi_scale)`` from one z-scored OFI feature, ``ai_score = p(+1) -
p(-1)`` from the ensemble's calibrated probabilities, ``fused = w_ofi * ofi_score + w_ai * ai_score``.
Exits are triple barriers in units of ``R`` (the labels' volatility unit: ``R = rv / 1e4 *
sqrt(horizon_s / rv_window_s)`` from the ``rv_<window>`` feature, in log-return units).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orderflow.core.records import Derived, RecordSpec

NS = 1_000_000_000


class RegimeParams(BaseModel):
    """Per volatility state (the ``vol_state`` feature: 0 calm, 1 normal, 2 high)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold_mult: tuple[float, float, float] = Field(
        (1.0, 1.0, 1.5), description="fused-threshold multiplier in vol_state 0, 1, 2"
    )
    allow: tuple[bool, bool, bool] = Field((True, True, True), description="entries allowed per vol_state")
    counter_trend_fit: float = Field(
        0.5, ge=0, le=1, description="regime-fit score of an entry against trend_state (with it: 1)"
    )


class StrategyConfig(BaseModel):
    """Signal fusion, gates, exits and the adaptive threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    w_ofi: float = Field(0.6, ge=0, le=1, description="weight of the OFI score in the fused signal")
    w_ai: float = Field(0.4, ge=0, le=1, description="weight of the AI score in the fused signal")
    threshold: float = Field(0.3, gt=0, lt=1, description="|fused| needed for a buy or sell signal")
    ofi_feature: str = Field("ofi_int_z_1s", description="z-scored OFI feature for the OFI score")
    ofi_scale: float = Field(2.0, gt=0, description="ofi_score = tanh(ofi_z / ofi_scale)")
    neutral: float = Field(0.05, ge=0, lt=1, description="|score| below this counts as neutral (quality)")
    confidence_gate: float = Field(
        0.70, ge=0.5, le=1, description="min p(direction) / (p(+1) + p(-1)) from the calibrated ensemble"
    )
    quality_gate: float = Field(0.75, ge=0, le=1, description="min signal quality (see strategy.kernels)")
    ev_cost_mult: float = Field(2.0, ge=0, description="expected value must be >= this x round-trip cost")
    take_profit_r: float = Field(0.9, gt=0, description="take-profit barrier in units of R")
    stop_r: float = Field(1.1, gt=0, description="stop barrier in units of R")
    timeout_s: float = Field(60.0, gt=0, description="vertical barrier: exit after this many seconds")
    trail_start_r: float = Field(0.5, gt=0, description="trailing stop arms once the price moved this x R")
    trail_r: float = Field(0.8, gt=0, description="trailing stop distance from the best price, x R")
    horizon_s: float = Field(60.0, gt=0, description="horizon R is scaled to (the labels' horizon)")
    rv_feature: str = Field("rv_300s", description="realised-volatility feature (bps) for R")
    rv_window_s: float = Field(300.0, gt=0, description="window of rv_feature, seconds")
    min_r: float = Field(1e-5, ge=0, description="floor of R (log-return units)")
    max_book_age_ms: float = Field(2000.0, gt=0, description="older book: signal stale")
    max_trade_age_s: float = Field(30.0, gt=0, description="no trade for this long: signal stale")
    target_trades_per_hour: float = Field(
        4.0, ge=0, description="the adaptive threshold steers toward this entry rate (0: off)"
    )
    adapt_every_s: float = Field(900.0, gt=0, description="threshold adaptation window")
    adapt_step: float = Field(0.1, ge=0, lt=1, description="multiplicative step of the threshold per window")
    threshold_mult_range: tuple[float, float] = Field(
        (0.7, 1.5), description="bounds of the adaptive threshold multiplier (the EV gate never adapts)"
    )
    exit_on_signal: bool = Field(True, description="exit when the fused signal crosses to the other side")
    pyramid: bool = Field(True, description="add to a position on a same-side signal (risk caps the adds)")
    allow_short: bool | None = Field(None, description="None: shorts on futures/sim venues, not on spot")
    regimes: RegimeParams = RegimeParams()

    @model_validator(mode="after")
    def _check(self) -> StrategyConfig:
        if abs(self.w_ofi + self.w_ai - 1.0) > 1e-9:
            raise ValueError(f"strategy: w_ofi + w_ai must be 1, got {self.w_ofi} + {self.w_ai}")
        lo, hi = self.threshold_mult_range
        if not 0 < lo <= 1 <= hi:
            raise ValueError(f"strategy.threshold_mult_range: want 0 < lo <= 1 <= hi, got {lo, hi}")
        return self

    def shorts_allowed(self, venue: str) -> bool:
        return self.allow_short if self.allow_short is not None else venue != "binance-spot"

    def to_record(self, taker_fee: float, venue: str = "sim") -> np.ndarray:
        """The kernels' config record (:data:`RECORD`; kernels read ``rec[0]`` by field name);
        ``taker_fee`` (fraction) enters the EV cost, ``venue`` decides ``allow_short`` when it is None."""
        return RECORD.build(self, taker_fee=taker_fee, venue=venue)


def _ns(path: str, per_unit: float) -> Derived:
    """A duration field in ns (float64, as the kernels compare it with int ns differences)."""
    name = path.rsplit("_", 1)[0] + "_ns"
    return Derived(name, np.float64, lambda c, _ctx: getattr(c, path) * per_unit, (path,))


RECORD = RecordSpec(
    StrategyConfig,
    derived=(
        _ns("timeout_s", NS),
        _ns("max_book_age_ms", 1e6),
        _ns("max_trade_age_s", NS),
        _ns("adapt_every_s", NS),
        Derived("allow_short", np.bool_, lambda c, ctx: c.shorts_allowed(ctx["venue"]), ("allow_short",)),
        Derived("taker_fee", np.float64, lambda _c, ctx: ctx["taker_fee"]),
    ),
    skip={
        "ofi_feature": "a feature name: backtest.engine.make_signals picks the column",
        "rv_feature": "a feature name: backtest.engine.make_signals picks the column",
    },
)
