"""Seeded context frames for tests of the context wire (the simulator's funding/OI model is not used
here): every kind of :mod:`orderflow.data.context_schema` over a span, built with ``context_schema.frame``.

Values are rounded to what the wire prints (8 decimals for prices, rates and open interest, 4 for ratios
and taker volumes, 3 for liquidation sizes, 2 for liquidation prices), so a row served and parsed back
equals the stored one exactly.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd

from orderflow.data import context_schema as cs

NS = cs.NS
H = 3600 * NS


def make_frames(
    start_ns: int,
    end_ns: int,
    seed: int = 0,
    period: str = "5m",
    funding_start_ns: int | None = None,
    stream_start_ns: int | None = None,
    funding_every_h: int = 8,
) -> dict[str, pd.DataFrame]:
    """Funding every ``funding_every_h`` hours (on multiples of it, UTC, from ``funding_start_ns`` if
    given), the five statistics at ``period``, mark prices every minute and a liquidation every ~17
    minutes (both from ``stream_start_ns`` if given) up to ``end_ns``."""
    rng = np.random.default_rng(seed)
    out: dict[str, pd.DataFrame] = {}
    fh = funding_every_h * H
    f0 = -(-(funding_start_ns or start_ns) // fh) * fh
    ft = np.arange(f0, end_ns, fh, dtype=np.int64)
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
    s_start = stream_start_ns or start_ns
    mt = np.arange(-(-s_start // (60 * NS)) * 60 * NS, end_ns, 60 * NS, dtype=np.int64)
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
    lt = np.arange(s_start + 7 * NS, end_ns, 1013 * NS, dtype=np.int64) // 1_000_000 * 1_000_000
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


SIM_START_NS = 1_704_067_200 * NS  # the simulator's first event (its default start, 2024-01-01 UTC)


@contextmanager
def exchange_with_context(store_dir, frames: dict[str, pd.DataFrame], **kw):
    """A manual-clock USD-M local exchange (simulated market, BTCUSDT) serving ``frames`` (source times:
    the simulator's, shifted with the replay); yields (exchange, shift in ns to the served times)."""
    from orderflow.data.store import Store
    from orderflow.execution.local.testing import running_local_exchange

    write_frames(Store(store_dir), "binance-usdm", "BTCUSDT", frames)
    with running_local_exchange(
        context_store=str(store_dir), sim_hours=kw.pop("sim_hours", 0.01), **kw
    ) as ex:
        off = ex.call(lambda: ex.exchange.venue.timeline.offset)
        yield ex, off - off % 1_000_000
