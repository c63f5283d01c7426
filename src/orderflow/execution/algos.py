"""Slicing of large orders: TWAP and iceberg planners.

An order whose quantity exceeds ``max_share_of_depth`` of the visible depth on its side (the first
``depth_levels`` levels: the bids for a resting buy, the asks a market buy would take) is split:

- **TWAP**: ``n`` children of equal size (whole lots; the remainder in the last child) at
  ``start + i * duration / n``, ``i = 0..n-1``. ``n = ceil(qty / allowed)`` with ``allowed`` the depth
  share in whole lots, clipped to ``[2, twap_max_children]`` and to the number of lots.
- **Iceberg**: one visible clip of ``iceberg_clip_share`` of the visible depth (whole lots, at least
  one) rests as a limit ``iceberg_offset_ticks`` behind the touch (a buy at ``bid - k * tick``); when
  a clip is filled the next one is posted at the touch of that moment, until the parent is done.

Planners are ``@njit(cache=True)`` functions of arrays and scalars (the backtester calls them); the
classes below wrap the same kernels and produce child :class:`OrderIntent` s with the parent's id in
``parent_id`` and deterministic client ids ``{parent}-t{i}`` (TWAP) / ``{parent}-i{i}`` (iceberg).
Quantities in base units, prices in quote currency, times in int ns since the epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import msgspec
import numpy as np
from numba import njit

from orderflow.adapters.binance.trading.events import OrderType
from orderflow.core.events import Side
from orderflow.execution.orders import OrderIntent, check_client_id

LOT_EPS = 1e-9  # tolerance (in lots) when flooring a quantity to the lot grid

# slicing reasons
SLICE_REASONS = ("within_depth_share", "above_depth_share", "no_visible_depth", "below_one_lot")
NO_SLICE, SLICE_ABOVE_DEPTH_SHARE, SLICE_NO_DEPTH, TOO_SMALL = range(len(SLICE_REASONS))


@njit(cache=True)
def lots(qty: float, lot: float) -> int:
    """Whole lots in ``qty`` (floored, with a float-noise tolerance)."""
    return math.floor(qty / lot + LOT_EPS)


@njit(cache=True)
def visible_depth(sizes: np.ndarray, levels: int) -> float:
    """Sum of the first ``levels`` sizes (a NaN or non-positive size ends the book)."""
    d = 0.0
    for i in range(min(levels, sizes.shape[0])):
        s = sizes[i]
        if not (s > 0.0):
            break
        d += s
    return d


@njit(cache=True)
def slice_check(qty: float, lot: float, depth: float, X: np.void) -> int:
    """Slicing reason: ``NO_SLICE`` when ``qty <= max_share * depth``, else why it is split."""
    if lots(qty, lot) < 2:
        return TOO_SMALL if qty > X["max_share_of_depth"] * depth else NO_SLICE
    if depth <= 0.0:
        return SLICE_NO_DEPTH
    if qty > X["max_share_of_depth"] * depth * (1.0 + 1e-12):
        return SLICE_ABOVE_DEPTH_SHARE
    return NO_SLICE


@njit(cache=True)
def twap_plan(
    qty: float,
    lot: float,
    depth: float,
    X: np.void,
    start_ns: int,
    out_qty: np.ndarray,
    out_ts: np.ndarray,
) -> int:
    """Fill ``out_qty``/``out_ts`` (length >= ``twap_max_children``) with the TWAP children of ``qty``;
    return their number (0 when ``qty`` is below one lot). Children are whole lots; they sum to
    ``lots(qty) * lot`` (the dust below one lot is not placed)."""
    q = lots(qty, lot)
    if q == 0:
        return 0
    allowed = math.floor(X["max_share_of_depth"] * depth / lot + LOT_EPS)
    if allowed < 1:
        allowed = 1
    n = (q + allowed - 1) // allowed
    nmax = X["twap_max_children"]
    n = max(2, min(n, nmax))
    n = min(n, q)
    base = q // n
    dur = X["twap_duration_ns"]
    for i in range(n):
        out_qty[i] = base * lot
        out_ts[i] = start_ns + (i * dur) // n
    out_qty[n - 1] = (q - base * (n - 1)) * lot
    return n


@njit(cache=True)
def iceberg_clip(qty: float, lot: float, depth: float, X: np.void) -> float:
    """Visible clip size: ``iceberg_clip_share * depth`` in whole lots, at least one lot, at most
    the parent (0 when the parent is below one lot)."""
    c = math.floor(X["iceberg_clip_share"] * depth / lot + LOT_EPS)
    c = min(max(1, c), lots(qty, lot))
    return c * lot


@njit(cache=True)
def iceberg_next(parent_qty: float, done_qty: float, clip: float, lot: float) -> float:
    """Size of the next clip once ``done_qty`` of the parent is filled (0 when nothing is left)."""
    left = lots(parent_qty, lot) - lots(done_qty, lot)
    if left <= 0:
        return 0.0
    return min(lots(clip, lot), left) * lot


@njit(cache=True)
def iceberg_plan(qty: float, lot: float, clip: float, out_qty: np.ndarray) -> int:
    """Successive clip sizes if every clip fills in full (the last one holds the remainder)."""
    n = 0
    done = 0.0
    while True:
        c = iceberg_next(qty, done, clip, lot)
        if c <= 0.0 or n >= out_qty.shape[0]:
            return n
        out_qty[n] = c
        done += c
        n += 1


@njit(cache=True)
def passive_price(side: int, best_bid: float, best_ask: float, tick: float, offset_ticks: float) -> float:
    """A resting limit ``offset_ticks`` behind the touch (buy: ``bid - k*tick``), on the tick grid."""
    touch = best_bid if side > 0 else best_ask
    return round(touch / tick - side * offset_ticks) * tick


def _grid(x: float, step: float) -> float:
    """``x`` without the float noise of ``k * step`` (12 decimals are far below any lot or tick)."""
    return round(x, 12)


def side_depth(intent: OrderIntent, bid_sizes: np.ndarray, ask_sizes: np.ndarray, levels: int) -> float:
    """Visible depth on the intent's side: the queue it joins (limit) or the side it takes (market)."""
    buy = intent.side is Side.BUY
    if intent.order_type is OrderType.MARKET:
        sizes = ask_sizes if buy else bid_sizes
    else:
        sizes = bid_sizes if buy else ask_sizes
    return float(visible_depth(np.ascontiguousarray(sizes, dtype=np.float64), levels))


def _child(parent: OrderIntent, tag: str, i: int, qty: float, lot: float, **kw: object) -> OrderIntent:
    cid = f"{parent.client_order_id}-{tag}{i}"
    check_client_id(cid)
    return msgspec.structs.replace(
        parent, client_order_id=cid, quantity=_grid(qty, lot), parent_id=parent.client_order_id, **kw
    )


@dataclass
class TwapSlicer:
    """A TWAP plan for ``parent``: :meth:`due` releases the children whose time has come."""

    parent: OrderIntent
    children: list[OrderIntent]
    times_ns: list[int]
    reason: str
    depth: float
    released: int = 0

    @classmethod
    def plan(cls, parent: OrderIntent, depth: float, lot: float, start_ns: int, X: np.void) -> TwapSlicer:
        """Plan the children of ``parent`` (``depth`` from :func:`side_depth`, ``X`` the record
        ``ExecutionConfig.to_record()[0]``). An order within the depth share is one child, itself."""
        reason = int(slice_check(parent.quantity, lot, depth, X))
        if reason in (NO_SLICE, TOO_SMALL):
            return cls(parent, [parent], [start_ns], SLICE_REASONS[reason], depth)
        nmax = int(X["twap_max_children"])
        q, t = np.zeros(nmax), np.zeros(nmax, dtype=np.int64)
        n = int(twap_plan(parent.quantity, lot, depth, X, start_ns, q, t))
        kids = [_child(parent, "t", i, float(q[i]), lot, ts_created=int(t[i])) for i in range(n)]
        return cls(parent, kids, [int(x) for x in t[:n]], SLICE_REASONS[reason], depth)

    def due(self, now_ns: int) -> list[OrderIntent]:
        """Children due at ``now_ns`` not released before (each is released once)."""
        out = []
        while self.released < len(self.children) and self.times_ns[self.released] <= now_ns:
            out.append(self.children[self.released])
            self.released += 1
        return out

    @property
    def done(self) -> bool:
        return self.released >= len(self.children)


@dataclass
class IcebergSlicer:
    """An iceberg for ``parent``: :meth:`first` posts the first clip, :meth:`on_clip_done` the next."""

    parent: OrderIntent
    clip: float
    lot: float
    tick: float
    offset_ticks: float
    filled: float = 0.0
    posted: int = 0
    children: list[OrderIntent] = field(default_factory=list)

    @classmethod
    def plan(cls, parent: OrderIntent, depth: float, lot: float, tick: float, X: np.void) -> IcebergSlicer:
        clip = float(iceberg_clip(parent.quantity, lot, depth, X))
        return cls(parent, clip, lot, tick, float(X["iceberg_offset_ticks"]))

    def _post(self, best_bid: float, best_ask: float, now_ns: int) -> OrderIntent | None:
        size = float(iceberg_next(self.parent.quantity, self.filled, self.clip, self.lot))
        if size <= 0.0:
            return None
        px = float(passive_price(int(self.parent.side), best_bid, best_ask, self.tick, self.offset_ticks))
        self.posted += 1
        child = _child(
            self.parent,
            "i",
            self.posted,
            size,
            self.lot,
            order_type=OrderType.LIMIT,
            price=_grid(px, self.tick),
            ts_created=now_ns,
        )
        self.children.append(child)
        return child

    def first(self, best_bid: float, best_ask: float, now_ns: int) -> OrderIntent | None:
        """The first visible clip at the current touch (None if the parent is below one lot)."""
        return self._post(best_bid, best_ask, now_ns)

    def on_clip_done(
        self, filled: float, best_bid: float, best_ask: float, now_ns: int
    ) -> OrderIntent | None:
        """The current clip ended with ``filled`` base units: the next clip (refreshed at the current
        touch), or None when the parent is complete."""
        self.filled += filled
        return self._post(best_bid, best_ask, now_ns)

    @property
    def remaining(self) -> float:
        return max(0.0, self.parent.quantity - self.filled)
