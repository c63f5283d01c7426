"""Prometheus metrics derived from telemetry events, scraped over HTTP from a real server."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orderflow import __version__ as VERSION
from orderflow.telemetry import bus as B
from orderflow.telemetry import metrics as M
from orderflow.telemetry import schema as S

T = 1_733_140_800_000_000_000
C = {"run_id": 5, "ts_ns": T}


def _feed(book_updates: int, resyncs: int) -> S.FeedHealth:
    return S.FeedHealth(
        **C,
        symbol="BTCUSDT",
        lag_ms=12.0,
        gaps=0,
        resyncs=resyncs,
        reconnects=0,
        watchdog_trips=0,
        synced=True,
        book_updates=book_updates,
        trades=3,
    )


def _events() -> list[S._Event]:
    return [
        S.RunStarted(**C, mode="paper", venue="local", symbols=("BTCUSDT",), pid=1),
        S.Heartbeat(**C, state="running"),
        _feed(100, 0),
        _feed(250, 1),  # running totals: the counters advance by the increase
        S.Decision(
            **C,
            symbol="BTCUSDT",
            fused=0.1,
            ofi_score=0.1,
            ai_score=0.1,
            confidence=0.4,
            quality=1,
            ev=0,
            cost=1e-3,
            action="refused",
            gate="confidence",
        ),
        S.Decision(
            **C,
            symbol="BTCUSDT",
            fused=0.9,
            ofi_score=0.9,
            ai_score=0.9,
            confidence=0.9,
            quality=1,
            ev=2e-3,
            cost=1e-3,
            action="enter_long",
            gate="pass",
        ),
        S.OrderUpdate(
            **C,
            symbol="BTCUSDT",
            client_order_id="a",
            side="BUY",
            order_type="limit",
            state="pending_new",
            qty=0.01,
        ),
        S.OrderUpdate(
            **C, symbol="BTCUSDT", client_order_id="a", side="BUY", order_type="limit", state="new", qty=0.01
        ),
        S.OrderUpdate(
            **C,
            symbol="BTCUSDT",
            client_order_id="b",
            side="SELL",
            order_type="market",
            state="rejected",
            qty=0.01,
            reason="-2019 Margin is insufficient.",
        ),
        S.FillEvent(
            **C,
            symbol="BTCUSDT",
            client_order_id="a",
            trade_id="1",
            side="BUY",
            price=100.0,
            qty=0.01,
            fee=0.0004,
            liquidity="taker",
            slippage=1.5e-4,
        ),
        S.Latency(**C, what="tick_to_order", symbol="BTCUSDT", us=130.0),
        S.Latency(**C, what="ack", symbol="BTCUSDT", us=4_000.0),
        S.PositionEvent(
            **C, symbol="BTCUSDT", qty=0.01, avg_price=100.0, realized_pnl=0, unrealized_pnl=0.002
        ),
        S.EquityPoint(
            **C, equity=10_000.5, balance=10_000.0, unrealized_pnl=0.5, exposure=1.0, drawdown=0.01
        ),
        S.RiskState(
            **C,
            rules=(S.RuleState(rule="daily_drawdown", value=0.01, limit=0.04, refusals=2),),
            breaker="ok",
            kill_switch="reduce_only",
        ),
        S.ModelOutput(
            **C,
            symbol="BTCUSDT",
            version="v1",
            p_down=0.2,
            p_flat=0.5,
            p_up=0.3,
            horizon_ns=10**9,
            latency_us=80.0,
        ),
        # realised up: (0.2)^2 + (0.5)^2 + (0.3 - 1)^2 = 0.04 + 0.25 + 0.49 = 0.78
        S.Outcome(**C, symbol="BTCUSDT", pred_ts_ns=T, label=1, ret=1e-3, p_down=0.2, p_flat=0.5, p_up=0.3),
    ]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def served():
    m = M.EngineMetrics()
    server, port = M.serve(m)
    yield m, port
    server.shutdown()


def test_events_become_metrics_on_a_live_endpoint(served):
    m, port = served
    m.observe_all(_events())
    v = _samples(_scrape(port))
    sym = (("symbol", "BTCUSDT"),)
    assert v[("orderflow_book_updates_total", sym)] == 250
    assert v[("orderflow_feed_resyncs_total", sym)] == 1
    assert v[("orderflow_feed_lag_seconds", sym)] == pytest.approx(0.012)
    gate = (("action", "refused"), ("gate", "confidence"), ("symbol", "BTCUSDT"))
    assert v[("orderflow_decisions_total", gate)] == 1
    assert v[("orderflow_orders_total", (("side", "buy"), ("symbol", "BTCUSDT"), ("type", "limit")))] == 1
    assert v[("orderflow_order_rejects_total", (("reason", "-2019"), ("symbol", "BTCUSDT")))] == 1
    assert v[("orderflow_tick_to_order_seconds_count", sym)] == 1
    assert v[("orderflow_tick_to_order_seconds_sum", sym)] == pytest.approx(130e-6)
    assert v[("orderflow_order_ack_seconds_sum", sym)] == pytest.approx(4e-3)
    assert v[("orderflow_equity", ())] == pytest.approx(10_000.5)
    assert v[("orderflow_risk_refusals_total", (("rule", "daily_drawdown"),))] == 2
    assert v[("orderflow_risk_usage_ratio", (("rule", "daily_drawdown"),))] == pytest.approx(0.25)
    assert v[("orderflow_kill_switch", (("orderflow_kill_switch", "reduce_only"),))] == 1
    assert v[("orderflow_model_brier_score", sym)] == pytest.approx(0.78)
    assert v[
        (
            "orderflow_run_info",
            (
                ("mode", "paper"),
                ("run_id", "5"),
                ("symbols", "BTCUSDT"),
                ("venue", "local"),
                ("version", VERSION),
            ),
        )
    ]
    assert ("process_resident_memory_bytes", ()) in v


def test_no_label_carries_an_order_id(served):
    m, port = served
    m.observe_all(_events())
    for fam in text_string_to_metric_families(_scrape(port)):
        for s in fam.samples:
            assert "a" not in s.labels.values() and "b" not in s.labels.values(), s
            assert "client_order_id" not in s.labels


def test_a_running_total_that_goes_back_does_not_move_a_counter_backwards():
    m = M.EngineMetrics(process=False)
    m.observe_all([_feed(100, 0), _feed(40, 0), _feed(120, 0)])
    v = _samples(_text(m))
    assert v[("orderflow_book_updates_total", (("symbol", "BTCUSDT"),))] == 120


def _text(m: M.EngineMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(m.registry).decode()


def test_the_publisher_feeds_its_observers(tmp_path):
    m = M.EngineMetrics(process=False)
    pub = B.Publisher(B.FileSink(tmp_path, 5), 5, interval_s=0.01, observers=[m.observe_all])
    for e in _events():
        pub.publish(e)
    assert pub.flush()
    pub.close()
    v = _samples(_text(m))
    assert v[("orderflow_fills_total", (("liquidity", "taker"), ("side", "buy"), ("symbol", "BTCUSDT")))] == 1
    assert v[("orderflow_heartbeat_timestamp_seconds", ())] > 0


def test_reject_reasons_are_bounded_codes():
    assert M.reason_label("-2019 Margin is insufficient.") == "-2019"
    assert M.reason_label("") == "none"
    assert len(M.reason_label("x" * 500)) == 32


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)"
)
def test_promtool_accepts_the_live_metrics(served):
    m, port = served
    m.observe_all(_events())
    out = subprocess.run(
        ["promtool", "check", "metrics"], input=_scrape(port), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
