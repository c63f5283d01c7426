"""Parts written straight into a store's partition, past its write path: what a store written by an
older version (which kept duplicates) or a file copied in by hand looks like."""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orderflow.data.store import Store


def plant_part(store: Store, venue: str, symbol: str, kind: str, df: pd.DataFrame, date: str) -> Path:
    pdir = store.partition_dir(venue, symbol, kind, date)
    pdir.mkdir(parents=True, exist_ok=True)
    path = pdir / f"part-planted-{uuid.uuid4().hex[:12]}.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    return path


def truncated_copy(src: Path, dst: Path, keep: float) -> Path:
    """The first ``keep`` share of a gzip recording's lines, as a recorder killed mid-file leaves it."""
    with gzip.open(src, "rb") as fh:
        lines = fh.readlines()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(dst, "wb") as fh:
        fh.writelines(lines[: int(len(lines) * keep)])
    return dst
