"""The telemetry schema and its transports: frames round-trip, durable events are never dropped,
conflated ones keep the latest value, a failing sink costs the engine nothing, and a reader in
another process follows a run while it is written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgspec
import pytest

from orderflow.telemetry import bus as B
from orderflow.telemetry import schema as S


def _samples(run_id: int = 3) -> list[S._Event]:
    t = 1_733_140_800_000_000_000
    common = {"run_id": run_id, "ts_ns": t}
    return [
        S.Heartbeat(**common, state="running", mode="paper", symbols=("BTCUSDT",), pid=11),
        S.RunStarted(**common, mode="paper", venue="local", symbols=("BTCUSDT",), pid=11),
        S.RunStopped(**common, reason="minutes elapsed"),
        S.BookTop(**common, symbol="BTCUSDT", update_id=9, bids=((100.0, 1.5),), asks=((100.1, 2.0),)),
        S.TradeAgg(
            **common,
            symbol="BTCUSDT",
            start_ns=t - 10**9,
            count=4,
            buy_qty=1.0,
            sell_qty=0.5,
            vwap=100.05,
            last=100.1,
            high=100.1,
            low=100.0,
        ),
        S.Decision(
            **common,
            symbol="BTCUSDT",
            fused=0.4,
            ofi_score=0.5,
            ai_score=0.3,
            confidence=0.6,
            quality=0.9,
            ev=4e-4,
            cost=6e-4,
            action="refused",
            gate="ev",
        ),
        S.OrderUpdate(
            **common,
            symbol="BTCUSDT",
            client_order_id="of-1-1",
            side="BUY",
            order_type="limit",
            state="acknowledged",
            qty=0.01,
            price=100.0,
        ),
        S.FillEvent(
            **common,
            symbol="BTCUSDT",
            client_order_id="of-1-1",
            trade_id="77",
            side="BUY",
            price=100.0,
            qty=0.01,
            fee=0.0004,
            liquidity="taker",
        ),
        S.PositionEvent(
            **common, symbol="BTCUSDT", qty=0.01, avg_price=100.0, realized_pnl=0.0, unrealized_pnl=0.001
        ),
        S.EquityPoint(**common, equity=10_000.0, balance=10_000.0, unrealized_pnl=0.0, exposure=1.0),
        S.RiskState(
            **common,
            rules=(S.RuleState(rule="daily_loss", value=0.1, limit=0.3),),
            breaker="ok",
            kill_switch="off",
        ),
        S.ModelOutput(
            **common, symbol="BTCUSDT", version="v3", p_down=0.2, p_flat=0.5, p_up=0.3, horizon_ns=60 * 10**9
        ),
        S.Outcome(
            **common,
            symbol="BTCUSDT",
            pred_ts_ns=t - 60 * 10**9,
            label=1,
            ret=0.001,
            p_down=0.2,
            p_flat=0.5,
            p_up=0.3,
        ),
        S.FeedHealth(
            **common,
            symbol="BTCUSDT",
            lag_ms=3.5,
            gaps=0,
            resyncs=1,
            reconnects=0,
            watchdog_trips=0,
            synced=True,
        ),
        S.Latency(**common, what="tick_to_order", symbol="BTCUSDT", us=120.0),
        S.Resources(
            **common, pid=11, cpu_pct=12.5, rss_bytes=10**8, net_sent_bytes=1, net_recv_bytes=2, threads=4
        ),
        S.ControlAction(**common, action="kill_switch", value="reduce_only", who="operator", why="test"),
        S.ApiHealth(**common, http_429=1, http_418=0, waits=3, retry_after_s=2.0),
        S.Reconcile(**common, symbol="BTCUSDT", engine_qty=0.01, exchange_qty=0.01),
        S.FeatureDrift(**common, symbol="BTCUSDT", psi=(("ofi_1", 0.03),), samples=500, reference="training"),
    ]


def test_every_kind_has_a_sample_and_round_trips():
    samples = _samples()
    assert {S.kind_of(e) for e in samples} == set(S.KINDS)
    for e in samples:
        assert S.decode(S.encode(e)) == e
        assert S.to_builtins(e)["kind"] == S.kind_of(e)


def test_durable_and_conflated_partition_the_kinds():
    assert set(S.KINDS) == S.DURABLE | S.CONFLATED
    assert not S.DURABLE & S.CONFLATED
    assert {"decision", "order", "fill", "risk"} <= S.DURABLE


def test_a_newer_schema_version_is_refused_by_name():
    frame = msgspec.msgpack.encode({"kind": "decision", "v": 2, "run_id": 1, "ts_ns": 0, "future": 1})
    with pytest.raises(S.SchemaError, match=r"kind 'decision' has schema v2; this reader knows v1"):
        S.decode(frame)


def test_an_unknown_kind_is_refused_by_name():
    frame = msgspec.msgpack.encode({"kind": "gossip", "v": 1, "run_id": 1, "ts_ns": 0})
    with pytest.raises(S.SchemaError, match="unknown telemetry kind 'gossip'"):
        S.decode(frame)


def _book(i: int, run_id: int = 1) -> S.BookTop:
    return S.BookTop(
        run_id=run_id, ts_ns=i, symbol="BTCUSDT", update_id=i, bids=((100.0, i),), asks=((101.0, 1.0),)
    )


def _decision(i: int, run_id: int = 1) -> S.Decision:
    return S.Decision(
        run_id=run_id,
        ts_ns=i,
        symbol="BTCUSDT",
        fused=0.0,
        ofi_score=0.0,
        ai_score=0.0,
        confidence=0.0,
        quality=0.0,
        ev=0.0,
        cost=0.0,
        action="refused",
        gate=f"g{i}",
    )


def test_durable_events_all_arrive_in_order_and_the_book_is_conflated(tmp_path: Path):
    pub = B.Publisher(B.FileSink(tmp_path, 1), 1, interval_s=0.01, heartbeat_s=0.05)
    for i in range(5000):
        pub.publish(_decision(i))
        pub.publish(_book(i))
    assert pub.flush()
    pub.close()
    events = B.FileReader(tmp_path).read(1, max_events=100_000)
    decisions = [e for e in events if isinstance(e, S.Decision)]
    books = [e for e in events if isinstance(e, S.BookTop)]
    assert [d.ts_ns for d in decisions] == list(range(5000))
    assert 1 <= len(books) < 5000  # conflated: far fewer frames than updates
    assert books[-1].update_id == 4999  # and the last one is the latest book
    assert any(isinstance(e, S.Heartbeat) for e in events)


class _FlakySink:
    """Fails its first ``n`` writes (a Redis restart, a full disk), then keeps what it is given."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.frames: list[bytes] = []

    def write(self, frames: list[bytes]) -> None:
        if self.n > 0:
            self.n -= 1
            raise OSError("sink down")
        self.frames.extend(frames)

    def close(self) -> None:
        pass


def test_a_failing_sink_loses_nothing_and_never_reaches_the_publisher():
    sink = _FlakySink(5)
    pub = B.Publisher(sink, 1, interval_s=0.005, heartbeat_s=60.0)
    for i in range(300):
        pub.publish(_decision(i))  # never raises, whatever the sink does
        if i % 50 == 0:
            time.sleep(0.01)
    assert pub.flush()
    pub.close()
    got = [S.decode(f) for f in sink.frames]
    assert [e.ts_ns for e in got if isinstance(e, S.Decision)] == list(range(300))
    assert pub.sink_errors == 5


def test_a_reader_waits_for_a_frame_still_being_written(tmp_path: Path):
    frame = S.encode(_decision(1))
    path = B.run_file(tmp_path, 4)
    with open(path, "wb") as f:
        f.write(B._LEN.pack(len(frame)) + frame[:5])
    reader = B.FileReader(tmp_path)
    assert reader.read(4) == []
    with open(path, "ab") as f:
        f.write(frame[5:])
    assert reader.read(4) == [_decision(1)]
    assert reader.read(4) == []
    assert reader.runs() == [4]


@pytest.mark.slow
def test_a_reader_in_another_process_follows_a_live_run(tmp_path: Path):
    """The engine side publishes from a child process; this process reads while it is still writing."""
    code = textwrap.dedent(
        f"""
        import time
        from orderflow.telemetry import bus as B, schema as S
        pub = B.Publisher(B.FileSink(__import__("pathlib").Path({str(tmp_path)!r}), 9), 9,
                          interval_s=0.01, heartbeat_s=0.1)
        for i in range(200):
            pub.publish(S.Decision(run_id=9, ts_ns=i, symbol="X", fused=0, ofi_score=0, ai_score=0,
                                   confidence=0, quality=0, ev=0, cost=0, action="a", gate="g"))
            time.sleep(0.005)
        pub.close()
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", code], env=env)
    reader = B.FileReader(tmp_path)
    seen: list[int] = []
    seen_while_running = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = child.poll() is None
        new = [e.ts_ns for e in reader.read(9) if isinstance(e, S.Decision)]
        seen += new
        if running:
            seen_while_running += len(new)
        if not running and not new:
            break
        time.sleep(0.02)
    assert child.wait() == 0
    assert seen == list(range(200))
    assert seen_while_running > 0


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.skipif(
    not _redis_up(), reason="no Redis on 127.0.0.1:6379 (the embedded file transport is the default)"
)
def test_redis_streams_carry_the_same_events():
    pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/15"
    run_id = int(time.time() * 1000) % 10**9
    pub = B.Publisher(B.open_sink(url, run_id), run_id, interval_s=0.01, heartbeat_s=60.0)
    samples = _samples(run_id)
    for e in samples:
        pub.publish(e)
    assert pub.flush()
    pub.close()
    reader = B.open_reader(url)
    try:
        assert run_id in reader.runs()
        got = reader.read(run_id)
        durable = [e for e in samples if S.kind_of(e) in S.DURABLE]
        assert [e for e in got if S.kind_of(e) in S.DURABLE and not isinstance(e, S.Heartbeat)] == [
            e for e in durable if not isinstance(e, S.Heartbeat)
        ]
        assert reader.read(run_id) == []  # the reader keeps its place
    finally:
        import redis

        r = redis.Redis.from_url(url)
        r.delete(f"{B.STREAM_PREFIX}{run_id}")
        r.srem(B.RUNS_KEY, run_id)
        r.close()
        reader.close()


def test_a_bad_telemetry_url_is_refused_by_name(tmp_path: Path):
    with pytest.raises(ValueError, match="scheme 'kafka' is not file:// or redis://"):
        B.open_sink("kafka://x", 1)
    assert isinstance(B.open_sink(f"file://{tmp_path}", 1), B.FileSink)


def test_the_publisher_samples_its_process_resources(tmp_path: Path):
    pub = B.Publisher(B.FileSink(tmp_path, 2), 2, interval_s=0.01, heartbeat_s=60.0, resources_s=0.05)
    time.sleep(0.3)
    pub.close()
    got = [e for e in B.FileReader(tmp_path).read(2) if isinstance(e, S.Resources)]
    assert len(got) >= 2
    assert got[-1].pid == os.getpid() and got[-1].rss_bytes > 10 * 2**20 and got[-1].threads >= 2
