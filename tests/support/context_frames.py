"""Seeded context frames for tests of the context wire (the simulator's funding/OI model is not used
here): every kind of :mod:`orderflow.data.context_schema` over a span, built with ``context_schema.frame``.

Values are rounded to what the wire prints (8 decimals for prices, rates and open interest, 4 for ratios
and taker volumes, 3 for liquidation sizes, 2 for liquidation prices), so a row served and parsed back
equals the stored one exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orderflow.data import context_schema as cs

NS = cs.NS
H = 3600 * NS


def make_frames(start_ns: int, end_ns: int, seed: int = 0, period: str = "5m") -> dict[str, pd.DataFrame]:
    """Funding every 8 h (on multiples of 8 h UTC), the five statistics at ``period``, mark prices every
    minute and a liquidation every ~17 minutes in [start_ns, end_ns)."""
    rng = np.random.default_rng(seed)
    out: dict[str, pd.DataFrame] = {}
    f0 = -(-start_ns // (8 * H)) * (8 * H)
    ft = np.arange(f0, end_ns, 8 * H, dtype=np.int64)
    out["funding"] = cs.frame(
        "funding",
        ft,
        ft,
        rate=np.round(rng.normal(1e-4, 5e-5, ft.size), 8),
        mark_price=np.round(60000 + rng.normal(0, 300, ft.size), 8),
    )
    step = cs.PERIODS[period] * NS
    p0 = -(-start_ns // step) * step
    pt = np.arange(p0, end_ns, step, dtype=np.int64)
    n = pt.size
    for stem in cs.PERIODIC:
        kind = cs.periodic_kind(stem, period)
        recv = cs.publication_ns(kind, pt)
        if stem == "open_interest":
            oi = np.round(80000 + np.cumsum(rng.normal(0, 50, n)), 8)
            vals = {"open_interest": oi, "open_interest_value": np.round(oi * 60000.5, 8)}
        elif stem == "taker_ratio":
            buy, sell = np.round(rng.uniform(100, 900, n), 4), np.round(rng.uniform(100, 900, n), 4)
            vals = {"buy_sell_ratio": np.round(buy / sell, 4), "buy_volume": buy, "sell_volume": sell}
        else:
            long = np.round(rng.uniform(0.3, 0.7, n), 4)
            short = np.round(1 - long, 4)
            vals = {"ratio": np.round(long / short, 4), "long_share": long, "short_share": short}
        out[kind] = cs.frame(kind, pt, recv, **vals)
    mt = np.arange(-(-start_ns // (60 * NS)) * 60 * NS, end_ns, 60 * NS, dtype=np.int64)
    mark = np.round(60000 + np.cumsum(rng.normal(0, 5, mt.size)), 8)
    out["mark_price"] = cs.frame(
        "mark_price",
        mt,
        mt + 2_000_000,
        mark_price=mark,
        index_price=np.round(mark - 3.5, 8),
        est_settle_price=np.round(mark - 1.25, 8),
        funding_rate=np.round(rng.normal(1e-4, 2e-5, mt.size), 8),
        next_funding_ns=(mt // (8 * H) + 1) * (8 * H),
    )
    lt = np.arange(start_ns + 7 * NS, end_ns, 1013 * NS, dtype=np.int64) // 1_000_000 * 1_000_000
    qty = np.round(rng.uniform(0.001, 2.0, lt.size), 3)
    out["liquidation"] = cs.frame(
        "liquidation",
        lt,
        lt + 3_000_000,
        side=np.where(rng.random(lt.size) < 0.5, 1, -1),
        price=np.round(60000 + rng.normal(0, 200, lt.size), 2),
        avg_price=np.round(60000 + rng.normal(0, 200, lt.size), 2),
        qty=qty,
        filled_qty=qty,
    )
    return out


def write_frames(store, venue: str, symbol: str, frames: dict[str, pd.DataFrame]) -> None:
    for kind, df in frames.items():
        store.put(venue, symbol, kind, df, source=f"test-{kind}")
