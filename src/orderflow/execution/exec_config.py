"""Configuration of order execution: slicing (TWAP, iceberg), cost control, allocation and the
resolution of orders whose outcome is unknown.

Fractions are plain fractions (0.2 = 20 %; fees 0.0005 = 5 bp), durations in seconds here and packed
as int ns by :meth:`ExecutionConfig.to_record` into the record ``X`` the numba kernels of
:mod:`orderflow.execution.algos` and :mod:`orderflow.execution.costs` read by field name.
No numba here, so this module imports cheaply.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from orderflow.core.records import Derived, RecordSpec

NS = 1_000_000_000

# slicing algorithms and entry styles; the record holds the index in the Literal (X.slicing_algo,
# X.entry_style)
SlicingAlgo = Literal["twap", "iceberg"]
ALGOS: tuple[str, ...] = get_args(SlicingAlgo)
ALGO_TWAP, ALGO_ICEBERG = range(len(ALGOS))
EntryStyle = Literal["market", "passive"]
ENTRY_STYLES: tuple[str, ...] = get_args(EntryStyle)
STYLE_MARKET, STYLE_PASSIVE = range(len(ENTRY_STYLES))


class ExecutionConfig(BaseModel):
    """How orders are sliced, cost-controlled, allocated and resolved. Every default is documented in
    its field's description."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entry_style: EntryStyle = Field(
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
    slicing_algo: SlicingAlgo = Field(
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

    def to_record(self) -> np.ndarray:
        """The kernels' config record ``X`` (:data:`RECORD`; kernels read ``rec[0]`` by field name)."""
        return RECORD.build(self)


def _ns(path: str) -> Derived:
    """A duration in seconds as int ns, under the field's name with ``_ns`` for ``_s``."""
    return Derived(path[:-2] + "_ns", np.int64, lambda c, _ctx: round(getattr(c, path) * NS), (path,))


RECORD = RecordSpec(ExecutionConfig, derived=(_ns("twap_duration_s"), _ns("passive_ttl_s")))
