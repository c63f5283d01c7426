"""``orderflow optimize run`` end to end on the simulator: a small study over the cached walk-forward,
resumed from its SQLite storage, with the held-back period asserted unseen during the search."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from orderflow.cli import main
from orderflow.cli import optimize as CO
from orderflow.data.config import SimulatorConfig
from orderflow.data.simulator import simulate
from orderflow.data.store import Store
from orderflow.optimize import objective as OBJ
from orderflow.optimize import study as SD
from orderflow.optimize.space import InvalidPoint, load_space

pytestmark = pytest.mark.slow  # every test here takes seconds (kernels, studies, Ray)

CONFIG = """\
walkforward: {train_hours: 0.5, test_hours: 0.25, min_train_samples: 100}
strategy: {confidence_gate: 0.5, ev_cost_mult: 0.0, quality_gate: 0.5}
models: {members: [expert_lgbm]}
"""
SPACE = """\
study: {holdout_hours: 0.25, min_trades: 1, period_minutes: 1, cscv_blocks: 8, startup_trials: 3}
space:
  strategy.confidence_gate: {low: 0.5, high: 0.9}
  strategy.threshold: {low: 0.05, high: 0.6}
  risk.max_loss_per_trade: {low: 0.01, high: 0.03, log: true}
  execution.entry_style: {choices: [market, passive]}
  execution.passive_ttl_s: {low: 2, high: 30, when: {execution.entry_style: passive}}
"""


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("opt") / "store"
    simulate(SimulatorConfig(hours=1.5, seed=5), Store(root))
    return root


@pytest.mark.timeout(600)
def test_a_study_runs_resumes_and_never_sees_the_held_back_period(sim_store, tmp_path, capsys, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.yaml").write_text(CONFIG)
    (tmp_path / "space.yaml").write_text(SPACE)
    seen: dict[str, list[int]] = {"search": [], "after": []}
    trained: list[tuple[int, int]] = []
    phase = ["before"]
    real_bt, real_search, real_wp = OBJ.run_backtest, SD.search, SD.window_probabilities

    def spy_backtest(market, *a, **k):
        seen["search" if phase[0] == "search" else "after"].append(int(market.b_ts.max()))
        return real_bt(market, *a, **k)

    def spy_search(*a, **k):
        phase[0] = "search"
        try:
            return real_search(*a, **k)
        finally:
            phase[0] = "after"

    def spy_wp(features, ds, *a, **k):  # what the walk-forward trains and scores on
        trained.append((int(features["ts_event"].max()), int(ds.t_touch.max())))
        return real_wp(features, ds, *a, **k)

    monkeypatch.setattr(OBJ, "run_backtest", spy_backtest)
    monkeypatch.setattr(SD, "search", spy_search)
    monkeypatch.setattr(SD, "window_probabilities", spy_wp)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["optimize", "run", "sim/BTCUSDT", "--store", str(sim_store), "--config", str(tmp_path / "cfg"),
            "--space", str(tmp_path / "space.yaml"), "--sampler", "tpe", "--seed", "1", "--quick",
            "--study", "it", "--storage", storage, "--cache", str(tmp_path / "cache"), "--json",
            "--log-level", "WARNING"]  # fmt: skip
    rc = main(
        [*args, "--trials", "10", "--report", str(tmp_path / "rep"), "--registry", str(tmp_path / "reg")]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    s = json.loads(out)
    # logged to MLflow next to the model registry: data hash, revision, seed, space, the judgement
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'reg' / 'mlflow.db'}")
    run = client.get_run(s["mlflow_run"])
    assert run.data.params["data"] == s["data"] and run.data.params["seed"] == "1"
    assert run.data.params["space"] == s["space"] and run.data.tags["code_version"]
    assert run.data.metrics["trials_complete"] == s["trials_complete"]
    assert run.data.metrics["holdout_best"] == pytest.approx(s["holdout_best"])
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"space.yaml", "rep"} <= names
    h0 = s["holdout_start_ns"]
    assert s["search_windows"] == 3 and s["trials_run_now"] == 10 and "computed probabilities" in err
    # the held-back period: no trial's backtest read an event at or after its start ...
    assert seen["search"] and max(seen["search"]) < h0
    # ... and the search's walk-forward trained and scored only rows and labels before it
    (f_max, label_max), (f_hold, _) = trained[0], trained[1]
    assert f_max < h0 and label_max < h0 and f_hold >= h0
    # it was scored once at the end, next to the baseline
    assert s["holdout_looks"] == 1 and max(seen["after"]) >= h0
    assert {"holdout_best", "holdout_baseline", "baseline_search", "pbo", "dsr"} <= set(s)
    assert s["trials_complete"] + s["trials_pruned"] + s["trials_failed"] == 10
    rep = tmp_path / "rep"
    html = (rep / "report.html").read_text()
    pngs = ("history.png", "importance.png", "holdout.png", "pbo.png", "dsr.png", "windows.png", "paths.png")
    for png in pngs:
        assert (rep / png).stat().st_size > 5000 and png in html
    assert "out of sample and after fees" in html
    r = json.loads((rep / "report.json").read_text())
    assert r["holdout"]["looks"] == 1 and r["search"]["baseline"] == pytest.approx(s["baseline_search"])
    paths = r["best_paths"]  # one final return per search window of the best trial, its quantiles
    assert len(paths["final_return"]) == 3 and paths["best_quantiles"]["p5"] <= paths["best_quantiles"]["p95"]
    assert r["search"]["best"] == pytest.approx(s["best_value"])

    # resumed from the storage: four more trials, probabilities from the cache, a second look counted
    trained.clear()
    rc = main([*args, "--trials", "14", "--export", str(tmp_path / "best")])
    out, err = capsys.readouterr()
    if rc == 0:
        s2 = json.loads(out)
        assert (tmp_path / "best" / "config.yaml").is_file()
    else:  # refused: the numbers are in the one-line error, the summary was printed first
        assert rc == 2 and "export refused: the best trial is likely luck" in err
        assert "PBO" in err or "DSR" in err
        s2 = json.loads(out)
    assert "resuming with 10 finished trials, 4 to run" in err and "cached probabilities" in err
    assert s2["trials_run_now"] == 4 and s2["holdout_looks"] == 2
    assert trained == []  # nothing trained again: the held-back windows' probabilities are cached too
    study = SD.open_study("it", storage, load_space(tmp_path / "space.yaml"), "tpe", 1, 14)
    assert SD.finished(study) == 14 and np.all(np.diff([t.number for t in study.trials]) == 1)


SPACE_B = """\
study: {holdout_hours: 0.25, min_trades: 0, period_minutes: 1, cscv_blocks: 8, pruner: none}
space:
  features.zscore_window: {choices: [600, 1200]}
  labels.horizon_s: {choices: [30.0, 60.0]}
  models.expert.lgbm_n_estimators: {choices: [20, 40]}
  strategy.confidence_gate: {low: 0.5, high: 0.9}
"""
KEYS_B = ("features.zscore_window", "labels.horizon_s", "models.expert.lgbm_n_estimators")


@pytest.mark.timeout(900)
def test_feature_label_and_model_keys_retrain_per_point_with_a_cache_and_never_see_the_held_back_period(
    sim_store, tmp_path, capsys, monkeypatch
):
    """Level (b): labels and a model key searched next to a strategy key, in one study. Each distinct
    (labels, model) point trains its windows once; a point seen again, in this run or a resumed one,
    trains nothing; every training reads only rows and labels before the held-back period."""
    from orderflow.optimize import recompute as RC

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.yaml").write_text(CONFIG)
    (tmp_path / "space.yaml").write_text(SPACE_B)
    trained: list[tuple[int, int, int]] = []  # (estimators, last feature row's ts, last label end)
    real = RC.iter_window_probabilities

    def spy(features, ds, models, *a, **k):
        for w in real(features, ds, models, *a, **k):
            trained.append((models.expert.lgbm_n_estimators, int(features["ts_event"].max()),
                            int(ds.t_touch.max())))  # fmt: skip
            yield w

    monkeypatch.setattr(RC, "iter_window_probabilities", spy)
    built: list[int] = []
    real_fm = CO.feature_matrix

    def spy_fm(cfg, *a, **k):
        built.append(cfg.features.zscore_window)
        return real_fm(cfg, *a, **k)

    monkeypatch.setattr(CO, "feature_matrix", spy_fm)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["optimize", "run", "sim/BTCUSDT", "--store", str(sim_store), "--config", str(tmp_path / "cfg"),
            "--space", str(tmp_path / "space.yaml"), "--sampler", "random", "--seed", "3", "--quick",
            "--study", "b", "--storage", storage, "--cache", str(tmp_path / "cache"), "--json",
            "--log-level", "WARNING"]  # fmt: skip
    rc = main([*args, "--trials", "8"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    s = json.loads(out)
    assert "level (b)" in err and s["trials_complete"] == 8, s
    h0 = s["holdout_start_ns"]
    study = SD.open_study("b", storage, load_space(tmp_path / "space.yaml"), "random", 3, 8)
    points = {tuple(t.params[k] for k in KEYS_B) for t in study.trials}
    # the base (z-score window 1200, horizon 60, the quick members' 60 estimators) is never drawn
    assert len(points) >= 3 and len(points) < 8, points  # some points are drawn twice
    # each point trained its 3 search windows once, with its own model key, before the held-back start
    assert len(trained) == 3 * len(points) and {e for e, _, _ in trained} == {p[2] for p in points}
    assert all(f < h0 and lab < h0 for _, f, lab in trained)
    # the features were built for the base and once for the other z-score window (kept in memory)
    assert sorted(built) == sorted([1200, *({p[0] for p in points} - {1200})])
    # resumed: every point's probabilities come from the disk cache
    trained.clear()
    rc = main([*args, "--trials", "12"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    study = SD.open_study("b", storage, load_space(tmp_path / "space.yaml"), "random", 3, 12)
    later = {tuple(t.params[k] for k in KEYS_B) for t in study.trials[8:]}
    assert len(trained) == 3 * len(later - points)


@pytest.mark.timeout(600)
def test_a_level_b_point_trains_its_windows_only_as_far_as_its_backtest_reads(
    sim_store, tmp_path, monkeypatch
):
    """What lets a pruner save training: a point's windows are trained as its backtest reaches them. A
    trial stopped after its first window trained one; the next trial of the same point trains the rest
    only, and the finished point is written to the cache (a new process trains nothing)."""
    from orderflow.backtest.engine import Market
    from orderflow.config import load_config
    from orderflow.core.instruments import Instrument
    from orderflow.features.batch import build_features
    from orderflow.models.train import labelled_dataset
    from orderflow.optimize import recompute as RC

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.yaml").write_text(CONFIG)
    cfg = load_config(tmp_path / "cfg")
    store = Store(sim_store)
    raw = store.instrument("sim", "BTCUSDT")
    inst = raw if isinstance(raw, Instrument) else Instrument(**raw)

    def build(c):
        return build_features(
            store, "sim", "BTCUSDT", c.features.model_copy(update={"tick_size": inst.tick_size})
        )

    book = store.read("sim", "BTCUSDT", "book")
    market = Market.from_frames("sim", "BTCUSDT", book, store.read("sim", "BTCUSDT", "trade"))
    top = book[["ts_event", "bid_px_1", "ask_px_1"]]
    models = cfg.models.quick()
    feats = build(cfg)
    ds, mid = labelled_dataset(feats, top, cfg.labels, models.sample_every_s)
    space = load_space_text(tmp_path, SPACE_B)
    prep = SD.prepare(
        cfg, models, market, feats, ds, mid, inst, space.settings, tmp_path / "cache", lambda s: None
    )
    trained: list[int] = []
    real = RC.iter_window_probabilities

    def spy(*a, **k):
        for w in real(*a, **k):
            trained.append(w.window)
            yield w

    monkeypatch.setattr(RC, "iter_window_probabilities", spy)
    rc = RC.Recompute(cfg, prep, build, top, tmp_path / "cache", lambda s: None)
    point = {"labels.horizon_s": 30.0, "models.expert.lgbm_n_estimators": 20}
    data = rc.search_data(point)
    assert isinstance(data, RC.LazyEvalData) and trained == []  # nothing trained before it is read
    first = next(iter(data.items()))  # a trial pruned after its first window
    assert trained == [0] and first[0].window == 0 and data.n_windows == 3
    again = rc.search_data(point)
    assert again is data and [w.window for w, _, _ in again.items()] == [0, 1, 2] and trained == [0, 1, 2]
    assert data.complete and data.n_windows == 3
    # written to the cache once complete: a fresh process's point loads it and trains nothing
    fresh = RC.Recompute(cfg, prep, build, top, tmp_path / "cache", lambda s: None)
    loaded = fresh.search_data(point)
    assert not isinstance(loaded, RC.LazyEvalData) and trained == [0, 1, 2]
    np.testing.assert_array_equal(loaded.windows[2].probs, data.windows[2].probs)
    # the base's own point is the base's prepared data
    assert rc.search_data({}) is prep.search
    # a point that leaves no window enough training samples fails as a point (the study goes on)
    sparse = rc.search_data({"models.sample_every_s": 600.0})
    with pytest.raises(InvalidPoint, match="every walk-forward window of this point was skipped"):
        list(sparse.items())


def load_space_text(tmp_path: Path, text: str):
    (tmp_path / "space.yaml").write_text(text)
    return load_space(tmp_path / "space.yaml")


def test_bad_inputs_are_one_line_errors(sim_store, tmp_path, capsys):
    (tmp_path / "space.yaml").write_text("space:\n  strategy.confidence_gat: {low: 0.5, high: 0.9}\n")
    rc = main(["optimize", "run", "sim/BTCUSDT", "--store", str(sim_store), "--space",
               str(tmp_path / "space.yaml"), "--trials", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "strategy.confidence_gat: unknown key" in err
    (tmp_path / "space.yaml").write_text("space:\n  strategy.confidence_gate: {low: 0.5, high: 0.9}\n")
    rc = main(["optimize", "run", "sim/BTCUSDT", "--store", str(sim_store), "--space",
               str(tmp_path / "space.yaml"), "--trials", "2", "--quick",
               "--log-level", "WARNING"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "hold no walk-forward test window" in err and len(err.strip().splitlines()) == 1


PG = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"


@pytest.fixture()
def pg_database():
    """A fresh PostgreSQL database (trust auth at 127.0.0.1:5432), dropped at the end."""
    import os

    psycopg = pytest.importorskip("psycopg")
    name = f"orderflow_optimize_{os.getpid()}"
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True)
    except psycopg.OperationalError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required when CI=true: {e}")
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {e}")
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.execute(f"CREATE DATABASE {name}")
    yield PG.format(db=name)
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.mark.timeout(900)
def test_two_workers_share_one_study_on_postgresql(sim_store, tmp_path, pg_database, capsys):
    import os
    import subprocess
    import sys

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.yaml").write_text(CONFIG)
    (tmp_path / "space.yaml").write_text(SPACE)
    common = ["sim/BTCUSDT", "--store", str(sim_store), "--config", str(tmp_path / "cfg"), "--space",
              str(tmp_path / "space.yaml"), "--quick", "--study", "pg", "--storage", pg_database, "--cache",
              str(tmp_path / "cache"), "--seed", "3", "--log-level", "WARNING"]  # fmt: skip
    # the study created and the probabilities cached by one run, then two workers on it at once
    assert main(["optimize", "run", *common, "--trials", "2", "--json"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    cmd = [sys.executable, "-m", "orderflow.cli", "optimize", "worker", *common, "--trials", "40"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=800) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert "cached probabilities" in out
    joined = [int(re.search(r"\((\d+) run by this worker", out).group(1)) for out, _ in outs]
    assert all(j > 0 for j in joined), joined  # both workers ran trials
    study = SD.open_study("pg", pg_database, load_space(tmp_path / "space.yaml"), "tpe", 3, 40)
    trials = study.get_trials()
    assert 40 <= len(trials) <= 41  # a worker may start one trial while the other finishes the 40th
    assert [t.number for t in trials] == list(range(len(trials)))  # none lost, none duplicated
    assert all(t.state.is_finished() for t in trials)
    assert sum(joined) + 2 == len(trials)
    # the workers drew different points; a retry of a trial failed for a stale heartbeat (possible on a
    # loaded machine) runs the same point again, so retries do not count
    states = [(t.number, t.state.name, t.system_attrs.get("failed_trial")) for t in trials]
    fresh = [t for t in trials if "failed_trial" not in t.system_attrs]
    assert len({tuple(sorted(t.params.items())) for t in fresh}) == len(fresh), states
    failed = [t.number for t in trials if t.state.name == "FAIL"]
    assert sorted(t.system_attrs["failed_trial"] for t in trials if t not in fresh) == failed, states


@pytest.mark.timeout(900)
def test_a_worker_killed_mid_trial_leaves_it_failed_and_retried(sim_store, tmp_path, pg_database, capsys):
    """SIGKILL one of two workers while both are inside a trial: with a 1 s heartbeat the survivor marks
    the silent trial failed after 3 s, runs its retry (the same point) and completes the study."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from optuna.trial import TrialState

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.yaml").write_text(CONFIG)
    (tmp_path / "space.yaml").write_text(
        SPACE.replace("startup_trials: 3}", "startup_trials: 3, heartbeat_s: 1}")
    )
    common = ["sim/BTCUSDT", "--store", str(sim_store), "--config", str(tmp_path / "cfg"), "--space",
              str(tmp_path / "space.yaml"), "--quick", "--study", "kill", "--storage", pg_database, "--cache",
              str(tmp_path / "cache"), "--seed", "5", "--log-level", "WARNING"]  # fmt: skip
    assert main(["optimize", "run", *common, "--trials", "2", "--json"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    space = load_space(tmp_path / "space.yaml")
    study = SD.open_study("kill", pg_database, space, "tpe", 5, 30)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    cmd = [sys.executable, "-m", "orderflow.cli", "optimize", "worker", *common, "--trials", "40"]
    victim, survivor = (subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True) for _ in range(2))  # fmt: skip
    deadline = time.monotonic() + 600
    while len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) < 2:  # both inside a trial
        assert time.monotonic() < deadline and victim.poll() is None and survivor.poll() is None
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    out, _ = survivor.communicate(timeout=600)
    assert survivor.returncode == 0 and "run by this worker" in out
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(len(trials))) and len(trials) >= 30
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1, [(t.number, t.state.name, t.system_attrs) for t in trials]
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retried) == 1 and retried[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    # the retry runs the same point (the keys sampled before the kill, the rest sampled anew)
    assert failed[0].params.items() <= retried[0].params.items()
