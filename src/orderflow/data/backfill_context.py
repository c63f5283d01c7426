"""Backfill context series (issue 19) from Binance USD-M REST and alternative.me into the store.

Series and their pages (:mod:`orderflow.adapters.binance.context` has the wire side):

- ``funding``: ``GET /fapi/v1/fundingRate``, 1000 funding times a page;
- ``open_interest``, ``ls_global``, ``ls_top_accounts``, ``ls_top_positions``, ``taker_ratio`` at one
  ``period`` (kinds ``<stem>_<period>``): ``GET /futures/data/*``, 500 periods a page, **only the latest
  30 days** of the server's clock: an older start is moved to the window's start (one warning line) and
  the rest is fetched;
- ``fear_greed`` (venue ``alternative.me``, symbol ``FNG``): one ``GET /fng/?limit=N`` of the days
  from the start to now.

Mark prices and liquidations have no REST history: ``orderflow data record --context`` records them.

Resumable: each series starts after the last row already stored in [start, end) (its key is
``ts_event``), and rows are written in chunks whose source tag names the chunk's first time
(``context-<kind>-<ms>``), each chunk one store transaction; a run killed at any point loses at most the
chunk in flight, and the next run continues from what is stored. The store drops rows whose key it
holds, so a second run adds nothing. Pacing: the market client's weight limiter plus the per-IP request
windows of these endpoints; each page is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from orderflow.adapters.binance.common.endpoints import BinanceEndpoints, default_endpoints
from orderflow.adapters.binance.common.errors import BinanceError
from orderflow.adapters.binance.context import (
    FEAR_GREED_URL,
    FUNDING_MAX_LIMIT,
    STATS_MAX_LIMIT,
    ContextRest,
    FearGreedClient,
)
from orderflow.adapters.binance.market import BinanceRest
from orderflow.core.timeutil import NS_PER_MS, ns_to_iso
from orderflow.data import context_schema as cs
from orderflow.data.importers.context import FEAR_GREED_DELAY_S
from orderflow.data.store import Store

log = logging.getLogger(__name__)
DAY_NS = 86_400 * cs.NS
WINDOW_MARGIN_NS = 60 * cs.NS  # start this far inside the 30-day window (clocks differ a little)
FEAR_GREED_VENUE, FEAR_GREED_SYMBOL = "alternative.me", "FNG"
DEFAULT_SERIES = ("funding", *cs.PERIODIC)
SERIES = (*DEFAULT_SERIES, "fear_greed")


@dataclass
class BackfillReport:
    """Rows written and pages fetched per stored kind, and the one-line notes (e.g. the 30-day window)."""

    rows: dict[str, int] = field(default_factory=dict)
    pages: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "pages": self.pages, "notes": self.notes}


def resolve_series(names: Sequence[str] | None, period: str) -> list[tuple[str, str]]:
    """(series, stored kind) of ``names`` (series names, or periodic kinds such as ``ls_global_1h``);
    default: funding and the five statistics at ``period``. Unknown names are refused by name."""
    if period not in cs.PERIODS:
        raise ValueError(f"unknown statistics period {period!r} (known: {', '.join(cs.PERIODS)})")
    out: list[tuple[str, str]] = []
    for name in names or DEFAULT_SERIES:
        stem, p = cs.split_kind(name)
        if p is not None:
            pair = (stem, name)
        elif name in cs.PERIODIC:
            pair = (name, cs.periodic_kind(name, period))
        elif name in ("funding", "fear_greed"):
            pair = (name, name)
        elif name in ("mark_price", "liquidation"):
            raise ValueError(f"{name} has no REST history; record it with `orderflow data record --context`")
        else:
            raise ValueError(
                f"unknown context series {name!r} (known: {', '.join(SERIES)}, or a kind such as "
                "open_interest_1h)"
            )
        if pair not in out:
            out.append(pair)
    return out


class _Writer:
    """Pending rows of one kind, written in chunks tagged with their first time."""

    def __init__(
        self, store: Store, venue: str, symbol: str, kind: str, chunk_rows: int, report: BackfillReport
    ):
        self.store, self.venue, self.symbol, self.kind = store, venue, symbol, kind
        self.chunk_rows, self.report = chunk_rows, report
        self.pending: list[pd.DataFrame] = []
        self.n = 0
        report.rows.setdefault(kind, 0)

    def add(self, df: pd.DataFrame) -> None:
        self.pending.append(df)
        self.n += len(df)
        if self.n >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        df = pd.concat(self.pending, ignore_index=True)
        src = f"context-{self.kind}-{int(df['ts_event'].iloc[0]) // NS_PER_MS}"
        st = self.store.put(self.venue, self.symbol, self.kind, df, source=src)
        self.report.rows[self.kind] += st.rows_written
        self.pending, self.n = [], 0


def _resume_from(
    store: Store, venue: str, symbol: str, kind: str, start_ns: int, end_ns: int, step: int
) -> int:
    stored = store.read(venue, symbol, kind, start_ns, end_ns, columns=["ts_event"])
    if stored.empty:
        return start_ns
    return int(stored["ts_event"].max()) + step


async def _pages(
    fetch: Callable[[int, int], object],
    kind: str,
    cursor: int,
    end_ns: int,
    step: int,
    limit: int,
    writer: _Writer,
    report: BackfillReport,
) -> None:
    """Page from ``cursor`` to ``end_ns``: each page starts one ``step`` after the last row."""
    pages = 0
    while cursor < end_ns:
        df = await fetch(cursor // NS_PER_MS, (end_ns - 1) // NS_PER_MS)  # type: ignore[misc]
        pages += 1
        full = len(df) >= limit
        t = df["ts_event"].to_numpy()
        df = df[(t >= cursor // NS_PER_MS * NS_PER_MS) & (t < end_ns)]  # the wire's times are whole ms
        if df.empty:
            break
        writer.add(df.reset_index(drop=True))
        cursor = int(df["ts_event"].iloc[-1]) + step
        log.info(
            "backfill-context %s %s: page %d, %d rows, up to %s",
            writer.symbol,
            kind,
            pages,
            report.rows[kind] + writer.n,
            ns_to_iso(int(df["ts_event"].iloc[-1])),
        )
        if not full:
            break
    writer.flush()
    report.pages[kind] = report.pages.get(kind, 0) + pages


async def backfill_context_async(
    store: Store,
    symbol: str,
    start_ns: int,
    end_ns: int,
    series: Sequence[str] | None = None,
    period: str = "5m",
    endpoints: BinanceEndpoints | None = None,
    fear_greed_url: str = FEAR_GREED_URL,
    limits: dict[str, int] | None = None,
    chunk_rows: int = 5000,
    rest: BinanceRest | None = None,
    clock: Callable[[], int] = time.time_ns,
) -> BackfillReport:
    """Backfill ``series`` (:func:`resolve_series`) of ``symbol`` for [start_ns, end_ns); ``limits``
    overrides the page size per series (``funding``, ``stats``, for tests of page boundaries)."""
    if end_ns <= start_ns:
        raise ValueError(
            f"backfill-context {symbol}: end {ns_to_iso(end_ns)} is not after start {ns_to_iso(start_ns)}"
        )
    todo = resolve_series(series, period)
    endpoints = endpoints or default_endpoints("usdm")
    if not endpoints.futures:
        raise ValueError("backfill-context: the context endpoints are USD-M only (not spot)")
    limits = limits or {}
    f_limit = limits.get("funding", FUNDING_MAX_LIMIT)
    s_limit = limits.get("stats", STATS_MAX_LIMIT)
    sym = symbol.upper()
    report = BackfillReport()
    own = rest is None
    client = rest or BinanceRest(endpoints, clock=clock)
    ctx = ContextRest(client, clock=clock)
    venue = endpoints.venue
    try:
        stats_start: int | None = None
        for name, kind in todo:
            if name == "fear_greed":
                await _fear_greed(store, start_ns, end_ns, fear_greed_url, chunk_rows, report, clock)
                continue
            writer = _Writer(store, venue, sym, kind, chunk_rows, report)
            if name == "funding":
                cursor = _resume_from(store, venue, sym, kind, start_ns, end_ns, NS_PER_MS)

                async def fetch_f(a: int, b: int) -> pd.DataFrame:
                    return await ctx.funding_rates(sym, a, b, f_limit)

                await _pages(fetch_f, kind, cursor, end_ns, NS_PER_MS, f_limit, writer, report)
                continue
            if stats_start is None:  # the 30-day window, on the server's clock
                now = await client.server_time() * NS_PER_MS
                oldest = now - cs.STATS_HISTORY_DAYS * DAY_NS + WINDOW_MARGIN_NS
                stats_start = max(start_ns, oldest)
                if stats_start > start_ns:
                    note = (
                        f"/futures/data/* serve only the latest {cs.STATS_HISTORY_DAYS} days: statistics "
                        f"from {ns_to_iso(stats_start)}, not {ns_to_iso(start_ns)}"
                    )
                    log.warning("backfill-context %s: %s", sym, note)
                    report.notes.append(note)
            step = cs.PERIODS[cs.split_kind(kind)[1] or period] * cs.NS
            kperiod = cs.split_kind(kind)[1] or period
            cursor = _resume_from(store, venue, sym, kind, stats_start, end_ns, step)
            cursor = max(cursor, stats_start)

            async def fetch_s(a: int, b: int, stem: str = name, p: str = kperiod) -> pd.DataFrame:
                return await ctx.statistics(stem, sym, p, a, b, s_limit)

            await _pages(fetch_s, kind, cursor, end_ns, step, s_limit, writer, report)
    finally:
        if own:
            await client.close()
    log.info("backfill-context %s: rows %s in pages %s", sym, report.rows, report.pages)
    return report


async def _fear_greed(
    store: Store,
    start_ns: int,
    end_ns: int,
    url: str,
    chunk_rows: int,
    report: BackfillReport,
    clock: Callable[[], int],
) -> None:
    kind = "fear_greed"
    writer = _Writer(store, FEAR_GREED_VENUE, FEAR_GREED_SYMBOL, kind, chunk_rows, report)
    cursor = _resume_from(store, FEAR_GREED_VENUE, FEAR_GREED_SYMBOL, kind, start_ns, end_ns, DAY_NS)
    if cursor >= end_ns:
        report.pages[kind] = 0
        return
    days = int((clock() - cursor) // DAY_NS) + 2  # the days from the cursor's to today's, inclusive
    async with FearGreedClient(url) as fg:
        try:
            df = await fg.history(max(days, 1), FEAR_GREED_DELAY_S)
        except BinanceError as e:
            raise BinanceError(f"fear & greed backfill from {url}: {e}") from None
    report.pages[kind] = 1
    t = df["ts_event"].to_numpy()
    df = df[(t >= cursor) & (t < end_ns)].reset_index(drop=True)
    if not df.empty:
        writer.add(df)
    writer.flush()
    log.info("backfill-context fear & greed: %d days from %s", len(df), url)


def backfill_context(store: Store, symbol: str, start_ns: int, end_ns: int, **kw) -> BackfillReport:
    """Blocking :func:`backfill_context_async` (for the CLI)."""
    return asyncio.run(backfill_context_async(store, symbol, start_ns, end_ns, **kw))
