"""Technical indicators (feature group ``technical``) on time bars built from trades.

Bars are aligned to the UTC epoch: a bar of interval ``iv`` covers ``[k*iv, (k+1)*iv)`` ns, so a trade
exactly on a boundary belongs to the *next* bar. The first bar is the first trade's bar. A bar closes
when an event with ``ts >= bar end`` is seen; a bar without trades carries the previous close
(open = high = low = close, volume 0, count 0). One bar builder (the numba kernels ``_bar_add`` and
``_bar_carry``) serves both the stream and the batch path, so both see the same bar sequence.

Indicators come from TA-Lib (``talib`` on float64 arrays), computed by one function,
``_indicators``, over a block of bars. Both paths compute bar t's values over the same window,
bars ``[a, t]`` with ``a = max(0, (t // H - 1) * H)`` and ``H = lookback_bars // 2`` (so between
H + 1 and 2H = lookback_bars bars once t >= H): the stream at each bar close over its stored window,
keeping the last column; the batch once per block of H bars over the whole bar array. TA-Lib is
causal, so the two are bit-for-bit equal. (Running a function once over the full history instead
is not: TA-Lib's running sums in SMA, BBANDS, CCI, STOCH and MFI drift with the start of the array,
by up to 1e-8 relative and with sign flips near 0 on a 3 h simulation at 1 s bars.) The window
start matters only through EMA / Wilder seeds: with the default 1000 bars (>= 501 in a window) the
EMA(50) seed has decayed to ~1e-8 of its weight, the shorter ones far below. The 20-bar volume
sums (OBV flow, volume ratio, buy share) are summed afresh per bar, so 20 empty bars give exactly 0
(NaN ratios) rather than a running-sum residue.

Timing rule: ``advance(ts)`` closes every bar whose end is ``<= ts``. A trade at exactly ``ts ==
bar end`` belongs to the next bar whether it arrives before or after ``advance(ts)``, so the batch
row for a sample at ``ts`` (which counts trades with ts <= sample) equals the stream after
``advance(ts)``. Values are those of the last closed bar; NaN until TA-Lib defines them.

Trades with a non-finite or non-positive price or a negative size are dropped by both paths. The
stream adds a late trade (older than an already closed bar) to the open bar and counts it in
``late_trades``; the batch, given sorted trades, cannot see such a trade: sort before replaying.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np
import talib
from numba import njit

from orderflow.core.timeutil import interval_ns
from orderflow.features.spec import N_INDICATORS

if TYPE_CHECKING:
    from orderflow.features.config import TechnicalConfig

log = logging.getLogger(__name__)

# bar accumulator / bar row layout
_O, _H, _L, _C, _V, _BV, _N = range(7)
_NCOL = 7


@njit(cache=True)
def _trade_ok(px: float, sz: float) -> bool:
    """A usable trade: finite positive price, finite size >= 0. Both paths drop the others."""
    return math.isfinite(px) and px > 0.0 and math.isfinite(sz) and sz >= 0.0


@njit(cache=True)
def _trades_ok(px: np.ndarray, sz: np.ndarray) -> np.ndarray:
    ok = np.empty(px.shape[0], dtype=np.bool_)
    for i in range(px.shape[0]):
        ok[i] = _trade_ok(px[i], sz[i])
    return ok


@njit(cache=True)
def _bar_add(acc: np.ndarray, px: float, sz: float, side: int) -> None:
    """Add one (usable) trade to the open bar ``acc`` (o, h, l, c, v, buy v, count)."""
    if acc[_N] == 0.0:
        acc[_O] = px
        acc[_H] = px
        acc[_L] = px
    else:
        if px > acc[_H]:
            acc[_H] = px
        if px < acc[_L]:
            acc[_L] = px
    acc[_C] = px
    acc[_V] += sz
    if side > 0:
        acc[_BV] += sz
    acc[_N] += 1.0


@njit(cache=True)
def _bar_carry(acc: np.ndarray) -> None:
    """Start the next bar after closing ``acc``: an empty bar at the previous close."""
    c = acc[_C]
    acc[_O] = c
    acc[_H] = c
    acc[_L] = c
    acc[_V] = 0.0
    acc[_BV] = 0.0
    acc[_N] = 0.0


@njit(cache=True)
def _build_bars(
    ts: np.ndarray, px: np.ndarray, sz: np.ndarray, side: np.ndarray, iv: int, k0: int, n_bars: int
) -> np.ndarray:
    """Bars k0 .. k0+n_bars-1 (rows of o, h, l, c, v, buy v, count) from trades sorted by ts."""
    out = np.empty((n_bars, _NCOL))
    acc = np.zeros(_NCOL)
    acc[:4] = np.nan
    j = 0
    for i in range(ts.shape[0]):
        k = ts[i] // iv - k0
        if k >= n_bars:
            break
        while j < k:
            out[j] = acc
            _bar_carry(acc)
            j += 1
        _bar_add(acc, px[i], sz[i], side[i])
    while j < n_bars:
        out[j] = acc
        _bar_carry(acc)
        j += 1
    return out


BAR_FIELDS = ("open", "high", "low", "close", "volume", "buy_volume", "trades")


def build_bars(
    trade_ts: np.ndarray,
    trade_px: np.ndarray,
    trade_sz: np.ndarray,
    trade_side: np.ndarray,
    interval: str,
    end_ns: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Bars closed at ``end_ns`` (bar end <= end_ns) from sorted, usable trades: (start ns of each
    bar, array (n, 7) of BAR_FIELDS). The first bar is the first trade's; empty bars carry the close."""
    ts = np.ascontiguousarray(trade_ts, dtype=np.int64)
    iv = interval_ns(interval)
    if ts.size == 0:
        return np.empty(0, dtype=np.int64), np.empty((0, _NCOL))
    k0 = int(ts[0] // iv)
    n_bars = max(0, int(end_ns // iv) - k0)
    bars = _build_bars(
        ts,
        np.ascontiguousarray(trade_px, dtype=np.float64),
        np.ascontiguousarray(trade_sz, dtype=np.float64),
        np.ascontiguousarray(trade_side, dtype=np.int64),
        iv,
        k0,
        n_bars,
    )
    return (k0 + np.arange(n_bars, dtype=np.int64)) * iv, bars


@njit(cache=True)
def _rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    """Sum of the last n values, each window summed afresh in order (window-start invariant)."""
    out = np.full(x.shape[0], np.nan)
    for i in range(n - 1, x.shape[0]):
        s = 0.0
        for j in range(i - n + 1, i + 1):
            s += x[j]
        out[i] = s
    return out


def _indicators(h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray, bv: np.ndarray) -> list:
    """All indicators over bar arrays (contiguous float64), in ``spec.INDICATORS`` order."""
    macd, macd_sig, macd_hist = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, talib.MA_Type.SMA)
    slowk, slowd = talib.STOCH(h, lo, c, 5, 3, talib.MA_Type.SMA, 3, talib.MA_Type.SMA)
    signed = np.zeros_like(v)
    dc = np.diff(c)
    signed[1:] = np.where(dc > 0, v[1:], np.where(dc < 0, -v[1:], 0.0))
    signed[0] = np.nan  # OBV's change needs a previous close
    vsum = _rolling_sum(v, 20)
    with np.errstate(divide="ignore", invalid="ignore"):
        vsum_nz = np.where(vsum > 0.0, vsum, np.nan)
        band = upper - lower
        return [
            talib.RSI(c, 14),
            macd / c,
            macd_sig / c,
            macd_hist / c,
            (c - lower) / np.where(band > 0.0, band, np.nan),
            band / middle,
            talib.ATR(h, lo, c, 14) / c,
            talib.ADX(h, lo, c, 14),
            talib.PLUS_DI(h, lo, c, 14),
            talib.MINUS_DI(h, lo, c, 14),
            _rolling_sum(signed, 20) / vsum_nz,
            talib.CCI(h, lo, c, 20),
            slowk,
            slowd,
            talib.WILLR(h, lo, c, 14),
            talib.MFI(h, lo, c, v, 14),
            talib.ROC(c, 10),
            talib.MOM(c, 10) / c,
            c / talib.EMA(c, 20) - 1.0,
            c / talib.EMA(c, 50) - 1.0,
            c / talib.SMA(c, 20) - 1.0,
            talib.ULTOSC(h, lo, c, 7, 14, 28),
            talib.AROONOSC(h, lo, 14),
            talib.CMO(c, 14),
            talib.TRIX(c, 15),
            np.log1p(v / (vsum_nz / 20.0)) - math.log(2.0),
            _rolling_sum(bv, 20) / vsum_nz,
        ]


def _indicators_of_bars(bars: np.ndarray) -> list:
    """``_indicators`` on a (7, n) bar block (rows o, h, l, c, v, buy v, count)."""
    return _indicators(bars[_H], bars[_L], bars[_C], bars[_V], bars[_BV])


def _window_start(t: int, half: int) -> int:
    """First bar of the window that bar t's values are computed over (both paths): windows are
    anchored at multiples of ``half`` = lookback_bars // 2 and hold between half + 1 and
    2 * half bars once t >= half."""
    return max(0, (t // half - 1) * half)


class _IntervalState:
    """One interval's open bar and the closed bars of its current window (bar t is stored in
    column t - base of ``hist``; bars before the window are dropped in blocks)."""

    def __init__(self, iv_ns: int, lookback: int) -> None:
        self.iv = iv_ns
        self.half = lookback // 2
        self.acc = np.zeros(_NCOL)
        self.acc[:4] = np.nan
        self.k = -1  # epoch index of the open bar; -1 before the first trade
        self.hist = np.empty((_NCOL, 4 * self.half))
        self.base = 0  # bar index held in hist column 0
        self.closed = 0  # bars closed so far = index of the open bar
        self.dirty = False

    def _append(self) -> None:
        t = self.closed
        if t - self.base == self.hist.shape[1]:
            a = _window_start(t, self.half)
            self.hist[:, : t - a] = self.hist[:, a - self.base : t - self.base]
            self.base = a
        self.hist[:, t - self.base] = self.acc
        self.closed = t + 1
        _bar_carry(self.acc)

    def close_until(self, k_new: int) -> None:
        """Close the open bar and the empty bars up to epoch index k_new - 1."""
        if self.k < 0 or k_new <= self.k:
            return
        last = self.closed + (k_new - self.k) - 1  # index of the last bar to close
        a = _window_start(last, self.half)
        if a > self.closed:  # a long gap: bars before the last window are never read again
            _bar_carry(self.acc)
            self.closed = self.base = a
        while self.closed <= last:
            self._append()
        self.k = k_new
        self.dirty = True

    def window(self) -> np.ndarray:
        t = self.closed - 1
        return self.hist[:, _window_start(t, self.half) - self.base : t + 1 - self.base]


class TechnicalStream:
    """Streaming technical indicators: O(1) per trade; a TA-Lib recompute over the interval's window
    (at most ``lookback_bars`` bars) when one of its bars closes. ``values`` holds the last closed
    bars' values in ``technical_specs`` order (NaN until defined)."""

    def __init__(self, cfg: TechnicalConfig) -> None:
        self.cfg = cfg
        self._states = [_IntervalState(interval_ns(iv), cfg.lookback_bars) for iv in cfg.intervals]
        self.values = np.full(N_INDICATORS * len(cfg.intervals), np.nan)
        self.late_trades = 0  # trades older than an already-closed bar, put in the open bar
        self.bad_trades = 0  # trades refused for a non-finite price or a bad size

    def on_trade(self, ts_ns: int, price: float, size: float, side: int) -> None:
        """Add a trade; bars that end at or before ``ts_ns`` close first (recomputed on advance)."""
        px, sz = float(price), float(size)
        if not _trade_ok(px, sz):
            self.bad_trades += 1
            if self.bad_trades == 1:
                log.warning("technical: dropped trade at %d (price %r, size %r)", ts_ns, price, size)
            return
        for st in self._states:
            k = ts_ns // st.iv
            if st.k < 0:
                st.k = k
            elif k > st.k:
                st.close_until(k)
            elif k < st.k:
                self.late_trades += 1
                if self.late_trades == 1:
                    log.warning("technical: trade at %d is older than a closed bar; added late", ts_ns)
            _bar_add(st.acc, px, sz, int(side))

    def advance(self, ts_ns: int) -> bool:
        """Close every bar with end <= ts_ns and recompute the intervals that closed a bar."""
        changed = False
        for i, st in enumerate(self._states):
            if st.k >= 0:
                st.close_until(ts_ns // st.iv)
            if st.dirty:
                st.dirty = False
                changed = True
                vals = _indicators_of_bars(st.window())
                base = i * N_INDICATORS
                for j, arr in enumerate(vals):
                    self.values[base + j] = arr[-1]
        return changed


def technical_batch(
    trade_ts: np.ndarray,
    trade_px: np.ndarray,
    trade_sz: np.ndarray,
    trade_side: np.ndarray,
    sample_ts: np.ndarray,
    cfg: TechnicalConfig,
) -> np.ndarray:
    """(len(sample_ts), n_features) matrix: row i equals TechnicalStream after advance(sample_ts[i])
    given every trade with ts <= sample_ts[i]. ``trade_ts`` must be sorted (int ns)."""
    ts = np.ascontiguousarray(trade_ts, dtype=np.int64)
    px = np.ascontiguousarray(trade_px, dtype=np.float64)
    sz = np.ascontiguousarray(trade_sz, dtype=np.float64)
    side = np.ascontiguousarray(trade_side, dtype=np.int64)
    samples = np.asarray(sample_ts, dtype=np.int64)
    for name, a in (("trade_px", px), ("trade_sz", sz), ("trade_side", side)):
        if a.shape != ts.shape:
            raise ValueError(f"technical_batch: {name} has shape {a.shape}, trade_ts {ts.shape}")
    if ts.size > 1:
        bad = np.flatnonzero(np.diff(ts) < 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise ValueError(f"technical_batch: trade_ts not sorted at index {i} ({ts[i - 1]} > {ts[i]})")
    ok = _trades_ok(px, sz)
    if not ok.all():
        log.warning("technical_batch: dropped %d trades with a bad price or size", int((~ok).sum()))
        ts, px, sz, side = ts[ok], px[ok], sz[ok], side[ok]
    out = np.empty((samples.size, N_INDICATORS * len(cfg.intervals)))
    half = cfg.lookback_bars // 2
    for i, iv_name in enumerate(cfg.intervals):
        cols = slice(i * N_INDICATORS, (i + 1) * N_INDICATORS)
        iv = interval_ns(iv_name)
        if ts.size == 0 or samples.size == 0:
            out[:, cols] = np.nan
            continue
        starts, rows = build_bars(ts, px, sz, side, iv_name, int(samples.max()))
        n_bars = starts.size  # bars closed by the last sample
        if n_bars == 0:
            out[:, cols] = np.nan
            continue
        k0 = int(ts[0] // iv)
        bars = np.ascontiguousarray(rows.T)
        vals = np.empty((n_bars + 1, N_INDICATORS))  # row 0: no bar closed yet
        vals[0] = np.nan
        for m in range(0, n_bars, half):  # bars m .. e-1 from the same window as the stream's
            w0, e = _window_start(m, half), min(m + half, n_bars)
            block = _indicators_of_bars(np.ascontiguousarray(bars[:, w0:e]))
            for r, arr in enumerate(block):
                vals[m + 1 : e + 1, r] = arr[m - w0 :]
        # row j + 1 holds bar j, the last bar closed at or before the sample (j = -1: none)
        out[:, cols] = vals[np.maximum(samples // iv - k0, 0)]
    return out
