"""The Grafana dashboard and the Prometheus alert rules, checked structurally (Grafana is not
installable here): unique ids, the provisioned datasource, metric names the engine really exports, and
PromQL that promtool accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orderflow.telemetry.metrics import EngineMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "orderflow.json"
DATASOURCE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
NO_PROMTOOL = "promtool not installed (apt-get install prometheus)"

sys.path.insert(0, str(ROOT / "tools"))
import gen_grafana_dashboard as G  # noqa: E402

# PromQL words that look like metric names but are functions, keywords or label names
_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "le"}


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels() -> list[dict]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _exprs() -> list[str]:
    return [t["expr"] for p in _panels() for t in p["targets"]]


def _exported_names() -> set[str]:
    """Every sample name the engine's registry can expose (counters' _total, histograms' _bucket...)."""
    m = EngineMetrics()
    names = {"up"}
    for fam in m.registry.collect():
        names.add(fam.name)
        names.update({fam.name + s for s in ("_total", "_created", "_bucket", "_count", "_sum", "_info")})
    return names


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?!\s*\()", expr))
    calls = set(re.findall(r"([a-zA-Z_]+)\s*\(", expr))
    return {w for w in words - calls - _NOT_METRICS if w.startswith(("orderflow_", "process_")) or w == "up"}


def test_the_file_is_what_the_generator_writes():
    assert _dashboard() == G.build(), "run: python tools/gen_grafana_dashboard.py"


def test_panel_ids_are_unique_and_every_panel_has_a_query():
    ids = [p["id"] for p in _dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for p in _panels():
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]


def test_every_panel_uses_the_provisioned_datasource():
    uid = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]["uid"]
    for p in _panels():
        assert p["datasource"]["uid"] == uid, p["title"]
        assert all(t["datasource"]["uid"] == uid for t in p["targets"]), p["title"]


def test_every_metric_a_panel_or_an_alert_uses_is_exported_by_the_engine():
    exported = _exported_names()
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    used = {n for e in _exprs() + [r["expr"] for r in rules] for n in _metric_names(e)}
    assert used, "no metric found: the name parser is broken"
    assert used <= exported, sorted(used - exported)


def test_the_name_parser_sees_through_promql():
    expr = 'histogram_quantile(0.99, sum by (le) (rate(orderflow_x_bucket{job="a", symbol=~"$s"}[5m])))'
    assert _metric_names(expr) == {"orderflow_x_bucket"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason=NO_PROMTOOL)
def test_every_panel_query_passes_promtool_as_a_rule(tmp_path: Path):
    rules = [
        {"record": f"orderflow:panel_{i}", "expr": e.replace("$symbol", ".*")} for i, e in enumerate(_exprs())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(rules)} rules found" in out.stdout


@pytest.mark.skipif(shutil.which("promtool") is None, reason=NO_PROMTOOL)
def test_the_alert_rules_pass_promtool():
    out = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
