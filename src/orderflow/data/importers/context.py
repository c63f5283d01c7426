"""Importers of market context series, stored point in time (issue 19).

Every context row keeps two times: ``ts_event``, the time the value describes (a funding time, the
start of a day), and ``ts_recv``, the time it became available. A recorded row's ``ts_recv`` is its
receive time; an imported or backfilled row's is its *publication* time, ``ts_event`` plus a delay,
never the start of the period it describes. A decision at time t may read a row only when
``ts_recv <= t`` (:func:`orderflow.data.context.asof`).

Formats:

- ``funding``: funding-rate histories, one row per funding time, kind ``funding`` (columns ``rate``,
  and ``mark_price``, NaN when the file has none):
  - freqtrade's ``PAIR-8h-funding_rate.feather`` / ``.csv`` (``date`` in UTC, the rate in ``open``);
  - Binance's REST ``GET /fapi/v1/fundingRate`` answer saved as JSON (``fundingTime`` in ms,
    ``fundingRate`` and ``markPrice`` as strings), or a CSV with those columns.

  A rate settles at its funding time and Binance publishes it then: the delay defaults to 0.
- ``fear-greed``: the alternative.me crypto fear & greed index, one row per UTC day, venue
  ``alternative.me``, symbol ``FNG``, kind ``fear_greed`` (``value`` 0-100, ``classification`` code 0-4
  for Extreme Fear .. Extreme Greed): a CSV ``date,value,value_classification`` (any row order) or the
  API's JSON (``{"data": [{"value": "18", "value_classification": "Extreme Fear", "timestamp":
  "1773273600"}]}``). The value of a day describes that day, so by default it is available at the
  day's end plus 10 minutes (``delay_s`` = 87,000).

Re-importing a file replaces what it wrote; rows already stored from another file are left out (key
``ts_event``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from orderflow.data.importers.base import ImportError_, ImportReport
from orderflow.data.importers.binance_raw import _source_tag
from orderflow.data.importers.klines import _FREQTRADE_NAME, symbol_from_pair
from orderflow.data.store import Store

log = logging.getLogger(__name__)
NS = 1_000_000_000
FUNDING_DELAY_S = 0.0
FEAR_GREED_DELAY_S = 86_400.0 + 600.0
FEAR_GREED_CLASSES = ("Extreme Fear", "Fear", "Neutral", "Greed", "Extreme Greed")


def _times_ns(values: pd.Series, path: Path, column: str) -> np.ndarray:
    try:
        t = pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        raise ImportError_(f"{path}: column {column!r} holds values that are not times") from None
    if t.isna().any():
        raise ImportError_(f"{path}: column {column!r}: {int(t.isna().sum())} rows without a time")
    return t.dt.as_unit("ns").astype("int64").to_numpy()  # strings parse to seconds in pandas 2


def _read_table(path: Path) -> pd.DataFrame | list | dict:
    name = path.name.lower()
    try:
        if name.endswith(".feather"):
            return pd.read_feather(path)
        if name.endswith(".json"):
            return json.loads(path.read_text(encoding="utf-8"))
        return pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise ImportError_(f"{path}: cannot be read ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def _funding_frame(path: Path) -> tuple[pd.DataFrame, str | None]:
    """(ts_event, rate, mark_price) of one file, and the symbol its content names."""
    data = _read_table(path)
    if isinstance(data, list | dict):  # the REST answer: a list of {symbol, fundingTime, fundingRate, ...}
        rows = data if isinstance(data, list) else data.get("data", [])
        if not rows or not all(isinstance(r, dict) and "fundingTime" in r for r in rows):
            raise ImportError_(f"{path}: not a fundingRate answer (want a list of objects with fundingTime)")
        data = pd.DataFrame(rows)
    cols = set(data.columns)
    if {"fundingTime", "fundingRate"} <= cols:
        t = pd.to_numeric(data["fundingTime"], errors="coerce").to_numpy(np.float64)
        rate = pd.to_numeric(data["fundingRate"], errors="coerce").to_numpy(np.float64)
        mark = pd.to_numeric(data.get("markPrice", pd.Series(np.nan, index=data.index)), errors="coerce")
        ts = np.where(np.isfinite(t), t, np.nan) * 1e6
        syms = data["symbol"].dropna().unique() if "symbol" in cols else []
        sym = str(syms[0]) if len(syms) == 1 else None
    elif {"date", "open"} <= cols:  # freqtrade: the rate in open
        ts = _times_ns(data["date"], path, "date").astype(np.float64)
        rate = pd.to_numeric(data["open"], errors="coerce").to_numpy(np.float64)
        mark = pd.Series(np.nan, index=data.index)
        sym = None
    else:
        raise ImportError_(
            f"{path}: want freqtrade's date/open columns or Binance's fundingTime/fundingRate, got "
            f"{', '.join(map(str, data.columns))}"
        )
    ok = np.isfinite(ts) & np.isfinite(rate)
    frame = pd.DataFrame(
        {"ts_event": ts[ok].astype(np.int64), "rate": rate[ok], "mark_price": np.asarray(mark, float)[ok]}
    )
    return frame, sym


def _finish(path: Path, frame: pd.DataFrame, delay_s: float, report: ImportReport, what: str) -> pd.DataFrame:
    if frame.empty:
        raise ImportError_(f"{path}: no valid {what} rows")
    frame = frame.sort_values("ts_event", kind="stable")
    dup = frame["ts_event"].duplicated(keep="first")
    if dup.any():
        report.problem(f"{path}: {int(dup.sum())} rows with a duplicate time dropped (kept the first)")
        frame = frame[~dup]
    frame = frame.reset_index(drop=True)
    frame.insert(1, "ts_recv", frame["ts_event"].to_numpy(np.int64) + round(delay_s * NS))
    return frame


def import_funding(
    store: Store,
    paths: Sequence[Path],
    venue: str | None = None,
    symbol: str | None = None,
    delay_s: float = FUNDING_DELAY_S,
    source: str | None = None,
) -> ImportReport:
    """Import funding-rate files (module docstring) as kind ``funding`` of ``venue`` (default
    ``binance-usdm``) and the symbol the option, the content or the file name gives."""
    report = ImportReport("funding", [str(p) for p in paths])
    for path in map(Path, paths):
        frame, found = _funding_frame(path)
        m = _FREQTRADE_NAME.match(path.name.rsplit(".", 1)[0])
        sym = symbol or found or (symbol_from_pair(m.group(1)) if m else None)
        if not sym:
            raise ImportError_(f"{path}: cannot infer the symbol from the file; give --symbol")
        frame = _finish(path, frame, delay_s, report, "funding")
        v = venue or "binance-usdm"
        st = store.put(v, sym, "funding", frame, source=source or _source_tag([path]))
        report.stored(f"{v}/{sym}/funding", st)
        log.info("imported %d funding rates for %s/%s from %s", len(frame), v, sym, path)
    return report


def _fear_greed_frame(path: Path) -> pd.DataFrame:
    data = _read_table(path)
    if isinstance(data, list | dict):  # the API's answer
        rows = data.get("data") if isinstance(data, dict) else data
        if (
            not isinstance(rows, list)
            or not rows
            or not all(isinstance(r, dict) and "timestamp" in r for r in rows)
        ):
            raise ImportError_(f"{path}: not a fear & greed answer (want data: [{{value, timestamp}}])")
        df = pd.DataFrame(rows)
        ts = pd.to_numeric(df["timestamp"], errors="coerce").to_numpy(np.float64) * NS
    else:
        df = data
        if not {"date", "value"} <= set(df.columns):
            raise ImportError_(f"{path}: want the columns date, value, value_classification")
        ts = _times_ns(df["date"], path, "date").astype(np.float64)
    value = pd.to_numeric(df["value"], errors="coerce").to_numpy(np.float64)
    names = df.get("value_classification", pd.Series("", index=df.index)).astype(str)
    code = names.map({n: i for i, n in enumerate(FEAR_GREED_CLASSES)}).fillna(-1).to_numpy(np.int8)
    ok = np.isfinite(ts) & np.isfinite(value) & (value >= 0) & (value <= 100)
    day = (ts[ok].astype(np.int64) // (86_400 * NS)) * (86_400 * NS)  # the UTC day the value describes
    return pd.DataFrame({"ts_event": day, "value": value[ok], "classification": code[ok]})


def import_fear_greed(
    store: Store,
    paths: Sequence[Path],
    delay_s: float = FEAR_GREED_DELAY_S,
    source: str | None = None,
) -> ImportReport:
    """Import fear & greed files (module docstring) as ``alternative.me/FNG`` kind ``fear_greed``."""
    report = ImportReport("fear-greed", [str(p) for p in paths])
    for path in map(Path, paths):
        frame = _finish(path, _fear_greed_frame(path), delay_s, report, "fear & greed")
        st = store.put("alternative.me", "FNG", "fear_greed", frame, source=source or _source_tag([path]))
        report.stored("alternative.me/FNG/fear_greed", st)
    return report
