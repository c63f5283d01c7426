"""The REST transport of the adapter.

:class:`HttpTransport` is the HTTP connection: the session (shared or owned), the base URL, the
timeout, and a :class:`Reply` with the status, the body, the headers (request-weight and order-count
counters) and ``Retry-After``. :class:`RestTransport` is the one REST path of both clients over it:
rate limiting (one :class:`RateLimiter`), error mapping (:func:`error_from_response`) and retries for
every call, plus signing and server-clock timestamps for signed ones. The trading client signs; the
market-data client (:mod:`..market`) makes unsigned calls through :meth:`RestTransport.public` on a
transport built by :meth:`RestTransport.unsigned` (no credentials).

Parameters go in the query string for GET/DELETE and in an ``application/x-www-form-urlencoded``
body for POST/PUT (Binance accepts either); ``timestamp`` and ``recvWindow`` are appended, then
``signature`` over exactly the string sent. The API key goes in ``X-MBX-APIKEY``.

Retries: HTTP 429 waits ``Retry-After`` and retries (the request was refused, so resending is
safe) up to ``max_retries``; HTTP 418 raises :class:`IpBanned` at once; -1021 resyncs the clock and
retries once; an unknown outcome (5xx, timeout, dropped connection) is retried here only for GET,
and raised as :class:`ExchangeUnavailable` (with the request's ``timestamp``) for the rest, which the
client reconciles by client order id. Errors that cannot succeed on retry are raised at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from orderflow.adapters.binance.common.clock import ServerClock
from orderflow.adapters.binance.common.config import TradingClientConfig
from orderflow.adapters.binance.common.endpoints import BinanceEndpoints
from orderflow.adapters.binance.common.errors import (
    BinanceError,
    ExchangeUnavailable,
    RateLimited,
    TimestampError,
    error_from_response,
)
from orderflow.adapters.binance.common.signing import Credentials, encode_params
from orderflow.adapters.binance.common.venues import caps
from orderflow.adapters.binance.http.ratelimit import RateLimiter, parse_retry_after

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer: ``retry_after_s`` is the ``Retry-After`` header in seconds (None when absent)."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    retry_after_s: float | None


class HttpTransport:
    """One market's HTTP connection. ``session`` may be shared; ``close`` closes only an owned session."""

    def __init__(self, base_url: str, timeout_s: float, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._own_session = session is None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one request (``url`` is the base URL plus the path, with or without a query string) and
        read the whole answer. Timeouts and connection errors propagate."""
        async with self.session.request(
            method, url, params=params, data=data, headers=headers, timeout=self.timeout
        ) as resp:
            raw = await resp.read()
            return Reply(resp.status, raw, resp.headers, parse_retry_after(resp.headers.get("Retry-After")))


class RestTransport:
    """One market's REST calls over an :class:`HttpTransport` (``session`` may be shared).

    ``credentials`` None: a transport for public calls only (a signed or keyed call raises)."""

    def __init__(
        self,
        config: TradingClientConfig,
        credentials: Credentials | None,
        limiter: RateLimiter,
        clock: ServerClock,
        session: aiohttp.ClientSession | None = None,
        sleep: Any = asyncio.sleep,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.limiter = limiter
        self.clock = clock
        self.http = HttpTransport(config.endpoints().rest_base_url, config.request_timeout_s, session)
        self.base_url = self.http.base_url
        self.time_path = f"{caps(config.market).rest_prefix}/time"
        self.sleep = sleep
        self.stats = {"requests": 0, "retries_429": 0, "timestamp_resyncs": 0, "unknown_outcomes": 0}

    @classmethod
    def unsigned(
        cls,
        endpoints: BinanceEndpoints,
        limiter: RateLimiter,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 5,
        session: aiohttp.ClientSession | None = None,
        sleep: Any = asyncio.sleep,
        local_clock: Callable[[], int] = time.time_ns,
    ) -> RestTransport:
        """A transport without credentials for the public (market-data) calls of ``endpoints``."""
        config = TradingClientConfig(
            market=endpoints.market,
            rest_base_url=endpoints.rest_base_url,
            ws_base_url=endpoints.ws_base_url,
            request_timeout_s=timeout_s,
            max_retries=max_retries,
        )
        return cls(config, None, limiter, ServerClock(local_clock), session, sleep)

    async def close(self) -> None:
        await self.http.close()

    async def public(self, path: str, params: dict[str, Any], *, weight: int, symbol: str = "") -> bytes:
        """``GET path`` unsigned and without API key; the raw body of a 200 answer (typed errors
        otherwise, with the retries of :meth:`request`)."""
        body: bytes = await self.request(
            "GET", path, params, weight=weight, symbol=symbol, sync_on_timestamp=False, as_bytes=True
        )
        return body

    async def server_time_ms(self) -> int:
        body = await self.request("GET", self.time_path, {}, weight=1, sync_on_timestamp=False)
        return int(body["serverTime"])

    async def sync_clock(self, samples: int = 3) -> float:
        """Measure the server-clock offset (ms) with ``samples`` ``GET /time`` round trips."""
        off = await self.clock.sync(self.server_time_ms, samples)
        log.info("server clock offset %.1f ms (rtt %.1f ms)", off, self.clock.rtt_ms)
        return off

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        *,
        weight: int = 1,
        orders: int = 0,
        signed: bool = False,
        api_key: bool = False,
        symbol: str = "",
        sync_on_timestamp: bool = True,
        as_bytes: bool = False,
        sign: Callable[[dict[str, Any]], str] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON body, or its bytes when ``as_bytes`` (typed errors
        otherwise). ``sign``: the caller's signer of a signed request's parameters (default: the
        credentials' ``signed_payload``)."""
        resynced = False
        attempt = 0
        while True:
            await self.limiter.acquire(weight, orders)
            p = dict(params)
            ts_ms = 0
            if signed:
                ts_ms = self.clock.now_ms()
                p["recvWindow"] = self.config.recv_window_ms
                p["timestamp"] = ts_ms
                payload = (sign or self._creds(method, path).signed_payload)(p)
            else:
                payload = encode_params(p)
            headers = {"X-MBX-APIKEY": self._creds(method, path).api_key} if (signed or api_key) else {}
            url = self.base_url + path
            body_data: str | None = None
            if method in ("GET", "DELETE"):
                if payload:
                    url = f"{url}?{payload}"
            else:
                body_data = payload
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            self.stats["requests"] += 1
            try:
                reply = await self.http.send(method, url, data=body_data, headers=headers)
            except (TimeoutError, aiohttp.ClientError) as e:
                self.stats["unknown_outcomes"] += 1
                err: BinanceError = ExchangeUnavailable(
                    f"{type(e).__name__} on {method} {path}: outcome unknown", path=path, symbol=symbol
                )
                err.sent_timestamp_ms = ts_ms or self.clock.now_ms()  # type: ignore[attr-defined]
                if method == "GET" and attempt < self.config.max_retries:
                    attempt += 1
                    await self.sleep(min(2.0, 0.1 * 2**attempt))
                    continue
                raise err from None
            raw, status, retry_after = reply.body, reply.status, reply.retry_after_s
            self.limiter.update_from_headers(reply.headers)
            if status == 200:
                self.limiter.on_success()
                if as_bytes:
                    return raw
                try:
                    return msgspec.json.decode(raw) if raw else {}
                except msgspec.DecodeError:
                    raise BinanceError(
                        f"response to {method} {path} is not JSON", status=200, path=path
                    ) from None
            if status == 418:
                raise self.limiter.on_418(retry_after)
            if status == 429:
                if attempt >= self.config.max_retries:
                    raise RateLimited(
                        f"HTTP 429 on {method} {path} after {attempt} retries",
                        retry_after_s=retry_after or 0.0,
                        status=429,
                        path=path,
                        symbol=symbol,
                    )
                attempt += 1
                self.stats["retries_429"] += 1
                self.limiter.on_429(retry_after)
                continue
            code, msg = self._error_body(raw)
            err = error_from_response(status, code, msg, path, symbol)
            if isinstance(err, TimestampError) and sync_on_timestamp and not resynced:
                resynced = True
                self.stats["timestamp_resyncs"] += 1
                log.warning("-1021 on %s %s: resyncing the server clock and retrying once", method, path)
                await self.sync_clock()
                continue
            if isinstance(err, ExchangeUnavailable):
                self.stats["unknown_outcomes"] += 1
                err.sent_timestamp_ms = ts_ms or self.clock.now_ms()  # type: ignore[attr-defined]
                if method == "GET" and attempt < self.config.max_retries:
                    attempt += 1
                    await self.sleep(min(2.0, 0.1 * 2**attempt))
                    continue
            raise err

    def _error_body(self, raw: bytes) -> tuple[int, str]:
        text = raw[:500].decode("utf-8", "replace")
        try:
            d = msgspec.json.decode(raw)
            if isinstance(d, dict):
                return int(d.get("code", 0) or 0), self._redact(str(d.get("msg", "")))
        except (msgspec.DecodeError, ValueError, TypeError):
            pass
        return 0, self._redact(text)

    def _creds(self, method: str, path: str) -> Credentials:
        if self.credentials is None:
            raise BinanceError(f"{method} {path} needs an API key; this transport has no credentials")
        return self.credentials

    def _redact(self, text: str) -> str:
        return self.credentials.redact(text) if self.credentials is not None else text

    def __repr__(self) -> str:
        return f"RestTransport({self.base_url}, {self.credentials!r})"
