"""Start-up reconciliation of a paper/live run with the exchange.

Every order the journal holds as open or unresolved (an earlier run that died) is resolved by its
client order id and never re-sent:

- one the exchange never received is marked rejected;
- one still resting is cancelled (no one manages it any more);
- then its final state, and any fill the journal missed, are recorded.

Then, on a venue with positions (USD-M), the exchange's position is adopted by the trading core, whose
exits manage it from there.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from orderflow.adapters.binance.common.venues import caps
from orderflow.execution import portfolio as PF

if TYPE_CHECKING:
    from orderflow.adapters.binance.trading.client import BinanceTradingClient
    from orderflow.engine.session import TradingSession
    from orderflow.journal import Journal

log = logging.getLogger(__name__)


def recovered_fill_id(filled_qty: float) -> str:
    """Journal key of a fill recovered by REST (it has no trade id): the order's cumulative quantity, so
    two recovered partial fills of one order stay two fills."""
    return f"recovered-{filled_qty:g}"


def apply_report_quietly(journal: Journal, cid: str, status: str, filled: float, avg: float | None, oid: int,
                         ts: int, reason: str) -> None:  # fmt: skip
    """Journal an order's state; one the journal already holds as final (the stream's report got there
    first) is left as it is, with a log line."""
    from orderflow.journal import JournalError

    try:
        journal.apply_report(cid, status, filled, avg, oid, ts, reason=reason)
    except JournalError as e:
        log.info("journal: report for %s (%s) not applied: %s", cid, reason, e)


@dataclass
class Recovery:
    """What start-up reconciliation changed: one line per order or position, and the adopted position
    (quantity, average entry price) if any."""

    notes: list[str] = field(default_factory=list)
    adopted: tuple[float, float] | None = None


async def recover_at_start(client: BinanceTradingClient, journal: Journal | None, market: str, symbol: str,
                           session: TradingSession, taker_fee: float) -> Recovery:  # fmt: skip
    """Reconcile the journal's open orders of ``symbol`` and the exchange's position (module docstring)."""
    from orderflow.adapters.binance.common.errors import BinanceError, UnknownOrder

    out = Recovery()
    if journal is not None:
        for o in journal.open_orders():
            if o.symbol != symbol:
                continue
            now = time.time_ns()
            try:
                x = await client.get_order(symbol, client_order_id=o.client_order_id)
            except UnknownOrder:
                why = "not received by the exchange (found at start-up)"
                journal.apply_report(o.client_order_id, "rejected", 0, None, None, now, reason=why)
                out.notes.append(f"{o.client_order_id}: not received")
                continue
            if not x.status.terminal:  # left resting by the dead run: nobody manages it any more
                try:
                    x = await client.cancel_order(symbol, client_order_id=o.client_order_id)
                except BinanceError as e:
                    log.info("start-up cancel of %s: %s", o.client_order_id, e)
                    x = await client.get_order(symbol, client_order_id=o.client_order_id)
                out.notes.append(f"{o.client_order_id}: open at start-up, cancelled")
            have = sum(float(f.qty) for f in journal.fills(client_order_id=o.client_order_id))
            if x.filled_qty > have + 1e-12:  # fills the dead run never booked
                journal.record_fill(o.client_order_id, recovered_fill_id(x.filled_qty), x.avg_price,
                                    x.filled_qty - have, now, fee=taker_fee * x.filled_quote,
                                    liquidity="taker")  # fmt: skip
            status = str(x.status.value if hasattr(x.status, "value") else x.status)
            avg = x.avg_price if x.filled_qty > 0 else None
            apply_report_quietly(journal, o.client_order_id, status, x.filled_qty, avg, x.order_id, now,
                                 reason="recovered at start-up")  # fmt: skip
            out.notes.append(f"{o.client_order_id}: {status.lower()} {x.filled_qty:g}")
    if caps(market).positions:
        pos = (await client.positions()).get(symbol)
        if pos is not None and pos.quantity != 0:
            from orderflow.strategy import kernels as ST

            P = session.P
            P[PF.P_POS], P[PF.P_AVG] = pos.quantity, pos.entry_price
            out.adopted = (pos.quantity, pos.entry_price)
            ST.on_position(session.G, session.H, session.SC, np.int64(time.time_ns()), float(pos.quantity),
                           float(pos.entry_price))  # fmt: skip
            out.notes.append(f"adopted position {pos.quantity:g} @ {pos.entry_price:g}")
    return out
