"""Carry telemetry from an engine to readers in other processes, without slowing the engine.

The engine calls :meth:`Publisher.publish`, which costs a deque append (durable events) or a dict
store (conflated ones) and never blocks or does I/O. A daemon thread drains both every
``interval_s``, encodes the frames and hands them to a sink, and publishes a heartbeat every
``heartbeat_s``. If the sink fails, the frames stay queued and the thread retries; the engine never
sees the error.

Two transports, chosen by a URL (``open_sink`` / ``open_reader``):

- **embedded (default)**: ``file:///dir`` or a plain directory. One append-only file per run,
  ``run-<id>.tlog``, of length-prefixed msgpack frames. Readers on the same machine follow it from
  any offset, so a dashboard started late replays the run from its first event, a dashboard crash
  cannot touch the engine (nothing connects to it), and what the engine wrote survives the engine.
- **Redis**: ``redis://host:port/db``. One stream per run, ``orderflow:telemetry:<id>`` (XADD, one
  field ``f`` holding the frame), and the set ``orderflow:runs``; readers on other machines follow a
  stream with XREAD. The stream is capped at ``maxlen`` entries (approximate trimming).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from orderflow.telemetry.schema import (
    CONFLATED,
    Event,
    Heartbeat,
    Resources,
    _Event,
    conflation_key,
    decode,
    encode,
    kind_of,
)

log = logging.getLogger(__name__)

_LEN = struct.Struct("<I")
STREAM_PREFIX = "orderflow:telemetry:"
RUNS_KEY = "orderflow:runs"


class Sink(Protocol):
    def write(self, frames: list[bytes]) -> None: ...

    def close(self) -> None: ...


class Reader(Protocol):
    def runs(self) -> list[int]: ...

    def read(self, run_id: int, max_events: int = 10_000) -> list[Event]: ...

    def close(self) -> None: ...


def run_file(directory: Path, run_id: int) -> Path:
    return directory / f"run-{run_id}.tlog"


class FileSink:
    """Append frames to ``run-<id>.tlog`` in ``directory``; each batch is flushed to the OS."""

    def __init__(self, directory: Path, run_id: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = run_file(directory, run_id)
        self._f = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for the run

    def write(self, frames: list[bytes]) -> None:
        buf = bytearray()
        for frame in frames:
            buf += _LEN.pack(len(frame))
            buf += frame
        self._f.write(bytes(buf))

    def close(self) -> None:
        self._f.close()


class FileReader:
    """Follow the run files of a directory; :meth:`read` returns the events written since the last call."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._offsets: dict[int, int] = {}

    def runs(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        ids = []
        for p in self.directory.glob("run-*.tlog"):
            try:
                ids.append(int(p.stem.removeprefix("run-")))
            except ValueError:
                continue
        return sorted(ids)

    def read(self, run_id: int, max_events: int = 10_000) -> list[Event]:
        path = run_file(self.directory, run_id)
        pos = self._offsets.get(run_id, 0)
        out: list[Event] = []
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                data = f.read()
        except FileNotFoundError:
            return out
        i = 0
        while len(out) < max_events and i + _LEN.size <= len(data):
            (n,) = _LEN.unpack_from(data, i)
            if i + _LEN.size + n > len(data):
                break  # a frame still being written: the next read picks it up whole
            out.append(decode(data[i + _LEN.size : i + _LEN.size + n]))
            i += _LEN.size + n
        self._offsets[run_id] = pos + i
        return out

    def close(self) -> None:
        pass


class RedisSink:
    """XADD each frame to the run's stream; the run id joins ``orderflow:runs``."""

    def __init__(self, url: str, run_id: int, maxlen: int = 1_000_000) -> None:
        import redis

        self._r = redis.Redis.from_url(url, socket_timeout=2.0)
        self._stream = f"{STREAM_PREFIX}{run_id}"
        self._maxlen = maxlen
        self._r.sadd(RUNS_KEY, run_id)

    def write(self, frames: list[bytes]) -> None:
        pipe = self._r.pipeline(transaction=False)
        for frame in frames:
            pipe.xadd(self._stream, {"f": frame}, maxlen=self._maxlen, approximate=True)
        pipe.execute()

    def close(self) -> None:
        self._r.close()


class RedisReader:
    def __init__(self, url: str) -> None:
        import redis

        self._r = redis.Redis.from_url(url, socket_timeout=5.0)
        self._last: dict[int, bytes] = {}

    def runs(self) -> list[int]:
        members: Any = self._r.smembers(RUNS_KEY)
        return sorted(int(x) for x in members)

    def read(self, run_id: int, max_events: int = 10_000) -> list[Event]:
        last = self._last.get(run_id, b"0-0")
        got: Any = self._r.xread({f"{STREAM_PREFIX}{run_id}": last}, count=max_events)
        out: list[Event] = []
        for _stream, entries in got:
            for entry_id, fields in entries:
                out.append(decode(fields[b"f"]))
                last = entry_id
        self._last[run_id] = last
        return out

    def close(self) -> None:
        self._r.close()


def _is_redis(url: str) -> bool:
    return urlparse(url).scheme in ("redis", "rediss", "unix")


def _directory(url: str) -> Path:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme:
        raise ValueError(f"telemetry URL {url!r}: scheme {parsed.scheme!r} is not file:// or redis://")
    return Path(url)


def default_url() -> str:
    """``$ORDERFLOW_TELEMETRY``, else the ``telemetry`` folder of the user data directory."""
    env = os.environ.get("ORDERFLOW_TELEMETRY")
    if env:
        return env
    import platformdirs

    return str(Path(platformdirs.user_data_dir("orderflow")) / "telemetry")


def open_sink(url: str, run_id: int) -> Sink:
    return RedisSink(url, run_id) if _is_redis(url) else FileSink(_directory(url), run_id)


def open_reader(url: str) -> Reader:
    return RedisReader(url) if _is_redis(url) else FileReader(_directory(url))


class Publisher:
    """Non-blocking publishing from the trading thread; a daemon thread does the encoding and I/O.

    ``state`` is called on the publisher's thread for each heartbeat and returns the engine's
    component state (``running``, ``halted``...). Each of ``observers`` (e.g.
    :meth:`EngineMetrics.observe_all <orderflow.telemetry.metrics.EngineMetrics.observe_all>`) is
    called on that thread with every drained batch, before it is written. With ``resources_s > 0`` the
    thread also samples the process's CPU, memory and network (psutil) that often.
    """

    def __init__(
        self,
        sink: Sink,
        run_id: int,
        *,
        interval_s: float = 0.05,
        heartbeat_s: float = 1.0,
        state: Callable[[], str] = lambda: "running",
        mode: str = "",
        symbols: tuple[str, ...] = (),
        observers: Sequence[Callable[[list[_Event]], None]] = (),
        resources_s: float = 0.0,
    ) -> None:
        self.sink = sink
        self._observers = tuple(observers)
        self.resources_s = resources_s
        self._last_resources = 0.0
        self._proc: Any = None
        self.run_id = run_id
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self._state = state
        self._mode = mode
        self._symbols = symbols
        self._queue: deque[_Event] = deque()
        self._latest: dict[tuple[str, str], _Event] = {}
        self._pending: list[bytes] = []  # encoded, not yet accepted by the sink
        self._lock = threading.Lock()  # guards the swap of the conflation dict
        self._drains = 0
        self._stop = threading.Event()
        self._last_beat = 0.0
        self.frames_written = 0
        self.sink_errors = 0
        self._thread = threading.Thread(target=self._run, name=f"telemetry-{run_id}", daemon=True)
        self._thread.start()

    def publish(self, event: _Event) -> None:
        """Queue one event; never blocks and never raises for a sink failure."""
        if kind_of(event) in CONFLATED:
            with self._lock:
                self._latest[conflation_key(event)] = event
        else:
            self._queue.append(event)

    def _heartbeat(self, now: float) -> Heartbeat:
        try:
            state = self._state()
        except Exception:  # the state probe must not kill the heartbeat
            state = "unknown"
        return Heartbeat(
            run_id=self.run_id,
            ts_ns=time.time_ns(),
            state=state,
            mode=self._mode,
            symbols=self._symbols,
            pid=os.getpid(),
            interval_s=self.heartbeat_s,
        )

    def _resources(self) -> Resources | None:
        """CPU, memory, threads and the machine's network counters of this process (psutil)."""
        try:
            import psutil

            if self._proc is None:
                self._proc = psutil.Process()
                self._proc.cpu_percent(None)  # the first call only starts the interval
            net = psutil.net_io_counters()
            with self._proc.oneshot():
                return Resources(
                    run_id=self.run_id,
                    ts_ns=time.time_ns(),
                    pid=self._proc.pid,
                    cpu_pct=self._proc.cpu_percent(None),
                    rss_bytes=self._proc.memory_info().rss,
                    net_sent_bytes=net.bytes_sent if net else 0,
                    net_recv_bytes=net.bytes_recv if net else 0,
                    threads=self._proc.num_threads(),
                )
        except Exception as exc:  # resources are best effort; never stop the telemetry for them
            log.debug("resource sample failed: %s", exc)
            return None

    def _drain(self) -> None:
        events: list[_Event] = []
        q = self._queue
        while q:
            events.append(q.popleft())
        if self._latest:
            with self._lock:
                latest, self._latest = self._latest, {}
            events.extend(latest.values())
        now = time.monotonic()
        if now - self._last_beat >= self.heartbeat_s:
            self._last_beat = now
            events.append(self._heartbeat(now))
        if self.resources_s > 0 and now - self._last_resources >= self.resources_s:
            self._last_resources = now
            sample = self._resources()
            if sample is not None:
                events.append(sample)
        if events:
            for observer in self._observers:
                try:
                    observer(events)
                except Exception as exc:  # an observer (metrics) must not stop the telemetry
                    log.warning("telemetry observer %r failed: %s", observer, exc)
            self._pending.extend(encode(e) for e in events)
        if not self._pending:
            return
        try:
            self.sink.write(self._pending)
        except Exception as exc:  # keep the frames; retry on the next drain
            self.sink_errors += 1
            if self.sink_errors == 1 or self.sink_errors % 100 == 0:
                log.warning("telemetry sink failed (%d times): %s", self.sink_errors, exc)
            return
        self.frames_written += len(self._pending)
        self._pending = []

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._drain()
            self._drains += 1

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued event has reached the sink (tests and shutdown)."""
        end = time.monotonic() + timeout_s
        first = self._drains + 2  # a whole drain begun after this call has finished
        while (
            self._queue or self._latest or self._pending or self._drains < first
        ) and time.monotonic() < end:
            if not self._thread.is_alive():
                break
            time.sleep(self.interval_s / 2)
        return not (self._queue or self._latest or self._pending)

    def close(self) -> None:
        """Stop the thread after a last drain, then close the sink."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._drain()
        self.sink.close()


def follow(
    reader: Reader, run_id: int, poll_s: float = 0.025, stop: threading.Event | None = None
) -> Iterator[Event]:
    """Yield a run's events as they arrive until ``stop`` is set (a blocking helper for scripts)."""
    stop = stop or threading.Event()
    while not stop.is_set():
        batch = reader.read(run_id)
        yield from batch
        if not batch:
            stop.wait(poll_s)
