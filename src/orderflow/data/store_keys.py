"""Natural keys of the stored kinds, and exact de-duplication of new rows against stored ones.

| kind | key | note |
|---|---|---|
| ``trade`` | ``trade_id`` | |
| ``depth`` | ``last_update_id``, ``is_snapshot`` | one key a message: its level rows go or stay together |
| ``book``, ``quote`` | ``ts_event``, ``update_id`` | |
| ``bar_<interval>`` | ``ts_open`` | |
| ``regime``, ``funding``, ``fear_greed``, ``mark_price`` | ``ts_event`` | |
| periodic context statistics (``open_interest_5m`` ...) | ``ts_event`` | ``context_schema`` |
| ``gap`` and any other kind | the whole row | |

Rows without an exchange id (id ``-1``, as tardis quotes and book rows) are keyed by the whole row.
Keys are compared exactly (int64 columns; a whole row is a 64-bit hash of its values beside its
``ts_event``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from orderflow.data.context_schema import split_kind

_KEYS: dict[str, tuple[str, ...]] = {
    "trade": ("trade_id",),
    "depth": ("last_update_id", "is_snapshot"),
    "book": ("ts_event", "update_id"),
    "quote": ("ts_event", "update_id"),
    "regime": ("ts_event",),
    "funding": ("ts_event",),
    "fear_greed": ("ts_event",),
    "mark_price": ("ts_event",),
}
_ID = {"trade": "trade_id", "book": "update_id", "quote": "update_id", "depth": "last_update_id"}


def key_names(kind: str) -> tuple[str, ...] | None:
    """The key columns of ``kind``; None for a whole-row key."""
    if kind.startswith("bar_"):
        return ("ts_open",)
    if kind not in _KEYS and split_kind(kind)[1] is not None:
        return ("ts_event",)
    return _KEYS.get(kind)


def range_column(kind: str) -> str:
    """The first key column: its min/max in a part's footer rules the part in or out of a comparison."""
    names = key_names(kind)
    return names[0] if names else "ts_event"


def id_column(kind: str) -> str | None:
    """The exchange-id column of ``kind`` (a row whose id is below 0 is keyed by the whole row)."""
    return _ID.get(kind)


def _row_hash(table: pa.Table) -> np.ndarray:
    df = table.select(sorted(table.column_names)).to_pandas()
    return pd.util.hash_pandas_object(df, index=False).to_numpy().view(np.int64)


def _int64(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.to_numpy(zero_copy_only=False)).astype(np.int64, copy=False)


def key_columns(kind: str, table: pa.Table, full: pa.Table | None = None) -> list[np.ndarray]:
    """The key of every row of ``table`` as int64 columns (the same number of columns for every table of
    a kind). ``full`` is the whole-row table for rows without an id, when ``table`` holds fewer columns."""
    names = key_names(kind)
    n = table.num_rows
    if names is None:
        return [_int64(table.column("ts_event")), _row_hash(full if full is not None else table)]
    cols = [_int64(table.column(c)) for c in names]
    idc = _ID.get(kind)
    if idc is not None:
        h = np.zeros(n, dtype=np.int64)
        neg = _int64(table.column(idc)) < 0
        if neg.any():
            src = full if full is not None else table
            h[neg] = _row_hash(src.filter(pa.array(neg)))
            cols.insert(0, np.where(neg, _int64(src.column("ts_event")), 0))
        else:
            cols.insert(0, h.copy())
        cols.append(h)
    return cols


def message_starts(kind: str, cols: list[np.ndarray]) -> np.ndarray | None:
    """For ``depth``: the first row of each message (consecutive rows of one key); None for other kinds."""
    if kind != "depth" or not len(cols[0]):
        return None
    same = np.ones(len(cols[0]) - 1, dtype=bool)
    for c in cols:
        same &= c[1:] == c[:-1]
    # rows without an id (whole-row keys) are never grouped: their hash column differs row by row
    return np.concatenate([[0], np.flatnonzero(~same) + 1])


def _strictly_increasing(cols: list[np.ndarray]) -> bool:
    if len(cols[0]) < 2:
        return True
    gt = np.zeros(len(cols[0]) - 1, dtype=bool)
    eq = np.ones(len(cols[0]) - 1, dtype=bool)
    for c in cols:
        gt |= eq & (c[1:] > c[:-1])
        eq &= c[1:] == c[:-1]
    return bool(gt.all())


def fresh(new: list[np.ndarray], stored: list[list[np.ndarray]]) -> np.ndarray:
    """A mask over the keys ``new``: True for the first occurrence of each key that no table of
    ``stored`` holds."""
    n = len(new[0])
    stored = [s for s in stored if len(s[0])]
    live = [i for i in range(len(new)) if new[i].any() or any(s[i].any() for s in stored)]
    live = live or [0]
    new = [new[i] for i in live]
    old = [np.concatenate([s[i] for s in stored]) for i in live] if stored else None
    if len(new) == 1:
        keep = np.ones(n, dtype=bool)
        if not _strictly_increasing(new):
            keep[:] = False
            keep[np.unique(new[0], return_index=True)[1]] = True
        if old is not None:
            keep &= ~np.isin(new[0], old[0])
        return keep
    if old is None and _strictly_increasing(new):
        return np.ones(n, dtype=bool)
    m = 0 if old is None else len(old[0])
    cat = [c if old is None else np.concatenate([o, c]) for o, c in zip(old or new, new, strict=True)]
    origin = np.concatenate([np.zeros(m, dtype=np.int8), np.ones(n, dtype=np.int8)])
    order = np.lexsort((np.arange(m + n), origin, *reversed(cat)))
    first = np.ones(m + n, dtype=bool)
    if m + n > 1:
        same = np.ones(m + n - 1, dtype=bool)
        for c in cat:
            s = c[order]
            same &= s[1:] == s[:-1]
        first[1:] = ~same
    keep = np.zeros(n, dtype=bool)
    chosen = order[first & (origin[order] == 1)] - m
    keep[chosen] = True
    return keep


def fresh_rows(
    kind: str, cols: list[np.ndarray], stored: list[list[np.ndarray]], table: pa.Table | None = None
) -> np.ndarray:
    """A row mask over a new ``table`` whose keys are ``cols``: the rows (for depth: whole messages) to
    write. A depth message repeated right after itself reads as one run of rows with one key: a price
    level listed twice on one side of one message is the repeat, and is dropped."""
    starts = message_starts(kind, cols)
    if starts is None:
        return fresh(cols, stored)
    keep_msg = fresh([c[starts] for c in cols], stored)
    lengths = np.diff(np.concatenate([starts, [len(cols[0])]]))
    keep = np.repeat(keep_msg, lengths)
    if table is not None and len(starts) < len(cols[0]):
        run = np.repeat(np.arange(len(starts)), lengths)
        side = _int64(table.column("side"))
        price = np.asarray(table.column("price").to_numpy(), dtype=np.float64)
        order = np.lexsort((np.arange(len(run)), price, side, run))
        rep = np.zeros(len(run), dtype=bool)
        rep[order[1:]] = (
            (run[order[1:]] == run[order[:-1]])
            & (side[order[1:]] == side[order[:-1]])
            & (price[order[1:]] == price[order[:-1]])
        )
        keep &= ~rep | (cols[-1] != 0)  # rows keyed by the whole row were compared whole already
    return keep


def stored_keys(kind: str, cols: list[np.ndarray]) -> list[np.ndarray]:
    """The keys to remember for a table just staged (depth: one per message)."""
    starts = message_starts(kind, cols)
    return cols if starts is None else [c[starts] for c in cols]
