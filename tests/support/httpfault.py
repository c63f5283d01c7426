"""An HTTP fault proxy in front of the local exchange's REST API: it forwards every request and can lose
the next new-order request before it reaches the exchange (``drop_request``), lose the answer of the
next new order after the exchange placed it (``drop_answer``), or answer the next new orders with 429
and ``Retry-After: 1`` (``inject_429 = n``), or hold the next new-order request for ``hold_order_s``
seconds before forwarding it (``holding`` is set while it is held). It counts order posts and records
every request line."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web


class RestFaultProxy:
    """``async with RestFaultProxy(upstream_url) as proxy:`` then point a client at ``proxy.url``."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.url = upstream, ""
        self.drop_answer = self.drop_request = False
        self.inject_429 = 0
        self.hold_order_s = 0.0
        self.holding = asyncio.Event()
        self.order_posts = 0
        self.requests: list[str] = []
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        new_order = request.method == "POST" and request.path.endswith("/order")
        if new_order and self.inject_429:
            self.inject_429 -= 1
            return web.json_response(
                {"code": -1003, "msg": "Too many requests."}, status=429, headers={"Retry-After": "1"}
            )
        if new_order and self.drop_request:
            self.drop_request = False
            return self._cut(request)
        if new_order and self.hold_order_s > 0:
            hold, self.hold_order_s = self.hold_order_s, 0.0
            self.holding.set()
            await asyncio.sleep(hold)
            self.holding.clear()
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                request.method, self.upstream + request.path_qs, data=body or None, headers=headers
            ) as r,
        ):
            data, status = await r.read(), r.status
            out = {k: v for k, v in r.headers.items() if k.lower().startswith("x-mbx") or k == "Retry-After"}
        if new_order:
            self.order_posts += 1
            if self.drop_answer:  # the order is placed; its answer is lost
                self.drop_answer = False
                return self._cut(request)
        return web.Response(body=data, status=status, headers=out, content_type="application/json")

    @staticmethod
    def _cut(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)

    async def __aenter__(self) -> RestFaultProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
