"""`orderflow models train | ls | evaluate | promote | rollback` end to end (quick configurations)."""

from __future__ import annotations

import json

import pytest

from orderflow.cli import main


@pytest.mark.slow
def test_train_register_evaluate_promote_rollback(tmp_path, capsys):
    store, reg, report = str(tmp_path / "s"), str(tmp_path / "reg"), tmp_path / "report"
    assert main(["data", "simulate", "--hours", "2", "--seed", "9", "--store", store]) == 0
    base = ["models", "train", "sim/BTCUSDT", "--store", store, "--registry", reg, "--quick"]
    assert main([*base, "--members", "expert_lgbm,cnn", "--report", str(report)]) == 0
    assert main([*base, "--members", "expert_rf,lstm"]) == 0
    capsys.readouterr()

    doc = json.loads((report / "report.json").read_text())
    models = {r["model"] for r in doc["folds"]}
    assert models == {"expert_lgbm", "cnn", "ensemble", "baseline_majority", "baseline_logistic_ofi"}
    assert set(doc["metrics"]["baselines"]) == {"baseline_majority", "baseline_logistic_ofi"}
    folds = {r["fold"] for r in doc["folds"]}
    assert len(folds) >= 2 and all(r["n_test"] > 0 for r in doc["folds"])
    assert "out of sample" in (report / "report.html").read_text()

    assert main(["models", "ls", "--registry", reg, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in rows] == ["2", "1"]
    assert rows[1]["members"] == ["expert_lgbm", "cnn"] or "expert_lgbm" in str(rows[1]["members"])

    assert main(["models", "evaluate", "1", "--registry", reg]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert "passed" in verdict and isinstance(verdict["failures"], list)
    # a rule no quick training can meet (more folds beaten than there are folds): a certain refusal
    strict = tmp_path / "strict"
    strict.mkdir()
    (strict / "models.yaml").write_text("models:\n  rule:\n    min_folds_beaten: 50\n")
    assert main(["models", "evaluate", "1", "--registry", reg, "--config", str(strict)]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["passed"] is False and verdict["rule"]["min_folds_beaten"] == 50
    assert any(f.startswith("min_folds_beaten:") and "needs 50" in f for f in verdict["failures"])
    assert main(["models", "promote", "1", "--registry", reg, "--config", str(strict)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("orderflow: promotion of version 1 refused: min_folds_beaten: ") and "\n" not in err
    assert f"of {len(folds)} folds, needs 50" in err
    assert main(["models", "ls", "--registry", reg, "--json"]) == 0
    assert all(r["aliases"] == [] for r in json.loads(capsys.readouterr().out))  # nothing was promoted
    assert main(["models", "promote", "1", "--registry", reg, "--force", "--config", str(strict)]) == 0
    assert main(["models", "promote", "2", "--registry", reg, "--force"]) == 0
    assert main(["models", "rollback", "--registry", reg]) == 0
    assert "rolled back to version 1" in capsys.readouterr().out
    assert main(["models", "ls", "--registry", reg, "--json"]) == 0
    aliases = {r["version"]: r["aliases"] for r in json.loads(capsys.readouterr().out)}
    assert "champion" in aliases["1"] and "champion" not in aliases["2"]


def test_models_bad_input(tmp_path, capsys):
    assert (
        main(
            [
                "models",
                "train",
                "sim/NOPE",
                "--store",
                str(tmp_path),
                "--registry",
                str(tmp_path / "r"),
                "--members",
                "gpt5",
            ]
        )
        == 2
    )
    assert "unknown member(s) ['gpt5']" in capsys.readouterr().err


@pytest.mark.slow
def test_registry_errors_are_clear(tmp_path, capsys):
    reg = str(tmp_path / "reg")
    assert main(["models", "evaluate", "7", "--registry", reg]) == 2
    err = capsys.readouterr().err
    assert "orderflow:" in err and "7" in err
    assert main(["models", "rollback", "--registry", reg]) == 2
