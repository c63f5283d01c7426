"""Lockstep replay: the paper/live engine trading over the network against the local exchange, one market
event at a time, under a clock this driver sets, so that its orders and fills can be compared with a
backtest of the same events.

The exchange runs with ``clock="lockstep"`` (see :mod:`orderflow.execution.local.venue`): it matches
orders with the backtester's simulated exchange and latency model, and holds the user data messages of a
fill or report until their response time. The driver repeats, for each recorded event in exchange-time
order (the backtester's order):

1. the exchange applies the event (orders whose latency has elapsed are matched first);
2. for a book event, the held user messages due by the event's receive time are sent, one response time
   at a time, with the engine's clock set to that time, and the driver waits until the engine consumed
   them (the backtester delivers fills before the strategy's turn);
3. the engine's clock is set to the event's recorded receive time and the event's stream messages are
   sent; the driver waits until the engine has read them and any order it sent has reached the exchange
   (which stamps the order with that receive time plus the decision latency).

Everything goes through the real protocol: WebSocket market and user data streams, signed REST orders,
the feed's snapshot + diff synchronisation. Only the clock is driven.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orderflow.engine.paper import PaperEngine
    from orderflow.execution.local.server import LocalExchange

BIG = 2**62


class ManualClock:
    """A clock (ns) that moves only when told; callable like ``time.time_ns``."""

    def __init__(self, t: int = 0) -> None:
        self.t = int(t)

    def __call__(self) -> int:
        return self.t

    def set(self, t: int) -> None:
        self.t = int(t)


class LockstepError(RuntimeError):
    """The engine did not keep up (or stopped) during a lockstep replay."""


@dataclass
class LockstepRun:
    start_pos: int  # timeline position of the first event sent after the engine was ready
    events: int  # market events replayed
    user_messages: int  # user data messages delivered
    seconds: float


async def run_lockstep(
    engine: PaperEngine,  # built with clock=clock, snapshot_on_connect=True
    exchange: LocalExchange,  # with clock="lockstep"
    clock: ManualClock,
    max_events: int | None = None,
    timeout_s: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
) -> LockstepRun:
    """Run ``engine`` against ``exchange`` in lockstep over the rest of the exchange's events (or
    ``max_events`` of them), then stop the engine. Raises :class:`LockstepError` if the engine stops or
    does not consume a message within ``timeout_s``."""
    v = exchange.venue
    if not v.lockstep:
        raise LockstepError("the local exchange must run with clock='lockstep'")
    sym = engine.symbol
    clock.set(v.recv_ns(max(v.pos - 1, 0)))
    v.client_ns = clock()
    task = asyncio.create_task(engine.run(minutes=1e9))
    t0 = time.perf_counter()

    async def until(cond: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if task.done():
                exc = task.exception()
                raise LockstepError(f"the engine stopped while waiting for {what}: {exc!r}") from exc
            if time.monotonic() > deadline:
                raise LockstepError(f"timed out after {timeout_s:g} s waiting for {what}")
            await asyncio.sleep(0)

    def ready() -> bool:
        f = engine.feed
        return (
            f is not None
            and engine.user_stream is not None
            and exchange.has_subscriber(f"{sym.lower()}@depth")
            and exchange.has_user_client()
            and f.sync_state(sym) == "waiting_bridge"
        )

    released = 0
    try:
        await until(ready, "the engine to connect and load its book snapshot")
        feed, stream = engine.feed, engine.user_stream
        assert feed is not None and stream is not None  # ready() waited for both
        fm0, um0 = feed.counters["messages"], stream.stats["messages"]
        xm0, xu0 = exchange.sent["market"], exchange.sent["user"]

        def consumed() -> bool:
            return (
                feed.counters["messages"] - fm0 >= exchange.sent["market"] - xm0
                and stream.stats["messages"] - um0 >= exchange.sent["user"] - xu0
                and stream.queue.empty()
                and not engine.busy
            )

        async def release_due(upto: int) -> None:
            nonlocal released
            while (r := v.next_release_ns()) is not None and r <= upto:
                clock.set(r)
                released += v.release(r)
                await exchange.publish(market=False, user=True)
                await until(consumed, "the engine to read its order updates")

        start = v.pos
        n = 0
        total = v.remaining_events if max_events is None else min(max_events, v.remaining_events)
        while n < total:
            pos = v.pos
            kind, recv = v.event_kind(pos), v.recv_ns(pos)
            v.step()
            if kind == "book":
                await release_due(recv)
            clock.set(recv)
            v.client_ns = recv
            await exchange.publish(market=True, user=False)
            await until(consumed, f"the engine to process event {pos} ({kind})")
            n += 1
            if progress is not None and n % 10_000 == 0:
                progress(n, total)
        v.finish()  # orders still on their way meet the last book, as at the end of a backtest
        await release_due(BIG)
    finally:
        engine.request_stop("lockstep replay finished")
        try:
            await asyncio.wait_for(task, timeout=timeout_s)
        except TimeoutError:
            task.cancel()
            raise LockstepError("the engine did not stop") from None
    return LockstepRun(start, n, released, time.perf_counter() - t0)
