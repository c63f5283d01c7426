"""Async Binance REST client for market data (depth snapshots, klines, server time, exchange info).

The calls go through the adapter's one REST transport (:class:`~orderflow.adapters.binance.http.
transport.RestTransport`, unsigned, :meth:`~orderflow.adapters.binance.http.transport.RestTransport.
public`) and its one :class:`~orderflow.adapters.binance.http.ratelimit.RateLimiter`, paced by request
weight alone: before a request the limiter waits for the next minute when ``used + weight`` would pass
``max_weight_per_minute * weight_safety``; after each response ``X-MBX-USED-WEIGHT-1M`` (any case)
raises the count to the server's. HTTP 429 waits ``Retry-After`` and retries (at most ``max_retries``
times, then :class:`RateLimited`), HTTP 418 raises :class:`IpBanned`, and an error body
``{"code":-1121,"msg":"Invalid symbol."}`` raises the typed error of
:func:`~orderflow.adapters.binance.common.errors.error_from_response` (here :class:`UnknownSymbol`)
without retrying.

Weights and paths per market are in :mod:`~orderflow.adapters.binance.common.venues`; time weighs 1.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec

from orderflow.adapters.binance.common.endpoints import BinanceEndpoints
from orderflow.adapters.binance.common.errors import BinanceError, UnknownSymbol
from orderflow.adapters.binance.common.venues import caps
from orderflow.adapters.binance.decode import DecodeError, SnapshotMsg, decode_snapshot
from orderflow.adapters.binance.http.ratelimit import RateLimiter, weight_rules
from orderflow.adapters.binance.http.transport import RestTransport
from orderflow.core.events import Bar
from orderflow.core.instruments import Instrument
from orderflow.core.timeutil import NS_PER_MS

log = logging.getLogger(__name__)


class BinanceRest:
    """Market-data REST calls against ``endpoints`` (spot ``/api/v3/...``, USD-M ``/fapi/v1/...``).

    Pass an ``aiohttp.ClientSession`` to share one; otherwise the client makes its own (close it with
    :meth:`close` or use ``async with``). ``clock`` (ns) and ``sleep`` drive the rate limiter.
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
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.endpoints = endpoints
        self.market = endpoints.market
        self.caps = caps(self.market)
        self.max_weight = max_weight_per_minute or self.caps.max_weight_per_minute
        self.weight_safety = weight_safety
        self.max_retries = max_retries
        self.clock = clock
        self.limiter = RateLimiter(
            weight_rules(self.max_weight), clock=clock, sleep=sleep, safety=weight_safety
        )
        self.rest = RestTransport.unsigned(
            endpoints,
            self.limiter,
            timeout_s=timeout_s,
            max_retries=max_retries,
            session=session,
            sleep=sleep,
            local_clock=clock,
        )
        self._prefix = self.caps.rest_prefix

    async def __aenter__(self) -> BinanceRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.rest.close()

    @property
    def used_weight(self) -> int:
        """The request weight counted in the current minute (the server's count when it is higher)."""
        return self.limiter.used(self.limiter.rules[0])

    @property
    def stats(self) -> dict[str, int]:
        """``requests`` sent, ``retries_429``, ``weight_waits`` (the limiter's waits before a request)
        and the transport's ``unknown_outcomes``."""
        t = self.rest.stats
        return {
            "requests": t["requests"],
            "retries_429": t["retries_429"],
            "weight_waits": int(self.limiter.stats["waits"]),
            "unknown_outcomes": t["unknown_outcomes"],
        }

    async def request(self, path: str, params: dict[str, Any], weight: int, symbol: str = "") -> bytes:
        """GET ``path`` and return the raw body; handles weight, 429, 418 and error bodies."""
        return await self.rest.public(path, params, weight=weight, symbol=symbol)

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
        return int(msgspec.json.decode(raw)["serverTime"])

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
            params["symbols"] = msgspec.json.encode(wanted).decode()
        raw = await self.request(
            f"{self._prefix}/exchangeInfo", params, self.caps.exchange_info_weight, ",".join(wanted or [])
        )
        info = msgspec.json.decode(raw)
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
            raise UnknownSymbol(
                "Invalid symbol.",
                code=-1121,
                status=400,
                path=f"{self._prefix}/exchangeInfo",
                symbol=",".join(missing),
            )
        return out
