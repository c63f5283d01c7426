"""Backtest: replay driver, fill and latency models, metrics, walk-forward and reports."""
