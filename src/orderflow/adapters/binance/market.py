"""Async Binance REST client for market data (depth snapshots, klines, server time, exchange info).

Rate-limit aware: after each response the used weight is read from ``X-MBX-USED-WEIGHT-1M`` (any
case); before a request the client waits for the next minute when ``used + weight`` would pass
``max_weight_per_minute * weight_safety``. HTTP 429 is retried after ``Retry-After`` seconds (bounded),
HTTP 418 raises :class:`IpBanned`, and a Binance error body ``{"code":-1121,"msg":"Invalid symbol."}``
raises :class:`BinanceApiError` without retrying. The errors are the adapter's
(:mod:`~orderflow.adapters.binance.common.errors`) and the HTTP goes through its one transport
(:class:`~orderflow.adapters.binance.http.transport.HttpTransport`).

Weights and paths per market are in :mod:`~orderflow.adapters.binance.common.venues`; time weighs 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec

from orderflow.adapters.binance.common.endpoints import BinanceEndpoints
from orderflow.adapters.binance.common.errors import BinanceApiError, BinanceError, IpBanned, RateLimited
from orderflow.adapters.binance.common.venues import caps
from orderflow.adapters.binance.decode import DecodeError, SnapshotMsg, decode_snapshot
from orderflow.adapters.binance.http.transport import HttpTransport
from orderflow.core.events import Bar
from orderflow.core.instruments import Instrument
from orderflow.core.timeutil import NS_PER_MS

log = logging.getLogger(__name__)


def _used_weight(headers: Any) -> int | None:
    for k, v in headers.items():
        if k.lower() in ("x-mbx-used-weight-1m", "x-mbx-used-weight"):
            try:
                return int(v)
            except ValueError:
                return None
    return None


class BinanceRest:
    """Market-data REST calls against ``endpoints`` (spot ``/api/v3/...``, USD-M ``/fapi/v1/...``).

    Pass an ``aiohttp.ClientSession`` to share one; otherwise the client makes its own (close it with
    :meth:`close` or use ``async with``).
    """

    def __init__(
        self,
        endpoints: BinanceEndpoints,
        session: aiohttp.ClientSession | None = None,
        max_weight_per_minute: int | None = None,
        weight_safety: float = 0.8,
        max_retries: int = 5,
        timeout_s: float = 10.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.endpoints = endpoints
        self.market = endpoints.market
        self.caps = caps(self.market)
        self.http = HttpTransport(endpoints.rest_base_url, timeout_s, session)
        self.max_weight = max_weight_per_minute or self.caps.max_weight_per_minute
        self.weight_safety = weight_safety
        self.max_retries = max_retries
        self.clock = clock
        self._prefix = self.caps.rest_prefix
        self._used = 0
        self._used_minute = -1
        self._lock = asyncio.Lock()
        self.stats = {"requests": 0, "retries_429": 0, "weight_waits": 0}

    async def __aenter__(self) -> BinanceRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.close()

    @property
    def used_weight(self) -> int:
        return self._used if self._used_minute == self._minute() else 0

    def _minute(self) -> int:
        return self.clock() // (60 * 1_000_000_000)

    async def _reserve(self, weight: int) -> None:
        async with self._lock:
            budget = self.max_weight * self.weight_safety
            minute = self._minute()
            if minute != self._used_minute:
                self._used, self._used_minute = 0, minute
            if self._used + weight > budget:
                wait_s = ((minute + 1) * 60 * 1_000_000_000 - self.clock()) / 1e9 + 0.05
                self.stats["weight_waits"] += 1
                log.warning(
                    "REST weight %d + %d would pass %.0f/min: waiting %.1f s for the next minute",
                    self._used,
                    weight,
                    budget,
                    wait_s,
                )
                await asyncio.sleep(max(0.0, wait_s))
                self._used, self._used_minute = 0, self._minute()
            self._used += weight

    async def request(self, path: str, params: dict[str, Any], weight: int, symbol: str = "") -> bytes:
        """GET ``path`` and return the raw body; handles weight, 429, 418 and error bodies."""
        url = self.endpoints.rest_base_url + path
        for attempt in range(self.max_retries + 1):
            await self._reserve(weight)
            self.stats["requests"] += 1
            reply = await self.http.send("GET", url, params=params)
            body = reply.body
            used = _used_weight(reply.headers)
            if used is not None:
                self._used, self._used_minute = used, self._minute()
            if reply.status == 200:
                return body
            retry_after = reply.retry_after_s or 0.0
            if reply.status == 418:
                raise IpBanned(
                    f"IP banned by Binance (HTTP 418) on {path}; retry after {retry_after:.0f} s",
                    ban_until_ns=self.clock() + int(retry_after * 1e9),
                    retry_after_s=retry_after,
                    path=path,
                )
            if reply.status == 429:
                if attempt == self.max_retries:
                    break
                self.stats["retries_429"] += 1
                wait_s = retry_after if retry_after > 0 else min(60.0, 2.0**attempt)
                log.warning(
                    "HTTP 429 on %s %s: retrying in %.1f s (attempt %d/%d)",
                    path,
                    symbol,
                    wait_s,
                    attempt + 1,
                    self.max_retries,
                )
                await asyncio.sleep(wait_s)
                continue
            code, msg = -1, body[:200].decode("utf-8", "replace")
            try:
                err = json.loads(body)
                code, msg = int(err.get("code", -1)), str(err.get("msg", msg))
            except (ValueError, AttributeError):
                pass
            raise BinanceApiError(code, msg, reply.status, symbol, path)
        raise RateLimited(f"HTTP 429 on {path} {symbol} after {self.max_retries} retries")

    # -- endpoints ------------------------------------------------------------------------------------
    async def depth_raw(self, symbol: str, limit: int = 1000) -> bytes:
        """The raw body of ``GET depth`` (for recording), e.g. ``{"lastUpdateId":...,"bids":[...]}``."""
        sym = symbol.upper()
        return await self.request(
            f"{self._prefix}/depth", {"symbol": sym, "limit": limit}, self.caps.depth_weight(limit), sym
        )

    async def depth(self, symbol: str, limit: int = 1000) -> SnapshotMsg:
        raw = await self.depth_raw(symbol, limit)
        try:
            return decode_snapshot(raw)
        except DecodeError as e:
            raise BinanceError(f"depth snapshot for {symbol}: {e}") from None

    async def server_time(self) -> int:
        """Server time in milliseconds."""
        raw = await self.request(f"{self._prefix}/time", {}, 1)
        return int(json.loads(raw)["serverTime"])

    async def klines(
        self,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[Bar]:
        """Closed klines as domain :class:`Bar` (``ts_event`` = close time + 1 ms, in ns).

        A row is ``[open_time, o, h, l, c, volume, close_time, quote_volume, trades, taker_buy_base,
        taker_buy_quote, "0"]``. The kline still open (close time >= now) is dropped."""
        sym = symbol.upper()
        params: dict[str, Any] = {"symbol": sym, "interval": interval, "limit": limit}
        if start_ms is not None:
            params["startTime"] = int(start_ms)
        if end_ms is not None:
            params["endTime"] = int(end_ms)
        raw = await self.request(f"{self._prefix}/klines", params, self.caps.klines_weight(limit), sym)
        rows = msgspec.json.decode(raw)
        now_ms = self.clock() // NS_PER_MS
        ts_recv = self.clock()
        out: list[Bar] = []
        for r in rows:
            close_ms = int(r[6])
            if close_ms >= now_ms:
                continue
            out.append(
                Bar(
                    self.endpoints.venue,
                    sym,
                    interval,
                    int(r[0]) * NS_PER_MS,
                    (close_ms + 1) * NS_PER_MS,
                    ts_recv,
                    float(r[1]),
                    float(r[2]),
                    float(r[3]),
                    float(r[4]),
                    float(r[5]),
                    float(r[7]),
                    int(r[8]),
                    float(r[9]),
                    True,
                )
            )
        return out

    async def exchange_info(self, symbols: list[str] | None = None) -> dict[str, Instrument]:
        """Instruments (tick from PRICE_FILTER.tickSize, lot from LOT_SIZE.stepSize) by symbol."""
        params: dict[str, Any] = {}
        wanted = [s.upper() for s in symbols] if symbols else None
        if wanted and self.caps.exchange_info_by_symbols:
            params["symbols"] = json.dumps(wanted, separators=(",", ":"))
        raw = await self.request(
            f"{self._prefix}/exchangeInfo", params, self.caps.exchange_info_weight, ",".join(wanted or [])
        )
        info = json.loads(raw)
        out: dict[str, Instrument] = {}
        for s in info.get("symbols", []):
            sym = s.get("symbol", "")
            if wanted and sym not in wanted:
                continue
            filters = {f.get("filterType"): f for f in s.get("filters", [])}
            try:
                tick = float(filters["PRICE_FILTER"]["tickSize"])
                lot = float(filters["LOT_SIZE"]["stepSize"])
            except KeyError:
                log.warning("exchangeInfo: %s has no PRICE_FILTER/LOT_SIZE; skipped", sym)
                continue
            mn = filters.get("MIN_NOTIONAL") or filters.get("NOTIONAL") or {}
            min_notional = float(mn.get("notional", mn.get("minNotional", 0.0)) or 0.0)
            out[sym] = Instrument(self.endpoints.venue, sym, tick, lot, min_notional)
        missing = [s for s in wanted or [] if s not in out]
        if missing:
            raise BinanceApiError(
                -1121, "Invalid symbol.", 400, ",".join(missing), f"{self._prefix}/exchangeInfo"
            )
        return out
