"""Column layouts of the stored kinds and builders that collect domain events into tables.

- ``book``:  ts_event, ts_recv, update_id, bid_px_1..N, bid_sz_1..N, ask_px_1..N, ask_sz_1..N (NaN when
  a level is absent); the top N levels after each book event (N = 20 by default).
- ``depth``: ts_event, ts_recv, first_update_id, last_update_id, prev_update_id, is_snapshot, side
  (+1 bid, -1 ask), price, size; one row per level change, lossless diffs and snapshots.
- ``trade``: ts_event, ts_recv, trade_id, price, size, side (+1 buyer aggressed, -1 seller aggressed,
  0 unknown).
- ``quote``: ts_event, ts_recv, update_id, bid_px, bid_sz, ask_px, ask_sz.
- ``bar_<interval>``: ts_event (close), ts_recv, ts_open, open, high, low, close, volume, quote_volume,
  trades, taker_buy_volume.
- ``gap``: ts_event, ts_recv, reason, expected, got.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orderflow.core.book import OrderBook
from orderflow.core.events import Bar, BookDelta, GapEvent, Quote, Trade

DEFAULT_LEVELS = 20


def book_columns(levels: int = DEFAULT_LEVELS) -> list[str]:
    cols = []
    for side in ("bid", "ask"):
        for what in ("px", "sz"):
            cols += [f"{side}_{what}_{i}" for i in range(1, levels + 1)]
    return cols


def book_arrays(
    df: pd.DataFrame, levels: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bid_px, bid_sz, ask_px, ask_sz) as float arrays of shape (rows, levels)."""
    if levels is None:
        levels = sum(1 for c in df.columns if c.startswith("bid_px_"))
    out = []
    for side in ("bid", "ask"):
        for what in ("px", "sz"):
            out.append(df[[f"{side}_{what}_{i}" for i in range(1, levels + 1)]].to_numpy(np.float64))
    return out[0], out[1], out[2], out[3]


class BookTable:
    """Collects top-N book states (one row per book event)."""

    def __init__(self, levels: int = DEFAULT_LEVELS, chunk: int = 65536) -> None:
        self.levels = levels
        self._chunk = chunk
        self._blocks: list[np.ndarray] = []
        self._cur = np.empty((chunk, 4 * levels), dtype=np.float64)
        self._meta: list[tuple[int, int, int]] = []
        self._n = 0

    def __len__(self) -> int:
        return len(self._meta)

    def add(self, book: OrderBook, ts_event: int, ts_recv: int) -> None:
        if self._n == self._chunk:
            self._blocks.append(self._cur)
            self._cur = np.empty((self._chunk, 4 * self.levels), dtype=np.float64)
            self._n = 0
        book.top_into(self.levels, self._cur[self._n])
        self._n += 1
        self._meta.append((ts_event, ts_recv, book.update_id))

    def frame(self) -> pd.DataFrame:
        values = (
            np.concatenate([*self._blocks, self._cur[: self._n]])
            if self._meta
            else np.empty((0, 4 * self.levels))
        )
        meta = np.array(self._meta, dtype=np.int64).reshape(-1, 3)
        df = pd.DataFrame(values, columns=book_columns(self.levels))
        df.insert(0, "update_id", meta[:, 2])
        df.insert(0, "ts_recv", meta[:, 1])
        df.insert(0, "ts_event", meta[:, 0])
        return df


class DepthTable:
    """Collects level changes (diffs and snapshots) losslessly."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add_delta(self, d: BookDelta, is_snapshot: bool = False) -> None:
        head = (d.ts_event, d.ts_recv, d.first_update_id, d.last_update_id, d.prev_update_id, is_snapshot)
        rows = self.rows
        for p, q in d.bids:
            rows.append((*head, 1, p, q))
        for p, q in d.asks:
            rows.append((*head, -1, p, q))

    def frame(self) -> pd.DataFrame:
        cols = [
            "ts_event",
            "ts_recv",
            "first_update_id",
            "last_update_id",
            "prev_update_id",
            "is_snapshot",
            "side",
            "price",
            "size",
        ]
        df = pd.DataFrame(self.rows, columns=cols)
        return df.astype(
            {
                "ts_event": "int64",
                "ts_recv": "int64",
                "first_update_id": "int64",
                "last_update_id": "int64",
                "prev_update_id": "int64",
                "is_snapshot": "bool",
                "side": "int8",
                "price": "float64",
                "size": "float64",
            }
        )


def trades_frame(trades: list[Trade]) -> pd.DataFrame:
    df = pd.DataFrame(
        [(t.ts_event, t.ts_recv, t.trade_id, t.price, t.size, int(t.aggressor)) for t in trades],
        columns=["ts_event", "ts_recv", "trade_id", "price", "size", "side"],
    )
    return df.astype(
        {
            "ts_event": "int64",
            "ts_recv": "int64",
            "trade_id": "int64",
            "price": "float64",
            "size": "float64",
            "side": "int8",
        }
    )


def quotes_frame(quotes: list[Quote]) -> pd.DataFrame:
    df = pd.DataFrame(
        [
            (q.ts_event, q.ts_recv, q.update_id, q.bid_price, q.bid_size, q.ask_price, q.ask_size)
            for q in quotes
        ],
        columns=["ts_event", "ts_recv", "update_id", "bid_px", "bid_sz", "ask_px", "ask_sz"],
    )
    return df.astype({"ts_event": "int64", "ts_recv": "int64", "update_id": "int64"})


BAR_COLUMNS = [
    "ts_event",
    "ts_recv",
    "ts_open",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_volume",
]


def bars_frame(bars: list[Bar]) -> pd.DataFrame:
    df = pd.DataFrame(
        [
            (
                b.ts_event,
                b.ts_recv,
                b.ts_open,
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume,
                b.quote_volume,
                b.trades,
                b.taker_buy_volume,
            )
            for b in bars
        ],
        columns=BAR_COLUMNS,
    )
    return df.astype({"ts_event": "int64", "ts_recv": "int64", "ts_open": "int64", "trades": "int64"})


def gaps_frame(gaps: list[GapEvent]) -> pd.DataFrame:
    df = pd.DataFrame(
        [(g.ts_event, g.ts_recv, g.reason, g.expected, g.got) for g in gaps],
        columns=["ts_event", "ts_recv", "reason", "expected", "got"],
    )
    return df.astype({"ts_event": "int64", "ts_recv": "int64", "expected": "int64", "got": "int64"})
