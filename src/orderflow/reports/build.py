"""The figures of a period report, computed from the journal alone.

Money is exact where the journal is: every fill is booked in Decimal on a FIFO ledger per (run,
symbol) (:class:`orderflow.journal.ledger.Ledger`), seeded with the fills before the period so that a
position carried into it closes against its true lots. So:

- **gross** = the PnL realised by the period's fills (FIFO, before fees); **fees** = the period's fees;
  **funding** = the funding payments journaled in the period as the engine booked them
  (``funding_events`` of source ``model``, the figure its PnL carries), and for a run that journaled
  no payment (one from before migration 0003) its per-run total from ``positions``, counted in the
  period the run ended; the venue's own charges (source ``exchange``) are shown beside, not added;
  **net** = gross − fees + funding;
- **slippage** = ``sum side * (price - ref) * qty`` over the period's fills that carry the decision's
  mid (``fills.ref_price``; side +1 buy, -1 sell), exact in Decimal: positive is a cost. It is part of
  gross already (fills book at their price), so net does not subtract it again;
- **round trips**: a position opened from flat and closed back to flat (or through zero); counted in
  the period it closes, its PnL net of the fees of its fills; win rate, average win and loss, profit
  factor (gross wins over gross losses) follow;
- **ratios** come from the equity snapshots: the runs' equity changes summed into one PnL curve per
  minute (the last snapshot of each minute), returns against the capital at the period start;
  Sharpe and Sortino are annualised on a 365-day, 24-hour year (``sqrt(525,600)`` minutes); the
  maximum drawdown and its duration are read from the same curve;
- **exposure** is the mean gross notional of the snapshots, **turnover** the traded notional over the
  mean equity; the **cost share** is fees over the absolute gross PnL;
- rejections by gate (the journal's signal rows) and risk events by rule in the period;
- **model evaluation** over the period's journaled predictions that have an outcome (metrics in
  :mod:`orderflow.reports.evaluation`): reliability and ECE, Brier score and log loss against a
  prequential class-frequency baseline (only labels known before each sample), hit rate by confidence
  decile, expected against realised EV and cost, the rolling Spearman IC of ``p_up - p_down`` against
  the realised return, and the PSI of each model input against the model version's first journaled
  input vectors (the registry keeps no training feature statistics to compare with).
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
from orderflow.journal.models import (
    Alert,
    EquitySnapshot,
    FundingEvent,
    ModelInputs,
    Position,
    Prediction,
    RiskEvent,
    Run,
    Signal,
)
from orderflow.journal.models import FillRow as Fill
from orderflow.reports import evaluation as EV
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


def build_report(
    conn: sa.Connection, period: Period, run: int | None = None, *, psi_reference: int = 300
) -> dict[str, Any]:
    """Every figure of the period (amounts as Decimal), from one journal connection; the feature drift
    compares against a model version's first ``psi_reference`` journaled input vectors."""
    fq = _where_run(sa.select(Fill).where(Fill.ts_ns < period.end_ns), Fill.run_id, run)
    fills = list(conn.execute(fq.order_by(Fill.ts_ns, Fill.id)))
    trips, _ = _round_trips(fills, period)

    ledgers: dict[tuple, Ledger] = {}
    gross = fees = notional = ZERO
    sym: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "fills": 0,
            "gross": ZERO,
            "fees": ZERO,
            "notional": ZERO,
            "trips": 0,
            "net_trips": ZERO,
            "slippage": ZERO,
        }
    )
    day: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"fills": 0, "gross": ZERO, "fees": ZERO, "trips": 0}
    )
    n_fills = 0
    slippage, slipped, unreferenced = ZERO, 0, 0
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
        if f.ref_price is not None:
            slip = (f.price - f.ref_price) * f.qty * (1 if f.side == "buy" else -1)
            slippage += slip
            s["slippage"] += slip
            slipped += 1
        else:
            unreferenced += 1
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
    funding, funding_exchange, n_funding, from_totals = _funding(conn, period, run, runs)
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
            "slippage": slippage if slipped else None,
            "slippage_fills": slipped,
            "funding_exchange": funding_exchange,
            "funding_payments": n_funding,
            "funding_note": (
                f"{n_funding} payments booked by the engine in the period"
                + (
                    f"; per-run totals of {len(from_totals)} runs that journaled no payment and ended in "
                    "the period"
                    if from_totals
                    else ""
                )
                + "; the exchange's own charges are shown apart, not added"
            ),
            "slippage_note": _slippage_note(slipped, unreferenced),
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
        "alerts": _alerts(conn, period, run),
        "by_symbol": {k: {**v, "net": v["gross"] - v["fees"]} for k, v in sorted(sym.items())},
        "by_day": {k: {**v, "net": v["gross"] - v["fees"]} for k, v in sorted(day.items())},
        "model": _model(conn, period, run, fills, psi_reference),
        "round_trips": [{k: v for k, v in t.items()} for t in trips],
    }


def _slippage_note(slipped: int, unreferenced: int) -> str:
    text = (
        "side x (fill price - decision mid) x qty, summed exactly; positive is a cost; already in gross "
        "(fills book at their price)"
    )
    if unreferenced:
        text += f"; {unreferenced} fills without a decision mid (journaled before migration 0003, or not "
        text += "the engine's orders) are left out"
    return text if slipped else "no fill in the period carries a decision mid: " + text


def _funding(
    conn: sa.Connection, period: Period, run: int | None, runs: list[Any]
) -> tuple[Decimal, Decimal, int, list[int]]:
    """(funding booked by the engine in the period, charged by the exchange in the period, the number
    of booked payments, runs counted by their per-run total)."""
    q = _where_run(
        sa.select(FundingEvent.source, FundingEvent.amount).where(
            FundingEvent.ts_ns >= period.start_ns, FundingEvent.ts_ns < period.end_ns
        ),
        FundingEvent.run_id,
        run,
    )
    booked = charged = ZERO
    n = 0
    for src, amount in conn.execute(q):
        if src == "model":
            booked += amount
            n += 1
        else:
            charged += amount
    with_events = set(
        conn.execute(
            _where_run(sa.select(FundingEvent.run_id).distinct(), FundingEvent.run_id, run)
        ).scalars()
    )
    ended = [
        r.id
        for r in runs
        if r.stopped_ns is not None and period.contains(r.stopped_ns) and r.id not in with_events
    ]
    if ended:
        for p in conn.execute(sa.select(Position.funding).where(Position.run_id.in_(ended))):
            booked += p.funding
    return booked, charged, n, ended


_PRED_COLS = (
    Prediction.id, Prediction.run_id, Prediction.ts_ns, Prediction.event_ns, Prediction.symbol,
    Prediction.version, Prediction.p_down, Prediction.p_flat, Prediction.p_up, Prediction.horizon_ns,
    Prediction.ev, Prediction.cost, Prediction.side, Prediction.client_order_id, Prediction.label,
    Prediction.ret, Prediction.outcome_ns,
)  # fmt: skip
IC_WINDOW = 200  # samples per rolling IC window
TOP_DRIFT = 10


def _model(
    conn: sa.Connection, period: Period, run: int | None, fills: list[Any], psi_reference: int
) -> dict[str, Any] | None:
    """The model-evaluation figures of the period's predictions (None when there are none)."""
    q = _where_run(
        sa.select(*_PRED_COLS)
        .where(Prediction.ts_ns >= period.start_ns, Prediction.ts_ns < period.end_ns)
        .order_by(Prediction.ts_ns, Prediction.id),
        Prediction.run_id,
        run,
    )
    rows = list(conn.execute(q))
    if not rows:
        return None
    res = [r for r in rows if r.label is not None]
    versions: dict[str, int] = defaultdict(int)
    for r in rows:
        versions[r.version] += 1
    out: dict[str, Any] = {
        "predictions": len(rows),
        "resolved": len(res),
        "unresolved": len(rows) - len(res),
        "versions": dict(versions),
        "horizon_s": sorted({r.horizon_ns / NS for r in rows}),
        "notes": [
            "predictions sampled once a second of exchange time and at every order the engine sent; an "
            "outcome is the training labels' triple-barrier label of the sample (exchange time); a "
            "prediction whose horizon outlived its run has none and is left out",
        ],
    }
    out["drift"] = _drift(conn, period, run, psi_reference)
    if not res:
        return out
    P = np.array([(r.p_down, r.p_flat, r.p_up) for r in res], dtype=float)
    y = np.array([r.label for r in res], dtype=np.int64)
    conf, hit = EV.top_label(P, y)
    base = _baseline(conn, run, res)
    out.update(
        {
            "class_counts": {c: int((y == k - 1).sum()) for k, c in enumerate(EV.CLASSES)},
            "brier": EV.brier(P, y),
            "log_loss": EV.log_loss(P, y),
            "baseline": {
                "name": "prequential class frequencies",
                "brier": EV.brier(base, y),
                "log_loss": EV.log_loss(base, y),
                "note": (
                    "for each sample, the add-one smoothed frequencies of the labels (same symbol, "
                    "every journaled run in scope, before the period too) whose outcome was known at "
                    "the sample's time; never the period's own frequencies"
                ),
            },
            "hit_rate": float(hit.mean()),
            "reliability": EV.reliability(P, y),
            "hit_by_decile": EV.deciles(conf, hit),
            "ev": _ev(res, fills),
            "ic": _ic(res),
        }
    )
    b = out["baseline"]
    out["brier_skill"] = 1.0 - out["brier"] / b["brier"] if b["brier"] > 0 else None
    out["log_loss_skill"] = 1.0 - out["log_loss"] / b["log_loss"] if b["log_loss"] > 0 else None
    return out


def _baseline(conn: sa.Connection, run: int | None, res: list[Any]) -> np.ndarray:
    """The prequential baseline's probabilities for the resolved samples ``res``, per symbol."""
    base = np.empty((len(res), 3))
    by_sym: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(res):
        by_sym[r.symbol].append(i)
    for symbol, idx in by_sym.items():
        ev_ns = np.array([res[i].event_ns for i in idx], dtype=np.int64)
        cut, last = int(ev_ns.min()), int(ev_ns.max())
        known = _where_run(
            sa.select(Prediction.label, Prediction.outcome_ns).where(
                Prediction.symbol == symbol, Prediction.label.is_not(None)
            ),
            Prediction.run_id,
            run,
        )
        counts0 = np.zeros(3)
        agg = known.with_only_columns(Prediction.label, sa.func.count()).where(Prediction.outcome_ns < cut)
        for label, n in conn.execute(agg.group_by(Prediction.label)):
            counts0[int(label) + 1] = n
        later = list(conn.execute(known.where(Prediction.outcome_ns >= cut, Prediction.outcome_ns <= last)))
        kt = np.array([k.outcome_ns for k in later], dtype=np.int64)
        kl = np.array([k.label for k in later], dtype=np.int64)
        base[idx] = EV.prequential_prior(ev_ns, kt, kl, counts0)
    return base


def _ev(res: list[Any], fills: list[Any]) -> dict[str, Any]:
    """Expected against realised EV and cost of the resolved predictions the strategy priced."""
    by_order: dict[str, list[Any]] = defaultdict(list)
    for f in fills:
        by_order[f.client_order_id].append(f)
    groups: dict[str, list[tuple[float, float, float, float]]] = {"traded": [], "not_traded": []}
    no_ref = 0
    for r in res:
        if r.ev is None or r.side is None or r.cost is None:
            continue
        realised = r.side * math.expm1(r.ret)
        mine = by_order.get(r.client_order_id or "", [])
        if not mine:
            groups["not_traded"].append((r.ev, realised, r.cost, r.cost))
            continue
        if any(f.ref_price is None for f in mine):
            no_ref += 1
            continue
        sign = {"buy": 1, "sell": -1}
        paid = sum((f.fee + sign[f.side] * (f.price - f.ref_price) * f.qty for f in mine), ZERO)
        notional = sum((f.price * f.qty for f in mine), ZERO)
        groups["traded"].append((r.ev, realised, r.cost, 2.0 * float(paid / notional)))

    def summary(g: list[tuple[float, float, float, float]]) -> dict[str, Any]:
        if not g:
            return {"n": 0}
        a = np.array(g)
        m = a.mean(axis=0)
        return {"n": len(g), "ev_expected": float(m[0]), "ev_realised": float(m[1]),
                "cost_expected": float(m[2]), "cost_realised": float(m[3]),
                "net_expected": float(m[0] - m[2]), "net_realised": float(m[1] - m[3])}  # fmt: skip

    both = groups["traded"] + groups["not_traded"]
    bins = []
    if both:
        a = np.array(both)
        for d in EV.deciles(a[:, 0], a[:, 1]):  # deciles of expected EV; "hit_rate" is the realised mean
            bins.append({"decile": d["decile"], "n": d["n"], "ev_lo": d["conf_lo"], "ev_hi": d["conf_hi"],
                         "ev_expected": d["confidence"], "ev_realised": d["hit_rate"]})  # fmt: skip
    return {
        "traded": summary(groups["traded"]),
        "not_traded": summary(groups["not_traded"]),
        "all": summary(both),
        "by_expected_decile": bins,
        "without_reference": no_ref,
        "note": (
            "fractions of notional, over the resolved predictions the strategy priced (a directional "
            "signal that reached its EV gate). Expected EV and cost are the strategy's at the decision "
            "(the cost a round trip: spread, two taker fees, two book walks). Realised EV = side x "
            "(exp(outcome log return) - 1), before costs: the triple-barrier outcome, not the trade's "
            "own exit. Realised cost of a prediction that sent an order = twice its fills' fees plus "
            "slippage against the decision mid over their notional (the entry's one-way cost doubled to "
            "a round trip: the exit is another order, not linked); of one that sent none, the expected "
            "cost (nothing was paid)"
        ),
    }


def _ic(res: list[Any]) -> dict[str, Any]:
    score = np.array([r.p_up - r.p_down for r in res])
    ret = np.array([r.ret for r in res])
    n = score.size
    window = min(IC_WINDOW, n)
    step = max(1, window // 10, n // 2000)
    roll: dict[str, Any] = (
        EV.rolling_ic(score, ret, window, step)
        if n >= 20
        else {"window": window, "step": step, "end": [], "ic": []}
    )
    ends: list[int] = roll["end"]
    roll["ts_ns"] = [res[e].ts_ns for e in ends]
    vals = [v for v in roll["ic"] if v is not None]
    mean = float(np.mean(vals)) if vals else None
    return {**roll, "overall": EV.spearman(score, ret), "mean_rolling": mean, "score": "p_up - p_down",
            "target": "realised log return to the outcome"}  # fmt: skip


def _drift(conn: sa.Connection, period: Period, run: int | None, n_ref: int) -> dict[str, Any]:
    """PSI per model input of each version with input vectors in the period, against the version's
    first ``n_ref`` journaled vectors (those are left out of the compared set)."""
    import msgspec

    base = sa.select(Prediction.id, Prediction.ts_ns, Prediction.inputs).where(Prediction.inputs.is_not(None))
    cur_q = _where_run(
        base.add_columns(Prediction.version).where(
            Prediction.ts_ns >= period.start_ns, Prediction.ts_ns < period.end_ns
        ),
        Prediction.run_id,
        run,
    )
    cur_by_v: dict[str, list[Any]] = defaultdict(list)
    for r in conn.execute(cur_q.order_by(Prediction.ts_ns, Prediction.id)):
        cur_by_v[r.version].append(r)
    out: dict[str, Any] = {
        "reference": f"each model version's first {n_ref} journaled input vectors (its first live data"
        + (f", in run {run}" if run is not None else "")
        + "); the registry keeps no training feature statistics",
        "rule_of_thumb": "PSI < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift",
        "versions": {},
        "top": [],
    }
    dec = msgspec.msgpack.Decoder(list[float])
    for version, cur in cur_by_v.items():
        names_row = conn.execute(
            _where_run(
                sa.select(ModelInputs.names).where(ModelInputs.version == version), ModelInputs.run_id, run
            )
        ).first()
        ref_q = _where_run(base.where(Prediction.version == version), Prediction.run_id, run)
        ref = list(conn.execute(ref_q.order_by(Prediction.ts_ns, Prediction.id).limit(n_ref)))
        ref_ids = {r.id for r in ref}
        cur = [r for r in cur if r.id not in ref_ids]
        v: dict[str, Any] = {"n_ref": len(ref), "n_cur": len(cur)}
        if ref:
            v["ref_from_ns"], v["ref_to_ns"] = ref[0].ts_ns, ref[-1].ts_ns
        if len(ref) < min(n_ref, 50) or len(cur) < 30:
            v["skipped"] = "too few input vectors (at least min(reference, 50) and 30 compared)"
            out["versions"][version] = v
            continue
        R = np.array([dec.decode(r.inputs) for r in ref], dtype=float)
        C = np.array([dec.decode(r.inputs) for r in cur], dtype=float)
        names = _json_list(names_row.names) if names_row is not None else []
        if len(names) != R.shape[1]:
            names = [f"input_{k}" for k in range(R.shape[1])]
        feats: list[dict[str, Any]] = []
        for k, name in enumerate(names):
            value, e, a = EV.psi(R[:, k], C[:, k])
            feats.append({"name": name, "psi": value, "ref_shares": e, "cur_shares": a})
        feats.sort(key=lambda f: -f["psi"])
        v["features"] = feats
        out["versions"][version] = v
        out["top"].extend({"version": version, "name": f["name"], "psi": f["psi"]} for f in feats)
    top: list[dict[str, Any]] = out["top"]
    out["top"] = sorted(top, key=lambda f: -f["psi"])[:TOP_DRIFT]
    return out


def _alerts(conn: sa.Connection, period: Period, run: int | None) -> dict[str, Any]:
    """The alerter's messages in the period (of the run, with ``run``): counts by rule and kind, and the
    incidents opened (at most 200 listed)."""
    q = sa.select(Alert.ts_ns, Alert.kind, Alert.rule, Alert.severity, Alert.incident, Alert.title).where(
        Alert.ts_ns >= period.start_ns, Alert.ts_ns < period.end_ns, Alert.kind != "report"
    )
    if run is not None:
        q = q.where(Alert.run_id == run)
    rows = list(conn.execute(q.order_by(Alert.ts_ns, Alert.id)))
    by_rule: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        by_rule[r.rule][r.kind] += 1
    opened = [r for r in rows if r.kind == "trigger"]
    return {
        "messages": len(rows),
        "by_rule": {k: dict(v) for k, v in sorted(by_rule.items())},
        "opened": [
            {
                "ts_ns": r.ts_ns,
                "rule": r.rule,
                "severity": r.severity,
                "incident": r.incident,
                "title": r.title,
            }
            for r in opened[:200]
        ],
    }


def input_drift(
    conn: sa.Connection, start_ns: int, end_ns: int, run: int | None, n_ref: int
) -> dict[str, Any]:
    """PSI per model input between ``start_ns`` and ``end_ns`` (the alerter's live drift check), as in
    the report: against each version's first ``n_ref`` journaled input vectors."""
    import datetime as dt

    period = Period(
        "run",
        dt.datetime.fromtimestamp(start_ns // NS, tz=dt.UTC),
        dt.datetime.fromtimestamp(-(-end_ns // NS), tz=dt.UTC),
    )
    return _drift(conn, period, run, n_ref)


def _json_list(text: str) -> list[str]:
    import json

    return [str(x) for x in json.loads(text)]


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
