"""A loopback alternative.me fear & greed endpoint (aiohttp), for tests and offline runs.

``GET /fng/?limit=N&format=json`` answers the API's shape, newest day first, only days published by the
server's clock (a day's value once that day has begun, as alternative.me updates it daily)::

    {"name": "Fear and Greed Index", "data": [{"value": "18", "value_classification": "Extreme Fear",
     "timestamp": "1773273600", "time_until_update": "43200"}, ...], "metadata": {"error": null}}

``limit`` defaults to 1; 0 means the whole history. ``time_until_update`` (seconds to the next day)
is on the newest row only. A ``limit`` that is not an integer answers ``data: []`` and the error in
``metadata.error``. Rows come from a ``fear_greed`` frame (:mod:`orderflow.data.context_schema`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from aiohttp import web

NS = 1_000_000_000
DAY_S = 86_400
CLASSES = ("Extreme Fear", "Fear", "Neutral", "Greed", "Extreme Greed")


class FearGreedServer:
    """Serve ``frame`` (kind ``fear_greed``) on ``host:port`` (0 = ephemeral); ``clock`` in seconds."""

    def __init__(
        self,
        frame: pd.DataFrame,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        df = frame.sort_values("ts_event", ascending=False, kind="stable")
        self.day_s = df["ts_event"].to_numpy(np.int64) // NS // DAY_S * DAY_S
        self.value = df["value"].to_numpy(np.float64)
        self.cls = df["classification"].to_numpy(np.int64)
        self.host, self.port, self.clock = host, port, clock
        self.requests: list[str] = []  # the query strings received
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FearGreedServer:
        app = web.Application()
        app.router.add_get("/fng/", self._fng)
        app.router.add_get("/fng", self._fng)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FearGreedServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _fng(self, request: web.Request) -> web.Response:
        self.requests.append(request.query_string)
        body: dict = {"name": "Fear and Greed Index", "data": [], "metadata": {"error": None}}
        try:
            limit = int(request.query.get("limit", "1"))
            if limit < 0:
                raise ValueError
        except ValueError:
            body["metadata"]["error"] = "Limit must be a positive integer."
            return web.Response(text=json.dumps(body), content_type="application/json")
        now = self.clock()
        live = self.day_s <= now
        idx = np.flatnonzero(live)
        if limit:
            idx = idx[:limit]
        rows = []
        for k, i in enumerate(idx):
            c = int(self.cls[i])
            row = {
                "value": str(round(float(self.value[i]))),
                "value_classification": CLASSES[c] if 0 <= c < len(CLASSES) else "",
                "timestamp": str(int(self.day_s[i])),
            }
            if k == 0:
                row["time_until_update"] = str(int(self.day_s[i] + DAY_S - now))
            rows.append(row)
        body["data"] = rows
        return web.Response(text=json.dumps(body), content_type="application/json")
