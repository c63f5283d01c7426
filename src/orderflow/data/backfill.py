"""Backfill closed klines from Binance REST into the store as ``bar_<interval>`` rows.

Pages through ``GET klines`` (1500 per request on USD-M, 1000 on spot) from ``start_ns`` to ``end_ns``
and writes the bars in chunks whose source tag names the chunk's first open time, so running the same
backfill again replaces rather than duplicates rows.
"""

from __future__ import annotations

import asyncio
import logging

from orderflow.adapters.binance.common.endpoints import BinanceEndpoints, default_endpoints
from orderflow.adapters.binance.common.venues import caps
from orderflow.adapters.binance.market import BinanceRest
from orderflow.core.events import Bar
from orderflow.core.timeutil import NS_PER_MS, interval_ns, ns_to_iso
from orderflow.data.schema import bars_frame
from orderflow.data.store import Store

log = logging.getLogger(__name__)


async def backfill_klines_async(
    store: Store,
    market: str,
    symbol: str,
    interval: str,
    start_ns: int,
    end_ns: int,
    endpoints: BinanceEndpoints | None = None,
    limit: int | None = None,
    chunk_rows: int = 50_000,
    rest: BinanceRest | None = None,
) -> int:
    """Fetch closed ``interval`` klines of ``symbol`` opening in [start_ns, end_ns) and store them;
    returns the number of bars written."""
    iv = interval_ns(interval)
    if end_ns <= start_ns:
        raise ValueError(
            f"backfill {symbol} {interval}: end {ns_to_iso(end_ns)} is not after start {ns_to_iso(start_ns)}"
        )
    endpoints = endpoints or default_endpoints(market)  # type: ignore[arg-type]
    limit = limit or caps(endpoints.market).klines_max_limit
    own = rest is None
    client = rest or BinanceRest(endpoints)
    sym = symbol.upper()
    kind = f"bar_{interval}"
    total = 0
    pending: list[Bar] = []

    def write() -> None:
        nonlocal total, pending
        if not pending:
            return
        src = f"klines-{interval}-{pending[0].ts_open // NS_PER_MS}"
        store.write(endpoints.venue, sym, kind, bars_frame(pending), source=src)
        total += len(pending)
        pending = []

    cursor = start_ns
    pages = 0
    try:
        while cursor < end_ns:
            bars = await client.klines(sym, interval, cursor // NS_PER_MS, (end_ns - 1) // NS_PER_MS, limit)
            pages += 1
            bars = [b for b in bars if start_ns <= b.ts_open < end_ns and b.ts_open >= cursor]
            if not bars:
                break
            pending.extend(bars)
            cursor = bars[-1].ts_open + iv
            log.info(
                "backfill %s %s %s: page %d, %d bars, up to %s",
                endpoints.venue,
                sym,
                interval,
                pages,
                total + len(pending),
                ns_to_iso(bars[-1].ts_event),
            )
            if len(pending) >= chunk_rows:
                write()
        write()
    finally:
        if own:
            await client.close()
    log.info("backfill %s %s %s: %d bars in %d pages", endpoints.venue, sym, interval, total, pages)
    return total


def backfill_klines(
    store: Store,
    market: str,
    symbol: str,
    interval: str,
    start_ns: int,
    end_ns: int,
    endpoints: BinanceEndpoints | None = None,
    limit: int | None = None,
) -> int:
    """Blocking :func:`backfill_klines_async` (for the CLI)."""
    return asyncio.run(
        backfill_klines_async(store, market, symbol, interval, start_ns, end_ns, endpoints, limit)
    )
