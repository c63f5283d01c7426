"""Binance local order book procedure, per symbol, with no I/O.

Spot (``U``/``u``)::
    buffer diffs; fetch a REST snapshot; drop diffs with ``u <= lastUpdateId``; the first diff applied
    must have ``U <= lastUpdateId + 1 <= u``; afterwards each diff must have ``U == previous u + 1``.

USD-M / COIN-M futures (``U``/``u``/``pu``)::
    update ids are not contiguous; ``pu`` of each diff equals ``u`` of the previous one. Drop diffs with
    ``u < lastUpdateId``; the first diff applied must satisfy ``U <= lastUpdateId <= u`` or, as seen in
    real recordings, ``pu <= lastUpdateId <= u`` (the snapshot falls between the previous diff and this
    one); afterwards each diff must have ``pu == previous u``.

A break in the chain is a gap: the book is cleared and marked invalid, a :class:`GapEvent` is emitted
and the caller must fetch a new snapshot for this symbol only (:attr:`DepthSync.needs_snapshot`).
A diff identical to one already applied (``u <= previous u``) is a duplicate and is skipped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from enum import StrEnum

from orderflow.core.book import OrderBook
from orderflow.core.events import BookDelta, BookSynced, GapEvent, Level


class SyncState(StrEnum):
    WAITING_SNAPSHOT = "waiting_snapshot"  # buffering diffs until a snapshot arrives
    WAITING_BRIDGE = "waiting_bridge"  # snapshot loaded, waiting for the diff that bridges it
    SYNCED = "synced"


class DepthSync:
    """Keeps one symbol's :class:`OrderBook` in sync. Feed it diffs and snapshots; read the events.

    ``on_diff`` and ``on_snapshot`` return a list of events to publish, in order: the
    :class:`BookDelta` objects actually applied, :class:`BookSynced` when the book becomes valid and
    :class:`GapEvent` when the chain breaks.
    """

    def __init__(
        self,
        venue: str,
        symbol: str,
        futures: bool,
        max_buffer: int = 10_000,
        tick_size: float | None = None,
        on_apply: Callable[[BookDelta, OrderBook], None] | None = None,
    ) -> None:
        """``on_apply(delta, book)`` is called right after each diff is applied, while the book is in
        exactly the state that diff produced (buffered diffs replayed after a snapshot included), so a
        caller can record per-event book states."""
        self.venue = venue
        self.symbol = symbol
        self.futures = futures
        self.book = OrderBook(tick_size)
        self.on_apply = on_apply
        self.state = SyncState.WAITING_SNAPSHOT
        self.buffer: deque[BookDelta] = deque(maxlen=max_buffer)
        self.last_u = -1
        self.snapshot_id = -1
        self.synced_once = False
        self.gaps = 0
        self.duplicates = 0
        self.stale_dropped = 0

    # -- state ------------------------------------------------------------------------------------
    @property
    def valid(self) -> bool:
        return self.state is SyncState.SYNCED

    @property
    def needs_snapshot(self) -> bool:
        return self.state is SyncState.WAITING_SNAPSHOT

    def reset(
        self, reason: str, ts_recv: int, ts_event: int = 0, expected: int = -1, got: int = -1
    ) -> GapEvent:
        """Invalidate the book (a gap, a disconnect, a stale stream) and wait for a new snapshot."""
        self.book.clear()
        self.buffer.clear()
        self.state = SyncState.WAITING_SNAPSHOT
        self.last_u = -1
        self.gaps += 1
        return GapEvent(self.venue, self.symbol, ts_event or ts_recv, ts_recv, reason, expected, got)

    # -- inputs -----------------------------------------------------------------------------------
    def load_snapshot(
        self, last_update_id: int, bids: Iterable[Level], asks: Iterable[Level]
    ) -> list[BookDelta]:
        """Load a REST snapshot and hand back the buffered diffs (oldest first), which the caller must
        feed through :meth:`on_diff` in order. Feeding them one at a time lets a caller hand out each
        applied diff while the book is in exactly that diff's state."""
        self.book.load(bids, asks, last_update_id)
        self.snapshot_id = last_update_id
        self.last_u = -1
        self.state = SyncState.WAITING_BRIDGE
        pending = list(self.buffer)
        self.buffer.clear()
        return pending

    def on_snapshot(
        self, last_update_id: int, bids: Iterable[Level], asks: Iterable[Level], ts_event: int, ts_recv: int
    ) -> list:
        """Load a REST snapshot and replay the buffered diffs that follow it (all at once; use
        :meth:`load_snapshot` or ``on_apply`` to see the book after each of them)."""
        out: list = []
        pending = self.load_snapshot(last_update_id, bids, asks)
        for i, d in enumerate(pending):
            out.extend(self.on_diff(d))
            if self.state is SyncState.WAITING_SNAPSHOT:
                # snapshot older than the buffered diffs: the caller fetches another; keep later diffs
                self.buffer.extend(pending[i + 1 :])
                break
        return out

    def on_diff(self, d: BookDelta) -> list:
        st = self.state
        if st is SyncState.SYNCED:
            if d.last_update_id <= self.last_u:
                self.duplicates += 1
                return []
            linked = d.prev_update_id == self.last_u if self.futures else d.first_update_id == self.last_u + 1
            if not linked:
                got = d.prev_update_id if self.futures else d.first_update_id
                expected = self.last_u if self.futures else self.last_u + 1
                gap = self.reset("update-id gap", d.ts_recv, d.ts_event, expected, got)
                self.buffer.append(d)
                return [gap]
            self.book.apply(d.bids, d.asks, d.last_update_id)
            self.last_u = d.last_update_id
            if self.on_apply is not None:
                self.on_apply(d, self.book)
            return [d]
        if st is SyncState.WAITING_SNAPSHOT:
            self.buffer.append(d)
            return []
        # WAITING_BRIDGE: the snapshot is loaded; find the first diff that bridges it
        lid = self.snapshot_id
        if self.futures:
            if d.last_update_id < lid:
                self.stale_dropped += 1
                return []
            bridges = d.first_update_id <= lid or d.prev_update_id <= lid
        else:
            if d.last_update_id <= lid:
                self.stale_dropped += 1
                return []
            bridges = d.first_update_id <= lid + 1
        if not bridges:
            # the snapshot is older than this diff and the diffs between were not seen: resnapshot
            gap = self.reset(
                "snapshot does not bridge the diff stream",
                d.ts_recv,
                d.ts_event,
                lid,
                d.prev_update_id if self.futures else d.first_update_id,
            )
            self.buffer.append(d)
            return [gap]
        self.book.apply(d.bids, d.asks, d.last_update_id)
        self.last_u = d.last_update_id
        self.state = SyncState.SYNCED
        if self.on_apply is not None:
            self.on_apply(d, self.book)
        resync = self.synced_once
        self.synced_once = True
        return [BookSynced(self.venue, self.symbol, d.ts_event, d.ts_recv, lid, resync), d]
