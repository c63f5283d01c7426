"""Market sources of the local exchange and the replayed market state per symbol.

A source yields, per symbol, top-L book rows (``book`` kind: ``ts_event``, bid/ask prices and sizes)
and trades (``trade`` kind: ``ts_event``, ``trade_id``, ``price``, ``size``, ``side``):

- ``"sim"``: the market simulator (:mod:`orderflow.data.simulator`) in process, seeded, with the market
  context series it derives from its own flow (funding, mark price, open interest, ratios, liquidations);
- ``"VENUE/SYMBOL"`` (e.g. ``"binance-usdm/BTCUSDT"``): a dataset of a :class:`Store` directory, with
  the context kinds stored for it;
- a path to a raw Binance recording: imported with the existing importer into a temporary store.

:class:`Timeline` merges every symbol's book and trade rows by event time (a trade before a book
update at equal times, as the backtester orders them: the update shows what the trade took) and shifts
all times by one offset so that the replay starts at ``start_ns`` ("now" unless given). Units: prices
in quote currency, sizes in base units, times in int ns since the epoch.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from orderflow.core.instruments import Instrument, lookup
from orderflow.data.schema import book_arrays

BOOK, TRADE = 0, 1


class SourceError(ValueError):
    """The market source cannot be loaded (unknown form, missing data, empty dataset)."""


@dataclass
class SymbolData:
    """One symbol's replayed rows (times not yet shifted) and its instrument (tick, lot, min notional)."""

    symbol: str
    instrument: Instrument
    book_ts: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    trade_ts: np.ndarray
    trade_px: np.ndarray
    trade_sz: np.ndarray
    trade_side: np.ndarray
    book_recv: np.ndarray | None = None  # receive times recorded with the rows (None: the event times)
    trade_recv: np.ndarray | None = None
    # the symbol's market context series (kind -> frame of orderflow.data.context_schema), times not
    # yet shifted: the simulator's own (source "sim") or the dataset's stored kinds (a store source)
    context: dict[str, pd.DataFrame] = field(default_factory=dict)

    def recv_times(self) -> tuple[np.ndarray, np.ndarray]:
        """Receive times of the book and trade rows, never before their event times."""
        b = self.book_ts if self.book_recv is None else np.maximum(self.book_recv, self.book_ts)
        t = self.trade_ts if self.trade_recv is None else np.maximum(self.trade_recv, self.trade_ts)
        return b, t


def _instrument(venue: str, symbol: str, fallback: Instrument | None) -> Instrument:
    known = lookup(venue, symbol)
    if known is not None:
        return known
    if fallback is not None:
        return Instrument(venue, symbol, fallback.tick_size, fallback.lot_size, fallback.min_notional)
    raise SourceError(f"no tick/lot size known for {venue} {symbol}")


def _from_frames(
    symbol: str, inst: Instrument, book: pd.DataFrame, trades: pd.DataFrame, levels: int
) -> SymbolData:
    if book.empty:
        raise SourceError(f"no book rows for {symbol}")
    lv = min(levels, sum(1 for c in book.columns if c.startswith("bid_px_")))
    bp, bs, ap, az = book_arrays(book, lv)
    if trades.empty:
        trades = pd.DataFrame({"ts_event": [], "ts_recv": [], "price": [], "size": [], "side": []})
    return SymbolData(
        symbol=symbol,
        instrument=inst,
        book_ts=book["ts_event"].to_numpy(np.int64),
        bid_px=bp,
        bid_sz=bs,
        ask_px=ap,
        ask_sz=az,
        trade_ts=trades["ts_event"].to_numpy(np.int64),
        trade_px=trades["price"].to_numpy(np.float64),
        trade_sz=trades["size"].to_numpy(np.float64),
        trade_side=trades["side"].to_numpy(np.int64),
        book_recv=book["ts_recv"].to_numpy(np.int64) if "ts_recv" in book else None,
        trade_recv=trades["ts_recv"].to_numpy(np.int64) if "ts_recv" in trades else None,
    )


def load_source(
    source: str,
    venue: str,
    *,
    seed: int = 0,
    symbol: str = "BTCUSDT",
    sim_hours: float = 0.25,
    store_dir: str | Path | None = None,
    levels: int = 20,
) -> list[SymbolData]:
    """Load a market source for a venue (``binance-spot`` or ``binance-usdm``, whose instrument
    filters apply). See the module docstring for the forms of ``source``."""
    from orderflow.data.store import Store

    if source == "sim":
        from orderflow.data.config import SimulatorConfig
        from orderflow.data.simulator import simulate

        cfg = SimulatorConfig(symbol=symbol, seed=seed, hours=sim_hours, levels=levels)
        res = simulate(cfg)
        assert res.book is not None and res.trades is not None
        inst = _instrument(venue, symbol, cfg.instrument())
        data = _from_frames(symbol, inst, res.book, res.trades, levels)
        data.context = dict(res.context or {})
        return [data]
    path = Path(source)
    if path.is_file():
        from orderflow.data.importers.binance_raw import import_binance_raw

        with tempfile.TemporaryDirectory(prefix="orderflow-local-") as tmp:
            store = Store(tmp)
            report = import_binance_raw(store, [path])
            out = []
            for v, sym, _kind in store.datasets(kind="book"):
                fallback = store.instrument(v, sym)
                out.append(
                    _from_frames(
                        sym,
                        _instrument(venue, sym, fallback),
                        store.read(v, sym, "book"),
                        store.read(v, sym, "trade"),
                        levels,
                    )
                )
            if not out:
                raise SourceError(f"recording {path} gave no book rows ({report.to_dict()})")
            return out
    if "/" in source and not path.exists():
        if store_dir is None:
            raise SourceError(f"source {source!r} names a stored dataset: pass the store directory")
        v, sym = source.split("/", 1)
        store = Store(store_dir)
        book = store.read(v, sym, "book")
        if book.empty:
            raise SourceError(f"store {store_dir} has no book rows for {v}/{sym}")
        data = _from_frames(
            sym, _instrument(venue, sym, store.instrument(v, sym)), book, store.read(v, sym, "trade"), levels
        )
        from orderflow.adapters.binance.replay.context import load_context

        data.context = load_context(store_dir, v, sym)
        return [data]
    raise SourceError(f"unknown market source {source!r}: use 'sim', VENUE/SYMBOL or a recording file")


@dataclass
class Timeline:
    """Every symbol's events merged by time: ``ts`` (shifted, ns), ``kind`` (BOOK/TRADE), ``sym``
    (index into ``symbols``), ``row`` (index into that symbol's book or trade rows)."""

    symbols: list[SymbolData]
    start_ns: int
    ts: np.ndarray = field(init=False)
    kind: np.ndarray = field(init=False)
    sym: np.ndarray = field(init=False)
    row: np.ndarray = field(init=False)
    offset: int = field(init=False)

    def __post_init__(self) -> None:
        ts, kind, sym, row = [], [], [], []
        for i, d in enumerate(self.symbols):
            for arr, k in ((d.book_ts, BOOK), (d.trade_ts, TRADE)):
                ts.append(arr)
                kind.append(np.full(len(arr), k, dtype=np.int8))
                sym.append(np.full(len(arr), i, dtype=np.int32))
                row.append(np.arange(len(arr), dtype=np.int64))
        t = np.concatenate(ts)
        k_ = np.concatenate(kind)
        order = np.lexsort((-k_, t))  # by time, a trade before a book update at equal times
        first = int(t[order[0]]) if len(t) else 0
        self.offset = int(self.start_ns) - first
        self.ts = t[order] + self.offset
        self.kind = k_[order]
        self.sym = np.concatenate(sym)[order]
        self.row = np.concatenate(row)[order]

    def __len__(self) -> int:
        return len(self.ts)
