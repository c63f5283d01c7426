"""Start-up reconciliation of a paper/live run with the exchange.

The journal's open or unresolved orders of the symbol (an earlier run that died) are resolved through
the order manager (:func:`orderflow.execution.order_reconcile.recover_at_start`): by client order id,
never re-sent; one the exchange never received is marked rejected, one still resting is cancelled (no
one manages it any more), and its final state and any fill the journal missed are recorded.

Then, on a venue with positions (USD-M), the exchange's position is adopted by the trading core, whose
exits manage it from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from orderflow.adapters.binance.common.venues import caps
from orderflow.execution import portfolio as PF
from orderflow.execution.order_reconcile import recover_at_start as recover_orders

if TYPE_CHECKING:
    from orderflow.engine.session import TradingSession
    from orderflow.execution.orders import OrderManager


@dataclass
class Recovery:
    """What start-up reconciliation changed: one line per order or position, and the adopted position
    (quantity, average entry price) if any."""

    notes: list[str] = field(default_factory=list)
    adopted: tuple[float, float] | None = None


async def recover_at_start(
    orders: OrderManager, market: str, symbol: str, session: TradingSession
) -> Recovery:
    """Reconcile the journal's open orders of ``symbol`` and the exchange's position (module docstring)."""
    out = Recovery(notes=await recover_orders(orders, symbol))
    if caps(market).positions:
        pos = (await orders.client.positions()).get(symbol)
        if pos is not None and pos.quantity != 0:
            from orderflow.strategy import kernels as ST

            P = session.P
            P[PF.P_POS], P[PF.P_AVG] = pos.quantity, pos.entry_price
            out.adopted = (pos.quantity, pos.entry_price)
            ST.on_position(session.G, session.H, session.SC[0], np.int64(time.time_ns()), float(pos.quantity),
                           float(pos.entry_price))  # fmt: skip
            out.notes.append(f"adopted position {pos.quantity:g} @ {pos.entry_price:g}")
    return out
