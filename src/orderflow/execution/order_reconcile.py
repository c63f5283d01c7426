"""Reconciliation of the journal's orders with the exchange, through the :class:`OrderManager`.

Every order the journal holds as open or unresolved (an earlier run that died, or one whose answer was
lost) is resolved by its client order id and never sent again:

- :func:`reconcile` adopts each one into the manager with the exchange's state and any fill the journal
  missed (booked once: the manager starts from the fills the journal already has); one the exchange
  never received is ``rejected`` (``not received``) once the request's ``recvWindow`` has passed;
  ids open on the exchange but absent from the journal are reported as ``foreign`` and left alone;
- :func:`recover_at_start` is the paper/live engine's start-up policy on top of it: reconcile one
  symbol, then cancel what is still resting (no one manages a dead run's orders), and say in one line
  per order what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orderflow.adapters.binance.common.errors import ExchangeUnavailable, RateLimited, UnknownOrder
from orderflow.adapters.binance.trading.events import Order
from orderflow.core.orders import OrderIntent, OrderType
from orderflow.execution.order_state import NAN, ManagedOrder, OrderState, field_of, log, side_of

if TYPE_CHECKING:
    from orderflow.execution.orders import OrderManager

_EPS = 1e-12


@dataclass(frozen=True)
class ReconcileChange:
    """What :func:`reconcile` found for one journaled order. ``action``: adopted_open, adopted_done,
    not_received or unresolved."""

    client_order_id: str
    symbol: str
    action: str
    old_state: OrderState
    new_state: OrderState
    old_filled: float
    new_filled: float
    detail: str = ""


@dataclass
class ReconcileReport:
    """The orders checked, what changed, ids still unresolved and ``foreign`` ids (open on the exchange,
    absent from the journal: reported, left untouched)."""

    checked: list[ReconcileChange] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[ReconcileChange]:
        return [
            c
            for c in self.checked
            if c.old_state is not c.new_state or abs(c.new_filled - c.old_filled) > _EPS
        ]


async def reconcile(
    m: OrderManager, symbols: tuple[str, ...] | list[str] = (), only: str | None = None
) -> ReconcileReport:
    """Compare the journal's open and unresolved orders (of symbol ``only``, or of every symbol) with the
    exchange (open orders of their symbols and of ``symbols``, then each missing one by client id),
    adopt states and fills, resolve pending or unknown ones (not found after recvWindow: rejected
    ``not received``), and report."""
    recs: dict[str, Any] = {}
    for rec in [*m.journal.open_orders(), *m.journal.unresolved_intents()]:
        cid = str(field_of(rec, "client_order_id", "coid", "cid"))
        if only is None or str(field_of(rec, "symbol", default="")).upper() == only.upper():
            recs.setdefault(cid, rec)
    syms = {str(field_of(r, "symbol", default="")).upper() for r in recs.values()}
    syms |= {s.upper() for s in symbols}
    on_ex: dict[str, Order] = {}
    for s in sorted(x for x in syms if x):
        for o in await m.client.open_orders(s):
            on_ex[o.client_order_id] = o
    report = ReconcileReport()
    for cid, rec in recs.items():
        mo = m.orders.get(cid) or from_record(m, cid, rec, on_ex.get(cid))
        old_state, old_filled = mo.state, mo.filled_qty
        action, detail = "adopted_open", ""
        if cid in on_ex:
            m.apply_order(on_ex[cid], final=True)
        else:
            try:
                o = await m.client.get_order(mo.symbol, client_order_id=cid)
            except UnknownOrder:
                if mo.state in (OrderState.PENDING_NEW, OrderState.UNKNOWN):
                    await m.resolve(cid)
                else:
                    detail = f"journal says {mo.state.value}; the exchange does not know the id"
            except (ExchangeUnavailable, RateLimited) as e:
                detail = f"query failed: {e}"
            else:
                m.apply_order(o, final=True)
            if mo.state is OrderState.REJECTED and mo.reason.startswith("not received"):
                action = "not_received"
            elif mo.state.terminal:
                action = "adopted_done"
            elif detail or mo.state in (OrderState.UNKNOWN, OrderState.PENDING_NEW):
                action = "unresolved"
        if action == "unresolved":
            report.unresolved.append(cid)
        report.checked.append(
            ReconcileChange(cid, mo.symbol, action, old_state, mo.state, old_filled, mo.filled_qty, detail)
        )
    report.foreign = sorted(c for c in on_ex if c not in recs and c not in m.orders)
    log.info(
        "reconcile: %d orders checked, %d changed, %d unresolved, %d foreign",
        len(report.checked),
        len(report.changed),
        len(report.unresolved),
        len(report.foreign),
    )
    return report


def from_record(m: OrderManager, cid: str, rec: Any, o: Order | None) -> ManagedOrder:
    """A managed order rebuilt from a journal record (and the exchange's copy when there is one). Its
    cumulative fill is what the journal holds: the larger of the record's and the sum of the fills
    journaled for it (a run that died between booking a fill and its report), so no fill is booked
    twice."""
    g = lambda *n, d=None: field_of(rec, *n, default=d)  # noqa: E731
    otype = g("order_type", "type", d=o.order_type if o else OrderType.LIMIT)
    intent = OrderIntent(
        cid,
        str(g("symbol", d=o.symbol if o else "")).upper(),
        side_of(g("side", d=o.side if o else 1)),
        float(g("quantity", "qty", d=o.quantity if o else 0.0)),
        OrderType(str(otype).upper()),
        float(g("price", d=o.price if o else NAN)),
        parent_id=str(g("parent_id", d="")),
        purpose=str(g("purpose", d="entry")),
        ts_created=int(g("created_ns", "ts_created", d=0)),
    )
    try:
        state = OrderState(str(g("state", d="pending_new")).lower())
    except ValueError:  # the journal's intent / sent: not answered yet
        state = OrderState.PENDING_NEW
    filled = float(g("filled_qty", "filled", d=0.0))
    avg = float(g("avg_price", "avg", d=0.0) or 0.0)
    quote = filled * avg if filled > 0 else 0.0
    booked = m.journal.fills(client_order_id=cid)
    have = sum(float(field_of(f, "qty", default=0.0)) for f in booked)
    if have > filled + _EPS:
        filled = have
        quote = sum(float(field_of(f, "qty", default=0.0)) * float(field_of(f, "price", default=0.0))
                    for f in booked)  # fmt: skip
    mo = ManagedOrder(
        intent,
        state=state,
        filled_qty=filled,
        filled_quote=quote,
        exchange_id=int(g("exchange_order_id", "exchange_id", "order_id", d=-1)),
        sent_ns=int(g("sent_ns", "ts_sent", d=0)),
        ts_update=m.clock(),
    )
    m.orders[cid] = mo
    return mo


async def recover_at_start(m: OrderManager, symbol: str) -> list[str]:
    """The engine's start-up reconciliation of ``symbol``'s journaled orders (:func:`reconcile`), then a
    cancel of each one still resting; one line per order: ``{cid}: not received``, ``{cid}: open at
    start-up, cancelled`` and ``{cid}: {state} {filled}``."""
    report = await reconcile(m, (), symbol)
    notes: list[str] = []
    for c in report.checked:
        mo = m.orders[c.client_order_id]
        if c.action == "not_received":
            notes.append(f"{c.client_order_id}: not received")
            continue
        if mo.state.open and mo.state is not OrderState.UNKNOWN:
            await m.cancel(c.client_order_id)
            if mo.state.open:  # the cancel's outcome is unknown or refused: ask once more
                try:
                    m.apply_order(await m.client.get_order(mo.symbol, client_order_id=c.client_order_id),
                                  final=True)  # fmt: skip
                except (UnknownOrder, ExchangeUnavailable, RateLimited) as e:
                    log.warning("start-up cancel of %s: state not known: %s", c.client_order_id, e)
            notes.append(f"{c.client_order_id}: open at start-up, cancelled")
        notes.append(f"{c.client_order_id}: {mo.state.value} {mo.filled_qty:g}")
    return notes
