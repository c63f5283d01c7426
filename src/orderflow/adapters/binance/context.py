"""Context series over Binance USD-M REST and alternative.me: requests and their answers as the frames
of :mod:`orderflow.data.context_schema`.

Endpoints (Binance USD-M docs, "Market Data"; weights as documented):

- :meth:`ContextRest.funding_rates`: ``GET /fapi/v1/fundingRate`` (symbol, startTime, endTime, limit:
  default 100, max 1000); counted in a window of 500 requests / 5 min / IP shared with ``fundingInfo``.
- :meth:`ContextRest.premium_index`: ``GET /fapi/v1/premiumIndex`` (symbol optional); weight 1 with a
  symbol, 10 without.
- :meth:`ContextRest.statistics`: ``GET /futures/data/<name>`` (symbol, period, limit: default 30, max
  500, startTime, endTime); weight 0, only the latest 30 days.

``/futures/data/*`` are ``openInterestHist``, ``globalLongShortAccountRatio``,
``topLongShortAccountRatio``, ``topLongShortPositionRatio`` and ``takerlongshortRatio``; a ``startTime``
older than 30 days is refused with HTTP 400 ``{"code":-1130,"msg":"parameter 'startTime' is invalid."}``
(raised as :class:`~orderflow.adapters.binance.common.errors.BadRequest`). Both windows are counted: the
request weight by the market client's limiter, and the per-IP request counts (500 / 5 min for
fundingRate, 1000 / 5 min for ``/futures/data``) by a limiter of their own.

Numbers arrive as strings and times in ms. Frames: ``ts_event`` is the row's time (a funding time, a
period's start, the premium index's ``time``); ``ts_recv`` the time it was published: the funding time
for funding, the period's end plus :data:`~orderflow.data.context_schema.STAT_DELAY_S` for the
statistics (:func:`~orderflow.data.context_schema.publication_ns`), ``time`` for the premium index.

:class:`FearGreedClient` reads ``GET {base}/fng/?limit=N&format=json`` (``limit=0``: the whole history),
newest first: ``{"name": "Fear and Greed Index", "data": [{"value": "18", "value_classification":
"Extreme Fear", "timestamp": "1773273600"}], "metadata": {"error": null}}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
import numpy as np
import pandas as pd

from orderflow.adapters.binance.common.errors import BinanceError
from orderflow.adapters.binance.http.ratelimit import LimitRule, RateLimiter
from orderflow.adapters.binance.market import BinanceRest
from orderflow.data import context_schema as cs

NS_PER_MS = 1_000_000
FUNDING_PATH = "/fapi/v1/fundingRate"
PREMIUM_PATH = "/fapi/v1/premiumIndex"
FUNDING_MAX_LIMIT = 1000
STATS_MAX_LIMIT = 500
# stem -> (path, the answer's value fields in the order of context_schema.PERIODIC[stem])
STATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "open_interest": ("/futures/data/openInterestHist", ("sumOpenInterest", "sumOpenInterestValue")),
    "ls_global": (
        "/futures/data/globalLongShortAccountRatio",
        ("longShortRatio", "longAccount", "shortAccount"),
    ),
    "ls_top_accounts": (
        "/futures/data/topLongShortAccountRatio",
        ("longShortRatio", "longAccount", "shortAccount"),
    ),
    # the USD-M docs name this answer's shares longAccount/shortAccount (COIN-M: longPosition/shortPosition)
    "ls_top_positions": (
        "/futures/data/topLongShortPositionRatio",
        ("longShortRatio", "longAccount", "shortAccount"),
    ),
    "taker_ratio": ("/futures/data/takerlongshortRatio", ("buySellRatio", "buyVol", "sellVol")),
}
_ALIASES = {"longAccount": "longPosition", "shortAccount": "shortPosition"}
FEAR_GREED_URL = "https://api.alternative.me"
FEAR_GREED_CLASSES = ("Extreme Fear", "Fear", "Neutral", "Greed", "Extreme Greed")


class ContextDecodeError(BinanceError):
    """An answer that is not the documented shape (names the path and the problem)."""


def _num(rows: list[dict], field: str, path: str, alias: str | None = None) -> np.ndarray:
    out = np.empty(len(rows), np.float64)
    for i, r in enumerate(rows):
        v = r.get(field, r.get(alias) if alias else None)
        if v is None:
            raise ContextDecodeError(f"{path}: row {i} has no {field!r}", path=path)
        try:
            out[i] = float(v) if v != "" else np.nan
        except (TypeError, ValueError):
            raise ContextDecodeError(f"{path}: row {i}: {field}={v!r} is not a number", path=path) from None
    return out


def _ms(rows: list[dict], field: str, path: str) -> np.ndarray:
    try:
        return np.array([int(r[field]) for r in rows], np.int64) * NS_PER_MS
    except (KeyError, TypeError, ValueError):
        raise ContextDecodeError(f"{path}: a row has no integer {field!r}", path=path) from None


def _rows(raw: bytes, path: str) -> list[dict]:
    try:
        rows = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ContextDecodeError(f"{path}: the answer is not JSON", path=path) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ContextDecodeError(f"{path}: want a JSON list of objects", path=path)
    return rows


def parse_funding(raw: bytes) -> pd.DataFrame:
    """``[{"symbol":"BTCUSDT","fundingRate":"-0.03750000","fundingTime":1570608000000,"markPrice":
    "34287.54619963"}]`` -> kind ``funding`` (ts_recv = the funding time; mark_price NaN when absent)."""
    rows = _rows(raw, FUNDING_PATH)
    ts = _ms(rows, "fundingTime", FUNDING_PATH)
    mark = np.array([float(r.get("markPrice") or "nan") for r in rows], np.float64)
    return cs.frame("funding", ts, ts, rate=_num(rows, "fundingRate", FUNDING_PATH), mark_price=mark)


def parse_statistics(stem: str, period: str, raw: bytes, delay_s: float = cs.STAT_DELAY_S) -> pd.DataFrame:
    """A ``/futures/data/*`` answer (e.g. ``[{"symbol":"BTCUSDT","sumOpenInterest":"20403.63700000",
    "sumOpenInterestValue":"150570784.07809979","timestamp":1583127900000}]``, ``timestamp`` a number or a
    string) -> kind ``<stem>_<period>`` with ts_event = the period start and ts_recv its publication."""
    kind = cs.periodic_kind(stem, period)
    path, fields = STATS[stem]
    rows = _rows(raw, path)
    ts = _ms(rows, "timestamp", path)
    values = {
        col: _num(rows, f, path, _ALIASES.get(f)) for col, f in zip(cs.PERIODIC[stem], fields, strict=True)
    }
    return cs.frame(kind, ts, cs.publication_ns(kind, ts, delay_s), **values)


def parse_premium_index(raw: bytes) -> pd.DataFrame:
    """``{"symbol":"BTCUSDT","markPrice":"11793.63104562","indexPrice":"11781.80495970",
    "estimatedSettlePrice":"11781.16138815","lastFundingRate":"0.00038246","interestRate":"0.00010000",
    "nextFundingTime":1597392000000,"time":1597370495002}`` (or a list of them) -> kind ``mark_price``
    (ts_event = ts_recv = ``time``); the symbol of each row in the column ``symbol``."""
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ContextDecodeError(f"{PREMIUM_PATH}: the answer is not JSON", path=PREMIUM_PATH) from None
    rows = data if isinstance(data, list) else [data]
    if not all(isinstance(r, dict) for r in rows):
        raise ContextDecodeError(f"{PREMIUM_PATH}: want an object or a list of objects", path=PREMIUM_PATH)
    ts = _ms(rows, "time", PREMIUM_PATH)
    df = cs.frame(
        "mark_price",
        ts,
        ts,
        mark_price=_num(rows, "markPrice", PREMIUM_PATH),
        index_price=_num(rows, "indexPrice", PREMIUM_PATH),
        est_settle_price=_num(rows, "estimatedSettlePrice", PREMIUM_PATH),
        funding_rate=_num(rows, "lastFundingRate", PREMIUM_PATH),
        next_funding_ns=_ms(rows, "nextFundingTime", PREMIUM_PATH),
    )
    df["symbol"] = [str(r.get("symbol", "")) for r in rows]
    return df


def parse_fear_greed(raw: bytes, delay_s: float) -> pd.DataFrame:
    """The alternative.me answer (module docstring) -> kind ``fear_greed``, one row per UTC day, oldest
    first, ts_recv = the day's start + ``delay_s``."""
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ContextDecodeError("fear & greed: the answer is not JSON", path="/fng/") from None
    rows = data.get("data") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        err = (data.get("metadata") or {}).get("error") if isinstance(data, dict) else None
        raise ContextDecodeError(f"fear & greed: no data list in the answer (error: {err})", path="/fng/")
    try:
        ts = np.array([int(r["timestamp"]) for r in rows], np.int64) * cs.NS
    except (KeyError, TypeError, ValueError):
        raise ContextDecodeError("fear & greed: a row has no integer timestamp", path="/fng/") from None
    day = ts // (86_400 * cs.NS) * (86_400 * cs.NS)
    value = _num(rows, "value", "/fng/")
    code = [
        FEAR_GREED_CLASSES.index(c) if (c := r.get("value_classification")) in FEAR_GREED_CLASSES else -1
        for r in rows
    ]
    df = cs.frame("fear_greed", day, day + round(delay_s * cs.NS), value=value, classification=code)
    return df.sort_values("ts_event", kind="stable").drop_duplicates("ts_event").reset_index(drop=True)


class ContextRest:
    """The context calls of one USD-M market, through a :class:`BinanceRest` (its transport, its
    weight limiter and 429/418 handling) plus the per-IP request windows of these endpoints.

    ``clock``/``sleep`` drive the extra windows as they drive the weight limiter."""

    def __init__(
        self,
        rest: BinanceRest,
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        delay_s: float = cs.STAT_DELAY_S,
    ) -> None:
        if not rest.caps.futures:
            raise ValueError(f"context endpoints are USD-M only; this client is for {rest.market!r}")
        self.rest = rest
        self.delay_s = delay_s

        # the per-IP request windows (a request costs 1 in a RAW_REQUESTS rule), 5 minutes each
        def window(requests: int) -> RateLimiter:
            rule = LimitRule("RAW_REQUESTS", "MINUTE", 5, requests)
            return RateLimiter([rule], clock=clock, sleep=sleep, safety=0.9, max_wait_s=330)

        self.funding_window, self.stats_window = window(500), window(1000)

    async def funding_rates(
        self, symbol: str, start_ms: int | None = None, end_ms: int | None = None, limit: int = 1000
    ) -> pd.DataFrame:
        """``GET /fapi/v1/fundingRate``: at most ``limit`` (<= 1000) funding times from ``start_ms``
        (both ends inclusive), ascending."""
        if not 1 <= limit <= FUNDING_MAX_LIMIT:
            raise ValueError(f"fundingRate limit {limit} is outside 1..{FUNDING_MAX_LIMIT}")
        sym = symbol.upper()
        params: dict[str, Any] = {"symbol": sym}
        if start_ms is not None:
            params["startTime"] = int(start_ms)
        if end_ms is not None:
            params["endTime"] = int(end_ms)
        params["limit"] = limit
        await self.funding_window.acquire()
        raw = await self.rest.request(FUNDING_PATH, params, 1, sym)
        return parse_funding(raw)

    async def premium_index(self, symbol: str | None = None) -> pd.DataFrame:
        """``GET /fapi/v1/premiumIndex``: the current mark price, index and funding rate (kind
        ``mark_price`` plus a ``symbol`` column; every symbol when ``symbol`` is None)."""
        params = {"symbol": symbol.upper()} if symbol else {}
        raw = await self.rest.request(PREMIUM_PATH, params, 1 if symbol else 10, symbol or "")
        return parse_premium_index(raw)

    async def statistics(
        self,
        stem: str,
        symbol: str,
        period: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> pd.DataFrame:
        """``GET /futures/data/<name>`` of ``stem`` (a key of :data:`STATS`): at most ``limit`` (<= 500)
        periods from ``start_ms``, ascending, as kind ``<stem>_<period>``."""
        kind = cs.periodic_kind(stem, period)  # refuses an unknown stem or period by name
        if not 1 <= limit <= STATS_MAX_LIMIT:
            raise ValueError(f"{kind}: limit {limit} is outside 1..{STATS_MAX_LIMIT}")
        sym = symbol.upper()
        params: dict[str, Any] = {"symbol": sym, "period": period, "limit": limit}
        if start_ms is not None:
            params["startTime"] = int(start_ms)
        if end_ms is not None:
            params["endTime"] = int(end_ms)
        await self.stats_window.acquire()
        raw = await self.rest.request(STATS[stem][0], params, 0, sym)
        return parse_statistics(stem, period, raw, self.delay_s)


class FearGreedClient:
    """``GET {base_url}/fng/?limit=N&format=json`` (alternative.me; no key, no documented limits)."""

    def __init__(
        self,
        base_url: str = FEAR_GREED_URL,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if "://" not in base_url:
            raise ValueError(f"fear & greed base URL {base_url!r} is not a URL")
        self.base_url = base_url.rstrip("/")
        self._session, self._own = session, session is None
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.requests = 0

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FearGreedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def history(self, days: int, delay_s: float) -> pd.DataFrame:
        """The last ``days`` daily values (0: all), oldest first, as kind ``fear_greed``."""
        if days < 0:
            raise ValueError(f"fear & greed: days must be >= 0, not {days}")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{self.base_url}/fng/?limit={int(days)}&format=json"
        self.requests += 1
        try:
            async with self._session.get(url, timeout=self.timeout) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise BinanceError(f"fear & greed: HTTP {resp.status} from {url}", status=resp.status)
        except (TimeoutError, aiohttp.ClientError) as e:
            raise BinanceError(f"fear & greed: {type(e).__name__} on {url}") from None
        return parse_fear_greed(body, delay_s)
