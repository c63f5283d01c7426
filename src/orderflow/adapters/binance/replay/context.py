"""Context series served in Binance USD-M's wire format, from context frames (kinds of
:mod:`orderflow.data.context_schema`): used by the replay server and the local exchange
(:mod:`orderflow.execution.local.context` turns :class:`WireError` into its error answers).

REST (Binance USD-M docs, "Market Data"):

- ``GET /fapi/v1/fundingRate`` (symbol optional, startTime / endTime inclusive, limit default 100; a
  limit above 1000 is cut to 1000): with a startTime the first ``limit`` funding times from it, else the
  latest ``limit`` up to endTime (or now). ``[{"symbol","fundingRate","fundingTime","markPrice"}]``.
  Weight 1 (Binance counts it in a separate 500 requests / 5 min window shared with fundingInfo).
- ``GET /fapi/v1/premiumIndex`` (symbol optional): the latest ``mark_price`` row published by now, or,
  with none, the book's mid as mark and index and the latest funding rate. Weight 1, 10 without symbol.
- ``GET /futures/data/{openInterestHist, globalLongShortAccountRatio, topLongShortAccountRatio,
  topLongShortPositionRatio, takerlongshortRatio}`` (symbol and period mandatory, limit default 30; above
  500 refused with -1130): only the latest 30 days of the server's clock; an older startTime answers HTTP
  400 ``{"code":-1130,"msg":"parameter 'startTime' is invalid."}``; startTime > endTime -1023. Weight 0.

Only rows published by the server's clock (``ts_recv <= now``) are served: a statistic appears once its
period has closed plus the delay, as on Binance. Numbers go out as strings, times in ms.

Streams: ``<symbol>@markPrice[@1s]`` (``markPriceUpdate``) from ``mark_price`` rows and
``<symbol>@forceOrder`` from ``liquidation`` rows, each sent when the replay passes its ``ts_event``.

Times: the frames are shifted by ``offset_ns`` (the local exchange passes its timeline's shift, so the
context stays aligned with the replayed market).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orderflow.data import context_schema as cs

NS_PER_MS = 1_000_000
DAY_MS = 86_400_000
FUNDING_MAX_LIMIT, FUNDING_DEFAULT_LIMIT = 1000, 100
STATS_MAX_LIMIT, STATS_DEFAULT_LIMIT = 500, 30
# path name -> (stem, answer fields in the order of context_schema.PERIODIC[stem], whether rows carry
# the symbol); the USD-M docs list no symbol in takerlongshortRatio's rows
STAT_ROUTES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "openInterestHist": ("open_interest", ("sumOpenInterest", "sumOpenInterestValue"), True),
    "globalLongShortAccountRatio": ("ls_global", ("longShortRatio", "longAccount", "shortAccount"), True),
    "topLongShortAccountRatio": ("ls_top_accounts", ("longShortRatio", "longAccount", "shortAccount"), True),
    "topLongShortPositionRatio": (
        "ls_top_positions",
        ("longShortRatio", "longAccount", "shortAccount"),
        True,
    ),
    "takerlongshortRatio": ("taker_ratio", ("buySellRatio", "buyVol", "sellVol"), False),
}


class WireError(Exception):
    """An error answer: HTTP ``status``, Binance ``code`` and ``msg`` (body ``{"code", "msg"}``)."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"HTTP {status} code {code}: {msg}")
        self.status, self.code, self.msg = status, code, msg

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def _invalid(name: str) -> WireError:
    return WireError(400, -1130, f"parameter '{name}' is invalid.")


class Params:
    """A request's query parameters, read as Binance reads them (-1102 mandatory, -1100 not a number,
    -1104 parameters the endpoint does not read)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = {k: v for k, v in values.items() if v != ""}

    def check_known(self, known: tuple[str, ...]) -> None:
        read = [k for k in self.values if k in known]
        if len(read) < len(self.values):
            raise WireError(
                400,
                -1104,
                f"Not all sent parameters were read; read '{len(read)}' parameter(s) but was sent "
                f"'{len(self.values)}'.",
            )

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def req(self, name: str) -> str:
        v = self.values.get(name)
        if v is None:
            raise WireError(
                400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
            )
        return v

    def integer(self, name: str, default: int | None = None) -> int | None:
        v = self.values.get(name)
        if v is None:
            return default
        if not v.lstrip("-").isdigit() or len(v) > 20:
            raise WireError(
                400,
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
            )
        return int(v)


def _row(df: pd.DataFrame, i: int) -> dict[str, Any]:
    """Row ``i`` with each column's own dtype (``iloc`` on mixed columns would turn int64 ns to float)."""
    return {c: df[c].to_numpy()[i] for c in df.columns}


def _s(x: float, decimals: int) -> str:
    return "" if not np.isfinite(x) else f"{x:.{decimals}f}"


def load_context(store_dir: str | Path, venue: str, symbol: str) -> dict[str, pd.DataFrame]:
    """Every context kind stored for ``venue``/``symbol`` in a store directory."""
    from orderflow.data.store import Store

    store = Store(store_dir)
    out = {}
    for *_, kind in store.datasets(venue, symbol):
        if cs.is_context_kind(kind):
            df = store.read(venue, symbol, kind)
            if not df.empty:
                out[kind] = df[["ts_event", "ts_recv", *cs.columns(kind)]]
    return out


class ContextService:
    """The context endpoints and streams over ``frames`` (symbol -> kind -> frame).

    ``now_ns``: the server's clock (the local exchange's exchange time); ``mid``: the book's mid of a
    symbol for a premium index without mark rows (None: such a request gets -1121)."""

    def __init__(
        self,
        frames: dict[str, dict[str, pd.DataFrame]],
        now_ns: Callable[[], int],
        offset_ns: int = 0,
        mid: Callable[[str], float] | None = None,
    ) -> None:
        self.now_ns, self.mid = now_ns, mid
        offset_ns -= offset_ns % NS_PER_MS  # Binance's times are whole ms: shift by whole ms
        self.frames: dict[str, dict[str, pd.DataFrame]] = {}
        for sym, kinds in frames.items():
            self.frames[sym.upper()] = {}
            for kind, df in kinds.items():
                cols = cs.columns(kind)  # refuses a kind that is not a context kind
                d = df[["ts_event", "ts_recv", *cols]].sort_values(["ts_event", "ts_recv"], kind="stable")
                d = d.reset_index(drop=True).copy()
                d["ts_event"] = d["ts_event"].to_numpy(np.int64) + offset_ns
                d["ts_recv"] = d["ts_recv"].to_numpy(np.int64) + offset_ns
                if "next_funding_ns" in d:
                    d["next_funding_ns"] = d["next_funding_ns"].to_numpy(np.int64) + offset_ns
                self.frames[sym.upper()][kind] = d
        self._sent_to = now_ns()  # streams: rows with ts_event <= this were due before the start

    @property
    def symbols(self) -> list[str]:
        return list(self.frames)

    def _published(self, sym: str, kind: str) -> pd.DataFrame:
        df = self.frames.get(sym, {}).get(kind)
        if df is None or df.empty:
            return pd.DataFrame({"ts_event": np.array([], np.int64)})
        return df[df["ts_recv"].to_numpy() <= self.now_ns()]

    def _symbol(self, p: Params, required: bool) -> str | None:
        sym = p.get("symbol")
        if sym is None:
            if required:
                p.req("symbol")
            return None
        sym = sym.upper()
        if sym not in self.frames and (self.mid is None or not self._has_book(sym)):
            raise WireError(400, -1121, "Invalid symbol.")
        return sym

    def _has_book(self, sym: str) -> bool:
        try:
            return bool(np.isfinite(self.mid(sym))) if self.mid else False
        except KeyError:
            return False

    @staticmethod
    def _window(df: pd.DataFrame, start: int | None, end: int | None, limit: int) -> pd.DataFrame:
        """Rows with start <= ts_event (ms) <= end: the first ``limit`` from a start, else the last."""
        ms = df["ts_event"].to_numpy(np.int64) // NS_PER_MS
        keep = np.ones(len(df), bool)
        if start is not None:
            keep &= ms >= start
        if end is not None:
            keep &= ms <= end
        sel = df[keep]
        return sel.head(limit) if start is not None else sel.tail(limit)

    @staticmethod
    def _times(p: Params) -> tuple[int | None, int | None]:
        start, end = p.integer("startTime"), p.integer("endTime")
        if start is not None and end is not None and start > end:
            raise WireError(400, -1023, "Start time is greater than end time.")
        return start, end

    # ------------------------------------------------------------------------------------- REST
    def funding_rate(self, p: Params) -> list[dict[str, Any]]:
        p.check_known(("symbol", "startTime", "endTime", "limit"))
        sym = self._symbol(p, required=False)
        start, end = self._times(p)
        limit = p.integer("limit", FUNDING_DEFAULT_LIMIT)
        assert limit is not None
        if limit < 1:
            raise _invalid("limit")
        limit = min(limit, FUNDING_MAX_LIMIT)
        out = []
        for s in [sym] if sym else self.symbols:
            rows = self._window(self._published(s, "funding"), start, end, limit)
            for t, r, m in zip(
                rows.get("ts_event", []), rows.get("rate", []), rows.get("mark_price", []), strict=True
            ):
                row: dict[str, Any] = {
                    "symbol": s,
                    "fundingRate": _s(r, 8),
                    "fundingTime": int(t) // NS_PER_MS,
                }
                row["markPrice"] = _s(m, 8)
                out.append(row)
        return out

    def premium_index(self, p: Params) -> dict[str, Any] | list[dict[str, Any]]:
        p.check_known(("symbol",))
        sym = self._symbol(p, required=False)
        if sym is not None:
            return self._premium(sym)
        return [self._premium(s) for s in self.symbols]

    def premium_weight(self, p: Params) -> int:
        return 1 if p.get("symbol") else 10

    def _premium(self, sym: str) -> dict[str, Any]:
        now_ms = self.now_ns() // NS_PER_MS
        marks = self._published(sym, "mark_price")
        funding = self._published(sym, "funding")
        last_rate = float(funding["rate"].iloc[-1]) if len(funding) else 0.0001
        if len(marks):
            r = _row(marks, len(marks) - 1)
            mark, index, settle = (
                float(r["mark_price"]),
                float(r["index_price"]),
                float(r["est_settle_price"]),
            )
            rate, next_ms = float(r["funding_rate"]), int(r["next_funding_ns"]) // NS_PER_MS
        elif self.mid is not None and self._has_book(sym):
            mark = index = settle = float(self.mid(sym))
            rate = last_rate
            next_ms = (now_ms // (8 * 3_600_000) + 1) * 8 * 3_600_000
        else:
            raise WireError(400, -1121, "Invalid symbol.")
        return {
            "symbol": sym,
            "markPrice": _s(mark, 8),
            "indexPrice": _s(index, 8),
            "estimatedSettlePrice": _s(settle, 8),
            "lastFundingRate": _s(rate, 8),
            "interestRate": "0.00010000",
            "nextFundingTime": next_ms,
            "time": now_ms,
        }

    def statistics(self, name: str) -> Callable[[Params], list[dict[str, Any]]]:
        """The handler of ``/futures/data/<name>``."""
        stem, fields, with_symbol = STAT_ROUTES[name]

        def handle(p: Params) -> list[dict[str, Any]]:
            p.check_known(("symbol", "period", "limit", "startTime", "endTime"))
            sym = self._symbol(p, required=True)
            assert sym is not None
            period = p.req("period")
            if period not in cs.PERIODS:
                raise _invalid("period")
            limit = p.integer("limit", STATS_DEFAULT_LIMIT)
            assert limit is not None
            if not 1 <= limit <= STATS_MAX_LIMIT:
                raise _invalid("limit")
            start, end = self._times(p)
            oldest = self.now_ns() // NS_PER_MS - cs.STATS_HISTORY_DAYS * DAY_MS
            if start is not None and start < oldest:
                raise _invalid("startTime")
            df = self._published(sym, cs.periodic_kind(stem, period))
            if len(df):
                df = df[df["ts_event"].to_numpy(np.int64) // NS_PER_MS >= oldest]
            rows = self._window(df, start, end, limit)
            out = []
            cols = cs.PERIODIC[stem]
            for i in range(len(rows)):
                r = _row(rows, i)
                row: dict[str, Any] = {"symbol": sym} if with_symbol else {}
                for f, c in zip(fields, cols, strict=True):
                    row[f] = _s(float(r[c]), 8 if stem == "open_interest" else 4)
                row["timestamp"] = str(int(r["ts_event"]) // NS_PER_MS)  # a string, as the USD-M docs show
                out.append(row)
            return out

        return handle

    def routes(self) -> list[tuple[str, Callable[[Params], Any], int | Callable[[Params], int]]]:
        """(path, handler, weight) of every context endpoint."""
        out: list[tuple[str, Callable[[Params], Any], int | Callable[[Params], int]]] = [
            ("/fapi/v1/fundingRate", self.funding_rate, 1),
            ("/fapi/v1/premiumIndex", self.premium_index, self.premium_weight),
        ]
        out += [(f"/futures/data/{name}", self.statistics(name), 0) for name in STAT_ROUTES]
        return out

    # ---------------------------------------------------------------------------------- streams
    def due_messages(self, until_ns: int) -> list[tuple[str, dict[str, Any]]]:
        """Stream messages of the mark price and liquidation rows with ts_event in (last call,
        ``until_ns``], in time order, as (normalized stream name, payload)."""
        since = self._sent_to
        if until_ns <= since:
            return []
        self._sent_to = until_ns
        out: list[tuple[int, str, dict[str, Any]]] = []
        for sym, kinds in self.frames.items():
            low = sym.lower()
            for kind in ("mark_price", "liquidation"):
                df = kinds.get(kind)
                if df is None or df.empty:
                    continue
                t = df["ts_event"].to_numpy(np.int64)
                lo, hi = np.searchsorted(t, since, "right"), np.searchsorted(t, until_ns, "right")
                for i in range(lo, hi):
                    r = _row(df, i)
                    if kind == "mark_price":
                        out.append((int(t[i]), f"{low}@markPrice", mark_price_payload(sym, r)))
                    else:
                        out.append((int(t[i]), f"{low}@forceOrder", force_order_payload(sym, r)))
        out.sort(key=lambda x: x[0])
        return [(name, payload) for _, name, payload in out]


def mark_price_payload(sym: str, r: dict[str, Any]) -> dict[str, Any]:
    """A ``markPriceUpdate`` of one ``mark_price`` row (times already shifted)."""
    return {
        "e": "markPriceUpdate",
        "E": int(r["ts_event"]) // NS_PER_MS,
        "s": sym,
        "p": _s(float(r["mark_price"]), 8),
        "i": _s(float(r["index_price"]), 8),
        "P": _s(float(r["est_settle_price"]), 8),
        "r": _s(float(r["funding_rate"]), 8),
        "T": int(r["next_funding_ns"]) // NS_PER_MS,
    }


def force_order_payload(sym: str, r: dict[str, Any]) -> dict[str, Any]:
    """A ``forceOrder`` of one ``liquidation`` row (``side`` +1 BUY, -1 SELL)."""
    ms = int(r["ts_event"]) // NS_PER_MS
    qty, filled = float(r["qty"]), float(r["filled_qty"])
    return {
        "e": "forceOrder",
        "E": ms,
        "o": {
            "s": sym,
            "S": "BUY" if int(r["side"]) > 0 else "SELL",
            "o": "LIMIT",
            "f": "IOC",
            "q": _s(qty, 3),
            "p": _s(float(r["price"]), 2),
            "ap": _s(float(r["avg_price"]), 2),
            "X": "FILLED" if filled >= qty else "PARTIALLY_FILLED",
            "l": _s(filled, 3),
            "z": _s(filled, 3),
            "T": ms,
        },
    }
