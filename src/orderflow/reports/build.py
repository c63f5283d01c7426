"""The figures of a period report, computed from the journal alone.

Money is exact where the journal is: every fill is booked in Decimal on a FIFO ledger per (run,
symbol) (:class:`orderflow.journal.ledger.Ledger`), seeded with the fills before the period so that a
position carried into it closes against its true lots. So:

- **gross** = the PnL realised by the period's fills (FIFO, before fees); **fees** = the period's fees;
  **funding** = what the journal's positions record for runs that ended in the period (the journal
  keeps funding per run, not per payment); **net** = gross − fees + funding;
- **round trips**: a position opened from flat and closed back to flat (or through zero); counted in
  the period it closes, its PnL net of the fees of its fills; win rate, average win and loss, profit
  factor (gross wins over gross losses) follow;
- **ratios** come from the equity snapshots: the runs' equity changes summed into one PnL curve per
  minute (the last snapshot of each minute), returns against the capital at the period start;
  Sharpe and Sortino are annualised on a 365-day, 24-hour year (``sqrt(525,600)`` minutes); the
  maximum drawdown and its duration are read from the same curve;
- **exposure** is the mean gross notional of the snapshots, **turnover** the traded notional over the
  mean equity; the **cost share** is fees over the absolute gross PnL;
- rejections by gate (the journal's signal rows) and risk events by rule in the period.

Slippage against the decision's mid is not in the journal (fills carry their price, not the mid at
the decision): the report says so rather than print a number.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from decimal import Decimal
from typing import Any

import numpy as np
import sqlalchemy as sa

from orderflow.journal.ledger import ZERO, Ledger
from orderflow.journal.models import EquitySnapshot, Position, RiskEvent, Run, Signal
from orderflow.journal.models import FillRow as Fill
from orderflow.reports.periods import NS, Period

MINUTES_PER_YEAR = 365 * 24 * 60
DAY_NS = 86_400 * NS


def _where_run(q: Any, col: Any, run: int | None) -> Any:
    return q if run is None else q.where(col == run)


def _round_trips(fills: list[Any], period: Period) -> tuple[list[dict[str, Any]], dict[tuple, Ledger]]:
    """Book every fill before the period's end; the round trips closed in the period, and the ledgers."""
    ledgers: dict[tuple, Ledger] = {}
    open_trip: dict[tuple, dict[str, Any]] = {}
    trips: list[dict[str, Any]] = []
    for f in fills:
        key = (f.run_id, f.symbol)
        led = ledgers.setdefault(key, Ledger())
        before = led.qty
        realized = led.apply(f.side, f.qty, f.price, f.fee)
        after = led.qty
        trip = open_trip.get(key)
        if trip is None:
            trip = open_trip[key] = {
                "run_id": f.run_id,
                "symbol": f.symbol,
                "open_ns": f.ts_ns,
                "pnl": ZERO,
                "fees": ZERO,
                "fills": 0,
            }
        trip["pnl"] += realized
        trip["fees"] += f.fee
        trip["fills"] += 1
        flat_or_flip = after == 0 or (before != 0 and (after > 0) != (before > 0))
        if flat_or_flip and before != 0:
            trip["close_ns"] = f.ts_ns
            trip["net"] = trip["pnl"] - trip["fees"]
            if period.contains(f.ts_ns):
                trips.append(trip)
            del open_trip[key]
            if after != 0:  # flipped through zero: the rest opens the next trip at this fill
                open_trip[key] = {
                    "run_id": f.run_id,
                    "symbol": f.symbol,
                    "open_ns": f.ts_ns,
                    "pnl": ZERO,
                    "fees": ZERO,
                    "fills": 0,
                }
    return trips, ledgers


def _curve(rows: list[Any], period: Period) -> tuple[np.ndarray, np.ndarray, float]:
    """The summed PnL of every run's equity changes, per minute (last value of each minute), from 0 at
    the period start; and the capital (the runs' first equity)."""
    by_run: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        by_run[r.run_id].append((r.ts_ns, float(r.equity)))
    capital = sum(v[0][1] for v in by_run.values())
    deltas: list[tuple[int, float]] = []
    for series in by_run.values():
        for (_, a), (t, b) in itertools.pairwise(series):
            deltas.append((t, b - a))
    deltas.sort()
    if not deltas:
        return np.empty(0, dtype=np.int64), np.empty(0), capital
    minutes = np.array([(t - period.start_ns) // (60 * NS) for t, _ in deltas], dtype=np.int64)
    cum = np.cumsum([d for _, d in deltas])
    last = np.r_[minutes[1:] != minutes[:-1], True]  # the last change of each minute
    return minutes[last], cum[last], capital


def _ratios(minutes: np.ndarray, pnl: np.ndarray, capital: float, period: Period) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sharpe": None,
        "sortino": None,
        "max_drawdown": 0.0,
        "max_drawdown_minutes": 0,
        "annualisation": "365-day, 24-hour year: sqrt(525,600) on 1-minute returns",
    }
    if capital <= 0 or minutes.size == 0:
        return out
    n = math.ceil(period.days * 24 * 60)
    level = np.zeros(n + 1)
    # the PnL at the end of each minute, carried forward over minutes without a change
    idx = np.clip(minutes + 1, 0, n)
    filled = np.full(n + 1, np.nan)
    filled[0] = 0.0
    filled[idx] = pnl
    for i in range(1, n + 1):
        level[i] = filled[i] if not math.isnan(filled[i]) else level[i - 1]
    span = int(idx.max())
    eq = capital + level[: span + 1]
    rets = np.diff(eq) / eq[:-1]
    if rets.size >= 2 and rets.std(ddof=1) > 0:
        out["sharpe"] = float(rets.mean() / rets.std(ddof=1) * math.sqrt(MINUTES_PER_YEAR))
    down = np.minimum(rets, 0.0)
    dd_dev = math.sqrt(float(np.mean(down**2))) if rets.size else 0.0
    if dd_dev > 0:
        out["sortino"] = float(rets.mean() / dd_dev * math.sqrt(MINUTES_PER_YEAR))
    peak = np.maximum.accumulate(eq)
    dd = (peak - eq) / peak
    out["max_drawdown"] = float(dd.max())
    longest = cur = 0
    for x in dd:
        cur = cur + 1 if x > 0 else 0
        longest = max(longest, cur)
    out["max_drawdown_minutes"] = int(longest)
    out["returns_minutes"] = int(rets.size)
    return out


def build_report(conn: sa.Connection, period: Period, run: int | None = None) -> dict[str, Any]:
    """Every figure of the period (amounts as Decimal), from one journal connection."""
    fq = _where_run(sa.select(Fill).where(Fill.ts_ns < period.end_ns), Fill.run_id, run)
    fills = list(conn.execute(fq.order_by(Fill.ts_ns, Fill.id)))
    trips, _ = _round_trips(fills, period)

    ledgers: dict[tuple, Ledger] = {}
    gross = fees = notional = ZERO
    sym: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"fills": 0, "gross": ZERO, "fees": ZERO, "notional": ZERO, "trips": 0, "net_trips": ZERO}
    )
    day: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"fills": 0, "gross": ZERO, "fees": ZERO, "trips": 0}
    )
    n_fills = 0
    for f in fills:
        led = ledgers.setdefault((f.run_id, f.symbol), Ledger())
        realized = led.apply(f.side, f.qty, f.price, f.fee)
        if not period.contains(f.ts_ns):
            continue
        n_fills += 1
        gross += realized
        fees += f.fee
        notional += f.qty * f.price
        s = sym[f.symbol]
        s["fills"] += 1
        s["gross"] += realized
        s["fees"] += f.fee
        s["notional"] += f.qty * f.price
        d = day[_day(f.ts_ns)]
        d["fills"] += 1
        d["gross"] += realized
        d["fees"] += f.fee
    for t in trips:
        sym[t["symbol"]]["trips"] += 1
        sym[t["symbol"]]["net_trips"] += t["net"]
        day[_day(t["close_ns"])]["trips"] += 1

    runs_q = _where_run(sa.select(Run), Run.id, run)
    runs = list(conn.execute(runs_q.order_by(Run.id)))
    ended = [r.id for r in runs if r.stopped_ns is not None and period.contains(r.stopped_ns)]
    funding = ZERO
    if ended:
        for p in conn.execute(sa.select(Position.funding).where(Position.run_id.in_(ended))):
            funding += p.funding
    net = gross - fees + funding

    wins = [t["net"] for t in trips if t["net"] > 0]
    losses = [t["net"] for t in trips if t["net"] <= 0]
    sum_w, sum_l = sum(wins, ZERO), sum(losses, ZERO)

    eq_q = _where_run(
        sa.select(EquitySnapshot.run_id, EquitySnapshot.ts_ns, EquitySnapshot.equity, EquitySnapshot.exposure)
        .where(EquitySnapshot.ts_ns >= period.start_ns, EquitySnapshot.ts_ns < period.end_ns)
        .order_by(EquitySnapshot.ts_ns, EquitySnapshot.id),
        EquitySnapshot.run_id,
        run,
    )
    eq_rows = list(conn.execute(eq_q))
    minutes, curve, capital = _curve(eq_rows, period)
    ratios = _ratios(minutes, curve, capital, period)
    exposures = [float(r.exposure) for r in eq_rows if r.exposure is not None]
    mean_equity = float(np.mean([float(r.equity) for r in eq_rows])) if eq_rows else 0.0

    sig_q = _where_run(
        sa.select(Signal.gate, sa.func.count())
        .where(Signal.ts_ns >= period.start_ns, Signal.ts_ns < period.end_ns)
        .group_by(Signal.gate),
        Signal.run_id,
        run,
    )
    gates = {g: int(n) for g, n in conn.execute(sig_q)}
    risk_q = _where_run(
        sa.select(RiskEvent.rule, sa.func.count())
        .where(RiskEvent.ts_ns >= period.start_ns, RiskEvent.ts_ns < period.end_ns)
        .group_by(RiskEvent.rule),
        RiskEvent.run_id,
        run,
    )
    risk = {r: int(n) for r, n in conn.execute(risk_q)}
    events_q = _where_run(
        sa.select(RiskEvent.ts_ns, RiskEvent.symbol, RiskEvent.rule, RiskEvent.message)
        .where(RiskEvent.ts_ns >= period.start_ns, RiskEvent.ts_ns < period.end_ns)
        .order_by(RiskEvent.ts_ns)
        .limit(200),
        RiskEvent.run_id,
        run,
    )
    return {
        "period": {
            "kind": period.kind,
            "label": period.label,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "timezone": "UTC",
        },
        "run": run,
        "runs": [
            {
                "id": r.id,
                "mode": r.mode,
                "venue": r.venue,
                "symbols": r.symbols,
                "started_ns": r.started_ns,
                "stopped_ns": r.stopped_ns,
                "stop_reason": r.stop_reason,
            }
            for r in runs
            if r.started_ns < period.end_ns and (r.stopped_ns is None or r.stopped_ns >= period.start_ns)
        ],
        "pnl": {
            "gross": gross,
            "fees": fees,
            "funding": funding,
            "net": net,
            "slippage": None,
            "funding_note": "funding of the runs that ended in the period (the journal keeps it per run)",
            "slippage_note": "not journaled: fills carry their price, not the mid at the decision",
        },
        "fills": n_fills,
        "notional": notional,
        "trades": {
            "count": len(trips),
            "wins": len(wins),
            "win_rate": len(wins) / len(trips) if trips else None,
            "avg_win": sum_w / len(wins) if wins else None,
            "avg_loss": sum_l / len(losses) if losses else None,
            "profit_factor": (sum_w / -sum_l) if sum_l < 0 else None,
            "net": sum((t["net"] for t in trips), ZERO),
        },
        "ratios": ratios,
        "equity": {
            "capital": capital,
            "snapshots": len(eq_rows),
            "mean_equity": mean_equity,
            "pnl_curve": {"minute": minutes.tolist(), "pnl": curve.tolist()},
        },
        "exposure": {
            "mean": float(np.mean(exposures)) if exposures else None,
            "turnover": float(notional) / mean_equity if mean_equity > 0 else None,
        },
        "cost_share": float(fees / abs(gross)) if gross != 0 else None,
        "rejections_by_gate": {g: n for g, n in sorted(gates.items(), key=lambda kv: -kv[1]) if g != "pass"},
        "accepted": gates.get("pass", 0),
        "risk_by_rule": dict(sorted(risk.items(), key=lambda kv: -kv[1])),
        "risk_events": [
            {"ts_ns": e.ts_ns, "symbol": e.symbol, "rule": e.rule, "message": e.message}
            for e in conn.execute(events_q)
        ],
        "by_symbol": {k: {**v, "net": v["gross"] - v["fees"]} for k, v in sorted(sym.items())},
        "by_day": {k: {**v, "net": v["gross"] - v["fees"]} for k, v in sorted(day.items())},
        "model": None,
        "model_note": "the journal holds no live predictions yet: the model evaluation needs them",
        "round_trips": [{k: v for k, v in t.items()} for t in trips],
    }


def _day(ts_ns: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts_ns / NS, tz=dt.UTC).strftime("%Y-%m-%d")


def plain(x: Any) -> Any:
    """JSON-ready: Decimals as exact strings."""
    if isinstance(x, Decimal):
        return str(x)
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
