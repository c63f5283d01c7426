"""A local L2 order book: price -> size per side, kept sorted for O(log n) best and top-N access.

The book is venue-agnostic; keeping it in sync with an exchange (snapshots, update ids, gaps) is the
adapter's job (see :mod:`orderflow.data.binance.sync`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sortedcontainers import SortedDict

from orderflow.core.events import Level


class OrderBook:
    """Price-level book. Bids and asks are :class:`SortedDict` keyed by price (ascending)."""

    __slots__ = ("asks", "bids", "update_id")

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        self.update_id: int = -1

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.update_id = -1

    def load(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int) -> None:
        """Replace the whole book (a REST snapshot). Zero sizes are ignored."""
        self.bids = SortedDict((p, q) for p, q in bids if q > 0.0)
        self.asks = SortedDict((p, q) for p, q in asks if q > 0.0)
        self.update_id = update_id

    def apply(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int) -> None:
        """Apply absolute level sizes; a size of 0 removes the level (absent levels are no-ops)."""
        side = self.bids
        for p, q in bids:
            if q > 0.0:
                side[p] = q
            else:
                side.pop(p, None)
        side = self.asks
        for p, q in asks:
            if q > 0.0:
                side[p] = q
            else:
                side.pop(p, None)
        self.update_id = update_id

    # -- queries ---------------------------------------------------------------------------------
    def best_bid(self) -> Level | None:
        return self.bids.peekitem(-1) if self.bids else None

    def best_ask(self) -> Level | None:
        return self.asks.peekitem(0) if self.asks else None

    def is_crossed(self) -> bool:
        """True when best bid >= best ask (crossed or locked)."""
        return bool(self.bids) and bool(self.asks) and self.bids.peekitem(-1)[0] >= self.asks.peekitem(0)[0]

    def top(self, n: int) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """Top ``n`` levels: bids best-first (descending price), asks best-first (ascending)."""
        b, a = self.bids, self.asks
        nb, na = min(n, len(b)), min(n, len(a))
        bk, ak = b.keys(), a.keys()
        bids = tuple((p, b[p]) for p in bk[len(b) - nb :][::-1]) if nb else ()
        asks = tuple((p, a[p]) for p in ak[:na]) if na else ()
        return bids, asks

    def top_into(self, n: int, out: np.ndarray) -> None:
        """Write the top ``n`` levels into ``out[0:4n]`` as bid_px, bid_sz, ask_px, ask_sz blocks
        (level 1 first); missing levels are NaN."""
        out[: 4 * n] = np.nan
        b, a = self.bids, self.asks
        nb, na = min(n, len(b)), min(n, len(a))
        if nb:
            keys = b.keys()[len(b) - nb :]
            for i in range(nb):
                p = keys[nb - 1 - i]
                out[i] = p
                out[n + i] = b[p]
        if na:
            keys = a.keys()[:na]
            for i in range(na):
                p = keys[i]
                out[2 * n + i] = p
                out[3 * n + i] = a[p]

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)
