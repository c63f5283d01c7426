"""orderflow: order-flow and machine-learning trading for Binance."""

__version__ = "0.1.0"
