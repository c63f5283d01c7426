"""`orderflow run`: the main job on embedded defaults (simulate, store, check, stylized facts)."""

from __future__ import annotations

import json
import re

import pytest

from orderflow.cli import main

KIND = {"book rows": "book", "trades": "trade", "regime rows": "regime"}


@pytest.mark.slow
def test_main_job_simulates_stores_checks_and_summarises(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ORDERFLOW_STORE", str(tmp_path / "store"))  # the environment names the store
    assert main(["run", "--hours", "0.25", "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quality_failures"] == []
    kinds = {d["kind"]: d for d in out["quality"]["datasets"]}
    assert kinds["book"]["events"] > 0 and kinds["book"]["crossed"] == 0 and kinds["book"]["gaps"] == 0
    assert kinds["trade"]["events"] > 0
    # the simulation's row counts, the quality report and the store listing agree
    counted = re.findall(r"([\d,]+) (book rows|trades|regime rows)", out["simulation"])
    made = {KIND[what]: int(n.replace(",", "")) for n, what in counted}
    assert set(made) == {"book", "trade", "regime"} and min(made.values()) > 0
    # and the market context series the simulator derives from its flow (data.sim_context)
    (ctx,) = re.findall(r"([\d,]+) market context rows", out["simulation"])
    context = {k: d["events"] for k, d in kinds.items() if k not in made}
    assert {"mark_price", "open_interest_5m", "taker_ratio_5m"} <= set(context)
    assert sum(context.values()) == int(ctx.replace(",", "")) and context["mark_price"] == 900
    assert {k: d["events"] for k, d in kinds.items() if k in made} == made
    assert main(["data", "ls", "--json", "--store", str(tmp_path / "store")]) == 0
    listed = {d["kind"]: d for d in json.loads(capsys.readouterr().out)}
    assert {k: d["rows"] for k, d in listed.items()} == {**made, **context}
    for k, d in listed.items():
        assert (d["first_ns"], d["last_ns"]) == (kinds[k]["first_ns"], kinds[k]["last_ns"]), k
    facts = out["facts"]
    assert facts["book_events"] == made["book"] and facts["trades"] == made["trade"]
    book = kinds["book"]
    assert facts["duration_s"] == pytest.approx((book["last_ns"] - book["first_ns"]) / 1e9)
    assert 899 <= facts["duration_s"] < 900  # 0.25 h, the last book event on the last 100 ms step
    assert abs(facts["ofi_1s_n"] - 900) <= 2 and abs(facts["ofi_10s_n"] - 90) <= 2
    # the simulator's price moves follow order-flow imbalance (its impact model). Measured on seeds 1-9
    # of 0.25 h: 1 s R^2 of the best level 0.26-0.46, of 5 levels 0.41-0.61, 10 s 5 levels 0.53-0.68
    # (seed 3: 0.36, 0.50, 0.64); the floors sit about 20 % below the lowest seed
    assert facts["ofi_1s_r2_best"] > 0.2
    assert facts["ofi_1s_r2_5level"] > 0.33 and facts["ofi_10s_r2_5level"] > 0.42
    # the 5-level regression nests the best level; longer buckets average out the noise
    assert facts["ofi_1s_r2_5level"] >= facts["ofi_1s_r2_best"] - 1e-12
    assert facts["ofi_10s_r2_5level"] >= facts["ofi_10s_r2_best"] - 1e-12
    assert facts["ofi_10s_r2_5level"] > facts["ofi_1s_r2_5level"]
    assert facts["ofi_1s_r2_5level"] < 0.95  # a relation with noise, not an identity
    assert (tmp_path / "store" / "venue=sim" / "symbol=BTCUSDT" / "kind=book").is_dir()

    # text output: the store listing, the quality table and the facts table
    assert main(["run", "--hours", "0.05", "--store", str(tmp_path / "s2")]) == 0
    text = capsys.readouterr().out
    assert "data quality" in text and "stylized facts" in text and "1 s OFI R^2 best level" in text
    assert "OK: no threshold crossed" in text
