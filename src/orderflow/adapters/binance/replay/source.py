"""Loading recorded raw Binance traffic for the replay server, and klines built from it.

Two recording formats:

- hftbacktest raw (``*.gz``): ``<local_ts> <raw json>`` per line, e.g.::

    1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,...}}

  with one REST depth snapshot body ``{"lastUpdateId":...}`` per file (it belongs to the file's symbol);
- cryptofeed (``*.jsonl[.gz]``): ``{"t":"recv","ts":1626992741.3,"data":"{\\"stream\\":...}"}`` and
  ``{"t":"http","url":".../depth?symbol=SUSHIUSDT&limit=1000","data":"{\\"lastUpdateId\\":...}"}``.

Messages of all files are merged by local time (ties keep file and line order), so the replay is
deterministic for a given file set.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orderflow.adapters.binance.common.venues import caps
from orderflow.adapters.binance.decode import DecodeError, Decoder, stream_kind
from orderflow.core.events import Side, Trade
from orderflow.core.instruments import MARKET_TO_VENUE, infer_tick, lookup
from orderflow.core.timeutil import INTERVAL_NS, NS_PER_MS, guess_epoch_unit, interval_ns, to_ns
from orderflow.data.importers.base import ImportReport, iter_lines

log = logging.getLogger(__name__)
Msg = tuple[int, str, "str | None", str]  # (ts_recv_ns, SYMBOL, stream or None for a snapshot, raw text)
_SYM_RE = re.compile(r"[?&]symbol=([A-Za-z0-9_]+)")
_CF_MARKETS = {
    "BINANCE": "spot",
    "BINANCE_US": "spot",
    "BINANCE_FUTURES": "usdm",
    "BINANCE_DELIVERY": "coinm",
}


class RecordingError(Exception):
    """A recording that cannot be replayed (names the file and line)."""


def _stream_of(text: str) -> str | None:
    if text.startswith('{"stream":"'):
        end = text.find('"', 11)
        return text[11:end] if end > 0 else None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj.get("stream") if isinstance(obj, dict) else None


class Recording:
    """The merged messages of a file set plus what the REST endpoints need."""

    def __init__(self) -> None:
        self.msgs: list[Msg] = []
        self.market = "usdm"
        self.symbols: list[str] = []
        self.streams: set[str] = set()
        self.kinds: dict[str, str] = {}
        self.snapshots: dict[str, list[str]] = {}
        self.recorded_exchange_info: dict | None = None
        self.kline_symbol: str | None = None
        self.kline_interval: str | None = None
        self.kline_rows: list[list] = []
        self._klines: dict[tuple[str, str], list[list]] = {}
        self._trades: dict[str, list[Trade]] | None = None

    @property
    def venue(self) -> str:
        return MARKET_TO_VENUE[self.market]

    @property
    def decoder(self) -> Decoder:
        dec = getattr(self, "_decoder", None)
        if dec is None:
            dec = self._decoder = Decoder(self.venue)
        return dec

    # -- trades and klines ----------------------------------------------------------------------
    def trades(self) -> dict[str, list[Trade]]:
        if self._trades is None:
            out: dict[str, list[Trade]] = {s: [] for s in self.symbols}
            for ts, sym, stream, text in self.msgs:
                if stream is not None and self.kinds.get(stream) in ("trade", "aggtrade"):
                    try:
                        out[sym].append(self.decoder.decode(text, ts))
                    except DecodeError as e:
                        log.warning("replay: bad trade message skipped: %s", e)
            self._trades = out
        return self._trades

    def klines(self, symbol: str, interval: str) -> list[list]:
        """Binance kline rows for ``symbol``: from the kline file when it covers the symbol, else
        built from the recorded trades (only intervals the recording covers completely; intervals
        without trades repeat the previous close with zero volume, as Binance does)."""
        if symbol == self.kline_symbol:
            if interval != self.kline_interval:
                raise ValueError(interval)
            return self.kline_rows
        key = (symbol, interval)
        if key not in self._klines:
            self._klines[key] = _klines_from_trades(
                self.trades().get(symbol, []), interval_ns(interval) // NS_PER_MS
            )
        return self._klines[key]

    def exchange_info(self) -> dict[str, Any]:
        if self.recorded_exchange_info is not None:
            info = dict(self.recorded_exchange_info)
            info["symbols"] = [s for s in info.get("symbols", []) if s.get("symbol") in self.symbols]
            if len(info["symbols"]) == len(self.symbols):
                return info
        syms = []
        for s in self.symbols + ([self.kline_symbol] if self.kline_symbol else []):
            inst = lookup(self.venue, s)
            if inst is not None:
                tick, lot = inst.tick_size, inst.lot_size
            else:
                tr = self.trades().get(s, [])[:20000]
                tick = infer_tick([t.price for t in tr]) if tr else 0.01
                lot = infer_tick([t.size for t in tr]) if tr else 0.001
                tick = 0.01 if math.isnan(tick) else tick
                lot = 0.001 if math.isnan(lot) else lot
            syms.append(
                {
                    "symbol": s,
                    "status": "TRADING",
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "tickSize": np.format_float_positional(tick, trim="-"),
                        },
                        {"filterType": "LOT_SIZE", "stepSize": np.format_float_positional(lot, trim="-")},
                    ],
                }
            )
        limit = caps(self.market).max_weight_per_minute
        return {
            "timezone": "UTC",
            "serverTime": self.msgs[-1][0] // NS_PER_MS if self.msgs else 0,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": limit}
            ],
            "symbols": syms,
        }


def _klines_from_trades(trades: list[Trade], iv_ms: int) -> list[list]:
    if not trades:
        return []
    t = np.array([tr.ts_event // NS_PER_MS for tr in trades], dtype=np.int64)
    p = np.array([tr.price for tr in trades])
    q = np.array([tr.size for tr in trades])
    buy = np.array([tr.aggressor == Side.BUY for tr in trades])
    order = np.argsort(t, kind="stable")
    t, p, q, buy = t[order], p[order], q[order], buy[order]
    first = -(-int(t[0]) // iv_ms)  # first bucket opening at or after the first trade
    last = (int(t[-1]) + 1) // iv_ms - 1  # last bucket closing at or before the last trade
    rows: list[list] = []
    f = np.format_float_positional
    prev_close = float(p[t < first * iv_ms][-1]) if np.any(t < first * iv_ms) else float(p[0])
    for b in range(first, last + 1):
        lo, hi = np.searchsorted(t, b * iv_ms, "left"), np.searchsorted(t, (b + 1) * iv_ms, "left")
        if hi > lo:
            pp, qq, bb = p[lo:hi], q[lo:hi], buy[lo:hi]
            o, h, lw, c = float(pp[0]), float(pp.max()), float(pp.min()), float(pp[-1])
            v, qv, n = float(qq.sum()), float((pp * qq).sum()), int(hi - lo)
            tbv, tbq = float(qq[bb].sum()), float((pp[bb] * qq[bb]).sum())
        else:
            o = h = lw = c = prev_close
            v = qv = tbv = tbq = 0.0
            n = 0
        prev_close = c
        rows.append(
            [
                b * iv_ms,
                f(o, trim="-"),
                f(h, trim="-"),
                f(lw, trim="-"),
                f(c, trim="-"),
                f(round(v, 10), trim="-"),
                (b + 1) * iv_ms - 1,
                f(round(qv, 8), trim="-"),
                n,
                f(round(tbv, 10), trim="-"),
                f(round(tbq, 8), trim="-"),
                "0",
            ]
        )
    return rows


def _load_kline_file(path: Path) -> tuple[str, list[list]]:
    """Read a kline CSV (Binance Vision without header, or with a header naming open/high/low/close/
    volume and a time column such as ``open_time``, ``unix``, ``timestamp`` or ``Date``)."""
    with open(path) as fh:
        first = fh.readline()
    skip = 1 if first.lower().startswith("http") else 0
    df = pd.read_csv(path, skiprows=skip)
    if not any(c.lower() in ("open", "close") for c in df.columns):
        df = pd.read_csv(path, header=None, skiprows=skip).iloc[:, :6]
        df.columns = ["open_time", "open", "high", "low", "close", "volume"]
    cols = {c.lower(): c for c in df.columns}
    tcol = next((cols[c] for c in ("open_time", "unix", "timestamp", "date", "time") if c in cols), None)
    if tcol is None:
        raise RecordingError(f"{path}: no time column (open_time, unix, timestamp or date)")
    if np.issubdtype(df[tcol].dtype, np.number):
        unit = guess_epoch_unit(float(df[tcol].iloc[0]))
        ms = np.array([to_ns(int(v), unit) // NS_PER_MS for v in df[tcol]], dtype=np.int64)
    else:
        ms = (pd.to_datetime(df[tcol], utc=True).astype("int64") // NS_PER_MS).to_numpy()
    vcol = cols.get("volume") or next((c for c in df.columns if c.lower().startswith("volume")), None)
    order = np.argsort(ms, kind="stable")
    ms = ms[order]
    if len(ms) < 2:
        raise RecordingError(f"{path}: fewer than two klines")
    step = int(np.median(np.diff(ms)))
    names = {v // NS_PER_MS: k for k, v in INTERVAL_NS.items()}
    if step not in names:
        raise RecordingError(f"{path}: kline spacing {step} ms is not a Binance interval")
    f = np.format_float_positional
    rows = []
    vals = df.iloc[order]
    trades_col = cols.get("tradecount")
    for i, (_, r) in enumerate(vals.iterrows()):
        vol = float(r[vcol]) if vcol else 0.0
        rows.append(
            [
                int(ms[i]),
                f(float(r[cols["open"]]), trim="-"),
                f(float(r[cols["high"]]), trim="-"),
                f(float(r[cols["low"]]), trim="-"),
                f(float(r[cols["close"]]), trim="-"),
                f(vol, trim="-"),
                int(ms[i]) + step - 1,
                "0",
                int(r[trades_col]) if trades_col else 0,
                "0",
                "0",
                "0",
            ]
        )
    return names[step], rows


def _paths(paths: Sequence[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p])
    return out


def load_recording(
    paths: Sequence[str | Path],
    market: str | None = None,
    max_messages: int | None = None,
    kline_file: str | Path | None = None,
    kline_symbol: str | None = None,
) -> Recording:
    """Load and merge recordings; ``market`` ("usdm", "spot", "coinm") is detected when omitted."""
    rec = Recording()
    report = ImportReport("replay")
    entries: list[tuple[int, int, int, str, str | None, str]] = []
    detected: str | None = None
    for fi, path in enumerate(_paths(paths)):
        if ".jsonl" in path.name:
            detected = _load_cryptofeed(path, fi, entries, rec, report) or detected
            continue
        symbol: str | None = None
        pending: list[tuple[int, int, str]] = []
        unit: str | None = None
        for lineno, line in iter_lines(path, report):
            sp = line.find(b" ")
            if sp <= 0:
                continue
            try:
                ts_local = int(line[:sp])
            except ValueError:
                raise RecordingError(f"{path}:{lineno}: bad local timestamp {line[:sp][:30]!r}") from None
            unit = unit or guess_epoch_unit(ts_local)
            ts = to_ns(ts_local, unit)
            text = line[sp + 1 :].decode().strip()
            if text.startswith('{"lastUpdateId"'):
                if symbol is None:
                    pending.append((ts, lineno, text))
                else:
                    entries.append((ts, fi, lineno, symbol, None, text))
                continue
            stream = _stream_of(text)
            if stream is None:
                report.problem(f"{path}:{lineno}: not a combined-stream message")
                continue
            sym = stream.split("@", 1)[0].upper()
            if symbol is None:
                symbol = sym
                entries.extend((t, fi, ln, sym, None, tx) for t, ln, tx in pending)
                pending.clear()
                if detected is None and "@depth" in stream and '"e":"depthUpdate"' in text:
                    detected = ("coinm" if "_" in sym else "usdm") if '"pu":' in text else "spot"
            entries.append((ts, fi, lineno, sym, stream, text))
        if detected is None and symbol is not None:
            detected = {"usdm": "usdm", "spot": "spot", "cm": "coinm"}.get(path.parent.name)
    for p in report.problems[:5]:
        log.warning("replay: %s", p)
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    if max_messages is not None:
        entries = entries[:max_messages]
    rec.market = market or detected or "usdm"
    rec.msgs = [(e[0], e[3], e[4], e[5]) for e in entries]
    for _, sym, stream, text in rec.msgs:
        if stream is None:
            rec.snapshots.setdefault(sym, []).append(text)
        elif stream not in rec.kinds:
            rec.streams.add(stream)
            try:
                rec.kinds[stream] = stream_kind(stream)
            except DecodeError:
                rec.kinds[stream] = "other"
    rec.symbols = sorted({m[1] for m in rec.msgs})
    if kline_file is not None:
        kp = Path(kline_file)
        rec.kline_symbol = (kline_symbol or kp.name.split("_")[0].split("-")[0]).upper()
        rec.kline_interval, rec.kline_rows = _load_kline_file(kp)
    return rec


def _load_cryptofeed(path: Path, fi: int, entries: list, rec: Recording, report: ImportReport) -> str | None:
    market = None
    for lineno, line in iter_lines(path, report):
        try:
            r = json.loads(line)
        except ValueError:
            report.problem(f"{path}:{lineno}: not JSON")
            continue
        t = r.get("t")
        if t == "header":
            market = _CF_MARKETS.get(r.get("exchange", ""))
            continue
        if t not in ("http", "recv") or "data" not in r:
            continue
        ts = round(float(r["ts"]) * 1e9)
        text = r["data"]
        if t == "http":
            url = r.get("url", "")
            if "/exchangeInfo" in url:
                rec.recorded_exchange_info = json.loads(text)
            elif "/depth" in url and (m := _SYM_RE.search(url)):
                entries.append((ts, fi, lineno, m.group(1).upper(), None, text))
            continue
        stream = _stream_of(text)
        if stream is not None and "@" in stream:
            entries.append((ts, fi, lineno, stream.split("@", 1)[0].upper(), stream, text))
    return market
