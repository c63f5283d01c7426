"""Risk limits (``risk:`` section; defaults in ``config/risk.yaml``).

Fractions are of account equity (quote currency) unless stated; durations in seconds here, packed as
int ns into the kernels' config record by :meth:`RiskConfig.to_record`. Per-instrument figures (lot size,
minimum notional) are passed at call time, and the kill switch is runtime state, not configuration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orderflow.core.records import Derived, RecordSpec

NS = 1_000_000_000


class RiskConfigError(ValueError):
    """A risk config file that cannot be used; the message names the file and the key."""


class RiskConfig(BaseModel):
    """Limits, sizing and pacing of entries. See the module docstring for units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_loss_per_trade: float = Field(
        default=0.02,
        ge=0.01,
        le=0.03,
        description="loss at the stop of one entry / equity (sizing target)",
    )
    daily_drawdown: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="drop below the UTC day's first equity that halts entries until 00:00 UTC",
    )
    max_capital_in_use: float = Field(
        default=0.50,
        gt=0,
        le=100,
        description="gross notional of all positions / equity after the entry",
    )
    max_position: float = Field(
        default=0.05,
        gt=0,
        le=100,
        description="notional of this symbol's position / equity after the entry",
    )
    var95_limit: float = Field(
        default=0.02,
        gt=0,
        le=1,
        description="1.645 * vol_horizon * position notional / equity after the entry",
    )
    confidence_floor: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="entries refused below this confidence",
    )
    confidence_full: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="confidence at which the size scale reaches 1",
    )
    min_confidence_scale: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="size scale at confidence_floor (linear up to 1 at confidence_full)",
    )
    max_adds: int = Field(
        default=2,
        ge=0,
        le=100,
        description="same-direction entries added to an open position",
    )
    add_size_factor: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="size multiplier of every add",
    )
    max_holding_s: float = Field(
        default=600.0,
        gt=0,
        description="a position older than this (s) must be closed",
    )
    min_trade_interval_s: float = Field(
        default=5.0,
        ge=0,
        description="least time between two entries (s)",
    )
    max_trades_24h: int = Field(
        default=500,
        ge=1,
        le=1_000_000,
        description="entries allowed in any rolling 24 h window",
    )
    high_vol_percentile: float = Field(
        default=0.95,
        ge=0,
        le=1,
        description="volatility percentile at or above which size is scaled",
    )
    high_vol_size_factor: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="size multiplier in high volatility (0 = no entries)",
    )

    # ---- the book of several symbols (orderflow.risk.portfolio; with one symbol these never bind)
    sizing_equity: Literal["book", "symbol"] = Field(
        default="book",
        description="equity each symbol's own checks read (sizing, its caps, its daily breaker): the "
        "book's, or a sleeve of the initial equity plus the symbol's own PnL; the book's checks read "
        "the book's equity either way",
    )
    symbol_max_trades_24h: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="in a book of several symbols, each symbol's own 24 h entry cap (None: "
        "max_trades_24h, which the book's cap always is)",
    )
    symbol_daily_drawdown: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="in a book of several symbols, each symbol's own daily breaker on the equity its "
        "checks read (sizing_equity) (None: daily_drawdown, which the book's breaker always is)",
    )
    correlation_budget: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="correlated exposure after an entry, sum_j corr(i, j) * signed notional_j in the "
        "entry's direction, / equity (None: max_position, so perfectly correlated symbols share one "
        "position's budget)",
    )
    portfolio_var: Literal["ewma", "historical"] = Field(
        default="ewma",
        description="the book's VaR95: parametric over the EWMA covariance, or historical over the "
        "last cov_history_bars bar returns",
    )
    var_horizon_s: float = Field(
        default=600.0, gt=0, description="horizon of the book's VaR95 (s; returns scale with sqrt(time))"
    )
    cov_bar_s: float = Field(
        default=10.0, gt=0, description="bar length of the returns the covariance is estimated from (s)"
    )
    cov_halflife_bars: float = Field(
        default=60.0, gt=0, description="EWMA half-life of the covariance (bars)"
    )
    cov_min_bars: int = Field(
        default=30,
        ge=2,
        description="bars before the covariance is used: until then correlations count as 1 and the "
        "book's VaR is not checked (each symbol's own VaR still is)",
    )
    cov_history_bars: int = Field(
        default=500, ge=20, le=100_000, description="bar returns kept for the historical VaR"
    )

    @model_validator(mode="after")
    def _check(self) -> RiskConfig:
        if self.confidence_full <= self.confidence_floor:
            raise ValueError(
                f"confidence_full ({self.confidence_full}) must be above confidence_floor "
                f"({self.confidence_floor})"
            )
        return self

    def for_symbol(self) -> RiskConfig:
        """The limits of one symbol's own checks in a book of several: ``symbol_max_trades_24h`` and
        ``symbol_daily_drawdown`` in place of the book's ``max_trades_24h`` and ``daily_drawdown``."""
        upd: dict[str, float | int] = {}
        if self.symbol_max_trades_24h is not None:
            upd["max_trades_24h"] = self.symbol_max_trades_24h
        if self.symbol_daily_drawdown is not None:
            upd["daily_drawdown"] = self.symbol_daily_drawdown
        return self.model_copy(update=upd) if upd else self

    def to_record(self) -> np.ndarray:
        """The kernels' config record (:data:`RECORD`; kernels read ``rec[0]`` by field name)."""
        return RECORD.build(self)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> RiskConfig:
        """Read the ``risk:`` section of a YAML file. Unknown keys, at the top level or inside ``risk:``,
        and out-of-range values raise :class:`RiskConfigError` naming the key and the file."""
        p = Path(path)
        try:
            content = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise RiskConfigError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(content, dict):
            raise RiskConfigError(f"{p}: top level must be a mapping with a 'risk' key")
        extra = sorted(str(k) for k in content if k != "risk")
        if extra:
            raise RiskConfigError(f"{p}: {', '.join(extra)}: unknown key (only 'risk' is read)")
        section = content.get("risk") or {}
        if not isinstance(section, dict):
            raise RiskConfigError(f"{p}: 'risk' must be a mapping of settings")
        try:
            return cls.model_validate(section)
        except ValidationError as e:
            lines = []
            for err in e.errors():
                loc = ".".join(["risk", *(str(x) for x in err["loc"])])
                msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
                lines.append(f"  {loc}: {msg}")
            raise RiskConfigError(f"invalid risk configuration in {p}:\n" + "\n".join(lines)) from None


def _ns(path: str) -> Derived:
    """A duration in seconds as int ns, under the field's name with ``_ns`` for ``_s``."""
    return Derived(path[:-2] + "_ns", np.int64, lambda c, _ctx: round(getattr(c, path) * NS), (path,))


def _horizon_bars(c: RiskConfig, _ctx: object) -> float:
    return c.var_horizon_s / c.cov_bar_s


def _cov_lambda(c: RiskConfig, _ctx: object) -> float:
    return float(0.5 ** (1.0 / c.cov_halflife_bars))


RECORD = RecordSpec(
    RiskConfig,
    skip={
        "symbol_max_trades_24h": "resolved by RiskConfig.for_symbol",
        "symbol_daily_drawdown": "resolved by RiskConfig.for_symbol",
    },
    derived=(
        _ns("max_holding_s"),
        _ns("min_trade_interval_s"),
        _ns("cov_bar_s"),
        Derived(
            "correlation_budget",
            np.float64,
            lambda c, _ctx: c.max_position if c.correlation_budget is None else c.correlation_budget,
            ("correlation_budget",),
        ),
        Derived("var_horizon_bars", np.float64, _horizon_bars, ("var_horizon_s",)),
        Derived("cov_lambda", np.float64, _cov_lambda, ("cov_halflife_bars",)),
    ),
)
