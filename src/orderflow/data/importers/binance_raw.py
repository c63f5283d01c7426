"""Import raw Binance recordings: ``<local_receive_ts> <raw JSON>`` per line (hftbacktest's format and
the format ``orderflow data record`` writes).

Each line is a combined-stream message ``{"stream": ..., "data": ...}`` or a raw REST depth snapshot
``{"lastUpdateId": ...}``. Several files given in time order continue one depth chain. The local
timestamp is nanoseconds or microseconds (told apart by magnitude).

The book is rebuilt with the production sync logic (:class:`DepthSync`); the store receives:
``depth`` (the snapshot and every applied diff, lossless), ``book`` (top 20 after each applied diff),
``trade``, ``quote`` (bookTicker), ``bar_<interval>`` (closed klines) and ``gap`` (chain breaks).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import msgspec

from orderflow.adapters.binance.common.venues import SPOT, USDM, depth_continuity
from orderflow.adapters.binance.decode import (
    DecodeError,
    Decoder,
    decode_snapshot,
    is_snapshot,
    snapshot_delta,
)
from orderflow.adapters.binance.sync import DepthSync
from orderflow.core.events import Bar, BookDelta, GapEvent, Quote, Trade
from orderflow.core.instruments import Instrument, infer_tick, lookup
from orderflow.core.timeutil import guess_epoch_unit, to_ns
from orderflow.data.importers.base import ImportReport, iter_lines
from orderflow.data.schema import BookTable, DepthTable, bars_frame, gaps_frame, quotes_frame, trades_frame
from orderflow.data.store import Store

_env = msgspec.json.Decoder(dict)


class _SymbolState:
    def __init__(self, venue: str, symbol: str, futures: bool, levels: int) -> None:
        inst = lookup(venue, symbol)
        self.book = BookTable(levels)
        self.depth = DepthTable()
        self.sync = DepthSync(
            venue, symbol, futures, tick_size=inst.tick_size if inst else None, on_apply=self._record
        )
        self.trades: list[Trade] = []
        self.quotes: list[Quote] = []
        self.bars: list[Bar] = []
        self.gaps: list[GapEvent] = []
        self.pre_sync_diffs = 0

    def _record(self, d: BookDelta, book) -> None:
        self.depth.add_delta(d)
        self.book.add(book, d.ts_event, d.ts_recv)


def detect_venue(paths: Sequence[Path], report: ImportReport) -> str:
    """usdm/coinm if depth diffs carry ``pu`` (coinm when the symbol has ``_``), else spot."""
    for path in paths:
        for _, line in iter_lines(path, report):
            if b"depthUpdate" in line:
                has_pu = b'"pu":' in line
                m = re.search(rb'"s":"([A-Z0-9_]+)"', line)
                sym = m.group(1).decode() if m else ""
                if not has_pu:
                    return SPOT.venue
                return "binance-coinm" if "_" in sym else USDM.venue
    return SPOT.venue


def import_binance_raw(
    store: Store,
    paths: Sequence[Path],
    venue: str | None = None,
    levels: int = 20,
    source: str | None = None,
) -> ImportReport:
    report = ImportReport("binance-raw", [str(p) for p in paths])
    venue = venue or detect_venue(paths, report)
    futures = depth_continuity(venue) == "pu"  # DepthSync's futures mode: diffs chain on pu
    dec = Decoder(venue)
    states: dict[str, _SymbolState] = {}
    pending_snapshot: list[tuple[object, int, str]] = []  # snapshot seen before we know the symbol

    def state(sym: str) -> _SymbolState:
        st = states.get(sym)
        if st is None:
            st = states[sym] = _SymbolState(venue, sym, futures, levels)
        return st

    def handle_events(st: _SymbolState, events: list, where: str) -> None:
        for ev in events:  # applied diffs were recorded by the on_apply hook, in their own state
            if isinstance(ev, GapEvent):
                st.gaps.append(ev)
                report.gaps += 1
                report.problem(
                    f"{where}: {st.sync.symbol} {ev.reason} (expected {ev.expected}, got {ev.got}); "
                    "the book is invalid until the next snapshot"
                )

    def apply_snapshot(st: _SymbolState, snap, ts_recv: int, where: str) -> None:
        delta = snapshot_delta(venue, st.sync.symbol, snap, ts_recv)
        st.depth.add_delta(delta, is_snapshot=True)
        events = st.sync.on_snapshot(delta.last_update_id, delta.bids, delta.asks, delta.ts_event, ts_recv)
        handle_events(st, events, where)

    unit: str | None = None
    for path in paths:
        single_symbol: str | None = None
        for lineno, line in iter_lines(path, report):
            where = f"{path}:{lineno}"
            sp = line.find(b" ")
            if sp <= 0:
                if line.strip():
                    report.problem(f"{where}: no '<timestamp> <json>' separator")
                continue
            try:
                ts_local = int(line[:sp])
            except ValueError:
                report.problem(f"{where}: bad local timestamp {line[:sp][:30]!r}")
                continue
            if unit is None:
                unit = guess_epoch_unit(ts_local)
            ts_recv = to_ns(ts_local, unit)
            raw = line[sp + 1 :]
            try:
                if is_snapshot(raw):
                    snap = decode_snapshot(raw)
                    if single_symbol is None:
                        pending_snapshot.append((snap, ts_recv, where))
                    else:
                        apply_snapshot(state(single_symbol), snap, ts_recv, where)
                    continue
                ev = dec.decode(raw, ts_recv)
            except DecodeError as e:
                report.problem(f"{where}: {e}")
                continue
            if isinstance(ev, tuple):  # partial depth: keep as a book row only
                continue
            sym = ev.symbol
            st = state(sym)
            if single_symbol is None:
                single_symbol = sym
                for snap, ts_r, w in pending_snapshot:
                    apply_snapshot(st, snap, ts_r, w)
                pending_snapshot.clear()
            if isinstance(ev, BookDelta):
                if not st.sync.valid and st.sync.needs_snapshot:
                    st.pre_sync_diffs += 1
                handle_events(st, st.sync.on_diff(ev), where)
            elif isinstance(ev, Trade):
                st.trades.append(ev)
            elif isinstance(ev, Quote):
                st.quotes.append(ev)
            elif isinstance(ev, Bar) and ev.closed:
                st.bars.append(ev)
    for _snap, _, where in pending_snapshot:
        report.problem(f"{where}: depth snapshot with no stream messages to name its symbol; skipped")

    src = source or _source_tag(paths)
    for sym, st in states.items():
        if st.sync.state.value != "synced" and not len(st.book):
            report.notes.append(f"{sym}: the depth chain never synced (no snapshot bridged the diffs)")
        if st.pre_sync_diffs:
            report.notes.append(
                f"{sym}: {st.pre_sync_diffs} diffs before the first snapshot were not applied"
            )
        if st.sync.duplicates:
            report.notes.append(f"{sym}: {st.sync.duplicates} duplicate diffs skipped")
        for kind, frame in (
            ("depth", st.depth.frame() if len(st.depth) else None),
            ("book", st.book.frame() if len(st.book) else None),
            ("trade", trades_frame(st.trades) if st.trades else None),
            ("quote", quotes_frame(st.quotes) if st.quotes else None),
            ("gap", gaps_frame(st.gaps) if st.gaps else None),
        ):
            if frame is not None:
                report.stored(f"{venue}/{sym}/{kind}", store.put(venue, sym, kind, frame, source=src))
        by_iv: dict[str, list[Bar]] = {}
        for b in st.bars:
            by_iv.setdefault(b.interval, []).append(b)
        for iv, bars in by_iv.items():
            st = store.put(venue, sym, f"bar_{iv}", bars_frame(bars), source=src)
            report.stored(f"{venue}/{sym}/bar_{iv}", st)
        if store.instruments().get(f"{venue}/{sym}") is None:
            inst = lookup(venue, sym)
            if inst is None and st.trades:
                tick = infer_tick([t.price for t in st.trades[:20000]])
                inst = Instrument(venue, sym, tick, infer_tick([t.size for t in st.trades[:20000]]))
            if inst is not None:
                store.put_instrument(inst)
    return report


def _source_tag(paths: Sequence[Path]) -> str:
    names = "+".join(sorted(p.name.split(".")[0] for p in paths))
    tag = re.sub(r"[^A-Za-z0-9._-]", "_", names)
    return f"import-{tag}"[:120]
