"""Execution: the simulated exchange (matching on an L2 book with latency, queue position and fees) and
the portfolio accounting kernels.

Modules: ``sim_config`` (SimConfig, default_fees), ``sim_layout`` (state arrays, index constants,
status and reason codes), ``sim_latency`` / ``sim_queue`` / ``sim_fills`` / ``sim_kernels`` (numba
kernels, called per event by the backtester's compiled loop), ``sim_exchange`` (the Python wrapper for
paper trading, the local exchange and tests) and ``portfolio`` (position, PnL, fees and funding).
"""
