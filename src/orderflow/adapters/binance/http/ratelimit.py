"""A rate limiter driven by Binance's limits and response headers.

Binance (REST docs, "LIMITS"): ``exchangeInfo.rateLimits`` lists ``REQUEST_WEIGHT``, ``ORDERS`` and
``RAW_REQUESTS`` limits as ``{"rateLimitType", "interval": SECOND|MINUTE|HOUR|DAY, "intervalNum",
"limit"}``; every response carries ``X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)`` and every
successful order ``X-MBX-ORDER-COUNT-(intervalNum)(intervalLetter)`` (e.g. ``X-MBX-USED-WEIGHT-1M``,
``X-MBX-ORDER-COUNT-10S``, ``X-MBX-ORDER-COUNT-1D``). HTTP 429 means a limit was broken and carries
``Retry-After`` (seconds); continuing earns HTTP 418, an IP ban whose ``Retry-After`` is the seconds
until the ban ends.

Counters are per fixed window aligned on the clock (``window = now // interval``). Before a request
the limiter reserves its weight (and order count) in every rule; when ``used + cost`` would pass
``limit * safety`` it waits for the next window of the rule that is full. After the response the
headers (the server's count, which includes other processes on the same IP) raise the counters.
A 429 blocks every request until ``Retry-After`` (or an exponential back-off when absent); a 418
sets a ban: :meth:`acquire` then raises :class:`IpBanned` with the ban end until it passes.
The clock and the sleep are injected, so tests drive the limiter with a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orderflow.adapters.binance.common.errors import IpBanned, RateLimited
from orderflow.adapters.binance.common.venues import SPOT, USDM

log = logging.getLogger(__name__)
NS = 1_000_000_000
_INTERVAL_NS = {"SECOND": NS, "MINUTE": 60 * NS, "HOUR": 3600 * NS, "DAY": 86400 * NS}
_LETTER = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One limit: ``kind`` REQUEST_WEIGHT / ORDERS / RAW_REQUESTS, ``limit`` per ``interval_num``
    ``interval`` (SECOND / MINUTE / HOUR / DAY)."""

    kind: str
    interval: str
    interval_num: int
    limit: int

    @property
    def interval_ns(self) -> int:
        return _INTERVAL_NS[self.interval] * self.interval_num

    @property
    def header(self) -> str:
        """The response header that reports this counter (lowercase), or "" for RAW_REQUESTS."""
        suffix = f"{self.interval_num}{_LETTER[self.interval]}".lower()
        if self.kind == "REQUEST_WEIGHT":
            return f"x-mbx-used-weight-{suffix}"
        if self.kind == "ORDERS":
            return f"x-mbx-order-count-{suffix}"
        return ""


def rules_from_exchange_info(rate_limits: list[dict[str, Any]]) -> list[LimitRule]:
    """Rules from ``exchangeInfo.rateLimits`` (unknown intervals are skipped)."""
    out = []
    for r in rate_limits:
        if r.get("interval") in _INTERVAL_NS and r.get("rateLimitType"):
            out.append(
                LimitRule(r["rateLimitType"], r["interval"], int(r.get("intervalNum", 1)), int(r["limit"]))
            )
    return out


def default_rules(futures: bool) -> list[LimitRule]:
    """Binance's published defaults of the futures (USD-M) or spot market, from the capability table;
    used until exchangeInfo is loaded."""
    return [LimitRule(*r) for r in (USDM if futures else SPOT).rate_limits]


def weight_rules(max_weight_per_minute: int) -> list[LimitRule]:
    """The one rule market-data calls are paced by: ``REQUEST_WEIGHT`` per minute (they place no orders)."""
    if max_weight_per_minute <= 0:
        raise ValueError(f"max_weight_per_minute must be positive, not {max_weight_per_minute}")
    return [LimitRule("REQUEST_WEIGHT", "MINUTE", 1, max_weight_per_minute)]


class RateLimiter:
    """Waits before a request would pass a limit; honours 429 ``Retry-After``; stops on 418.

    ``clock`` returns ns since the epoch; ``sleep`` is ``asyncio.sleep``-like. ``safety`` is the
    fraction of each limit the limiter lets the client use. ``max_wait_s``: a wait longer than this
    raises :class:`RateLimited` instead of sleeping (so a caller is not frozen for a day)."""

    def __init__(
        self,
        rules: list[LimitRule],
        *,
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        safety: float = 0.95,
        max_wait_s: float = 120.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
    ) -> None:
        if not 0 < safety <= 1:
            raise ValueError(f"safety must be in (0, 1], not {safety}")
        self.clock, self.sleep = clock, sleep
        self.safety, self.max_wait_s = safety, max_wait_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.blocked_until_ns = 0
        self.banned_until_ns = 0
        self.consecutive_429 = 0
        self.stats = {"waits": 0, "wait_s": 0.0, "http_429": 0, "http_418": 0}
        self.set_rules(rules)

    def set_rules(self, rules: list[LimitRule]) -> None:
        """Replace the rules (e.g. after exchangeInfo); counters of rules kept by name survive."""
        old = getattr(self, "_used", {})
        self.rules = list(rules)
        self._used: dict[LimitRule, tuple[int, int]] = {r: old.get(r, (-1, 0)) for r in self.rules}

    # -- accounting -----------------------------------------------------------------------------------
    def _cost(self, rule: LimitRule, weight: int, orders: int) -> int:
        return weight if rule.kind == "REQUEST_WEIGHT" else orders if rule.kind == "ORDERS" else 1

    def used(self, rule: LimitRule) -> int:
        """The count of ``rule`` in the current window."""
        window, n = self._used[rule]
        return n if window == self.clock() // rule.interval_ns else 0

    def delay_s(self, weight: int = 1, orders: int = 0) -> float:
        """Seconds to wait before a request of ``weight`` (placing ``orders`` orders) fits (0 = now)."""
        now = self.clock()
        if now < self.banned_until_ns:
            return (self.banned_until_ns - now) / NS
        wait_ns = max(0, self.blocked_until_ns - now)
        for r in self.rules:
            cost = self._cost(r, weight, orders)
            if cost and self.used(r) + cost > r.limit * self.safety:
                wait_ns = max(wait_ns, (now // r.interval_ns + 1) * r.interval_ns - now)
        return wait_ns / NS

    def _reserve(self, weight: int, orders: int) -> None:
        now = self.clock()
        for r in self.rules:
            self._used[r] = (now // r.interval_ns, self.used(r) + self._cost(r, weight, orders))

    async def acquire(self, weight: int = 1, orders: int = 0) -> None:
        """Wait until a request fits, then count it. Raises :class:`IpBanned` during a ban and
        :class:`RateLimited` when the wait would exceed ``max_wait_s``."""
        while True:
            self.check_ban()
            d = self.delay_s(weight, orders)
            if d <= 0:
                self._reserve(weight, orders)
                return
            if d > self.max_wait_s:
                raise RateLimited(
                    f"rate limit wait {d:.1f} s exceeds max_wait_s {self.max_wait_s:.1f} s "
                    f"(weight {weight}, orders {orders}; {self.describe()})",
                    retry_after_s=d,
                )
            self.stats["waits"] += 1
            self.stats["wait_s"] += d
            log.info(
                "rate limiter: waiting %.3f s (weight %d, orders %d; %s)", d, weight, orders, self.describe()
            )
            await self.sleep(d)

    def check_ban(self) -> None:
        if self.clock() < self.banned_until_ns:
            left = (self.banned_until_ns - self.clock()) / NS
            raise IpBanned(
                f"IP banned by Binance (HTTP 418); trading stopped for {left:.0f} s more",
                ban_until_ns=self.banned_until_ns,
                retry_after_s=left,
                status=418,
            )

    def describe(self) -> str:
        return ", ".join(
            f"{r.kind} {self.used(r)}/{r.limit} per {r.interval_num}{_LETTER[r.interval]}" for r in self.rules
        )

    # -- feedback from responses -------------------------------------------------------------------------
    def update_from_headers(self, headers: Mapping[str, str]) -> None:
        """Raise the counters to the server's counts in ``X-MBX-USED-WEIGHT-*`` / ``X-MBX-ORDER-COUNT-*``."""
        low = {k.lower(): v for k, v in headers.items()}
        now = self.clock()
        for r in self.rules:
            if r.header and r.header in low:
                try:
                    server = int(low[r.header])
                except ValueError:
                    continue
                self._used[r] = (now // r.interval_ns, max(self.used(r), server))

    def on_success(self) -> None:
        self.consecutive_429 = 0

    def on_429(self, retry_after_s: float | None) -> float:
        """Block all requests for ``Retry-After`` seconds (or an exponential back-off); return the wait."""
        self.stats["http_429"] += 1
        self.consecutive_429 += 1
        if retry_after_s is None or retry_after_s <= 0:
            wait = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (self.consecutive_429 - 1))
        else:
            wait = float(retry_after_s)
        self.blocked_until_ns = max(self.blocked_until_ns, self.clock() + int(wait * NS))
        log.warning(
            "HTTP 429 from Binance: all requests wait %.1f s (%d in a row)", wait, self.consecutive_429
        )
        return wait

    def on_418(self, retry_after_s: float | None) -> IpBanned:
        """Record a ban (``Retry-After`` seconds, else 120 s, Binance's shortest ban) and return the error."""
        self.stats["http_418"] += 1
        wait = float(retry_after_s) if retry_after_s and retry_after_s > 0 else 120.0
        self.banned_until_ns = max(self.banned_until_ns, self.clock() + int(wait * NS))
        log.error("HTTP 418 from Binance: IP banned for %.0f s; trading stopped", wait)
        return IpBanned(
            f"IP banned by Binance (HTTP 418) for {wait:.0f} s; trading stopped",
            ban_until_ns=self.banned_until_ns,
            retry_after_s=wait,
            status=418,
        )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (Binance sends integer seconds)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None
