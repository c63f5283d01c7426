"""Risk engine: the required gate between signals and orders.

One implementation for backtest, paper and live. The checks, sizing, caps and breakers are numba
kernels over state arrays (:mod:`orderflow.risk.kernels`, layout in :mod:`orderflow.risk.layout`) that
the backtester calls from its compiled event loop; :class:`RiskEngine` calls the same kernels one
event at a time and turns their reason codes and numbers into :class:`RiskDecision` /
:class:`RiskAlert` events. Limits are in :class:`RiskConfig` (defaults in ``config/risk.yaml``).

Units: prices and notionals in quote currency, quantities in base units, times int ns since the
epoch, limits as fractions of equity (0.02 = 2 %).

Import the submodules directly (``from orderflow.risk.engine import RiskEngine``): this package
imports nothing on its own, so the configuration loads ``risk.config`` without the numba kernels.
"""
