"""Simulated exchange: taker walks, queue position and queue models, stop-limits, latency, cancel races,
reduce-only, rejections, kernel-vs-wrapper equality and a hypothesis property on fills."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from orderflow.execution import sim_kernels as SK
from orderflow.execution.sim_config import LatencyConfig, SimConfig, default_fees
from orderflow.execution.sim_exchange import SimulatedExchange
from orderflow.execution.sim_layout import (
    FF_FEE,
    FF_PRICE,
    FF_QTY,
    FI_TS_EX,
    FI_TS_ST,
    I_BAD_TRADES,
    I_LOST_FILLS,
    I_NFILL,
    I_NREP,
    REASONS,
    RI_ID,
    RI_REASON,
    RI_STATUS,
    RI_TS_ST,
    STATUSES,
    make_state,
)

MS = 1_000_000
L = 5
TAKER = 0.0005  # binance-usdm defaults
MAKER = 0.0002


def cfg0(**kw) -> SimConfig:
    """Zero latency unless given."""
    lat = kw.pop("latency", LatencyConfig(entry_ms=0.0, response_ms=0.0))
    return SimConfig(latency=lat, **kw)


def book(x: SimulatedExchange, ts: int, bids, asks) -> None:
    """Top levels from (price, size) pairs, padded with NaN."""

    def side(levels):
        px = np.full(x.levels, np.nan)
        sz = np.full(x.levels, np.nan)
        for i, (p, s) in enumerate(levels[: x.levels]):
            px[i], sz[i] = p, s
        return px, sz

    bp, bs = side(bids)
    ap, as_ = side(asks)
    x.on_book(ts, bp, bs, ap, as_)


ASKS = [(100.1, 1.0), (100.2, 2.0), (100.3, 4.0)]
BIDS = [(100.0, 5.0), (99.9, 3.0)]


def reasons(x: SimulatedExchange, oid: int | None = None) -> list[str]:
    return [r.reason for r in x.drain_reports() if oid is None or r.order_id == oid]


# --------------------------------------------------------------------------------------- config
def test_default_fees_and_config_array():
    assert default_fees("binance-usdm") == (0.0002, 0.0005)
    assert default_fees("binance-spot") == (0.001, 0.001)
    assert default_fees("sim") == default_fees("binance-usdm")
    with pytest.raises(ValueError, match="unknown venue"):
        default_fees("kraken")
    C = SimConfig(venue="binance-spot", latency=LatencyConfig(entry_ms=2.5)).to_record()
    assert C.shape == (1,) and C[0]["maker_fee"] == 0.001 and C[0]["taker_fee"] == 0.001
    assert C[0]["entry_ns"] == 2_500_000
    assert SimConfig(maker_fee=-0.0001).to_record()[0]["maker_fee"] == -0.0001
    with pytest.raises(ValueError, match="funding_interval_h"):
        SimConfig(funding_interval_h=5)
    with pytest.raises(ValueError, match="extra"):
        SimConfig(latncy=1)


# ----------------------------------------------------------------------------------- taker walks
def test_market_order_walks_levels_at_book_prices_and_taken_size_is_not_reused():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.submit_market(1, +1, 2.5, ts=0)
    x.submit_market(2, +1, 2.5, ts=0)
    x.on_trade(1, 100.1, 0.01, +1)  # next market event: both arrive, same book state
    fills = x.drain_fills()
    got = [(f.order_id, f.price, f.qty, f.maker) for f in fills]
    # order 1 takes 1.0 @ 100.1 and 1.5 @ 100.2; order 2 finds only 0.5 left @ 100.2, then 2.0 @ 100.3
    assert got == [
        (1, 100.1, 1.0, False),
        (1, 100.2, 1.5, False),
        (2, 100.2, 0.5, False),
        (2, 100.3, 2.0, False),
    ]
    for f in fills:
        assert f.fee == pytest.approx(TAKER * f.qty * f.price, rel=1e-12)
    o1, o2 = x.order(1), x.order(2)
    assert o1.status == "FILLED" and o1.avg_price == pytest.approx(
        (100.1 * 1.0 + 100.2 * 1.5) / 2.5
    )  # 100.16
    assert o2.avg_price == pytest.approx((100.2 * 0.5 + 100.3 * 2.0) / 2.5)  # 100.28
    # a new book event gives the liquidity back
    book(x, 2, BIDS, ASKS)
    x.submit_market(3, +1, 1.0, ts=2)
    x.on_trade(3, 100.1, 0.01, +1)
    assert [(f.price, f.qty) for f in x.drain_fills()] == [(100.1, 1.0)]


def test_market_remainder_beyond_visible_levels_expires():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.submit_market(7, -1, 10.0, ts=0)  # sells into 5.0 + 3.0 of bids
    book(x, 1, BIDS, ASKS)
    assert [(f.price, f.qty) for f in x.drain_fills()] == [(100.0, 5.0), (99.9, 3.0)]
    rep = x.drain_reports()[-1]
    assert (rep.status, rep.reason, rep.value, rep.limit) == ("EXPIRED", "expired", 2.0, 10.0)
    o = x.order(7)
    assert o.status == "EXPIRED" and o.filled == 8.0 and o.remaining == 2.0
    assert x.position == -8.0


def test_ioc_limit_takes_up_to_its_price_then_expires():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.submit_limit(1, +1, 100.2, 4.0, ts=0, tif="IOC")
    book(x, 1, BIDS, ASKS)
    assert [(f.price, f.qty) for f in x.drain_fills()] == [(100.1, 1.0), (100.2, 2.0)]
    o = x.order(1)
    assert (o.status, o.filled, o.remaining) == ("EXPIRED", 3.0, 1.0)


def test_gtc_limit_crossing_takes_then_rests_at_its_price():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.submit_limit(1, +1, 100.1, 3.0, ts=0)
    book(x, 1, BIDS, [(100.2, 2.0)])
    fills = x.drain_fills()
    assert [(f.price, f.qty, f.maker) for f in fills] == [(100.1, 1.0, False)]
    o = x.order(1)
    assert o.status == "PARTIALLY_FILLED" and o.queue_ahead == 0.0  # new level at 100.1: nothing ahead


# ---------------------------------------------------------------------------------- resting orders
def test_limit_does_not_fill_before_the_volume_ahead_has_traded():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.submit_limit(1, +1, 100.0, 1.0, ts=0)
    book(x, 1, BIDS, ASKS)
    assert x.order(1).queue_ahead == 5.0
    x.on_trade(2, 100.0, 3.0, -1)
    x.on_trade(3, 100.0, 2.0, +1)  # buyer aggressor at our bid: not our side, queue unchanged
    x.on_trade(4, 100.0, 1.9, -1)
    assert x.drain_fills() == []
    assert x.order(1).queue_ahead == pytest.approx(0.1)
    x.on_trade(5, 100.0, 0.5, -1)
    (f,) = x.drain_fills()
    assert f.qty == pytest.approx(0.4) and f.price == 100.0 and f.maker
    assert f.fee == pytest.approx(MAKER * 0.4 * 100.0)
    assert f.remaining == pytest.approx(0.6)
    assert x.order(1).status == "PARTIALLY_FILLED"


def test_trade_through_fills_up_to_trade_size_at_order_price():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.submit_limit(1, +1, 100.0, 2.0, ts=0)
    book(x, 1, BIDS, ASKS)
    x.on_trade(2, 99.9, 1.5, -1)  # printed below our bid: everything at 100.0 is gone
    (f,) = x.drain_fills()
    assert (f.price, f.qty, f.maker) == (100.0, 1.5, True)
    assert x.order(1).queue_ahead == 0.0


def test_one_trade_fills_our_orders_at_most_once_in_total():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, [(100.0, 0.0)], ASKS)
    x.submit_limit(1, +1, 100.0, 1.0, ts=0)
    x.submit_limit(2, +1, 100.0, 1.0, ts=0)
    book(x, 1, [(100.0, 0.0)], ASKS)
    x.on_trade(2, 100.0, 1.5, -1)
    assert [(f.order_id, f.qty) for f in x.drain_fills()] == [(1, 1.0), (2, 0.5)]


def test_book_crossing_fills_at_order_price():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.submit_limit(1, -1, 100.2, 2.0, ts=0)
    x.submit_limit(2, -1, 100.3, 1.0, ts=0)
    book(x, 1, BIDS, ASKS)
    book(x, 2, [(100.2, 1.0)], [(100.25, 1.0)])  # best bid reaches order 1's price (at), not order 2's
    fills = x.drain_fills()
    assert [(f.order_id, f.price, f.qty, f.maker) for f in fills] == [(1, 100.2, 2.0, True)]
    book(x, 3, [(100.4, 1.0)], [(100.5, 1.0)])  # through order 2
    assert [(f.order_id, f.price) for f in x.drain_fills()] == [(2, 100.3)]


def test_post_only_crossing_is_rejected_with_numbers():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.submit_limit(1, +1, 100.1, 1.0, ts=0, post_only=True)
    x.submit_limit(2, +1, 100.05, 1.0, ts=0, post_only=True)
    book(x, 1, BIDS, ASKS)
    reps = x.drain_reports()
    r1 = [r for r in reps if r.order_id == 1][-1]
    assert (r1.status, r1.reason, r1.value, r1.limit) == ("REJECTED", "post_only", 100.1, 100.1)
    assert x.order(1).status == "REJECTED"
    assert x.order(2).status == "NEW" and x.drain_fills() == []


def test_unknown_aggressor_is_inferred_from_mid():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.submit_limit(1, +1, 100.0, 1.0, ts=0)
    book(x, 1, [(100.0, 0.0), *BIDS[1:]], ASKS)  # nothing ahead (size 0 shown)
    x.on_trade(2, 100.0, 0.3, 0)  # below mid 100.05: a seller
    assert [f.qty for f in x.drain_fills()] == [pytest.approx(0.3)]


def test_order_deeper_than_visible_levels_waits_until_its_level_is_shown():
    x = SimulatedExchange(cfg0(), levels=2)
    book(x, 0, BIDS, ASKS)  # two bid levels shown: 100.0, 99.9
    x.submit_limit(1, +1, 99.5, 1.0, ts=0)
    book(x, 1, BIDS, ASKS)
    assert math.isinf(x.order(1).queue_ahead)
    x.on_trade(2, 99.5, 10.0, -1)  # unknown queue: no fill
    assert x.drain_fills() == []
    book(x, 3, [(99.6, 1.0), (99.5, 2.0)], ASKS)
    assert x.order(1).queue_ahead == 2.0


# ------------------------------------------------------------------------------------ queue models
def _queue_after_cancel(model: str, last_level: float) -> float:
    """Order joins behind 2.0; 6.0 joins behind it; then the level drops to ``last_level`` with no
    trade (a pure cancellation of 8 - last_level)."""
    x = SimulatedExchange(cfg0(queue_model=model), levels=L)
    book(x, 0, [(100.0, 2.0)], ASKS)
    x.submit_limit(1, +1, 100.0, 1.0, ts=0)
    book(x, 1, [(100.0, 2.0)], ASKS)
    book(x, 2, [(100.0, 8.0)], ASKS)
    assert x.order(1).queue_ahead == 2.0
    book(x, 3, [(100.0, last_level)], ASKS)
    return x.order(1).queue_ahead


def test_queue_models_share_of_a_pure_cancellation():
    # cancel 4.0 with ahead 2.0, behind 6.0
    assert _queue_after_cancel("risk_averse", 4.0) == 2.0
    # power n=2: share 2^2 / (2^2 + 6^2) = 0.1 -> 2 - 0.1 * 4 = 1.6
    assert _queue_after_cancel("power", 4.0) == pytest.approx(1.6)
    # log: share ln3 / (ln3 + ln7) -> 2 - 4 * share
    share = math.log(3.0) / (math.log(3.0) + math.log(7.0))
    assert _queue_after_cancel("log", 4.0) == pytest.approx(2.0 - 4.0 * share)
    # queue_ahead never exceeds the level: risk_averse clamps to the 1.0 left
    assert _queue_after_cancel("risk_averse", 1.0) == 1.0


def test_power_exponent_is_configurable():
    x = SimulatedExchange(cfg0(queue_model="power", queue_power=1.0), levels=L)
    book(x, 0, [(100.0, 2.0)], ASKS)
    x.submit_limit(1, +1, 100.0, 1.0, ts=0)
    book(x, 1, [(100.0, 8.0)], ASKS)
    book(x, 2, [(100.0, 4.0)], ASKS)
    assert x.order(1).queue_ahead == pytest.approx(2.0 - 4.0 * 2.0 / 8.0)  # share 2 / (2 + 6)


def test_decrease_explained_by_trades_is_not_a_cancellation():
    x = SimulatedExchange(cfg0(queue_model="power"), levels=L)
    book(x, 0, [(100.0, 5.0)], ASKS)
    x.submit_limit(1, +1, 100.0, 1.0, ts=0)
    book(x, 1, [(100.0, 10.0)], ASKS)  # 5 ahead, 5 behind
    x.on_trade(2, 100.0, 3.0, -1)
    assert x.order(1).queue_ahead == 2.0
    book(x, 3, [(100.0, 7.0)], ASKS)  # 10 - 3 traded = 7: nothing cancelled
    assert x.order(1).queue_ahead == 2.0


# ------------------------------------------------------------------------------------- stop-limits
def test_stop_limit_triggers_at_or_through_the_stop_then_fills_as_a_limit():
    x = SimulatedExchange(cfg0(), levels=L)
    asks = [(101.2, 0.5), (101.4, 2.0), (101.6, 5.0)]
    book(x, 0, [(100.9, 1.0)], asks)
    x.submit_stop_limit(1, +1, stop_price=101.0, price=101.5, qty=1.0, ts=0)
    x.submit_stop_limit(2, -1, stop_price=99.0, price=98.0, qty=1.0, ts=0)
    x.on_trade(1, 100.9, 1.0, +1)
    x.on_trade(2, 99.5, 1.0, -1)
    assert x.drain_fills() == []
    assert x.order(1).status == "NEW" and not x.order(1).triggered
    x.on_trade(3, 101.0, 1.0, +1)  # at the stop
    fills = x.drain_fills()
    assert [(f.order_id, f.price, f.qty, f.maker) for f in fills] == [
        (1, 101.2, 0.5, False),
        (1, 101.4, 0.5, False),
    ]
    trig = [r for r in x.drain_reports() if r.reason == "triggered"]
    assert [(r.order_id, r.value, r.limit) for r in trig] == [(1, 101.0, 101.0)]
    assert x.order(1).triggered and x.order(1).status == "FILLED"
    assert x.order(2).status == "NEW"
    book(x, 4, [(97.9, 1.0)], asks)
    x.on_trade(5, 98.9, 1.0, -1)  # through the sell stop; no bid at or above its 98.0 limit: it rests
    o2 = x.order(2)
    assert o2.triggered and o2.status == "NEW" and o2.queue_ahead == 0.0
    assert x.drain_fills() == []


# ---------------------------------------------------------------------------------------- latency
def test_order_is_not_active_before_entry_latency_and_fills_carry_both_times():
    x = SimulatedExchange(cfg0(latency=LatencyConfig(entry_ms=5.0, response_ms=7.0)), levels=L)
    book(x, 0, BIDS, [(100.0 + 1, 1.0)])
    x.submit_market(1, +1, 1.0, ts=0)
    book(x, 4 * MS, BIDS, [(102.0, 1.0)])
    assert x.order(1).status == "PENDING_NEW" and x.drain_fills() == []
    book(x, 5 * MS, BIDS, [(103.0, 1.0)])  # arrives at 5 ms: matched against the book of 4 ms
    (f,) = x.drain_fills()
    assert (f.price, f.ts_exchange, f.ts_strategy) == (102.0, 5 * MS, 12 * MS)
    # resting limit: trades before its arrival do not touch it
    x.submit_limit(2, +1, 100.0, 1.0, ts=10 * MS)
    x.on_trade(11 * MS, 100.0, 9.0, -1)
    assert x.order(2).status == "PENDING_NEW"
    book(x, 15 * MS, [(100.0, 0.0)], [(103.0, 1.0)])
    x.on_trade(16 * MS, 100.0, 0.25, -1)
    (f,) = x.drain_fills()
    assert (f.qty, f.ts_exchange, f.ts_strategy) == (0.25, 16 * MS, 23 * MS)


def test_drain_upto_delivers_only_what_the_strategy_has_received():
    x = SimulatedExchange(cfg0(latency=LatencyConfig(entry_ms=1.0, response_ms=10.0)), levels=L)
    book(x, 0, BIDS, ASKS)
    x.submit_market(1, +1, 0.5, ts=0)
    book(x, 2 * MS, BIDS, ASKS)  # fill at 1 ms, reaches the strategy at 11 ms
    assert x.drain_fills(upto=10 * MS) == []
    assert [f.ts_strategy for f in x.drain_fills(upto=11 * MS)] == [11 * MS]
    assert x.drain_fills() == []


def _lognormal_run(seed: int) -> list[tuple[int, int]]:
    lat = LatencyConfig(kind="lognormal", entry_ms=5.0, response_ms=5.0, sigma=0.8, seed=seed)
    x = SimulatedExchange(cfg0(latency=lat), levels=L)
    book(x, 0, BIDS, ASKS)
    for i in range(20):
        x.submit_limit(i, +1, 99.0, 1.0, ts=i * MS)
        x.cancel(i, ts=i * MS + 1)
    book(x, 10_000 * MS, BIDS, ASKS)
    return [(r.ts_exchange, r.ts_strategy) for r in x.drain_reports()]


def test_lognormal_latency_is_deterministic_for_a_seed():
    a, b, c = _lognormal_run(1), _lognormal_run(1), _lognormal_run(2)
    assert a == b and a != c
    arrivals = [te for te, _ in a[::2]]  # accepted reports: exchange time of each order's arrival
    delays = [te - i * MS for i, te in enumerate(arrivals)]
    assert len(set(delays)) > 1  # random, not constant
    assert all(t2 >= t1 for (t1, _), (t2, _) in itertools.pairwise(a))  # FIFO arrivals


# ----------------------------------------------------------------------------------------- cancels
def test_cancel_racing_a_fill_leaves_the_order_filled():
    x = SimulatedExchange(cfg0(latency=LatencyConfig(entry_ms=5.0, response_ms=0.0)), levels=L)
    book(x, 0, [(100.0, 0.0)], ASKS)
    x.submit_limit(1, +1, 100.0, 1.0, ts=0)
    book(x, 6 * MS, [(100.0, 0.0)], ASKS)
    x.cancel(1, ts=10 * MS)  # arrives at 15 ms
    assert x.order(1).status == "PENDING_CANCEL"
    x.on_trade(12 * MS, 100.0, 2.0, -1)  # fills before the cancel arrives
    assert x.order(1).status == "FILLED"
    book(x, 16 * MS, [(100.0, 0.0)], ASKS)
    rep = x.drain_reports()[-1]
    assert (rep.order_id, rep.status, rep.reason) == (1, "FILLED", "cancel_not_open")
    assert x.order(1).status == "FILLED" and x.open_orders() == []


def test_cancel_that_arrives_first_wins():
    x = SimulatedExchange(cfg0(latency=LatencyConfig(entry_ms=5.0, response_ms=0.0)), levels=L)
    book(x, 0, [(100.0, 0.0)], ASKS)
    x.submit_limit(1, +1, 100.0, 1.0, ts=0)
    x.cancel(1, ts=1 * MS)  # arrives at 6 ms, after the order (5 ms)
    x.on_trade(7 * MS, 100.0, 2.0, -1)
    assert x.drain_fills() == []
    o = x.order(1)
    assert (o.status, o.remaining) == ("CANCELED", 1.0)
    assert reasons(x) == ["accepted", "canceled"]
    x.cancel(1, ts=8 * MS)  # no longer open: answered, not dropped
    (r,) = x.drain_reports()
    assert (r.status, r.reason) == ("UNKNOWN", "cancel_not_open")


# ------------------------------------------------------------------------------ rejections, flags
def test_duplicate_live_id_is_rejected_and_the_original_is_untouched():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.submit_limit(1, +1, 99.0, 1.0, ts=0)
    x.submit_limit(1, -1, 101.0, 2.0, ts=0)
    book(x, 1, BIDS, ASKS)
    reps = x.drain_reports()
    dup = [r for r in reps if r.reason == "duplicate_id"]
    assert len(dup) == 1 and dup[0].status == "REJECTED" and dup[0].value == 1.0
    o = x.order(1)
    assert (o.side, o.price, o.status) == (1, 99.0, "NEW")
    x.cancel(1, ts=1)
    book(x, 2, BIDS, ASKS)
    x.submit_limit(1, -1, 101.0, 2.0, ts=2)  # id free again once the first order is final
    book(x, 3, BIDS, ASKS)
    assert x.order(1).side == -1 and x.order(1).status == "NEW"


def test_invalid_requests_are_rejected_with_value_and_limit():
    x = SimulatedExchange(cfg0(), levels=L)
    x.submit_limit(1, +1, 100.0, 0.0, ts=0)
    x.submit_limit(2, +1, -5.0, 1.0, ts=0)
    x.submit_market(3, 0, 1.0, ts=0)
    x.submit_market(4, +1, math.nan, ts=0)
    got = [(r.order_id, r.status, r.reason, r.value, r.limit) for r in x.drain_reports()]
    assert got[:2] == [(1, "REJECTED", "invalid_qty", 0.0, 0.0), (2, "REJECTED", "invalid_price", -5.0, 0.0)]
    assert got[2][:3] == (3, "REJECTED", "invalid_side")
    assert got[3][:3] == (4, "REJECTED", "invalid_qty") and math.isnan(got[3][3])
    assert x.order(1).status == "REJECTED"


def test_bad_trades_are_counted_not_applied():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, [(100.0, 0.0)], ASKS)
    x.submit_limit(1, +1, 100.0, 1.0, ts=0)
    book(x, 1, [(100.0, 0.0)], ASKS)
    x.on_trade(2, 100.0, -1.0, -1)
    x.on_trade(3, math.nan, 1.0, -1)
    assert x.state.I[I_BAD_TRADES] == 2 and x.drain_fills() == []


def test_order_table_full_is_a_rejection():
    x = SimulatedExchange(cfg0(max_orders=2), levels=L)
    for i in range(3):
        x.submit_limit(i, +1, 99.0, 1.0, ts=0)
    r = x.drain_reports()[-1]
    assert (r.order_id, r.reason, r.value, r.limit) == (2, "too_many_orders", 2.0, 2.0)


def test_reduce_only_is_trimmed_to_the_position_and_never_flips_it():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.set_position(1.0)
    x.submit_market(1, -1, 2.0, ts=0, reduce_only=True)  # would flip to -1: trimmed to 1
    book(x, 1, BIDS, ASKS)
    reps = [r for r in x.drain_reports() if r.order_id == 1]
    trim = [r for r in reps if r.reason == "reduce_only_trimmed"]
    assert len(trim) == 1 and (trim[0].value, trim[0].limit) == (2.0, 1.0)
    assert reps[-1].status == "FILLED"
    assert [(f.price, f.qty) for f in x.drain_fills()] == [(100.0, 1.0)]
    assert x.position == 0.0 and x.order(1).qty == 1.0
    # flat: a reduce-only order is rejected (value = position, limit 0)
    x.submit_market(2, -1, 1.0, ts=1, reduce_only=True)
    book(x, 2, BIDS, ASKS)
    (r,) = x.drain_reports()
    assert (r.order_id, r.status, r.reason, r.value, r.limit) == (2, "REJECTED", "reduce_only", 0.0, 0.0)
    # same side as the position: rejected too
    x.set_position(-0.5)
    x.submit_market(3, -1, 1.0, ts=2, reduce_only=True)
    book(x, 3, BIDS, ASKS)
    (r,) = x.drain_reports()
    assert (r.order_id, r.status, r.reason, r.value) == (3, "REJECTED", "reduce_only", -0.5)
    assert x.order(3).status == "REJECTED" and x.drain_fills() == []


def test_resting_reduce_only_is_capped_when_the_position_shrinks():
    x = SimulatedExchange(cfg0(), levels=L)
    book(x, 0, BIDS, ASKS)
    x.set_position(1.0)
    x.submit_limit(1, -1, 100.1, 1.0, ts=0, reduce_only=True)
    x.submit_market(2, -1, 0.6, ts=0)  # another order reduces the position to 0.4
    book(x, 1, [(100.0, 5.0)], [(100.1, 0.0)])
    x.on_trade(2, 100.1, 3.0, +1)
    fills = [f for f in x.drain_fills() if f.order_id == 1]
    assert [f.qty for f in fills] == [pytest.approx(0.4)]
    assert x.position == 0.0
    o = x.order(1)
    assert o.status == "EXPIRED" and o.filled == pytest.approx(0.4)


def test_full_output_buffer_raises():
    x = SimulatedExchange(cfg0(), levels=L, fill_capacity=1)
    book(x, 0, BIDS, ASKS)
    x.submit_market(1, +1, 2.5, ts=0)  # two fills
    with pytest.raises(BufferError, match="1 fills"):
        book(x, 1, BIDS, ASKS)


# ------------------------------------------------------------------------ kernels == the wrapper
EV_BOOK, EV_TRADE, EV_SUBMIT, EV_CANCEL = range(4)


@njit(cache=True)
def _replay(S, EI, EF, books):
    """The backtester's way: a compiled loop calling the kernels. EI: kind, ts, id, type, side, tif,
    post_only, reduce_only; EF: price, stop, qty/size."""
    for k in range(EI.shape[0]):
        kind = EI[k, 0]
        ts = EI[k, 1]
        if kind == EV_BOOK:
            SK.on_book(S, ts, books[k, 0], books[k, 1], books[k, 2], books[k, 3])
        elif kind == EV_TRADE:
            SK.on_trade(S, ts, EF[k, 0], EF[k, 2], EI[k, 4])
        elif kind == EV_SUBMIT:
            SK.submit_order(
                S, ts, EI[k, 2], EI[k, 3], EI[k, 4], EF[k, 0], EF[k, 1], EF[k, 2], EI[k, 5], EI[k, 6] == 1,
                EI[k, 7] == 1,
            )  # fmt: skip
        else:
            SK.cancel_order(S, ts, EI[k, 2])


def _scenario(rng: np.random.Generator, n: int, levels: int):
    """Random events around a moving mid on a 0.1 tick; ids 0..19."""
    EI = np.zeros((n, 8), dtype=np.int64)
    EF = np.full((n, 3), np.nan)
    books = np.full((n, 4, levels), np.nan)
    mid, ts = 1000.0, 0
    for k in range(n):
        ts += int(rng.integers(0, 3 * MS))
        kind = rng.choice(4, p=[0.35, 0.35, 0.2, 0.1]) if k else EV_BOOK
        EI[k, :2] = kind, ts
        if kind == EV_BOOK:
            mid = round(mid + 0.1 * rng.integers(-2, 3), 1)
            books[k, 0] = mid - 0.05 - 0.1 * np.arange(levels)
            books[k, 1] = rng.uniform(0.0, 3.0, levels).round(3)
            books[k, 2] = mid + 0.05 + 0.1 * np.arange(levels)
            books[k, 3] = rng.uniform(0.0, 3.0, levels).round(3)
        elif kind == EV_TRADE:
            EF[k, 0] = round(mid + 0.05 * rng.choice([-3, -1, 1, 3]), 2)
            EF[k, 2] = round(rng.uniform(0.01, 4.0), 3)
            EI[k, 4] = rng.choice([-1, 0, 1])
        elif kind == EV_SUBMIT:
            otype = rng.choice(3)
            side = rng.choice([-1, 1])
            EI[k, 2:8] = (
                rng.integers(0, 20),
                otype,
                side,
                rng.choice(2),
                rng.random() < 0.2,
                rng.random() < 0.1,
            )
            EF[k, 0] = round(mid + side * 0.05 * rng.choice([-5, -3, -1, 1, 3]), 2)
            EF[k, 1] = round(mid + side * 0.05 * rng.choice([1, 3]), 2)
            EF[k, 2] = round(rng.uniform(0.01, 3.0), 3)
        else:
            EI[k, 2] = rng.integers(0, 20)
    return EI, EF, books


def _drive_wrapper(x: SimulatedExchange, EI, EF, books) -> None:
    from orderflow.execution.sim_layout import ORDER_TYPES, TIFS

    for k in range(EI.shape[0]):
        kind, ts = int(EI[k, 0]), int(EI[k, 1])
        if kind == EV_BOOK:
            x.on_book(ts, *books[k])
        elif kind == EV_TRADE:
            x.on_trade(ts, EF[k, 0], EF[k, 2], int(EI[k, 4]))
        elif kind == EV_SUBMIT:
            oid, otype, side, tif = (int(v) for v in EI[k, 2:6])
            po, ro = bool(EI[k, 6]), bool(EI[k, 7])
            if ORDER_TYPES[otype] == "LIMIT":
                x.submit_limit(oid, side, EF[k, 0], EF[k, 2], ts, post_only=po, reduce_only=ro, tif=TIFS[tif])
            elif ORDER_TYPES[otype] == "MARKET":
                x.submit_market(oid, side, EF[k, 2], ts, reduce_only=ro)
            else:
                x.submit_stop_limit(
                    oid, side, EF[k, 1], EF[k, 0], EF[k, 2], ts, reduce_only=ro, tif=TIFS[tif]
                )
        else:
            x.cancel(int(EI[k, 2]), ts)


def test_compiled_loop_and_wrapper_give_identical_fills_and_reports():
    lat = LatencyConfig(kind="lognormal", entry_ms=1.0, response_ms=2.0, sigma=0.7, seed=11)
    cfg = cfg0(latency=lat, queue_model="log")
    EI, EF, books = _scenario(np.random.default_rng(5), 600, L)
    S = make_state(cfg, L, fill_capacity=20_000, report_capacity=20_000)
    _replay(S, EI, EF, books)
    x = SimulatedExchange(cfg, levels=L)
    _drive_wrapper(x, EI, EF, books)
    fills, reps = x.drain_fills(), x.drain_reports()
    nf, nr = int(S.I[I_NFILL]), int(S.I[I_NREP])
    assert nf == len(fills) > 20 and nr == len(reps) > 50
    order = np.argsort(S.FI[:nf, FI_TS_ST], kind="stable")
    for i, f in zip(order, fills, strict=True):
        assert (int(S.FI[i, FI_TS_EX]), int(S.FI[i, FI_TS_ST])) == (f.ts_exchange, f.ts_strategy)
        assert (S.FF[i, FF_PRICE], S.FF[i, FF_QTY], S.FF[i, FF_FEE]) == (f.price, f.qty, f.fee)
    korder = np.argsort(S.RI[:nr, RI_TS_ST], kind="stable")
    got = [(STATUSES[S.RI[i, RI_STATUS]], REASONS[S.RI[i, RI_REASON]], int(S.RI[i, RI_ID])) for i in korder]
    assert got == [(r.status, r.reason, r.order_id) for r in reps]
    assert S.I[I_LOST_FILLS] == 0


# ------------------------------------------------------------------------------------ properties
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), queue=st.sampled_from(["risk_averse", "power", "log"]))
def test_fills_never_exceed_qty_nor_cross_the_limit(seed, queue):
    EI, EF, books = _scenario(np.random.default_rng(seed), 150, L)
    x = SimulatedExchange(cfg0(latency=LatencyConfig(entry_ms=0.5, response_ms=0.5), queue_model=queue), L)
    filled: dict[tuple[int, int, int], float] = {}  # per order instance (ids are reused)
    for k in range(EI.shape[0]):
        _drive_wrapper(x, EI[k : k + 1], EF[k : k + 1], books[k : k + 1])
        if EI[k, 0] == EV_BOOK:  # queue_ahead never exceeds the displayed size at the order's price
            for o in x.open_orders():
                if o.status in ("NEW", "PARTIALLY_FILLED") and math.isfinite(o.queue_ahead):
                    side_px = books[k, 0] if o.side == 1 else books[k, 2]
                    side_sz = books[k, 1] if o.side == 1 else books[k, 3]
                    at = np.isclose(side_px, o.price, rtol=1e-9, atol=0)
                    if at.any():
                        assert o.queue_ahead <= side_sz[at][0] + 1e-12
        touched = {}
        for f in x.drain_fills():
            rec = x.order(f.order_id)  # the order as it is after this event
            key = (rec.order_id, rec.ts_submit, rec.ts_arrive)
            filled[key] = filled.get(key, 0.0) + f.qty
            touched[key] = rec
            assert f.qty > 0 and f.side == rec.side
            assert f.remaining == pytest.approx(rec.qty - filled[key], abs=1e-9)
            if rec.type != "MARKET":  # never worse than the limit; maker fills at the order's price
                assert (f.price <= rec.price + 1e-9) if f.side == 1 else (f.price >= rec.price - 1e-9)
                if f.maker:
                    assert f.price == rec.price
        for key, rec in touched.items():
            assert filled[key] == pytest.approx(rec.filled, abs=1e-9)  # fills add up to the order's filled
            assert rec.filled <= rec.qty * (1 + 1e-9)
            assert rec.filled + rec.remaining == pytest.approx(rec.qty, abs=1e-12)
            assert (rec.status == "FILLED") == (rec.remaining <= 1e-9 * rec.qty)
