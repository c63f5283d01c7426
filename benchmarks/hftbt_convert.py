"""Convert orderflow's stored events into hftbacktest's event array (benchmark-only helper).

hftbacktest (https://github.com/nkaz001/hftbacktest, a benchmark-only dependency) replays one structured
numpy array of ``hftbacktest.types.event_dtype`` rows: ``ev`` (kind | side flags | EXCH_EVENT /
LOCAL_EVENT), ``exch_ts`` and ``local_ts`` (int ns), ``px`` (quote currency), ``qty`` (base units).
One row is one price-level change or one trade print.

Sources, both read from an orderflow ``Store`` so the two backtesters replay the same events:

- :func:`depth_events`: the lossless ``depth`` kind (what the Binance importer writes: the REST snapshot
  and every applied diff, one row per level change). A snapshot becomes, per side, a DEPTH_CLEAR up to
  its worst price followed by DEPTH_SNAPSHOT rows; a diff row becomes a DEPTH_EVENT (size 0 = level
  removed).
- :func:`book_diff_events`: top-L ``book`` rows (what the simulator writes; no depth kind). Each row is
  diffed against the previous one: a changed or new level becomes a DEPTH_EVENT with its size, a level
  gone from the top L a DEPTH_EVENT with size 0, so hftbacktest's book equals orderflow's top-L book
  after every event.
- :func:`trade_events`: the ``trade`` kind; side +1 (buyer aggressed) -> BUY_EVENT, -1 -> SELL_EVENT.

Times: ``local_ts = max(ts_recv, ts_event)``, the same clamp ``orderflow.backtest.engine.Market`` applies
(the 2024 recordings' collector clock ran ~1.4 s behind the exchange). :func:`merge` puts trades before
book changes at equal exchange time (orderflow's order) and lets hftbacktest's own
``correct_event_order`` set the EXCH/LOCAL flags and split rows whose two orders disagree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hftbacktest import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
)
from hftbacktest.binding import event_dtype
from hftbacktest.data import correct_event_order, validate_event_order
from numba import njit


def _rows(n: int) -> np.ndarray:
    return np.zeros(n, event_dtype)


def _side_flag(side: np.ndarray) -> np.ndarray:
    return np.where(side > 0, BUY_EVENT, SELL_EVENT).astype(np.uint64)


def trade_events(trades: pd.DataFrame) -> np.ndarray:
    """Trade prints (``ts_event, ts_recv, price, size, side``) as TRADE_EVENT rows (flags not yet set)."""
    out = _rows(len(trades))
    ts = trades["ts_event"].to_numpy(np.int64)
    recv = trades["ts_recv"].to_numpy(np.int64) if "ts_recv" in trades else ts
    out["ev"] = np.uint64(TRADE_EVENT) | _side_flag(trades["side"].to_numpy(np.int64))
    out["exch_ts"] = ts
    out["local_ts"] = np.maximum(recv, ts)
    out["px"] = trades["price"].to_numpy(np.float64)
    out["qty"] = trades["size"].to_numpy(np.float64)
    return out


def depth_events(depth: pd.DataFrame) -> np.ndarray:
    """The stored lossless ``depth`` kind as DEPTH / DEPTH_CLEAR + DEPTH_SNAPSHOT rows, in stored order."""
    ts = depth["ts_event"].to_numpy(np.int64)
    recv = np.maximum(depth["ts_recv"].to_numpy(np.int64), ts)
    side = depth["side"].to_numpy(np.int64)
    px = depth["price"].to_numpy(np.float64)
    sz = depth["size"].to_numpy(np.float64)
    snap = depth["is_snapshot"].to_numpy(bool)
    uid = depth["last_update_id"].to_numpy(np.int64)
    kind = np.where(snap, DEPTH_SNAPSHOT_EVENT, DEPTH_EVENT).astype(np.uint64)
    ev = kind | _side_flag(side)
    # a DEPTH_CLEAR row goes before the first row of each (snapshot, side) block
    start = snap & np.r_[True, (uid[1:] != uid[:-1]) | (side[1:] != side[:-1])]
    starts = np.flatnonzero(start)
    n = ts.size + starts.size
    out = _rows(n)
    pos = np.arange(ts.size) + np.searchsorted(starts, np.arange(ts.size), side="right")
    out["ev"][pos] = ev
    out["exch_ts"][pos] = ts
    out["local_ts"][pos] = recv
    out["px"][pos] = px
    out["qty"][pos] = sz
    for k, s in enumerate(starts):
        block = (uid == uid[s]) & (side == side[s]) & snap
        worst = px[block].min() if side[s] > 0 else px[block].max()  # clear up to the snapshot's depth
        c = s + k  # the slot before the block's first row
        out[c] = (np.uint64(DEPTH_CLEAR_EVENT) | _side_flag(side[s : s + 1])[0], ts[s], recv[s], worst, 0.0,
                  0, 0, 0.0)  # fmt: skip
    return out


@njit(cache=True)
def _diff_count(bid_px, bid_sz, ask_px, ask_sz) -> int:
    n, lv = bid_px.shape
    total = 0
    for s in range(2):
        P = bid_px if s == 0 else ask_px
        Q = bid_sz if s == 0 else ask_sz
        for j in range(n):
            for k in range(lv):  # new or changed levels
                p = P[j, k]
                if not np.isfinite(p):
                    continue
                old = 0.0
                if j > 0:
                    for m in range(lv):
                        if P[j - 1, m] == p:
                            old = Q[j - 1, m]
                            break
                if Q[j, k] != old:
                    total += 1
            if j > 0:  # levels gone from the top L
                for m in range(lv):
                    p = P[j - 1, m]
                    if not np.isfinite(p):
                        continue
                    found = False
                    for k in range(lv):
                        if P[j, k] == p:
                            found = True
                            break
                    if not found:
                        total += 1
    return total


@njit(cache=True)
def _diff_fill(bid_px, bid_sz, ask_px, ask_sz, row_of, px_out, qty_out, side_out) -> int:
    """Write the level changes row by row (bids then asks within a row); returns the count."""
    n, lv = bid_px.shape
    w = 0
    for j in range(n):
        for s in range(2):
            P = bid_px if s == 0 else ask_px
            Q = bid_sz if s == 0 else ask_sz
            sd = 1 if s == 0 else -1
            if j > 0:
                for m in range(lv):
                    p = P[j - 1, m]
                    if not np.isfinite(p):
                        continue
                    found = False
                    for k in range(lv):
                        if P[j, k] == p:
                            found = True
                            break
                    if not found:
                        row_of[w], px_out[w], qty_out[w], side_out[w] = j, p, 0.0, sd
                        w += 1
            for k in range(lv):
                p = P[j, k]
                if not np.isfinite(p):
                    continue
                old = 0.0
                if j > 0:
                    for m in range(lv):
                        if P[j - 1, m] == p:
                            old = Q[j - 1, m]
                            break
                if Q[j, k] != old:
                    row_of[w], px_out[w], qty_out[w], side_out[w] = j, p, Q[j, k], sd
                    w += 1
    return w


def book_diff_events(
    b_ts: np.ndarray,
    b_recv: np.ndarray,
    bid_px: np.ndarray,
    bid_sz: np.ndarray,
    ask_px: np.ndarray,
    ask_sz: np.ndarray,
) -> np.ndarray:
    """Top-L book rows ((n, L) arrays, NaN = no level; times int ns) as DEPTH_EVENT level changes."""
    arrs = [np.ascontiguousarray(a, dtype=np.float64) for a in (bid_px, bid_sz, ask_px, ask_sz)]
    n = _diff_count(*arrs)
    row_of = np.empty(n, np.int64)
    px = np.empty(n)
    qty = np.empty(n)
    side = np.empty(n, np.int64)
    w = _diff_fill(*arrs, row_of, px, qty, side)
    assert w == n, (w, n)
    out = _rows(n)
    out["ev"] = np.uint64(DEPTH_EVENT) | _side_flag(side)
    out["exch_ts"] = b_ts[row_of]
    out["local_ts"] = np.maximum(b_recv, b_ts)[row_of]
    out["px"] = px
    out["qty"] = qty
    return out


def merge(trades: np.ndarray, book: np.ndarray) -> np.ndarray:
    """One replayable array: trades first at equal exchange time, EXCH/LOCAL flags set and ordered by
    hftbacktest's ``correct_event_order``, then checked with its ``validate_event_order``."""
    data = np.concatenate([trades, book])
    data = correct_event_order(
        data, np.argsort(data["exch_ts"], kind="stable"), np.argsort(data["local_ts"], kind="stable")
    )
    validate_event_order(data)
    return data
