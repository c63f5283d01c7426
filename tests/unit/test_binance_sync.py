"""DepthSync (Binance local-book procedure) with hand-built diffs."""

from __future__ import annotations

from orderflow.adapters.binance.sync import DepthSync
from orderflow.core.events import BookDelta, BookSynced, GapEvent


def diff(U: int, u: int, pu: int = -1, bids=(), asks=(), sym: str = "BTCUSDT") -> BookDelta:
    return BookDelta("binance-test", sym, u * 1000, u * 1000 + 1, U, u, pu, tuple(bids), tuple(asks))


SNAP_BIDS = [(100.0, 1.0), (99.0, 2.0)]
SNAP_ASKS = [(101.0, 1.5), (102.0, 3.0)]


def kinds(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def test_spot_bridge_rule_and_chain() -> None:
    s = DepthSync("binance-spot", "BTCUSDT", futures=False)
    assert s.on_diff(diff(90, 100, bids=[(100.0, 9.0)])) == []  # buffered, u <= lid: stale later
    assert s.on_diff(diff(95, 105, bids=[(100.0, 0.5)], asks=[(101.0, 0.0)])) == []
    assert s.needs_snapshot and not s.valid
    out = s.on_snapshot(100, SNAP_BIDS, SNAP_ASKS, 0, 0)
    # U=95 <= lid+1=101 <= u=105 bridges; the u=100 diff was stale and dropped
    assert kinds(out) == ["BookSynced", "BookDelta"]
    assert out[0].update_id == 100 and out[0].resync is False
    assert s.stale_dropped == 1 and s.valid
    assert s.book.best_bid() == (100.0, 0.5) and s.book.best_ask() == (102.0, 3.0)
    assert kinds(s.on_diff(diff(106, 110, asks=[(101.5, 2.0)]))) == ["BookDelta"]
    assert s.book.best_ask() == (101.5, 2.0) and s.book.update_id == 110


def test_spot_first_diff_must_cover_lid_plus_one() -> None:
    s = DepthSync("binance-spot", "BTCUSDT", futures=False)
    s.on_snapshot(100, SNAP_BIDS, SNAP_ASKS, 0, 0)
    out = s.on_diff(diff(102, 110))  # U=102 > lid+1=101: update 101 was missed
    assert kinds(out) == ["GapEvent"] and out[0].expected == 100 and out[0].got == 102
    assert s.needs_snapshot


def test_futures_pu_bridge_when_U_is_past_the_snapshot() -> None:
    s = DepthSync("binance-usdm", "BTCUSDT", futures=True)
    s.on_diff(diff(980, 990, pu=970))  # older than the snapshot: dropped on replay
    s.on_diff(diff(1005, 1010, pu=990, bids=[(100.0, 4.0)]))  # U > lid but pu <= lid <= u
    out = s.on_snapshot(1000, SNAP_BIDS, SNAP_ASKS, 0, 0)
    assert kinds(out) == ["BookSynced", "BookDelta"] and s.valid
    assert s.stale_dropped == 1
    assert s.book.best_bid() == (100.0, 4.0)
    assert kinds(s.on_diff(diff(1011, 1020, pu=1010))) == ["BookDelta"]
    gap = s.on_diff(diff(1031, 1040, pu=1030))  # pu != previous u (1020)
    assert kinds(gap) == ["GapEvent"] and (gap[0].expected, gap[0].got) == (1020, 1030)


def test_duplicates_are_skipped() -> None:
    s = DepthSync("binance-usdm", "BTCUSDT", futures=True)
    s.on_snapshot(1000, SNAP_BIDS, SNAP_ASKS, 0, 0)
    assert kinds(s.on_diff(diff(995, 1005, pu=990, bids=[(100.0, 7.0)]))) == ["BookSynced", "BookDelta"]
    assert s.on_diff(diff(995, 1005, pu=990, bids=[(100.0, 1.0)])) == []
    assert s.duplicates == 1 and s.valid and s.book.best_bid() == (100.0, 7.0)


def test_gap_resets_book_and_resync_is_flagged() -> None:
    s = DepthSync("binance-spot", "BTCUSDT", futures=False)
    s.on_snapshot(100, SNAP_BIDS, SNAP_ASKS, 0, 0)
    s.on_diff(diff(101, 105))
    out = s.on_diff(diff(107, 110))
    assert isinstance(out[0], GapEvent) and out[0].reason == "update-id gap"
    assert not s.valid and s.needs_snapshot and len(s.book) == 0 and s.gaps == 1
    # the diff that showed the gap is kept and bridges the next snapshot
    out = s.on_snapshot(108, [(100.5, 1.0)], [(101.0, 1.0)], 0, 0)
    assert isinstance(out[0], BookSynced) and out[0].resync is True and s.valid
    assert s.book.best_bid() == (100.5, 1.0)


def test_snapshot_older_than_buffer_needs_another_snapshot() -> None:
    s = DepthSync("binance-spot", "BTCUSDT", futures=False)
    s.on_diff(diff(60, 70))
    s.on_diff(diff(71, 80))
    out = s.on_snapshot(50, SNAP_BIDS, SNAP_ASKS, 0, 0)  # lid+1=51 < U=60: diffs 51..59 unseen
    assert kinds(out) == ["GapEvent"] and out[0].reason == "snapshot does not bridge the diff stream"
    assert s.needs_snapshot and len(s.buffer) >= 1
    out = s.on_snapshot(75, SNAP_BIDS, SNAP_ASKS, 0, 0)
    assert kinds(out) == ["BookSynced", "BookDelta"] and s.valid and s.book.update_id == 80


def test_futures_snapshot_older_than_buffer() -> None:
    s = DepthSync("binance-usdm", "BTCUSDT", futures=True)
    s.on_diff(diff(1100, 1110, pu=1090))
    out = s.on_snapshot(1000, SNAP_BIDS, SNAP_ASKS, 0, 0)
    assert kinds(out) == ["GapEvent"] and s.needs_snapshot and not s.valid
