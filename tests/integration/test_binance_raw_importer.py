"""The raw Binance importer on real recordings and on damaged copies of them."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from orderflow.data.importers.binance_raw import import_binance_raw

pytestmark = pytest.mark.shared_data


@pytest.mark.slow
def test_two_files_continue_one_chain(shared_data, store):
    d = shared_data / "hftbacktest_binance_raw" / "usdm"
    rep = import_binance_raw(store, [d / "btcusdt_20240718.gz", d / "btcusdt_20240719.gz"])
    assert rep.gaps == 0 and rep.problems == []
    book = store.read("binance-usdm", "BTCUSDT", "book", columns=["ts_event", "update_id"])
    # the second file has no snapshot: its diffs are applied only because the chain continues
    assert book.ts_event.max() > 1721347200 * 10**9 + 4 * 60 * 10**9  # past 2024-07-19 00:04 UTC
    assert book.update_id.is_monotonic_increasing


@pytest.mark.slow
def test_spot_chain_and_trades(shared_data, store):
    d = shared_data / "hftbacktest_binance_raw" / "spot"
    rep = import_binance_raw(store, [d / "ethusdt_20240808.gz", d / "ethusdt_20240809.gz"])
    assert rep.gaps == 0
    assert rep.rows["binance-spot/ETHUSDT/trade"] == 6106 + 8409
    t = store.read("binance-spot", "ETHUSDT", "trade")
    assert set(t.side.unique()) == {1, -1}
    assert t.trade_id.diff().dropna().eq(1).all()


def _damaged_copy(src: Path, dst: Path, edit) -> Path:
    with gzip.open(src, "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    with gzip.open(dst, "wb") as fh:
        fh.writelines(edit(lines))
    return dst


@pytest.mark.slow
def test_dropped_diff_is_a_recorded_gap_naming_the_line(shared_data, store, tmp_path):
    src = shared_data / "hftbacktest_binance_raw" / "usdm" / "ethusdt_20240808.gz"
    depth_idx = []

    def drop(lines):
        idx = [i for i, ln in enumerate(lines) if b"depthUpdate" in ln[:120]]
        depth_idx.append(idx[500])
        return [ln for i, ln in enumerate(lines) if i != idx[500]]

    path = _damaged_copy(src, tmp_path / "eth_drop.gz", drop)
    rep = import_binance_raw(store, [path])
    assert rep.gaps == 1
    assert any("eth_drop.gz:" in p and "update-id gap" in p for p in rep.problems)
    gaps = store.read("binance-usdm", "ETHUSDT", "gap")
    assert len(gaps) == 1 and gaps.reason[0] == "update-id gap"
    # no snapshot follows in the file: nothing after the gap is presented as a valid book
    book = store.read("binance-usdm", "ETHUSDT", "book", columns=["ts_event"])
    assert book.ts_event.max() <= gaps.ts_event[0]


def test_bad_lines_are_reported_and_skipped(shared_data, store, tmp_path):
    src = shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240718.gz"

    def damage(lines):
        lines = list(lines)
        lines[100] = b"1721347020000000000 {not json\n"
        lines[200] = lines[200][:40] + b"\n"  # truncated message
        lines[300] = b"garbage-without-separator\n"
        return lines

    path = _damaged_copy(src, tmp_path / "btc_bad.gz", damage)
    rep = import_binance_raw(store, [path])
    assert any("btc_bad.gz:101:" in p for p in rep.problems)
    assert any("btc_bad.gz:201:" in p for p in rep.problems)
    assert any("btc_bad.gz:301:" in p for p in rep.problems)
    assert rep.rows["binance-usdm/BTCUSDT/trade"] >= 970


def test_truncated_gzip_keeps_what_was_read(shared_data, store, tmp_path):
    src = shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240718.gz"
    data = src.read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) // 2])
    rep = import_binance_raw(store, [cut])
    assert any("truncated or corrupt" in p for p in rep.problems)
    assert rep.rows.get("binance-usdm/BTCUSDT/trade", 0) > 100
