"""Order state machine (the whole table) and the OrderManager's handling of reports, with a fake client."""

from __future__ import annotations

import asyncio
import itertools
import math
from types import SimpleNamespace

import pytest

from orderflow.adapters.binance.common.errors import ExchangeUnavailable, UnknownOrder
from orderflow.adapters.binance.trading.decode import order_from_rest
from orderflow.adapters.binance.trading.events import ExecType, OrderStatus, OrderType, OrderUpdate
from orderflow.core.events import Side
from orderflow.execution.orders import (
    TRANSITIONS,
    IllegalTransition,
    ManagedOrder,
    OrderIntent,
    OrderManager,
    OrderState,
    check_transition,
)

S = OrderState
# written out independently of the module's table
EXPECTED = {
    S.PENDING_NEW: {S.NEW, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED, S.UNKNOWN},
    S.NEW: {S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED, S.UNKNOWN},
    S.PARTIALLY_FILLED: {S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED, S.UNKNOWN},
    S.UNKNOWN: {S.NEW, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED},
    S.FILLED: set(),
    S.CANCELED: set(),
    S.REJECTED: set(),
    S.EXPIRED: set(),
}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(list(S), list(S))))
def test_every_transition_of_the_table(old, new):
    assert bool(TRANSITIONS[old.code, new.code]) == (new in EXPECTED[old])
    if new in EXPECTED[old]:
        check_transition("c1", old, new)
    else:
        with pytest.raises(IllegalTransition) as ei:
            check_transition("c1", old, new)
        assert old.value in str(ei.value) and new.value in str(ei.value) and "c1" in str(ei.value)
        assert (ei.value.old, ei.value.new) == (old, new)


def test_managed_order_history_and_terminal_is_final():
    mo = ManagedOrder(OrderIntent("c1", "BTCUSDT", Side.BUY, 1.0, price=100.0))
    mo.move(S.NEW, 1)
    mo.move(S.PARTIALLY_FILLED, 2)
    mo.move(S.FILLED, 3, "done")
    assert [(h[1], h[2]) for h in mo.history] == [
        (S.PENDING_NEW, S.NEW),
        (S.NEW, S.PARTIALLY_FILLED),
        (S.PARTIALLY_FILLED, S.FILLED),
    ]
    with pytest.raises(IllegalTransition, match="filled -> canceled"):
        mo.move(S.CANCELED, 4)
    assert mo.state is S.FILLED and mo.reason == "done"


# -- the manager with a fake client ----------------------------------------------------------------------
class FakeJournal:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def record_intent(self, order, run_id):
        self.calls.append(("intent", order.client_order_id))

    def mark_sent(self, cid, ts):
        self.calls.append(("sent", cid))

    def apply_report(self, cid, state, filled, avg, exchange_id, ts, reason):
        self.calls.append(("report", cid, state, filled))

    def record_fill(self, cid, trade_id, price, qty, ts, **kw):
        self.calls.append(("fill", cid, qty, trade_id))

    def open_orders(self):
        return []

    def unresolved_intents(self):
        return []

    def fills(self, client_order_id):
        return []


class FakeClient:
    """Answers a POST with ``post_result`` (an exception or a body) and queries from ``known``."""

    def __init__(self, post_result, known=None) -> None:
        self.now_ms = 1_000_000
        self.config = SimpleNamespace(recv_window_ms=5000, settle_margin_ms=250)
        self.server_clock = SimpleNamespace(
            now_ms=lambda: self.now_ms, local_ns=lambda: self.now_ms * 1_000_000
        )
        self.paths = SimpleNamespace(order="/fapi/v1/order", w_new=1)
        self.venue, self.filters = "binance_usdm", {}
        self.tracker = SimpleNamespace(on_order=lambda o: None)
        self.next_client_id = iter(f"t-{i}" for i in itertools.count(1)).__next__
        self.post_result, self.known, self.queries = post_result, known or {}, 0
        self.rest = SimpleNamespace(request=self._post)

    def intent_params(self, intent):
        return {"newClientOrderId": intent.client_order_id}

    async def send_intent(self, params):
        return order_from_rest(await self._post(), self.venue)

    async def _post(self, *a, **kw):
        if isinstance(self.post_result, Exception):
            raise self.post_result
        return self.post_result

    async def get_order(self, symbol, client_order_id):
        self.queries += 1
        if client_order_id in self.known:
            return self.known[client_order_id]
        raise UnknownOrder("Order does not exist.", code=-2013)


def update(cid, status, filled, quote, last_qty=0.0, last_px=math.nan, trade_id=-1, source="stream"):
    return OrderUpdate(
        "binance_usdm",
        "BTCUSDT",
        5,
        6,
        42,
        cid,
        Side.BUY,
        OrderType.LIMIT,
        ExecType.TRADE,
        status,
        100.0,
        1.0,
        filled,
        quote,
        last_px,
        last_qty,
        0.01,
        "USDT",
        trade_id,
        True,
        False,
        "",
        source,
    )


def body(cid, status, filled=0.0, quote=0.0):
    return {
        "symbol": "BTCUSDT",
        "orderId": 42,
        "clientOrderId": cid,
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "price": "100",
        "origQty": "1",
        "executedQty": str(filled),
        "cumQuote": str(quote),
        "status": status,
        "updateTime": 1,
    }


async def test_reports_applied_once_in_order_with_fills_position_and_callbacks():
    j = FakeJournal()
    done, fills = [], []
    m = OrderManager(
        FakeClient(body("c1", "NEW")), j, on_fill=lambda o, f: fills.append(f), on_done=done.append
    )
    mo = await m.submit(OrderIntent("c1", "BTCUSDT", Side.BUY, 1.0, price=100.0))
    assert mo.state is S.NEW and j.calls[:2] == [("intent", "c1"), ("sent", "c1")]
    assert m.on_update(update("c1", OrderStatus.PARTIALLY_FILLED, 0.4, 40.0, 0.4, 100.0, 7))
    assert not m.on_update(update("c1", OrderStatus.PARTIALLY_FILLED, 0.4, 40.0, 0.4, 100.0, 7))  # duplicate
    assert not m.on_update(update("c1", OrderStatus.NEW, 0.0, 0.0))  # stale
    m.apply_order(order_from_rest(body("c1", "FILLED", 1.0, 100.6), "binance_usdm"))
    assert mo.state is S.FILLED and mo.filled_qty == 1.0 and mo.avg_price == pytest.approx(100.6)
    assert [(f.qty, f.trade_id) for f in fills] == [(0.4, 7), (pytest.approx(0.6), -100_000_000)]
    assert fills[1].price == pytest.approx(101.0) and math.isnan(fills[1].fee)
    assert m.position_delta("BTCUSDT") == pytest.approx(1.0) and done == [mo] and m.open_orders() == []
    assert [c[2] for c in j.calls if c[0] == "report"] == ["new", "partially_filled", "filled"]
    assert not m.on_update(update("c1", OrderStatus.CANCELED, 1.0, 100.6))  # terminal: nothing more


async def test_timeout_goes_unknown_then_not_received_after_recv_window():
    c = FakeClient(ExchangeUnavailable("timeout", status=0))
    slept = []

    async def sleep(s):
        slept.append(s)
        c.now_ms += int(s * 1000) + 1

    j = FakeJournal()
    m = OrderManager(c, j, sleep=sleep)
    mo = await m.submit(OrderIntent("c2", "BTCUSDT", Side.BUY, 1.0, price=100.0))
    assert mo.state is S.UNKNOWN
    await m.drain()
    assert mo.state is S.REJECTED and mo.reason.startswith("not received")
    assert c.queries == 2 and slept and slept[0] == pytest.approx(5.25)
    assert [c[2] for c in j.calls if c[0] == "report"] == ["unknown", "rejected"]


async def test_unknown_resolved_by_query_to_a_fill_and_failing_queries_keep_it_unknown():
    c = FakeClient(ExchangeUnavailable("HTTP 502", status=502))
    c.known["c3"] = order_from_rest(body("c3", "FILLED", 1.0, 100.0), "binance_usdm")
    m = OrderManager(c, FakeJournal(), sleep=lambda s: asyncio.sleep(0))
    mo = await m.submit(OrderIntent("c3", "BTCUSDT", Side.BUY, 1.0, price=100.0))
    await m.drain()
    assert mo.state is S.FILLED and m.position_delta("BTCUSDT") == 1.0 and m.stats["resolved"] == 1

    async def broken(symbol, client_order_id):
        raise ExchangeUnavailable("HTTP 503", status=503)

    c2 = FakeClient(ExchangeUnavailable("timeout"))
    c2.get_order = broken
    m2 = OrderManager(c2, FakeJournal(), sleep=lambda s: asyncio.sleep(0))
    mo2 = await m2.submit(OrderIntent("c4", "BTCUSDT", Side.BUY, 1.0, price=100.0))
    await m2.drain()
    assert mo2.state is S.UNKNOWN
