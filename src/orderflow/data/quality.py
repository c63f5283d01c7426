"""Data-quality checks over the store: gaps, crossed books, stale periods, disorder, duplicates, outliers.

``check(store)`` measures every stored (venue, symbol, kind) with DuckDB SQL over its Parquet parts (and
numpy for the outlier scan), so it scales to millions of rows. Per dataset it reports:

- ``events``: stored rows.
- ``gaps`` (book, depth): stored ``gap`` rows for the symbol (``gap_rows``) plus update-id chain breaks
  in the stored ``depth`` rows (``chain_breaks``): futures ``prev_update_id != previous last_update_id``,
  spot ``first_update_id != previous last_update_id + 1``; a snapshot restarts the chain and the first
  diff after it must bridge it. Messages are ordered by update id; data without ids (-1) is skipped.
- ``crossed`` (book, quote): rows with best bid >= best ask, also split into ``crossed_strict`` (>) and
  ``locked`` (==).
- ``stale_periods``: silences longer than ``stale_after_s`` (book/quote/depth) or
  ``trade_stale_after_s`` (trades) between consecutive events, with the longest one and its start.
- ``out_of_order``: rows whose ts_event is below the previous row's within the same stored part.
- ``duplicates``: repeated trade ids (trade), update ids (book, quote; -1 ignored), diff messages
  (depth) or bar open times (bars). The store drops these when it writes, so any found came in past
  its write path (a store of an older version, a part copied in by hand); the default limit is 0.
- ``outliers`` (trade prices, book/quote mids): 1-event log returns whose robust z-score (return over
  1.4826 x the median absolute non-zero return, i.e. a MAD about zero) exceeds ``outlier_sigma``; a
  spike out and straight back counts once.
- ``missing_bars`` (``bar_<interval>``): expected open times missing between the first and last bar.
- ``corrupt_parts``: stored parts that cannot be read (named in the notes and left out of the rest).

:meth:`QualityReport.to_dict` returns ``{"datasets": [{"venue", "symbol", "kind", "events", "gaps",
"crossed", "stale_periods", "out_of_order", ...}, ...], "failures": [...], "thresholds": {...}}``:
one dict per dataset, keyed by venue/symbol/kind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import duckdb
import numpy as np

from orderflow.adapters.binance.common.venues import depth_continuity
from orderflow.core.timeutil import NS_PER_S, ns_to_iso
from orderflow.data.config import QualityThresholds
from orderflow.data.store import Store

BOOKISH = ("book", "quote", "depth")


@dataclass
class DatasetQuality:
    venue: str
    symbol: str
    kind: str
    events: int = 0
    first_ns: int = 0
    last_ns: int = 0
    gaps: int = 0
    gap_rows: int = 0
    chain_breaks: int = 0
    crossed: int = 0
    crossed_strict: int = 0
    locked: int = 0
    stale_periods: int = 0
    longest_stale_s: float = 0.0
    longest_stale_start_ns: int = 0
    out_of_order: int = 0
    duplicates: int = 0
    outliers: int = 0
    missing_bars: int = 0
    corrupt_parts: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_LIMITS = (
    ("max_gaps", "gaps"),
    ("max_crossed", "crossed"),
    ("max_stale_periods", "stale_periods"),
    ("max_out_of_order", "out_of_order"),
    ("max_outliers", "outliers"),
    ("max_missing_bars", "missing_bars"),
    ("max_duplicates", "duplicates"),
    ("max_corrupt_parts", "corrupt_parts"),
)


@dataclass
class QualityReport:
    datasets: list[DatasetQuality]
    thresholds: QualityThresholds

    def get(self, venue: str, symbol: str, kind: str) -> DatasetQuality:
        for d in self.datasets:
            if (d.venue, d.symbol, d.kind) == (venue, symbol, kind):
                return d
        raise KeyError(f"{venue}/{symbol}/{kind} was not checked")

    def failures(self, thresholds: QualityThresholds | None = None) -> list[str]:
        """One line per crossed threshold, e.g. ``binance-usdm/BTCUSDT/book: gaps 2 > max_gaps 0``."""
        th = thresholds or self.thresholds
        out = []
        for d in self.datasets:
            for limit, attr in _LIMITS:
                lim = getattr(th, limit)
                val = getattr(d, attr)
                if lim is not None and val > lim:
                    out.append(f"{d.venue}/{d.symbol}/{d.kind}: {attr} {val} > {limit} {lim}")
        return out

    @property
    def ok(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict:
        return {
            "datasets": [d.to_dict() for d in self.datasets],
            "failures": self.failures(),
            "thresholds": self.thresholds.model_dump(),
        }


_SRC = "read_parquet(?, filename=true, file_row_number=true, union_by_name=true, hive_partitioning=false)"


class _Checker:
    def __init__(self, store: Store, th: QualityThresholds) -> None:
        self.store = store
        self.th = th
        self.con = duckdb.connect()

    def one(self, sql: str, files: list) -> tuple:
        return self.con.execute(sql.replace("SRC", _SRC), [[str(f) for f in files]]).fetchone()

    def arr(self, sql: str, files: list) -> dict[str, np.ndarray]:
        return self.con.execute(sql.replace("SRC", _SRC), [[str(f) for f in files]]).fetchnumpy()

    def files(self, q: DatasetQuality, venue: str, symbol: str, kind: str) -> list:
        """The readable parts; a damaged one is counted in ``q.corrupt_parts``, named in the notes and
        left out, so one bad file does not hide the rest of the report."""
        good, bad = self.store.split_files(venue, symbol, kind)
        for path, why in bad:
            if kind == q.kind:
                q.corrupt_parts += 1
                q.notes.append(f"corrupt part {path}: {why}")
        return good

    def dataset(self, venue: str, symbol: str, kind: str) -> DatasetQuality:
        q = DatasetQuality(venue, symbol, kind)
        files = self.files(q, venue, symbol, kind)
        if not files:
            return q
        n, lo, hi = self.one("SELECT count(*), min(ts_event), max(ts_event) FROM SRC", files)
        q.events, q.first_ns, q.last_ns = int(n), int(lo or 0), int(hi or 0)
        if not n:
            return q
        q.out_of_order = int(
            self.one(
                "SELECT count(*) FROM (SELECT ts_event < lag(ts_event) OVER "
                "(PARTITION BY filename ORDER BY file_row_number) AS bad FROM SRC) WHERE bad",
                files,
            )[0]
        )
        if kind in BOOKISH or kind == "trade":
            self._stale(q, files, self.th.trade_stale_after_s if kind == "trade" else self.th.stale_after_s)
        if kind in ("book", "quote"):
            b, a = ("bid_px_1", "ask_px_1") if kind == "book" else ("bid_px", "ask_px")
            strict, locked = self.one(
                f"SELECT count(*) FILTER ({b} > {a}), count(*) FILTER ({b} = {a}) FROM SRC", files
            )
            q.crossed_strict, q.locked = int(strict), int(locked)
            q.crossed = q.crossed_strict + q.locked
            q.duplicates = self._dup_ids(files, "update_id")
            px = self.arr(
                f"SELECT ({b} + {a}) / 2 AS px FROM SRC ORDER BY ts_event, filename, file_row_number", files
            )
            q.outliers = count_outliers(px["px"], self.th.outlier_sigma)
        elif kind == "trade":
            q.duplicates = self._dup_ids(files, "trade_id")
            px = self.arr("SELECT price AS px FROM SRC ORDER BY ts_event, filename, file_row_number", files)
            q.outliers = count_outliers(px["px"], self.th.outlier_sigma)
        elif kind.startswith("bar_"):
            self._bars(q, files)
        if kind in ("book", "depth"):
            gap_files = self.files(q, venue, symbol, "gap")
            q.gap_rows = int(self.one("SELECT count(*) FROM SRC", gap_files)[0]) if gap_files else 0
            depth_files = self.files(q, venue, symbol, "depth")
            if depth_files:
                q.chain_breaks, dup = self._chain(depth_files, pu_chained=depth_continuity(venue) == "pu")
                if kind == "depth":
                    q.duplicates = dup
            q.gaps = q.gap_rows + q.chain_breaks
        return q

    def _stale(self, q: DatasetQuality, files: list, after_s: float) -> None:
        thr = int(after_s * NS_PER_S)
        n, longest, start = self.one(
            f"SELECT count(*) FILTER (dt > {thr}), max(dt), arg_max(prev, dt) FROM ("
            "SELECT ts_event - lag(ts_event) OVER w AS dt, lag(ts_event) OVER w AS prev FROM SRC "
            "WINDOW w AS (ORDER BY ts_event, filename, file_row_number))",
            files,
        )
        q.stale_periods = int(n or 0)
        if q.stale_periods:
            q.longest_stale_s = float(longest) / NS_PER_S
            q.longest_stale_start_ns = int(start)

    def _dup_ids(self, files: list, col: str) -> int:
        n, d = self.one(f"SELECT count({col}), count(DISTINCT {col}) FROM SRC WHERE {col} >= 0", files)
        return int(n - d)

    def _bars(self, q: DatasetQuality, files: list) -> None:
        iv = self.one(
            "SELECT median(d) FROM (SELECT ts_open - lag(ts_open) OVER (ORDER BY ts_open) AS d FROM SRC) "
            "WHERE d > 0",
            files,
        )[0]
        n, d, lo, hi = self.one(
            "SELECT count(*), count(DISTINCT ts_open), min(ts_open), max(ts_open) FROM SRC", files
        )
        q.duplicates = int(n - d)
        from orderflow.data.importers.klines import parse_interval

        try:
            step = parse_interval(q.kind.removeprefix("bar_"))[1]
        except Exception:
            step = int(iv or 0)
            q.notes.append(f"interval of {q.kind} taken from the median spacing")
        if step > 0:
            q.missing_bars = int((hi - lo) // step + 1 - d)
            off = self.one(f"SELECT count(*) FILTER ((ts_open - {int(lo)}) % {step} <> 0) FROM SRC", files)[0]
            if off:
                q.notes.append(f"{off} bars open off the {step // NS_PER_S} s grid")

    def _chain(self, files: list, pu_chained: bool) -> tuple[int, int]:
        """(chain breaks, duplicate diff messages) over the stored depth messages of one symbol."""
        msgs = self.arr(
            "SELECT first_update_id f, last_update_id l, prev_update_id p, is_snapshot s FROM "
            "(SELECT DISTINCT filename, ts_event, ts_recv, first_update_id, last_update_id, prev_update_id, "
            "is_snapshot FROM SRC WHERE last_update_id >= 0) ORDER BY l, s DESC",
            files,
        )
        f, last, p, s = (msgs[k] for k in ("f", "l", "p", "s"))
        if len(last) == 0:
            return 0, 0
        # identical messages stored twice (two recordings of the same stream) are duplicates, not breaks
        same = np.zeros(len(last), dtype=bool)
        same[1:] = (last[1:] == last[:-1]) & (f[1:] == f[:-1]) & (s[1:] == s[:-1])
        dups = int(same[~s].sum())
        f, last, p, s = f[~same], last[~same], p[~same], s[~same]
        use_pu = pu_chained and bool(np.any(p[~s] >= 0))
        prev, after_snap = last[:-1], s[:-1]
        f, last, p, cur_snap = f[1:], last[1:], p[1:], s[1:]
        if use_pu:
            linked = p == prev
            bridged = ((f <= prev) | (p <= prev)) & (prev <= last)
        else:
            linked = f == prev + 1
            bridged = (f <= prev + 1) & (prev + 1 <= last)
        # the first diff after a snapshot must bridge it; a snapshot itself restarts the chain
        ok = np.where(after_snap, bridged, linked) | cur_snap
        breaks = int((~ok).sum())
        return breaks, dups


def count_outliers(px: np.ndarray, sigma: float) -> int:
    """Prices whose 1-event log return has a robust z-score above ``sigma`` (a spike that returns on the
    next event counts once)."""
    px = np.asarray(px, dtype=np.float64)
    px = px[np.isfinite(px) & (px > 0)]
    if len(px) < 3:
        return 0
    r = np.diff(np.log(px))
    nz = r[r != 0]
    if len(nz) < 2:
        return 0
    # centred at zero (1-event returns have no drift worth removing); about a median, tick-sized
    # returns of equal size on both sides would give a MAD of zero
    mad = 1.4826 * float(np.median(np.abs(nz)))
    if mad <= 0:
        return 0
    z = r / mad
    flag = np.abs(z) > sigma
    idx = np.flatnonzero(flag)
    count, skip = 0, -1
    for i in idx:
        if i == skip:
            continue
        count += 1
        if i + 1 < len(r) and flag[i + 1] and np.sign(z[i + 1]) != np.sign(z[i]):
            skip = i + 1
    return count


def check(
    store: Store,
    venue: str | None = None,
    symbol: str | None = None,
    thresholds: QualityThresholds | None = None,
) -> QualityReport:
    """Measure every stored dataset (optionally of one venue / symbol). ``gap`` datasets are folded
    into their symbol's book and depth entries and listed alone only when neither is stored."""
    th = thresholds or QualityThresholds()
    ck = _Checker(store, th)
    keys = store.datasets(venue, symbol)
    out = []
    try:
        for v, s, k in keys:
            if k == "gap":
                if (v, s, "book") in keys or (v, s, "depth") in keys:
                    continue
                q = DatasetQuality(v, s, k)
                gap_files = ck.files(q, v, s, k)
                q.events = q.gaps = q.gap_rows = (
                    int(ck.one("SELECT count(*) FROM SRC", gap_files)[0]) if gap_files else 0
                )
                out.append(q)
                continue
            out.append(ck.dataset(v, s, k))
    finally:
        ck.con.close()
    return QualityReport(out, th)


def render(report: QualityReport) -> str:
    """A plain-text table, one line per dataset, then the failures (or ``OK``)."""
    head = (
        "venue",
        "symbol",
        "kind",
        "events",
        "gaps",
        "crossed",
        "locked",
        "stale",
        "longest",
        "ooo",
        "dups",
        "outliers",
        "missing",
        "corrupt",
        "from",
        "to",
    )
    rows = [head]
    for d in report.datasets:
        rows.append(
            (
                d.venue,
                d.symbol,
                d.kind,
                str(d.events),
                str(d.gaps),
                str(d.crossed),
                str(d.locked),
                str(d.stale_periods),
                f"{d.longest_stale_s:.1f}s" if d.stale_periods else "-",
                str(d.out_of_order),
                str(d.duplicates),
                str(d.outliers),
                str(d.missing_bars) if d.kind.startswith("bar_") else "-",
                str(d.corrupt_parts),
                ns_to_iso(d.first_ns)[:19] if d.events else "-",
                ns_to_iso(d.last_ns)[:19] if d.events else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    for d in report.datasets:
        if d.stale_periods:
            lines.append(
                f"{d.venue}/{d.symbol}/{d.kind}: longest silence {d.longest_stale_s:.1f} s from "
                f"{ns_to_iso(d.longest_stale_start_ns)}"
            )
        lines += [f"{d.venue}/{d.symbol}/{d.kind}: {n}" for n in d.notes]
    fails = report.failures()
    lines += [f"FAIL {f}" for f in fails] or ["OK: no threshold crossed"]
    return "\n".join(lines)
