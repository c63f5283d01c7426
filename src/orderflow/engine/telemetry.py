"""What a paper/live engine tells the outside while it trades: telemetry events and Prometheus metrics.

:class:`EngineTelemetry` is the engine's one door to both. Its methods take plain values, build the
schema's events and hand them to the :class:`~orderflow.telemetry.bus.Publisher` (a deque append; the
encoding, the I/O and the metrics happen on the publisher's thread). The engine calls them after an
order has gone out, never between a book event and its order, and nothing here runs inside a numba
kernel. Two things are thinned on the trading thread itself, because they come with every event:

- the book's top levels are built at most every ``book_interval_s`` per symbol (the dashboard's
  ladder needs no more; book updates are still counted in the feed health);
- market trades are aggregated per ``trade_interval_s`` (count, buy and sell volume, VWAP, last,
  high, low) and published once per interval.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import numpy as np

from orderflow.telemetry import schema as S
from orderflow.telemetry.bus import Publisher, open_sink
from orderflow.telemetry.metrics import EngineMetrics, serve

log = logging.getLogger(__name__)
NS = 1_000_000_000


@dataclass
class _Trades:
    start_ns: int = 0
    count: int = 0
    buy: float = 0.0
    sell: float = 0.0
    notional: float = 0.0
    last: float = 0.0
    high: float = -np.inf
    low: float = np.inf


class EngineTelemetry:
    def __init__(
        self,
        url: str,
        run_id: int,
        *,
        mode: str,
        venue: str,
        symbols: tuple[str, ...],
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        book_levels: int = 10,
        book_interval_s: float = 0.1,
        trade_interval_s: float = 0.25,
        journal_url: str = "",
    ) -> None:
        self.run_id = run_id
        self.symbols = symbols
        self.levels = book_levels
        self.book_interval_ns = int(book_interval_s * NS)
        self.trade_interval_ns = int(trade_interval_s * NS)
        self.state = "starting"
        self.metrics = EngineMetrics()
        self.publisher = Publisher(
            open_sink(url, run_id),
            run_id,
            state=lambda: self.state,
            mode=mode,
            symbols=symbols,
            observers=[self.metrics.observe_all],
            resources_s=1.0,
        )
        self._server: WSGIServer | None = None
        self.metrics_url = ""
        if metrics_port is not None:
            self._server, port = serve(self.metrics, metrics_port, metrics_host)
            self.metrics_url = f"http://{metrics_host}:{port}/metrics"
            log.info("metrics on %s", self.metrics_url)
        self._book_t: dict[str, int] = {}
        self._trades: dict[str, _Trades] = {}
        self.publish(
            S.RunStarted(
                run_id=run_id,
                ts_ns=time.time_ns(),
                mode=mode,
                venue=venue,
                symbols=symbols,
                pid=os.getpid(),
                journal_url=journal_url,
                metrics_url=self.metrics_url,
            )
        )

    def publish(self, event: S._Event) -> None:
        self.publisher.publish(event)

    def emit(self, kind: type[S._Event], ts_ns: int, **fields: Any) -> None:
        """Publish one event of ``kind`` of this run at ``ts_ns`` (the schema names the fields)."""
        self.publisher.publish(kind(run_id=self.run_id, ts_ns=ts_ns, **fields))

    # -- market ----------------------------------------------------------------------------------
    def book(
        self,
        symbol: str,
        ts_ns: int,
        update_id: int,
        bp: np.ndarray,
        bs: np.ndarray,
        ap: np.ndarray,
        asz: np.ndarray,
    ) -> None:
        """The top levels (best first), at most every ``book_interval_s`` per symbol."""
        if ts_ns - self._book_t.get(symbol, 0) < self.book_interval_ns:
            return
        self._book_t[symbol] = ts_ns
        n = self.levels
        bids = tuple(
            (float(p), float(q)) for p, q in zip(bp[:n], bs[:n], strict=True) if np.isfinite(p) and q > 0
        )
        asks = tuple(
            (float(p), float(q)) for p, q in zip(ap[:n], asz[:n], strict=True) if np.isfinite(p) and q > 0
        )
        self.publish(
            S.BookTop(
                run_id=self.run_id, ts_ns=ts_ns, symbol=symbol, update_id=int(update_id), bids=bids, asks=asks
            )
        )

    def trade(self, symbol: str, ts_ns: int, price: float, qty: float, buyer_aggressor: bool) -> None:
        a = self._trades.get(symbol)
        if a is None:
            a = self._trades[symbol] = _Trades(start_ns=ts_ns)
        elif ts_ns - a.start_ns >= self.trade_interval_ns and a.count:
            self._flush_trades(symbol, a, ts_ns)
            a = self._trades[symbol] = _Trades(start_ns=ts_ns)
        a.count += 1
        if buyer_aggressor:
            a.buy += qty
        else:
            a.sell += qty
        a.notional += price * qty
        a.last = price
        a.high = max(a.high, price)
        a.low = min(a.low, price)

    def _flush_trades(self, symbol: str, a: _Trades, ts_ns: int) -> None:
        vol = a.buy + a.sell
        self.publish(
            S.TradeAgg(
                run_id=self.run_id,
                ts_ns=ts_ns,
                symbol=symbol,
                start_ns=a.start_ns,
                count=a.count,
                buy_qty=a.buy,
                sell_qty=a.sell,
                vwap=a.notional / vol if vol > 0 else a.last,
                last=a.last,
                high=a.high,
                low=a.low,
            )
        )

    # -- decisions, orders, fills ----------------------------------------------------------------
    def decision(self, symbol: str, row: dict[str, Any]) -> None:
        """A journal signal row (``ts_ns``, scores, ``action``, ``gate`` as names)."""

        def f(k: str) -> float:
            v = row.get(k)
            return float(v) if v is not None and np.isfinite(v) else 0.0

        self.publish(
            S.Decision(
                run_id=self.run_id,
                ts_ns=int(row["ts_ns"]),
                symbol=symbol,
                fused=f("fused"),
                ofi_score=f("ofi_score"),
                ai_score=f("ai_score"),
                confidence=f("confidence"),
                quality=f("quality"),
                ev=f("ev"),
                cost=f("cost"),
                action=str(row["action"]),
                gate=str(row["gate"]),
            )
        )

    def risk(
        self, ts_ns: int, rules: list[tuple[str, float, float, int]], breaker: str, kill_switch: str
    ) -> None:
        """Every rule as ``(name, value, limit, refusals so far)``."""
        self.publish(
            S.RiskState(
                run_id=self.run_id,
                ts_ns=ts_ns,
                rules=tuple(
                    S.RuleState(rule=n, value=v, limit=lim, refusals=int(k)) for n, v, lim, k in rules
                ),
                breaker=breaker,
                kill_switch=kill_switch,
            )
        )

    # -- life cycle ------------------------------------------------------------------------------
    def close(self, reason: str) -> None:
        """Publish the run's end, flush everything queued and stop the metrics server."""
        now = time.time_ns()
        for symbol, a in self._trades.items():
            if a.count:
                self._flush_trades(symbol, a, now)
        self.state = "stopped"
        self.publish(S.RunStopped(run_id=self.run_id, ts_ns=now, reason=reason))
        self.publisher.close()
        if self._server is not None:
            self._server.shutdown()
            self._server = None


class PaperTap:
    """The paper/live engine's telemetry: turns what the engine sees (book events, trades, decision
    rows, order reports, fills, kill-switch changes) into :class:`EngineTelemetry` calls, and every
    ``state_s`` publishes equity, position, risk state and feed health. Model outputs and their outcomes
    come from the engine's :class:`~orderflow.engine.predictions.PredictionLog` (sampled predictions
    resolved by the training labels' triple-barrier rule), through :meth:`model_output` and
    :meth:`outcome`; an outcome carries the expected value of the last decision row before its
    prediction."""

    def __init__(self, tele: EngineTelemetry, engine: Any, *, state_s: float = 1.0) -> None:
        self.tele = tele
        self.engine = engine
        self.symbol: str = engine.symbol
        self.state_ns = int(state_s * NS)
        self._ev_of: dict[int, float] = {}  # a pending prediction's expected value, by its number
        self._last_state = 0
        self._peak = -np.inf
        self._acked: set[str] = set()
        self._mid_at: dict[str, float] = {}
        self._ev_at: float = 0.0
        tele.state = "running"

    # -- events from the engine ------------------------------------------------------------------
    def trade(self, ts_ns: int, price: float, qty: float, buyer_aggressor: bool) -> None:
        self.tele.trade(self.symbol, ts_ns, price, qty, buyer_aggressor)

    def book(
        self,
        ts_ns: int,
        update_id: int,
        bp: np.ndarray,
        bs: np.ndarray,
        ap: np.ndarray,
        asz: np.ndarray,
        tick_to_order_us: float | None,
    ) -> None:
        """After a book event's order (if any) has gone out; ``ts_ns`` is the receive (wall) time."""
        t = self.tele
        t.book(self.symbol, ts_ns, update_id, bp, bs, ap, asz)
        if tick_to_order_us is not None:
            t.emit(S.Latency, ts_ns, what="tick_to_order", symbol=self.symbol, us=tick_to_order_us)
        if ts_ns - self._last_state >= self.state_ns:
            self._last_state = ts_ns
            self.state(ts_ns)

    def idle(self, ts_ns: int) -> None:
        """Publish the periodic state when no book event has done so for ``state_s``: a feed that went
        silent then shows as stale (its lag grows) instead of going quiet."""
        if ts_ns - self._last_state >= self.state_ns:
            self._last_state = ts_ns
            self.state(ts_ns)

    def model_output(
        self, ts_ns: int, seq: int, probs: tuple[float, float, float], version: str, infer_us: float
    ) -> None:
        """A sampled prediction (number ``seq``) of the model ``version``."""
        self._ev_of[seq] = self._ev_at
        if len(self._ev_of) > 50_000:  # predictions the tracker dropped never resolve
            del self._ev_of[next(iter(self._ev_of))]
        tracker = self.engine.predictions.tracker
        self.tele.emit(S.ModelOutput, ts_ns, symbol=self.symbol, version=version, p_down=probs[0],
                       p_flat=probs[1], p_up=probs[2], horizon_ns=tracker.horizon_ns,
                       latency_us=infer_us)  # fmt: skip

    def outcome(self, ts_ns: int, r: Any) -> None:
        """The outcome of an earlier prediction (an :class:`~orderflow.engine.outcomes.Resolved`)."""
        self.tele.emit(S.Outcome, ts_ns, symbol=self.symbol, pred_ts_ns=r.pred_ts_ns, label=r.label,
                       ret=r.ret, p_down=r.probs[0], p_flat=r.probs[1], p_up=r.probs[2],
                       ev=self._ev_of.pop(r.key, 0.0))  # fmt: skip

    def decision(self, row: dict[str, Any]) -> None:
        from orderflow.strategy.layout import ACTIONS, GATES

        action, gate = row["action"], row["gate"]
        named = {
            **row,
            "action": ACTIONS[action] if isinstance(action, (int, np.integer)) else str(action),
            "gate": GATES[gate] if isinstance(gate, (int, np.integer)) else str(gate),
        }
        ev = row.get("ev")
        self._ev_at = float(ev) if ev is not None and np.isfinite(ev) else 0.0
        self.tele.decision(self.symbol, named)

    def order(self, mo: Any, ts_ns: int) -> None:
        """A state the order manager journaled (``pending_new`` once sent, then each report)."""
        cid = mo.client_order_id
        it = mo.intent
        state = str(mo.state.value)
        if state == "pending_new" and cid not in self._mid_at:
            self._mid_at[cid] = it.ref_price if np.isfinite(it.ref_price) else self.engine.session.mid
        elif cid not in self._acked and state not in ("pending_new", "unknown") and mo.sent_ns:
            self._acked.add(cid)
            if mo.error is None:
                us = max(0.0, (ts_ns - mo.sent_ns) / 1e3)
                self.tele.emit(S.Latency, ts_ns, what="ack", symbol=self.symbol, us=us)
        price = float(it.price) if np.isfinite(it.price) else None
        avg = float(mo.avg_price) if np.isfinite(mo.avg_price) else None
        self.tele.emit(
            S.OrderUpdate,
            ts_ns,
            symbol=self.symbol,
            client_order_id=cid,
            side=it.side.name,
            order_type=it.order_type.name.lower(),
            state=state,
            qty=float(it.quantity),
            price=price,
            filled_qty=float(mo.filled_qty),
            avg_price=avg,
            reason=mo.reason,
        )

    def fill(self, mo: Any, f: Any) -> None:
        ref = self._mid_at.get(mo.client_order_id, float("nan"))
        side = int(f.side)
        slip = side * (f.price - ref) / ref if ref and np.isfinite(ref) else 0.0
        fee = float(f.fee) if np.isfinite(f.fee) else 0.0
        self.tele.emit(
            S.FillEvent,
            f.ts,
            symbol=self.symbol,
            client_order_id=mo.client_order_id,
            trade_id=str(f.trade_id),
            side=f.side.name,
            price=float(f.price),
            qty=float(f.qty),
            fee=fee,
            liquidity="maker" if f.is_maker else "taker",
            slippage=float(slip),
        )
        self.state(f.ts)

    def kill(self, control: Any) -> None:
        ts = time.time_ns()
        self.tele.emit(
            S.ControlAction,
            ts,
            action="kill_switch",
            value=control.mode,
            who=control.who or "kill-switch file",
            why=control.why,
        )
        self.tele.state = {"off": "running", "reduce_only": "degraded", "halt": "halted"}.get(
            control.mode, "running"
        )
        self.state(ts)

    # -- periodic state --------------------------------------------------------------------------
    def state(self, ts_ns: int) -> None:
        from orderflow.execution import portfolio as PF
        from orderflow.risk import layout as RL

        e = self.engine
        s = e.session
        mid = s.mid
        P = s.P
        if np.isfinite(mid):
            eq = float(PF.equity(P, mid))
            self._peak = max(self._peak, eq)
            unreal = float(PF.unrealized(P, mid))
            pos = float(P[PF.P_POS])
            day0 = float(s.RSF[RL.F_DAY_START_EQ]) or float(P[PF.P_INITIAL])
            dd = (self._peak - eq) / self._peak if self._peak > 0 else 0.0
            self.tele.emit(
                S.EquityPoint,
                ts_ns,
                equity=eq,
                balance=eq - unreal,
                unrealized_pnl=unreal,
                exposure=abs(pos) * mid,
                day_pnl=eq - day0,
                drawdown=dd,
            )
            avg = float(P[PF.P_AVG]) if np.isfinite(P[PF.P_AVG]) else None
            self.tele.emit(
                S.PositionEvent,
                ts_ns,
                symbol=self.symbol,
                qty=pos,
                avg_price=avg,
                realized_pnl=float(P[PF.P_REALIZED]),
                unrealized_pnl=unreal,
                mark_price=mid,
            )
            self.tele.risk(
                ts_ns, self._rules(eq, day0, pos, mid), "tripped" if s.RS[RL.S_HALTED] else "ok", e.kill_mode
            )
        fs = e.feed.stats() if e.feed is not None else {}
        st = e.stats
        synced = e.feed is not None and e.feed.sync_state(self.symbol) == "synced"
        lag = (time.time_ns() - e._last_t) / 1e6 if e._last_t else 0.0
        self.tele.emit(
            S.FeedHealth,
            ts_ns,
            symbol=self.symbol,
            lag_ms=max(0.0, lag),
            gaps=int(fs.get("gaps", st.gaps)),
            resyncs=int(fs.get("resyncs", 0)),
            reconnects=int(fs.get("reconnects", 0)),
            watchdog_trips=int(fs.get("stale", 0)),
            synced=synced,
            book_updates=st.book_events,
            trades=st.trades,
        )

    def _rules(self, eq: float, day0: float, pos: float, mid: float) -> list[tuple[str, float, float, int]]:
        """Every risk rule: its value against its limit where it has one (0/0 where it only refuses),
        and its refusals so far."""
        from orderflow.risk import layout as RL

        s, r = self.engine.session, self.engine.cfg.risk
        refused = s.RS[RL.S_REFUSED0 : RL.S_REFUSED0 + len(RL.RULES)]
        now = self.engine._last_t
        ring = s.ring
        trades_24h = int(np.count_nonzero((ring > 0) & (ring > now - RL.DAY_NS))) if now else 0
        notional = abs(pos) * mid / eq if eq > 0 else 0.0
        values = {
            "daily_drawdown": (max(0.0, (day0 - eq) / day0) if day0 > 0 else 0.0, r.daily_drawdown),
            "max_position": (notional, r.max_position),
            "max_capital": (notional, r.max_capital_in_use),
            "max_trades_24h": (float(trades_24h), float(r.max_trades_24h)),
            "max_adds": (float(s.RS[RL.S_ADDS]), float(r.max_adds)),
        }
        out = []
        for code, name in enumerate(RL.RULES):
            if name == "ok":
                continue
            v, lim = values.get(name, (0.0, 0.0))
            out.append((name, float(v), float(lim), int(refused[code])))
        return out

    def close(self, reason: str) -> None:
        if self._last_state:
            self.state(time.time_ns())
        self.tele.close(reason)
