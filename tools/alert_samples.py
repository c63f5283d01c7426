"""Print a sample message of every alert rule, made by the alerter's own code (rules -> incidents ->
journal) from telemetry events, as Markdown for docs/operations.md.

    PYTHONPATH=src python tools/alert_samples.py > /tmp/samples.md
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from orderflow.alerts.config import AlertsConfig, AnomalyConfig, ChannelConfig, RoutingConfig
from orderflow.alerts.incidents import NS, Incidents
from orderflow.alerts.rules import Rules
from orderflow.alerts.store import AlertStore
from orderflow.telemetry import schema as S

T0 = 1_796_236_800 * NS  # 2026-12-02 18:40 UTC
SYM = "BTCUSDT"


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        store = AlertStore.open(str(Path(d) / "j.sqlite"))
        cfg = AlertsConfig(
            channels={"telegram": ChannelConfig(url="json://127.0.0.1:1/x")},
            routing=RoutingConfig(critical=("telegram",), warning=("telegram",), info=("telegram",)),
            anomaly=AnomalyConfig(enabled=False),
        )
        t = [T0]
        kill = {"v": ("off", "", "")}
        inc = Incidents(cfg, store, clock=lambda: t[0])
        rules = Rules(cfg, inc, kill_state=lambda run: kill["v"] if run is None else ("off", "", ""),
                      clock=lambda: t[0])  # fmt: skip

        def cycle(*events: S._Event, dt_s: float = 1.0) -> None:
            for e in events:
                rules.observe(e)
            t[0] += int(dt_s * NS)
            rules.tick(t[0])
            inc.sync(t[0])

        c = {"run_id": 7}
        cycle(S.RunStarted(**c, ts_ns=t[0], mode="paper", venue="binance-usdm", symbols=(SYM,), pid=4242),
              S.Heartbeat(**c, ts_ns=t[0], state="running", mode="paper", symbols=(SYM,), pid=4242))  # fmt: skip
        kill["v"] = ("reduce_only", "dashboard:alice", "CPI in 5 minutes")
        cycle()
        kill["v"] = ("off", "", "")
        cycle()
        rules_state = (
            S.RuleState("daily_drawdown", 0.031, 0.03, 0),
            S.RuleState("max_position", 0.4, 0.5, 0),
        )
        cycle(S.RiskState(**c, ts_ns=t[0], rules=rules_state, breaker="ok", kill_switch="off"))
        burst = (S.RuleState("daily_drawdown", 0.031, 0.03, 0), S.RuleState("max_position", 0.4, 0.5, 27))
        cycle(S.RiskState(**c, ts_ns=t[0], rules=burst, breaker="tripped", kill_switch="off"))
        for i in range(5):
            cycle(S.FillEvent(**c, ts_ns=t[0], symbol=SYM, client_order_id=f"of7-{2 * i}", trade_id=str(2 * i),
                              side="buy", price=97_000.0, qty=0.01, fee=0.39),
                  S.FillEvent(**c, ts_ns=t[0], symbol=SYM, client_order_id=f"of7-{2 * i + 1}",
                              trade_id=str(2 * i + 1), side="sell", price=96_950.0, qty=0.01, fee=0.39))  # fmt: skip
        for v in (10_000.0, 10_120.0, 9_905.0):
            cycle(S.EquityPoint(**c, ts_ns=t[0], equity=v, balance=v, unrealized_pnl=0.0, exposure=970.0))
        cycle(S.OrderUpdate(**c, ts_ns=t[0], symbol=SYM, client_order_id="of7-31", side="buy",
                            order_type="limit", state="rejected", qty=0.01, price=96_990.0,
                            reason="-2019 Margin is insufficient."))  # fmt: skip
        cycle(S.Reconcile(**c, ts_ns=t[0], symbol=SYM, engine_qty=0.01, exchange_qty=0.0))
        f = {"symbol": SYM, "watchdog_trips": 0}
        cycle(S.FeedHealth(**c, ts_ns=t[0], lag_ms=40.0, gaps=0, resyncs=0, reconnects=0, synced=True, **f))
        cycle(
            S.FeedHealth(**c, ts_ns=t[0], lag_ms=6_400.0, gaps=0, resyncs=0, reconnects=1, synced=False, **f)
        )
        cycle(S.FeedHealth(**c, ts_ns=t[0], lag_ms=35.0, gaps=1, resyncs=1, reconnects=1, synced=True, **f))
        cycle(S.ApiHealth(**c, ts_ns=t[0], http_429=0, http_418=0))
        cycle(S.ApiHealth(**c, ts_ns=t[0], http_429=3, http_418=0, waits=5, retry_after_s=12.0))
        cycle(*[S.Latency(**c, ts_ns=t[0], what="tick_to_order", symbol=SYM, us=65_000.0) for _ in range(60)])
        cycle(*[S.Outcome(**c, ts_ns=t[0], symbol=SYM, pred_ts_ns=0, label=-1, ret=-0.001, p_down=0.1,
                          p_flat=0.2, p_up=0.7) for _ in range(250)])  # fmt: skip
        cycle(S.FeatureDrift(**c, ts_ns=t[0], symbol=SYM, psi=(("ofi_e1", 0.41), ("spread_bps", 0.12)),
                             samples=600, reference="the version's first 500 inputs"))  # fmt: skip
        cycle(*[S.ModelOutput(**c, ts_ns=t[0], symbol=SYM, version=v, p_down=0.3, p_flat=0.4, p_up=0.3,
                              horizon_ns=60 * NS) for v in ("lr-2026-11-30", "lr-2026-12-01")])  # fmt: skip
        t[0] += 10 * NS  # the engine goes silent
        cycle()
        cycle(S.Heartbeat(**c, ts_ns=t[0], state="running", pid=4242), dt_s=200)  # back; events go quiet
        cycle(dt_s=3600)
        seen: set[tuple[str, str]] = set()
        for a in store.alerts():
            k = (a["rule"], a["kind"])
            if k in seen:
                continue
            seen.add(k)
            print(f"**{a['rule']}** ({a['kind']}, {a['severity']})\n\n```\n{a['title']}\n{a['body']}\n```\n")
        store.close()


if __name__ == "__main__":
    main()
