"""A local L2 order book on an integer tick grid, for fast updates and top-N reads.

Levels within a band of ``band_ticks`` around the touch live in two flat arrays indexed by tick (one
per side; a size of 0 means no level), so applying a diff is an index computation and an array store,
and the best price and top N levels are found with vectorised scans. Levels outside the band (deep
levels far from the touch, or prices off the tick grid) live in plain dicts and are merged in when a
top-N read needs them. When the touch drifts near the band's edge the band is re-centred.

The book is venue-agnostic; keeping it in sync with an exchange (snapshots, update ids, gaps) is the
adapter's job (see :mod:`orderflow.adapters.binance.sync`). Prices come back rounded to the tick's decimals,
so they equal the exchange's decimal strings parsed as floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from orderflow.core.events import Level
from orderflow.core.instruments import infer_tick

DEFAULT_BAND_TICKS = 1 << 15


def _decimals(tick: float) -> int:
    d = 0
    while d < 12 and abs(round(tick, d) - tick) > 1e-12 * max(1.0, tick):
        d += 1
    return d


class OrderBook:
    """Price-level book. ``tick_size`` may be omitted: it is then inferred from the first snapshot."""

    __slots__ = (
        "_ask_far",
        "_ask_i",
        "_ask_v",
        "_base",
        "_bid_far",
        "_bid_i",
        "_bid_v",
        "_dec",
        "_inv",
        "_n",
        "_placed",
        "_placing",
        "band_ticks",
        "tick_size",
        "update_id",
    )

    def __init__(self, tick_size: float | None = None, band_ticks: int = DEFAULT_BAND_TICKS) -> None:
        self.tick_size = tick_size
        self.band_ticks = band_ticks
        self.update_id = -1
        self._n = 2 * band_ticks
        self._bid_v = np.zeros(self._n)  # replaced by array-backed views in _alloc
        self._ask_v = np.zeros(self._n)
        self._bid_far: dict[float, float] = {}
        self._ask_far: dict[float, float] = {}
        self._base = 0  # tick index of grid slot 0
        self._placed = False  # the grid has not been positioned yet
        self._placing = False  # re-building: never re-centre recursively
        self._bid_i = -1  # grid index of best bid, -1 if none in grid
        self._ask_i = self._n  # grid index of best ask, n if none in grid
        self._inv = 0.0
        self._dec = 8
        if tick_size:
            self._set_tick(tick_size)

    # -- set-up ------------------------------------------------------------------------------------
    def _set_tick(self, tick: float) -> None:
        self.tick_size = tick
        self._inv = 1.0 / tick
        self._dec = _decimals(tick)

    def _place(self, center_tick: int) -> None:
        """(Re)build the grid around ``center_tick`` from every level currently held."""
        levels_b = list(self._iter_side(True))
        levels_a = list(self._iter_side(False))
        self._base = center_tick - self.band_ticks
        self._placed = True
        self._bid_v = np.zeros(self._n)
        self._ask_v = np.zeros(self._n)
        self._bid_far = {}
        self._ask_far = {}
        self._bid_i, self._ask_i = -1, self._n
        self._placing = True
        try:
            self._set_levels(levels_b, levels_a)
        finally:
            self._placing = False

    def _set_levels(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        for p, q in bids:
            if q > 0.0:
                self._set_bid(p, q)
        for p, q in asks:
            if q > 0.0:
                self._set_ask(p, q)

    def clear(self) -> None:
        self._bid_v[:] = 0.0
        self._ask_v[:] = 0.0
        self._bid_far.clear()
        self._ask_far.clear()
        self._bid_i, self._ask_i = -1, self._n
        self.update_id = -1

    def load(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int) -> None:
        """Replace the whole book (a REST snapshot). Zero sizes are ignored."""
        bids = [(p, q) for p, q in bids if q > 0.0]
        asks = [(p, q) for p, q in asks if q > 0.0]
        if not self.tick_size:
            tick = infer_tick([p for p, _ in bids] + [p for p, _ in asks])
            if tick != tick:  # NaN: too few levels to tell
                tick = 1e-8
            self._set_tick(tick)
        self.clear()
        self._bid_far, self._ask_far = {}, {}
        ref = bids[0][0] if bids else (asks[0][0] if asks else None)
        if ref is not None:
            if bids and asks:
                ref = 0.5 * (max(p for p, _ in bids) + min(p for p, _ in asks))
            self._base = int(ref * self._inv + 0.5) - self.band_ticks
            self._placed = True
        self._set_levels(bids, asks)
        self.update_id = update_id

    # -- updates -----------------------------------------------------------------------------------
    def _set_bid(self, p: float, q: float) -> None:
        x = p * self._inv
        t = int(x + 0.5)
        i = t - self._base
        if not self._placed or not (0 <= i < self._n) or abs(x - t) > 1e-6:
            self._far_set(True, p, q, i, x, t)
            return
        self._bid_v[i] = q
        if i > self._bid_i:
            self._bid_i = i
            if i > self._n - (self.band_ticks >> 2) and not self._placing:
                self._recenter(t)

    def _set_ask(self, p: float, q: float) -> None:
        x = p * self._inv
        t = int(x + 0.5)
        i = t - self._base
        if not self._placed or not (0 <= i < self._n) or abs(x - t) > 1e-6:
            self._far_set(False, p, q, i, x, t)
            return
        self._ask_v[i] = q
        if i < self._ask_i:
            self._ask_i = i
            if i < (self.band_ticks >> 2) and not self._placing:
                self._recenter(t)

    def _far_set(self, is_bid: bool, p: float, q: float, i: int, x: float, t: int) -> None:
        if not self._placed:
            (self._bid_far if is_bid else self._ask_far)[p] = q
            if abs(x - t) <= 1e-6:
                self._place(t)
            return
        if abs(x - t) > 1e-6:
            (self._bid_far if is_bid else self._ask_far)[p] = q
            return
        # on the grid but outside the band: inside the touch means the band must move
        (self._bid_far if is_bid else self._ask_far)[p] = q
        if ((is_bid and i >= self._n) or (not is_bid and i < 0)) and not self._placing:
            self._recenter(t)

    def _recenter(self, center_tick: int) -> None:
        self._place(center_tick)

    def _del_bid(self, p: float) -> None:
        x = p * self._inv
        t = int(x + 0.5)
        i = t - self._base
        if 0 <= i < self._n and abs(x - t) <= 1e-6:
            v = self._bid_v
            if v[i] != 0.0:
                v[i] = 0.0
                if i == self._bid_i:
                    self._bid_i = self._scan_down(v, i)
            return
        self._bid_far.pop(p, None)

    def _del_ask(self, p: float) -> None:
        x = p * self._inv
        t = int(x + 0.5)
        i = t - self._base
        if 0 <= i < self._n and abs(x - t) <= 1e-6:
            v = self._ask_v
            if v[i] != 0.0:
                v[i] = 0.0
                if i == self._ask_i:
                    self._ask_i = self._scan_up(v, i)
            return
        self._ask_far.pop(p, None)

    @staticmethod
    def _scan_down(v: np.ndarray, i: int) -> int:
        span = 256
        while True:
            lo = max(0, i - span)
            nz = np.flatnonzero(v[lo:i])
            if nz.size:
                return lo + int(nz[-1])
            if lo == 0:
                return -1
            span *= 8

    def _scan_up(self, v: np.ndarray, i: int) -> int:
        span = 256
        n = self._n
        while True:
            hi = min(n, i + 1 + span)
            nz = np.flatnonzero(v[i + 1 : hi])
            if nz.size:
                return i + 1 + int(nz[0])
            if hi == n:
                return n
            span *= 8

    def apply(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int) -> None:
        """Apply absolute level sizes; a size of 0 removes the level (absent levels are no-ops)."""
        if not self._placed:
            self._set_levels(bids, asks)
            self.update_id = update_id
            return
        inv, base, n = self._inv, self._base, self._n
        v = self._bid_v
        for p, q in bids:
            x = p * inv
            t = int(x + 0.5)
            i = t - base
            if 0 <= i < n and -1e-6 <= x - t <= 1e-6 and i <= self._bid_i:
                # fast path: inside the band at or below the best bid
                if q > 0.0:
                    v[i] = q
                elif v[i] != 0.0:
                    v[i] = 0.0
                    if i == self._bid_i:
                        self._bid_i = self._scan_down(v, i)
            elif q > 0.0:
                self._set_bid(p, q)
                base, v = self._base, self._bid_v
            else:
                self._del_bid(p)
        v = self._ask_v
        for p, q in asks:
            x = p * inv
            t = int(x + 0.5)
            i = t - base
            if 0 <= i < n and -1e-6 <= x - t <= 1e-6 and i >= self._ask_i:
                if q > 0.0:
                    v[i] = q
                elif v[i] != 0.0:
                    v[i] = 0.0
                    if i == self._ask_i:
                        self._ask_i = self._scan_up(v, i)
            elif q > 0.0:
                self._set_ask(p, q)
                base, v = self._base, self._ask_v
            else:
                self._del_ask(p)
        self.update_id = update_id

    # -- queries -----------------------------------------------------------------------------------
    def _px(self, i: int) -> float:
        return round((self._base + i) * self.tick_size, self._dec)  # type: ignore[operator]

    def best_bid(self) -> Level | None:
        b = self.top(1)[0]
        return b[0] if b else None

    def best_ask(self) -> Level | None:
        a = self.top(1)[1]
        return a[0] if a else None

    def is_crossed(self) -> bool:
        """True when best bid >= best ask (crossed or locked)."""
        b, a = self.best_bid(), self.best_ask()
        return b is not None and a is not None and b[0] >= a[0]

    def _grid_side(self, is_bid: bool, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to n best grid levels of a side as (prices, sizes), best first."""
        if is_bid:
            i = self._bid_i
            if i < 0:
                return np.empty(0), np.empty(0)
            v, span = self._bid_v, max(64, 4 * n)
            while True:
                lo = max(0, i + 1 - span)
                idx = np.flatnonzero(v[lo : i + 1])
                if idx.size >= n or lo == 0:
                    idx = (lo + idx[::-1])[:n]
                    break
                span *= 8
        else:
            i = self._ask_i
            if i >= self._n:
                return np.empty(0), np.empty(0)
            v, span = self._ask_v, max(64, 4 * n)
            while True:
                hi = min(self._n, i + span)
                idx = np.flatnonzero(v[i:hi])
                if idx.size >= n or hi == self._n:
                    idx = (i + idx)[:n]
                    break
                span *= 8
        px = np.round((self._base + idx) * (self.tick_size or 0.0), self._dec)
        return px, v[idx]

    def _side(self, is_bid: bool, n: int) -> tuple[np.ndarray, np.ndarray]:
        px, sz = self._grid_side(is_bid, n)
        far = self._bid_far if is_bid else self._ask_far
        if far:
            fp = np.fromiter(far.keys(), float, len(far))
            fq = np.fromiter(far.values(), float, len(far))
            px = np.concatenate([px, fp])
            sz = np.concatenate([sz, fq])
            order = np.argsort(-px if is_bid else px, kind="stable")[:n]
            px, sz = px[order], sz[order]
        return px, sz

    def top(self, n: int) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """Top ``n`` levels: bids best-first (descending price), asks best-first (ascending)."""
        bp, bq = self._side(True, n)
        ap, aq = self._side(False, n)
        return tuple(zip(bp.tolist(), bq.tolist(), strict=True)), tuple(
            zip(ap.tolist(), aq.tolist(), strict=True)
        )

    def top_into(self, n: int, out: np.ndarray) -> None:
        """Write the top ``n`` levels into ``out[0:4n]`` as bid_px, bid_sz, ask_px, ask_sz blocks
        (level 1 first); missing levels are NaN."""
        out[: 4 * n] = np.nan
        bp, bq = self._side(True, n)
        ap, aq = self._side(False, n)
        out[: len(bp)] = bp
        out[n : n + len(bq)] = bq
        out[2 * n : 2 * n + len(ap)] = ap
        out[3 * n : 3 * n + len(aq)] = aq

    def _iter_side(self, is_bid: bool) -> Iterator[Level]:
        v = self._bid_v if is_bid else self._ask_v
        if self._placed:
            idx = np.flatnonzero(v)
            px = np.round((self._base + idx) * (self.tick_size or 0.0), self._dec)
            yield from zip(px.tolist(), v[idx].tolist(), strict=True)
        yield from (self._bid_far if is_bid else self._ask_far).items()

    def levels(self, is_bid: bool) -> list[Level]:
        """Every level of a side, best first."""
        lv = list(self._iter_side(is_bid))
        lv.sort(key=lambda x: -x[0] if is_bid else x[0])
        return lv

    @property
    def bids(self) -> dict[float, float]:
        """All bid levels as a dict price -> size (a copy, for inspection and tests)."""
        return dict(self._iter_side(True))

    @property
    def asks(self) -> dict[float, float]:
        return dict(self._iter_side(False))

    def __len__(self) -> int:
        return (
            int(np.count_nonzero(self._bid_v))
            + int(np.count_nonzero(self._ask_v))
            + len(self._bid_far)
            + len(self._ask_far)
        )
