"""A ReplayServer on its own event loop in a thread, so that a CLI command can run its own
``asyncio.run()`` against it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from orderflow.adapters.binance.replay.server import ReplayServer


class ServerThread:
    """``with ServerThread(paths, **ReplayServer kwargs) as srv:`` serves until the block ends."""

    def __init__(self, paths: list[Path], **kwargs) -> None:
        self.paths, self.kwargs = paths, kwargs
        self.ready = threading.Event()
        self.stop = None
        self.server: ReplayServer | None = None

    def __enter__(self) -> ReplayServer:
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        assert self.ready.wait(30), "replay server did not start"
        assert self.server is not None
        return self.server

    async def _main(self) -> None:
        self.stop = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        async with ReplayServer(self.paths, **self.kwargs) as srv:
            self.server = srv
            self.ready.set()
            await self.stop.wait()

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
