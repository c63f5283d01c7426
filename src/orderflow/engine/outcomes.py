"""Live model evaluation: each sampled prediction gets the outcome that happened, by the same
triple-barrier rule that labelled the training data (:mod:`orderflow.features.labels`), one event at
a time.

:class:`OutcomeTracker` sees every mid (``on_price``) and, at most every ``sample_s``, a prediction
(``predict``). It keeps the volatility unit ``R`` as the batch labeller does (the same four window
kinds, from events at or before the sample only), and resolves each pending prediction when the mid
first touches ``+pt·R`` (label +1) or ``−sl·R`` (−1), or, once an event arrives after the vertical
barrier ``t + horizon``, with label 0 and the return of the last event at or before it. A prediction
made during warm-up (``R`` NaN) or with ``R == 0`` is never labelled, as in batch.
``tests/unit/test_outcomes.py`` checks the streaming labels against :func:`triple_barrier`.

Cost: ``on_price`` runs at every book event. It scans the pending predictions only when the mid
reaches the nearest barrier of any of them (kept, with a margin of 1e-9 in log-return units, as the
lowest upper and the highest lower barrier) or the oldest one's vertical barrier has passed; otherwise
an event costs the volatility update and three comparisons, whatever the number pending. The scan
applies each prediction's exact test, so the margin changes no label.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from orderflow.features.config import LabelConfig

NS = 1_000_000_000


_MARGIN = 1e-9  # log-return units: the fast path's barriers are this much nearer than the exact ones


@dataclass
class Pending:
    ts_ns: int
    logp: float
    unit: float
    probs: tuple[float, float, float]
    ev: float
    key: int = -1  # the caller's name for the prediction (the journal's sequence number)


@dataclass(frozen=True)
class Resolved:
    pred_ts_ns: int
    ts_ns: int  # the touch (or the vertical barrier)
    label: int
    ret: float
    probs: tuple[float, float, float]
    ev: float
    key: int = -1


class _Vol:
    """Variance of log returns per second, streamed exactly as ``labels._vol_time`` / ``_vol_count``."""

    def __init__(self, cfg: LabelConfig) -> None:
        self.ewm = cfg.vol_kind == "ewm"
        self.count = cfg.vol_window_n
        self.window_ns = round(cfg.vol_window_s * NS) if cfg.vol_window_s is not None else 0
        self.n = 0
        self.t0 = 0
        self.t_prev = 0
        self.p_prev = 0.0
        self.s = 0.0
        self.a = 0.0
        self.b = 0.0
        self.win: deque[tuple[int, float]] = deque()  # rolling: (ts, r) of the returns in the window
        self.nonzero = 0

    def update(self, ts: int, logp: float) -> float:
        """Add one event; the variance at it (NaN in warm-up)."""
        n = self.n
        self.n += 1
        if n == 0:
            self.t0, self.t_prev, self.p_prev = ts, ts, logp
            return math.nan
        r = logp - self.p_prev
        dt = ts - self.t_prev
        self.t_prev, self.p_prev = ts, logp
        if self.count is not None:
            return self._count(ts, r, dt, n)
        w = self.window_ns
        if self.ewm:
            self.s = self.s * math.exp(-dt / w) + r * r
        else:
            self.s += r * r
            if r != 0.0:
                self.nonzero += 1
            self.win.append((ts, r))
            while self.win and self.win[0][0] <= ts - w:
                _, rl = self.win.popleft()
                self.s -= rl * rl
                if rl != 0.0:
                    self.nonzero -= 1
            if self.nonzero == 0 or self.s < 0.0:
                self.s = 0.0
        if ts - self.t0 < w:
            return math.nan
        if self.ewm:
            return self.s / (w * (1.0 - math.exp(-(ts - self.t0) / w)) / NS)
        return self.s / (w / NS)

    def _count(self, ts: int, r: float, dt: int, i: int) -> float:
        nwin = self.count
        assert nwin is not None
        if self.ewm:
            alpha = 2.0 / (nwin + 1.0)
            if i == 1:
                self.a, self.b = r * r, float(dt)
            else:
                self.a = (1.0 - alpha) * self.a + alpha * r * r
                self.b = (1.0 - alpha) * self.b + alpha * dt
            return self.a / (self.b / NS) if i >= nwin and self.b > 0 else math.nan
        self.win.append((ts, r))
        if len(self.win) > nwin + 1:
            self.win.popleft()
        if i < nwin:
            return math.nan
        rets = list(self.win)[-nwin:]
        s = 0.0
        for _, d in rets:
            s += d * d
        span = ts - self.win[0][0] if len(self.win) == nwin + 1 else ts - self.t0
        return s / (span / NS) if span > 0 else math.nan


class OutcomeTracker:
    def __init__(self, cfg: LabelConfig, sample_s: float = 1.0, max_pending: int = 10_000) -> None:
        self.cfg = cfg
        self.horizon_ns = round(cfg.horizon_s * NS)
        self.sample_ns = round(sample_s * NS)
        self.max_pending = max_pending
        self.vol = _Vol(cfg)
        self.unit = math.nan
        self.logp = math.nan
        self.ts = 0
        self.pending: deque[Pending] = deque()
        self._last_sample = -(2**62)
        self.dropped = 0
        self._lo_up = math.inf  # the lowest upper barrier of the pending (log price, less the margin)
        self._hi_dn = -math.inf  # the highest lower barrier (plus the margin)
        self._first = 2**62  # the earliest sample time pending

    def on_price(self, ts_ns: int, price: float) -> list[Resolved]:
        """A new mid; returns the predictions it resolved."""
        if not (price > 0 and math.isfinite(price)):
            return []
        logp = math.log(price)
        out: list[Resolved] = []
        if self.pending and (
            logp >= self._lo_up or logp <= self._hi_dn or ts_ns > self._first + self.horizon_ns
        ):
            out = self._scan(ts_ns, logp)
        var = self.vol.update(ts_ns, logp)
        u = math.sqrt(var * self.cfg.horizon_s) if not math.isnan(var) else math.nan
        self.unit = max(u, self.cfg.min_vol) if not math.isnan(u) else math.nan
        self.logp, self.ts = logp, ts_ns
        return out

    def _scan(self, ts_ns: int, logp: float) -> list[Resolved]:
        """Each pending prediction's exact test at the new log price ``logp``; keeps the others."""
        out: list[Resolved] = []
        keep: deque[Pending] = deque()
        last = self.logp  # the previous event's log price: where an expired prediction stood
        pt, sl, h = self.cfg.pt, self.cfg.sl, self.horizon_ns
        lo_up, hi_dn, first = math.inf, -math.inf, 2**62
        for p in self.pending:
            if ts_ns > p.ts_ns + h:  # past the vertical barrier: the last event before it
                out.append(Resolved(p.ts_ns, p.ts_ns + h, 0, last - p.logp, p.probs, p.ev, p.key))
                continue
            r = logp - p.logp  # every event after the sample's row counts, even at the same time
            if r >= pt * p.unit:
                out.append(Resolved(p.ts_ns, ts_ns, 1, r, p.probs, p.ev, p.key))
                continue
            if r <= -sl * p.unit:
                out.append(Resolved(p.ts_ns, ts_ns, -1, r, p.probs, p.ev, p.key))
                continue
            keep.append(p)
            lo_up = min(lo_up, p.logp + pt * p.unit - _MARGIN)
            hi_dn = max(hi_dn, p.logp - sl * p.unit + _MARGIN)
            first = min(first, p.ts_ns)
        self.pending = keep
        self._lo_up, self._hi_dn, self._first = lo_up, hi_dn, first
        return out

    def due(self, ts_ns: int) -> bool:
        """A sample at ``ts_ns`` would be taken (``sample_s`` has passed since the last one)."""
        return ts_ns - self._last_sample >= self.sample_ns

    def predict(
        self,
        ts_ns: int,
        probs: tuple[float, float, float],
        ev: float = 0.0,
        *,
        force: bool = False,
        key: int = -1,
    ) -> bool:
        """Sample the prediction made at the last price (at most every ``sample_s``, or now with
        ``force``); True if kept (never during the volatility warm-up). ``key`` comes back with its
        :class:`Resolved`."""
        if not force and ts_ns - self._last_sample < self.sample_ns:
            return False
        if not (self.unit > 0.0) or math.isnan(self.logp):
            return False
        self._last_sample = ts_ns
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.dropped += 1
        p = Pending(ts_ns, self.logp, self.unit, probs, ev, key)
        self.pending.append(p)
        self._lo_up = min(self._lo_up, p.logp + self.cfg.pt * p.unit - _MARGIN)
        self._hi_dn = max(self._hi_dn, p.logp - self.cfg.sl * p.unit + _MARGIN)
        self._first = min(self._first, ts_ns)
        return True
