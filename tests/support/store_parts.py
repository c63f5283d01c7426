"""Parts written straight into a store's partition, past its write path: what a store written by an
older version (which kept duplicates) or a file copied in by hand looks like."""

from __future__ import annotations

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
