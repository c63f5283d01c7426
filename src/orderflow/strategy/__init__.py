"""Signal fusion (OFI score + AI score), gates, regimes, the adaptive threshold and triple-barrier
exits: numba kernels shared by the backtester and the live engine, and their Python wrapper."""

from orderflow.strategy.config import RegimeParams, StrategyConfig
from orderflow.strategy.engine import Decision, Strategy

__all__ = ["Decision", "RegimeParams", "Strategy", "StrategyConfig"]
