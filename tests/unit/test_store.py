"""The Parquet store: partitioning, ordering, idempotent sources, atomic writes, listing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from orderflow.core.instruments import Instrument
from orderflow.data.store import NS_PER_DAY, Store, StoreError

DAY0 = 19_000 * NS_PER_DAY


def trades(n: int, start: int = DAY0, step: int = 10**9, first_id: int = 0) -> pd.DataFrame:
    ts = start + np.arange(n, dtype=np.int64) * step
    return pd.DataFrame(
        {
            "ts_event": ts,
            "ts_recv": ts + 5,
            "trade_id": first_id + np.arange(n),
            "price": 100.0 + np.arange(n),
            "size": 1.0,
            "side": np.int8(1),
        }
    )


def test_partitions_by_date_and_reads_in_order(store: Store):
    df = trades(10, start=DAY0 + NS_PER_DAY - 5 * 10**9)  # straddles midnight
    paths = store.write("sim", "BTCUSDT", "trade", df, source="t1")
    assert len(paths) == 2
    assert {p.parent.name for p in paths} == {"date=2022-01-08", "date=2022-01-09"}
    back = store.read("sim", "BTCUSDT", "trade")
    assert back.trade_id.tolist() == list(range(10))
    assert back.ts_event.is_monotonic_increasing
    part = store.read("sim", "BTCUSDT", "trade", start_ns=int(df.ts_event[3]), end_ns=int(df.ts_event[6]))
    assert part.trade_id.tolist() == [3, 4, 5]


def test_sparse_context_kinds_are_partitioned_by_month(store: Store):
    """Funding (every 8 h for 70 days) lands in one partition a month, not one a day; a range read and
    a second write of the same rows behave as for any kind."""
    ts = DAY0 + np.arange(210, dtype=np.int64) * 8 * 3600 * 10**9  # 2022-01-09 .. 2022-03-19
    df = pd.DataFrame({"ts_event": ts, "ts_recv": ts, "rate": 1e-4 * np.arange(210), "mark_price": 1.0})
    paths = store.write("binance-usdm", "BTCUSDT", "funding", df, source="f1")
    assert sorted(p.parent.name for p in paths) == ["date=2022-01", "date=2022-02", "date=2022-03"]
    part = store.read("binance-usdm", "BTCUSDT", "funding", start_ns=int(ts[100]), end_ns=int(ts[103]))
    assert part.ts_event.tolist() == ts[100:103].tolist()
    assert store.put("binance-usdm", "BTCUSDT", "funding", df, source="f2").duplicates == 210
    assert len(store.read("binance-usdm", "BTCUSDT", "funding")) == 210


def test_same_source_replaces_other_source_appends(store: Store):
    store.write("sim", "X", "trade", trades(5), source="a")
    store.write("sim", "X", "trade", trades(5), source="a")
    assert len(store.read("sim", "X", "trade")) == 5
    store.write("sim", "X", "trade", trades(3, start=DAY0 + 10**12, first_id=100), source="b")
    assert len(store.read("sim", "X", "trade")) == 8
    [d] = store.ls()
    assert (d.venue, d.symbol, d.kind, d.rows, d.first_ns) == ("sim", "X", "trade", 8, DAY0)


def test_ties_keep_write_order(store: Store):
    df = trades(6, step=0)  # identical timestamps
    store.write("sim", "X", "trade", df, source="a")
    assert store.read("sim", "X", "trade").trade_id.tolist() == list(range(6))


def test_interrupted_write_leaves_nothing_visible(store: Store, monkeypatch):
    store.write("sim", "X", "trade", trades(4), source="good")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError):
        store.write("sim", "X", "trade", trades(4, start=DAY0 + 10**12, first_id=100), source="bad")
    monkeypatch.undo()
    assert store.read("sim", "X", "trade").trade_id.tolist() == [0, 1, 2, 3]
    assert not list(store.root.glob("venue=*/**/*bad*"))


def test_half_written_staged_file_is_never_read(store: Store):
    store.write("sim", "X", "trade", trades(3), source="a")
    (store.root / "_txn" / "1-2-dead").mkdir(parents=True)
    (store.root / "_txn" / "1-2-dead" / "000000.parquet").write_bytes(b"PAR1 truncated")
    assert len(store.read("sim", "X", "trade")) == 3
    assert len(store.ls()) == 1


def test_bad_names_rejected(store: Store):
    with pytest.raises(StoreError, match="symbol"):
        store.write("sim", "../etc", "trade", trades(1), source="a")
    with pytest.raises(StoreError, match="ts_event"):
        store.write("sim", "X", "trade", pd.DataFrame({"price": [1.0]}), source="a")


def test_instruments_roundtrip(store: Store):
    inst = Instrument("sim", "BTCUSDT", 0.1, 0.001, 100.0)
    store.put_instrument(inst)
    assert store.instrument("sim", "BTCUSDT") == inst
    assert store.instrument("binance-usdm", "ETHUSDT").tick_size == 0.01  # known default
    assert store.instrument("sim", "NOPE") is None


def test_duplicates_are_dropped_at_write_time_in_any_grouping(store: Store):
    df = trades(10)
    st = store.put("sim", "X", "trade", df, source="a")
    assert (st.rows_in, st.rows_written, st.duplicates) == (10, 10, 0)
    st = store.put("sim", "X", "trade", df.iloc[3:8], source="b")  # the same events, another source
    assert (st.rows_written, st.duplicates) == (0, 5)
    both = pd.concat([df.iloc[:2], df.iloc[:2], trades(3, start=DAY0 + 10**12, first_id=50)])
    st = store.put("sim", "X", "trade", both, source="c")  # repeated within the batch too
    assert (st.rows_written, st.duplicates) == (3, 4)
    assert store.read("sim", "X", "trade").trade_id.tolist() == [*range(10), 50, 51, 52]


def test_depth_messages_are_kept_or_dropped_whole(store: Store):
    def msg(u: int, n: int) -> list[tuple]:
        return [(DAY0 + u, DAY0 + u, u, u, u - 1, False, 1, 100.0 + i, 1.0) for i in range(n)]

    cols = ["ts_event", "ts_recv", "first_update_id", "last_update_id", "prev_update_id", "is_snapshot",
            "side", "price", "size"]  # fmt: skip
    a = pd.DataFrame(msg(1, 3) + msg(2, 2), columns=cols)
    b = pd.DataFrame(msg(2, 2) + msg(3, 4) + msg(3, 4), columns=cols)  # msg 2 again; msg 3 twice
    store.write("binance-usdm", "X", "depth", a, source="a")
    st = store.put("binance-usdm", "X", "depth", b, source="b")
    assert (st.rows_written, st.duplicates) == (4, 6)
    back = store.read("binance-usdm", "X", "depth")
    assert back.groupby("last_update_id").size().to_dict() == {1: 3, 2: 2, 3: 4}


def test_rows_without_ids_are_keyed_by_the_whole_row(store: Store):
    q = pd.DataFrame({"ts_event": [DAY0, DAY0, DAY0 + 1], "ts_recv": [DAY0] * 3, "update_id": [-1, -1, -1],
                      "bid_px": [1.0, 1.5, 1.0], "bid_sz": 1.0, "ask_px": 2.0, "ask_sz": 1.0})  # fmt: skip
    store.write("tardis", "X", "quote", q, source="a")
    st = store.put("tardis", "X", "quote", q, source="b")
    assert (st.rows_written, st.duplicates) == (0, 3)
    assert len(store.read("tardis", "X", "quote")) == 3


def test_one_transaction_commits_every_kind_together(store: Store):
    with pytest.raises(RuntimeError), store.transaction():
        store.write("sim", "X", "trade", trades(4), source="a")
        store.put_instrument(Instrument("sim", "X", 0.1, 0.001, 5.0))
        raise RuntimeError("the importer failed half-way")
    assert store.files() == [] and store.instruments() == {}
    with store.transaction():
        store.write("sim", "X", "trade", trades(4), source="a")
        assert store.files() == []  # staged, not visible yet
    assert len(store.read("sim", "X", "trade")) == 4


def test_a_store_path_that_is_a_file_is_refused_by_name(tmp_path):
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    with pytest.raises(StoreError, match=f"store {f} is a file"):
        Store(f)


def test_a_read_only_store_reads_and_refuses_writes(store: Store, monkeypatch):
    store.write("sim", "X", "trade", trades(3), source="a")
    monkeypatch.setattr("orderflow.data.store.os.access", lambda path, mode: False)  # as a non-owner
    ro = Store(store.root)
    assert ro.read_only and len(ro.read("sim", "X", "trade")) == 3
    with pytest.raises(StoreError, match="read-only"):
        ro.write("sim", "X", "trade", trades(3, first_id=9), source="b")
