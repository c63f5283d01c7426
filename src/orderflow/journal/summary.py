"""What a journal holds, summarised: orders by state, fills and volume, positions, PnL, fees, equity, runs.

Sums of money and quantities are exact decimals (computed in Python over the stored decimals, so
SQLite and PostgreSQL give the same numbers). Units: quantities in base units, volume, PnL, fees and
equity in quote currency, timestamps in int ns since the epoch.

PnL: ``net = realized + unrealized (where a position has one) - fees + funding``, from the positions
table (``realized_pnl`` is gross of fees and funding). Fill fees are also listed per fee asset.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from orderflow.core.timeutil import ns_to_iso
from orderflow.journal.models import (
    ORDER_STATES,
    TERMINAL_STATES,
    UNRESOLVED_STATES,
    EquitySnapshot,
    FillRow,
    ModelVersion,
    Order,
    Position,
    RiskEvent,
    Run,
    Signal,
)

ZERO = Decimal(0)


def _where_run(q: Any, col: Any, run: int | None) -> Any:
    return q if run is None else q.where(col == run)


def _count(s: Session, model: Any, run: int | None) -> int:
    return int(s.scalar(_where_run(sa.select(sa.func.count()).select_from(model), model.run_id, run)) or 0)


def build_summary(s: Session, run: int | None = None) -> dict[str, Any]:
    """The summary as a dict of plain values (Decimals for amounts), over one run or all of them."""
    runs = s.scalars(_where_run(sa.select(Run).order_by(Run.id), Run.id, run)).all()
    q_states = _where_run(sa.select(Order.state, sa.func.count()).group_by(Order.state), Order.run_id, run)
    counts = {st: int(n) for st, n in s.execute(q_states)}
    by_state = {st: counts[st] for st in ORDER_STATES if st in counts}
    q_runs = sa.select(Order.run_id, sa.func.count()).group_by(Order.run_id)
    orders_per_run = {r: int(n) for r, n in s.execute(q_runs)}

    n_fills, vol_base, vol_quote = 0, ZERO, ZERO
    fees_by_asset: dict[str, Decimal] = {}
    by_symbol: dict[str, dict[str, Any]] = {}
    q = _where_run(
        sa.select(FillRow.symbol, FillRow.price, FillRow.qty, FillRow.fee, FillRow.fee_asset),
        FillRow.run_id,
        run,
    )
    for sym, price, qty, fee, asset in s.execute(q.execution_options(yield_per=10_000)):
        n_fills += 1
        vol_base += qty
        vol_quote += qty * price
        key = asset or "?"
        fees_by_asset[key] = fees_by_asset.get(key, ZERO) + fee
        d = by_symbol.setdefault(sym, {"count": 0, "volume_base": ZERO, "volume_quote": ZERO})
        d["count"] += 1
        d["volume_base"] += qty
        d["volume_quote"] += qty * price

    positions = []
    realized = fees = funding = ZERO
    unrealized: Decimal | None = None
    for p in s.scalars(
        _where_run(sa.select(Position).order_by(Position.run_id, Position.symbol), Position.run_id, run)
    ):
        positions.append(
            {
                "run_id": p.run_id,
                "symbol": p.symbol,
                "qty": p.qty,
                "avg_price": p.avg_price,
                "realized_pnl": p.realized_pnl,
                "unrealized_pnl": p.unrealized_pnl,
                "fees": p.fees,
                "funding": p.funding,
                "mark_price": p.mark_price,
                "updated_ns": p.updated_ns,
            }
        )
        realized += p.realized_pnl
        fees += p.fees
        funding += p.funding
        if p.unrealized_pnl is not None:
            unrealized = (unrealized or ZERO) + p.unrealized_pnl

    last_ts = _where_run(
        sa.select(EquitySnapshot.run_id, sa.func.max(EquitySnapshot.ts_ns).label("ts")).group_by(
            EquitySnapshot.run_id
        ),
        EquitySnapshot.run_id,
        run,
    ).subquery()
    eq_rows = s.execute(
        sa.select(EquitySnapshot.run_id, EquitySnapshot.ts_ns, EquitySnapshot.equity)
        .join(
            last_ts, sa.and_(EquitySnapshot.run_id == last_ts.c.run_id, EquitySnapshot.ts_ns == last_ts.c.ts)
        )
        .order_by(EquitySnapshot.run_id, EquitySnapshot.id)
    ).all()
    equity = list(
        {r.run_id: {"run_id": r.run_id, "ts_ns": r.ts_ns, "equity": r.equity} for r in eq_rows}.values()
    )

    last_model = s.scalars(
        _where_run(
            sa.select(ModelVersion).order_by(ModelVersion.ts_ns.desc(), ModelVersion.id.desc()),
            ModelVersion.run_id,
            run,
        ).limit(1)
    ).first()
    return {
        "runs": [
            {
                "id": r.id,
                "mode": r.mode,
                "venue": r.venue,
                "symbols": r.symbols,
                "started_ns": r.started_ns,
                "stopped_ns": r.stopped_ns,
                "stop_reason": r.stop_reason,
                "code_version": r.code_version,
                "config_hash": r.config_hash,
                "orders": int(orders_per_run.get(r.id, 0)),
            }
            for r in runs
        ],
        "orders": {
            "total": sum(by_state.values()),
            "by_state": by_state,
            "open": sum(n for st, n in by_state.items() if st not in TERMINAL_STATES),
            "unresolved": sum(n for st, n in by_state.items() if st in UNRESOLVED_STATES),
        },
        "fills": {
            "count": n_fills,
            "volume_base": vol_base,
            "volume_quote": vol_quote,
            "fees_by_asset": fees_by_asset,
            "by_symbol": by_symbol,
        },
        "positions": positions,
        "pnl": {
            "realized": realized,
            "unrealized": unrealized,
            "fees": fees,
            "funding": funding,
            "net": realized + (unrealized or ZERO) - fees + funding,
        },
        "equity": equity,
        "signals": _count(s, Signal, run),
        "risk_events": _count(s, RiskEvent, run),
        "model": None
        if last_model is None
        else {"version": last_model.version, "event": last_model.event, "ts_ns": last_model.ts_ns},
    }


def _plain(x: Any) -> Any:
    if isinstance(x, Decimal):
        return format(x.normalize(), "f")
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x


def summary_json(summary: dict[str, Any]) -> str:
    """JSON text of a summary; decimals as exact strings (``"0.3"``), timestamps as int ns."""
    return json.dumps(_plain(summary), indent=1)


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, Decimal):
        return str(_plain(x))
    return str(x)


def render_summary(summary: dict[str, Any]) -> str:
    """The summary as text tables."""
    sm = summary
    lines = [f"journal {sm.get('url', '')}"]
    lines.append(f"runs: {len(sm['runs'])}")
    for r in sm["runs"]:
        failed = (r["stop_reason"] or "").startswith("failed")
        stop = "running or crashed" if r["stopped_ns"] is None else f"stopped {ns_to_iso(r['stopped_ns'])}"
        stop = f"FAILED, {stop}" if failed else stop
        why = f" ({r['stop_reason']})" if r["stop_reason"] else ""
        lines.append(
            f"  #{r['id']:<4} {r['mode']:<8} {r['venue']:<14} {r['symbols']:<16} "
            f"started {ns_to_iso(r['started_ns'])}, {stop}{why}; {r['orders']} orders"
        )
    o = sm["orders"]
    states = ", ".join(f"{k} {v}" for k, v in o["by_state"].items()) or "none"
    lines.append(f"orders: {o['total']} ({states}); open {o['open']}, unresolved {o['unresolved']}")
    f = sm["fills"]
    fees = ", ".join(f"{_fmt(v)} {k}" for k, v in f["fees_by_asset"].items()) or "0"
    lines.append(
        f"fills: {f['count']}, volume {_fmt(f['volume_base'])} base = {_fmt(f['volume_quote'])} quote; "
        f"fees {fees}"
    )
    for sym, d in f["by_symbol"].items():
        lines.append(
            f"  {sym:<12} {d['count']:>6} fills  {_fmt(d['volume_base']):>14} base  "
            f"{_fmt(d['volume_quote']):>16} quote"
        )
    lines.append(f"positions: {len(sm['positions'])}")
    if sm["positions"]:
        head = ("run", "symbol", "qty", "avg price", "realized", "unrealized", "fees", "funding")
        rows = [
            (
                str(p["run_id"]),
                p["symbol"],
                _fmt(p["qty"]),
                _fmt(p["avg_price"]),
                _fmt(p["realized_pnl"]),
                _fmt(p["unrealized_pnl"]),
                _fmt(p["fees"]),
                _fmt(p["funding"]),
            )
            for p in sm["positions"]
        ]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        lines.append("  " + "  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
        lines.extend("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    p = sm["pnl"]
    lines.append(
        f"pnl (quote): realized {_fmt(p['realized'])}, unrealized {_fmt(p['unrealized'])}, "
        f"fees {_fmt(p['fees'])}, funding {_fmt(p['funding'])}, net {_fmt(p['net'])}"
    )
    for e in sm["equity"]:
        lines.append(f"equity run #{e['run_id']}: {_fmt(e['equity'])} at {ns_to_iso(e['ts_ns'])}")
    model = sm["model"]
    last = "none" if model is None else f"{model['version']} {model['event']} at {ns_to_iso(model['ts_ns'])}"
    lines.append(f"signals: {sm['signals']}, risk events: {sm['risk_events']}, last model: {last}")
    return "\n".join(lines)
