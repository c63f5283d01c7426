"""A TCP fault proxy for network tests: it sits in front of one HTTP/WebSocket server, sorts every
connection by its first request line and can cut the connections of one kind abruptly or refuse new
ones for a while.

    async with FaultProxy("127.0.0.1", port) as proxy:
        client(proxy.http_url, proxy.ws_url)   # everything goes through the proxy
        proxy.block("user")                    # new user-stream connections are refused...
        proxy.drop("user")                     # ...and the live ones are cut (both sides, no close frame)
        proxy.unblock("user")                  # or block("user", seconds=3.0)

Kinds (Binance's URL layout): ``market`` for ``/stream?streams=...``, ``/ws`` and ``/ws/<sym>@<stream>``;
``user`` for ``/ws/<listenKey>`` (a key has no ``@``) and the spot WebSocket API ``/ws-api/v3`` (where
the spot user data stream is subscribed); ``rest`` for everything else. A REST request is
forwarded with ``Connection: close``, so a connection carries one request and never changes kind (a
client would otherwise reuse a kept-alive REST connection for its next WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from dataclasses import dataclass

KINDS = ("market", "user", "rest")


def classify(request_line: bytes) -> str:
    """The kind of a connection from its first request line, e.g. ``GET /ws/abc123 HTTP/1.1``."""
    parts = request_line.split()
    path = parts[1].decode("latin-1") if len(parts) >= 2 else ""
    if path.startswith("/stream"):
        return "market"
    if path.startswith(("/ws-api/", "/private/")):
        return "user"
    if path.startswith(("/public/", "/market/")):
        return "market"
    if path == "/ws" or path.startswith(("/ws?", "/ws/")):
        name = path[4:].split("?", 1)[0]
        return "market" if not name or "@" in name else "user"
    return "rest"


@dataclass(eq=False)
class _Link:
    kind: str
    request: str
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter

    def abort(self) -> None:
        for w in (self.client, self.upstream):
            w.transport.abort()


class FaultProxy:
    """Forward bytes between clients and ``host:port`` both ways; fault injection per connection kind."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.accepted: Counter[str] = Counter()  # connections forwarded, by kind
        self.refused: Counter[str] = Counter()  # connections refused while their kind was blocked
        self.dropped: Counter[str] = Counter()  # live connections cut by drop()
        self.requests: list[str] = []  # first request line of every connection, in order
        self._links: set[_Link] = set()
        self._blocked: dict[str, float] = {}  # kind -> loop time the block ends
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        self.listen_port = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.listen_port}"

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._clients):
            w.transport.abort()
        for link in list(self._links):
            link.abort()
        if self._tasks:  # every connection ends at its reset; cancel only a straggler
            _, late = await asyncio.wait(self._tasks, timeout=5)
            for t in late:
                t.cancel()
        await self._server.wait_closed()

    # -- faults ------------------------------------------------------------------------------------
    def live(self, kind: str) -> int:
        """Open connections of ``kind``."""
        return sum(1 for link in self._links if link.kind == kind)

    def drop(self, kind: str) -> int:
        """Cut every open connection of ``kind`` on both sides at once (TCP reset, no close handshake);
        returns how many."""
        links = [link for link in self._links if link.kind == _check(kind)]
        for link in links:
            link.abort()
            self._links.discard(link)
        self.dropped[kind] += len(links)
        return len(links)

    def block(self, kind: str, seconds: float | None = None) -> None:
        """Refuse new connections of ``kind`` (reset after the request line) for ``seconds``, or until
        :meth:`unblock`."""
        end = math.inf if seconds is None else asyncio.get_running_loop().time() + seconds
        self._blocked[_check(kind)] = end

    def unblock(self, kind: str) -> None:
        self._blocked.pop(_check(kind), None)

    def blocked(self, kind: str) -> bool:
        return self._blocked.get(kind, -math.inf) > asyncio.get_running_loop().time()

    # -- forwarding ----------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._clients.add(writer)
        try:
            await self._forward(reader, writer)
        finally:
            self._tasks.discard(task)
            self._clients.discard(writer)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.transport.abort()
            return
        first = head.split(b"\r\n", 1)[0]
        kind, line = classify(first), first.decode("latin-1")
        self.requests.append(line)
        if self.blocked(kind):
            self.refused[kind] += 1
            writer.transport.abort()
            return
        if kind == "rest":  # one request per connection: a kept-alive one could carry a WebSocket next
            head = _connection_close(head)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self.accepted[kind] += 1
        link = _Link(kind, line, writer, up_writer)
        self._links.add(link)
        up_writer.write(head)
        pipes = [asyncio.create_task(_pipe(reader, up_writer)), asyncio.create_task(_pipe(up_reader, writer))]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for p in pipes:
                p.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._links.discard(link)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()


def _connection_close(head: bytes) -> bytes:
    """A request head with ``Connection: close`` instead of any Connection header."""
    lines = [x for x in head[:-4].split(b"\r\n") if not x.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy ``src`` to ``dst`` until EOF or an error on either side."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()


def _check(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown connection kind {kind!r}; use one of {KINDS}")
    return kind
