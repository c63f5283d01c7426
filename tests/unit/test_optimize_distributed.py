"""The ask-and-tell runner of :mod:`orderflow.optimize.distributed` on a local Ray (2 CPUs), over a
synthetic score: the cap and the resume, refused points and a score that raises, Ctrl-C, and the points of
a seeded random sampler equal to a sequential run's. The walk-forward score on a two-node cluster is
``tests/integration/test_optimize_ray.py``."""

from __future__ import annotations

import math
import os
import signal
import sys
import time

import pytest
from optuna.trial import TrialState

from orderflow.optimize import distributed as DIST
from orderflow.optimize import study as SD
from orderflow.optimize.space import InvalidPoint, load_space
from support.needs import need_ray

pytestmark = pytest.mark.slow  # every test here takes seconds (kernels, studies, Ray)

SPACE = """\
study: {objective: sharpe}
space:
  strategy.confidence_gate: {low: 0.5, high: 0.9}
  strategy.take_profit_r: {low: 0.5, high: 2.0}
  execution.entry_style: {choices: [market, passive]}
  execution.passive_ttl_s: {low: 2, high: 30, when: {execution.entry_style: passive}}
"""


def score(shared, values):
    """The shared object is a dict (sent once with ray.put); a gate above ``refuse_above`` is refused as
    the config models refuse a point; ``raise_above`` stands for a bug in the scoring."""
    gate = values["strategy.confidence_gate"]
    if gate > shared["raise_above"]:
        raise ZeroDivisionError("a bug in the scoring")
    if gate > shared["refuse_above"]:
        raise InvalidPoint(f"strategy.confidence_gate: {gate:.3f} refused")
    time.sleep(shared["sleep_s"])
    value = -((gate - 0.7) ** 2) - (values["strategy.take_profit_r"] - 1.3) ** 2
    return value, {"eval": {"values": values, "pid": os.getpid()}, "constraint": [0.0]}


SHARED = {"refuse_above": 2.0, "raise_above": 2.0, "sleep_s": 0.0}


@pytest.fixture(scope="module")
def local_ray():
    need_ray()
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
    with DIST.connect(num_cpus=2) as cluster:
        yield cluster


@pytest.fixture()
def space(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    return load_space(tmp_path / "space.yaml")


def _study(tmp_path, space, name="s", seed=3, sampler="random"):
    return SD.open_study(name, SD.default_storage(tmp_path), space, sampler, seed, 100)


def test_the_cap_the_resume_and_the_pruner_line(local_ray, tmp_path, space):
    assert local_ray.cpus == 2 and local_ray.nodes == 1
    said, told = [], []
    study = _study(tmp_path, space)
    cb = lambda st, t: told.append(t.number)  # noqa: E731
    assert DIST.run_trials(study, space, score, SHARED, 6, [cb], say=said.append) == 6
    assert SD.finished(study) == 6 and sorted(told) == list(range(6))
    assert said == ["ray: the median pruner is not used (a remote trial runs all its windows)"]
    # resumed (a new process would open the study again): only the rest runs, numbered on
    study = _study(tmp_path, space)
    assert DIST.run_trials(study, space, score, {**SHARED, "sleep_s": 0.2}, 10, say=said.append) == 4
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(10)) and all(t.state.name == "COMPLETE" for t in trials)
    assert all(t.user_attrs["eval"]["values"] == t.params for t in trials)
    assert all(t.user_attrs["constraint"] == [0.0] and t.user_attrs["node"]["id"] for t in trials)
    assert len({t.user_attrs["eval"]["pid"] for t in trials}) == 2  # two worker processes shared them
    assert DIST.run_trials(study, space, score, SHARED, 10, say=said.append) == 0
    assert len(study.get_trials()) == 10


def test_a_refused_point_fails_with_its_reason_and_a_raising_score_stops(local_ray, tmp_path, space):
    study = _study(tmp_path, space)
    DIST.run_trials(study, space, score, {**SHARED, "refuse_above": 0.7}, 12, say=lambda s: None)
    trials = study.get_trials()
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(trials) == 12 and failed and len(failed) < 12
    for t in failed:
        assert t.params["strategy.confidence_gate"] > 0.7 and "eval" not in t.user_attrs
        assert t.system_attrs["fail_reason"].startswith("strategy.confidence_gate: ")
    assert all(t.params["strategy.confidence_gate"] <= 0.7 for t in trials if t not in failed)
    # a score that raises: the trial fails with the error, the error reaches the driver, nothing runs
    study = _study(tmp_path, space, name="raises")
    with pytest.raises(ZeroDivisionError, match="a bug in the scoring"):
        DIST.run_trials(study, space, score, {**SHARED, "raise_above": 0.6}, 40, say=lambda s: None)
    states = {t.state.name for t in study.get_trials()}
    assert "RUNNING" not in states and "FAIL" in states
    bad = [t for t in study.get_trials() if t.system_attrs.get("fail_reason", "").startswith("ZeroDivision")]
    assert bad and all(t.params["strategy.confidence_gate"] > 0.6 for t in bad)


def test_ctrl_c_cancels_the_tasks_in_flight_and_leaves_the_study_resumable(local_ray, tmp_path, space):
    study = _study(tmp_path, space)
    slow = {**SHARED, "sleep_s": 1.0}

    running, told = [], []

    def interrupt(st, t):  # a real SIGINT in the driver, as Ctrl-C sends, once three trials are told
        told.append(t.number)  # (in the order they finish, which need not be their numbers' order)
        if len(told) == 3:
            # the trials in flight have the driver's heartbeat: a shared storage's workers leave them be
            running.extend(x.number for x in st.get_trials(states=(TrialState.RUNNING,)))
            assert not SD.silent_trials(st) and not SD._unattended(st)
            signal.raise_signal(signal.SIGINT)

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        DIST.run_trials(study, space, score, slow, 20, [interrupt], say=lambda s: None)
    assert time.monotonic() - t0 < 15  # the remaining 17 trials (9 s on 2 CPUs at best) did not run
    trials = study.get_trials()
    assert running and all(trials[n].state.name == "FAIL" for n in running)  # the ones in flight failed
    assert {t.state.name for t in trials} <= {"COMPLETE", "FAIL"}
    assert all(trials[n].state.name == "COMPLETE" for n in told)
    assert sum(t.state.name == "COMPLETE" for t in trials) >= 3
    study = _study(tmp_path, space)
    DIST.run_trials(study, space, score, SHARED, 20, say=lambda s: None)
    assert SD.finished(study) == 20 and [t.number for t in study.get_trials()] == list(range(20))


def test_a_seeded_random_sampler_asks_the_points_of_a_sequential_run(local_ray, tmp_path, space):
    seq = _study(tmp_path, space, name="seq", seed=7)
    SD.run_study(seq, lambda trial: score(SHARED, space.sample(trial))[0], 12)
    ray = _study(tmp_path, space, name="ray", seed=7)
    DIST.run_trials(ray, space, score, SHARED, 12, say=lambda s: None)
    a, b = seq.get_trials(), ray.get_trials()
    assert [t.params for t in a] == [t.params for t in b]  # in ask order, trial by trial
    assert all(math.isclose(x.value, y.value) for x, y in zip(a, b, strict=True))


def test_without_ray_the_options_stop_in_one_line_and_orderflow_still_imports(tmp_path):
    """A Python where ``import ray`` fails (``sys.modules['ray'] = None``), as without the scale extra."""
    import subprocess
    from pathlib import Path

    (tmp_path / "space.yaml").write_text(SPACE)
    src = Path(__file__).resolve().parents[2] / "src"
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import orderflow.optimize.distributed, orderflow.optimize.study\n"
        "from orderflow.cli import main\n"
        f"sys.exit(main(['optimize', 'run', 'sim/BTCUSDT', '--space', {str(tmp_path / 'space.yaml')!r}, "
        "sys.argv[1], *sys.argv[2:]]))"
    )
    env = {**os.environ, "PYTHONPATH": str(src)}
    for opt in (["--ray"], ["--ray-cpus", "2"]):
        r = subprocess.run([sys.executable, "-c", code, *opt], env=env, capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip() == "orderflow: --ray needs Ray: pip install 'orderflow[scale]'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]  # refused before anything ran
