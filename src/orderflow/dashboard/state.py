"""What the dashboard knows about one run, built from its telemetry events; no I/O.

:class:`RunView` applies events in order (``apply``) and answers the views (``snapshot``): the
latest book, our resting orders, recent trades, fills, decisions, orders, equity, risk, model
evaluation, feed health and resources. Everything is bounded (recent rows in deques), so a run of
weeks costs the same memory as a run of minutes. The status follows the heartbeats: ``running`` while
they arrive, ``down`` when ``down_after_s`` passes without one, ``stopped`` after a ``run_stopped``
event.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from orderflow.telemetry import schema as S

OPEN_STATES = frozenset({"pending_new", "new", "partially_filled", "unknown"})
N_BINS = 10


@dataclass
class ModelStats:
    """Live evaluation of predictions against the outcomes that happened (the last ``window``)."""

    window: int = 2000
    rows: deque[tuple[float, float, float, int, float, float]] = field(default_factory=deque)

    def add(self, o: S.Outcome) -> None:
        self.rows.append((o.p_down, o.p_flat, o.p_up, o.label, o.ret, o.ev))
        while len(self.rows) > self.window:
            self.rows.popleft()

    def summary(self) -> dict[str, Any]:
        n = len(self.rows)
        if n == 0:
            return {"n": 0}
        counts = [0, 0, 0]
        brier = logloss = 0.0
        conf: list[tuple[float, bool]] = []
        evs: list[tuple[float, float]] = []
        for pd, pf, pu, label, ret, ev in self.rows:
            y = label + 1  # 0 down, 1 flat, 2 up
            counts[y] += 1
            p = (pd, pf, pu)
            brier += sum((p[k] - (1.0 if k == y else 0.0)) ** 2 for k in range(3))
            logloss -= math.log(max(p[y], 1e-12))
            top = max(range(3), key=lambda k: p[k])
            conf.append((p[top], top == y))
            direction = 1.0 if pu > pd else -1.0 if pd > pu else 0.0
            evs.append((ev, direction * ret))
        freq = [c / n for c in counts]
        base_brier = sum(
            counts[y] * sum((freq[k] - (1.0 if k == y else 0.0)) ** 2 for k in range(3)) for y in range(3)
        )
        base_logloss = -sum(counts[y] * math.log(max(freq[y], 1e-12)) for y in range(3))
        return {
            "n": n,
            "brier": brier / n,
            "brier_baseline": base_brier / n,
            "logloss": logloss / n,
            "logloss_baseline": base_logloss / n,
            "majority_class": ["down", "flat", "up"][max(range(3), key=lambda k: counts[k])],
            "reliability": _reliability(conf),
            "hit_rate_by_decile": _deciles(conf),
            "ev_by_decile": _ev_deciles(evs),
        }


def _reliability(conf: list[tuple[float, bool]]) -> list[dict[str, float]]:
    """Top-label calibration in fixed bins of confidence: mean confidence against accuracy."""
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(N_BINS)]
    for c, ok in conf:
        bins[min(int(c * N_BINS), N_BINS - 1)].append((c, ok))
    return [
        {
            "confidence": sum(c for c, _ in b) / len(b),
            "accuracy": sum(ok for _, ok in b) / len(b),
            "n": len(b),
        }
        for b in bins
        if b
    ]


def _split(rows: list, k: int) -> list[list]:
    n = len(rows)
    return [rows[i * n // k : (i + 1) * n // k] for i in range(k) if rows[i * n // k : (i + 1) * n // k]]


def _deciles(conf: list[tuple[float, bool]]) -> list[dict[str, float]]:
    """Hit rate in deciles of confidence (equal counts)."""
    return [
        {
            "confidence": sum(c for c, _ in part) / len(part),
            "hit_rate": sum(ok for _, ok in part) / len(part),
            "n": len(part),
        }
        for part in _split(sorted(conf), N_BINS)
    ]


def _ev_deciles(evs: list[tuple[float, float]]) -> list[dict[str, float]]:
    """Expected EV against the realised return in the predicted direction, by decile of expected EV."""
    return [
        {
            "expected": sum(e for e, _ in part) / len(part),
            "realised": sum(r for _, r in part) / len(part),
            "n": len(part),
        }
        for part in _split(sorted(evs), N_BINS)
    ]


class RunView:
    def __init__(
        self, run_id: int, *, down_after_s: float = 3.5, keep: int = 500, keep_series: int = 5000
    ) -> None:
        self.run_id = run_id
        self.down_after_s = down_after_s
        self.info: dict[str, Any] = {}
        self.heartbeat: dict[str, Any] = {}
        self.last_beat_ns = 0
        self.stopped: str | None = None
        self.books: dict[str, dict[str, Any]] = {}
        self.trades: dict[str, deque[dict[str, Any]]] = {}
        self.decisions: deque[dict[str, Any]] = deque(maxlen=keep)
        self.orders: dict[str, dict[str, Any]] = {}
        self._order_ids: deque[str] = deque()
        self.keep = keep
        self.fills: deque[dict[str, Any]] = deque(maxlen=keep)
        self.positions: dict[str, dict[str, Any]] = {}
        self.equity: deque[dict[str, Any]] = deque(maxlen=keep_series)
        self.risk: dict[str, Any] = {}
        self.feed: dict[str, dict[str, Any]] = {}
        self.latency: dict[str, deque[float]] = {}
        self.resources: deque[dict[str, Any]] = deque(maxlen=keep_series)
        self.controls: deque[dict[str, Any]] = deque(maxlen=keep)
        self.model = ModelStats()
        self.predictions: deque[dict[str, Any]] = deque(maxlen=keep)
        self.events = 0
        self.last_ts_ns = 0

    # -- events ----------------------------------------------------------------------------------
    def apply(self, e: S._Event) -> None:
        self.events += 1
        self.last_ts_ns = max(self.last_ts_ns, e.ts_ns)
        row = S.to_builtins(e)
        if isinstance(e, S.Heartbeat):
            self.heartbeat = row
            self.last_beat_ns = e.ts_ns
        elif isinstance(e, S.RunStarted):
            self.info = row
            self.last_beat_ns = max(self.last_beat_ns, e.ts_ns)
        elif isinstance(e, S.RunStopped):
            self.stopped = e.reason
        elif isinstance(e, S.BookTop):
            self.books[e.symbol] = row
        elif isinstance(e, S.TradeAgg):
            self.trades.setdefault(e.symbol, deque(maxlen=5000)).append(row)
        elif isinstance(e, S.Decision):
            self.decisions.append(row)
        elif isinstance(e, S.OrderUpdate):
            if e.client_order_id not in self.orders:
                self._order_ids.append(e.client_order_id)
                while len(self._order_ids) > self.keep:
                    self.orders.pop(self._order_ids.popleft(), None)
            self.orders[e.client_order_id] = row
        elif isinstance(e, S.FillEvent):
            self.fills.append(row)
        elif isinstance(e, S.PositionEvent):
            self.positions[e.symbol] = row
        elif isinstance(e, S.EquityPoint):
            self.equity.append(row)
        elif isinstance(e, S.RiskState):
            self.risk = row
        elif isinstance(e, S.FeedHealth):
            self.feed[e.symbol] = row
        elif isinstance(e, S.Latency):
            self.latency.setdefault(e.what, deque(maxlen=1000)).append(e.us)
        elif isinstance(e, S.Resources):
            self.resources.append(row)
        elif isinstance(e, S.ControlAction):
            self.controls.append(row)
        elif isinstance(e, S.ModelOutput):
            self.predictions.append(row)
        elif isinstance(e, S.Outcome):
            self.model.add(e)

    # -- answers ---------------------------------------------------------------------------------
    def status(self, now_ns: int) -> str:
        if self.stopped is not None:
            return "stopped"
        if self.last_beat_ns == 0:
            return "unknown"
        return "running" if now_ns - self.last_beat_ns <= self.down_after_s * 1e9 else "down"

    def resting(self, symbol: str) -> list[dict[str, Any]]:
        """Our open orders on ``symbol`` with a price (the ladder marks them)."""
        return [
            o
            for o in self.orders.values()
            if o["symbol"] == symbol and o["state"] in OPEN_STATES and o.get("price") is not None
        ]

    def headroom(self) -> float | None:
        """The smallest share of a risk limit left (1 = untouched, 0 = at the limit)."""
        rules = [r for r in self.risk.get("rules", []) if r["limit"] > 0]
        if not rules:
            return None
        return min(1.0 - r["value"] / r["limit"] for r in rules)

    def latency_p99(self, what: str) -> float | None:
        xs = sorted(self.latency.get(what, ()))
        return xs[min(len(xs) - 1, int(0.99 * len(xs)))] if xs else None

    def overview(self, now_ns: int) -> dict[str, Any]:
        eq = self.equity[-1] if self.equity else {}
        return {
            "run_id": self.run_id,
            "status": self.status(now_ns),
            "mode": self.info.get("mode") or self.heartbeat.get("mode", ""),
            "venue": self.info.get("venue", ""),
            "symbols": self.info.get("symbols") or self.heartbeat.get("symbols", []),
            "state": self.heartbeat.get("state", ""),
            "heartbeat_age_s": (now_ns - self.last_beat_ns) / 1e9 if self.last_beat_ns else None,
            "equity": eq.get("equity"),
            "day_pnl": eq.get("day_pnl"),
            "drawdown": eq.get("drawdown"),
            "positions": list(self.positions.values()),
            "headroom": self.headroom(),
            "kill_switch": self.risk.get("kill_switch", "off"),
            "breaker": self.risk.get("breaker", ""),
            "feed_lag_ms": max((f["lag_ms"] for f in self.feed.values()), default=None),
            "tick_to_order_p99_us": self.latency_p99("tick_to_order"),
            "stop_reason": self.stopped,
            "events": self.events,
        }

    def snapshot(self, now_ns: int) -> dict[str, Any]:
        return {
            "overview": self.overview(now_ns),
            "books": {s: {**b, "ours": self.resting(s)} for s, b in self.books.items()},
            "trades": {s: list(t)[-2000:] for s, t in self.trades.items()},
            "decisions": list(self.decisions),
            "orders": list(self.orders.values()),
            "fills": list(self.fills),
            "equity": list(self.equity),
            "risk": self.risk,
            "feed": list(self.feed.values()),
            "resources": list(self.resources)[-1000:],
            "controls": list(self.controls),
            "model": self.model.summary(),
        }
