"""What the client knows about its orders, so updates from the stream and from REST recovery are
emitted once each and no fill is missed or counted twice.

Progress of an order is ``(filled_qty, status rank)``; an update is emitted only when it moves an
order's progress forward past what was already emitted. A stream event that repeats a state found
by REST recovery (or vice versa) is dropped.
"""

from __future__ import annotations

import msgspec

from orderflow.adapters.binance.trading.decode import update_from_order
from orderflow.adapters.binance.trading.events import Order, OrderStatus, OrderUpdate

_RANK = {
    OrderStatus.NEW: 0,
    OrderStatus.PARTIALLY_FILLED: 1,
    OrderStatus.PENDING_CANCEL: 2,
    OrderStatus.FILLED: 3,
    OrderStatus.CANCELED: 3,
    OrderStatus.REJECTED: 3,
    OrderStatus.EXPIRED: 3,
}
_EPS = 1e-12


class OrderTracker:
    """Orders by client order id: the latest known state and the progress already emitted."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self._emitted: dict[str, tuple[float, float, int]] = {}  # cid -> (filled, quote, rank)

    def __len__(self) -> int:
        return len(self.orders)

    def _ahead(self, cid: str, filled: float, rank: int) -> bool:
        e = self._emitted.get(cid)
        if e is None:
            return True
        return filled > e[0] + _EPS or (filled >= e[0] - _EPS and rank > e[2])

    def on_order(self, o: Order) -> None:
        """Record a state learnt from a REST answer (place, cancel, query) without emitting anything."""
        cur = self.orders.get(o.client_order_id)
        if cur is None or (o.filled_qty, _RANK[o.status]) >= (cur.filled_qty, _RANK[cur.status]):
            self.orders[o.client_order_id] = o

    def on_stream(self, u: OrderUpdate) -> bool:
        """Whether the stream update ``u`` is new (then it is recorded and should be emitted)."""
        rank = _RANK[u.status]
        if not self._ahead(u.client_order_id, u.filled_qty, rank):
            return False
        self._emitted[u.client_order_id] = (u.filled_qty, u.filled_quote, rank)
        cur = self.orders.get(u.client_order_id)
        if cur is not None and (u.filled_qty, rank) >= (cur.filled_qty, _RANK[cur.status]):
            self.orders[u.client_order_id] = msgspec.structs.replace(
                cur,
                status=u.status,
                filled_qty=u.filled_qty,
                filled_quote=u.filled_quote,
                ts_update=u.ts_event,
            )
        return True

    def on_recovered(self, o: Order, ts_recv: int) -> OrderUpdate | None:
        """The update to emit for a state ``o`` found by REST, or ``None`` if nothing new."""
        self.on_order(o)
        rank = _RANK[o.status]
        if not self._ahead(o.client_order_id, o.filled_qty, rank):
            return None
        prev = self._emitted.get(o.client_order_id)
        base = None
        if prev is not None:
            base = msgspec.structs.replace(o, filled_qty=prev[0], filled_quote=prev[1])
        self._emitted[o.client_order_id] = (o.filled_qty, o.filled_quote, rank)
        return update_from_order(o, base, ts_recv)

    def live(self) -> list[Order]:
        """Orders to reconcile: not known to be finished, or whose known state is ahead of what was
        emitted (e.g. a MARKET order filled in its REST answer while the stream was down)."""
        out = []
        for cid, o in self.orders.items():
            if not o.status.terminal or self._ahead(cid, o.filled_qty, _RANK[o.status]):
                out.append(o)
        return out

    def forget_finished(self, keep: int = 1000) -> None:
        """Drop the oldest finished orders beyond ``keep`` (bounded memory in long sessions)."""
        done = [c for c, o in self.orders.items() if o.status.terminal]
        for c in done[: max(0, len(done) - keep)]:
            self.orders.pop(c, None)
            self._emitted.pop(c, None)
