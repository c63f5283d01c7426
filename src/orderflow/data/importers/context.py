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
  - Binance Vision's monthly ``SYMBOL-fundingRate-YYYY-MM.csv`` (or its ``.zip``; format ``funding``
    or ``binance-funding``): ``calc_time`` (ms, the funding time), ``funding_interval_hours``,
    ``last_funding_rate``; the file has no mark price and its interval column is not stored (the times
    themselves carry it).
- ``binance-metrics``: Binance Vision's USD-M daily ``SYMBOL-metrics-YYYY-MM-DD.csv`` (or ``.zip``), one
  row per 5 minutes, into five kinds (venue ``binance-usdm``; the REST endpoint each column mirrors in
  brackets):

  - ``sum_open_interest`` -> ``open_interest_5m.open_interest``: open interest, base units (REST
    ``openInterestHist`` sumOpenInterest); ``sum_open_interest_value`` -> ``.open_interest_value``: the
    same in quote (sumOpenInterestValue);
  - ``count_toptrader_long_short_ratio`` -> ``ls_top_accounts_5m.ratio``: top traders' long/short
    ratio by account count (``topLongShortAccountRatio``);
  - ``sum_toptrader_long_short_ratio`` -> ``ls_top_positions_5m.ratio``: top traders' long/short ratio
    by position size (``topLongShortPositionRatio``);
  - ``count_long_short_ratio`` -> ``ls_global_5m.ratio``: all accounts' long/short ratio by count
    (``globalLongShortAccountRatio``);
  - ``sum_taker_long_short_vol_ratio`` -> ``taker_ratio_5m.buy_sell_ratio``: taker buy / sell volume
    (``takerlongshortRatio`` buySellRatio).

  ``long_share`` / ``short_share`` of the three long/short kinds are derived from the ratio r as
  r / (1 + r) and 1 / (1 + r) (the REST answers' long and short shares add up to 1 and their ratio is
  r); ``buy_volume`` / ``sell_volume`` of ``taker_ratio_5m`` are not in the file and are stored NaN.

  ``create_time`` labels: up to 2026-06-24 the files label each row with the *end* of its 5 minutes
  (a day's file runs 00:05 .. 00:00 of the next day; the stock columns are the snapshot at that time,
  the taker ratio the flow of the 5 minutes before it); from the 2026-06-25 file on, Binance labels the
  *start* (00:00 .. 23:55; snapshot at the end, flow of the 5 minutes after it), as its COIN-M files
  always did (binance/binance-public-data issue 491). A file is read by the convention of its first
  row's time (before 2026-06-25 00:00 UTC: end labels), unless ``labels`` says which. Either way a row
  is stored with ``ts_event`` = its period's start and ``ts_recv`` = the period's end plus
  ``delay_s`` (:func:`orderflow.data.context_schema.publication_ns`, 10 s by default).
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
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from orderflow.data.context_schema import STAT_DELAY_S, frame, periodic_kind, publication_ns
from orderflow.data.importers.base import ImportError_, ImportReport
from orderflow.data.importers.binance_raw import _source_tag
from orderflow.data.importers.klines import _FREQTRADE_NAME, symbol_from_pair
from orderflow.data.store import Store

log = logging.getLogger(__name__)
_VISION_NAME = re.compile(r"^([A-Za-z0-9]+)-(?:metrics|fundingRate)-(\d{4}-\d{2}(?:-\d{2})?)\.(?:csv|zip)$")
METRICS_HEADER = ("create_time", "symbol", "sum_open_interest", "sum_open_interest_value",
                  "count_toptrader_long_short_ratio", "sum_toptrader_long_short_ratio",
                  "count_long_short_ratio", "sum_taker_long_short_vol_ratio")  # fmt: skip
FUNDING_RATE_HEADER = ("calc_time", "funding_interval_hours", "last_funding_rate")
# the day Binance Vision's USD-M metrics files switched from period-end to period-start labels
METRICS_START_LABELS_FROM = pd.Timestamp("2026-06-25", tz="UTC").value
METRICS_DELAY_S = STAT_DELAY_S
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


def _headed(df: pd.DataFrame, path: Path, header: Sequence[str]) -> pd.DataFrame:
    """A Binance Vision CSV read with its header row, or, when the file has none but as many columns,
    the same rows named by ``header``."""
    if set(header) <= set(df.columns) or len(df.columns) != len(header):
        return df
    try:
        float(str(df.columns[0]).replace("-", "").replace(":", "").replace(" ", ""))
    except ValueError:
        return df  # a header, but another one: the caller names what it wanted
    return pd.read_csv(path, header=None, names=list(header))


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
    if isinstance(data, pd.DataFrame):
        data = _headed(data, path, FUNDING_RATE_HEADER)
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
    elif {"calc_time", "last_funding_rate"} <= cols:  # Binance Vision's monthly fundingRate file
        t = pd.to_numeric(data["calc_time"], errors="coerce").to_numpy(np.float64)
        ts = np.where(np.isfinite(t), t, np.nan) * 1e6
        rate = pd.to_numeric(data["last_funding_rate"], errors="coerce").to_numpy(np.float64)
        mark = pd.Series(np.nan, index=data.index)
        m = _VISION_NAME.match(path.name)
        sym = m.group(1).upper() if m else None
    elif {"date", "open"} <= cols:  # freqtrade: the rate in open
        ts = _times_ns(data["date"], path, "date").astype(np.float64)
        rate = pd.to_numeric(data["open"], errors="coerce").to_numpy(np.float64)
        mark = pd.Series(np.nan, index=data.index)
        sym = None
    else:
        raise ImportError_(
            f"{path}: want freqtrade's date/open columns or Binance's fundingTime/fundingRate (REST) or "
            f"calc_time/last_funding_rate (Binance Vision), got "
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


# kind stem -> the file column of its first value (the rest: _metrics_values)
_METRICS_KINDS = {
    "open_interest": "sum_open_interest",
    "ls_top_accounts": "count_toptrader_long_short_ratio",
    "ls_top_positions": "sum_toptrader_long_short_ratio",
    "ls_global": "count_long_short_ratio",
    "taker_ratio": "sum_taker_long_short_vol_ratio",
}


def _metrics_values(stem: str, num: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    v = num[_METRICS_KINDS[stem]]
    if stem == "open_interest":
        return {"open_interest": v, "open_interest_value": num["sum_open_interest_value"]}
    if stem == "taker_ratio":  # the file has the ratio only
        nan = np.full(v.size, np.nan)
        return {"buy_sell_ratio": v, "buy_volume": nan, "sell_volume": nan.copy()}
    return {"ratio": v, "long_share": v / (1.0 + v), "short_share": 1.0 / (1.0 + v)}


def _metrics_starts(t: np.ndarray, path: Path, labels: str) -> np.ndarray:
    """Period starts of the rows labelled ``t`` (module docstring: create_time labels)."""
    if labels == "auto":
        labels = "end" if t[0] < METRICS_START_LABELS_FROM else "start"
    if labels not in ("end", "start"):
        raise ImportError_(f"{path}: labels {labels!r}: use auto, end or start")
    return t - 300 * NS if labels == "end" else t


def import_binance_metrics(
    store: Store,
    paths: Sequence[Path],
    venue: str | None = None,
    symbol: str | None = None,
    delay_s: float = METRICS_DELAY_S,
    labels: str = "auto",
    source: str | None = None,
) -> ImportReport:
    """Import Binance Vision USD-M ``metrics`` files (module docstring) as the kinds
    ``open_interest_5m``, ``ls_top_accounts_5m``, ``ls_top_positions_5m``, ``ls_global_5m`` and
    ``taker_ratio_5m`` of ``venue`` (default ``binance-usdm``) and the symbol the option, the
    ``symbol`` column or the file name gives. A kind's rows without a value are left out."""
    report = ImportReport("binance-metrics", [str(p) for p in paths])
    v = venue or "binance-usdm"
    for path in map(Path, paths):
        data = _read_table(path)
        if not isinstance(data, pd.DataFrame):
            raise ImportError_(f"{path}: a metrics file is a CSV (or its zip), not JSON")
        data = _headed(data, path, METRICS_HEADER)
        missing = [c for c in METRICS_HEADER if c not in data.columns]
        if missing:
            raise ImportError_(
                f"{path}: not a Binance Vision metrics file (missing columns {', '.join(missing)})"
            )
        if data.empty:
            raise ImportError_(f"{path}: no metrics rows")
        syms = data["symbol"].dropna().astype(str).str.upper().unique()
        m = _VISION_NAME.match(path.name)
        sym = symbol or (syms[0] if len(syms) == 1 else None) or (m.group(1).upper() if m else None)
        if not sym:
            raise ImportError_(
                f"{path}: cannot infer the symbol (the file names {len(syms)} symbols); give --symbol"
            )
        t = _times_ns(data["create_time"], path, "create_time")
        order = np.argsort(t, kind="stable")
        data, t = data.iloc[order].reset_index(drop=True), t[order]
        start = _metrics_starts(t, path, labels)
        num = {c: pd.to_numeric(data[c], errors="coerce").to_numpy(np.float64) for c in METRICS_HEADER[2:]}
        for stem in _METRICS_KINDS:
            kind = periodic_kind(stem, "5m")
            values = _metrics_values(stem, num)
            first = next(iter(values.values()))
            ok = np.isfinite(first)
            dup = np.zeros(t.size, bool)
            dup[1:] = start[1:] == start[:-1]
            if (ok & dup).any():
                report.problem(f"{path}: {kind}: {int((ok & dup).sum())} rows with a duplicate time dropped")
            ok &= ~dup
            if not ok.any():
                report.problem(f"{path}: {kind}: no values; not stored")
                continue
            ev = start[ok]
            fr = frame(kind, ev, publication_ns(kind, ev, delay_s), **{c: a[ok] for c, a in values.items()})
            st = store.put(v, sym, kind, fr, source=source or _source_tag([path]))
            report.stored(f"{v}/{sym}/{kind}", st)
        log.info("imported %d metrics rows for %s/%s from %s", len(data), v, sym, path)
    return report
