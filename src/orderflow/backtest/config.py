"""Backtest and walk-forward settings (``backtest:`` and ``walkforward:`` sections; defaults in
``config/backtest.yaml``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from orderflow.execution.sim_config import SimConfig


class BacktestConfig(BaseModel):
    """How a backtest replays (``backtest:`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_equity: float = Field(100_000.0, gt=0, description="starting equity, quote currency")
    decision_latency_us: float = Field(50.0, ge=0, description="from a book event's receipt to the order")
    equity_every_s: float = Field(1.0, gt=0, description="equity sampling interval (strategy time)")
    close_at_end: bool = Field(True, description="close a position still open after the last event")
    exchange: SimConfig = Field(default_factory=SimConfig, description="the simulated exchange")


class WalkForwardConfig(BaseModel):
    """Window lengths of the walk-forward backtest (``walkforward:`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_hours: float = Field(12.0, gt=0, description="training window before each test window")
    test_hours: float = Field(4.0, gt=0, description="test window; windows roll by this much")
    expanding: bool = Field(False, description="train on every sample before the test window")
    min_train_samples: int = Field(500, ge=10, description="skip a window with fewer training samples")
