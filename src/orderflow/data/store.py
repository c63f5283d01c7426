"""The market-data store: a Parquet dataset partitioned ``venue=/symbol=/kind=/date=``, read with DuckDB.

Layout::

    <root>/venue=binance-usdm/symbol=BTCUSDT/kind=book/date=2024-08-08/part-<source>-<12 hex>.parquet
    <root>/venue=binance-usdm/symbol=BTCUSDT/kind=funding/date=2024-08/part-...parquet   (sparse kinds)
    <root>/instruments.json      tick and lot sizes per venue/symbol
    <root>/_txn/<id>/            a transaction being written (never read; see :mod:`store_txn`)
    <root>/_locks/               the writer and apply locks

**Atomic.** Every write belongs to a transaction (``with store.transaction(): ...``; a lone
:meth:`Store.write` is one by itself): its parts, removals and instrument changes become visible together
at commit, or not at all, whatever kills the process. The next writer cleans up after a dead one.

**No duplicates.** Rows are de-duplicated at write time on their natural keys (:mod:`store_keys`: trade
id, depth message update id, book/quote time plus update id, bar open time), against the rows already in
the partition and within the new data, so importing the same events under any file name, in any grouping,
any number of times stores them once. Each write carries a ``source`` tag (an import file, a simulator
chunk, a recording batch); with ``replace`` the earlier parts of the same source in the touched
partitions are removed in the same transaction.

Every table has ``ts_event`` and ``ts_recv`` (int64 ns, UTC). Reads return rows ordered by ``ts_event``,
then by exchange sequence (update id or trade id) where the kind has one, then in write order. A part
that cannot be read is named in a :class:`CorruptPart` error (``orderflow data verify`` checks them all).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orderflow.core.instruments import Instrument
from orderflow.data import store_keys as keys
from orderflow.data.context_schema import sparse_kind
from orderflow.data.store_txn import FileLock, Transaction, fault, recover

log = logging.getLogger("orderflow.store")

KINDS = ("book", "depth", "trade", "quote", "bar", "gap", "regime", "funding", "fear_greed")
_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
_PART = re.compile(r"^part-(?P<source>.+)-[0-9a-f]{12}\.parquet$")
NS_PER_DAY = 86_400 * 1_000_000_000
# the exchange sequence that orders rows of equal ts_event across parts
_SEQUENCE = {"book": "update_id", "quote": "update_id", "depth": "last_update_id", "trade": "trade_id"}


class StoreError(Exception):
    """A store that cannot be opened, written or read; the message names the path."""


class CorruptPart(StoreError):
    """A stored part that cannot be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(
            f"corrupt store part {path}: {reason} (run `orderflow data verify`; delete the file and "
            "re-import its source)"
        )


def _check_name(what: str, value: str) -> str:
    if not value or not _SAFE.match(value):
        raise StoreError(f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-'")
    return value


def kind_name(kind: str, interval: str | None = None) -> str:
    """``bar`` data is stored per interval as kind ``bar_1m``, ``bar_1h``, ..."""
    return f"{kind}_{interval}" if interval else kind


def part_source(path: Path) -> str | None:
    """The source tag in a part's file name."""
    m = _PART.match(path.name)
    return m.group("source") if m else None


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def part_problem(path: Path, full: bool = False) -> str | None:
    """What is wrong with a stored part, or None. The footer is always read; ``full`` decodes every page
    and verifies its checksum (parts are written with page checksums)."""
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=full)
        md = pf.metadata
        if "ts_event" not in pf.schema_arrow.names:
            return "no ts_event column"
        if full:
            n = pf.read().num_rows
            if n != md.num_rows:
                return f"{n} rows decoded, the footer says {md.num_rows}"
    except Exception as e:  # pyarrow raises several types for damaged files
        return _one_line(e)
    return None


@dataclass(frozen=True)
class Dataset:
    venue: str
    symbol: str
    kind: str
    rows: int
    first_ns: int
    last_ns: int
    files: int
    bytes: int
    problems: tuple[str, ...] = ()  # "<file>: <what is wrong>" for parts left out of the counts


@dataclass
class VerifyReport:
    """What :meth:`Store.verify` found: parts, rows and bytes read, damaged parts, open transactions."""

    parts: int = 0
    rows: int = 0
    bytes: int = 0
    problems: list[tuple[Path, str]] = field(default_factory=list)
    pending: list[Path] = field(default_factory=list)


@dataclass
class WriteStats:
    """What one :meth:`Store.put` did: rows given, rows written, rows dropped as already stored."""

    rows_in: int = 0
    rows_written: int = 0
    duplicates: int = 0
    parts: list[Path] = field(default_factory=list)


class Store:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store {self.root} is a file, not a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create store {self.root}: {_one_line(e)}") from None
        self.read_only = not os.access(self.root, os.W_OK)
        if not self.read_only:
            (self.root / "_locks").mkdir(exist_ok=True)
        self.tmp = self.root / "_tmp"
        self._txn_root = self.root / "_txn"
        self._write_lock = FileLock(self.root / "_locks" / "write.lock")
        self._apply_lock = FileLock(self.root / "_locks" / "apply.lock")
        self._txn: Transaction | None = None
        self._ranges: dict[Path, tuple[tuple, tuple[object, object]]] = {}  # footer key ranges of parts
        self.recovered: list[str] = []
        if not self.read_only and self._write_lock.acquire(exclusive=True, blocking=False):
            try:
                self.recovered = recover(self.root, self._txn_root, self._apply_lock)
                self._clean_tmp()
            finally:
                self._write_lock.release()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def _clean_tmp(self, older_than_s: float = 3600.0) -> None:
        """Files left in ``_tmp/`` by the store of earlier versions (writes now stage under ``_txn/``)."""
        now = time.time()
        for p in self.tmp.glob("*") if self.tmp.is_dir() else ():
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > older_than_s:
                    p.unlink()

    # -- paths -------------------------------------------------------------------------------------
    def partition_dir(self, venue: str, symbol: str, kind: str, date: str) -> Path:
        return (
            self.root
            / f"venue={_check_name('venue', venue)}"
            / f"symbol={_check_name('symbol', symbol)}"
            / f"kind={_check_name('kind', kind)}"
            / f"date={date}"
        )

    def files(
        self, venue: str | None = None, symbol: str | None = None, kind: str | None = None
    ) -> list[Path]:
        pat = f"venue={venue or '*'}/symbol={symbol or '*'}/kind={kind or '*'}/date=*/part-*.parquet"
        return sorted(self.root.glob(pat))

    def split_files(
        self, venue: str | None = None, symbol: str | None = None, kind: str | None = None
    ) -> tuple[list[Path], list[tuple[Path, str]]]:
        """(readable parts, [(part, what is wrong)]) by a footer check of every part."""
        good, bad = [], []
        for f in self.files(venue, symbol, kind):
            why = part_problem(f)
            if why is None:
                good.append(f)
            else:
                bad.append((f, why))
        return good, bad

    # -- transactions ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Everything written inside becomes visible at once when the block ends, or not at all (an
        exception discards it; a killed process leaves it for the next writer to discard). Nested blocks
        join the outer one. One process writes at a time; others wait."""
        if self._txn is not None:
            yield self._txn
            return
        if self.read_only:
            raise StoreError(f"store {self.root} is read-only")
        if not self._write_lock.acquire(exclusive=True, blocking=False):
            log.info("store %s: waiting for another process that is writing to it", self.root)
            self._write_lock.acquire(exclusive=True)
        try:
            fault("begin")
            self.recovered += recover(self.root, self._txn_root, self._apply_lock)
            txn_dir = self._txn_root / f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                txn_dir.mkdir(parents=True)
            except OSError as e:
                raise StoreError(f"cannot write to store {self.root}: {_one_line(e)}") from None
            tx = self._txn = Transaction(self.root, txn_dir, self._apply_lock)
            try:
                yield tx
            except BaseException:
                tx.abort()
                raise
            else:
                tx.commit()
            finally:
                self._txn = None
        finally:
            self._write_lock.release()

    # -- writing -----------------------------------------------------------------------------------
    def write(
        self,
        venue: str,
        symbol: str,
        kind: str,
        data: pd.DataFrame | pa.Table,
        source: str,
        replace: bool = True,
    ) -> list[Path]:
        """:meth:`put`, returning the paths of the new parts (in place once the transaction commits)."""
        return self.put(venue, symbol, kind, data, source, replace).parts

    def put(
        self,
        venue: str,
        symbol: str,
        kind: str,
        data: pd.DataFrame | pa.Table,
        source: str,
        replace: bool = True,
    ) -> WriteStats:
        """Write ``data`` (int64 ``ts_event`` and ``ts_recv``) split by UTC date of ``ts_event``, leaving out
        rows whose key is stored already. With ``replace``, earlier parts of the same ``source`` in the
        touched partitions are removed. Part of the current transaction, or one of its own."""
        _check_name("source", source)
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        stats = WriteStats()
        if table.num_rows == 0:
            return stats
        for col in ("ts_event", "ts_recv"):
            if col not in table.column_names:
                raise StoreError(f"{kind} data for {venue}/{symbol} has no {col!r} column")
        with self.transaction() as tx:
            for date, chunk in _by_day(table, monthly=sparse_kind(kind)):
                pdir = self.partition_dir(venue, symbol, kind, date)
                stats.rows_in += chunk.num_rows
                if replace:
                    for p in pdir.glob("part-*.parquet"):
                        if part_source(p) == source:
                            tx.deletes.add(p)
                    for _, final in tx.staged_in(pdir):
                        if part_source(final) == source:
                            tx.unstage(final)
                            tx.caches.pop(final, None)
                cols = keys.key_columns(kind, chunk)
                keep = keys.fresh_rows(kind, cols, self._stored_keys(tx, pdir, kind, chunk), chunk)
                if not keep.all():
                    stats.duplicates += int((~keep).sum())
                    chunk = chunk.filter(pa.array(keep))
                    cols = [c[keep] for c in cols]
                if chunk.num_rows == 0:
                    continue
                final = pdir / f"part-{source}-{uuid.uuid4().hex[:12]}.parquet"
                staged = tx.stage_path()
                pq.write_table(
                    chunk, staged, compression="zstd", row_group_size=256_000, write_page_checksum=True
                )
                rc = chunk.column(keys.range_column(kind))
                tx.caches[final] = (pc.min(rc).as_py(), pc.max(rc).as_py(),
                                    keys.stored_keys(kind, cols))  # fmt: skip
                tx.add(staged, final)
                stats.parts.append(final)
                stats.rows_written += chunk.num_rows
        return stats

    def _stored_keys(self, tx: Transaction, pdir: Path, kind: str, chunk: pa.Table) -> list[list[np.ndarray]]:
        """Keys of the rows in ``pdir`` (stored and not being removed, or staged in ``tx``) that may clash
        with ``chunk``. A part whose range of the first key column (from its footer, remembered between
        transactions) misses the chunk's is not read: appending writes (a recorder's batches, simulator
        chunks) read no keys at all."""
        rc = keys.range_column(kind)
        lo, hi = pc.min(chunk.column(rc)).as_py(), pc.max(chunk.column(rc)).as_py()
        out = []
        for p in pdir.glob("part-*.parquet"):
            if p in tx.deletes:
                continue
            plo, phi = self._part_range(p, rc)
            if plo is None or (plo <= hi and phi >= lo):
                if p not in tx.caches:
                    tx.caches[p] = self._part_keys(p, kind)
                out.append(tx.caches[p])
        for _, f in tx.staged_in(pdir):
            plo, phi, k = tx.caches[f]  # type: ignore[misc]
            if plo <= hi and phi >= lo:
                out.append(k)
        return out

    def _part_range(self, path: Path, column: str) -> tuple[object, object]:
        """(min, max) of ``column`` in a part's footer statistics, (None, None) when absent."""
        try:
            st = path.stat()
            sig = (st.st_size, st.st_mtime_ns, column)
            hit = self._ranges.get(path)
            if hit is not None and hit[0] == sig:
                return hit[1]
            pf = pq.ParquetFile(path)
            col = pf.schema_arrow.get_field_index(column)
            stats = [pf.metadata.row_group(i).column(col).statistics for i in range(pf.num_row_groups)]
        except Exception as e:
            raise CorruptPart(path, _one_line(e)) from None
        rng: tuple[object, object] = (None, None)
        if col >= 0 and stats and all(s is not None and s.has_min_max for s in stats):
            rng = (min(s.min for s in stats), max(s.max for s in stats))
        self._ranges[path] = (sig, rng)
        return rng

    def _part_keys(self, path: Path, kind: str) -> list[np.ndarray]:
        idc, names = keys.id_column(kind), keys.key_names(kind)
        try:
            pf = pq.ParquetFile(path)
            table = pf.read(columns=list(names) if names else None)
            full = None
            if idc is not None and bool(pc.any(pc.less(table.column(idc), 0)).as_py()):
                full = pf.read()
        except Exception as e:
            raise CorruptPart(path, _one_line(e)) from None
        return keys.stored_keys(kind, keys.key_columns(kind, table, full))

    # -- reading -----------------------------------------------------------------------------------
    def read(
        self,
        venue: str,
        symbol: str,
        kind: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        columns: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Rows of one dataset ordered by ``ts_event``, exchange sequence, write order. Empty if none
        stored. A damaged part raises :class:`CorruptPart` naming it."""
        with self._apply_lock.held(exclusive=False):
            files = self.files(venue, symbol, kind)
            if not files:
                return pd.DataFrame()
            cols = (
                ", ".join(f'"{c}"' for c in columns) if columns else "* EXCLUDE (filename, file_row_number)"
            )
            where = []
            if start_ns is not None:
                where.append(f"ts_event >= {int(start_ns)}")
            if end_ns is not None:
                where.append(f"ts_event < {int(end_ns)}")
            seq = _SEQUENCE.get(kind)
            sql = (
                f"SELECT {cols} FROM read_parquet(?, filename=true, file_row_number=true, union_by_name=true)"
                + (f" WHERE {' AND '.join(where)}" if where else "")
                + f" ORDER BY ts_event, {seq + ', ' if seq else ''}filename, file_row_number"
            )
            try:
                with duckdb.connect() as con:
                    return con.execute(sql, [[str(f) for f in files]]).fetchdf()
            except duckdb.Error as e:
                raise self._read_error(files, e) from None

    def _read_error(self, files: list[Path], e: Exception) -> StoreError:
        """The part that broke a read, found by a footer check, then a full decode, of each one."""
        for full in (False, True):
            for f in files:
                why = part_problem(f, full=full)
                if why is not None:
                    return CorruptPart(f, why)
        return StoreError(f"reading store {self.root} failed: {_one_line(e)}")

    def sql(self, query: str) -> pd.DataFrame:
        """Run DuckDB SQL where ``market`` is a view over every stored part (hive columns included)."""
        with self._apply_lock.held(exclusive=False), duckdb.connect() as con:
            glob = str(self.root / "venue=*/symbol=*/kind=*/date=*/part-*.parquet")
            con.execute(
                f"CREATE VIEW market AS SELECT * FROM read_parquet('{glob}', hive_partitioning=true, "
                "union_by_name=true)"
            )
            try:
                return con.execute(query).fetchdf()
            except duckdb.Error as e:
                raise self._read_error(self.files(), e) from None

    def ls(self) -> list[Dataset]:
        """Every dataset with its rows, span, parts and size; damaged parts are left out of the counts and
        named in ``problems``."""
        with self._apply_lock.held(exclusive=False):
            files = self.files()
            groups: dict[tuple[str, str, str], list[Path]] = {}
            for f in files:
                venue, symbol, kind = (p.split("=", 1)[1] for p in f.parts[-5:-2])
                groups.setdefault((venue, symbol, kind), []).append(f)
            out = []
            with duckdb.connect() as con:
                for (venue, symbol, kind), fl in sorted(groups.items()):
                    bad = [(f, why) for f in fl if (why := part_problem(f)) is not None]
                    good = [f for f in fl if f not in {b for b, _ in bad}]
                    rows = lo = hi = 0
                    if good:
                        rows, lo, hi = con.execute(
                            "SELECT count(*), min(ts_event), max(ts_event) FROM read_parquet(?)",
                            [[str(f) for f in good]],
                        ).fetchone()
                    size = sum(f.stat().st_size for f in fl)
                    problems = tuple(f"{f}: {why}" for f, why in bad)
                    out.append(
                        Dataset(
                            venue,
                            symbol,
                            kind,
                            int(rows),
                            int(lo or 0),
                            int(hi or 0),
                            len(fl),
                            size,
                            problems,
                        )
                    )
            return out

    def datasets(
        self, venue: str | None = None, symbol: str | None = None, kind: str | None = None
    ) -> list[tuple[str, str, str]]:
        seen = []
        for f in self.files(venue, symbol, kind):
            key = tuple(p.split("=", 1)[1] for p in f.parts[-5:-2])
            if key not in seen:
                seen.append(key)
        return seen  # type: ignore[return-value]

    def verify(
        self,
        venue: str | None = None,
        symbol: str | None = None,
        full: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> VerifyReport:
        """Check every part: its footer, and with ``full`` every page against its checksum and the row
        count against the footer. ``progress(done, total)`` is called as parts are checked."""
        rep = VerifyReport(pending=self.pending_transactions())
        with self._apply_lock.held(exclusive=False):
            files = self.files(venue, symbol)
            for i, f in enumerate(files, 1):
                why = part_problem(f, full=full)
                rep.parts += 1
                rep.bytes += f.stat().st_size
                if why is None:
                    rep.rows += pq.ParquetFile(f).metadata.num_rows
                else:
                    rep.problems.append((f, why))
                if progress is not None:
                    progress(i, len(files))
        return rep

    def pending_transactions(self) -> list[Path]:
        """Transaction directories present now (a live writer's, or a dead one's not yet cleaned up)."""
        return sorted(p for p in self._txn_root.iterdir() if p.is_dir()) if self._txn_root.is_dir() else []

    def remove_parts(self, venue: str, symbol: str, kind: str, source_prefix: str) -> int:
        """Remove (in the current transaction, or one of its own) every part of a dataset whose source
        starts with ``source_prefix``; returns how many."""
        with self.transaction() as tx:
            n = 0
            for f in self.files(venue, symbol, kind):
                if (part_source(f) or "").startswith(source_prefix):
                    tx.deletes.add(f)
                    n += 1
            for _, final in list(tx.adds):
                if final.parent.parent.name == f"kind={kind}" and (part_source(final) or "").startswith(
                    source_prefix
                ):
                    tx.unstage(final)
            return n

    # -- instrument metadata -----------------------------------------------------------------------
    @property
    def _instruments_path(self) -> Path:
        return self.root / "instruments.json"

    def _instruments_raw(self) -> dict[str, dict]:
        if self._txn is not None and self._txn.instruments is not None:
            return dict(self._txn.instruments)
        p = self._instruments_path
        if not p.exists():
            return {}
        try:
            return json.loads(p.read_text())
        except ValueError as e:
            raise StoreError(f"{p} is not valid JSON ({_one_line(e)}); fix or delete it") from None

    def instruments(self) -> dict[str, Instrument]:
        return {k: Instrument(**v) for k, v in self._instruments_raw().items()}

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        from orderflow.core.instruments import lookup

        return self.instruments().get(f"{venue}/{symbol}") or lookup(venue, symbol)

    def put_instrument(self, inst: Instrument) -> None:
        """Record tick and lot sizes (in the current transaction, or one of its own)."""
        with self.transaction() as tx:
            cur = self._instruments_raw()
            cur[f"{inst.venue}/{inst.symbol}"] = {
                "venue": inst.venue,
                "symbol": inst.symbol,
                "tick_size": inst.tick_size,
                "lot_size": inst.lot_size,
                "min_notional": inst.min_notional,
            }
            tx.instruments = cur


def _by_day(table: pa.Table, monthly: bool = False) -> list[tuple[str, pa.Table]]:
    """``table`` split by the UTC date of ``ts_event`` (rows keep their order within a day); with
    ``monthly``, by its UTC month (partition ``date=YYYY-MM``)."""
    ts = table.column("ts_event").to_numpy()
    days = ts // NS_PER_DAY
    if monthly:
        month = days.astype("datetime64[D]").astype("datetime64[M]")
        days = month.astype("datetime64[D]").astype(np.int64)  # the first day of the month
    if np.any(np.diff(days) < 0):  # unordered input: a grouped split per day
        chunks = [(int(d), table.take(pa.array(np.flatnonzero(days == d)))) for d in np.unique(days)]
    else:
        breaks = np.flatnonzero(np.diff(days)) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [len(days)]])
        chunks = [(int(days[s]), table.slice(s, e - s)) for s, e in zip(starts, ends, strict=True)]
    fmt = "%Y-%m" if monthly else "%Y-%m-%d"
    return [(time.strftime(fmt, time.gmtime(d * 86400)), t) for d, t in chunks]
