"""Configuration of order execution: slicing (TWAP, iceberg), cost control, allocation and the
resolution of orders whose outcome is unknown.

Fractions are plain fractions (0.2 = 20 %; fees 0.0005 = 5 bp), durations in seconds here and packed
as int-valued ns by :meth:`ExecutionConfig.to_array` into the float64 array ``X`` the numba kernels of
:mod:`orderflow.execution.algos` and :mod:`orderflow.execution.costs` read (indices ``X_*`` below).
No numba here, so this module imports cheaply.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

NS = 1_000_000_000

# slicing algorithms (X[X_ALGO])
ALGO_TWAP, ALGO_ICEBERG = range(2)
ALGOS = ("twap", "iceberg")

# indices into X (float64)
(
    X_MAX_SHARE,  # max_share_of_depth
    X_DEPTH_LEVELS,  # depth_levels
    X_ALGO,  # ALGO_TWAP / ALGO_ICEBERG
    X_TWAP_DURATION_NS,  # twap_duration_s in ns
    X_TWAP_MAX_CHILDREN,  # twap_max_children
    X_ICE_CLIP_SHARE,  # iceberg_clip_share
    X_ICE_OFFSET_TICKS,  # iceberg_offset_ticks
    X_MAX_COST_SHARE,  # max_cost_share_of_ev
    X_MAX_REPRICE_TICKS,  # max_reprice_ticks
    X_MAKER_FEE,  # maker_fee
    X_TAKER_FEE,  # taker_fee
    X_ALLOC_FLOOR,  # alloc_confidence_floor
    X_ALLOC_SYMBOL_CAP,  # alloc_max_symbol_share
    X_ENTRY_STYLE,  # STYLE_MARKET / STYLE_PASSIVE
    X_PASSIVE_TTL_NS,  # passive_ttl_s in ns
) = range(15)
N_X = 15

# entry styles (X[X_ENTRY_STYLE])
STYLE_MARKET, STYLE_PASSIVE = range(2)
ENTRY_STYLES = ("market", "passive")


class ExecutionConfig(BaseModel):
    """How orders are sliced, cost-controlled, allocated and resolved. Every default is documented in
    its field's description."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entry_style: Literal["market", "passive"] = Field(
        "market",
        description="how the trading core enters: market orders (TWAP children when sliced), or passive "
        "post-only limits at the own touch (iceberg clips when sliced) kept at most passive_ttl_s and "
        "cost-controlled (default market)",
    )
    passive_ttl_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="passive entries: cancel what is unfilled after this long, s (default 10)",
    )
    max_share_of_depth: float = Field(
        0.2,
        gt=0,
        le=1,
        description="an order above this share of the visible depth on its side is sliced (default 0.2)",
    )
    depth_levels: int = Field(5, ge=1, le=100, description="book levels counted as visible depth (default 5)")
    slicing_algo: Literal["twap", "iceberg"] = Field(
        "twap", description="how an order above the depth share is split (default twap)"
    )
    twap_duration_s: float = Field(
        60.0, gt=0, le=86_400, description="TWAP: children spread evenly over this many seconds (default 60)"
    )
    twap_max_children: int = Field(
        20, ge=2, le=1000, description="TWAP: most children of one parent (default 20)"
    )
    iceberg_clip_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="iceberg: visible clip as a share of the visible depth on its side (default 0.1)",
    )
    iceberg_offset_ticks: int = Field(
        0,
        ge=0,
        le=1000,
        description="iceberg: clip limit this many ticks behind the touch, 0 = at the touch (default 0)",
    )
    max_cost_share_of_ev: float = Field(
        0.5,
        gt=0,
        le=10,
        description="expected cost above this share of the signal's expected value: reprice or cancel "
        "(default 0.5)",
    )
    max_reprice_ticks: int = Field(
        2, ge=0, le=10_000, description="a reprice moves a limit toward the touch by at most this (default 2)"
    )
    maker_fee: float = Field(
        0.0002,
        ge=-0.001,
        le=0.01,
        description="maker fee rate for cost estimates (default 0.0002, USD-M VIP0)",
    )
    taker_fee: float = Field(
        0.0005, ge=0, le=0.01, description="taker fee rate for cost estimates (default 0.0005, USD-M VIP0)"
    )
    alloc_confidence_floor: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="allocation: signals at or below this confidence get nothing; weight = confidence - "
        "floor (default 0.5)",
    )
    alloc_max_symbol_share: float = Field(
        0.5, gt=0, le=1, description="allocation: most of the budget one symbol may receive (default 0.5)"
    )
    resolve_retry_s: float = Field(
        1.0,
        gt=0,
        le=600,
        description="wait between order queries while resolving an 'unknown' order whose query failed "
        "(default 1.0)",
    )
    resolve_attempts: int = Field(
        5,
        ge=1,
        le=1000,
        description="queries tried per resolution before the order stays 'unknown' (default 5)",
    )

    def to_array(self) -> np.ndarray:
        """The config as the float64 array ``X`` the kernels read (indices ``X_*``)."""
        X = np.zeros(N_X, dtype=np.float64)
        X[X_MAX_SHARE] = self.max_share_of_depth
        X[X_DEPTH_LEVELS] = self.depth_levels
        X[X_ALGO] = ALGOS.index(self.slicing_algo)
        X[X_TWAP_DURATION_NS] = round(self.twap_duration_s * NS)
        X[X_TWAP_MAX_CHILDREN] = self.twap_max_children
        X[X_ICE_CLIP_SHARE] = self.iceberg_clip_share
        X[X_ICE_OFFSET_TICKS] = self.iceberg_offset_ticks
        X[X_MAX_COST_SHARE] = self.max_cost_share_of_ev
        X[X_MAX_REPRICE_TICKS] = self.max_reprice_ticks
        X[X_MAKER_FEE] = self.maker_fee
        X[X_TAKER_FEE] = self.taker_fee
        X[X_ALLOC_FLOOR] = self.alloc_confidence_floor
        X[X_ALLOC_SYMBOL_CAP] = self.alloc_max_symbol_share
        X[X_ENTRY_STYLE] = ENTRY_STYLES.index(self.entry_style)
        X[X_PASSIVE_TTL_NS] = round(self.passive_ttl_s * NS)
        return X
