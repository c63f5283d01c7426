"""Each alert rule over real telemetry structs: what opens an incident, with which numbers, and what
resolves it."""

from __future__ import annotations

import pytest

from orderflow.alerts.config import AlertsConfig, AnomalyConfig, ChannelConfig, RoutingConfig
from orderflow.alerts.incidents import NS, Incidents
from orderflow.alerts.rules import Rules, brier, ece
from orderflow.alerts.store import AlertStore
from orderflow.telemetry import schema as S

T0 = 1_764_633_600 * NS
SYM = "BTCUSDT"


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def env(tmp_path):
    store = AlertStore.open(str(tmp_path / "j.sqlite"))
    cfg = AlertsConfig(
        channels={"tg": ChannelConfig(url="json://127.0.0.1:1/x")},
        routing=RoutingConfig(critical=("tg",), warning=("tg",), info=("tg",)),
        anomaly=AnomalyConfig(enabled=False),
    )
    clock = Clock()
    kill = {"mode": ("off", "", "")}
    inc = Incidents(cfg, store, clock=clock)
    rules = Rules(
        cfg, inc, kill_state=lambda run: kill["mode"] if run is None else ("off", "", ""), clock=clock
    )
    yield rules, inc, store, clock, kill
    store.close()


def _kinds(store):
    return [(a["kind"], a["incident"]) for a in store.alerts()]


def _cycle(rules, inc, clock, events=(), dt_s=1.0):
    for e in events:
        rules.observe(e)
    clock.t += int(dt_s * NS)
    rules.tick(clock.t)
    inc.sync(clock.t)


def test_engine_down_is_a_dead_mans_switch_and_a_clean_stop_is_not(env):
    rules, inc, store, clock, _ = env
    for _ in range(3):
        _cycle(rules, inc, clock, [S.Heartbeat(run_id=1, ts_ns=clock.t, state="running", pid=42)])
        _cycle(rules, inc, clock, [S.Heartbeat(run_id=2, ts_ns=clock.t, state="running", pid=43)])
    assert _kinds(store) == []
    for _ in range(7):  # run 1 goes silent; run 2 beats on, then stops cleanly
        _cycle(rules, inc, clock, [S.Heartbeat(run_id=2, ts_ns=clock.t, state="running", pid=43)])
    rules.observe(S.RunStopped(run_id=2, ts_ns=clock.t, reason="minutes elapsed"))
    _cycle(rules, inc, clock)
    assert _kinds(store) == [("trigger", "engine_down:run=1")]
    a = store.alerts()[0]
    assert a["severity"] == "critical" and a["numbers"]["pid"] == 42 and a["numbers"]["silence_s"] > 5
    _cycle(rules, inc, clock, [S.Heartbeat(run_id=1, ts_ns=clock.t, state="running", pid=42)])
    assert _kinds(store)[-1] == ("resolved", "engine_down:run=1")


def test_kill_switch_by_anyone_then_cleared(env):
    rules, inc, store, clock, kill = env
    kill["mode"] = ("reduce_only", "dashboard:alice", "news")
    _cycle(rules, inc, clock)
    _cycle(rules, inc, clock)
    kill["mode"] = ("off", "", "")
    _cycle(rules, inc, clock)
    got = store.alerts()
    assert [(a["kind"], a["severity"]) for a in got] == [("trigger", "warning"), ("resolved", "warning")]
    assert "by dashboard:alice: news" in got[0]["body"] and got[0]["numbers"]["mode"] == "reduce_only"


def _risk(ts, refusals, breaker="ok", dd=0.01):
    return S.RiskState(
        run_id=1, ts_ns=ts, breaker=breaker, kill_switch="off",
        rules=(S.RuleState("daily_drawdown", dd, 0.03, 0), S.RuleState("max_position", 0.1, 0.5, refusals)),
    )  # fmt: skip


def test_drawdown_breaker_and_refusal_burst(env):
    rules, inc, store, clock, _ = env
    _cycle(rules, inc, clock, [_risk(clock.t, 0)])
    _cycle(rules, inc, clock, [_risk(clock.t, 5)])  # 5 refusals: below the burst of 20
    assert _kinds(store) == []
    _cycle(rules, inc, clock, [_risk(clock.t, 30, breaker="tripped", dd=0.031)])
    got = {a["incident"]: a for a in store.alerts()}
    assert set(got) == {"drawdown_breaker:run=1", "refusal_burst:run=1"}
    assert got["drawdown_breaker:run=1"]["numbers"] == {"daily_drawdown": 0.031, "limit": 0.03}
    assert got["refusal_burst:run=1"]["numbers"]["refusals"] == 30


def _fill(ts, side, price, qty=1.0, fee=0.0):
    return S.FillEvent(run_id=1, ts_ns=ts, symbol=SYM, client_order_id="c", trade_id=str(ts), side=side,
                       price=price, qty=qty, fee=fee)  # fmt: skip


def test_loss_streak_counts_round_trips_net_of_fees(env):
    rules, inc, store, clock, _ = env
    for _ in range(4):  # four losing trips: long 100 -> 99.9
        _cycle(rules, inc, clock, [_fill(clock.t, "buy", 100.0), _fill(clock.t, "sell", 99.9)])
    _cycle(rules, inc, clock, [_fill(clock.t, "sell", 100.0), _fill(clock.t, "buy", 100.2, qty=0.5),
                               _fill(clock.t, "buy", 100.3, qty=0.5)])  # fmt: skip
    assert _kinds(store) == [("trigger", f"loss_streak:run=1:{SYM}")]  # the fifth, a short, in two fills
    a = store.alerts()[0]
    assert a["numbers"]["losses_in_a_row"] == 5 and a["numbers"]["last_trip_pnl"] == pytest.approx(-0.25)
    _cycle(rules, inc, clock, [_fill(clock.t, "buy", 100.0), _fill(clock.t, "sell", 100.05, fee=0.1)])
    assert rules.runs[1].symbol[SYM].losses == 6  # a gross win that fees make a loss still counts
    _cycle(rules, inc, clock, [_fill(clock.t, "buy", 100.0), _fill(clock.t, "sell", 101.0, fee=0.1)])
    assert rules.runs[1].symbol[SYM].losses == 0


def test_order_rejected_equity_drop_and_feed(env):
    rules, inc, store, clock, _ = env
    rej = S.OrderUpdate(run_id=1, ts_ns=clock.t, symbol=SYM, client_order_id="of-1-9", side="buy",
                        order_type="limit", state="rejected", qty=0.01, price=100.0,
                        reason="-2010 insufficient balance")  # fmt: skip
    eq = [S.EquityPoint(run_id=1, ts_ns=clock.t + i, equity=v, balance=v, unrealized_pnl=0.0, exposure=0.0)
          for i, v in enumerate((10_000.0, 10_100.0, 9_890.0))]  # fmt: skip
    feed = [
        S.FeedHealth(run_id=1, ts_ns=clock.t, symbol=SYM, lag_ms=50.0, gaps=0, resyncs=0, reconnects=0,
                     watchdog_trips=0, synced=True),
        S.FeedHealth(run_id=1, ts_ns=clock.t + NS, symbol=SYM, lag_ms=8000.0, gaps=0, resyncs=0, reconnects=1,
                     watchdog_trips=1, synced=False),
        S.FeedHealth(run_id=1, ts_ns=clock.t + 2 * NS, symbol=SYM, lag_ms=40.0, gaps=1, resyncs=1,
                     reconnects=1, watchdog_trips=1, synced=True),
    ]  # fmt: skip
    _cycle(rules, inc, clock, [rej, *eq, *feed])
    got = {a["incident"]: a for a in store.alerts()}
    assert set(got) == {f"order_rejected:run=1:{SYM}", "equity_drop:run=1", f"feed:run=1:{SYM}"}
    assert "insufficient balance" in got[f"order_rejected:run=1:{SYM}"]["body"]
    drop = got["equity_drop:run=1"]["numbers"]
    assert drop["day_high"] == 10_100.0 and drop["drop"] == pytest.approx(210 / 10_100, abs=1e-6)
    body = got[f"feed:run=1:{SYM}"]["body"]
    assert "stale feed" in body and "1 gap(s), 1 resync(s)" in body  # one incident, both causes
    clock.t += 200 * NS  # quiet: the gap's incident resolves; the stale part cleared already
    _cycle(rules, inc, clock)
    assert ("resolved", f"feed:run=1:{SYM}") in _kinds(store)


def test_latency_calibration_drift_model_change_rate_limit_and_mismatch(env):
    rules, inc, store, clock, _ = env
    evs = [
        S.Latency(run_id=1, ts_ns=clock.t, what="tick_to_order", symbol=SYM, us=80_000.0) for _ in range(60)
    ]
    evs += [S.Outcome(run_id=1, ts_ns=clock.t, symbol=SYM, pred_ts_ns=0, label=-1, ret=-0.01,
                      p_down=0.05, p_flat=0.05, p_up=0.9) for _ in range(250)]  # fmt: skip
    evs += [S.FeatureDrift(run_id=1, ts_ns=clock.t, symbol=SYM, psi=(("ofi_1", 0.4), ("spread", 0.1)))]
    evs += [S.ModelOutput(run_id=1, ts_ns=clock.t, symbol=SYM, version=v, p_down=0.3, p_flat=0.4, p_up=0.3,
                          horizon_ns=NS) for v in ("v1", "v2")]  # fmt: skip
    evs += [S.ApiHealth(run_id=1, ts_ns=clock.t, http_429=0, http_418=0),
            S.ApiHealth(run_id=1, ts_ns=clock.t, http_429=2, http_418=1, retry_after_s=120.0)]  # fmt: skip
    evs += [S.Reconcile(run_id=1, ts_ns=clock.t, symbol=SYM, engine_qty=0.01, exchange_qty=0.0)]
    _cycle(rules, inc, clock, evs)
    got = {a["incident"]: a for a in store.alerts()}
    assert set(got) == {
        "latency:run=1", f"calibration:run=1:{SYM}", f"feature_drift:run=1:{SYM}",
        f"model_change:run=1:{SYM}", "rate_limited:run=1", f"position_mismatch:run=1:{SYM}",
    }  # fmt: skip
    assert got["latency:run=1"]["numbers"]["p99_us"] == 80_000.0
    assert got[f"calibration:run=1:{SYM}"]["numbers"]["ece"] > 0.8
    assert got[f"feature_drift:run=1:{SYM}"]["numbers"]["worst_feature"] == "ofi_1"
    assert got["rate_limited:run=1"]["severity"] == "critical" and "418" in got["rate_limited:run=1"]["body"]
    assert got[f"model_change:run=1:{SYM}"]["severity"] == "info"
    assert got[f"position_mismatch:run=1:{SYM}"]["numbers"]["difference"] == 0.01


def test_calibration_metrics_on_known_values():
    import numpy as np

    probs = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    labels = np.array([2, 0])
    assert brier(probs, labels) == 0.0 and ece(probs, labels) == 0.0
    probs = np.array([[0.2, 0.2, 0.6]] * 10)
    labels = np.array([2] * 3 + [0] * 7)  # 60% confident, 30% right
    assert ece(probs, labels) == pytest.approx(0.3)
    assert brier(probs, labels) == pytest.approx((3 * (0.04 + 0.04 + 0.16) + 7 * (0.64 + 0.04 + 0.36)) / 10)
