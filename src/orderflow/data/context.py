"""Point-in-time reads of context series: what a decision at time t could have known.

A context row (:mod:`orderflow.data.importers.context`) is visible at t only when it had become
available, ``ts_recv <= t``; its ``ts_event`` (the period it describes) may be earlier. :func:`asof`
answers, for each decision time, the latest row available by then (a backward as-of join on
``ts_recv``), never a row published later, even if the period it describes has begun or ended.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def asof(rows: pd.DataFrame, times: np.ndarray, columns: list[str] | None = None) -> pd.DataFrame:
    """For each of ``times`` (int64 ns), the last row of ``rows`` with ``ts_recv <= t`` (ties in
    ``ts_recv``: the latest ``ts_event``). The result has one row per time: ``t``, the row's
    ``ts_event`` and ``ts_recv`` (-1 where nothing was available yet) and ``columns`` (default: every
    other column; NaN, or -1 for integers, where nothing was available)."""
    t = np.asarray(times, dtype=np.int64)
    if columns is None:  # every numeric column but the times (not the store's venue, symbol, kind)
        numeric = [c for c in rows.columns if pd.api.types.is_numeric_dtype(rows[c])]
        columns = [c for c in numeric if c not in ("ts_event", "ts_recv")]
    order = np.lexsort((rows["ts_event"].to_numpy(np.int64), rows["ts_recv"].to_numpy(np.int64)))
    recv = rows["ts_recv"].to_numpy(np.int64)[order]
    i = np.searchsorted(recv, t, side="right") - 1
    seen = i >= 0
    j = np.clip(i, 0, None)
    out: dict[str, np.ndarray] = {"t": t}
    for c in ("ts_event", "ts_recv", *columns):
        v = rows[c].to_numpy()[order]
        integer = v.dtype.kind in "iu"
        if not v.size:
            out[c] = np.full(t.size, -1 if integer else np.nan)
        elif integer:
            out[c] = np.where(seen, v[j], -1).astype(v.dtype)
        else:
            out[c] = np.where(seen, v[j].astype(np.float64), np.nan)
    return pd.DataFrame(out)
