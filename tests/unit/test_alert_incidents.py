"""Incidents: one message per incident, a resolved message, cooldown, escalation, restart-safety."""

from __future__ import annotations

import pytest

from orderflow.alerts.config import AlertsConfig, ChannelConfig, RoutingConfig
from orderflow.alerts.incidents import NS, Incidents
from orderflow.alerts.store import AlertStore

T0 = 1_764_633_600 * NS  # 2025-12-02 00:00 UTC


def _cfg(**rules) -> AlertsConfig:
    return AlertsConfig(
        channels={n: ChannelConfig(url=f"json://127.0.0.1:1/{n}") for n in ("sms", "tg", "mail")},
        routing=RoutingConfig(critical=("sms", "tg"), warning=("tg",), info=("mail",)),
        rules=rules or AlertsConfig().rules,
    )


@pytest.fixture
def store(tmp_path):
    s = AlertStore.open(str(tmp_path / "j.sqlite"))
    yield s
    s.close()


def _msgs(store: AlertStore) -> list[tuple[str, str, list[str]]]:
    return [(a["kind"], a["incident"], [d["channel"] for d in a["deliveries"]]) for a in store.alerts()]


def test_a_condition_gives_one_trigger_then_one_resolved_routed_by_severity(store):
    cfg = _cfg()
    inc = Incidents(cfg, store)
    R = cfg.rules.engine_down
    for i in range(5):  # the condition holds over several cycles: still one message
        inc.hold("engine_down", R, "engine_down:run=1", True, T0 + i * NS, run_id=1, text="no heartbeat",
                 numbers={"silence_s": 6.0 + i})  # fmt: skip
        inc.sync(T0 + i * NS)
    inc.hold("engine_down", R, "engine_down:run=1", False, T0 + 9 * NS, run_id=1)
    inc.sync(T0 + 10 * NS)
    inc.sync(T0 + 11 * NS)
    got = _msgs(store)
    assert got == [
        ("trigger", "engine_down:run=1", ["sms", "tg"]),
        ("resolved", "engine_down:run=1", ["sms", "tg"]),
    ]
    first, second = store.alerts()
    assert first["numbers"]["silence_s"] == 6.0  # the numbers when it was announced
    assert "run 1" in first["title"] and first["link"].endswith("#view=overview&run=1")
    assert "resolved after 10.0 s" in second["body"] and second["numbers"]["open_s"] == 10.0
    assert second["numbers"]["silence_s"] == 10.0  # the last numbers seen


def test_events_keep_an_incident_open_until_quiet_then_it_resolves_with_the_count(store):
    cfg = _cfg()
    inc = Incidents(cfg, store)
    R = cfg.rules.order_rejected  # quiet_s 120
    for i in range(4):
        inc.event("order_rejected", R, "order_rejected:run=1:BTCUSDT", T0 + i * 10 * NS, run_id=1,
                  symbol="BTCUSDT", text=f"order {i} rejected")  # fmt: skip
        inc.sync(T0 + i * 10 * NS)
    inc.sync(T0 + 100 * NS)
    assert [k for k, _, _ in _msgs(store)] == ["trigger"]
    inc.sync(T0 + 30 * NS + 121 * NS)
    kinds = [k for k, _, _ in _msgs(store)]
    assert kinds == ["trigger", "resolved"]
    assert "events in this incident: 4" in store.alerts()[1]["body"]


def test_rules_sharing_a_key_make_one_incident_and_the_higher_severity_routes_it(store):
    cfg = _cfg()
    inc = Incidents(cfg, store)
    key = "feed:run=2:ETHUSDT"
    inc.hold("stale_feed", cfg.rules.stale_feed, key, True, T0, run_id=2, symbol="ETHUSDT", text="stale 7 s")
    inc.event("feed_gap", cfg.rules.feed_gap, key, T0, run_id=2, symbol="ETHUSDT", text="1 resync",
              severity="critical")  # fmt: skip
    inc.sync(T0)
    inc.hold("stale_feed", cfg.rules.stale_feed, key, False, T0 + NS)
    inc.sync(T0 + 2 * NS)  # the gap's quiet time has not passed
    assert _msgs(store) == [("trigger", key, ["sms", "tg"])]
    body = store.alerts()[0]["body"]
    assert "stale 7 s" in body and "1 resync" in body
    inc.sync(T0 + 200 * NS)
    assert [k for k, _, _ in _msgs(store)] == ["trigger", "resolved"]


def test_a_retrigger_within_cooldown_is_silent_and_escalation_goes_one_severity_up(store):
    cfg = _cfg()
    inc = Incidents(cfg, store)
    R = cfg.rules.stale_feed  # warning; cooldown 300 s; escalate after 300 s
    key = "feed:run=1:BTCUSDT"
    inc.hold("stale_feed", R, key, True, T0, run_id=1, text="stale")
    inc.sync(T0)
    inc.hold("stale_feed", R, key, False, T0 + 10 * NS)
    inc.sync(T0 + 10 * NS)
    inc.hold("stale_feed", R, key, True, T0 + 20 * NS, run_id=1, text="stale again")
    inc.sync(T0 + 20 * NS)  # within the cooldown: no message
    assert [k for k, _, _ in _msgs(store)] == ["trigger", "resolved"]
    inc.sync(T0 + 301 * NS)  # open since T0 (the silent reopen keeps the clock): escalates
    got = _msgs(store)
    assert got[-1] == ("escalation", key, ["sms", "tg"])  # warning escalates to the critical route
    inc.sync(T0 + 400 * NS)
    assert len(_msgs(store)) == 3  # the next escalation only after another escalate_after_s


def test_a_restarted_alerter_neither_repeats_nor_forgets(store, tmp_path):
    cfg = _cfg()
    a = Incidents(cfg, store)
    R = cfg.rules.engine_down
    a.hold("engine_down", R, "engine_down:run=1", True, T0, run_id=1, text="down")
    a.hold("engine_down", R, "engine_down:run=2", True, T0, run_id=2, text="down")
    a.sync(T0)
    assert len(store.alerts()) == 2
    b = Incidents(cfg, store)  # a restart: replays telemetry silently, then syncs
    b.priming = True
    b.hold("engine_down", R, "engine_down:run=1", True, T0 + NS, run_id=1, text="down")  # still down
    assert b.sync(T0 + 2 * NS) == 0  # priming: nothing written
    b.priming = False
    b.sync(T0 + 3 * NS)
    got = _msgs(store)
    assert got[2:] == [("resolved", "engine_down:run=2", ["sms", "tg"])]  # run 2 recovered meanwhile
    assert "alerter restart" in store.alerts()[2]["body"]


def test_a_change_while_open_is_announced_once(store):
    cfg = _cfg()
    inc = Incidents(cfg, store)
    R = cfg.rules.kill_switch
    inc.hold(
        "kill_switch", R, "kill_switch:all", True, T0, text="reduce_only", numbers={"mode": "reduce_only"}
    )
    inc.sync(T0)
    inc.hold("kill_switch", R, "kill_switch:all", True, T0 + NS, text="halt", numbers={"mode": "halt"},
             changed=True)  # fmt: skip
    inc.sync(T0 + NS)
    inc.sync(T0 + 2 * NS)
    got = store.alerts()
    assert [a["kind"] for a in got] == ["trigger", "trigger"]
    assert got[1]["title"].startswith("[CRITICAL] changed:") and got[1]["numbers"]["mode"] == "halt"
