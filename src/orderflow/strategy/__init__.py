"""Signal fusion (OFI score + AI score), gates, regimes, the adaptive threshold and triple-barrier
exits: numba kernels shared by the backtester and the live engine, and their Python wrapper.

Modules: ``config`` (StrategyConfig, RegimeParams), ``layout`` (gate codes, exit reasons), ``kernels``
(numba) and ``engine`` (Strategy, Decision). Import them directly: this package imports nothing on
its own, so the configuration loads ``strategy.config`` without the numba kernels.
"""
