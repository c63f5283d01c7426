"""Import candles: Binance Vision kline CSVs and generic OHLCV CSV / feather files -> ``bar_<interval>``.

Binance Vision (``data.binance.vision``, e.g. ``ADABTC-1m-2021-11-27.csv`` or ``.zip``) has no header
and 12 columns; newer spot files use microsecond open times and some carry a header row::

    1637971200000,0.00002853,0.00002854,0.00002851,0.00002854,36304.20000000,1637971259999,1.03547608,79,19523.00000000,0.55694227,0

Generic OHLCV files have a header; columns are matched case-insensitively. The time column is one of
``open_time, timestamp, unix, datetime, date, time`` holding an epoch (s/ms/us/ns told apart by
magnitude) or date-time strings (naive ones are taken as UTC). A CryptoDataDownload banner line is
skipped; newest-first files are sorted; duplicate open times are dropped and reported::

    unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount
    1655078400000,2022-06-13 00:00:00,BTC/USDT,26564.70,26853.30,26401.00,26718.10,35316.388,940604773,252233

Stored rows: ``ts_open``, ``ts_event = ts_open + interval`` (the close), ``ts_recv = ts_event`` (files carry
no receive time), OHLC, ``volume`` and, when present, ``quote_volume``/``trades``/``taker_buy_volume``
(else NaN / -1). A bad line (too few fields, a non-numeric value) is recorded as ``file:line`` and
skipped; a file that cannot be imported at all (missing, empty, no time column) raises
:class:`ImportError_` before anything is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from orderflow.core.timeutil import NS_PER_S
from orderflow.data.importers.base import ImportError_, ImportReport, iter_lines
from orderflow.data.importers.binance_raw import _source_tag
from orderflow.data.schema import BAR_COLUMNS
from orderflow.data.store import Store

log = logging.getLogger(__name__)

_UNIT_NS = {
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86400 * NS_PER_S,
    "w": 7 * 86400 * NS_PER_S,
}
_IV_TOKEN = re.compile(r"^(\d+)([smhdw])$", re.IGNORECASE)
_VISION_NAME = re.compile(r"^([A-Z0-9]+)-(\d+[smhdw])-\d{4}-\d{2}(?:-\d{2})?$")
_FREQTRADE_NAME = re.compile(r"^([A-Za-z0-9]+(?:_[A-Za-z0-9]+)+)-(\d+[smhdw])(?:-([a-z_]+))?$")
_GENERIC_NAME = re.compile(r"^([A-Za-z0-9]+)[_-](\d+[smhdw])(?:[_-].*)?$")
_TIME_COLS = ("open_time", "open time", "timestamp", "unix", "datetime", "date", "time")
_VENUE_DIRS = {"spot": "binance-spot", "um": "binance-usdm", "cm": "binance-coinm"}


# -- small helpers shared with the tardis importer --------------------------------------------------


def read_csv_rows(
    path: Path, report: ImportReport, skip_banner: bool = False
) -> tuple[list[str], list[list[str]], list[int]]:
    """Split a (possibly compressed) CSV into ``(first_row, rows, line_numbers)``.

    ``first_row`` is the first non-blank line's fields (a header or data; the caller decides). With
    ``skip_banner`` a first line with fewer than two commas (a CryptoDataDownload URL banner) is
    dropped. Raises :class:`ImportError_` for a missing or empty file."""
    rows: list[list[str]] = []
    lines: list[int] = []
    first: list[str] | None = None
    for lineno, raw in iter_lines(path, report):
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not text.strip():
            continue
        if first is None and skip_banner and text.count(",") < 2:
            report.notes.append(f"{path}:{lineno}: skipped banner line {text[:60]!r}")
            continue
        fields = [f.strip().strip('"') for f in text.split(",")]
        if first is None:
            first = fields
        rows.append(fields)
        lines.append(lineno)
    if first is None:
        raise ImportError_(f"{path}: empty file")
    return first, rows, lines


def to_float(
    values: Sequence[str],
    path: Path,
    lines: Sequence[int],
    column: str,
    report: ImportReport,
    required: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Parse strings to float64. Returns ``(values, bad)``; a bad (non-numeric, or empty when
    ``required``) value is recorded as ``file:line`` and flagged in ``bad``."""
    try:
        out = np.asarray(values, dtype=np.float64)
        return out, np.zeros(len(out), dtype=bool)
    except ValueError:
        pass
    s = pd.Series(list(values), dtype=object)
    out = pd.to_numeric(s, errors="coerce").to_numpy(np.float64)
    empty = s.map(lambda v: v is None or v == "").to_numpy(bool)
    bad = np.isnan(out) & ~s.str.lower().isin(["nan"]).to_numpy(bool)
    if not required:
        bad &= ~empty
    for i in np.flatnonzero(bad)[:20]:
        report.problem(f"{path}:{lines[i]}: column {column!r}: not a number: {values[i]!r}")
    if bad.sum() > 20:
        report.problem(f"{path}: column {column!r}: {int(bad.sum()) - 20} more non-numeric values")
    return out, bad


def parse_interval(text: str) -> tuple[str, int]:
    """``"60m"`` -> ``("1h", 3_600e9)``; names are normalised to the largest whole unit."""
    m = _IV_TOKEN.match(text.strip())
    if not m:
        raise ImportError_(f"bad interval {text!r}: use e.g. 1s, 1m, 5m, 1h, 1d")
    ns = int(m.group(1)) * _UNIT_NS[m.group(2).lower()]
    return interval_name(ns), ns


def interval_name(ns: int) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        if ns % _UNIT_NS[unit] == 0:
            return f"{ns // _UNIT_NS[unit]}{unit}"
    raise ImportError_(f"bar spacing of {ns} ns is not a whole number of seconds")


def epoch_to_ns(values: np.ndarray) -> np.ndarray:
    """Epoch numbers (s/ms/us/ns, per value by magnitude) to int64 ns."""
    out = np.empty(len(values), dtype=np.int64)
    factors = {"s": NS_PER_S, "ms": 1_000_000, "us": 1_000, "ns": 1}
    a = np.abs(values)
    for unit, lo, hi in (("s", 0, 1e11), ("ms", 1e11, 1e14), ("us", 1e14, 1e17), ("ns", 1e17, np.inf)):
        sel = (a >= lo) & (a < hi)  # the same cut-offs as timeutil.guess_epoch_unit
        out[sel] = np.round(values[sel] * factors[unit]).astype(np.int64)
    return out


def symbol_from_pair(pair: str) -> str:
    """``"ETH_BTC"`` / ``"BTC/USDT"`` / ``"XRP_USDT_USDT"`` (freqtrade futures) -> ``"ETHBTC"``, ..."""
    parts = [p for p in re.split(r"[_/:]", pair) if p]
    if len(parts) >= 3:
        parts = parts[:2]
    return "".join(parts).upper()


def names_from_path(path: Path) -> tuple[str | None, str | None, str | None]:
    """(venue, symbol, interval) inferred from a file's name and folders, None where unknown."""
    stem = path.name
    for ext in (".gz", ".zip", ".bz2", ".xz", ".csv", ".feather", ".parquet"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    venue = None
    for part in reversed(path.parent.parts):
        if part in _VENUE_DIRS:
            venue = _VENUE_DIRS[part]
            break
    if m := _VISION_NAME.match(stem):
        return venue, m.group(1), parse_interval(m.group(2))[0]
    if m := _FREQTRADE_NAME.match(stem):
        ctype = m.group(3)
        sym = symbol_from_pair(m.group(1))
        if ctype in ("mark", "index", "premiumindex"):
            sym = f"{sym}-{ctype.upper()}"
        elif ctype == "funding_rate":
            raise ImportError_(f"{path}: freqtrade funding-rate files are not OHLCV candles; not imported")
        return venue, sym, parse_interval(m.group(2))[0]
    if m := _GENERIC_NAME.match(stem):
        return venue, m.group(1).upper(), parse_interval(m.group(2))[0]
    for tok in re.split(r"[_\-.]", stem):
        if _IV_TOKEN.match(tok):
            return venue, None, parse_interval(tok)[0]
    return venue, None, None


# -- bars ----------------------------------------------------------------------------------------------


def _finish_bars(
    path: Path, ts_open: np.ndarray, cols: dict[str, np.ndarray], interval: str | None, report: ImportReport
) -> tuple[pd.DataFrame, str]:
    """Sort, drop duplicate opens, settle the interval and build the stored frame."""
    n = len(ts_open)
    if n == 0:
        raise ImportError_(f"{path}: no valid rows")
    order = np.argsort(ts_open, kind="stable")
    if np.any(np.diff(ts_open) < 0):
        newest_first = bool(np.all(np.diff(ts_open) <= 0))
        report.notes.append(f"{path}: rows were {'newest-first' if newest_first else 'out of order'}; sorted")
    ts_open = ts_open[order]
    cols = {k: v[order] for k, v in cols.items()}
    keep = np.ones(n, dtype=bool)
    keep[1:] = np.diff(ts_open) != 0
    dups = int(n - keep.sum())
    if dups:
        report.problem(f"{path}: {dups} rows with a duplicate open time dropped (kept the first)")
        ts_open = ts_open[keep]
        cols = {k: v[keep] for k, v in cols.items()}
    spacing = int(np.median(np.diff(ts_open))) if len(ts_open) > 1 else 0
    if interval is None:
        if spacing <= 0:
            raise ImportError_(f"{path}: cannot infer the bar interval from one row; give the interval")
        interval = interval_name(spacing)
        report.notes.append(f"{path}: interval {interval} inferred from the median spacing of open times")
    iv_name, iv_ns = parse_interval(interval)
    if spacing and spacing != iv_ns:
        report.notes.append(
            f"{path}: interval {iv_name} but open times are spaced {interval_name(spacing)} apart"
        )
    ts_event = ts_open + iv_ns
    df = pd.DataFrame({"ts_event": ts_event, "ts_recv": ts_event, "ts_open": ts_open})
    nan = np.full(len(ts_open), np.nan)
    for c in BAR_COLUMNS[3:]:
        if c == "trades":
            t = cols.get("trades")
            df[c] = (
                np.where(np.isnan(t), -1, t).astype(np.int64) if t is not None else np.full(len(ts_open), -1)
            )
        else:
            df[c] = cols.get(c, nan)
    return df.astype(
        {"ts_event": "int64", "ts_recv": "int64", "ts_open": "int64", "trades": "int64"}
    ), iv_name


def _write(
    store: Store,
    path: Path,
    venue: str | None,
    symbol: str | None,
    interval: str,
    df: pd.DataFrame,
    report: ImportReport,
    source: str | None,
) -> None:
    missing = [n for n, v in (("venue", venue), ("symbol", symbol)) if not v]
    if missing:
        raise ImportError_(
            f"{path}: cannot infer the {' or '.join(missing)} from the file; give "
            + " and ".join(f"--{m}" for m in missing)
        )
    kind = f"bar_{interval}"
    st = store.put(venue, symbol, kind, df, source=source or _source_tag([path]))  # type: ignore[arg-type]
    report.stored(f"{venue}/{symbol}/{kind}", st)
    log.info("imported %d %s bars for %s/%s from %s", len(df), interval, venue, symbol, path)


def _check_paths(paths: Sequence[Path]) -> None:
    for p in paths:
        if not Path(p).is_file():
            raise ImportError_(f"{p}: no such file")


def _vision_file(path: Path, report: ImportReport) -> tuple[np.ndarray, dict[str, np.ndarray], str | None]:
    """One Binance Vision kline file (no header, or a header row) -> (open times ns, columns, None)."""
    first, rows, lines = read_csv_rows(path, report)
    if first and not _is_number(first[0]):
        rows, lines = rows[1:], lines[1:]  # header row
    good = [i for i, r in enumerate(rows) if len(r) >= 11]
    for i in (i for i, r in enumerate(rows) if len(r) < 11):
        report.problem(f"{path}:{lines[i]}: expected 12 fields, got {len(rows[i])} (truncated line?)")
    rows = [rows[i] for i in good]
    lines = [lines[i] for i in good]
    if not rows:
        raise ImportError_(f"{path}: no kline rows")
    colv = list(zip(*(r[:11] for r in rows), strict=True))
    names = [
        "ts_open",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "close_time",
        "quote_volume",
        "trades",
        "taker_buy_volume",
        "taker_buy_quote",
    ]
    bad = np.zeros(len(rows), dtype=bool)
    vals: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        if name in ("close_time", "taker_buy_quote"):
            continue
        vals[name], b = to_float(colv[j], path, lines, name, report)  # type: ignore[arg-type]
        bad |= b
    ts_open = epoch_to_ns(vals.pop("ts_open")[~bad])
    return ts_open, {k: v[~bad] for k, v in vals.items()}, None


def _import_bar_files(
    fmt: str,
    read: Callable[[Path, ImportReport], tuple[np.ndarray, dict[str, np.ndarray], str | None]],
    store: Store,
    paths: Sequence[Path],
    venue: str | None,
    symbol: str | None,
    interval: str | None,
    source: str | None,
) -> ImportReport:
    """The file loop shared by the bar importers: read, finish bars, write; names from the path."""
    report = ImportReport(fmt, [str(p) for p in paths])
    _check_paths(paths)
    for path in map(Path, paths):
        f_venue, f_symbol, f_iv = names_from_path(path)
        ts_open, vals, found = read(path, report)
        df, iv = _finish_bars(path, ts_open, vals, interval or f_iv, report)
        _write(store, path, venue or f_venue, symbol or found or f_symbol, iv, df, report, source)
    return report


def import_binance_vision(
    store: Store,
    paths: Sequence[Path],
    venue: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
    source: str | None = None,
) -> ImportReport:
    """Import Binance Vision kline files (CSV or the downloaded single-member .zip)."""
    return _import_bar_files("binance-vision", _vision_file, store, paths, venue, symbol, interval, source)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _find(cols: dict[str, int], *names: str, prefix: str | None = None) -> int | None:
    for n in names:
        if n in cols:
            return cols[n]
    if prefix:
        hits = [i for c, i in cols.items() if c.startswith(prefix)]
        return min(hits) if hits else None
    return None


def _ohlcv_table(path: Path, report: ImportReport) -> tuple[list[str], list[list], list[int]]:
    """(header, columns as lists, line numbers) of a generic OHLCV CSV or feather file."""
    if path.name.lower().endswith(".feather"):
        try:
            df = pd.read_feather(path)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise ImportError_(f"{path}: cannot read feather file ({e})") from None
        if df.empty:
            raise ImportError_(f"{path}: empty file")
        columns = [df.iloc[:, i].to_list() for i in range(df.shape[1])]
        return list(df.columns.astype(str)), columns, list(range(1, len(df) + 1))
    first, rows, lines = read_csv_rows(path, report, skip_banner=True)
    if all(_is_number(f) for f in first if f):
        raise ImportError_(
            f"{path}: no header row; generic OHLCV files need column names "
            "(date/timestamp/open/high/low/close/volume)"
        )
    width = len(first)
    body, lines = rows[1:], lines[1:]
    short = [k for k, r in enumerate(body) if len(r) < width]
    for k in short[:20]:
        report.problem(f"{path}:{lines[k]}: expected {width} fields, got {len(body[k])} (truncated line?)")
    if short:
        keep = [k for k, r in enumerate(body) if len(r) >= width]
        body, lines = [body[k] for k in keep], [lines[k] for k in keep]
    if not body:
        raise ImportError_(f"{path}: no data rows")
    return first, [list(c) for c in zip(*(r[:width] for r in body), strict=True)], lines


def _ohlcv_file(path: Path, report: ImportReport) -> tuple[np.ndarray, dict[str, np.ndarray], str | None]:
    """Parse one generic file into (ts_open ns, numeric columns, symbol found in a symbol column)."""
    header, columns, lines = _ohlcv_table(path, report)
    cols = {h.strip().lower(): i for i, h in reversed(list(enumerate(header)))}
    it = _find(cols, *_TIME_COLS)
    if it is None:
        raise ImportError_(f"{path}: no time column; expected one of {', '.join(_TIME_COLS)} in {header}")
    want = {
        "open": _find(cols, "open", "o"),
        "high": _find(cols, "high", "h"),
        "low": _find(cols, "low", "l"),
        "close": _find(cols, "close", "c"),
        "volume": _find(cols, "volume", "vol", "v", prefix="volume"),
    }
    missing = [k for k, v in want.items() if v is None]
    if missing:
        raise ImportError_(f"{path}: missing column(s) {', '.join(missing)} in {header}")
    vol_cols = [i for c, i in sorted(cols.items(), key=lambda kv: kv[1]) if c.startswith("volume ")]
    optional = {
        "quote_volume": _find(cols, "quote_volume", "quote_asset_volume", "quote volume", "volume_quote")
        or (vol_cols[1] if len(vol_cols) > 1 else None),
        "trades": _find(cols, "trades", "tradecount", "number_of_trades", "count", "trade_count"),
        "taker_buy_volume": _find(cols, "taker_buy_volume", "taker_buy_base_asset_volume", "taker_buy_base"),
    }
    bad = np.zeros(len(lines), dtype=bool)
    vals: dict[str, np.ndarray] = {}
    for name, i in (*want.items(), *optional.items()):
        if i is not None:
            vals[name], b = to_float(columns[i], path, lines, header[i], report, required=name in want)
            bad |= b
    ts_open, tbad = _parse_times(columns[it], path, lines, header[it], report)
    bad |= tbad
    nan_px = ~bad & np.isnan(np.column_stack([vals[k] for k in ("open", "high", "low", "close")])).any(axis=1)
    if nan_px.any():
        report.problem(
            f"{path}: {int(nan_px.sum())} rows with a missing price dropped (first at line "
            f"{lines[int(np.flatnonzero(nan_px)[0])]})"
        )
        bad |= nan_px
    sym_col = _find(cols, "symbol", "pair")
    found = symbol_from_pair(str(columns[sym_col][0])) if sym_col is not None else None
    return ts_open[~bad], {k: v[~bad] for k, v in vals.items()}, found


def import_ohlcv(
    store: Store,
    paths: Sequence[Path],
    venue: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
    source: str | None = None,
) -> ImportReport:
    """Import generic OHLCV CSV (optionally compressed) or feather files with a header row."""
    return _import_bar_files("ohlcv", _ohlcv_file, store, paths, venue, symbol, interval, source)


def _parse_times(
    values: list, path: Path, lines: Sequence[int], column: str, report: ImportReport
) -> tuple[np.ndarray, np.ndarray]:
    """Epoch numbers or date-time strings -> (int64 ns, bad mask)."""
    if len(values) and isinstance(values[0], pd.Timestamp):
        ts = pd.to_datetime(pd.Series(values), utc=True)
        return ts.dt.as_unit("ns").astype("int64").to_numpy(), ts.isna().to_numpy()
    s = pd.Series([str(v) for v in values], dtype=object)
    nums = pd.to_numeric(s, errors="coerce")
    if nums.notna().mean() > 0.5:
        bad = nums.isna().to_numpy()
        ns = np.zeros(len(s), dtype=np.int64)
        ns[~bad] = epoch_to_ns(nums.to_numpy(np.float64)[~bad])
    else:
        dt = pd.to_datetime(s, utc=True, errors="coerce", format="ISO8601")
        if dt.isna().mean() > 0.5:
            dt = pd.to_datetime(s, utc=True, errors="coerce", format="mixed")
        bad = dt.isna().to_numpy()
        ns = np.zeros(len(s), dtype=np.int64)
        ns[~bad] = dt[~bad].dt.as_unit("ns").astype("int64").to_numpy()
    for i in np.flatnonzero(bad)[:20]:
        report.problem(f"{path}:{lines[i]}: column {column!r}: not a time: {values[i]!r}")
    return ns, bad
