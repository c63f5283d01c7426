"""A SIGKILL at any moment of an import leaves the store exactly as before it or exactly as after it.

Real ``orderflow data import`` processes over a real recording are killed at named points of the store's
transaction (``ORDERFLOW_FAULT``: early, mid-kind, between kinds, before and after the commit point,
during the apply) and at 20 random moments. After each kill the next command that opens the store
cleans up, the row counts equal the before or the after state, and ``data check`` passes. The imports
replace rows of the same source (a truncated recording, then the whole one, under one name): the case
in which a kill used to double the rows.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orderflow.cli import main
from orderflow.data.store import Store
from support.store_parts import truncated_copy

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

PRE_COMMIT = ["begin", "stage:1", "stage:2", "before-commit"]
POST_COMMIT = ["commit", "apply:1", "apply:2"]


def counts(root: Path) -> dict[str, int]:
    return {f"{d.venue}/{d.symbol}/{d.kind}": d.rows for d in Store(root).ls()}


def cli(*argv: str, fault: str | None = None) -> subprocess.Popen:
    """``orderflow ARGV`` in a new interpreter."""
    env = dict(os.environ)
    env.pop("ORDERFLOW_FAULT", None)
    if fault:
        env["ORDERFLOW_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "orderflow.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _child(argv: list[str], fault: str | None) -> None:
    os.environ.pop("ORDERFLOW_FAULT", None)
    if fault:
        os.environ["ORDERFLOW_FAULT"] = fault
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os._exit(main(argv))


def forked(*argv: str, fault: str | None = None) -> multiprocessing.process.BaseProcess:
    """``orderflow ARGV`` in a forked child of this process (its modules are loaded already, so it
    starts in milliseconds): a separate process that a SIGKILL ends like any other."""
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(list(argv), fault))
    proc.start()
    return proc


def import_cmd(root: Path, *files: Path) -> list[str]:
    return ["data", "import", *map(str, files), "--format", "binance-raw", "--store", str(root)]


def check_ok(root: Path, capsys) -> None:
    rc = main(["data", "check", "--store", str(root)])
    text = capsys.readouterr().out
    assert rc == 0 and "OK: no threshold crossed" in text, text
    assert not Store(root).pending_transactions()


class Scenario:
    """A store holding a truncated recording (the before state) and the whole recording of the same
    name to import over it (the after state)."""

    def __init__(self, shared_data: Path, tmp: Path) -> None:
        self.full = (
            shared_data / "hftbacktest_binance_raw" / "collect-binancefutures" / "btcusdt_20220811.dat.gz"
        )
        cut = truncated_copy(self.full, tmp / "cut" / self.full.name, 0.5)
        self.template = tmp / "template"
        assert main(import_cmd(self.template, cut)) == 0
        self.before = counts(self.template)
        ref = tmp / "ref"
        shutil.copytree(self.template, ref)
        assert main(import_cmd(ref, self.full)) == 0
        self.after = counts(ref)
        assert set(self.after) == {f"binance-usdm/BTCUSDT/{k}" for k in ("book", "depth", "trade")}
        assert all(self.after[k] > self.before[k] for k in self.after)
        self.n = 0
        self.tmp = tmp

    def fresh_store(self) -> Path:
        self.n += 1
        root = self.tmp / f"s{self.n}"
        shutil.copytree(self.template, root)
        return root


@pytest.fixture(scope="module")
def scenario(shared_data, tmp_path_factory):
    return Scenario(shared_data, tmp_path_factory.mktemp("crash"))


@pytest.mark.slow
@pytest.mark.parametrize("point", PRE_COMMIT + POST_COMMIT)
def test_kill_at_a_named_point(scenario, point, capsys):
    root = scenario.fresh_store()
    proc = forked(*import_cmd(root, scenario.full), fault=point)
    proc.join(timeout=240)
    assert proc.exitcode == -9  # it died at the point
    if point != "begin":  # the dead process left its transaction behind
        assert any((root / "_txn").iterdir())
    expected = scenario.before if point in PRE_COMMIT else scenario.after
    assert counts(root) == expected  # counts() opens the store: it rolls back or completes first
    check_ok(root, capsys)
    assert main(import_cmd(root, scenario.full)) == 0  # the import then runs to the end
    capsys.readouterr()
    assert counts(root) == scenario.after
    check_ok(root, capsys)


@pytest.mark.slow
def test_kill_between_the_depth_parts_of_a_chain(shared_data, tmp_path, capsys):
    """Mid-kind: the first of two dates of depth staged, the second not yet (a real `orderflow` process)."""
    d = shared_data / "hftbacktest_binance_raw" / "usdm"
    root = tmp_path / "store"
    assert main(import_cmd(root, d / "btcusdt_20240718.gz")) == 0
    capsys.readouterr()
    before = counts(root)
    proc = cli(*import_cmd(root, d / "btcusdt_20240718.gz", d / "btcusdt_20240719.gz"), fault="stage:1")
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == -9, out
    assert counts(root) == before
    check_ok(root, capsys)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill_at_20_random_moments(scenario, capsys):
    """Each import is killed at a random moment of its transaction (from the appearance of its
    ``_txn/<id>/`` to the measured length of an unkilled one)."""
    root = scenario.fresh_store()
    proc = forked(*import_cmd(root, scenario.full))
    t_begin = _wait_for_txn(root, proc)
    while proc.is_alive() and (root / "_txn").is_dir() and any((root / "_txn").iterdir()):
        time.sleep(0.001)
    span = time.monotonic() - t_begin
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert counts(root) == scenario.after

    rng = random.Random(12)
    outcomes = {"before": 0, "after": 0}
    for i in range(20):
        root = scenario.fresh_store()
        proc = forked(*import_cmd(root, scenario.full))
        _wait_for_txn(root, proc)
        time.sleep(rng.uniform(0, span * 1.2))
        proc.kill()
        proc.join(timeout=60)
        got = counts(root)
        assert got in (scenario.before, scenario.after), f"kill {i}: {got}"
        outcomes["before" if got == scenario.before else "after"] += 1
        check_ok(root, capsys)
    print(f"20 kills over a {span:.2f} s transaction: {outcomes['before']} left the store as before, "
          f"{outcomes['after']} as after")  # fmt: skip
    assert sum(outcomes.values()) == 20


def _wait_for_txn(root: Path, proc: multiprocessing.process.BaseProcess) -> float:
    deadline = time.monotonic() + 120
    txn = root / "_txn"
    while time.monotonic() < deadline:
        if txn.is_dir() and any(txn.iterdir()):
            return time.monotonic()
        if not proc.is_alive():
            raise AssertionError(f"import ended (exit {proc.exitcode}) before its transaction was seen")
        time.sleep(0.001)
    raise AssertionError("no transaction appeared")
