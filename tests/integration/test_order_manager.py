"""OrderManager end to end against the local Binance-compatible exchange (USD-M, real sockets).

The journal here is a small in-memory implementation of the manager's journal protocol (the SQL
journal is tested on its own). A proxy between client and exchange makes the faults the exchange does
not make by itself: an order whose answer is lost, and an order request lost before it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal

import aiohttp
import pytest

from orderflow.adapters.binance.common.config import TradingClientConfig
from orderflow.adapters.binance.common.signing import Credentials
from orderflow.adapters.binance.trading.client import BinanceTradingClient, sequential_ids
from orderflow.adapters.binance.userstream import UserDataStream
from orderflow.core.events import Side
from orderflow.execution.orders import OrderIntent, OrderManager, OrderState
from support.httpfault import RestFaultProxy


class MemoryJournal:
    """The journal protocol in memory: records by client id and every call in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.recs: dict[str, dict] = {}

    def record_intent(self, order: OrderIntent, run_id: int = 0) -> None:
        self.calls.append(("intent", order.client_order_id))
        self.recs[order.client_order_id] = {
            "client_order_id": order.client_order_id,
            "symbol": order.symbol,
            "side": "BUY" if order.side is Side.BUY else "SELL",
            "quantity": order.quantity,
            "price": order.price,
            "state": "pending_new",
            "created_ns": order.ts_created,
        }

    def mark_sent(self, cid: str, ts: int) -> None:
        self.calls.append(("sent", cid))
        self.recs[cid]["sent_ns"] = ts

    def apply_report(self, cid, state, filled, avg, exchange_id, ts, reason) -> None:
        self.calls.append(("report", cid, state, filled))
        self.recs[cid].update(state=state, filled_qty=filled, avg_price=avg, exchange_order_id=exchange_id)

    def record_fill(self, cid, trade_id, price, qty, ts, **kw) -> None:
        self.calls.append(("fill", cid, qty))

    def open_orders(self) -> list[dict]:
        return [r for r in self.recs.values() if r["state"] in ("new", "partially_filled")]

    def unresolved_intents(self) -> list[dict]:
        return [r for r in self.recs.values() if r["state"] in ("pending_new", "unknown")]

    def fills(self, client_order_id: str) -> list[dict]:
        return []

    def states(self, cid: str) -> list[str]:
        return [c[2] for c in self.calls if c[0] == "report" and c[1] == cid]


@pytest.fixture
def exchange():
    from orderflow.execution.local.testing import running_local_exchange

    with running_local_exchange(source="sim", seed=0, clock="manual", market="usdm") as ex:
        yield ex


def make_client(ex, rest_url: str | None = None, token: str = "0", **cfg) -> BinanceTradingClient:
    config = TradingClientConfig(
        market="usdm", rest_base_url=rest_url or ex.rest_url, ws_base_url=ex.ws_url, **cfg
    )
    return BinanceTradingClient(
        config, Credentials.hmac(ex.api_key, ex.api_secret), client_id_gen=sequential_ids("om", token)
    )


async def top(c: BinanceTradingClient, sym: str) -> tuple[float, float]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{c.config.rest_base_url}/fapi/v1/depth?symbol={sym}&limit=5") as r,
    ):
        b = await r.json()
    return float(b["bids"][0][0]), float(b["asks"][0][0])


def far_bid(c: BinanceTradingClient, sym: str, bid: float) -> tuple[float, float]:
    """A price 10 % under the bid on the tick grid, and a quantity of about twice the min notional."""
    f = c.filters[sym]
    px = (Decimal(str(bid)) * Decimal("0.9") / f.tick_size).to_integral_value("ROUND_FLOOR") * f.tick_size
    q = (f.min_notional * 2 / px / f.step_size).to_integral_value("ROUND_FLOOR") * f.step_size + f.step_size
    return float(px), float(max(q, f.min_qty))


async def wait_for(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_submit_fill_cancel_flow_with_journal_order(exchange):
    j = MemoryJournal()
    done, fills = [], []
    async with make_client(exchange) as c:
        sym = next(iter(c.filters))
        stream = UserDataStream(c)
        async with stream:
            await asyncio.wait_for(stream.connected.wait(), 10)
            m = OrderManager(c, j, on_fill=lambda o, f: fills.append(f), on_done=done.append)
            runner = asyncio.create_task(m.run(stream))
            bid, ask = await top(c, sym)
            px, qty = far_bid(c, sym, bid)
            rest = await m.submit(m.intent(sym, Side.BUY, qty, "LIMIT", px))
            assert rest.state is OrderState.NEW and rest.exchange_id > 0
            cid = rest.client_order_id
            assert j.calls[:3] == [("intent", cid), ("sent", cid), ("report", cid, "new", 0.0)]
            assert m.open_orders(sym) == [rest]
            mkt = await m.submit(m.intent(sym, Side.BUY, qty, "MARKET", ref_price=ask))
            await wait_for(lambda: mkt.state is OrderState.FILLED)
            assert mkt.filled_qty == pytest.approx(qty) and mkt.avg_price > 0
            assert j.calls.index(("intent", mkt.client_order_id)) < j.calls.index(
                ("sent", mkt.client_order_id)
            )
            await asyncio.sleep(0.3)  # the stream's copies of the fill arrive and are dropped
            assert sum(f.qty for f in fills) == pytest.approx(qty)
            assert sum(x[2] for x in j.calls if x[0] == "fill") == pytest.approx(qty)
            assert m.position_delta(sym) == pytest.approx(qty)
            canceled = await m.cancel_all(sym)
            assert [o.state for o in canceled] == [OrderState.CANCELED] and m.open_orders(sym) == []
            assert j.states(cid) == ["new", "canceled"] and done == [mkt, rest]
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


@pytest.mark.slow
async def test_lost_answer_goes_unknown_and_is_resolved_by_query_not_resent(exchange):
    j = MemoryJournal()
    async with (
        RestFaultProxy(exchange.rest_url) as proxy,
        make_client(exchange, rest_url=proxy.url, recv_window_ms=1000, request_timeout_s=5) as c,
    ):
        sym = next(iter(c.filters))
        m = OrderManager(c, j)
        bid, _ = await top(c, sym)
        px, qty = far_bid(c, sym, bid)
        proxy.drop_answer = True
        mo = await m.submit(m.intent(sym, Side.BUY, qty, "LIMIT", px))
        assert mo.state is OrderState.UNKNOWN
        await m.drain()
        assert mo.state is OrderState.NEW and mo.exchange_id > 0 and proxy.order_posts == 1
        assert j.states(mo.client_order_id) == ["unknown", "new"] and m.stats["resolved"] == 1
        proxy.drop_request = True  # this one never reaches the exchange
        lost = await m.submit(m.intent(sym, Side.BUY, qty, "LIMIT", px))
        t0 = time.monotonic()
        await m.drain()
        assert lost.state is OrderState.REJECTED and lost.reason.startswith("not received")
        assert time.monotonic() - t0 >= 1.0  # waited for recvWindow before concluding
        assert proxy.order_posts == 1 and j.states(lost.client_order_id) == ["unknown", "rejected"]
        open_ids = {o.client_order_id for o in await c.open_orders(sym)}
        assert mo.client_order_id in open_ids and lost.client_order_id not in open_ids
        await m.cancel_all(sym)


async def test_reconcile_after_restart_adopts_orders_placed_before(exchange):
    j = MemoryJournal()
    async with make_client(exchange, token="a", recv_window_ms=1000) as c1:
        sym = next(iter(c1.filters))
        m1 = OrderManager(c1, j)
        bid, _ = await top(c1, sym)
        px, qty = far_bid(c1, sym, bid)
        kept = await m1.submit(m1.intent(sym, Side.BUY, qty, "LIMIT", px))
        gone = await m1.submit(m1.intent(sym, Side.BUY, qty, "LIMIT", px))
        assert kept.state is gone.state is OrderState.NEW
        # crash: an intent journaled but never sent
        never = m1.intent(sym, Side.BUY, qty, "LIMIT", px, ts_created=c1.server_clock.local_ns() - 10**10)
        j.record_intent(never)
    # while the engine is down the order "gone" is cancelled (e.g. by an operator)
    async with make_client(exchange, token="b", recv_window_ms=1000) as c2:
        await c2.cancel_order(sym, client_order_id=gone.client_order_id)
        m2 = OrderManager(c2, j)
        report = await m2.reconcile()
        by_id = {ch.client_order_id: ch for ch in report.checked}
        assert by_id[kept.client_order_id].action == "adopted_open"
        assert by_id[gone.client_order_id].action == "adopted_done"
        assert by_id[gone.client_order_id].new_state is OrderState.CANCELED
        assert by_id[never.client_order_id].action == "not_received"
        assert by_id[never.client_order_id].new_state is OrderState.REJECTED
        assert {ch.client_order_id for ch in report.changed} == {gone.client_order_id, never.client_order_id}
        assert report.unresolved == [] and report.foreign == []
        adopted = m2.open_orders(sym)
        assert [o.client_order_id for o in adopted] == [kept.client_order_id]
        assert adopted[0].intent.quantity == pytest.approx(qty) and adopted[0].exchange_id == kept.exchange_id
        await m2.cancel_all(sym)
        assert j.recs[kept.client_order_id]["state"] == "canceled"
        assert not await c2.open_orders(sym)


async def test_cost_control_reprices_a_stale_order_and_cancels_a_far_one(exchange):
    import numpy as np

    from orderflow.execution import costs

    j = MemoryJournal()
    async with make_client(exchange) as c:
        sym = next(iter(c.filters))
        f = c.filters[sym]
        tick = float(f.tick_size)
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{c.config.rest_base_url}/fapi/v1/depth?symbol={sym}&limit=20") as r,
        ):
            b = await r.json()
        bids = np.array([[float(p), float(q)] for p, q in b["bids"]])
        asks = np.array([[float(p), float(q)] for p, q in b["asks"]])
        mid = float(0.5 * (bids[0, 0] + asks[0, 0]))
        px_far, qty = far_bid(c, sym, bids[0, 0])
        stale_px = round(bids[0, 0] - 2 * tick, 10)
        m = OrderManager(c, j)
        X = m.X
        taker = costs.decide("x", 1, stale_px, qty, mid, 1.0, bids, asks, tick, X).cost
        ev = 0.8 * taker / m.config.max_cost_share_of_ev  # budget = 0.8 x the cost of completing by taking
        stale = await m.submit(m.intent(sym, Side.BUY, qty, "LIMIT", stale_px, ev=ev, ref_price=mid))
        far = await m.submit(m.intent(sym, Side.BUY, qty, "LIMIT", px_far, ev=ev, ref_price=mid))
        plain = await m.submit(m.intent(sym, Side.BUY, qty, "LIMIT", px_far))  # no EV: not cost-controlled
        decisions = {d.client_order_id: d for d in await m.on_book(sym, bids, asks)}
        assert (decisions[stale.client_order_id].action, decisions[stale.client_order_id].ticks) == (
            "reprice",
            2,
        )
        assert decisions[far.client_order_id].reason == "beyond_reprice_ticks"
        assert plain.client_order_id not in decisions and plain.state is OrderState.NEW
        assert stale.state is far.state is OrderState.CANCELED
        new = m.orders[f"{stale.client_order_id}-r1"]
        assert new.state is OrderState.NEW and new.intent.price == pytest.approx(bids[0, 0])
        assert new.intent.parent_id == stale.client_order_id and new.intent.quantity == pytest.approx(qty)
        assert new.intent.ev == pytest.approx(ev)
        open_ids = {o.client_order_id for o in await c.open_orders(sym)}
        assert open_ids == {new.client_order_id, plain.client_order_id}
        await m.cancel_all(sym)
