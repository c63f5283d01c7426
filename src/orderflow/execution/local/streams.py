"""Replayed market state of one symbol and its payloads in Binance's wire format.

:class:`SymbolMarket` holds the current top-L book (``lastUpdateId`` = a counter advanced by every
book event), recent trades and klines built from trades, and formats the market stream messages:

- ``<s>@depth`` / ``<s>@depth@100ms``: diff events between consecutive book states (levels that
  changed, and size ``"0"`` for levels that left the top L, so a client applying the diffs to a REST
  snapshot holds exactly the top L); futures diffs carry ``pu`` (previous ``u``) and ``T``;
- ``<s>@depth<N>`` / ``<s>@depth<N>@100ms`` (N in 5, 10, 20): partial book (spot
  ``{"lastUpdateId","bids","asks"}``; futures a ``depthUpdate`` with ``b`` / ``a``);
- ``<s>@trade``, ``<s>@aggTrade`` (one aggregate per trade), ``<s>@bookTicker`` (when the top changes),
  ``<s>@kline_<interval>`` (on every trade).

Prices are printed with the tick's decimals, sizes with the lot's, times in ms.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from orderflow.core.instruments import Instrument

NS_PER_MS = 1_000_000
KLINE_INTERVALS: dict[str, int] = {
    "1s": 1,
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
}
MAX_KLINES = 1500
MAX_TRADES = 1000


def fmt(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


class _Kline:
    __slots__ = ("c", "f", "h", "last_id", "lo", "n", "o", "q", "t0", "tq", "tv", "v")

    def __init__(self, t0: int, px: float, tid: int) -> None:
        self.t0, self.o, self.h, self.lo, self.c = t0, px, px, px, px
        self.v = self.q = self.tv = self.tq = 0.0
        self.n, self.f, self.last_id = 0, tid, tid


class SymbolMarket:
    """State and payloads of one symbol (``futures``: USD-M formats, else spot formats)."""

    def __init__(self, instrument: Instrument, levels: int, futures: bool) -> None:
        self.inst = instrument
        self.symbol = instrument.symbol
        self.futures = futures
        self.levels = levels
        self.pdec, self.sdec = instrument.price_decimals, instrument.size_decimals
        nan = np.full(levels, np.nan)
        self.bid_px, self.bid_sz, self.ask_px, self.ask_sz = nan.copy(), nan.copy(), nan.copy(), nan.copy()
        self.update_id = 0
        self.last_ts = 0
        self.trade_id = 0
        self.trades: deque[tuple[int, float, float, bool, int]] = deque(maxlen=MAX_TRADES)
        self._kl: dict[str, _Kline] = {}
        self._kl_hist: dict[str, deque[list[Any]]] = {i: deque(maxlen=MAX_KLINES) for i in KLINE_INTERVALS}

    # ------------------------------------------------------------------------------------ book
    def _levels(self, px: np.ndarray, sz: np.ndarray, n: int | None = None) -> list[list[str]]:
        out = []
        for p, s in zip(px[: n or len(px)], sz[: n or len(sz)], strict=True):
            if np.isnan(p) or np.isnan(s):
                break
            out.append([fmt(p, self.pdec), fmt(s, self.sdec)])
        return out

    def _diff(self, old_px, old_sz, new_px, new_sz) -> list[list[str]]:
        old = {fmt(p, self.pdec): s for p, s in zip(old_px, old_sz, strict=True) if not np.isnan(p)}
        new = {fmt(p, self.pdec): s for p, s in zip(new_px, new_sz, strict=True) if not np.isnan(p)}
        out = [[p, fmt(s, self.sdec)] for p, s in new.items() if old.get(p) != s]
        out += [[p, fmt(0.0, self.sdec)] for p in old if p not in new]
        return out

    def apply_book(self, ts: int, bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, az: np.ndarray) -> dict:
        """Replace the book; returns the stream payloads by stream suffix (``depth``, ``depth5``...)."""
        prev_u = self.update_id
        self.update_id += 1
        u = self.update_id
        L = self.levels
        bp, bs, ap, az = (
            np.resize(np.append(a[:L], np.full(max(0, L - len(a)), np.nan)), L) for a in (bp, bs, ap, az)
        )
        b = self._diff(self.bid_px, self.bid_sz, bp, bs)
        a = self._diff(self.ask_px, self.ask_sz, ap, az)
        top_changed = (
            self.bid_px[0] != bp[0]
            or self.bid_sz[0] != bs[0]
            or self.ask_px[0] != ap[0]
            or self.ask_sz[0] != az[0]
        )
        self.bid_px, self.bid_sz, self.ask_px, self.ask_sz = bp, bs, ap, az
        self.last_ts = ts
        ms = ts // NS_PER_MS
        out: dict[str, Any] = {}
        diff: dict[str, Any] = {"e": "depthUpdate", "E": ms}
        if self.futures:
            diff["T"] = ms
        diff.update({"s": self.symbol, "U": prev_u + 1, "u": u})
        if self.futures:
            diff["pu"] = prev_u
        diff["b"], diff["a"] = b, a
        out["depth"] = diff
        for n in (5, 10, 20):
            if self.futures:
                out[f"depth{n}"] = {
                    "e": "depthUpdate",
                    "E": ms,
                    "T": ms,
                    "s": self.symbol,
                    "U": prev_u + 1,
                    "u": u,
                    "pu": prev_u,
                    "b": self._levels(bp, bs, n),
                    "a": self._levels(ap, az, n),
                }
            else:
                out[f"depth{n}"] = {
                    "lastUpdateId": u,
                    "bids": self._levels(bp, bs, n),
                    "asks": self._levels(ap, az, n),
                }
        if top_changed:
            out["bookTicker"] = self.book_ticker()
        return out

    def book_ticker(self) -> dict[str, Any]:
        def s(x: float, d: int) -> str:
            return fmt(0.0 if np.isnan(x) else x, d)

        body = {
            "u": self.update_id,
            "s": self.symbol,
            "b": s(self.bid_px[0], self.pdec),
            "B": s(self.bid_sz[0], self.sdec),
            "a": s(self.ask_px[0], self.pdec),
            "A": s(self.ask_sz[0], self.sdec),
        }
        if self.futures:
            ms = self.last_ts // NS_PER_MS
            return {"e": "bookTicker", "u": self.update_id, "E": ms, "T": ms, **body}
        return body

    def depth_snapshot(self, limit: int) -> dict[str, Any]:
        """REST ``depth`` answer (top ``limit`` of the current book)."""
        out: dict[str, Any] = {"lastUpdateId": self.update_id}
        if self.futures:
            out["E"] = out["T"] = self.last_ts // NS_PER_MS
        out["bids"] = self._levels(self.bid_px, self.bid_sz, limit)
        out["asks"] = self._levels(self.ask_px, self.ask_sz, limit)
        return out

    def next_trade_id(self) -> int:
        self.trade_id += 1
        return self.trade_id

    # ---------------------------------------------------------------------------------- trades
    def apply_trade(self, ts: int, px: float, sz: float, side: int) -> dict[str, Any]:
        """A public trade; returns payloads by stream suffix (``trade``, ``aggTrade``, ``kline_<i>``)."""
        tid = self.next_trade_id()
        self.last_ts = ts
        ms = ts // NS_PER_MS
        maker_buyer = side < 0  # the seller aggressed: the buyer was the maker
        self.trades.append((tid, px, sz, maker_buyer, ms))
        p, q = fmt(px, self.pdec), fmt(sz, self.sdec)
        if self.futures:
            trade = {
                "e": "trade",
                "E": ms,
                "T": ms,
                "s": self.symbol,
                "t": tid,
                "p": p,
                "q": q,
                "X": "MARKET",
                "m": maker_buyer,
            }
            agg = {
                "e": "aggTrade",
                "E": ms,
                "s": self.symbol,
                "a": tid,
                "p": p,
                "q": q,
                "f": tid,
                "l": tid,
                "T": ms,
                "m": maker_buyer,
            }
        else:
            trade = {
                "e": "trade",
                "E": ms,
                "s": self.symbol,
                "t": tid,
                "p": p,
                "q": q,
                "T": ms,
                "m": maker_buyer,
                "M": True,
            }
            agg = {
                "e": "aggTrade",
                "E": ms,
                "s": self.symbol,
                "a": tid,
                "p": p,
                "q": q,
                "f": tid,
                "l": tid,
                "T": ms,
                "m": maker_buyer,
                "M": True,
            }
        out: dict[str, Any] = {"trade": trade, "aggTrade": agg}
        for name, secs in KLINE_INTERVALS.items():
            if name == "1s" and self.futures:
                continue
            out[f"kline_{name}"] = self._kline(name, secs * 1000, ms, px, sz, side, tid)
        return out

    def _kline(self, name: str, span: int, ms: int, px: float, sz: float, side: int, tid: int) -> dict:
        t0 = ms - ms % span
        k = self._kl.get(name)
        if k is None or k.t0 != t0:
            if k is not None:
                self._kl_hist[name].append(self._row(k, span))
            k = self._kl[name] = _Kline(t0, px, tid)
        k.h, k.lo, k.c = max(k.h, px), min(k.lo, px), px
        k.v += sz
        k.q += sz * px
        if side > 0:
            k.tv += sz
            k.tq += sz * px
        k.n += 1
        k.last_id = tid
        d, s = self.pdec, self.sdec
        body = {
            "t": k.t0,
            "T": k.t0 + span - 1,
            "s": self.symbol,
            "i": name,
            "f": k.f,
            "L": k.last_id,
            "o": fmt(k.o, d),
            "c": fmt(k.c, d),
            "h": fmt(k.h, d),
            "l": fmt(k.lo, d),
            "v": fmt(k.v, s),
            "n": k.n,
            "x": False,
            "q": fmt(k.q, 8),
            "V": fmt(k.tv, s),
            "Q": fmt(k.tq, 8),
            "B": "0",
        }
        return {"e": "kline", "E": ms, "s": self.symbol, "k": body}

    def _row(self, k: _Kline, span: int) -> list[Any]:
        d, s = self.pdec, self.sdec
        return [
            k.t0,
            fmt(k.o, d),
            fmt(k.h, d),
            fmt(k.lo, d),
            fmt(k.c, d),
            fmt(k.v, s),
            k.t0 + span - 1,
            fmt(k.q, 8),
            k.n,
            fmt(k.tv, s),
            fmt(k.tq, 8),
            "0",
        ]

    def klines(self, interval: str) -> list[list[Any]]:
        """Closed klines then the open one (REST ``klines`` rows), oldest first."""
        span = KLINE_INTERVALS[interval] * 1000
        rows = list(self._kl_hist[interval])
        k = self._kl.get(interval)
        if k is not None:
            rows.append(self._row(k, span))
        return rows

    def recent_trades(self, limit: int) -> list[dict[str, Any]]:
        out = []
        for tid, px, sz, mb, ms in list(self.trades)[-limit:]:
            out.append(
                {
                    "id": tid,
                    "price": fmt(px, self.pdec),
                    "qty": fmt(sz, self.sdec),
                    "quoteQty": fmt(px * sz, 8),
                    "time": ms,
                    "isBuyerMaker": mb,
                    **({} if self.futures else {"isBestMatch": True}),
                }
            )
        return out

    def agg_trades(self, limit: int) -> list[dict[str, Any]]:
        out = []
        for tid, px, sz, mb, ms in list(self.trades)[-limit:]:
            row = {
                "a": tid,
                "p": fmt(px, self.pdec),
                "q": fmt(sz, self.sdec),
                "f": tid,
                "l": tid,
                "T": ms,
                "m": mb,
            }
            if not self.futures:
                row["M"] = True
            out.append(row)
        return out
