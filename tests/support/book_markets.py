"""Hand-built markets for tests of the book: flat books at the same times for every symbol and a strong
buy signal at every event."""

from __future__ import annotations

import numpy as np

from orderflow.backtest.engine import Market, Signals

NS = 1_000_000_000


def flat_market(symbol: str, n: int, mid: float, tick: float) -> Market:
    """``n`` book events one second apart (the same times for every symbol), a trade before each."""
    ts = (np.arange(1, n + 1) * NS + 1_704_067_200 * NS).astype(np.int64)
    L = 5
    bp = np.tile(mid - tick / 2 - tick * np.arange(L), (n, 1))
    ap = np.tile(mid + tick / 2 + tick * np.arange(L), (n, 1))
    sz = np.full((n, L), 50.0)
    one = np.ones(n)
    return Market("binance-usdm", symbol, ts, ts.copy(), bp, sz, ap, sz.copy(), ts - 1, ts - 1, mid * one,
                  one,
                  np.ones(n, np.int64))  # fmt: skip


def strong_buy(n: int, p_up: float) -> Signals:
    one = np.ones(n)
    return Signals(valid=np.ones(n, bool), ofi_z=6.0 * one, p_dn=(0.95 - p_up) * one, p_up=p_up * one,
                   rv_bps=5.0 * one, vol_state=one, trend_state=0.0 * one, vol_pct=0.5 * one)  # fmt: skip
