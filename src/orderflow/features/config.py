"""Settings of the feature package: the feature engines (``features:``), their technical group,
triple-barrier labels (``labels:``) and feature selection (``selection:``).

Pydantic models only (numpy for the level weights): the aggregate configuration imports this module
without loading numba, TA-Lib or pandas. The code they configure: ``engine`` / ``batch`` (features),
``technical``, ``labels``, ``selection``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orderflow.core.timeutil import interval_ns


class TechnicalConfig(BaseModel):
    """Bar intervals of the technical group and the stream's recompute window (bars)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intervals: tuple[str, ...] = Field(("1m", "5m"), description="bar intervals, e.g. 1m, 5m")
    lookback_bars: int = Field(
        1000, ge=200, le=100_000, description="most bars an indicator is computed over (see module doc)"
    )

    @field_validator("intervals")
    @classmethod
    def _check_intervals(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("technical.intervals must name at least one interval")
        if len(set(v)) != len(v):
            raise ValueError(f"technical.intervals has duplicates: {v}")
        for iv in v:
            interval_ns(iv)  # raises ValueError naming the bad interval
        return v


# Binance's statistics periods (= orderflow.data.context_schema.PERIODS, not imported: it loads pandas)
STAT_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")


class ContextFeatureConfig(BaseModel):
    """The market context group (``features.context``; ``features/context.py``). Off by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: str = Field("5m", description="period of the statistics read (open interest, ratios, taker)")
    oi_window: int = Field(12, ge=1, le=1000, description="periods in the open-interest and price change")
    funding_z_window: int = Field(21, ge=2, le=1000, description="settled funding rates in the z-score")
    premium_halflife_s: float = Field(3600.0, gt=0, description="half-life of the time-weighted premium")
    taker_bad_threshold: float = Field(
        0.02, gt=0, le=1, description="|Binance - own taker buy share| above which the period is flagged"
    )
    liq_bucket_s: int = Field(60, ge=1, le=86_400, description="UTC bucket of the liquidation notionals")

    @field_validator("period")
    @classmethod
    def _check_period(cls, v: str) -> str:
        if v not in STAT_PERIODS:
            raise ValueError(f"context.period must be one of {', '.join(STAT_PERIODS)}, got {v!r}")
        return v

    @property
    def period_s(self) -> int:
        return interval_ns(self.period) // 1_000_000_000


Windows = tuple[float, ...]


class FeatureConfig(BaseModel):
    """Settings of the feature engines. Times are event time in seconds; windows hold ts > t - w."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    levels: int = Field(10, ge=1, le=20, description="book levels L used (the stored book has 20)")
    zscore_window: int = Field(1200, ge=2, description="samples (book events) in the rolling z-scores")
    momentum_windows_s: Windows = Field((1.0, 5.0, 30.0), description="OFI sums and mid returns")
    vol_windows_s: Windows = Field((10.0, 60.0), description="std of per-event OFI and per-trade flow")
    rv_windows_s: Windows = Field((10.0, 60.0, 300.0), description="realized vol of mid log returns")
    cvd_windows_s: Windows = Field((1.0, 5.0, 30.0, 60.0), description="CVD change windows")
    trade_windows_s: Windows = Field((5.0, 30.0), description="buy/sell volume, counts, trade stats")
    level_window_s: float = Field(1.0, gt=0, description="window of the normalised per-level OFI sums")
    ofi_weights: Literal["inverse"] | tuple[float, ...] = Field(
        "inverse", description="'inverse' = 1/m, or one weight per level; normalised to sum 1"
    )
    integrated_weights: tuple[float, ...] | None = Field(
        None,
        description="PCA loadings from fit_integrated_weights (unit L1 norm); None = equal weights 1/L",
    )
    depth_halflife_s: float = Field(60.0, gt=0, description="half-life of the running average depth D_m")
    kyle_buckets: int = Field(60, ge=3, description="closed 1 s buckets in Kyle's lambda and Amihud")
    vpin_bucket_notional: float = Field(250_000.0, gt=0, description="VPIN volume bucket, quote notional")
    vpin_buckets: int = Field(50, ge=1, description="VPIN buckets K")
    regime_vol_windows_s: tuple[float, float] = Field(
        (60.0, 300.0), description="short and long rv windows of the regime (must be in rv_windows_s)"
    )
    vol_state_thresholds: tuple[float, float] = Field((0.8, 1.25), description="vol_ratio cut points")
    vol_pct_buckets: int = Field(300, ge=2, description="1 s bucket closes in the vol percentile")
    trend_halflives_s: tuple[float, float] = Field((30.0, 300.0), description="fast/slow EWMA of log mid")
    trend_threshold: float = Field(0.5, ge=0, description="|trend_strength| above which trend_state != 0")
    futures: bool = Field(True, description="add time-to-funding features")
    funding_hours: tuple[float, ...] = Field((0.0, 8.0, 16.0), description="UTC funding hours")
    technical: TechnicalConfig | None = Field(
        default_factory=TechnicalConfig, description="technical group (None = off)"
    )
    context: ContextFeatureConfig | None = Field(
        None, description="market context group (None = off; config/examples/context enables it)"
    )
    require_technical_warm: bool = Field(
        False, description="True: vectors stay 'warmup' until every technical value is defined"
    )
    tick_size: float | None = Field(None, gt=0, description="price tick (spread in ticks); required")
    warmup_s: float = Field(300.0, gt=0, description="event time after start/reset before vectors are valid")
    book_capacity: int = Field(1 << 16, ge=16, description="book ring size (events in the longest window)")
    trade_capacity: int = Field(1 << 17, ge=16, description="trade ring size (trades in the longest window)")

    @model_validator(mode="after")
    def _check(self) -> FeatureConfig:
        for name in (
            "momentum_windows_s",
            "vol_windows_s",
            "rv_windows_s",
            "cvd_windows_s",
            "trade_windows_s",
        ):
            v = getattr(self, name)
            if not v or any(w <= 0 for w in v) or len(set(v)) != len(v):
                raise ValueError(f"{name} must be distinct positive seconds, got {v}")
        if self.ofi_weights != "inverse" and len(self.ofi_weights) != self.levels:
            raise ValueError(f"ofi_weights has {len(self.ofi_weights)} weights for {self.levels} levels")
        if self.integrated_weights is not None and len(self.integrated_weights) != self.levels:
            raise ValueError(
                f"integrated_weights has {len(self.integrated_weights)} weights for {self.levels} levels"
            )
        for w in self.regime_vol_windows_s:
            if w not in self.rv_windows_s:
                raise ValueError(f"regime_vol_windows_s {w} is not in rv_windows_s {self.rv_windows_s}")
        if not self.funding_hours or any(not 0 <= h < 24 for h in self.funding_hours):
            raise ValueError(f"funding_hours must be in [0, 24), got {self.funding_hours}")
        longest = max(
            *self.momentum_windows_s, *self.vol_windows_s, *self.rv_windows_s, *self.cvd_windows_s,
            *self.trade_windows_s, self.level_window_s, self.trend_halflives_s[1], self.kyle_buckets,
            self.vol_pct_buckets,
        )  # fmt: skip
        if self.warmup_s < longest:
            raise ValueError(f"warmup_s {self.warmup_s} is shorter than the longest window ({longest} s)")
        return self

    @property
    def divergence_window_s(self) -> float:
        """Window of the flow-price divergence features: the longest momentum window."""
        return max(self.momentum_windows_s)

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(weighted, integrated) level weights. Weighted: 1/m or the configured ones, summing to 1;
        integrated: the fitted loadings, or equal weights 1/L (unit L1 norm, like fitted loadings)."""
        L = self.levels
        w = 1.0 / np.arange(1, L + 1) if self.ofi_weights == "inverse" else np.array(self.ofi_weights, float)
        if w.sum() == 0:
            raise ValueError("ofi_weights sum to 0")
        u = np.full(L, 1.0 / L) if self.integrated_weights is None else np.array(self.integrated_weights)
        return w / w.sum(), u


class LabelConfig(BaseModel):
    """Triple-barrier parameters. Give ``vol_window_n`` (a count of returns) instead of the default
    ``vol_window_s`` to measure volatility over a number of events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pt: float = Field(0.9, gt=0, description="upper barrier in units of R")
    sl: float = Field(1.1, gt=0, description="lower barrier in units of R")
    horizon_s: float = Field(60.0, gt=0, description="vertical barrier, seconds after the sample")
    vol_window_s: float | None = Field(300.0, gt=0, description="volatility window / EWM time constant")
    vol_window_n: int | None = Field(None, ge=2, description="volatility window as a count of returns")
    vol_kind: Literal["ewm", "rolling"] = "ewm"
    min_vol: float = Field(0.0, ge=0, description="floor of R (log-return units)")

    @model_validator(mode="before")
    @classmethod
    def _count_window_replaces_time(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("vol_window_n") is not None and "vol_window_s" not in data:
            data = {**data, "vol_window_s": None}
        return data

    @model_validator(mode="after")
    def _one_window(self) -> LabelConfig:
        if (self.vol_window_s is None) == (self.vol_window_n is None):
            raise ValueError("LabelConfig: give exactly one of vol_window_s and vol_window_n")
        return self


class SelectionConfig(BaseModel):
    """Walk-forward feature-selection parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_keep: int = Field(50, ge=1, description="features to keep")
    n_folds: int = Field(5, ge=1, description="test folds")
    embargo_s: float = Field(60.0, ge=0, description="embargo after each test fold")
    scheme: Literal["walk_forward", "purged_kfold"] = "walk_forward"
    model: Literal["lightgbm", "random_forest"] = "lightgbm"
    n_estimators: int = Field(100, ge=1)
    n_repeats: int = Field(3, ge=1, description="permutation-importance shuffles per feature")
    min_train_samples: int = Field(200, ge=2, description="skip folds with fewer training samples")
    sample_every_s: float = Field(
        1.0,
        ge=0,
        description="keep at most one sample per this many seconds (0 = all): book events "
        "arrive many times a second and their labels overlap almost entirely",
    )
    max_importance_rows: int = Field(
        5000, ge=100, description="permutation importance on at most this many evenly spaced test rows"
    )
    seed: int = 0
