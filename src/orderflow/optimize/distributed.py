"""A study's trials on Ray: the driver asks, Ray tasks evaluate, the driver tells (issue 16, item 6).

``orderflow optimize run --ray`` (a local Ray) or ``--ray-address HOST:PORT`` (a running cluster) runs
the trials of :func:`orderflow.optimize.study.search` as Ray tasks, with Optuna's ask-and-tell
interface:

- **The driver alone holds the sampler and writes the storage.** It asks the sampler for a point
  (``study.ask()`` then :meth:`SearchSpace.sample`, in the driver, in trial order), sends the point to a
  task, and tells the result when the task returns. The default SQLite storage is therefore written by
  one process, as it must be; the cache directory is the driver's too (the tasks never read it).
  Because the points are drawn in ask order, a seeded random sampler evaluates the same points as the
  sequential run (``tests/integration/test_optimize_ray.py``); a model-based sampler (TPE) asks while
  up to ``parallel`` trials are still running, so its later points differ from a sequential run's.
- **The heavy read-only data is sent once.** The search's :class:`EvalData` (events, feature rows and
  cached probabilities of every test window), the base config and the study settings are ``ray.put``
  once; each task receives the reference, and each worker process deserialises it once (``_shared``).
- **One function scores a point everywhere**: :func:`orderflow.optimize.objective.evaluate_point`, the
  one the sequential :class:`~orderflow.optimize.objective.Objective` calls, so a trial keeps the same
  ``eval`` and ``constraint`` user attributes, values, and ``fail_reason`` of a refused point. It also
  keeps ``node``: the Ray node id, host and process id of the task.
- **No pruning**: a remote task runs all its windows (its intermediate values cannot reach the driver's
  pruner midway), so the study's pruner is not used; the run says so in one line.
- **The same cap as** :func:`~orderflow.optimize.study.run_study`: trials run until the study holds
  ``n_trials`` finished ones, at most ``parallel`` at a time (default: the cluster's CPUs), and no trial
  is asked once the study holds ``n_trials`` trials in any state (other workers of a shared storage
  count). Trials a dead worker left running are failed after the grace period and their retries run
  here. Running trials get a heartbeat from the driver, so a shared storage's other workers leave them
  alone. A task whose worker or node is lost (past Ray's own retries) fails its trial only; a scoring
  that raises fails its trial and stops the run, as it stops a sequential one.
- **Ctrl-C** cancels the tasks in flight and fails their trials (as Optuna fails the trial a Ctrl-C
  interrupts); the same command resumes the study.

Ray is optional (``pip install 'orderflow[scale]'``): nothing here imports it before it is asked for.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from orderflow.optimize.space import InvalidPoint

if TYPE_CHECKING:
    from orderflow.config import Config
    from orderflow.optimize.objective import EvalData
    from orderflow.optimize.recompute import RebuildSpec
    from orderflow.optimize.space import SearchSpace, StudySettings
    from orderflow.optimize.study import Prepared

NEEDS_RAY = "--ray needs Ray: pip install 'orderflow[scale]'"
PROBE_TIMEOUT_S = 5.0


class RayError(RuntimeError):
    """Ray missing, a cluster that does not answer, workers that cannot run a trial: one line."""


# -- connecting ---------------------------------------------------------------------------------------
def available() -> bool:
    return importlib.util.find_spec("ray") is not None


def split_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``ray://HOST:PORT`` (Ray Client) -> (host, port); ValueError when malformed."""
    rest = text.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in rest:
        raise ValueError(f"must be HOST:PORT (the head's GCS port, e.g. 127.0.0.1:6379) or ray://HOST:PORT, "
                         f"got {text!r}")  # fmt: skip
    return host, int(port)


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Whether anything answers at ``address`` (a TCP connect): ``ray.init`` on an address where no
    cluster runs waits for minutes before it gives up, so an unreachable one is refused here, in one
    line naming it."""
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except TimeoutError:
        raise RayError(
            f"--ray-address {address}: no Ray cluster answers there (no reply in {timeout_s:g} s)"
        ) from None
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise RayError(f"--ray-address {address}: no Ray cluster answers there ({why})") from None


def check(address: str | None) -> None:
    """The early look of the command line: the address answers, and Ray is installed."""
    if address is not None:
        probe(address)
    if not available():
        raise RayError(NEEDS_RAY)


@dataclass(frozen=True)
class Cluster:
    cpus: int
    nodes: int
    address: str | None  # None: a local Ray started for this run


@contextmanager
def connect(address: str | None = None, num_cpus: int | None = None) -> Iterator[Cluster]:
    """A local Ray (``num_cpus``, default all) or the cluster at ``address``, for the ``with`` block.
    An already initialised Ray (a test, a notebook) is used as it is and left running."""
    try:
        import ray
    except ImportError:
        raise RayError(NEEDS_RAY) from None
    owned = not ray.is_initialized()
    if owned:
        if address is not None:
            probe(address)
        try:
            if address is None:  # "local": a new Ray, even where `ray start` left a cluster running
                ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING)  # fmt: skip
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except Exception as e:  # ConnectionError, an authentication error, a version mismatch
            where = f"--ray-address {address}" if address else "--ray"
            raise RayError(f"{where}: {type(e).__name__}: {str(e).strip().splitlines()[0]}") from None
    try:
        alive = [n for n in ray.nodes() if n.get("Alive")]
        yield Cluster(int(ray.cluster_resources().get("CPU", 0)), len(alive), address)
    finally:
        if owned:
            ray.shutdown()


# -- the remote side ----------------------------------------------------------------------------------
class Result(NamedTuple):
    """What a task sends back: the trial's user attributes and value(s), or why the point was refused."""

    attrs: dict[str, Any]
    value: float | tuple[float, ...] | None
    invalid: str | None
    node: dict[str, Any]


# a trial's scoring function: (the shared object, the point) -> (value(s), user attributes); it raises
# InvalidPoint for a point the models refuse
Score = Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]]
_SHARED: dict[str, Any] = {}  # per worker process: the shared object, deserialised once


def _shared(box: list[Any]) -> Any:
    import ray

    ref = box[0]  # inside a list, so Ray hands over the reference, not a fresh copy per task
    key = ref.hex()
    if key not in _SHARED:
        _SHARED.clear()
        _SHARED[key] = ray.get(ref)
    return _SHARED[key]


def _run(score: Score, box: list[Any], values: dict[str, Any]) -> Result:
    """The body of a Ray task (module level, so a worker imports it from its own orderflow)."""
    import ray

    node = {
        "id": ray.get_runtime_context().get_node_id(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    try:
        value, attrs = score(_shared(box), values)
    except InvalidPoint as e:
        return Result({}, None, str(e), node)
    return Result(attrs, value, None, node)


_REBUILT: dict[int, tuple[Any, Any]] = {}  # per worker process: (the spec, its level (b) Recompute)


def score_rebuilt(spec: RebuildSpec, values: dict[str, Any]) -> tuple[Any, dict]:
    """A level (b) point: this worker's :class:`~orderflow.optimize.recompute.Recompute` (rebuilt once
    per process from ``spec``) builds or loads the point's search data, then
    :func:`~orderflow.optimize.objective.evaluate_point` scores it."""
    from orderflow.optimize.objective import evaluate_point
    from orderflow.optimize.recompute import rebuild

    if id(spec) not in _REBUILT:  # _shared hands every task of a run the same object (kept, so its id is)
        _REBUILT.clear()
        _REBUILT[id(spec)] = (spec, rebuild(spec))
    rc = _REBUILT[id(spec)][1]
    ev, attrs = evaluate_point(spec.base, values, rc.search_data(values), spec.settings)
    return ev.score(spec.settings), attrs


def score_point(shared: tuple[EvalData, Config, StudySettings], values: dict[str, Any]) -> tuple[Any, dict]:
    """The walk-forward score of a point: :func:`~orderflow.optimize.objective.evaluate_point`."""
    from orderflow.optimize.objective import evaluate_point

    data, base, settings = shared
    ev, attrs = evaluate_point(base, values, data, settings)
    return ev.score(settings), attrs


# -- the driver ---------------------------------------------------------------------------------------
def run_trials(
    study: Any,
    space: SearchSpace,
    score: Score,
    shared: Any,
    n_trials: int,
    callbacks: list[Callable[[Any, Any], None]] | None = None,
    parallel: int | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Run ``score(shared, point)`` as Ray tasks until the study holds ``n_trials`` finished trials
    (module docstring); Ray must be initialised (:func:`connect`). Returns how many trials were to run,
    as :func:`~orderflow.optimize.study.run_study` does."""
    import optuna
    import ray
    from optuna.storages._heartbeat import is_heartbeat_enabled
    from optuna.trial import TrialState

    from orderflow.optimize import study as SD
    from orderflow.optimize.objective import record, record_failure

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    SD.reap_silent_trials(study)
    todo = max(0, n_trials - SD.finished(study))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    parallel = max(1, parallel or cpus)
    settings = space.settings
    if not space.multi_objective and settings.pruner != "none":
        say(f"ray: the {settings.pruner} pruner is not used (a remote trial runs all its windows)")
    beat = float(study._storage.get_heartbeat_interval()) if is_heartbeat_enabled(study._storage) else None
    task = ray.remote(num_cpus=1)(_run)
    box = [ray.put(shared)]
    flight: dict[Any, Any] = {}  # task reference -> its trial
    asked = 0
    last_beat = time.monotonic()

    def more() -> bool:
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):  # a retry (or an enqueued point) first
            return True
        return asked < todo and len(trials) < n_trials

    def tell(ref: Any, trial: Any) -> Any:
        try:
            res: Result = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # the scoring raised: as in a sequential run, it stops
            cause = e.cause if isinstance(e.cause, BaseException) else e
            record_failure(trial, f"{type(cause).__name__}: {cause}")
            study.tell(trial, state=TrialState.FAIL)
            text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            if isinstance(cause, ImportError) or "No module named" in text:  # also Ray's RaySystemError
                raise RayError(
                    f"the Ray workers cannot import orderflow ({text.removeprefix('System error: ')}): "
                    "start every node from an environment with the driver's orderflow installed"
                ) from None
            raise cause from None
        except ray.exceptions.RayError as e:  # a worker or node lost past Ray's retries: this trial only
            record_failure(trial, f"{type(e).__name__}: {str(e).strip().splitlines()[0]}")
            return study.tell(trial, state=TrialState.FAIL)
        trial.set_user_attr("node", res.node)
        if res.invalid is not None:
            record_failure(trial, res.invalid)
            return study.tell(trial, state=TrialState.FAIL)
        record(trial, res.attrs)
        value = list(res.value) if isinstance(res.value, tuple) else res.value
        return study.tell(trial, value)

    asking: list[Any] = []  # a trial asked and not yet in flight (a Ctrl-C can come in between)
    try:
        while True:
            while len(flight) < parallel and more():
                trial = study.ask()
                asking.append(trial)
                values = space.sample(trial)
                if beat is not None:
                    study._storage.record_heartbeat(trial._trial_id)
                flight[task.remote(score, box, values)] = trial
                asking.clear()
                asked += 1
            if flight:
                wake = None if beat is None else beat / 2  # the heartbeats of the trials in flight
                ready, _ = ray.wait(list(flight), num_returns=1, timeout=wake)
                for ref in ready:
                    frozen = tell(ref, flight[ref])
                    del flight[ref]  # after the tell: a Ctrl-C during it still finds the trial
                    for cb in callbacks or []:
                        cb(study, frozen)
                    SD.reap_silent_trials(study)
                if beat is not None and time.monotonic() - last_beat >= beat / 2:
                    for trial in flight.values():
                        study._storage.record_heartbeat(trial._trial_id)
                    last_beat = time.monotonic()
            elif SD._unattended(study):  # another worker's trial with no heartbeat: fail it, run its retry
                time.sleep(0.5)
                optuna.storages.fail_stale_trials(study)
                SD.reap_silent_trials(study)
            else:
                break
    except BaseException:  # Ctrl-C, or a trial that raised: nothing keeps running, nothing stays running
        for ref in flight:
            ray.cancel(ref, force=True)
        for trial in [*flight.values(), *asking]:
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    return todo


def search(
    prepared: Prepared,
    space: SearchSpace,
    base: Config,
    study: Any,
    n_trials: int,
    callbacks: list[Callable[[Any, Any], None]] | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """:func:`orderflow.optimize.study.search` on Ray: a local one (``num_cpus``, default all) or the
    cluster at ``address``."""
    with connect(address, num_cpus) as cluster:
        where = f"the cluster at {address}" if address else "a local Ray"
        say(f"ray: {where}, {cluster.nodes} node(s), {cluster.cpus} CPUs: {cluster.cpus} trials at a time")
        if prepared.recompute is not None:  # level (b): each worker rebuilds its inputs from the store
            spec = prepared.recompute.spec(space.settings)
            return run_trials(study, space, score_rebuilt, spec, n_trials, callbacks, cluster.cpus, say)
        shared = (prepared.search, base, space.settings)
        return run_trials(study, space, score_point, shared, n_trials, callbacks, cluster.cpus, say)
