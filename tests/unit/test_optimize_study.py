"""Studies through the real machinery (a space file, Optuna's samplers, an SQLite storage) on a synthetic
objective with a known optimum; resume from storage; the export refusal; the held-back split."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from orderflow.optimize import study as SD
from orderflow.optimize.space import SearchSpace, StudySettings, load_space

SPACE = """\
study: {objective: sharpe, pruner: none}
space:
  strategy.confidence_gate: {low: 0.5, high: 0.9}
  strategy.take_profit_r: {low: 0.5, high: 2.0}
  risk.max_loss_per_trade: {low: 0.01, high: 0.03, log: true}
"""
OPTIMUM = {"strategy.confidence_gate": 0.72, "strategy.take_profit_r": 1.3, "risk.max_loss_per_trade": 0.017}


def distance(values: dict[str, float]) -> float:
    """Euclidean distance to OPTIMUM with each key scaled to its range (log for the log key)."""
    a = (values["strategy.confidence_gate"] - 0.72) / 0.4
    b = (values["strategy.take_profit_r"] - 1.3) / 1.5
    c = (math.log(values["risk.max_loss_per_trade"]) - math.log(0.017)) / math.log(3.0)
    return math.sqrt(a * a + b * b + c * c)


def synthetic(space: SearchSpace):
    def objective(trial):
        v = space.sample(trial)
        return -(distance(v) ** 2)

    return objective


@pytest.fixture()
def space(tmp_path) -> SearchSpace:
    (tmp_path / "space.yaml").write_text(SPACE)
    return load_space(tmp_path / "space.yaml")


def best_distance(sampler: str, space: SearchSpace, storage: str, n: int, seed: int) -> float:
    study = SD.open_study(f"{sampler}-{seed}", storage, space, sampler, seed, n)
    SD.run_study(study, synthetic(space), n)
    assert SD.finished(study) == n
    return distance(study.best_trial.params)


@pytest.mark.parametrize(("sampler", "budget", "tol"), [("tpe", 60, 0.12), ("cmaes", 60, 0.12),
                                                        ("nsga2", 120, 0.15)])  # fmt: skip
def test_a_sampler_finds_a_planted_optimum_and_random_does_worse(sampler, budget, tol, space, tmp_path):
    """Each on a journal file (an SQLite file costs about 0.1 s a trial here, measured; the resume test
    below uses the SQLite default)."""
    storage = str(tmp_path / "journal.log")
    found = [best_distance(sampler, space, storage, budget, seed) for seed in (1, 2)]
    rand = [best_distance("random", space, storage, budget, seed) for seed in (1, 2)]
    assert max(found) < tol, found
    assert np.mean(found) < np.mean(rand), (found, rand)


def test_a_study_resumes_from_its_storage_with_new_points(space, tmp_path):
    storage = SD.default_storage(tmp_path)
    first = SD.open_study("resume", storage, space, "random", 7, 10)
    assert SD.run_study(first, synthetic(space), 10) == 10
    again = SD.open_study("resume", storage, space, "random", 7, 25)  # a new process would do the same
    assert SD.finished(again) == 10
    assert SD.run_study(again, synthetic(space), 25) == 15
    trials = again.get_trials()
    assert len(trials) == 25 and [t.number for t in trials] == list(range(25))
    points = {tuple(sorted(t.params.items())) for t in trials}
    assert len(points) == 25  # the resumed random sampler drew new points, not the first ten again
    assert SD.run_study(SD.open_study("resume", storage, space, "random", 7, 25), synthetic(space), 25) == 0


def test_a_study_refuses_another_space_or_other_data(space, tmp_path):
    storage = SD.default_storage(tmp_path)
    SD.open_study("s", storage, space, "tpe", 1, 5, data_key="abc")
    other = SearchSpace(space.params[:2], space.settings)
    with pytest.raises(SD.StudyError, match=r"--study s: it was started with another space"):
        SD.open_study("s", storage, other, "tpe", 1, 5, data_key="abc")
    with pytest.raises(SD.StudyError, match=r"started on other data"):
        SD.open_study("s", storage, space, "tpe", 1, 5, data_key="xyz")
    with pytest.raises(SD.StudyError, match=r"cmaes optimises one objective"):
        SD.make_sampler("cmaes", 1, 10, multi=True)


def test_a_bad_storage_url_is_one_line():
    with pytest.raises(SD.StudyError, match=r"^--storage nosuch://x: ") as e:
        SD.make_storage("nosuch://x")
    assert "\n" not in str(e.value)


def test_a_journal_file_storage_holds_a_study(space, tmp_path):
    storage = str(tmp_path / "journal.log")
    study = SD.open_study("j", storage, space, "random", 0, 5)
    SD.run_study(study, synthetic(space), 5)
    assert SD.finished(SD.open_study("j", storage, space, "random", 0, 5)) == 5


class _Trial:
    def __init__(self, number, value, returns, trades=10):
        from optuna.trial import TrialState

        self.number, self.values, self.state = number, [value], TrialState.COMPLETE
        self.params = {"strategy.confidence_gate": 0.6}
        self.user_attrs = {"eval": {"returns": list(returns), "values": self.params, "trades": trades},
                           "constraint": [0.0 if trades >= 5 else 5.0 - trades]}  # fmt: skip


class _Study:
    def __init__(self, trials):
        self.trials, self.directions = trials, ["maximize"]

    def get_trials(self, deepcopy=False):
        return self.trials


def test_export_is_refused_with_the_numbers_when_the_best_is_likely_luck(tmp_path):
    from orderflow.config import Config, load_config

    rng = np.random.default_rng(0)
    noise = [_Trial(i, float(v), rng.normal(0, 1e-3, 320)) for i, v in enumerate(rng.normal(size=30))]
    settings = StudySettings()
    a = SD.analyse(_Study(noise), settings)
    assert a.best is not None and a.pbo is not None and a.dsr is not None
    why = SD.verdict(a, settings)
    assert why is not None and "DSR" in why
    with pytest.raises(
        SD.StudyError, match=r"export refused: the best trial is likely luck \(.*DSR 0\.\d{3} < 0\.95"
    ):
        SD.export_config(tmp_path / "out", Config(), a.best_values, a, settings)
    assert not (tmp_path / "out").exists()
    path = SD.export_config(tmp_path / "out", Config(), a.best_values, a, settings, force=True)
    assert "exported with --force" in path.read_text()
    assert load_config(tmp_path / "out").strategy.confidence_gate == 0.6  # a --config directory


def test_an_infeasible_trial_is_never_the_best():
    few = _Trial(0, 99.0, np.linspace(-1, 1, 40), trades=1)
    ok = _Trial(1, 1.0, np.linspace(1, -1, 40) ** 3)
    ok2 = _Trial(2, 0.5, np.sin(np.arange(40)))
    a = SD.analyse(_Study([few, ok, ok2]), StudySettings(cscv_blocks=4))
    assert a.best is ok and a.feasible == 2 and a.complete == 3


def test_the_held_back_period_is_cut_from_the_end():
    h = 3_600_000_000_000
    s = StudySettings(holdout_fraction=0.25)
    assert SD.holdout_start(0, 8 * h, s) == 6 * h
    assert SD.holdout_start(0, 8 * h, StudySettings(holdout_hours=1.0)) == 7 * h
    assert SD.holdout_start(0, 8 * h, StudySettings(holdout_fraction=0.0)) == 8 * h + 1  # none
    with pytest.raises(SD.StudyError, match="is the whole data"):
        SD.holdout_start(0, 8 * h, StudySettings(holdout_hours=9.0))
    assert SD.holdout_windows(6 * h, 8 * h, 1.0) == [(6 * h, 7 * h), (7 * h, 8 * h + 1)]
    assert SD.holdout_windows(0, int(4.8 * h), 4.0) == [(0, int(4.8 * h) + 1)]  # 0.8 h joins the window
    assert SD.holdout_windows(0, 7 * h, 4.0) == [(0, 4 * h), (4 * h, 7 * h + 1)]  # 3 h is a window


def test_the_example_space_opens_a_study(tmp_path):
    space = load_space(Path(__file__).resolve().parents[2] / "config" / "optimize" / "space.yaml")
    study = SD.open_study("example", SD.default_storage(tmp_path), space, "tpe", 0, 10)
    assert study.user_attrs["keys"] == space.keys
