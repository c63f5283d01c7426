"""Rate limits like Binance's: request weight per minute (IP) and new orders per 10 seconds (account).

Every answer carries ``X-MBX-USED-WEIGHT-1M`` (weight used in the current window, this request
included) and order endpoints ``X-MBX-ORDER-COUNT-10S``. Over the weight limit a request gets HTTP 429
(-1003) with ``Retry-After`` = seconds until the window ends; over the order limit HTTP 429 (-1015).
A client that keeps sending while told to wait (``ban_after`` requests inside a Retry-After period)
is banned: HTTP 418 (-1003) with ``Retry-After`` = ``ban_s`` for every request until the ban ends.

Windows are fixed wall-clock windows (``floor(now / window)``), as Binance's are; their lengths are
configurable so that tests can trigger the limits quickly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from orderflow.execution.local import errors as E


class RateLimiter:
    """Weight and order-count limits of one server (one IP, one account)."""

    def __init__(
        self,
        weight_limit: int,
        order_limit: int,
        weight_window_s: float = 60.0,
        order_window_s: float = 10.0,
        ban_after: int = 3,
        ban_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.weight_limit, self.order_limit = weight_limit, order_limit
        self.weight_window_s, self.order_window_s = weight_window_s, order_window_s
        self.ban_after, self.ban_s = ban_after, ban_s
        self.clock = clock
        self._w_win, self._weight = -1, 0
        self._o_win, self._orders = -1, 0
        self._backoff_until = 0.0
        self._strikes = 0
        self._banned_until = 0.0

    def _roll(self, now: float) -> None:
        w = int(now // self.weight_window_s)
        if w != self._w_win:
            self._w_win, self._weight = w, 0
        o = int(now // self.order_window_s)
        if o != self._o_win:
            self._o_win, self._orders = o, 0

    def _retry(self, now: float, window: float) -> int:
        return max(1, math.ceil((math.floor(now / window) + 1) * window - now))

    def headers(self, order: bool = False) -> dict[str, str]:
        h = {"X-MBX-USED-WEIGHT-1M": str(self._weight)}
        if order:
            h["X-MBX-ORDER-COUNT-10S"] = str(self._orders)
        return h

    def admit(self, weight: int, order: bool = False) -> dict[str, str]:
        """Count a request of ``weight`` (and one new order if ``order``); return the usage headers or
        raise the 418 / 429 answer (with those headers)."""
        now = self.clock()
        self._roll(now)
        if now < self._banned_until:
            err = E.banned(int(self._banned_until * 1000), max(1, math.ceil(self._banned_until - now)))
            err.headers.update(self.headers(order))
            raise err
        if now < self._backoff_until:
            self._strikes += 1
            if self._strikes >= self.ban_after:
                self._banned_until = now + self.ban_s
                err = E.banned(int(self._banned_until * 1000), max(1, math.ceil(self.ban_s)))
                err.headers.update(self.headers(order))
                raise err
        else:
            self._strikes = 0
        self._weight += weight
        if self._weight > self.weight_limit:
            retry = self._retry(now, self.weight_window_s)
            self._backoff_until = now + retry
            err = E.too_much_weight(self.weight_limit, retry)
            err.headers.update(self.headers(order))
            raise err
        if order:
            self._orders += 1
            if self._orders > self.order_limit:
                retry = self._retry(now, self.order_window_s)
                self._backoff_until = now + retry
                err = E.too_many_orders(self.order_limit, retry)
                err.headers.update(self.headers(order))
                raise err
        return self.headers(order)
