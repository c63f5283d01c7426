"""`orderflow run`: the main job on embedded defaults (simulate, store, check, stylized facts)."""

from __future__ import annotations

import json

from orderflow.cli import main


def test_main_job_simulates_stores_checks_and_summarises(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ORDERFLOW_STORE", str(tmp_path / "store"))  # the environment names the store
    assert main(["run", "--hours", "0.25", "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quality_failures"] == []
    kinds = {d["kind"]: d for d in out["quality"]["datasets"]}
    assert kinds["book"]["events"] > 0 and kinds["book"]["crossed"] == 0 and kinds["book"]["gaps"] == 0
    assert kinds["trade"]["events"] > 0
    facts = out["facts"]
    assert facts["duration_s"] > 890
    assert 0.0 < facts["ofi_1s_r2_best"] < 1.0
    assert (tmp_path / "store" / "venue=sim" / "symbol=BTCUSDT" / "kind=book").is_dir()

    # text output: the store listing, the quality table and the facts table
    assert main(["run", "--hours", "0.05", "--store", str(tmp_path / "s2")]) == 0
    text = capsys.readouterr().out
    assert "data quality" in text and "stylized facts" in text and "1 s OFI R^2 best level" in text
    assert "OK: no threshold crossed" in text
