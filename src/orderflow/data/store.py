"""The market-data store: a Parquet dataset partitioned ``venue=/symbol=/kind=/date=``, read with DuckDB.

Layout::

    <root>/venue=binance-usdm/symbol=BTCUSDT/kind=book/date=2024-08-08/part-<source>-<n>.parquet
    <root>/instruments.json      tick and lot sizes per venue/symbol
    <root>/_tmp/                 files being written (never read)

Writes are atomic per file: a part is written and fsynced under ``_tmp/`` and then renamed into its
partition, so an interrupted write never leaves a half-written part visible. Each write carries a
``source`` tag (an import file, a simulator seed, a recording session); writing the same source again
replaces its parts (new parts land first, then the old ones are removed), so imports are idempotent.

Every table has ``ts_event`` and ``ts_recv`` (int64 ns, UTC). Reads return rows ordered by
``ts_event`` and, within equal times, by the order in which they were written.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orderflow.core.instruments import Instrument

KINDS = ("book", "depth", "trade", "quote", "bar", "gap", "regime")
_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
NS_PER_DAY = 86_400 * 1_000_000_000


class StoreError(Exception):
    pass


def _check_name(what: str, value: str) -> str:
    if not value or not _SAFE.match(value):
        raise StoreError(f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-'")
    return value


def kind_name(kind: str, interval: str | None = None) -> str:
    """``bar`` data is stored per interval as kind ``bar_1m``, ``bar_1h``, ..."""
    return f"{kind}_{interval}" if interval else kind


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


class Store:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp = self.root / "_tmp"
        self.tmp.mkdir(exist_ok=True)
        self._clean_tmp()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def _clean_tmp(self, older_than_s: float = 3600.0) -> None:
        now = time.time()
        for p in self.tmp.glob("*"):
            try:
                if now - p.stat().st_mtime > older_than_s:
                    p.unlink()
            except OSError:
                pass

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
        """Write ``data`` (must have int64 ``ts_event``) split by UTC date of ``ts_event``.

        With ``replace``, earlier parts of the same ``source`` in the touched partitions are removed
        after the new parts are in place. Returns the new part paths."""
        _check_name("source", source)
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        if table.num_rows == 0:
            return []
        for col in ("ts_event", "ts_recv"):
            if col not in table.column_names:
                raise StoreError(f"{kind} data for {venue}/{symbol} has no {col!r} column")
        ts = table.column("ts_event").to_numpy()
        days = ts // NS_PER_DAY
        written: list[Path] = []
        old: list[Path] = []
        breaks = np.flatnonzero(np.diff(days)) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [len(days)]])
        # rows are normally time-ordered; unordered input falls back to a grouped write per day
        if np.any(np.diff(days) < 0):
            groups = {int(d): np.flatnonzero(days == d) for d in np.unique(days)}
            chunks = [(d, table.take(pa.array(idx))) for d, idx in groups.items()]
        else:
            chunks = [(int(days[s]), table.slice(s, e - s)) for s, e in zip(starts, ends, strict=True)]
        by_day: dict[int, list[pa.Table]] = {}
        for d, t in chunks:
            by_day.setdefault(d, []).append(t)
        for d, parts in by_day.items():
            date = time.strftime("%Y-%m-%d", time.gmtime(d * 86400))
            pdir = self.partition_dir(venue, symbol, kind, date)
            if replace:
                old.extend(pdir.glob(f"part-{source}-*.parquet"))
            written.append(self._write_part(pdir, source, pa.concat_tables(parts)))
        keep = set(written)
        for p in old:
            if p not in keep:
                p.unlink(missing_ok=True)
        return written

    def _write_part(self, pdir: Path, source: str, table: pa.Table) -> Path:
        pdir.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"{uuid.uuid4().hex}.parquet"
        pq.write_table(table, tmp, compression="zstd", row_group_size=256_000)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        final = pdir / f"part-{source}-{uuid.uuid4().hex[:12]}.parquet"
        os.replace(tmp, final)
        dfd = os.open(pdir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return final

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
        """Rows of one dataset ordered by ``ts_event`` (ties in write order). Empty if none stored."""
        files = self.files(venue, symbol, kind)
        if not files:
            return pd.DataFrame()
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "* EXCLUDE (filename, file_row_number)"
        where = []
        if start_ns is not None:
            where.append(f"ts_event >= {int(start_ns)}")
        if end_ns is not None:
            where.append(f"ts_event < {int(end_ns)}")
        sql = (
            f"SELECT {cols} FROM read_parquet(?, filename=true, file_row_number=true, union_by_name=true)"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY ts_event, filename, file_row_number"
        )
        with duckdb.connect() as con:
            return con.execute(sql, [[str(f) for f in files]]).fetchdf()

    def sql(self, query: str) -> pd.DataFrame:
        """Run DuckDB SQL where ``market`` is a view over every stored part (hive columns included)."""
        with duckdb.connect() as con:
            glob = str(self.root / "venue=*/symbol=*/kind=*/date=*/part-*.parquet")
            con.execute(
                f"CREATE VIEW market AS SELECT * FROM read_parquet('{glob}', hive_partitioning=true, "
                "union_by_name=true)"
            )
            return con.execute(query).fetchdf()

    def ls(self) -> list[Dataset]:
        files = self.files()
        if not files:
            return []
        groups: dict[tuple[str, str, str], list[Path]] = {}
        for f in files:
            venue, symbol, kind = (p.split("=", 1)[1] for p in f.parts[-5:-2])
            groups.setdefault((venue, symbol, kind), []).append(f)
        out = []
        with duckdb.connect() as con:
            for (venue, symbol, kind), fl in sorted(groups.items()):
                rows, lo, hi = con.execute(
                    "SELECT count(*), min(ts_event), max(ts_event) FROM read_parquet(?)",
                    [[str(f) for f in fl]],
                ).fetchone()
                size = sum(f.stat().st_size for f in fl)
                out.append(Dataset(venue, symbol, kind, int(rows), int(lo), int(hi), len(fl), size))
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

    # -- instrument metadata -----------------------------------------------------------------------
    @property
    def _instruments_path(self) -> Path:
        return self.root / "instruments.json"

    def instruments(self) -> dict[str, Instrument]:
        p = self._instruments_path
        if not p.exists():
            return {}
        raw = json.loads(p.read_text())
        return {k: Instrument(**v) for k, v in raw.items()}

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        from orderflow.core.instruments import lookup

        return self.instruments().get(f"{venue}/{symbol}") or lookup(venue, symbol)

    def put_instrument(self, inst: Instrument) -> None:
        cur = {
            k: {
                "venue": v.venue,
                "symbol": v.symbol,
                "tick_size": v.tick_size,
                "lot_size": v.lot_size,
                "min_notional": v.min_notional,
            }
            for k, v in self.instruments().items()
        }
        cur[f"{inst.venue}/{inst.symbol}"] = {
            "venue": inst.venue,
            "symbol": inst.symbol,
            "tick_size": inst.tick_size,
            "lot_size": inst.lot_size,
            "min_notional": inst.min_notional,
        }
        tmp = self.tmp / f"instruments-{uuid.uuid4().hex}.json"
        tmp.write_text(json.dumps(cur, indent=1, sort_keys=True))
        os.replace(tmp, self._instruments_path)
