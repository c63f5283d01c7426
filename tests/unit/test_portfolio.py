"""Portfolio kernels: increase / reduce / close / flip arithmetic by hand, funding at 00:00 / 08:00 /
16:00 UTC crossings, equity, and a hypothesis check of equity against a cash ledger."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.execution import portfolio as PF
from orderflow.execution.portfolio import Portfolio
from orderflow.execution.sim_config import SimConfig

H = 3_600_000_000_000
EIGHT_H = 8 * H


def utc(y, m, d, hh=0, mm=0) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def test_increase_reduce_close_by_hand():
    p = Portfolio(1000.0)
    assert p.apply_fill(+1, 1.0, 100.0, 0.05) == 0.0
    assert p.apply_fill(+1, 3.0, 104.0, 0.10) == 0.0
    assert p.position == 4.0 and p.avg_price == pytest.approx(103.0)  # (100 + 3 * 104) / 4
    # reduce 1 at 110: realized 1 * (110 - 103) = 7; the rest keeps avg 103
    assert p.apply_fill(-1, 1.0, 110.0, 0.02) == pytest.approx(7.0)
    assert p.position == 3.0 and p.avg_price == pytest.approx(103.0)
    # equity at 105: 1000 + 7 + 3 * (105 - 103) - 0.17 fees = 1012.83
    assert p.equity(105.0) == pytest.approx(1012.83)
    # close 3 at 101: realized 3 * (101 - 103) = -6, total 1
    assert p.apply_fill(-1, 3.0, 101.0, 0.03) == pytest.approx(-6.0)
    assert p.position == 0.0 and math.isnan(p.avg_price)
    assert p.realized_pnl == pytest.approx(1.0) and p.fees == pytest.approx(0.20)
    assert p.equity(50.0) == pytest.approx(1000.0 + 1.0 - 0.20)  # flat: the mark does not matter
    snap = p.snapshot()
    assert snap.fills == 4 and snap.volume == pytest.approx(100 + 312 + 110 + 303)


def test_flip_long_to_short_and_short_reduce():
    p = Portfolio(0.0)
    p.apply_fill(+1, 2.0, 100.0, 0.0)
    # sell 5 at 90: closes 2 (realized 2 * (90 - 100) = -20) and opens 3 short at 90
    assert p.apply_fill(-1, 5.0, 90.0, 0.0) == pytest.approx(-20.0)
    assert p.position == -3.0 and p.avg_price == 90.0
    # buy 1 at 80 reduces the short: realized 1 * (80 - 90) * -1 = +10
    assert p.apply_fill(+1, 1.0, 80.0, 0.0) == pytest.approx(10.0)
    assert p.position == -2.0 and p.avg_price == 90.0
    # short increase: avg (2 * 90 + 2 * 70) / 4 = 80
    p.apply_fill(-1, 2.0, 70.0, 0.0)
    assert p.avg_price == pytest.approx(80.0)
    assert p.unrealized(75.0) == pytest.approx(-4.0 * (75.0 - 80.0))  # +20
    # buy 6 at 85 flips to long 2 at 85: realized 4 * (85 - 80) * -1 = -20
    assert p.apply_fill(+1, 6.0, 85.0, 0.0) == pytest.approx(-20.0)
    assert p.position == pytest.approx(2.0) and p.avg_price == 85.0
    assert p.realized_pnl == pytest.approx(-20.0 + 10.0 - 20.0)


def test_close_leaves_exact_zero_after_float_noise():
    p = Portfolio(0.0)
    p.apply_fill(+1, 0.3, 10.0, 0.0)
    p.apply_fill(-1, 0.1, 10.0, 0.0)
    p.apply_fill(-1, 0.2, 10.0, 0.0)  # 0.3 - 0.1 - 0.2 = 2.8e-17 in floats
    assert p.position == 0.0 and math.isnan(p.avg_price)


def test_funding_at_00_08_16_utc_crossings():
    assert PF.fundings_crossed(utc(2024, 1, 1, 7), utc(2024, 1, 1, 17), EIGHT_H) == 2  # 08:00 and 16:00
    assert PF.fundings_crossed(utc(2024, 1, 1, 8), utc(2024, 1, 1, 15, 59), EIGHT_H) == 0  # 08:00 already
    assert PF.fundings_crossed(utc(2024, 1, 1, 7, 59), utc(2024, 1, 1, 8), EIGHT_H) == 1  # at 08:00 exactly
    assert PF.fundings_crossed(utc(2024, 1, 1, 23), utc(2024, 1, 2, 1), EIGHT_H) == 1  # midnight
    assert PF.fundings_crossed(utc(2024, 1, 1, 1), utc(2024, 1, 3, 1), EIGHT_H) == 6
    long = Portfolio(1000.0)
    long.apply_fill(+1, 2.0, 100.0, 0.0)
    # two fundings, each 2 * 100 * 0.0001 = 0.02: longs pay 0.04
    paid = long.funding(utc(2024, 1, 1, 7), utc(2024, 1, 1, 17), mark=100.0, rate=0.0001, interval_ns=EIGHT_H)
    assert paid == pytest.approx(0.04) and long.funding_paid == pytest.approx(0.04)
    assert long.equity(100.0) == pytest.approx(1000.0 - 0.04)
    short = Portfolio(1000.0)
    short.apply_fill(-1, 2.0, 100.0, 0.0)
    assert short.funding(utc(2024, 1, 1, 7), utc(2024, 1, 1, 9), 100.0, 0.0001, EIGHT_H) == pytest.approx(
        -0.02
    )
    assert short.equity(100.0) == pytest.approx(1000.02)  # shorts receive
    flat = Portfolio(1000.0)
    assert flat.funding(utc(2024, 1, 1, 7), utc(2024, 1, 1, 9), 100.0, 0.0001, EIGHT_H) == 0.0


def test_funding_settings_come_from_the_config():
    C = SimConfig().to_record()[0]
    assert C["funding_ns"] == EIGHT_H and C["funding_rate"] == 0.0001
    assert SimConfig(venue="binance-spot").to_record()[0]["funding_rate"] == 0.0  # spot: no funding


def test_wrapper_validates_inputs():
    p = Portfolio(10.0)
    with pytest.raises(ValueError, match="side"):
        p.apply_fill(0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="qty"):
        p.apply_fill(1, -1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="interval_ns"):
        p.funding(0, 1, 1.0, 0.0001, 0)


@settings(max_examples=200, deadline=None)
@given(
    fills=st.lists(
        st.tuples(
            st.sampled_from([1, -1]),
            st.integers(1, 500).map(lambda n: n / 100),
            st.integers(5_000, 15_000).map(lambda n: n / 100),
            st.floats(0, 1),
        ),
        min_size=1,
        max_size=30,
    ),
    mark=st.floats(10, 300),
)
def test_equity_equals_the_cash_ledger(fills, mark):
    """Average-cost accounting and a plain cash ledger agree: equity(mark) = initial - sum(side * qty *
    price) - fees + position * mark; the kernel called directly gives the wrapper's numbers."""
    p = Portfolio(500.0)
    P = np.zeros(PF.N_P)
    PF.reset(P, 500.0)
    cash, pos = 500.0, 0.0
    for side, qty, price, fee in fills:
        r = p.apply_fill(side, qty, price, fee)
        assert PF.apply_fill(P, side, qty, price, fee) == r
        cash -= side * qty * price + fee
        pos += side * qty
    assert p.position == pytest.approx(pos, abs=1e-9)
    assert p.equity(mark) == pytest.approx(cash + pos * mark, rel=1e-9, abs=1e-6)
    assert np.array_equal(P, p.P, equal_nan=True)
