"""Feature kernels: OFI properties (hypothesis), CVD, window semantics, validity on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.features import kernels as FK
from orderflow.features.config import FeatureConfig
from orderflow.features.engine import StreamingFeatureEngine

NS = 1_000_000_000
T0 = 1_723_161_600 * NS  # 2024-08-09 00:00 UTC
L = 3
SMALL = dict(
    levels=L,
    tick_size=1.0,
    technical=None,
    zscore_window=5,
    momentum_windows_s=(1.0, 2.0),
    vol_windows_s=(1.0,),
    rv_windows_s=(1.0, 2.0),
    cvd_windows_s=(1.0, 2.0),
    trade_windows_s=(1.0,),
    regime_vol_windows_s=(1.0, 2.0),
    trend_halflives_s=(1.0, 2.0),
    kyle_buckets=3,
    vol_pct_buckets=2,
    warmup_s=3.0,
    book_capacity=64,
    trade_capacity=64,
)


def small_engine(**kw) -> StreamingFeatureEngine:
    return StreamingFeatureEngine(FeatureConfig(**{**SMALL, **kw}))


def col(eng: StreamingFeatureEngine, name: str) -> float:
    return float(eng.values[eng.names().index(name)])


def book(best_bid: float, sizes_b, sizes_a, gap: int = 1):
    bp = best_bid - np.arange(L, dtype=float)
    ap = best_bid + gap + np.arange(L, dtype=float)
    return bp, np.asarray(sizes_b, float), ap, np.asarray(sizes_a, float)


sizes = st.lists(st.floats(0.001, 1000.0), min_size=L, max_size=L)
prices = st.integers(100, 10_000)


@settings(max_examples=60, deadline=None)
@given(prices, sizes, sizes, st.floats(0.001, 500.0))
def test_adding_q_at_best_bid_adds_q_to_level1_ofi(p, sb, sa, q):
    eng = small_engine()
    bp, bs, ap, aq = book(p, sb, sa)
    eng.on_book(T0, bp, bs, ap, aq)
    bs2 = bs.copy()
    bs2[0] += q
    eng.on_book(T0 + NS // 10, bp, bs2, ap, aq)
    assert col(eng, "ofi_e1") == pytest.approx(q, rel=1e-12, abs=1e-12)
    assert col(eng, "ofi_e2") == 0.0 and col(eng, "ofi_e3") == 0.0


@settings(max_examples=60, deadline=None)
@given(prices, sizes, sizes, prices, sizes, sizes, st.integers(1, 3))
def test_mirroring_bids_and_asks_flips_the_sign(p1, sb1, sa1, p2, sb2, sa2, gap):
    centre = 20_000.0

    def mirror(b):
        bp, bs, ap, aq = b
        return centre - ap, aq, centre - bp, bs  # asks become bids at reflected prices

    b1, b2 = book(p1, sb1, sa1, gap), book(p2, sb2, sa2, gap)
    e, m = small_engine(), small_engine()
    e.on_book(T0, *b1)
    m.on_book(T0, *mirror(b1))
    e.on_book(T0 + NS, *b2)
    m.on_book(T0 + NS, *mirror(b2))
    for k in range(1, L + 1):
        assert col(m, f"ofi_e{k}") == pytest.approx(-col(e, f"ofi_e{k}"), rel=1e-12, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(prices, sizes, sizes)
def test_unchanged_book_gives_zero(p, sb, sa):
    eng = small_engine()
    b = book(p, sb, sa)
    eng.on_book(T0, *b)
    assert np.isnan(col(eng, "ofi_e1"))  # no previous book: undefined, not 0
    eng.on_book(T0 + NS, *b)
    assert [col(eng, f"ofi_e{k}") for k in range(1, L + 1)] == [0.0, 0.0, 0.0]


def _tick_rule_cvd(px, sz, side):
    out, last_px, last_sign, cvd = [], None, 0, 0.0
    for p, q, s in zip(px, sz, side, strict=True):
        if last_px is not None and p != last_px:
            last_sign = 1 if p > last_px else -1
        last_px = p
        cvd += (s if s != 0 else last_sign) * q
        out.append(cvd)
    return np.array(out)


def test_cvd_is_cumsum_of_signed_sizes_with_tick_rule_fallback():
    rng = np.random.default_rng(3)
    n = 300
    px = 100 + np.cumsum(rng.integers(-1, 2, n)).astype(float)
    sz = rng.uniform(0.01, 2, n)
    side = rng.choice([-1, 0, 1], n)
    eng = small_engine()
    got = []
    for i in range(n):
        ts = T0 + i * NS // 20
        eng.on_trade(ts, px[i], sz[i], int(side[i]))
        eng.on_book(ts, *book(1000.0, [1, 1, 1], [1, 1, 1]))
        got.append(col(eng, "cvd"))
    np.testing.assert_allclose(got, _tick_rule_cvd(px, sz, side), rtol=1e-12, atol=1e-9)
    flagged = side != 0
    np.testing.assert_allclose(
        np.cumsum(np.where(flagged, side * sz, 0))[-1],
        np.sum(side[flagged] * sz[flagged]),
    )


def test_time_window_holds_ts_greater_than_t_minus_w():
    eng = small_engine()
    b = book(1000.0, [1, 1, 1], [1, 1, 1])
    eng.on_book(T0, *b)
    for dt, q in ((0, 1.0), (NS // 2, 2.0), (NS, 4.0), (2 * NS, 8.0)):
        eng.on_trade(T0 + dt, 100.0, q, 1)
    eng.on_book(T0 + 2 * NS, *b)
    # window (t - 1 s, t] holds only the trade at t; 2 s window drops the trade at exactly t - 2 s
    assert col(eng, "cvd_chg_1s") == 8.0
    assert col(eng, "cvd_chg_2s") == 2.0 + 4.0 + 8.0
    assert col(eng, "buy_n_1s") == 1.0 and col(eng, "trade_rate_1s") == 1.0


def test_window_features_are_nan_until_the_window_is_covered():
    eng = small_engine()
    b = book(1000.0, [1, 1, 1], [1, 1, 1])
    eng.on_book(T0, *b)
    eng.on_book(T0 + NS // 2, *b)
    assert np.isnan(col(eng, "ofi_l1_1s")) and np.isnan(col(eng, "cvd_chg_1s"))
    eng.on_book(T0 + NS, *b)
    assert col(eng, "ofi_l1_1s") == 0.0 and np.isnan(col(eng, "ofi_l1_2s"))


def _run_until_valid(eng, t, b, n=100):
    for i in range(n):
        eng.on_trade(t + i * NS // 10, 1000.5, 0.1, 1 if i % 3 else -1)
        eng.on_book(t + i * NS // 10, *b(i))
        if eng.valid:
            return i
    return None


def _wiggle(i):
    return book(1000.0 + (i % 2), [1 + i % 3, 1, 1], [2, 1 + i % 2, 1])


@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("nan size", lambda b: (b[0], np.array([np.nan, 1, 1]), b[2], b[3])),
        ("negative size", lambda b: (b[0], b[1], b[2], np.array([1.0, -2.0, 1.0]))),
        ("crossed", lambda b: (b[0] + 5, b[1], b[2], b[3])),
    ],
)
def test_bad_book_is_invalid_with_reason_then_valid_after_warmup(what, edit):
    eng = small_engine()
    first = _run_until_valid(eng, T0, _wiggle)
    assert first is not None and first >= 30  # 3 s warm-up at 10 events/s
    t = T0 + 100 * NS
    v = eng.on_book(t, *edit(_wiggle(0)))
    assert not eng.valid and eng.reason == "bad_book", what
    assert np.isnan(v[eng.names().index("ofi_l1_1s")])  # windows reset, not silently zero
    eng.on_book(t + NS // 10, *_wiggle(1))
    assert eng.reason == "bad_book"  # re-warming after the bad book
    again = _run_until_valid(eng, t + NS // 5, _wiggle)
    assert again is not None and again >= 28


def test_gap_invalidates_until_warm_again():
    eng = small_engine()
    assert _run_until_valid(eng, T0, _wiggle) is not None
    t = T0 + 100 * NS
    eng.on_gap(t, "update-id gap")
    assert not eng.valid and eng.reason == "gap"
    eng.on_book(t, *_wiggle(0))
    assert eng.reason == "gap" and col(eng, "cvd") == 0.0
    again = _run_until_valid(eng, t + NS // 10, _wiggle)
    assert again is not None and again >= 28


def test_bad_trades_are_ignored_and_counted():
    eng = small_engine()
    eng.on_trade(T0, 100.0, float("nan"), 1)
    eng.on_trade(T0, 100.0, -1.0, 1)
    eng.on_trade(T0, 100.0, 2.0, -1)
    eng.on_book(T0, *book(1000.0, [1, 1, 1], [1, 1, 1]))
    assert eng.bad_trades == 2 and col(eng, "cvd") == -2.0


def test_snapshot_and_time_features():
    eng = small_engine(futures=True)
    t = T0 + 7 * 3600 * NS  # Friday 2024-08-09 07:00 UTC
    eng.on_book(t, np.array([99.0, 98, 97]), np.array([3.0, 1, 1]), np.array([101.0, 102, 103]),
                np.array([1.0, 1, 1]))  # fmt: skip
    assert col(eng, "spread_ticks") == 2.0
    assert col(eng, "microprice_bps") == pytest.approx((100.5 - 100) / 100 * 1e4)
    assert col(eng, "depth_imb_l1") == pytest.approx(0.5)
    assert col(eng, "depth_imb_cum3") == pytest.approx((5 - 3) / 8)
    assert col(eng, "funding_s") == 3600.0
    assert col(eng, "funding_frac") == pytest.approx(1 / 8)
    assert col(eng, "minute_of_hour") == 0.0
    assert col(eng, "tod_sin") == pytest.approx(np.sin(2 * np.pi * 7 / 24))
    assert col(eng, "dow_sin") == pytest.approx(np.sin(2 * np.pi * (4 + 7 / 24) / 7))  # Friday = 4


def test_ring_overflow_drops_oldest_and_counts():
    eng = small_engine(trade_capacity=16)
    for i in range(40):
        eng.on_trade(T0 + i * NS // 100, 100.0, 1.0, 1)  # 40 trades inside 1 s
    eng.on_book(T0 + 2 * NS, *book(1000.0, [1, 1, 1], [1, 1, 1]))
    assert eng._k.I[FK.I_OVERFLOW] > 0
    assert col(eng, "cvd_chg_2s") == 16.0  # only the newest 16 trades are still in the ring
    assert col(eng, "cvd") == 40.0
