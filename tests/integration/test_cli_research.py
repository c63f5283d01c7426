"""`orderflow research impact` on a raw recording (imported on the fly) and on a stored symbol."""

from __future__ import annotations

import json

import pytest

from orderflow.cli import main

pytestmark = pytest.mark.shared_data


@pytest.mark.slow
def test_research_impact_json_schema_and_ordering(shared_data, tmp_path, capsys):
    raw = shared_data / "hftbacktest_binance_raw" / "usdm" / "ethusdt_20240808.gz"
    argv = ["research", "impact", str(raw), "--intervals", "1,10,60", "--levels", "10", "--json"]
    assert main([*argv, "--store", str(tmp_path / "s")]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["seconds"]: r for r in out["intervals"]}
    assert sorted(rows) == [1, 10, 60]
    for r in rows.values():
        assert {"seconds", "n", "r2_best", "r2_multi", "r2_weighted", "r2_integrated", "beta_best"} <= set(r)
    assert rows[1]["n"] == 344 and rows[10]["n"] == 34
    for s in (1, 10):  # the joint OLS nests the best level
        assert rows[s]["r2_multi"] >= rows[s]["r2_best"] > 0.3
    assert rows[1]["beta_best"] > 0  # buying pressure moves the mid up


def test_research_impact_bad_input(tmp_path, capsys):
    assert main(["research", "impact", "sim/NOPE", "--store", str(tmp_path), "--intervals", "1,x"]) == 2
    assert (
        "argument --intervals: must be comma-separated finite numbers > 0, got '1,x'"
        in capsys.readouterr().err
    )
    assert main(["research", "impact", "sim/NOPE", "--store", str(tmp_path)]) == 2
    assert "no book data for sim/NOPE" in capsys.readouterr().err
