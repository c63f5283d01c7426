"""``orderflow optimize run --ray-address`` on a two-node Ray cluster started on this machine: the trials of
a seeded random sampler are the sequential run's points, with the same stored figures, and the tasks ran
on both nodes.

The nodes are ``ray start --block`` processes, each the leader of its own process group, stopped by
that group's id at the end (``ray stop`` would stop every Ray process on the machine). Token
authentication is off (``RAY_AUTH_MODE=disabled``): the cluster listens on this machine only for the
test's minute.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_optimize_run import CONFIG, KEYS_B, SPACE, SPACE_B, sim_store  # noqa: F401 - its store fixture

from orderflow.cli import main
from orderflow.optimize import study as SD
from orderflow.optimize.space import load_space
from support.needs import need_ray

SRC = Path(__file__).resolve().parents[2] / "src"
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    code = (
        f"import logging, ray; ray.init(address={address!r}, logging_level=logging.ERROR); "
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return int(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else 0


def _stop(p: subprocess.Popen) -> None:
    """SIGKILL the node's process group (a test cluster has nothing to drain) and wait until it is gone."""
    deadline = time.monotonic() + 30
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        while time.monotonic() < deadline:
            os.killpg(p.pid, 0)  # raises once no process of the group is left
            time.sleep(0.2)


@pytest.fixture(scope="module")
def two_nodes():
    """A head and a worker node, one CPU each, the head's GCS on a free port of 127.0.0.1."""
    need_ray()
    port = _free_port()
    address = f"127.0.0.1:{port}"
    # the workers import the orderflow of this checkout; short temp dirs (Ray's socket paths are limited)
    env = {**os.environ, "PYTHONPATH": str(SRC), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    temp = [tempfile.mkdtemp(prefix="ofray"), tempfile.mkdtemp(prefix="ofray")]
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    nodes: list[subprocess.Popen] = []
    try:
        for i, extra in enumerate(
            (["--head", "--port", str(port), "--include-dashboard=false"], ["--address", address])
        ):
            cmd = [str(RAY), "start", *extra, *common, "--temp-dir", temp[i]]
            log = open(Path(temp[i]) / "start.log", "w")  # noqa: SIM115 - the node's lifetime
            nodes.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))  # fmt: skip
            deadline = time.monotonic() + 90
            while _alive_nodes(address, env) < i + 1:
                logs = (Path(temp[i]) / "start.log").read_text()
                assert nodes[-1].poll() is None and time.monotonic() < deadline, logs[-3000:]
                time.sleep(1)
        assert _alive_nodes(address, env) == 2
        yield address, env
    finally:
        for p in reversed(nodes):
            _stop(p)
        for d in temp:
            shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_sweep_on_two_ray_nodes_evaluates_the_sequential_points(sim_store, tmp_path, two_nodes, capsys):  # noqa: F811
    address, env = two_nodes
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.yaml").write_text(CONFIG)
    (tmp_path / "space.yaml").write_text(SPACE)
    common = ["sim/BTCUSDT", "--store", str(sim_store), "--config", str(tmp_path / "cfg"), "--space",
              str(tmp_path / "space.yaml"), "--quick", "--sampler", "random", "--seed", "7", "--trials", "8",
              "--cache", str(tmp_path / "cache"), "--json", "--log-level", "WARNING"]  # fmt: skip
    seq_db, ray_db = f"sqlite:///{tmp_path / 'seq.db'}", f"sqlite:///{tmp_path / 'ray.db'}"
    # the sequential run (it computes the probabilities; the Ray run's driver reads them from the cache)
    assert main(["optimize", "run", *common, "--study", "seq", "--storage", seq_db]) == 0
    capsys.readouterr()
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "orderflow.cli", "optimize", "run", *common, "--study", "ray",
           "--storage", ray_db, "--ray-address", address]  # fmt: skip
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=500)
    assert r.returncode == 0, r.stderr[-3000:]
    took = time.monotonic() - t0
    s = json.loads(r.stdout)  # nothing but the summary on stdout (the workers' output stays theirs)
    assert s["trials_run_now"] == 8 and s["trials_complete"] == 8, s
    assert f"ray: the cluster at {address}, 2 node(s), 2 CPUs" in r.stderr
    assert "ray: the median pruner is not used" in r.stderr and "cached probabilities" in r.stderr

    space = load_space(tmp_path / "space.yaml")
    seq = SD.open_study("seq", seq_db, space, "random", 7, 8).get_trials()
    ray = SD.open_study("ray", ray_db, space, "random", 7, 8).get_trials()
    assert len(seq) == len(ray) == 8 and all(t.state.name == "COMPLETE" for t in ray)
    points = lambda trials: {tuple(sorted(t.params.items())) for t in trials}  # noqa: E731
    assert points(seq) == points(ray) and len(points(ray)) == 8
    # the same figures stored for a point, where the sequential run did not prune it
    by_point = {tuple(sorted(t.params.items())): t for t in ray}
    complete = [t for t in seq if t.state.name == "COMPLETE"]
    assert complete
    for t in complete:
        twin = by_point[tuple(sorted(t.params.items()))]
        assert twin.user_attrs["eval"] == t.user_attrs["eval"] and twin.values == t.values
        assert twin.user_attrs["constraint"] == t.user_attrs["constraint"]
    assert all({"eval", "constraint", "node"} <= set(t.user_attrs) for t in ray)
    nodes = {t.user_attrs["node"]["id"] for t in ray}
    assert len(nodes) == 2, [t.user_attrs["node"] for t in ray]  # the tasks ran on both nodes
    print(f"8 trials on 2 Ray nodes in {took:.1f} s (the driver's start and held-back look included)")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_level_b_points_train_on_the_ray_workers_as_they_do_in_sequence(
    sim_store,  # noqa: F811
    tmp_path,
    two_nodes,
    capsys,
):
    """A space with feature, label and model keys on the two-node cluster: each worker rebuilds the
    search's inputs from the store once and trains the points it is sent; the figures equal the
    sequential run's, point for point (separate caches: nothing trained in one run is read by the
    other)."""
    address, env = two_nodes
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.yaml").write_text(CONFIG)
    (tmp_path / "space.yaml").write_text(SPACE_B)
    common = ["sim/BTCUSDT", "--store", str(sim_store), "--config", str(tmp_path / "cfg"), "--space",
              str(tmp_path / "space.yaml"), "--quick", "--sampler", "random", "--seed", "5", "--trials", "6",
              "--json", "--log-level", "WARNING", "--no-mlflow"]  # fmt: skip
    seq_db, ray_db = f"sqlite:///{tmp_path / 'seq.db'}", f"sqlite:///{tmp_path / 'ray.db'}"
    assert main(["optimize", "run", *common, "--study", "seq", "--storage", seq_db,
                 "--cache", str(tmp_path / "c1")]) == 0  # fmt: skip
    capsys.readouterr()
    cmd = [sys.executable, "-m", "orderflow.cli", "optimize", "run", *common, "--study", "ray",
           "--storage", ray_db, "--cache", str(tmp_path / "c2"), "--ray-address", address]  # fmt: skip
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=500)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "level (b)" in r.stderr and json.loads(r.stdout)["trials_complete"] == 6
    space = load_space(tmp_path / "space.yaml")
    seq = SD.open_study("seq", seq_db, space, "random", 5, 6).get_trials()
    ray = SD.open_study("ray", ray_db, space, "random", 5, 6).get_trials()
    by_point = {tuple(sorted(t.params.items())): t for t in ray}
    assert set(by_point) == {tuple(sorted(t.params.items())) for t in seq}
    for t in seq:
        twin = by_point[tuple(sorted(t.params.items()))]
        assert twin.values == pytest.approx(t.values, rel=1e-9, abs=1e-12)
        assert twin.user_attrs["eval"]["trades"] == t.user_attrs["eval"]["trades"]
    # the workers trained the points (the driver trains only the base and the held-back windows): one
    # entry per point in the Ray run's own cache, besides the base's search and held-back entries
    trained = {tuple(t.params[k] for k in KEYS_B) for t in ray}
    assert len(list((tmp_path / "c2").glob("*.npz"))) >= len(trained) + 2
    assert len({t.user_attrs["node"]["id"] for t in ray}) == 2
