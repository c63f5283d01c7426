"""The study report: every plot and file is written, with trials that kept their out-of-sample record and
with none (a study of failed or pruned trials still gets a report that says so)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orderflow.optimize import study as SD
from orderflow.optimize.objective import Evaluation
from orderflow.optimize.report import trials_frame, write_report
from orderflow.optimize.space import parse_space

PNGS = ("history.png", "importance.png", "parallel.png", "holdout.png", "pbo.png", "dsr.png", "windows.png")


def _evaluation(rng, n_windows=3) -> Evaluation:
    wins = [{"window": k, "start_ns": k, "end_ns": k + 1, "trades": 7, "net_pnl": float(rng.normal()),
             "fees": 1.0, "sharpe": float(rng.normal()), "sortino": 0.0, "calmar": 0.0, "max_drawdown": 0.01}
            for k in range(n_windows)]  # fmt: skip
    return Evaluation(wins, rng.normal(0, 1e-3, 64), 21, sum(w["net_pnl"] for w in wins), 0.01,
                      {"sharpe": [w["sharpe"] for w in wins], "sortino": [0.0] * n_windows,
                       "calmar": [0.0] * n_windows, "net_pnl": [w["net_pnl"] for w in wins]})  # fmt: skip


@pytest.mark.parametrize("with_records", [True, False])
def test_the_report_writes_every_plot_and_file(tmp_path, with_records):
    keys = {
        "strategy.confidence_gate": {"low": 0.5, "high": 0.9},
        "strategy.threshold": {"low": 0.1, "high": 0.5},
    }
    space = parse_space({"study": {"cscv_blocks": 8, "pruner": "none"}, "space": keys})
    study = SD.open_study("r", str(tmp_path / "j.log"), space, "random", 0, 12)
    rng = np.random.default_rng(0)

    def objective(trial):
        v = space.sample(trial)
        ev = _evaluation(rng)
        if with_records:
            trial.set_user_attr("eval", {"values": v, "windows": ev.windows, "trades": ev.trades,
                                         "net_pnl": ev.net_pnl, "returns": ev.returns.tolist()})  # fmt: skip
            trial.set_user_attr("constraint", [-1.0])
        return float(ev.score(space.settings))

    SD.run_study(study, objective, 12)
    analysis = SD.analyse(study, space.settings)
    assert (analysis.best is not None) == with_records
    hold = SD.Holdout(_evaluation(rng), _evaluation(rng), 1, 1) if with_records else None
    out = write_report(
        tmp_path / "rep", study, analysis, space.settings, _evaluation(rng), hold, {"study": "r"}
    )
    html = out.read_text()
    for png in PNGS:
        assert (tmp_path / "rep" / png).stat().st_size > 3000 and png in html
    assert "out of sample and after fees" in html
    summary = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert (summary["pbo"] is not None) == with_records and (summary["holdout"] is not None) == with_records
    frame = trials_frame(study)
    assert len(frame) == 12 and "param:strategy.threshold" in frame
    if with_records:
        assert "w0:net_pnl" in frame and summary["verdict"]
