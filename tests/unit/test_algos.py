"""Slicing planners (TWAP, iceberg), cost control and allocation, checked by hand and by invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.adapters.binance.trading.events import OrderType
from orderflow.core.events import Side
from orderflow.execution import algos as A
from orderflow.execution import costs as C
from orderflow.execution.allocation import SignalRequest, allocate
from orderflow.execution.exec_config import ExecutionConfig
from orderflow.execution.orders import OrderIntent

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
X = ExecutionConfig().to_record()[0]  # max share 0.2, TWAP 60 s / 20 children, clip 0.1, reprice 2 ticks


def parent(qty: float, side: Side = Side.BUY, otype: OrderType = OrderType.LIMIT, price: float = 100.0):
    return OrderIntent("of-abc-7", "BTCUSDT", side, qty, otype, price)


# -- TWAP ------------------------------------------------------------------------------------------------
def test_twap_by_hand_equal_children_remainder_last_and_times():
    s = A.TwapSlicer.plan(parent(1.0), depth=2.0, lot=0.001, start_ns=T0, X=X)
    # allowed = 0.2 * 2.0 = 0.4 -> ceil(1.0 / 0.4) = 3 children of 333, 333, 334 lots
    assert s.reason == "above_depth_share"
    assert [c.quantity for c in s.children] == [0.333, 0.333, 0.334]
    assert s.times_ns == [T0, T0 + 20 * NS, T0 + 40 * NS]
    assert [c.client_order_id for c in s.children] == ["of-abc-7-t0", "of-abc-7-t1", "of-abc-7-t2"]
    assert all(c.parent_id == "of-abc-7" and c.price == 100.0 for c in s.children)
    assert s.due(T0) == s.children[:1] and s.due(T0 + 20 * NS - 1) == []
    assert s.due(T0 + 60 * NS) == s.children[1:] and s.done


def test_twap_children_capped_and_remainder_in_the_last():
    s = A.TwapSlicer.plan(parent(0.103), depth=0.01, lot=0.001, start_ns=T0, X=X)
    # allowed 2 lots -> 52 children wanted, capped at 20: 19 x 5 lots and 103 - 95 = 8 lots
    assert len(s.children) == 20
    assert [c.quantity for c in s.children[:19]] == [0.005] * 19 and s.children[-1].quantity == 0.008
    assert s.times_ns[1] - s.times_ns[0] == 3 * NS


def test_twap_within_share_is_not_sliced_and_no_depth_is():
    s = A.TwapSlicer.plan(parent(0.3), depth=2.0, lot=0.001, start_ns=T0, X=X)
    assert s.reason == "within_depth_share" and s.children == [parent(0.3)]
    s = A.TwapSlicer.plan(parent(0.003), depth=0.0, lot=0.001, start_ns=T0, X=X)
    assert s.reason == "no_visible_depth" and [c.quantity for c in s.children] == [0.001, 0.001, 0.001]


def test_side_depth_uses_the_queue_joined_or_the_side_taken():
    bids, asks = np.array([1.0, 2.0, 3.0, np.nan]), np.array([5.0, 6.0])
    assert A.side_depth(parent(1.0), bids, asks, 2) == 3.0
    assert A.side_depth(parent(1.0, otype=OrderType.MARKET), bids, asks, 5) == 11.0
    assert A.side_depth(parent(1.0, Side.SELL), bids, asks, 5) == 11.0
    assert A.side_depth(parent(1.0, Side.SELL, OrderType.MARKET), bids, asks, 9) == 6.0


@settings(max_examples=200, deadline=None)
@given(
    lots_total=st.integers(1, 5000),
    lot=st.sampled_from([0.001, 0.01, 1.0, 0.00001]),
    depth_lots=st.integers(0, 10_000),
    nmax=st.integers(2, 50),
)
def test_twap_plan_invariants(lots_total, lot, depth_lots, nmax):
    x = ExecutionConfig(twap_max_children=nmax).to_record()[0]
    q, t = np.zeros(nmax), np.zeros(nmax, dtype=np.int64)
    qty = lots_total * lot
    n = A.twap_plan(qty, lot, depth_lots * lot, x, T0, q, t)
    assert 1 <= n <= nmax and (n >= 2 or lots_total == 1)
    child_lots = np.round(q[:n] / lot)
    assert np.allclose(q[:n], child_lots * lot) and child_lots.min() >= 1
    assert child_lots.sum() == lots_total
    assert (child_lots[:-1] == child_lots[0]).all() and child_lots[-1] >= child_lots[0]
    assert (np.diff(t[:n]) >= 0).all() and t[0] == T0 and t[n - 1] < T0 + 60 * NS


# -- iceberg ---------------------------------------------------------------------------------------------
def test_iceberg_clips_by_hand():
    out = np.zeros(100)
    clip = A.iceberg_clip(1.05, 0.001, 2.0, X)  # 0.1 * 2.0 = 0.2
    assert clip == pytest.approx(0.2)
    n = A.iceberg_plan(1.05, 0.001, clip, out)
    assert n == 6 and np.allclose(out[:n], [0.2] * 5 + [0.05])
    assert A.iceberg_clip(0.0005, 0.001, 2.0, X) == 0.0  # below one lot: nothing to show
    assert A.iceberg_clip(1.0, 0.001, 0.001, X) == pytest.approx(0.001)  # at least one lot


def test_iceberg_refreshes_at_the_touch_when_a_clip_fills():
    s = A.IcebergSlicer.plan(parent(0.5), depth=2.0, lot=0.001, tick=0.1, X=X)
    c1 = s.first(100.0, 100.1, T0)
    assert (c1.client_order_id, c1.quantity, c1.price, c1.parent_id) == (
        "of-abc-7-i1",
        0.2,
        100.0,
        "of-abc-7",
    )
    c2 = s.on_clip_done(0.2, 100.5, 100.6, T0 + 1)
    assert (c2.client_order_id, c2.quantity, c2.price) == ("of-abc-7-i2", 0.2, 100.5)
    c3 = s.on_clip_done(0.2, 100.4, 100.5, T0 + 2)
    assert (c3.quantity, c3.price) == (0.1, 100.4)
    assert s.on_clip_done(0.1, 100.4, 100.5, T0 + 3) is None and s.remaining == 0.0


def test_iceberg_offset_behind_the_touch_for_both_sides():
    x = ExecutionConfig(iceberg_offset_ticks=2).to_record()[0]
    b = A.IcebergSlicer.plan(parent(1.0), 2.0, 0.001, 0.1, x).first(100.0, 100.1, T0)
    s = A.IcebergSlicer.plan(parent(1.0, Side.SELL), 2.0, 0.001, 0.1, x).first(100.0, 100.1, T0)
    assert b.price == pytest.approx(99.8) and s.price == pytest.approx(100.3)


# -- cost control ----------------------------------------------------------------------------------------
BIDS = np.array([[100.0, 1.0], [99.9, 2.0]])
ASKS = np.array([[100.1, 1.0], [100.2, 2.0]])
MID = 100.05


def dec(price, qty, ev, ref=MID, side=1, bids=BIDS, asks=ASKS):
    return C.decide("c1", side, price, qty, ref, ev, bids, asks, 0.1, X)


def test_market_order_cost_components_by_hand():
    d = dec(math.nan, 2.0, 1.0)
    # 1 @ 100.1 + 1 @ 100.2: spread (100.1 - 100.05) * 2, slippage 200.3 - 200.2, taker fee 5 bp
    assert (d.spread, d.slippage, d.fee) == pytest.approx((0.1, 0.1, 0.10015))
    assert d.cost == pytest.approx(0.30015) and d.budget == 0.5
    assert (d.action, d.reason) == ("keep", "within_budget")


def test_too_costly_market_order_is_repriced_passive_at_the_touch():
    d = dec(math.nan, 2.0, 0.5)
    assert (d.action, d.reason, d.new_price) == ("reprice", "repriced", 100.0)
    assert d.new_cost == pytest.approx(-0.1 + 0.0002 * 200.0)


def test_stale_passive_order_reprice_within_ticks_else_cancel():
    d = dec(99.8, 2.0, 0.5)  # 2 ticks behind the bid: completing costs the taker walk (0.30015)
    assert d.cost == pytest.approx(0.30015) and (d.action, d.new_price, d.ticks) == ("reprice", 100.0, 2)
    d = dec(99.7, 2.0, 0.5)
    assert (d.action, d.reason, d.ticks, d.tick_limit) == ("cancel", "beyond_reprice_ticks", 3, 2)


def test_cancel_reasons():
    assert dec(100.0, 2.0, 0.0).reason == "ev_nonpositive"
    d = dec(100.0, 2.0, 0.5, ref=99.0)  # the market ran up since the decision
    assert (d.action, d.reason) == ("cancel", "at_touch_too_costly") and d.cost == pytest.approx(2.04)
    d = dec(99.9, 2.0, 0.5, ref=99.5)
    assert (d.action, d.reason) == ("cancel", "still_too_costly")
    assert d.cost == pytest.approx(1.2 + 0.1 + 0.10015) and d.new_cost == pytest.approx(1.04)


def test_marketable_limit_walks_to_its_limit_and_rests_the_rest():
    d = dec(100.1, 2.0, 10.0)
    assert (d.spread, d.slippage, d.fee) == pytest.approx((0.1, 0.0, 0.0007 * 100.1))
    d = dec(100.2, 3.0, 0.8)
    assert d.cost == pytest.approx(0.15 + 0.2 + 0.0005 * 300.5)
    assert (d.action, d.new_price, d.new_cost) == ("reprice", 100.0, pytest.approx(-0.15 + 0.06))


def test_sell_side_mirrors_and_no_book_keeps():
    d = dec(math.nan, 2.0, 0.5, side=-1)  # 1 @ 100.0 + 1 @ 99.9
    assert (d.spread, d.slippage) == pytest.approx((0.1, 0.1)) and d.new_price == 100.1
    d = dec(100.0, 1.0, 1.0, asks=np.zeros((0, 2)))
    assert (d.action, d.reason) == ("keep", "no_book")


# -- allocation ------------------------------------------------------------------------------------------
def sig(symbol, conf, notional):
    return SignalRequest(symbol, Side.BUY, conf, notional)


@pytest.mark.slow
def test_allocation_symbol_cap_and_floor_by_hand():
    a = allocate([sig("BTC", 0.9, 1000), sig("ETH", 0.7, 1000), sig("SOL", 0.5, 100)], 1000.0)
    # weights 0.4 / 0.2 -> 666.7 / 333.3; BTC capped at 0.5 * 1000, the rest goes to ETH
    assert [x.notional for x in a] == pytest.approx([500.0, 500.0, 0.0])
    assert [x.reason for x in a] == ["symbol_cap", "proportional", "below_floor"]
    assert (a[0].value, a[0].limit) == (500.0, 500.0) and (a[2].value, a[2].limit) == (0.5, 0.5)


def test_allocation_request_caps_redistribute_by_hand():
    caps = {"BTC": 1e9, "ETH": 1e9}
    a = allocate(
        [sig("BTC", 0.9, 100), sig("ETH", 0.6, 2000), sig("BTC", 0.8, 300)], 1000.0, symbol_caps=caps
    )
    # weights 0.4 / 0.1 / 0.3 -> 500 / 125 / 375; requests 100 and 300 bind; ETH takes the 600 left
    assert [x.notional for x in a] == pytest.approx([100.0, 600.0, 300.0])
    assert [x.reason for x in a] == ["request_cap", "proportional", "request_cap"]


def test_allocation_proportional_when_budget_is_short_and_zero_requests():
    a = allocate(
        [sig("BTC", 0.9, 1000), sig("ETH", 0.7, 1000), sig("XRP", 0.95, 0)],
        300.0,
        ExecutionConfig(alloc_max_symbol_share=1.0),
    )
    assert [x.notional for x in a] == pytest.approx([200.0, 100.0, 0.0])
    assert a[2].reason == "no_request"


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 3), st.floats(0, 1), st.floats(0, 5000)), min_size=1, max_size=12),
    budget=st.floats(0, 10_000),
    share=st.floats(0.05, 1.0),
)
def test_allocation_invariants(rows, budget, share):
    cfg = ExecutionConfig(alloc_max_symbol_share=share)
    sigs = [sig(f"S{s}", c, n) for s, c, n in rows]
    a = allocate(sigs, budget, cfg)
    tot = sum(x.notional for x in a)
    assert tot <= budget + 1e-6
    for x in a:
        assert -1e-9 <= x.notional <= x.signal.notional + 1e-6
        if x.signal.confidence <= cfg.alloc_confidence_floor:
            assert x.notional == 0.0
    for s in {x.signal.symbol for x in a}:
        assert sum(x.notional for x in a if x.signal.symbol == s) <= share * budget + 1e-6
    prop = [x for x in a if x.reason == "proportional"]
    ratios = [x.notional / (x.signal.confidence - cfg.alloc_confidence_floor) for x in prop]
    assert all(r == pytest.approx(ratios[0], rel=1e-6, abs=1e-6) for r in ratios)
    if prop:  # someone could still take more: the budget is used up
        assert tot == pytest.approx(budget, rel=1e-9, abs=1e-6)
