# ruff: noqa: E501 - the panel table keeps each PromQL query on one line
"""Write deploy/grafana/dashboards/orderflow.json, the Grafana dashboard of the engine's metrics.

    python tools/gen_grafana_dashboard.py

The panels are declared below as (title, kind, queries, unit); the script lays them out in rows of a
24-column grid and gives every panel a unique id. tests/unit/test_grafana.py checks the file against
the engine's metric registry and promtool, and that it is what this script writes.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards" / "orderflow.json"
DATASOURCE_UID = "orderflow-prometheus"
J = '{job="orderflow", symbol=~"$symbol"}'
R = '{job="orderflow"}'

# (row title, [(panel title, type, [(expr, legend)], unit, width)])
ROWS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]], str, int]]]] = [
    (
        "Overview",
        [
            ("Equity", "stat", [(f"orderflow_equity{R}", "{{instance}}")], "none", 4),
            ("Today's PnL", "stat", [(f"orderflow_day_pnl{R}", "{{instance}}")], "none", 4),
            ("Drawdown", "stat", [(f"orderflow_drawdown_ratio{R}", "{{instance}}")], "percentunit", 4),
            ("Position", "stat", [(f"orderflow_position{J}", "{{symbol}}")], "none", 4),
            (
                "Kill switch",
                "stat",
                [
                    (
                        'orderflow_kill_switch{job="orderflow"} == 1',  # the one state in force
                        "{{orderflow_kill_switch}}",
                    )
                ],
                "none",
                4,
            ),
            (
                "Engine up (heartbeat age, s)",
                "stat",
                [(f"time() - orderflow_heartbeat_timestamp_seconds{R}", "{{instance}}")],
                "s",
                4,
            ),
        ],
    ),
    (
        "Equity and risk",
        [
            (
                "Equity",
                "timeseries",
                [(f"orderflow_equity{R}", "equity"), (f"orderflow_exposure{R}", "exposure")],
                "none",
                12,
            ),
            (
                "Risk usage (value / limit)",
                "timeseries",
                [(f"orderflow_risk_usage_ratio{R}", "{{rule}}")],
                "percentunit",
                12,
            ),
            (
                "Risk refusals by rule (per min)",
                "timeseries",
                [(f"sum by (rule) (rate(orderflow_risk_refusals_total{R}[5m])) * 60", "{{rule}}")],
                "none",
                12,
            ),
            ("Unrealised PnL", "timeseries", [(f"orderflow_unrealized_pnl{J}", "{{symbol}}")], "none", 12),
        ],
    ),
    (
        "Decisions and orders",
        [
            (
                "Decisions by gate (per min)",
                "timeseries",
                [(f"sum by (gate) (rate(orderflow_decisions_total{J}[5m])) * 60", "{{gate}}")],
                "none",
                12,
            ),
            (
                "Orders and rejects (per min)",
                "timeseries",
                [
                    (f"sum by (side) (rate(orderflow_orders_total{J}[5m])) * 60", "orders {{side}}"),
                    (
                        # 0 when nothing was rejected (the counter has no series until the first reject)
                        f"sum by (reason) (rate(orderflow_order_rejects_total{J}[5m])) * 60 or on() vector(0)",
                        "reject {{reason}}",
                    ),
                ],
                "none",
                12,
            ),
            (
                "Fills (per min)",
                "timeseries",
                [
                    (
                        f"sum by (symbol, liquidity) (rate(orderflow_fills_total{J}[5m])) * 60",
                        "{{symbol}} {{liquidity}}",
                    )
                ],
                "none",
                8,
            ),
            (
                "Slippage p50 / p95",
                "timeseries",
                [
                    (
                        f"histogram_quantile(0.5, sum by (le) (rate(orderflow_slippage_ratio_bucket{J}[15m])))",
                        "p50",
                    ),
                    (
                        f"histogram_quantile(0.95, sum by (le) (rate(orderflow_slippage_ratio_bucket{J}[15m])))",
                        "p95",
                    ),
                ],
                "percentunit",
                8,
            ),
            (
                "Fees (per hour)",
                "timeseries",
                [(f"sum by (symbol) (rate(orderflow_fees_total{J}[1h])) * 3600", "{{symbol}}")],
                "none",
                8,
            ),
        ],
    ),
    (
        "Latency",
        [
            (
                "Tick to order p50 / p99",
                "timeseries",
                [
                    (
                        f"histogram_quantile(0.5, sum by (le) (rate(orderflow_tick_to_order_seconds_bucket{J}[5m])))",
                        "p50",
                    ),
                    (
                        f"histogram_quantile(0.99, sum by (le) (rate(orderflow_tick_to_order_seconds_bucket{J}[5m])))",
                        "p99",
                    ),
                ],
                "s",
                12,
            ),
            (
                "Order acknowledgement p50 / p99",
                "timeseries",
                [
                    (
                        f"histogram_quantile(0.5, sum by (le) (rate(orderflow_order_ack_seconds_bucket{J}[5m])))",
                        "p50",
                    ),
                    (
                        f"histogram_quantile(0.99, sum by (le) (rate(orderflow_order_ack_seconds_bucket{J}[5m])))",
                        "p99",
                    ),
                ],
                "s",
                12,
            ),
        ],
    ),
    (
        "Feed health",
        [
            (
                "Book updates (per s)",
                "timeseries",
                [(f"rate(orderflow_book_updates_total{J}[1m])", "{{symbol}}")],
                "none",
                8,
            ),
            ("Feed lag", "timeseries", [(f"orderflow_feed_lag_seconds{J}", "{{symbol}}")], "s", 8),
            (
                "Gaps, resyncs, reconnects (per hour)",
                "timeseries",
                [
                    (f"rate(orderflow_feed_gaps_total{J}[1h]) * 3600", "gaps {{symbol}}"),
                    (f"rate(orderflow_feed_resyncs_total{J}[1h]) * 3600", "resyncs {{symbol}}"),
                    (f"rate(orderflow_feed_reconnects_total{J}[1h]) * 3600", "reconnects {{symbol}}"),
                    (f"rate(orderflow_feed_watchdog_trips_total{J}[1h]) * 3600", "watchdog {{symbol}}"),
                ],
                "none",
                8,
            ),
        ],
    ),
    (
        "Model",
        [
            (
                "Rolling Brier score",
                "timeseries",
                [(f"orderflow_model_brier_score{J}", "{{symbol}}")],
                "none",
                8,
            ),
            (
                "Inference p99",
                "timeseries",
                [
                    (
                        f"histogram_quantile(0.99, sum by (le) (rate(orderflow_model_inference_seconds_bucket{J}[5m])))",
                        "p99",
                    )
                ],
                "s",
                8,
            ),
            (
                "Predictions (per s)",
                "timeseries",
                [(f"rate(orderflow_model_predictions_total{J}[1m])", "{{symbol}}")],
                "none",
                8,
            ),
        ],
    ),
    (
        "System",
        [
            (
                "CPU (cores)",
                "timeseries",
                [(f"rate(process_cpu_seconds_total{R}[1m])", "{{instance}}")],
                "none",
                12,
            ),
            (
                "Resident memory",
                "timeseries",
                [(f"process_resident_memory_bytes{R}", "{{instance}}")],
                "bytes",
                12,
            ),
        ],
    ),
]


def build() -> dict:
    panels: list[dict] = []
    pid = 1
    y = 0
    ds = {"type": "prometheus", "uid": DATASOURCE_UID}
    for row_title, row in ROWS:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid += 1
        y += 1
        x = 0
        height = 4 if all(p[1] == "stat" for p in row) else 8
        for title, kind, queries, unit, width in row:
            if x + width > 24:
                x, y = 0, y + height
            targets = [
                {"refId": chr(ord("A") + i), "datasource": ds, "expr": expr, "legendFormat": legend}
                for i, (expr, legend) in enumerate(queries)
            ]
            panels.append(
                {
                    "id": pid,
                    "type": kind,
                    "title": title,
                    "datasource": ds,
                    "targets": targets,
                    "gridPos": {"h": height, "w": width, "x": x, "y": y},
                    "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                    "options": {"legend": {"displayMode": "list", "placement": "bottom"}}
                    if kind == "timeseries"
                    else {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"},
                }
            )
            pid += 1
            x += width
        y += height
    return {
        "uid": "orderflow-engine",
        "title": "orderflow engine",
        "tags": ["orderflow"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "5s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "symbol",
                    "type": "query",
                    "datasource": ds,
                    "query": {
                        "query": 'label_values(orderflow_book_updates_total{job="orderflow"}, symbol)',
                        "refId": "symbol",
                    },
                    "definition": 'label_values(orderflow_book_updates_total{job="orderflow"}, symbol)',
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                }
            ]
        },
        "panels": panels,
    }


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
