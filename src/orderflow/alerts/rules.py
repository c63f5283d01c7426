"""The alert rules: what each telemetry event says about a run, kept as incident conditions.

:class:`Rules` follows every run's events (:meth:`observe`) and the clock (:meth:`tick`: heartbeats,
the kill-switch files) and tells :class:`~orderflow.alerts.incidents.Incidents` which conditions hold.
Each rule and its event source:

| rule | from | incident key | holds while / fires on |
|---|---|---|---|
| drawdown_breaker | risk | run | the breaker is tripped (the daily drawdown limit) |
| kill_switch | the kill-switch files | global / run | the switch is not ``off`` (set by anyone) |
| refusal_burst | risk | run | ``count`` refusals within ``window_s`` |
| loss_streak | fills | run, symbol | ``trades`` losing round trips in a row (FIFO, net of fees) |
| equity_drop | equity | run | equity ``fraction`` below its UTC-day high |
| order_rejected | order | run, symbol | an order rejected by the exchange |
| position_mismatch | reconcile | run, symbol | the engine's and the exchange's positions differ |
| feed_gap | feed | feed of run, symbol | a gap or a resync of the book |
| stale_feed | feed | feed of run, symbol | the last event older than ``lag_ms``, or the book not synced |
| reconnect_storm | feed | feed of run, symbol | ``count`` reconnects within ``window_s`` |
| rate_limited | api | run | HTTP 429 or 418 from Binance |
| engine_down | heartbeat | run | no heartbeat for ``silence_s`` (a dead-man's switch) |
| latency | latency | run | tick-to-order p99 of the last ``window`` samples above ``p99_us`` |
| calibration | outcome | run, symbol | ECE (or Brier) of the last ``window`` outcomes above its limit |
| feature_drift | drift | run, symbol | a model input's PSI above ``psi`` |
| model_change | model | run, symbol | the model version changed |

The three feed rules share one incident per run and symbol: a disconnect that makes the feed stale,
then resyncs it, is one incident with one message, not three. Anomalies
(:mod:`orderflow.alerts.anomaly`) become incidents ``anomaly:<metric>:...`` the same way.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orderflow.alerts.config import AlertsConfig, RuleBase
from orderflow.alerts.incidents import NS, Incidents
from orderflow.reports import evaluation as EV
from orderflow.telemetry import schema as S

SEVERITY_OF_MODE = {"reduce_only": "warning", "halt": "critical"}


@dataclass
class SymbolState:
    """What the alerter knows of one symbol of a run (``/positions``, the loss streak, the feed)."""

    qty: float = 0.0
    avg: float = 0.0
    realized: float = 0.0
    unrealized: float = 0.0
    mark: float | None = None
    trip_pnl: float = 0.0
    losses: int = 0
    gaps: int = -1
    resyncs: int = -1
    reconnects: deque[int] = field(default_factory=deque)
    reconnects_total: int = -1
    lag_ms: float = 0.0
    synced: bool = True
    version: str = ""
    outcomes: deque[tuple[float, float, float, int]] = field(default_factory=lambda: deque(maxlen=5000))


@dataclass
class RunState:
    run_id: int
    mode: str = ""
    symbols: tuple[str, ...] = ()
    pid: int = 0
    started_ns: int = 0
    last_beat_ns: int = 0
    beat_interval_s: float = 1.0
    engine_state: str = ""
    stopped: str | None = None
    equity: float | None = None
    day: int = -1
    day_high: float = 0.0
    day_pnl: float = 0.0
    drawdown: float = 0.0
    breaker: str = "ok"
    kill: str = "off"
    refusals: deque[tuple[int, int]] = field(default_factory=deque)
    http_429: int = -1
    http_418: int = -1
    latency: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    symbol: dict[str, SymbolState] = field(default_factory=dict)
    control: dict[str, str] = field(default_factory=dict)  # the last control action: who, why

    def sym(self, symbol: str) -> SymbolState:
        st = self.symbol.get(symbol)
        if st is None:
            st = self.symbol[symbol] = SymbolState()
        return st


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the predicted class (``labels`` are class indices 0, 1, 2)."""
    e = EV.reliability(probs, labels - 1, bins)["ece"]
    return float(e) if e is not None else 0.0


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score (0 best, 2 worst; ``labels`` are class indices 0, 1, 2)."""
    return EV.brier(probs, labels - 1)


class Rules:
    """Every rule over every run (module docstring)."""

    def __init__(
        self,
        cfg: AlertsConfig,
        incidents: Incidents,
        *,
        kill_state: Callable[[int | None], tuple[str, str, str]] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.cfg = cfg
        self.R = cfg.rules
        self.inc = incidents
        self.clock = clock
        self.kill_state = kill_state
        self.runs: dict[int, RunState] = {}
        self.anomaly: Any = None
        if cfg.anomaly.enabled:
            from orderflow.alerts.anomaly import AnomalyMonitor

            self.anomaly = AnomalyMonitor(cfg.anomaly)
        self._anomaly_cfg: dict[str, RuleBase] = {
            m: RuleBase(severity=c.severity, escalate_after_s=None) for m, c in cfg.anomaly.metrics.items()
        }
        self.started_ns = clock()

    def run(self, run_id: int) -> RunState:
        st = self.runs.get(run_id)
        if st is None:
            st = self.runs[run_id] = RunState(run_id)
        return st

    # -- events ------------------------------------------------------------------------------------
    def observe(self, ev: S.Event) -> None:
        r = self.run(ev.run_id)
        handler = getattr(self, "_on_" + S.kind_of(ev), None)
        if handler is not None:
            handler(r, ev)
        if self.anomaly is not None:
            for a in self.anomaly.observe(ev):
                key = f"anomaly:{a.metric}:run={a.run_id}:{a.symbol}"
                text = (
                    f"abnormal {a.metric.replace('_', ' ')}: {a.value:.6g} {a.unit} against a median of "
                    f"{a.median:.6g} (robust z {a.z:.1f} over {a.samples} samples)"
                )
                self.inc.hold(
                    f"anomaly_{a.metric}", self._anomaly_cfg[a.metric], key, a.active, a.ts_ns,
                    run_id=a.run_id, symbol=a.symbol, text=text, severity=a.severity, view="feed",
                    numbers={"value": a.value, "median": a.median, "mad": a.mad, "z": round(a.z, 2)},
                )  # fmt: skip

    def _on_run_started(self, r: RunState, ev: S.RunStarted) -> None:
        r.mode, r.symbols, r.pid, r.started_ns = ev.mode, ev.symbols, ev.pid, ev.ts_ns
        r.last_beat_ns = max(r.last_beat_ns, ev.ts_ns)
        r.stopped = None

    def _on_run_stopped(self, r: RunState, ev: S.RunStopped) -> None:
        r.stopped = ev.reason
        self.inc.clear_run(r.run_id, ev.ts_ns)

    def _on_heartbeat(self, r: RunState, ev: S.Heartbeat) -> None:
        r.last_beat_ns = max(r.last_beat_ns, ev.ts_ns)
        r.beat_interval_s = ev.interval_s
        r.engine_state = ev.state
        if ev.mode:
            r.mode = ev.mode
        if ev.symbols:
            r.symbols = ev.symbols
        r.pid = ev.pid or r.pid

    def _on_risk(self, r: RunState, ev: S.RiskState) -> None:
        R = self.R
        r.breaker = ev.breaker
        dd = next((x for x in ev.rules if x.rule == "daily_drawdown"), None)
        if R.drawdown_breaker.enabled:
            nums = {"daily_drawdown": dd.value, "limit": dd.limit} if dd is not None else {}
            text = (
                f"daily drawdown breaker tripped: drawdown {dd.value:.2%} against a limit of {dd.limit:.2%}"
                if dd is not None
                else "daily drawdown breaker tripped"
            )
            self.inc.hold(
                "drawdown_breaker", R.drawdown_breaker, f"drawdown_breaker:run={r.run_id}",
                ev.breaker == "tripped", ev.ts_ns, run_id=r.run_id, text=text, numbers=nums, view="risk",
            )  # fmt: skip
        total = sum(x.refusals for x in ev.rules if x.rule != "kill_switch")  # those are the operator's
        q = r.refusals
        q.append((ev.ts_ns, total))
        horizon = ev.ts_ns - int(R.refusal_burst.window_s * NS)
        while len(q) > 1 and q[1][0] <= horizon:
            q.popleft()
        burst = total - q[0][1]
        if R.refusal_burst.enabled and burst >= R.refusal_burst.count:
            by_rule = ", ".join(
                f"{x.rule} {x.refusals}" for x in ev.rules if x.refusals and x.rule != "kill_switch"
            )
            self.inc.event(
                "refusal_burst", R.refusal_burst, f"refusal_burst:run={r.run_id}", ev.ts_ns, run_id=r.run_id,
                text=f"{burst} risk refusals in the last {R.refusal_burst.window_s:g} s (so far: {by_rule})",
                numbers={"refusals": burst, "window_s": R.refusal_burst.window_s,
                         "threshold": R.refusal_burst.count}, view="risk",
            )  # fmt: skip
            q.clear()
            q.append((ev.ts_ns, total))

    def _on_control(self, r: RunState, ev: S.ControlAction) -> None:
        if ev.action == "kill_switch":
            r.kill = ev.value
            r.control = {"who": ev.who, "why": ev.why}

    def _on_order(self, r: RunState, ev: S.OrderUpdate) -> None:
        R = self.R.order_rejected
        if ev.state == "rejected" and R.enabled:
            self.inc.event(
                "order_rejected", R, f"order_rejected:run={r.run_id}:{ev.symbol}", ev.ts_ns,
                run_id=r.run_id, symbol=ev.symbol, view="orders",
                text=f"order {ev.client_order_id} ({ev.side} {ev.qty:g} {ev.order_type}"
                f"{'' if ev.price is None else f' @ {ev.price:g}'}) rejected: "
                f"{ev.reason or 'no reason given'}",
                numbers={"client_order_id": ev.client_order_id, "qty": ev.qty, "price": ev.price,
                         "reason": ev.reason},
            )  # fmt: skip

    def _on_fill(self, r: RunState, ev: S.FillEvent) -> None:
        s = r.sym(ev.symbol)
        signed = ev.qty if ev.side == "buy" else -ev.qty
        before = s.qty
        s.trip_pnl -= ev.fee
        if before == 0 or (before > 0) == (signed > 0):  # opening or adding
            total = before + signed
            s.avg = (s.avg * abs(before) + ev.price * abs(signed)) / abs(total) if total else 0.0
            s.qty = total
            return
        closed = min(abs(signed), abs(before))
        s.trip_pnl += closed * (ev.price - s.avg) * (1 if before > 0 else -1)
        s.qty = before + signed
        if abs(s.qty) < 1e-12 or (s.qty > 0) != (before > 0):  # the round trip ended (flat or flipped)
            pnl, s.trip_pnl = s.trip_pnl, 0.0
            if abs(s.qty) >= 1e-12:
                s.avg = ev.price
            else:
                s.qty = 0.0
            s.losses = s.losses + 1 if pnl < 0 else 0
            R = self.R.loss_streak
            if R.enabled and s.losses >= R.trades:
                self.inc.event(
                    "loss_streak", R, f"loss_streak:run={r.run_id}:{ev.symbol}", ev.ts_ns, run_id=r.run_id,
                    symbol=ev.symbol, view="equity",
                    text=f"{s.losses} losing round trips in a row (the last {pnl:.6g} net of fees)",
                    numbers={"losses_in_a_row": s.losses, "last_trip_pnl": pnl, "threshold": R.trades},
                )  # fmt: skip

    def _on_position(self, r: RunState, ev: S.PositionEvent) -> None:
        s = r.sym(ev.symbol)
        s.realized, s.unrealized, s.mark = ev.realized_pnl, ev.unrealized_pnl, ev.mark_price
        if not s.trip_pnl and abs(ev.qty - s.qty) > 1e-12 and not s.losses:
            s.qty, s.avg = ev.qty, ev.avg_price or 0.0  # an adopted position, or fills not seen

    def _on_equity(self, r: RunState, ev: S.EquityPoint) -> None:
        r.equity, r.day_pnl, r.drawdown = ev.equity, ev.day_pnl, ev.drawdown
        day = ev.ts_ns // (86_400 * NS)
        if day != r.day:
            r.day, r.day_high = day, ev.equity
        r.day_high = max(r.day_high, ev.equity)
        R = self.R.equity_drop
        drop = (r.day_high - ev.equity) / r.day_high if r.day_high > 0 else 0.0
        key = f"equity_drop:run={r.run_id}"
        held = key in self.inc.desired
        active = drop >= R.fraction or (held and drop >= R.fraction / 2)  # hysteresis: clear at half
        if R.enabled:
            self.inc.hold(
                "equity_drop", R, key, active, ev.ts_ns, run_id=r.run_id, view="equity",
                text=f"equity {ev.equity:,.2f} is {drop:.2%} below today's high of {r.day_high:,.2f} "
                f"(limit {R.fraction:.2%})",
                numbers={"equity": ev.equity, "day_high": r.day_high, "drop": round(drop, 6),
                         "limit": R.fraction},
            )  # fmt: skip

    def _on_feed(self, r: RunState, ev: S.FeedHealth) -> None:
        R = self.R
        s = r.sym(ev.symbol)
        key = f"feed:run={r.run_id}:{ev.symbol}"
        common: dict[str, Any] = {"run_id": r.run_id, "symbol": ev.symbol, "view": "feed"}
        if s.gaps >= 0 and R.feed_gap.enabled and (ev.gaps > s.gaps or ev.resyncs > s.resyncs):
            self.inc.event(
                "feed_gap", R.feed_gap, key, ev.ts_ns,
                text=f"feed gap: {ev.gaps - s.gaps} gap(s), {ev.resyncs - s.resyncs} resync(s) "
                f"(run totals {ev.gaps} and {ev.resyncs})",
                numbers={"gaps": ev.gaps, "resyncs": ev.resyncs}, **common,
            )  # fmt: skip
        s.gaps, s.resyncs = ev.gaps, ev.resyncs
        new = ev.reconnects - s.reconnects_total if s.reconnects_total >= 0 else 0
        if new > 0:
            s.reconnects.extend([ev.ts_ns] * new)
        s.reconnects_total = ev.reconnects
        horizon = ev.ts_ns - int(R.reconnect_storm.window_s * NS)
        while s.reconnects and s.reconnects[0] < horizon:
            s.reconnects.popleft()
        if R.reconnect_storm.enabled and new > 0 and len(s.reconnects) >= R.reconnect_storm.count:
            self.inc.event(
                "reconnect_storm", R.reconnect_storm, key, ev.ts_ns,
                text=f"reconnect storm: {len(s.reconnects)} reconnects in {R.reconnect_storm.window_s:g} s",
                numbers={"reconnects_in_window": len(s.reconnects), "reconnects": ev.reconnects}, **common,
            )  # fmt: skip
        s.lag_ms, s.synced = ev.lag_ms, ev.synced
        starting = r.started_ns and (ev.ts_ns - r.started_ns) / 1e6 < R.stale_feed.lag_ms
        stale = ev.lag_ms > R.stale_feed.lag_ms or (not ev.synced and not starting)
        if R.stale_feed.enabled:
            self.inc.hold(
                "stale_feed", R.stale_feed, key, stale, ev.ts_ns,
                text=f"stale feed: last market event {ev.lag_ms / 1000:.1f} s ago (limit "
                f"{R.stale_feed.lag_ms / 1000:g} s), book {'synced' if ev.synced else 'NOT synced'}",
                numbers={"lag_ms": round(ev.lag_ms, 1), "synced": ev.synced}, **common,
            )  # fmt: skip

    def _on_api(self, r: RunState, ev: Any) -> None:
        R = self.R.rate_limited
        new_429 = ev.http_429 - r.http_429 if r.http_429 >= 0 else 0
        new_418 = ev.http_418 - r.http_418 if r.http_418 >= 0 else 0
        r.http_429, r.http_418 = ev.http_429, ev.http_418
        if R.enabled and (new_429 > 0 or new_418 > 0):
            what = "HTTP 418 (IP banned)" if new_418 else "HTTP 429 (rate limit hit)"
            self.inc.event(
                "rate_limited", R, f"rate_limited:run={r.run_id}", ev.ts_ns, run_id=r.run_id, view="system",
                severity=R.severity if new_418 else "warning",
                text=f"Binance answered {what}: {new_429} new 429, {new_418} new 418"
                f"{f'; retry after {ev.retry_after_s:g} s' if ev.retry_after_s else ''}",
                numbers={"http_429": ev.http_429, "http_418": ev.http_418, "retry_after_s": ev.retry_after_s},
            )  # fmt: skip

    def _on_reconcile(self, r: RunState, ev: Any) -> None:
        R = self.R.position_mismatch
        diff = abs(ev.engine_qty - ev.exchange_qty)
        if R.enabled:
            self.inc.hold(
                "position_mismatch", R, f"position_mismatch:run={r.run_id}:{ev.symbol}", diff > R.tolerance,
                ev.ts_ns, run_id=r.run_id, symbol=ev.symbol, view="orders",
                text=f"positions differ: engine/journal {ev.engine_qty:g}, exchange {ev.exchange_qty:g}",
                numbers={"engine_qty": ev.engine_qty, "exchange_qty": ev.exchange_qty, "difference": diff},
            )  # fmt: skip

    def _on_latency(self, r: RunState, ev: S.Latency) -> None:
        if ev.what != "tick_to_order":
            return
        R = self.R.latency
        r.latency.append(ev.us)
        if not R.enabled or len(r.latency) < R.min_samples:
            return
        last = np.fromiter(
            (r.latency[i] for i in range(max(0, len(r.latency) - R.window), len(r.latency))), float
        )
        p99 = float(np.percentile(last, 99))
        self.inc.hold(
            "latency", R, f"latency:run={r.run_id}", p99 > R.p99_us, ev.ts_ns, run_id=r.run_id, view="system",
            text=f"tick-to-order p99 {p99 / 1000:.2f} ms over the last {len(last)} orders "
            f"(limit {R.p99_us / 1000:g} ms)",
            numbers={"p99_us": round(p99, 1), "limit_us": R.p99_us, "samples": len(last)},
        )  # fmt: skip

    def _on_outcome(self, r: RunState, ev: S.Outcome) -> None:
        R = self.R.calibration
        s = r.sym(ev.symbol)
        if not all(np.isfinite((ev.p_down, ev.p_flat, ev.p_up))):
            return  # a prediction made before the model had valid inputs: nothing to calibrate
        s.outcomes.append((ev.p_down, ev.p_flat, ev.p_up, ev.label + 1))
        if not R.enabled or len(s.outcomes) < R.min_samples:
            return
        rows = np.array(list(s.outcomes)[-R.window :])
        probs, labels = rows[:, :3], rows[:, 3].astype(int)
        e, b = ece(probs, labels), brier(probs, labels)
        bad = e > R.ece or (R.brier is not None and b > R.brier)
        self.inc.hold(
            "calibration", R, f"calibration:run={r.run_id}:{ev.symbol}", bad, ev.ts_ns, run_id=r.run_id,
            symbol=ev.symbol, view="model",
            text=f"model calibration: ECE {e:.3f} (limit {R.ece:g}), Brier {b:.3f}"
            f"{'' if R.brier is None else f' (limit {R.brier:g})'} over the last {len(rows)} outcomes",
            numbers={"ece": round(e, 4), "brier": round(b, 4), "samples": len(rows), "ece_limit": R.ece},
        )  # fmt: skip

    def _on_drift(self, r: RunState, ev: Any) -> None:
        R = self.R.feature_drift
        worst = sorted(ev.psi, key=lambda x: -x[1])
        bad = [(n, v) for n, v in worst if v > R.psi]
        if R.enabled:
            self.inc.hold(
                "feature_drift", R, f"feature_drift:run={r.run_id}:{ev.symbol}", bool(bad), ev.ts_ns,
                run_id=r.run_id, symbol=ev.symbol, view="model",
                text=f"input drift: {len(bad)} feature(s) with PSI above {R.psi:g}: "
                + ", ".join(f"{n} {v:.2f}" for n, v in bad[:5]),
                numbers={"worst_feature": worst[0][0] if worst else "",
                         "worst_psi": worst[0][1] if worst else 0.0, "features_over": len(bad)},
            )  # fmt: skip

    def _on_model(self, r: RunState, ev: S.ModelOutput) -> None:
        s = r.sym(ev.symbol)
        R = self.R.model_change
        if s.version and ev.version != s.version and R.enabled:
            self.inc.event(
                "model_change", R, f"model_change:run={r.run_id}:{ev.symbol}", ev.ts_ns,
                run_id=r.run_id, symbol=ev.symbol, view="model",
                text=f"model changed: {s.version} -> {ev.version}",
                numbers={"from_version": s.version, "to_version": ev.version},
            )  # fmt: skip
        s.version = ev.version

    # -- the clock ---------------------------------------------------------------------------------
    def tick(self, now: int) -> None:
        """Time-driven rules: engines that went silent, and the kill switch."""
        R = self.R.engine_down
        for r in self.runs.values():
            if r.stopped is not None or not r.last_beat_ns:
                continue
            silence = (now - r.last_beat_ns) / NS
            if silence > R.max_age_s and r.last_beat_ns < self.started_ns:
                continue  # dead long before this alerter started: history, not an alert
            limit = max(R.silence_s, 3 * r.beat_interval_s)
            if R.enabled:
                self.inc.hold(
                    "engine_down", R, f"engine_down:run={r.run_id}", silence > limit, now, run_id=r.run_id,
                    view="system",
                    text=f"engine down: no heartbeat for {silence:.1f} s (limit {limit:g} s); last state "
                    f"{r.engine_state or 'unknown'}, pid {r.pid}, {r.mode} {','.join(r.symbols)}",
                    numbers={"silence_s": round(silence, 2), "limit_s": limit, "pid": r.pid},
                )  # fmt: skip
        if self.kill_state is not None and self.R.kill_switch.enabled:
            self._kill(None, now)
            for r in self.runs.values():
                if r.stopped is None:
                    self._kill(r.run_id, now)

    def _kill(self, run_id: int | None, now: int) -> None:
        assert self.kill_state is not None
        mode, who, why = self.kill_state(run_id)
        key = "kill_switch:all" if run_id is None else f"kill_switch:run={run_id}"
        prev = self.inc.desired.get(key)
        changed = prev is not None and prev.numbers.get("mode") not in (None, mode)
        scope = "every run" if run_id is None else f"run {run_id}"
        self.inc.hold(
            "kill_switch", self.R.kill_switch, key, mode != "off", now, run_id=run_id, view="risk",
            severity=SEVERITY_OF_MODE.get(mode), changed=changed,
            text=f"kill switch set to {mode} for {scope}" + (f" by {who}" if who else "")
            + (f": {why}" if why else ""),
            numbers={"mode": mode, "who": who or "unknown", "why": why},
        )  # fmt: skip
