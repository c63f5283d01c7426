"""Import tardis.dev CSV datasets (plain or .gz): incremental_book_L2, book_snapshot_5/25, trades, quotes.

Every file has a header and starts with ``exchange,symbol,timestamp,local_timestamp``; timestamps are
microseconds since the epoch: ``ts_event = timestamp`` (exchange time) and ``ts_recv = local_timestamp``,
both stored in ns. The data type is recognised from the header:

- ``incremental_book_L2`` (``...,is_snapshot,side,price,amount``)::

      deribit,BTC-PERPETUAL,1585699200245000,1585699200355684,true,ask,6421.5,18640

  The book is rebuilt with :class:`OrderBook`; the first ``is_snapshot`` row after non-snapshot rows
  starts a new snapshot and resets the book. Every row becomes a ``depth`` row (no update ids in tardis
  data: ids are -1) and a ``book`` row (top 20) is written after each group of rows sharing
  ``timestamp``/``local_timestamp``.
- ``book_snapshot_5`` / ``book_snapshot_25`` (``asks[0].price,asks[0].amount,bids[0].price,...``) ->
  ``book`` rows. Only the levels present are filled (NaN elsewhere); the stored book keeps 20 levels
  per side, so ``book_snapshot_25`` keeps its top 20 levels and drops levels 21-25.
- ``trades`` (``...,id,side,price,amount``; side buy/sell/unknown -> +1/-1/0) -> ``trade``. Ids that are
  not integers (BitMEX UUIDs) are stored as a stable 63-bit hash of the id text.
- ``quotes`` (``...,ask_amount,ask_price,bid_price,bid_amount``) -> ``quote`` (update_id -1).

Venues: ``binance-futures`` -> ``binance-usdm``, ``binance`` -> ``binance-spot``, ``binance-delivery``
-> ``binance-coinm``; other exchanges keep their tardis name (``deribit``, ``bitmex``, ...).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from orderflow.core.book import OrderBook
from orderflow.core.instruments import Instrument, infer_tick, lookup
from orderflow.data.importers.base import ImportError_, ImportReport
from orderflow.data.importers.binance_raw import _source_tag
from orderflow.data.importers.klines import read_csv_rows, to_float
from orderflow.data.schema import DEFAULT_LEVELS, BookTable, book_columns
from orderflow.data.store import Store

log = logging.getLogger(__name__)

TARDIS_VENUES = {
    "binance-futures": "binance-usdm",
    "binance": "binance-spot",
    "binance-delivery": "binance-coinm",
}
_HEAD = ["exchange", "symbol", "timestamp", "local_timestamp"]
_LEVEL = re.compile(r"^(bids|asks)\[(\d+)\]\.(price|amount)$")
_SIDES = {"buy": 1, "sell": -1, "bid": 1, "ask": -1}


def tardis_venue(exchange: str) -> str:
    """The store's venue name for a tardis exchange id."""
    return TARDIS_VENUES.get(exchange, exchange)


def data_type(header: Sequence[str]) -> str:
    """``incremental_book_L2``, ``book_snapshot``, ``trades`` or ``quotes`` from a header row."""
    h = set(header)
    if "is_snapshot" in h:
        return "incremental_book_L2"
    if "bids[0].price" in h or "asks[0].price" in h:
        return "book_snapshot"
    if {"id", "side", "price", "amount"} <= h:
        return "trades"
    if {"ask_price", "bid_price"} <= h:
        return "quotes"
    raise ImportError_(f"unsupported tardis data type for columns {list(header)[:10]}")


def _trade_ids(values: Sequence[str]) -> tuple[np.ndarray, bool]:
    try:
        return np.asarray(values, dtype=np.int64), False
    except (ValueError, OverflowError):
        out = np.array(
            [
                int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "big") & (2**63 - 1)
                if v
                else -1
                for v in values
            ],
            dtype=np.int64,
        )
        return out, True


class _File:
    """One parsed tardis CSV: columns by name, line numbers and a mask of rows to keep."""

    def __init__(self, path: Path, report: ImportReport) -> None:
        self.path = path
        self.report = report
        header, rows, lines = read_csv_rows(path, report)
        if header[:4] != _HEAD:
            raise ImportError_(f"{path}:1: not a tardis CSV: header should start with {','.join(_HEAD)}")
        self.header = header
        self.kind = data_type(header)
        width = len(header)
        body, lines = rows[1:], lines[1:]
        for k in [k for k, r in enumerate(body) if len(r) != width][:20]:
            report.problem(
                f"{path}:{lines[k]}: expected {width} fields, got {len(body[k])} (truncated line?)"
            )
        keep = [k for k, r in enumerate(body) if len(r) == width]
        if not keep:
            raise ImportError_(f"{path}: no data rows")
        self.lines = [lines[k] for k in keep]
        self.cols = dict(zip(header, ([body[k][j] for k in keep] for j in range(width)), strict=True))
        self.bad = np.zeros(len(keep), dtype=bool)
        for name in ("timestamp", "local_timestamp"):
            v, b = self.num(name)
            setattr(self, name, np.where(b, 0, v).astype(np.int64) * 1000)

    def num(self, name: str, required: bool = True) -> tuple[np.ndarray, np.ndarray]:
        v, b = to_float(self.cols[name], self.path, self.lines, name, self.report, required=required)
        self.bad |= b
        return v, b

    def groups(self, venue: str | None, symbol: str | None) -> dict[tuple[str, str], np.ndarray]:
        """Row indices (of good rows) per (venue, symbol)."""
        ex = np.asarray(self.cols["exchange"])
        sy = np.char.upper(np.asarray(self.cols["symbol"]).astype(str))
        out: dict[tuple[str, str], np.ndarray] = {}
        found = sorted(set(sy.tolist()))
        if symbol is not None and symbol.upper() not in found:
            raise ImportError_(
                f"{self.path}: symbol {symbol!r} not in the file (it has {', '.join(found[:10])})"
            )
        for e, s in sorted(set(zip(ex.tolist(), sy.tolist(), strict=True))):
            if symbol is not None and s != symbol.upper():
                continue
            idx = np.flatnonzero((ex == e) & (sy == s) & ~self.bad)
            if idx.size:
                out[(venue or tardis_venue(e), re.sub(r"[^A-Za-z0-9._-]", "", s))] = idx
        return out


def _book_snapshots(f: _File, levels: int) -> pd.DataFrame:
    present = max(int(m.group(2)) for m in map(_LEVEL.match, f.header) if m) + 1
    n = min(present, levels)
    cols = {"ts_event": f.timestamp, "ts_recv": f.local_timestamp, "update_id": np.full(len(f.lines), -1)}
    nan = np.full(len(f.lines), np.nan)
    for side, tside in (("bid", "bids"), ("ask", "asks")):
        for what, twhat in (("px", "price"), ("sz", "amount")):
            for i in range(levels):
                cols[f"{side}_{what}_{i + 1}"] = (
                    f.num(f"{tside}[{i}].{twhat}", required=False)[0] if i < n else nan
                )
    if present > levels:
        f.report.notes.append(f"{f.path}: {present} levels per side; the top {levels} were kept")
    return pd.DataFrame(cols, columns=["ts_event", "ts_recv", "update_id", *book_columns(levels)])


def _incremental(
    f: _File, idx: np.ndarray, levels: int, tick: float | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rebuild the book over rows ``idx``: (depth rows, book rows after each timestamp group)."""
    snap = np.asarray(f.cols["is_snapshot"])[idx] == "true"
    side = np.array([_SIDES.get(s, 0) for s in np.asarray(f.cols["side"])[idx]], dtype=np.int8)
    price, size = f.price[idx], f.amount[idx]
    ts_e, ts_r = f.timestamp[idx], f.local_timestamp[idx]
    depth = pd.DataFrame(
        {
            "ts_event": ts_e,
            "ts_recv": ts_r,
            "first_update_id": -1,
            "last_update_id": -1,
            "prev_update_id": -1,
            "is_snapshot": snap,
            "side": side,
            "price": price,
            "size": size,
        }
    ).astype({"first_update_id": "int64", "last_update_id": "int64", "prev_update_id": "int64"})
    if not tick:
        tick = infer_tick(price[:20000])
    book = OrderBook(tick_size=tick if np.isfinite(tick) else None)
    table = BookTable(levels)
    n = len(idx)
    cut = np.flatnonzero((np.diff(ts_e) != 0) | (np.diff(ts_r) != 0) | (np.diff(snap) != 0)) + 1
    starts, ends = np.concatenate([[0], cut]), np.concatenate([cut, [n]])
    snap_b: list[tuple[float, float]] = []
    snap_a: list[tuple[float, float]] = []
    prev_snap = False
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        rows = [(float(price[k]), float(size[k])) for k in range(a, b)]
        is_bid = side[a:b] > 0
        bids = [r for r, ib in zip(rows, is_bid, strict=True) if ib]
        asks = [r for r, ib in zip(rows, is_bid, strict=True) if not ib]
        if snap[a]:
            if not prev_snap:  # a new snapshot run resets the book
                snap_b, snap_a = [], []
            snap_b += bids
            snap_a += asks
            book.load(snap_b, snap_a, -1)
        else:
            book.apply(bids, asks, -1)
        prev_snap = bool(snap[a])
        table.add(book, int(ts_e[b - 1]), int(ts_r[b - 1]))
    return depth, table.frame()


def import_tardis(
    store: Store,
    paths: Sequence[Path],
    venue: str | None = None,
    symbol: str | None = None,
    levels: int = DEFAULT_LEVELS,
    source: str | None = None,
) -> ImportReport:
    """Import tardis.dev CSV files; venue and symbol come from each row unless given (``symbol``
    then selects that symbol's rows)."""
    report = ImportReport("tardis", [str(p) for p in paths])
    for p in paths:
        if not Path(p).is_file():
            raise ImportError_(f"{p}: no such file")
    for path in map(Path, paths):
        f = _File(path, report)
        frames: list[tuple[str, str, str, pd.DataFrame]] = []
        prices: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        if f.kind == "trades":
            f.price, f.amount = f.num("price")[0], f.num("amount")[0]
            ids, hashed = _trade_ids(f.cols["id"])
            if hashed:
                report.notes.append(
                    f"{path}: trade ids are not integers; stored as 63-bit hashes of the id text"
                )
            side = np.array([_SIDES.get(s, 0) for s in f.cols["side"]], dtype=np.int8)
            df = pd.DataFrame(
                {
                    "ts_event": f.timestamp,
                    "ts_recv": f.local_timestamp,
                    "trade_id": ids,
                    "price": f.price,
                    "size": f.amount,
                    "side": side,
                }
            )
            for key, idx in f.groups(venue, symbol).items():
                frames.append((*key, "trade", df.iloc[idx]))
                prices[key] = (f.price[idx], f.amount[idx])
        elif f.kind == "quotes":
            q = {
                c: f.num(t, required=False)[0]
                for c, t in (
                    ("bid_px", "bid_price"),
                    ("bid_sz", "bid_amount"),
                    ("ask_px", "ask_price"),
                    ("ask_sz", "ask_amount"),
                )
            }
            df = pd.DataFrame(
                {
                    "ts_event": f.timestamp,
                    "ts_recv": f.local_timestamp,
                    "update_id": np.full(len(f.lines), -1, dtype=np.int64),
                    **q,
                }
            )
            for key, idx in f.groups(venue, symbol).items():
                frames.append((*key, "quote", df.iloc[idx]))
                prices[key] = (q["bid_px"][idx], q["bid_sz"][idx])
        elif f.kind == "book_snapshot":
            df = _book_snapshots(f, levels)
            for key, idx in f.groups(venue, symbol).items():
                frames.append((*key, "book", df.iloc[idx]))
                prices[key] = (df["bid_px_1"].to_numpy()[idx], df["bid_sz_1"].to_numpy()[idx])
        else:
            f.price, f.amount = f.num("price")[0], f.num("amount")[0]
            bad_side = [i for i, s in enumerate(f.cols["side"]) if s not in _SIDES]
            for i in bad_side[:20]:
                report.problem(f"{path}:{f.lines[i]}: side must be bid or ask, got {f.cols['side'][i]!r}")
            f.bad[bad_side] = True
            for key, idx in f.groups(venue, symbol).items():
                inst = store.instrument(*key)
                depth, book = _incremental(f, idx, levels, inst.tick_size if inst else None)
                frames += [(*key, "depth", depth), (*key, "book", book)]
                prices[key] = (f.price[idx], f.amount[idx])
        src = source or _source_tag([path])
        for v, s, kind, df in frames:
            report.stored(f"{v}/{s}/{kind}", store.put(v, s, kind, df.reset_index(drop=True), source=src))
        for (v, s), (px, sz) in prices.items():
            _put_instrument(store, v, s, px, sz)
        log.info("imported %s (%s): %s", path, f.kind, report.rows)
    return report


def _put_instrument(store: Store, venue: str, symbol: str, prices: np.ndarray, sizes: np.ndarray) -> None:
    """Record tick/lot sizes (known, or inferred from the data) unless the store already has them."""
    if store.instruments().get(f"{venue}/{symbol}") is not None:
        return
    inst = lookup(venue, symbol)
    if inst is None:
        if len(prices) < 100:  # too few values to infer tick and lot sizes
            return
        tick, lot = infer_tick(prices[:20000]), infer_tick(sizes[:20000])
        if not (np.isfinite(tick) and np.isfinite(lot)):
            return
        inst = Instrument(venue, symbol, tick, lot)
    store.put_instrument(inst)
