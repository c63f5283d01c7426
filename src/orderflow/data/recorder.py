"""Record live Binance market data: raw traffic to gz files and normalized events into the store.

Raw files use hftbacktest's format, so :func:`orderflow.data.importers.binance_raw.import_binance_raw`
imports them: ``<ts_recv_ns> <raw json>`` per line, the REST snapshot body on its own line, one file per
symbol per UTC date (of the receive time), ``<out_dir>/<market>/<symbol>_<YYYYMMDD>.gz``.

The store receives, in batches flushed every ``flush_s`` seconds (a crash loses at most one batch):
``book`` (top 20 after each applied diff), ``depth`` (snapshots and applied diffs), ``trade``, ``quote``,
``gap`` and closed ``bar_<interval>`` rows, and with the USD-M context streams (``FeedConfig.mark_price``,
``liquidations``) ``mark_price`` and ``liquidation`` rows (:mod:`orderflow.data.context_schema`, ``ts_recv``
the receive time), under the source tag ``record-<session>-<batch>``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import logging
import time
from pathlib import Path
from typing import IO, Any

from orderflow.adapters.binance.common.endpoints import BinanceEndpoints, FeedConfig, default_endpoints
from orderflow.adapters.binance.decode import DecodeError, decode_snapshot, snapshot_delta
from orderflow.adapters.binance.feed import BinanceFeed
from orderflow.core.events import Bar, BookDelta, BookSynced, GapEvent, Liquidation, MarkPrice, Quote, Trade
from orderflow.data import context_schema as cs
from orderflow.data.schema import BookTable, DepthTable, bars_frame, gaps_frame, quotes_frame, trades_frame
from orderflow.data.store import Store

log = logging.getLogger(__name__)


class RawWriter:
    """Appends ``<ts_recv_ns> <raw>`` lines to one gz file per symbol per UTC date."""

    def __init__(self, out_dir: Path, market: str) -> None:
        self.dir = Path(out_dir) / market
        self.dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[tuple[str, str], IO[bytes]] = {}
        self.paths: list[Path] = []
        self.lines = 0

    def write(self, ts_recv: int, raw: bytes, symbol: str | None) -> None:
        if symbol is None:  # a combined-stream message: {"stream":"btcusdt@trade",...}
            start = raw.find(b'"stream":"')
            if start < 0:
                return  # not market data (a subscription ack)
            start += 10
            symbol = raw[start : raw.index(b"@", start)].decode()
        day = dt.datetime.fromtimestamp(ts_recv // 1_000_000_000, tz=dt.UTC).strftime("%Y%m%d")
        key = (symbol.lower(), day)
        fh = self._files.get(key)
        if fh is None:
            path = self.dir / f"{key[0]}_{day}.gz"
            fh = self._files[key] = gzip.open(path, "ab")  # noqa: SIM115 - kept open, closed in close()
            if path not in self.paths:
                self.paths.append(path)
        fh.write(b"%d %s\n" % (ts_recv, raw.rstrip(b"\n")))
        self.lines += 1

    def flush(self) -> None:
        for fh in self._files.values():
            fh.flush()

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()


class _Batch:
    def __init__(self, levels: int) -> None:
        self.levels = levels
        self.book: dict[str, BookTable] = {}
        self.depth: dict[str, DepthTable] = {}
        self.trades: dict[str, list[Trade]] = {}
        self.quotes: dict[str, list[Quote]] = {}
        self.gaps: dict[str, list[GapEvent]] = {}
        self.bars: dict[tuple[str, str], list[Bar]] = {}
        self.marks: dict[str, list[MarkPrice]] = {}
        self.liquidations: dict[str, list[Liquidation]] = {}


def marks_frame(rows: list[MarkPrice]):
    """``mark_price`` rows (context_schema.events_frame)."""
    return cs.events_frame("mark_price", rows)


def liquidations_frame(rows: list[Liquidation]):
    """``liquidation`` rows (side +1 buy, -1 sell)."""
    return cs.events_frame("liquidation", rows)


async def record_async(
    store: Store,
    market: str,
    symbols: list[str],
    minutes: float,
    endpoints: BinanceEndpoints | None = None,
    feed_config: FeedConfig | None = None,
    out_dir: str | Path = "recordings",
    flush_s: float = 5.0,
    levels: int = 20,
    stop_event: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Run a :class:`BinanceFeed` for ``minutes`` (or until ``stop_event``) and record it; returns a
    summary (raw files, lines, rows written per dataset, feed counters)."""
    endpoints = endpoints or default_endpoints(market)  # type: ignore[arg-type]
    cfg = feed_config or FeedConfig(market=market)  # type: ignore[arg-type]
    raw = RawWriter(Path(out_dir), market)
    venue = endpoints.venue
    session = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 1_000_000:06d}"
    batch = _Batch(levels)
    rows: dict[str, int] = {}
    n_batches = 0

    def tap(ts_recv: int, body: bytes, symbol: str | None) -> None:
        raw.write(ts_recv, body, symbol)
        if symbol is not None:  # REST snapshot: keep it losslessly in the depth rows
            try:
                snap = decode_snapshot(body)
            except DecodeError:
                return
            delta = snapshot_delta(venue, symbol, snap, ts_recv)
            batch.depth.setdefault(symbol, DepthTable()).add_delta(delta, is_snapshot=True)

    def flush() -> None:
        nonlocal batch, n_batches
        b, batch = batch, _Batch(levels)
        src = f"record-{session}-{n_batches:05d}"
        n_batches += 1
        frames: list[tuple[str, str, Any]] = []
        frames += [(s, "book", t.frame()) for s, t in b.book.items() if len(t)]
        frames += [(s, "depth", t.frame()) for s, t in b.depth.items() if len(t)]
        frames += [(s, "trade", trades_frame(v)) for s, v in b.trades.items() if v]
        frames += [(s, "quote", quotes_frame(v)) for s, v in b.quotes.items() if v]
        frames += [(s, "gap", gaps_frame(v)) for s, v in b.gaps.items() if v]
        frames += [(s, f"bar_{iv}", bars_frame(v)) for (s, iv), v in b.bars.items() if v]
        frames += [(s, "mark_price", marks_frame(v)) for s, v in b.marks.items() if v]
        frames += [(s, "liquidation", liquidations_frame(v)) for s, v in b.liquidations.items() if v]
        for sym, kind, df in frames:
            store.write(venue, sym, kind, df, source=src, replace=False)
            key = f"{venue}/{sym}/{kind}"
            rows[key] = rows.get(key, 0) + len(df)
        raw.flush()

    feed = BinanceFeed(market, symbols, endpoints, cfg, raw_tap=tap)
    t_start = time.monotonic()
    deadline = t_start + minutes * 60.0
    next_flush = t_start + flush_s

    async def timer() -> None:
        while time.monotonic() < deadline and not (stop_event and stop_event.is_set()):
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        await feed.stop()

    stopper = asyncio.get_running_loop().create_task(timer())
    try:
        async for ev in feed.events():
            sym = getattr(ev, "symbol", None)
            if isinstance(ev, BookDelta):
                batch.depth.setdefault(sym, DepthTable()).add_delta(ev)
                batch.book.setdefault(sym, BookTable(levels)).add(feed.book(sym), ev.ts_event, ev.ts_recv)
            elif isinstance(ev, Trade):
                batch.trades.setdefault(sym, []).append(ev)
            elif isinstance(ev, Quote):
                batch.quotes.setdefault(sym, []).append(ev)
            elif isinstance(ev, GapEvent):
                batch.gaps.setdefault(sym, []).append(ev)
            elif isinstance(ev, Bar):
                if ev.closed:
                    batch.bars.setdefault((sym, ev.interval), []).append(ev)
            elif isinstance(ev, MarkPrice):
                batch.marks.setdefault(sym, []).append(ev)
            elif isinstance(ev, Liquidation):
                batch.liquidations.setdefault(sym, []).append(ev)
            elif isinstance(ev, BookSynced):
                pass
            now = time.monotonic()
            if now >= next_flush:
                flush()
                next_flush = now + flush_s
    finally:
        stopper.cancel()
        flush()
        raw.close()
    summary = {
        "venue": venue,
        "symbols": [s.upper() for s in symbols],
        "session": session,
        "seconds": round(time.monotonic() - t_start, 3),
        "raw_files": [str(p) for p in raw.paths],
        "raw_lines": raw.lines,
        "rows": rows,
        "batches": n_batches,
        "feed": feed.stats(),
        "last_error": feed.last_error,
    }
    log.info(
        "recorded %s %s for %.1f s: %d raw lines, rows %s",
        venue,
        ",".join(symbols),
        summary["seconds"],
        raw.lines,
        rows,
    )
    return summary


def record(
    store: Store,
    market: str,
    symbols: list[str],
    minutes: float,
    endpoints: BinanceEndpoints | None = None,
    feed_config: FeedConfig | None = None,
    out_dir: str | Path = "recordings",
    flush_s: float = 5.0,
) -> dict[str, Any]:
    """Blocking :func:`record_async` (for the CLI); Ctrl-C stops early and still flushes."""
    return asyncio.run(
        record_async(store, market, symbols, minutes, endpoints, feed_config, out_dir, flush_s)
    )
