"""The trading core's execution: entries as parents of whole lots, TWAP children of market orders above
the depth share, passive post-only children at the touch with a time limit, cost control that reprices
a stale limit, and the end of a parent when a child fills nothing."""

from __future__ import annotations

import numpy as np
import pytest

from orderflow.backtest.config import VenueAccountConfig
from orderflow.core.instruments import Instrument
from orderflow.core.orders import CancelRequest, OrderRequest, OrderType, TimeInForce
from orderflow.engine.session import TradingSession
from orderflow.execution.exec_config import ExecutionConfig
from orderflow.risk.config import RiskConfig
from orderflow.strategy import layout as STL
from orderflow.strategy.config import StrategyConfig

NS = 1_000_000_000
INST = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001, 5.0)
L = 5


def kind(req: OrderRequest | CancelRequest) -> str:
    """What the core asked for: "cancel", "market" (IOC) or "limit" (post-only GTC)."""
    if isinstance(req, CancelRequest):
        return "cancel"
    if req.order_type is OrderType.LIMIT:
        assert req.post_only and req.time_in_force is TimeInForce.GTC
        return "limit"
    assert req.order_type is OrderType.MARKET and req.time_in_force is TimeInForce.IOC and not req.post_only
    return "market"


def book(bid: float, size: float = 0.05) -> tuple[np.ndarray, ...]:
    bp = bid - 0.1 * np.arange(L)
    ap = bid + 0.1 + 0.1 * np.arange(L)
    sz = np.full(L, size)
    return bp, sz.copy(), ap, sz.copy()


def session(execution: ExecutionConfig) -> TradingSession:
    strategy = StrategyConfig(ev_cost_mult=0.0, confidence_gate=0.55, quality_gate=0.0, pyramid=False)
    risk = RiskConfig(max_position=0.5, max_loss_per_trade=0.03, var95_limit=1.0, min_trade_interval_s=0.0)
    return TradingSession(INST, "binance-usdm", 0.0005, 0.0, 8 * 3600 * NS, strategy, risk,
                          VenueAccountConfig(), execution=execution, maker_fee=0.0002)  # fmt: skip


def tick(s: TradingSession, t_s: float, bid: float = 60_000.0, size: float = 0.05):
    """One book event at t_s seconds with a strong buy signal."""
    t = int(t_s * NS)
    s.on_trade(t)
    bp, bs, ap, az = book(bid, size)
    return s.on_book(t, t, True, 6.0, 0.05, 0.9, 5.0, 1.0, 0.0, 0.5, bp, bs, ap, az)


def fill(s: TradingSession, req, t_s: float, qty: float | None = None, maker: bool = False) -> None:
    q = req.qty if qty is None else qty
    if q > 0:
        s.on_fill(int(t_s * NS), req.side, q, req.price if maker else 60_000.1, 0.0, maker)
    s.on_report(req.order_id, True)


def test_market_entry_above_the_depth_share_goes_out_as_twap_children():
    s = session(ExecutionConfig(max_share_of_depth=0.2, depth_levels=5, twap_duration_s=20.0))
    first = tick(s, 1.0)
    assert first is not None and kind(first) == "market" and first.side == 1
    # visible ask depth 5 x 0.05 = 0.25: children of at most 20 % of it
    assert first.qty <= 0.05 + 1e-12
    fill(s, first, 1.1)
    children, times = [first], [1.0]
    t = 1.0
    while t < 40.0:  # before the 60 s timeout barrier
        t += 0.25
        r = tick(s, t)
        if r is None:
            continue
        assert kind(r) == "market" and r.side == 1 and not r.reduce_only
        children.append(r)
        times.append(t)
        fill(s, r, t + 0.1)
    n = len(children)
    assert 2 <= n <= 20
    assert [c.order_id for c in children] == list(range(first.order_id, first.order_id + n))
    step = 20.0 / n
    assert min(np.diff(times)) >= step - 1e-9  # spread over the duration, not sent at once
    assert times[-1] - times[0] <= 20.0 + 0.5
    assert all(c.qty == pytest.approx(first.qty) for c in children[:-1])
    assert 0 < children[-1].qty <= first.qty + 1e-12
    assert s.P[0] == pytest.approx(sum(c.qty for c in children))
    assert int(s.G[STL.G_ENTRIES]) == 1  # one entry, many orders


def test_a_market_child_that_fills_nothing_ends_its_parent():
    s = session(ExecutionConfig(max_share_of_depth=0.2, twap_duration_s=10.0))
    first = tick(s, 1.0)
    assert first is not None and first.qty < 0.5
    entries = int(s.G[STL.G_ENTRIES])
    fill(s, first, 1.1, qty=0.0)  # IOC with nothing taken
    for k in range(2, 30):
        r = tick(s, float(k))
        if r is not None:  # only a fresh entry (a new parent, counted as one) may follow
            assert int(s.G[STL.G_ENTRIES]) == entries + 1
            break
    else:
        pytest.fail("the strategy never entered again")


def test_passive_entry_rests_at_the_touch_and_is_cancelled_when_its_time_is_up():
    s = session(ExecutionConfig(entry_style="passive", passive_ttl_s=5.0, max_share_of_depth=1.0,
                                max_cost_share_of_ev=10.0))  # fmt: skip
    r = tick(s, 1.0)
    assert r is not None and kind(r) == "limit" and r.side == 1 and r.price == pytest.approx(60_000.0)
    for k in range(2, 6):
        assert tick(s, float(k)) is None  # rests: nothing new, no cancel yet
    c = tick(s, 6.5)
    assert c is not None and kind(c) == "cancel" and c.order_id == r.order_id
    assert tick(s, 7.0) is None  # one cancel only
    entries = int(s.G[STL.G_ENTRIES])
    fill(s, r, 7.1, qty=0.0)  # cancelled with nothing filled: the parent ends
    nxt = tick(s, 8.0)
    assert nxt is not None and kind(nxt) == "limit"  # the signal holds: a new entry (a new parent)
    assert int(s.G[STL.G_ENTRIES]) == entries + 1 and s.P[0] == 0.0


# Costs per unit at 60,000 with these fees: resting at the touch ~ -0.05 + 12 (maker fee); a bid one
# tick behind costs what taking the book now costs ~ 0.15 + 30 (taker fee). The signal's expected value
# is ~10.6 per unit, so a budget of 2 x EV keeps a limit at the touch and reprices a stale one.
REPRICE = ExecutionConfig(
    entry_style="passive",
    passive_ttl_s=60.0,
    max_reprice_ticks=2,
    max_cost_share_of_ev=2.0,
    max_share_of_depth=1.0,
)


def test_a_stale_passive_limit_is_repriced_to_the_new_touch():
    s = session(REPRICE)
    r = tick(s, 1.0)
    assert r is not None and kind(r) == "limit"
    assert tick(s, 1.5) is None  # at the touch: within budget
    entries = int(s.G[STL.G_ENTRIES])
    # the market moves up one tick: the resting bid is behind the touch -> reprice (cancel, re-post)
    c = tick(s, 2.0, bid=60_000.1)
    assert c is not None and kind(c) == "cancel" and c.order_id == r.order_id
    fill(s, r, 2.1, qty=0.0)
    again = tick(s, 3.0, bid=60_000.1)
    assert again is not None and kind(again) == "limit" and again.order_id == r.order_id + 1
    assert again.price == pytest.approx(60_000.1) and again.qty == pytest.approx(r.qty)
    assert int(s.G[STL.G_ENTRIES]) == entries  # the same parent, not a new entry


def test_partial_fills_of_passive_children_leave_the_rest_for_the_next_child():
    s = session(REPRICE)
    r = tick(s, 1.0, size=1.0)  # a deep book: one child for the whole entry
    assert r is not None and kind(r) == "limit" and r.qty >= 0.002
    part = round(r.qty / 2, 3)
    s.on_fill(int(1.5 * NS), 1, part, r.price, 0.0, True)
    c = tick(s, 2.0, bid=60_000.1, size=1.0)  # stale by one tick: reprice
    assert c is not None and kind(c) == "cancel"
    s.on_report(r.order_id, True)
    rest = tick(s, 3.0, bid=60_000.1, size=1.0)
    assert rest is not None and kind(rest) == "limit" and rest.price == pytest.approx(60_000.1)
    assert rest.qty == pytest.approx(r.qty - part)
    assert s.P[0] == pytest.approx(part)


def test_passive_entry_above_the_depth_share_rests_as_iceberg_clips():
    s = session(REPRICE.model_copy(update={"max_share_of_depth": 0.2, "iceberg_clip_share": 0.1}))
    r = tick(s, 1.0)  # own-side depth 0.25: clips of 0.025
    assert r is not None and kind(r) == "limit" and r.qty == pytest.approx(0.025)
    fill(s, r, 1.2, maker=True)
    nxt = tick(s, 1.5)
    assert nxt is not None and kind(nxt) == "limit" and nxt.order_id == r.order_id + 1
    assert nxt.qty == pytest.approx(0.025) and int(s.G[STL.G_ENTRIES]) == 1


def test_a_passive_limit_beyond_the_reprice_ticks_is_cancelled_and_its_parent_ends():
    s = session(REPRICE)
    r = tick(s, 1.0)
    assert r is not None and kind(r) == "limit"
    entries = int(s.G[STL.G_ENTRIES])
    c = tick(s, 2.0, bid=60_000.5)  # five ticks away
    assert c is not None and kind(c) == "cancel"
    s.on_report(r.order_id, True)
    nxt = tick(s, 3.0, bid=60_000.5)
    assert nxt is not None and kind(nxt) == "limit"  # the signal holds: a new entry, not the old parent
    assert int(s.G[STL.G_ENTRIES]) == entries + 1


def test_a_limit_at_the_touch_costing_more_than_the_budget_is_cancelled_at_once():
    s = session(REPRICE.model_copy(update={"max_cost_share_of_ev": 0.5}))  # 12 > 0.5 x 10.6
    r = tick(s, 1.0)
    assert r is not None and kind(r) == "limit"
    c = tick(s, 1.5)
    assert c is not None and kind(c) == "cancel" and c.order_id == r.order_id


def test_signal_without_a_volatility_percentile_is_invalid_not_a_risk_refusal():
    """vol_pct is undefined until its ring of 1 s closes is full: an entry signal then is refused by the
    validity gate (the risk engine never sees a NaN input), and entries resume once it is defined."""
    from orderflow.risk import layout as RL

    s = session(ExecutionConfig())
    bp, bs, ap, az = book(60_000.0)
    for k in range(5):
        t = (k + 1) * NS
        s.on_trade(t)
        assert s.on_book(t, t, True, 6.0, 0.05, 0.9, 5.0, 1.0, 0.0, float("nan"), bp, bs, ap, az) is None
    assert int(s.G[STL.G_REJ0 + STL.GATE_INVALID]) == 5
    assert int(s.RS[RL.S_REFUSED0 + RL.BAD_INPUT]) == 0
    t = 6 * NS
    s.on_trade(t)
    req = s.on_book(t, t, True, 6.0, 0.05, 0.9, 5.0, 1.0, 0.0, 0.5, bp, bs, ap, az)
    assert req is not None and req.side == 1 and not req.reduce_only
