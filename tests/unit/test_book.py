"""OrderBook against a plain dict reference: any sequence of level updates gives the same levels,
best prices and top-N, including band re-centring, far levels and off-grid prices."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.core.book import OrderBook


def ref_top(levels: dict[float, float], n: int, is_bid: bool) -> list[tuple[float, float]]:
    keys = sorted(levels, reverse=is_bid)[:n]
    return [(k, levels[k]) for k in keys]


def apply_ref(ref: dict[float, float], updates) -> None:
    for p, q in updates:
        if q > 0:
            ref[p] = q
        else:
            ref.pop(p, None)


tick_steps = st.integers(min_value=-400, max_value=400)
sizes = st.sampled_from([0.0, 0.0, 0.001, 0.5, 1.25, 7.0])
updates = st.lists(st.tuples(tick_steps, sizes), max_size=12)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(updates, updates), min_size=1, max_size=30),
    st.sampled_from([(0.1, 1), (0.01, 2), (0.5, 1)]),
    st.integers(min_value=8, max_value=64),
)
def test_book_matches_dict_reference(steps, tick_dec, band):
    tick, dec = tick_dec
    book = OrderBook(tick, band_ticks=band)  # tiny bands force re-centring and far levels
    center = 60000.0
    rb: dict[float, float] = {}
    ra: dict[float, float] = {}
    book.load(
        [(round(center - tick * k, dec), 1.0) for k in range(1, 6)],
        [(round(center + tick * k, dec), 1.0) for k in range(1, 6)],
        1,
    )
    apply_ref(rb, [(round(center - tick * k, dec), 1.0) for k in range(1, 6)])
    apply_ref(ra, [(round(center + tick * k, dec), 1.0) for k in range(1, 6)])
    for uid, (bu, au) in enumerate(steps, 2):
        b = [(round(center - tick * (abs(k) + 1), dec), q) for k, q in bu]
        a = [(round(center + tick * (abs(k) + 1), dec), q) for k, q in au]
        book.apply(b, a, uid)
        apply_ref(rb, b)
        apply_ref(ra, a)
        assert book.bids == rb
        assert book.asks == ra
        bids, asks = book.top(7)
        assert list(bids) == ref_top(rb, 7, True)
        assert list(asks) == ref_top(ra, 7, False)
        assert book.update_id == uid


def test_off_grid_prices_and_crossing_levels():
    book = OrderBook(0.1, band_ticks=16)
    book.load([(100.0, 1.0), (99.9, 2.0)], [(100.1, 3.0)], 5)
    book.apply([(100.05, 4.0)], [], 6)  # off the tick grid: kept exactly, not snapped
    assert book.best_bid() == (100.05, 4.0)
    book.apply([], [(100.05, 1.0)], 7)
    assert book.is_crossed()
    book.apply([(100.05, 0.0)], [(100.05, 0.0)], 8)
    assert book.best_bid() == (100.0, 1.0) and book.best_ask() == (100.1, 3.0)
    assert not book.is_crossed()
    # a jump far beyond the band re-centres and keeps every level
    book.apply([(150.0, 1.0)], [(150.2, 2.0)], 9)
    assert book.best_bid() == (150.0, 1.0)
    assert book.best_ask() == (100.1, 3.0) or book.best_ask()[0] == 100.1
    assert len(book) == 5


def test_top_into_layout_and_nan_padding():
    book = OrderBook(0.01)
    book.load([(10.0, 1.0), (9.99, 2.0)], [(10.01, 3.0)], 1)
    out = np.zeros(4 * 3)
    book.top_into(3, out)
    assert out[:2].tolist() == [10.0, 9.99] and np.isnan(out[2])
    assert out[3:5].tolist() == [1.0, 2.0]
    assert out[6] == 10.01 and np.isnan(out[7]) and out[9] == 3.0


def test_tick_inferred_from_snapshot():
    book = OrderBook()
    book.load([(61800.2, 1.0), (61800.1, 1.0), (61799.9, 1.0)], [(61800.3, 1.0)], 1)
    assert book.tick_size == 0.1
    book.apply([(61800.2, 0.0)], [], 2)
    assert book.best_bid() == (61800.1, 1.0)
