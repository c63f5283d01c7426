"""Quality checks on hand-built datasets with known numbers of each problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydantic
import pytest

from orderflow.data.config import QualityThresholds
from orderflow.data.quality import check, count_outliers, render
from support.store_parts import plant_part

S = 10**9
T0 = 1_723_161_600 * S  # 2024-08-09 00:00:00 UTC
DATE = "2024-08-09"


def quotes() -> pd.DataFrame:
    ts = [T0 + i * S for i in range(10)] + [T0 + 39 * S, T0 + 40 * S]  # one 30 s silence (9 s -> 39 s)
    ts[5], ts[6] = ts[6], ts[5]  # one decreasing timestamp in stored order
    bid = np.full(12, 100.0)
    ask = np.full(12, 100.1)
    bid[3] = 100.2  # crossed
    bid[7] = 100.1  # locked
    return pd.DataFrame(
        {
            "ts_event": ts,
            "ts_recv": ts,
            "update_id": np.arange(12),
            "bid_px": bid,
            "bid_sz": 1.0,
            "ask_px": ask,
            "ask_sz": 1.0,
        }
    )


def trades() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 200
    px = 100 + np.cumsum(rng.choice([-0.01, 0.01], n))
    px[120] = 150.0  # one bad print
    ids = np.arange(1000, 1000 + n)
    ids[50] = ids[49]  # one duplicated trade id
    ts = T0 + np.arange(n) * S // 10
    return pd.DataFrame(
        {
            "ts_event": ts,
            "ts_recv": ts,
            "trade_id": ids,
            "price": px,
            "size": 1.0,
            "side": np.where(np.arange(n) % 2, 1, -1).astype(np.int8),
        }
    )


def bars() -> pd.DataFrame:
    opens = T0 + np.array([0, 1, 2, 4, 5]) * 60 * S  # the 3rd minute is missing
    return pd.DataFrame(
        {
            "ts_event": opens + 60 * S,
            "ts_recv": opens + 60 * S,
            "ts_open": opens,
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1.0,
            "quote_volume": np.nan,
            "trades": -1,
            "taker_buy_volume": np.nan,
        }
    )


def depth(msgs: list[tuple[int, int, int, bool]]) -> pd.DataFrame:
    rows = []
    for k, (f, last, p, snap) in enumerate(msgs):
        ts = T0 + k * S
        rows += [(ts, ts, f, last, p, snap, 1, 100.0, 1.0), (ts, ts, f, last, p, snap, -1, 101.0, 1.0)]
    cols = [
        "ts_event",
        "ts_recv",
        "first_update_id",
        "last_update_id",
        "prev_update_id",
        "is_snapshot",
        "side",
        "price",
        "size",
    ]
    return pd.DataFrame(rows, columns=cols).astype({"side": "int8"})


def book_rows(n: int) -> pd.DataFrame:
    ts = T0 + np.arange(n) * S
    df = pd.DataFrame({"ts_event": ts, "ts_recv": ts, "update_id": np.arange(n)})
    df["bid_px_1"], df["bid_sz_1"], df["ask_px_1"], df["ask_sz_1"] = 100.0, 1.0, 100.1, 1.0
    return df


def test_thresholds_are_frozen_and_strict():
    th = QualityThresholds()
    assert th.max_gaps == 0 and th.max_crossed == 0 and th.stale_after_s == 10.0
    with pytest.raises(pydantic.ValidationError):
        QualityThresholds(max_gap=1)
    with pytest.raises(pydantic.ValidationError):
        th.max_gaps = 3  # type: ignore[misc]


def test_quote_problems_counted_exactly(store):
    store.write("sim", "AAA", "quote", quotes(), source="t")
    rep = check(store)
    q = rep.get("sim", "AAA", "quote")
    assert (q.events, q.crossed, q.crossed_strict, q.locked) == (12, 2, 1, 1)
    assert q.out_of_order == 1
    assert q.stale_periods == 1 and q.longest_stale_s == 30.0 and q.longest_stale_start_ns == T0 + 9 * S
    assert q.duplicates == 0 and q.gaps == 0
    assert rep.failures() == [
        "sim/AAA/quote: crossed 2 > max_crossed 0",
        "sim/AAA/quote: out_of_order 1 > max_out_of_order 0",
    ]
    assert rep.failures(QualityThresholds(max_crossed=2, max_out_of_order=None, max_stale_periods=0)) == [
        "sim/AAA/quote: stale_periods 1 > max_stale_periods 0"
    ]
    d = rep.to_dict()["datasets"][0]
    assert {
        k: d[k]
        for k in ("venue", "symbol", "kind", "gaps", "crossed", "stale_periods", "out_of_order", "events")
    } == {
        "venue": "sim",
        "symbol": "AAA",
        "kind": "quote",
        "gaps": 0,
        "crossed": 2,
        "stale_periods": 1,
        "out_of_order": 1,
        "events": 12,
    }
    text = render(rep)
    assert "sim" in text and "longest silence 30.0 s" in text and "FAIL sim/AAA/quote: crossed 2" in text


def test_trade_duplicate_and_outlier(store):
    # the store's write path drops the repeated trade id; a part planted past it keeps it
    store.write("sim", "AAA", "trade", trades(), source="t")
    q = check(store).get("sim", "AAA", "trade")
    assert (q.events, q.duplicates, q.outliers, q.stale_periods, q.out_of_order) == (199, 0, 1, 0, 0)
    plant_part(store, "sim", "AAA", "trade", trades(), DATE)
    q = check(store).get("sim", "AAA", "trade")
    assert (q.events, q.duplicates, q.outliers) == (399, 200, 2)
    assert check(store).failures() == [  # max_duplicates defaults to 0
        "sim/AAA/trade: duplicates 200 > max_duplicates 0"
    ]


def test_count_outliers_spike_and_shift():
    base = 100 + np.cumsum(np.tile([0.01, -0.01, 0.02, -0.01], 50))
    assert count_outliers(base, 10) == 0
    spike = base.copy()
    spike[100] *= 1.2
    assert count_outliers(spike, 10) == 1
    shift = base.copy()
    shift[100:] *= 1.2  # a level shift is one large return
    assert count_outliers(shift, 10) == 1
    assert count_outliers(np.full(50, 3.0), 10) == 0


def test_missing_bar(store):
    store.write("sim", "AAA", "bar_1m", bars(), source="t")
    q = check(store).get("sim", "AAA", "bar_1m")
    assert (q.events, q.missing_bars, q.duplicates, q.stale_periods) == (5, 1, 0, 0)
    assert check(store).failures() == ["sim/AAA/bar_1m: missing_bars 1 > max_missing_bars 0"]


def test_futures_chain_break_and_gap_rows(store):
    msgs = [
        (100, 100, -1, True),  # snapshot lastUpdateId 100
        (95, 105, 90, False),  # bridges it through pu <= 100 <= u
        (106, 110, 105, False),
        (111, 115, 110, False),
        (120, 125, 118, False),  # break: pu 118 != 115
        (126, 130, 125, False),
        (300, 300, -1, True),  # a new snapshot restarts the chain
        (299, 305, 296, False),
    ]
    store.write("binance-usdm", "AAA", "depth", depth(msgs), source="t")
    store.write("binance-usdm", "AAA", "book", book_rows(8), source="t")
    gap = pd.DataFrame(
        {"ts_event": [T0], "ts_recv": [T0], "reason": ["update-id gap"], "expected": [1], "got": [3]}
    )
    store.write("binance-usdm", "AAA", "gap", gap, source="t")
    rep = check(store, venue="binance-usdm")
    for kind in ("book", "depth"):
        q = rep.get("binance-usdm", "AAA", kind)
        assert (q.gap_rows, q.chain_breaks, q.gaps) == (1, 1, 2)
    assert [d.kind for d in rep.datasets] == ["book", "depth"]
    assert rep.get("binance-usdm", "AAA", "depth").events == 16


def test_spot_chain_and_duplicate_message(store):
    msgs = [
        (100, 100, -1, True),
        (99, 105, -1, False),
        (106, 110, -1, False),
        (112, 115, -1, False),
        (116, 120, -1, False),
    ]
    store.write("binance-spot", "AAA", "depth", depth(msgs), source="a")
    store.write("binance-spot", "AAA", "depth", depth(msgs[2:3]), source="b")  # the same diff again
    q = check(store).get("binance-spot", "AAA", "depth")
    assert (q.chain_breaks, q.gaps, q.duplicates) == (1, 1, 0)  # the store kept it once
    plant_part(store, "binance-spot", "AAA", "depth", depth(msgs[2:3]), DATE)  # an old store's copy
    q = check(store).get("binance-spot", "AAA", "depth")
    assert (q.chain_breaks, q.gaps, q.duplicates) == (1, 1, 1)


def test_snapshot_that_does_not_bridge_is_a_break(store):
    msgs = [(100, 100, -1, True), (103, 105, -1, False), (106, 110, -1, False)]
    store.write("binance-spot", "AAA", "depth", depth(msgs), source="a")
    assert check(store).get("binance-spot", "AAA", "depth").chain_breaks == 1


def test_filters_and_empty_store(store):
    assert check(store).datasets == [] and "OK" in render(check(store))
    store.write("sim", "AAA", "quote", quotes(), source="t")
    store.write("sim", "BBB", "bar_1m", bars(), source="t")
    assert [d.symbol for d in check(store, symbol="BBB").datasets] == ["BBB"]
    assert check(store, venue="other").datasets == []
