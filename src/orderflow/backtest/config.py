"""The trading account and simulated venue (``backtest:`` section) and the walk-forward windows
(``walkforward:`` section); defaults in ``config/backtest.yaml``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from orderflow.execution.sim_config import SimConfig


class VenueAccountConfig(BaseModel):
    """The account the engine keeps and the venue it trades on: starting equity, decision latency,
    equity sampling, the fee / latency / queue / funding model of the venue (``exchange``) and whether
    a replay closes the position at its end.

    The backtest replays with it, and the paper and live engines' ``TradingSession`` keeps its
    accounting (equity, fees, funding, equity samples) with the same values, so both report the
    same PnL. It is read from the ``backtest:`` section of ``backtest.yaml``: the section and file
    keep that name (from when only the backtest read it) so existing configuration files keep
    working."""

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
