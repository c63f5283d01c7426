"""orderflow: order-flow and machine-learning trading for Binance."""

from orderflow import kernel_cache as _kernel_cache

__version__ = "0.1.0"

_kernel_cache.configure()  # before any kernel module imports numba (see kernel_cache)
