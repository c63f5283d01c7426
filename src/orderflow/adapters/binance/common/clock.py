"""The server-clock offset used for the ``timestamp`` of signed requests.

Binance rejects a signed request with -1021 when ``timestamp`` is more than 1 s ahead of its clock or
older than ``recvWindow``. The offset is measured, not assumed: ``GET /time`` returns
``{"serverTime": ms}``; with local send time ``t0`` and receive time ``t1`` the server read its clock
at about ``(t0 + t1) / 2``, so ``offset = serverTime - (t0 + t1) / 2``. Of several samples the one
with the shortest round trip is kept (the least uncertain). The local clock is injected (ns).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from orderflow.core.timeutil import NS_PER_MS


class ServerClock:
    """Local clock plus a measured offset to the exchange's clock."""

    def __init__(self, local_clock: Callable[[], int] = time.time_ns) -> None:
        self.local_clock = local_clock
        self.offset_ms = 0.0
        self.rtt_ms = float("nan")
        self.synced_at_ns = 0
        self.samples = 0

    def now_ms(self) -> int:
        """Server time estimate in ms (what goes into ``timestamp``)."""
        return int(self.local_clock() / NS_PER_MS + self.offset_ms)

    def local_ns(self) -> int:
        return self.local_clock()

    def add_sample(self, t0_ns: int, server_ms: int, t1_ns: int) -> None:
        """Record one ``GET /time`` round trip (local send ``t0_ns``, receive ``t1_ns``)."""
        rtt = (t1_ns - t0_ns) / NS_PER_MS
        offset = server_ms - (t0_ns + t1_ns) / 2 / NS_PER_MS
        self.offset_ms, self.rtt_ms = offset, rtt
        self.synced_at_ns = t1_ns
        self.samples += 1

    async def sync(self, fetch_server_ms: Callable[[], Awaitable[int]], samples: int = 3) -> float:
        """Measure the offset with ``samples`` round trips and keep the shortest; return offset in ms."""
        best: tuple[float, int, int, int] | None = None
        for _ in range(max(1, samples)):
            t0 = self.local_clock()
            server = await fetch_server_ms()
            t1 = self.local_clock()
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, t0, server, t1)
        assert best is not None
        self.add_sample(best[1], best[2], best[3])
        return self.offset_ms

    def age_s(self) -> float:
        """Seconds since the last sync (inf when never synced)."""
        if not self.samples:
            return float("inf")
        return (self.local_clock() - self.synced_at_ns) / 1e9

    def __repr__(self) -> str:
        return (
            f"ServerClock(offset_ms={self.offset_ms:.1f}, rtt_ms={self.rtt_ms:.1f}, samples={self.samples})"
        )
