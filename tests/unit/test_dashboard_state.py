"""The dashboard's run state: status from heartbeats, resting orders for the ladder, risk headroom,
and the live model evaluation computed by hand."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from orderflow.dashboard.state import ModelStats, RunView
from orderflow.telemetry import schema as S

SEC = 10**9
VENDOR = Path(__file__).resolve().parents[2] / "src" / "orderflow" / "dashboard" / "static" / "vendor"


def _beat(t: int) -> S.Heartbeat:
    return S.Heartbeat(run_id=1, ts_ns=t, state="running")


def test_status_follows_the_heartbeats():
    v = RunView(1, down_after_s=3.5)
    assert v.status(0) == "unknown"
    v.apply(_beat(100 * SEC))
    assert v.status(103 * SEC) == "running"
    assert v.status(104 * SEC) == "down"  # 4 s without a heartbeat
    v.apply(_beat(104 * SEC))
    assert v.status(104 * SEC) == "running"
    v.apply(S.RunStopped(run_id=1, ts_ns=105 * SEC, reason="minutes elapsed"))
    assert v.status(200 * SEC) == "stopped"


def _order(cid: str, state: str, price: float | None = 100.0, side: str = "BUY") -> S.OrderUpdate:
    return S.OrderUpdate(
        run_id=1,
        ts_ns=1,
        symbol="BTCUSDT",
        client_order_id=cid,
        side=side,
        order_type="limit",
        state=state,
        qty=0.01,
        price=price,
    )


def test_resting_orders_are_the_open_priced_ones():
    v = RunView(1)
    for e in [
        _order("a", "new"),
        _order("b", "filled"),
        _order("c", "partially_filled", side="SELL"),
        _order("d", "new", price=None),
        _order("a", "canceled"),
        _order("e", "pending_new"),
    ]:
        v.apply(e)
    assert sorted(o["client_order_id"] for o in v.resting("BTCUSDT")) == ["c", "e"]


def test_old_orders_leave_the_bounded_table():
    v = RunView(1, keep=3)
    for i in range(5):
        v.apply(_order(f"o{i}", "new"))
    assert list(v.orders) == ["o2", "o3", "o4"]


def test_headroom_is_the_tightest_rule():
    v = RunView(1)
    assert v.headroom() is None
    rules = (S.RuleState(rule="a", value=0.01, limit=0.04), S.RuleState(rule="b", value=3, limit=4))
    v.apply(S.RiskState(run_id=1, ts_ns=1, rules=rules, breaker="ok", kill_switch="off"))
    assert v.headroom() == pytest.approx(0.25)  # rule b: 1 - 3/4


def _outcome(p: tuple[float, float, float], label: int, ret: float = 0.0, ev: float = 0.0) -> S.Outcome:
    return S.Outcome(
        run_id=1,
        ts_ns=1,
        symbol="X",
        pred_ts_ns=0,
        label=label,
        ret=ret,
        p_down=p[0],
        p_flat=p[1],
        p_up=p[2],
        ev=ev,
    )


def test_model_scores_against_the_majority_baseline_by_hand():
    m = ModelStats()
    m.add(_outcome((0.1, 0.2, 0.7), 1, ret=0.002, ev=0.001))  # right, confident
    m.add(_outcome((0.6, 0.3, 0.1), 1, ret=0.001, ev=-0.001))  # wrong
    s = m.summary()
    # Brier: (0.01 + 0.04 + 0.09) = 0.14 and (0.36 + 0.09 + 0.81) = 1.26 -> mean 0.70
    assert s["brier"] == pytest.approx(0.70)
    # baseline: both outcomes are "up", so the class frequencies are (0, 0, 1) and score 0
    assert s["brier_baseline"] == pytest.approx(0.0)
    assert s["majority_class"] == "up"
    # top-label confidences 0.7 (right) and 0.6 (wrong)
    rel = {round(b["confidence"], 2): b["accuracy"] for b in s["reliability"]}
    assert rel == {0.7: 1.0, 0.6: 0.0}
    # realised return in the predicted direction: +0.002 (up) and -0.001 (predicted down, went up)
    evs = sorted((b["expected"], b["realised"]) for b in s["ev_by_decile"])
    assert evs == [(-0.001, pytest.approx(-0.001)), (0.001, pytest.approx(0.002))]


def test_model_window_is_bounded():
    m = ModelStats(window=10)
    for _ in range(25):
        m.add(_outcome((0.2, 0.6, 0.2), 0))
    assert m.summary()["n"] == 10


def test_the_vendored_browser_libraries_match_their_manifest():
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text())
    listed = set()
    for pkg in manifest["packages"]:
        assert pkg["version"] and pkg["license"], pkg["name"]
        for name, digest in pkg["files"].items():
            listed.add(name)
            assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert {p.name for p in VENDOR.iterdir()} - {"MANIFEST.json"} == listed  # nothing unlisted
