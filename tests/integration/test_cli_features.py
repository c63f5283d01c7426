"""`orderflow features list | build | select` end to end."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from orderflow.cli import main


def test_features_list_is_the_registry(capsys):
    assert main(["features", "list", "--json"]) == 0
    specs = json.loads(capsys.readouterr().out)
    names = [s["name"] for s in specs]
    assert len(names) >= 128 and len(set(names)) == len(names)
    assert {s["group"] for s in specs} == {"ofi", "cvd", "micro", "technical", "time", "regime"}
    assert all(s["definition"] and s["window"] and s["unit"] for s in specs)


@pytest.mark.slow
@pytest.mark.shared_data
def test_features_build_on_a_raw_recording(shared_data, tmp_path, capsys):
    raw = shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240808.gz"
    out = tmp_path / "x.parquet"
    argv = ["features", "build", str(raw), "--out", str(out), "--store", str(tmp_path / "s")]
    assert main([*argv, "--fit-integrated-until", "2024-08-08T23:57:00"]) == 0
    capsys.readouterr()
    x = pd.read_parquet(out)
    assert main(["features", "list", "--json"]) == 0
    names = [s["name"] for s in json.loads(capsys.readouterr().out)]
    assert list(x.columns) == ["ts_event", *names, "valid", "invalid_reason"]
    assert len(x) == 6547 and x["ts_event"].is_monotonic_increasing
    assert x["invalid_reason"].iloc[0] == "warmup" and x["valid"].iloc[-1]  # warm by the end
    assert not x.loc[x["valid"], "ofi_e1"].isna().any()
    assert main(["features", "build", str(raw), "--out", str(tmp_path / "x.csv")]) == 2
    assert "argument --out: must name a .parquet file" in capsys.readouterr().err


@pytest.mark.slow
def test_features_select_records_the_chosen_set(tmp_path, capsys, monkeypatch):
    store = str(tmp_path / "s")
    assert main(["data", "simulate", "--hours", "2", "--seed", "5", "--store", store]) == 0
    monkeypatch.setenv("ORDERFLOW__SELECTION__N_REPEATS", "1")  # keep the test quick
    out = tmp_path / "chosen.json"
    argv = ["features", "select", "sim/BTCUSDT", "--store", store, "--n-keep", "12", "--folds", "3"]
    assert main([*argv, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["selected"]) == 12 and len(set(doc["selected"])) == 12
    assert [f["fold"] for f in doc["folds"]] == [1, 2, 3]
    assert all(f["n_train"] > 0 and f["n_test"] > 0 for f in doc["folds"])
    assert doc["config"]["n_keep"] == 12 and doc["labels"]["pt"] == 0.9
    ranks = [r["rank"] for r in doc["ranking"]]
    assert ranks == sorted(ranks)
