"""``running_local_exchange``: a local exchange in a background thread, for tests of clients.

    with running_local_exchange(source="sim", seed=0, clock="manual", market="usdm") as ex:
        ex.rest_url, ex.ws_url, ex.api_key, ex.api_secret
        ex.advance(events=100)          # or ex.advance(until_ns=...)

The server runs on its own asyncio loop in a daemon thread; ``advance`` blocks until the events are
applied and their stream messages sent. Keyword arguments are :class:`LocalExchangeConfig` fields
(``market``, ``symbol``, ``api_key``, ``api_secret``, ``weight_limit``, ``start_ms``...).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from orderflow.execution.local.config import LocalExchangeConfig
from orderflow.execution.local.server import LocalExchange


@dataclass
class RunningExchange:
    """Handle on a running local exchange (see the module docstring)."""

    rest_url: str
    ws_url: str
    api_key: str
    api_secret: str | None
    market: str
    symbols: list[str]
    exchange: LocalExchange
    loop: asyncio.AbstractEventLoop

    def __repr__(self) -> str:
        return f"RunningExchange(rest_url={self.rest_url!r}, market={self.market!r}, api_secret=***)"

    def advance(self, events: int | None = None, until_ns: int | None = None, timeout: float = 60.0) -> dict:
        """Apply ``events`` market events or all up to ``until_ns`` (manual clock); returns
        ``{"applied", "now_ns", "remaining"}`` once their messages are sent."""
        fut = asyncio.run_coroutine_threadsafe(
            self.exchange.advance(events=events, until_ns=until_ns), self.loop
        )
        return fut.result(timeout)

    def call(self, fn: Any, *args: Any, timeout: float = 30.0) -> Any:
        """Run ``fn(*args)`` on the server's loop (inspect state without races)."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    @property
    def now_ns(self) -> int:
        """Exchange time of the last applied event, ns."""
        return self.call(lambda: self.exchange.venue.now_ns)


@contextmanager
def running_local_exchange(
    source: str = "sim", seed: int = 0, clock: str = "manual", **kw: Any
) -> Iterator[RunningExchange]:
    """Start a :class:`LocalExchange` on 127.0.0.1 (ephemeral port) in a background thread; stop it
    on exit. Defaults: ``market="usdm"``, ``api_key="localkey"``, ``api_secret="localsecret"``."""
    cfg = LocalExchangeConfig(source=source, seed=seed, clock=clock, **kw)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            ex = LocalExchange(cfg)
            loop.run_until_complete(ex.start())
            box["ex"] = ex
        except BaseException as e:
            box["error"] = e
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(ex.stop())
        loop.close()

    thread = threading.Thread(target=run, name="local-exchange", daemon=True)
    thread.start()
    ready.wait(300)
    if "error" in box:
        thread.join(5)
        raise box["error"]
    if "ex" not in box:
        raise TimeoutError("local exchange did not start within 300 s")
    ex: LocalExchange = box["ex"]
    try:
        yield RunningExchange(
            rest_url=ex.rest_url,
            ws_url=ex.ws_url,
            api_key=cfg.api_key,
            api_secret=cfg.secret,
            market=cfg.market,
            symbols=list(ex.venue.markets),
            exchange=ex,
            loop=loop,
        )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
