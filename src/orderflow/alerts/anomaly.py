"""Abnormal trading patterns in the engines' telemetry, by robust statistics (the ``anomaly:`` section).

:class:`AnomalyMonitor` reads telemetry events one at a time (the structs of
:mod:`orderflow.telemetry.schema`) and keeps, per ``(metric, run, symbol)``, a rolling baseline of the
last ``window`` samples. A sample ``x`` scores ``z = (x - median) / (1.4826 * MAD)``, the MAD floored
at ``max(min_mad, min_mad_rel * |median|)`` so that a constant series (a one-tick spread) does not
alarm on its first change. No alarm before ``warmup`` samples. It returns transitions only: an
incident opens (``active=True``) after ``confirm`` consecutive samples beyond ``z`` in the metric's
direction, spanning at least ``confirm_s`` seconds of event time, and clears (``active=False``) after
``clear`` consecutive samples that are not.

The metrics, one sample each:

- ``spread`` (bps, high): ``(best ask - best bid) / mid`` of every :class:`BookTop`;
- ``feed_lag`` (ms, high): :attr:`FeedHealth.lag_ms`;
- ``slippage`` (bps, high): :attr:`FillEvent.slippage` of every fill (adverse is positive), against the
  baseline of the run's past fills (the decision's cost estimate is a round trip's and cannot be
  matched to one fill, so it is not used);
- ``fill_distance`` (bps, high): ``|fill price - mid| / mid``, mid of the symbol's latest BookTop;
- ``trade_pnl`` (quote, both tails): the change of :attr:`PositionEvent.realized_pnl` over one round
  trip, sampled when the position returns to flat or flips (the engine's realized PnL is before fees);
- ``trade_rate``, ``market_trade_rate``, ``flip_flop`` (per min, high): counts per whole minute of
  event time (minute ``ts_ns // 60 s``), sampled when the first event of a later minute of that run
  and symbol arrives, minutes without events counting 0: our *orders* (distinct client order ids, from
  their first OrderUpdate or FillEvent; a market order walking five levels is one order, not five
  fills), the market's trades (:attr:`TradeAgg.count`), and direction reversals (a position opened,
  from flat or by a flip, opposite to the previous position; taken from PositionEvent, which the
  engine publishes after every fill).

The baseline is not poisoned by the anomaly: a sample with ``|z| > z`` (in either direction) is held
out of the window, so an incident's own values cannot raise the median and clear it, nor inflate the
MAD and hide the next one. Normal samples enter even while an incident is active. A lasting level
shift is not an incident forever: when more than half of the last ``window`` samples were held out,
the baseline restarts from those last ``window`` samples (the incident then clears ``clear`` samples
later). On :class:`RunStopped` every open incident of the run clears and its state is dropped.

Cost per sample: ``O(log n)`` comparisons on a sorted list (insertion and removal add a memmove of
at most ``window`` pointers, faster than a SortedList at these sizes); the exact MAD (a selection over
the deviations on both sides of the median, ``O(log n)``) is computed only when cheap bounds on it
cannot decide the sample. (river's rolling quantiles give the median but not the MAD, which needs the
deviations about a moving median.)
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orderflow.alerts.config import METRICS, AnomalyConfig, MetricConfig
from orderflow.telemetry import schema as S

K = 1.4826  # MAD -> standard deviation of a normal distribution
MINUTE_NS = 60 * 1_000_000_000
_FLAT = 1e-12  # |position| below this is flat
_RECENT_ORDERS = 4096  # client order ids remembered per run and symbol (an order counts once)


@dataclass(frozen=True)
class Anomaly:
    """An incident opening (``active``) or clearing, with the numbers of the sample that moved it.
    ``mad`` is the floored MAD the score used: ``z = (value - median) / (1.4826 * mad)``."""

    metric: str
    run_id: int
    symbol: str
    ts_ns: int
    active: bool
    value: float
    median: float
    mad: float
    z: float
    samples: int
    severity: str
    unit: str


def _kth(s: list[float], p: int, m: float, k: int) -> float:
    """The ``k``-th smallest (0-based) deviation from ``m`` of the sorted ``s``, whose first ``p``
    values are below ``m``: a selection over the two sorted runs ``m - s[p-1-i]`` and ``s[p+j] - m``."""
    nr = len(s) - p
    lo, hi = max(0, k + 1 - nr), min(k + 1, p)
    while lo < hi:  # the number of the k+1 smallest taken from the left run
        i = (lo + hi) // 2
        if m - s[p - 1 - i] < s[p + k - i] - m:
            lo = i + 1
        else:
            hi = i
    left = m - s[p - lo] if lo > 0 else -math.inf
    right = s[p + k - lo] - m if 0 <= k - lo < nr else -math.inf
    return max(left, right)


def _bounds(s: list[float], p: int, m: float, k: int) -> tuple[float, float]:
    """Cheap bounds on :func:`_kth`: with ``i + j = k + 1`` taken from the left and right runs, the
    k-th deviation is at most ``max(L[i-1], R[j-1])``; with ``i + j = k`` it is at least
    ``min(L[i], R[j])`` (at most ``k`` deviations are smaller)."""
    n = len(s)
    nr = n - p
    i = min(p, max(k + 1 - nr, (k + 1) // 2))
    j = k + 1 - i
    up = max(m - s[p - i] if i > 0 else 0.0, s[p + j - 1] - m if j > 0 else 0.0)
    i = min(p, max(k - nr, k // 2))
    j = k - i
    low = min(m - s[p - 1 - i] if i < p else math.inf, s[p + j] - m if j < nr else math.inf)
    return low, up


class _Series:
    """One metric's rolling baseline and incident state for one run and symbol."""

    __slots__ = (
        "active",
        "bad",
        "bad_since",
        "cfg",
        "confirm_ns",
        "count",
        "good",
        "held",
        "limit",
        "min_mad",
        "recent",
        "rel",
        "sign",
        "sorted",
        "warmup",
        "win",
        "window",
    )

    def __init__(self, cfg: MetricConfig) -> None:
        self.cfg = cfg
        self.warmup = cfg.warmup
        self.window = cfg.window
        self.min_mad = cfg.min_mad
        self.rel = cfg.min_mad_rel
        self.confirm_ns = round(cfg.confirm_s * 1e9)
        self.bad_since = 0  # event time of the first sample of the current abnormal run
        self.limit = cfg.z * K  # |x - median| beyond limit * MAD is abnormal
        self.sign = {"high": 1.0, "low": -1.0, "both": 0.0}[cfg.direction]
        self.win: deque[float] = deque()  # the baseline, oldest first
        self.sorted: list[float] = []  # the same values, sorted
        self.recent: deque[float] = deque(maxlen=cfg.window)  # every sample, held out or not
        self.held: deque[int] = deque()  # sample numbers of the held-out samples among ``recent``
        self.count = 0  # samples seen
        self.active = False
        self.bad = 0
        self.good = 0

    def median(self) -> float:
        s, n = self.sorted, len(self.sorted)
        h = n // 2
        return s[h] if n % 2 else 0.5 * (s[h - 1] + s[h])

    def mad(self, m: float) -> float:
        s, n = self.sorted, len(self.sorted)
        p, h = bisect_left(s, m), n // 2
        return _kth(s, p, m, h) if n % 2 else 0.5 * (_kth(s, p, m, h - 1) + _kth(s, p, m, h))

    def floor(self, m: float) -> float:
        return max(self.cfg.min_mad, self.cfg.min_mad_rel * abs(m))

    def _beyond(self, dev: float, m: float, floor: float) -> bool:
        """``|dev| > limit * max(MAD, floor)``, from cheap bounds on the MAD when they decide it."""
        s, n = self.sorted, len(self.sorted)
        p, h = bisect_left(s, m), n // 2
        if n % 2:
            lo, up = _bounds(s, p, m, h)
        else:
            lo1, up1 = _bounds(s, p, m, h - 1)
            lo2, up2 = _bounds(s, p, m, h)
            lo, up = 0.5 * (lo1 + lo2), 0.5 * (up1 + up2)
        a = abs(dev)
        if a <= self.limit * max(lo, floor):
            return False
        if a > self.limit * max(up, floor):
            return True
        return a > self.limit * max(self.mad(m), floor)

    def add(self, x: float, ts_ns: int) -> tuple[bool, float, float, float] | None:
        """Score ``x`` (at ``ts_ns``) and update: ``(active, median, mad, z)`` when the incident opens or
        clears."""
        win, srt, window = self.win, self.sorted, self.window
        n = len(win)
        self.count = c = self.count + 1
        out = None
        held = False
        if n >= self.warmup:
            h = n // 2
            m = srt[h] if n % 2 else 0.5 * (srt[h - 1] + srt[h])
            dev = x - m
            floor = self.min_mad if not self.rel else max(self.min_mad, self.rel * abs(m))
            # within limit * floor: normal whatever the MAD (the common case, decided without it)
            held = abs(dev) > self.limit * floor and self._beyond(dev, m, floor)
            if held and (self.sign == 0.0 or dev * self.sign > 0):
                self.bad += 1
                self.good = 0
                if self.bad == 1:
                    self.bad_since = ts_ns
                confirmed = self.bad >= self.cfg.confirm and ts_ns - self.bad_since >= self.confirm_ns
                if not self.active and confirmed:
                    self.active = True
                    out = self._numbers(True, x, m)
            else:
                self.bad = 0
                if self.active:
                    self.good += 1
                    if self.good >= self.cfg.clear:
                        self.active = False
                        out = self._numbers(False, x, m)
        self.recent.append(x)
        hq = self.held
        if hq and hq[0] <= c - window:
            hq.popleft()
        if held:
            hq.append(c)
            if 2 * len(hq) > window:  # a level shift, not an incident: restart the baseline
                self.win = deque(self.recent)
                self.sorted = sorted(self.win)
                hq.clear()
        else:
            win.append(x)
            insort(srt, x)
            if n >= window:
                del srt[bisect_left(srt, win.popleft())]
        return out

    def _numbers(self, active: bool, x: float, m: float) -> tuple[bool, float, float, float]:
        mad = max(self.mad(m), self.floor(m))
        return active, m, mad, (x - m) / (K * mad)

    def stats(self) -> dict[str, Any]:
        n = len(self.win)
        if not n:
            return {
                "samples": 0,
                "median": None,
                "mad": None,
                "mad_used": None,
                "active": self.active,
                "held_out": len(self.held),
                "armed": False,
            }
        m = self.median()
        mad = self.mad(m)
        return {
            "samples": n,
            "median": m,
            "mad": mad,
            "mad_used": max(mad, self.floor(m)),
            "active": self.active,
            "held_out": len(self.held),
            "armed": n >= self.cfg.warmup,
        }


class _Symbol:
    """What the monitor keeps of one run's symbol: its metrics' series and the state between events."""

    __slots__ = (
        "ids",
        "last_dir",
        "mid",
        "minute",
        "open_pnl",
        "orders",
        "reversals",
        "run",
        "series",
        "sign",
        "symbol",
        "trades",
    )

    def __init__(self, run: int, symbol: str) -> None:
        self.run = run
        self.symbol = symbol
        self.series: dict[str, _Series] = {}
        self.mid = math.nan  # of the latest BookTop
        self.minute = -1  # the minute being counted
        self.orders = 0
        self.trades = 0
        self.reversals = 0
        self.ids: OrderedDict[str, None] = OrderedDict()  # recent client order ids (an order counts once)
        self.sign = 0  # of the position
        self.last_dir = 0  # of the last position held
        self.open_pnl = 0.0  # realized PnL when the current position opened


class AnomalyMonitor:
    """Scores every telemetry event it is given (module docstring); not thread-safe."""

    def __init__(self, cfg: AnomalyConfig) -> None:
        self.cfg = cfg
        self._on = {k: c for k, c in cfg.metrics.items() if c.enabled} if cfg.enabled else {}
        self._symbols: dict[tuple[int, str], _Symbol] = {}
        clock: Callable[[Any], list[Anomaly]] = self._clock_only
        self._handlers: dict[type, Callable[[Any], list[Anomaly]]] = {
            S.BookTop: self._book,
            S.TradeAgg: self._trades,
            S.OrderUpdate: self._order,
            S.FillEvent: self._fill,
            S.PositionEvent: self._position,
            S.FeedHealth: self._feed,
            S.RunStopped: self._stopped,
            S.Decision: clock,
            S.Latency: clock,
            S.ModelOutput: clock,
            S.Outcome: clock,
        }
        if not self._on:
            self._handlers = {}

    def observe(self, event: Any) -> list[Anomaly]:
        """The incidents this event opens or clears (usually none)."""
        h = self._handlers.get(type(event))
        return h(event) if h is not None else []

    def snapshot(self) -> dict[int, dict[str, dict[str, dict[str, Any]]]]:
        """``{run_id: {symbol: {metric: {samples, median, mad, mad_used, active, held_out, armed}}}}``."""
        out: dict[int, dict[str, dict[str, dict[str, Any]]]] = {}
        for (run, sym), st in sorted(self._symbols.items()):
            if st.series:
                out.setdefault(run, {})[sym] = {m: st.series[m].stats() for m in sorted(st.series)}
        return out

    # -- samples ---------------------------------------------------------------------------------
    def _sample(self, st: _Symbol, metric: str, ts_ns: int, x: float, out: list[Anomaly]) -> None:
        s = st.series.get(metric)
        if s is None:
            cfg = self._on.get(metric)
            if cfg is None:
                return
            s = st.series[metric] = _Series(cfg)
        if x != x or x in (math.inf, -math.inf):
            return
        r = s.add(x, ts_ns)
        if r is not None:
            active, med, mad, z = r
            out.append(
                Anomaly(
                    metric,
                    st.run,
                    st.symbol,
                    ts_ns,
                    active,
                    x,
                    med,
                    mad,
                    z,
                    len(s.win),
                    s.cfg.severity,
                    METRICS[metric].unit,
                )
            )

    def _sym(self, run: int, symbol: str, ts_ns: int, out: list[Anomaly]) -> _Symbol:
        """The symbol's state, after closing the minutes that ended before ``ts_ns``."""
        st = self._symbols.get((run, symbol))
        if st is None:
            st = self._symbols[(run, symbol)] = _Symbol(run, symbol)
        minute = ts_ns // MINUTE_NS
        if minute > st.minute:
            if st.minute >= 0:
                self._close_minutes(st, minute, out)
            st.minute = minute
        return st

    def _close_minutes(self, st: _Symbol, minute: int, out: list[Anomaly]) -> None:
        counts = (("trade_rate", st.orders), ("market_trade_rate", st.trades), ("flip_flop", st.reversals))
        end = (st.minute + 1) * MINUTE_NS
        idle = minute - st.minute - 1  # whole minutes without an event: 0 of everything
        for metric, c in counts:
            cfg = self._on.get(metric)
            if cfg is None:
                continue
            self._sample(st, metric, end, float(c), out)
            for k in range(min(idle, cfg.window)):
                self._sample(st, metric, end + (k + 1) * MINUTE_NS, 0.0, out)
        st.orders = st.trades = st.reversals = 0

    @staticmethod
    def _new_order(st: _Symbol, cid: str) -> None:
        if cid in st.ids:
            return
        st.ids[cid] = None
        if len(st.ids) > _RECENT_ORDERS:
            st.ids.popitem(last=False)
        st.orders += 1

    # -- handlers --------------------------------------------------------------------------------
    def _clock_only(self, e: Any) -> list[Anomaly]:
        out: list[Anomaly] = []
        self._sym(e.run_id, e.symbol, e.ts_ns, out)
        return out

    def _book(self, e: S.BookTop) -> list[Anomaly]:
        out: list[Anomaly] = []
        st = self._sym(e.run_id, e.symbol, e.ts_ns, out)
        if e.bids and e.asks:
            bid, ask = e.bids[0][0], e.asks[0][0]
            mid = 0.5 * (bid + ask)
            if mid > 0:
                st.mid = mid
                self._sample(st, "spread", e.ts_ns, (ask - bid) / mid * 1e4, out)
        return out

    def _trades(self, e: S.TradeAgg) -> list[Anomaly]:
        out: list[Anomaly] = []
        self._sym(e.run_id, e.symbol, e.ts_ns, out).trades += e.count
        return out

    def _order(self, e: S.OrderUpdate) -> list[Anomaly]:
        out: list[Anomaly] = []
        self._new_order(self._sym(e.run_id, e.symbol, e.ts_ns, out), e.client_order_id)
        return out

    def _fill(self, e: S.FillEvent) -> list[Anomaly]:
        out: list[Anomaly] = []
        st = self._sym(e.run_id, e.symbol, e.ts_ns, out)
        self._new_order(st, e.client_order_id)
        self._sample(st, "slippage", e.ts_ns, e.slippage * 1e4, out)
        if st.mid > 0:
            self._sample(st, "fill_distance", e.ts_ns, abs(e.price - st.mid) / st.mid * 1e4, out)
        return out

    def _position(self, e: S.PositionEvent) -> list[Anomaly]:
        out: list[Anomaly] = []
        st = self._sym(e.run_id, e.symbol, e.ts_ns, out)
        sign = 0 if abs(e.qty) <= _FLAT else (1 if e.qty > 0 else -1)
        if sign != st.sign:
            if st.sign != 0:  # a round trip closed (to flat or by a flip)
                self._sample(st, "trade_pnl", e.ts_ns, e.realized_pnl - st.open_pnl, out)
            if sign != 0:
                if st.last_dir and sign != st.last_dir:
                    st.reversals += 1
                st.last_dir = sign
                st.open_pnl = e.realized_pnl
            st.sign = sign
        return out

    def _feed(self, e: S.FeedHealth) -> list[Anomaly]:
        out: list[Anomaly] = []
        self._sample(self._sym(e.run_id, e.symbol, e.ts_ns, out), "feed_lag", e.ts_ns, e.lag_ms, out)
        return out

    def _stopped(self, e: S.RunStopped) -> list[Anomaly]:
        """The run ended: its open incidents clear (with the baseline's numbers) and its state goes."""
        out: list[Anomaly] = []
        for key in [k for k in self._symbols if k[0] == e.run_id]:
            st = self._symbols.pop(key)
            for metric, s in st.series.items():
                if s.active and s.win:
                    m = s.median()
                    mad = max(s.mad(m), s.floor(m))
                    out.append(
                        Anomaly(
                            metric,
                            e.run_id,
                            st.symbol,
                            e.ts_ns,
                            False,
                            m,
                            m,
                            mad,
                            0.0,
                            len(s.win),
                            s.cfg.severity,
                            METRICS[metric].unit,
                        )
                    )
        return out
