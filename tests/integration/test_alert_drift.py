"""The alerter's feature-drift check over a real journal: model inputs journaled as the engine does
(msgpack vectors on prediction rows), a shift in one input opens one feature_drift incident naming it."""

from __future__ import annotations

import msgspec
import numpy as np

from orderflow.alerts.config import AlertsConfig, AnomalyConfig, ChannelConfig, RoutingConfig
from orderflow.alerts.service import AlertService, Sources
from orderflow.journal import Journal

NS = 1_000_000_000


def test_a_shifted_input_opens_one_drift_incident(tmp_path):
    db = str(tmp_path / "j.sqlite")
    rng = np.random.default_rng(3)
    t0 = 1_796_000_000 * NS
    with Journal.open(db) as j:
        run = j.start_run("paper", "local", ["BTCUSDT"], t0)
        j.record_model_inputs(run, "v1", ["ofi_e1", "spread_bps"], t0)
        rows = []
        for k in range(900):
            shift = 3.0 if k >= 600 else 0.0  # the last third: spread_bps moves by 3 sigma
            x = [float(rng.normal()), float(rng.normal() + shift)]
            rows.append({"seq": k, "ts_ns": t0 + k * NS, "event_ns": t0 + k * NS, "version": "v1",
                         "p_down": 0.3, "p_flat": 0.4, "p_up": 0.3, "horizon_ns": 60 * NS, "mid": 100.0,
                         "inputs": msgspec.msgpack.encode(x)})  # fmt: skip
        j.record_predictions(run, "BTCUSDT", rows)
    now = t0 + 900 * NS
    cfg = AlertsConfig(
        channels={"hook": ChannelConfig(url="json://127.0.0.1:9/x")},
        routing=RoutingConfig(warning=("hook",)),
        anomaly=AnomalyConfig(enabled=False),
        rules={"feature_drift": {"window_s": 300, "reference": 300}},
    )
    svc = AlertService(cfg, Sources(telemetry=str(tmp_path / "tele"), journal=db), channel_urls={"hook": "json://127.0.0.1:9/x"},
                       clock=lambda: now)  # fmt: skip
    try:
        r = svc.rules.run(run)
        r.started_ns, r.last_beat_ns, r.symbols = t0, now, ("BTCUSDT",)
        assert svc.drift(now) == 1
        svc.incidents.sync(now)
        (a,) = [x for x in svc.store.alerts() if x["rule"] == "feature_drift"]
        assert a["numbers"]["worst_feature"] == "spread_bps" and a["numbers"]["worst_psi"] > 1.0
        assert a["numbers"]["features_over"] == 1  # ofi_e1 did not move
    finally:
        svc.close()
