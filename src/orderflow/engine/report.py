"""What a paper/live run did: :class:`PaperStats` (the engine's counters, latencies and notes) and
:func:`render_paper`, the account of it the ``orderflow paper`` / ``live`` commands print."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from orderflow.engine.core import D_NFUND_CONST, D_NFUND_SCHED
from orderflow.execution.portfolio import P_FUNDING as PF_FUNDING

if TYPE_CHECKING:
    from orderflow.engine.session import TradingSession


@dataclass
class PaperStats:
    """The counters of one run (the engine updates them as it goes)."""

    book_events: int = 0
    trades: int = 0
    valid_rows: int = 0
    gaps: int = 0
    mark_prices: int = 0  # markPrice@1s updates read (announced funding)
    orders_sent: int = 0
    order_errors: list[str] = field(default_factory=list)
    post_only_rejected: int = 0  # passive limits refused because the book had moved through the price
    fills: int = 0
    tick_to_order_us: list[float] = field(default_factory=list)  # book event received -> order handed on
    event_us: list[float] = field(default_factory=list)  # per book event: book, features, model, core
    model_version: str | None = None
    model_swaps: list[str] = field(default_factory=list)  # hot reloads during the run: "old -> new"
    recovered: list[str] = field(default_factory=list)  # what start-up reconciliation changed
    kill_mode: str = "off"
    stop_reason: str = ""
    # funding the exchange charged (USD-M ACCOUNT_UPDATE with reason FUNDING_FEE; quote, paid > 0) and
    # how many such events; the core books the configured rate, this is what the venue really took
    exchange_funding: float = 0.0
    exchange_fundings: int = 0
    # re-warming after gaps: book events with invalid features from a gap until valid again, wall
    # seconds from each gap to the first valid book event after it, and the receive time (ns) of a gap
    # whose features are not valid yet (0: none)
    gap_invalid_events: int = 0
    rewarm_s: list[float] = field(default_factory=list)
    invalid_since_ns: int = 0


def render_paper(stats: PaperStats, session: TradingSession, seconds: float) -> str:
    """A readable account of what the engine did."""
    res = session.result()
    rej = sorted(res.rejections.items(), key=lambda kv: -kv[1])
    lat = np.array(stats.tick_to_order_us)
    lines = [
        f"ran {seconds:.0f} s: {stats.book_events:,} book events ({stats.valid_rows:,} with valid features), "
        f"{stats.trades:,} trades, {stats.gaps} gaps",
        f"orders sent {stats.orders_sent}, fills {stats.fills}, round trips {len(res.trades)}, "
        f"position {session.position:g}",
        f"net PnL {res.trades['net_pnl'].sum() if len(res.trades) else 0.0:,.2f} (fees "
        f"{res.trades['fees'].sum() if len(res.trades) else 0.0:,.2f})",
        "rejections: " + (", ".join(f"{k} {v:,}" for k, v in rej) or "none"),
    ]
    if lat.size:
        p50, p99 = np.percentile(lat, [50, 99])
        lines.append(f"tick-to-order: p50 {p50:.0f} us, p99 {p99:.0f} us over {lat.size} orders")
    if stats.model_version:
        lines.append(f"model: {stats.model_version}")
    if stats.model_swaps:
        lines.append("model hot reloads: " + ", ".join(stats.model_swaps))
    if stats.kill_mode != "off":
        lines.append(f"kill switch: {stats.kill_mode}")
    if stats.recovered:
        lines.append("recovered at start-up: " + "; ".join(stats.recovered))
    if stats.exchange_fundings or session.P[PF_FUNDING]:
        booked, n = session.P[PF_FUNDING], stats.exchange_fundings
        n_s, n_c = int(session.D[D_NFUND_SCHED]), int(session.D[D_NFUND_CONST])
        how = f"{n_c} at the configured rate" + (f", {n_s} at rates the exchange announced" if n_s else "")
        lines.append(f"funding: booked {booked:,.4f} ({how}); charged by the exchange "
                     f"{stats.exchange_funding:,.4f} in {n} funding events")  # fmt: skip
    if stats.post_only_rejected:
        n = stats.post_only_rejected
        lines.append(f"post-only limits refused (the book moved through the price): {n:,}")
    if stats.gaps:
        rw = ", ".join(f"{x:.1f}" for x in stats.rewarm_s[:5]) or "not yet"
        lines.append(f"book events with invalid features after gaps: {stats.gap_invalid_events:,}; "
                     f"re-warmed after (s): {rw}")  # fmt: skip
    for e in stats.order_errors[:5]:
        lines.append(f"order error: {e}")
    return "\n".join(lines)
