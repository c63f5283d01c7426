"""Studies: the held-back split, the cached walk-forward, Optuna studies that resume, the judgement.

1. :func:`prepare` cuts the data at ``holdout_start`` (``holdout_hours`` before the end, else
   ``holdout_fraction`` of the span). The search gets only what lies before it: the events, the
   feature rows and the labelled samples whose label ended before it. Its walk-forward test windows
   (the ``walkforward`` config) are laid out on that part alone, and their probabilities are computed
   once and cached (:mod:`orderflow.optimize.cache`).
2. :func:`open_study` creates or resumes a study by name in a storage URL (default: an SQLite file;
   ``postgresql+psycopg://...`` works the same; a path ending in ``.log`` is an Optuna journal file).
   RDB storages keep a heartbeat, so a trial whose process died is marked failed and retried once. A
   study remembers the space's and the data's fingerprints and refuses to resume with other ones.
3. :func:`run_study` runs trials until the study holds ``n_trials`` finished ones.
4. :func:`analyse` picks the best feasible trial and computes the PBO over every complete feasible
   trial's per-period returns and the DSR of the best (:mod:`orderflow.optimize.stats`).
5. :func:`holdout_evaluation` scores the best trial's config, and the config as given (the baseline),
   on walk-forward windows inside the held-back period, once; the study counts the looks.
6. :func:`export_config` writes the best config as a config directory, refused when PBO or DSR say
   the result is likely luck (unless forced).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from orderflow.backtest.engine import Market
from orderflow.backtest.walkforward import (
    H_NS,
    WindowProbabilities,
    subset,
    window_probabilities,
    window_spans,
)
from orderflow.config import Config, dump_yaml
from orderflow.core.instruments import Instrument
from orderflow.models.config import ModelsConfig
from orderflow.models.dataset import Dataset
from orderflow.optimize import cache as C
from orderflow.optimize import stats as ST
from orderflow.optimize.objective import EvalData, Evaluation, Objective, constraints_func, evaluate
from orderflow.optimize.space import InvalidPoint, SearchSpace, StudySettings, apply_values

log = logging.getLogger(__name__)
SAMPLERS = ("tpe", "nsga2", "cmaes", "random")


class StudyError(ValueError):
    """A study that cannot be created, resumed or judged as asked; the message says why."""


@dataclass
class Prepared:
    """The search's data (before ``holdout_start``) and what the final held-back evaluation needs."""

    search: EvalData
    holdout_start: int
    data_end: int
    data_key: str
    cache_hit: bool
    spans: list[tuple[int, int]]  # the search's walk-forward test windows
    # for the held-back evaluation and level (b) only (never handed to a trial)
    _market: Market = field(repr=False)
    _features: pd.DataFrame = field(repr=False)
    _ds: Dataset = field(repr=False)
    _mid: np.ndarray | None = field(repr=False)
    _instrument: Instrument = field(repr=False)
    _models: ModelsConfig = field(repr=False)
    # level (b): rebuilds the features, labels and probabilities of a point's own configs
    recompute: Any = field(default=None, repr=False)

    def inputs(self, values: dict[str, Any]) -> tuple[pd.DataFrame, Dataset, np.ndarray | None, ModelsConfig]:
        """The whole span's features, dataset, mid and models config of a point (level (a): the base's)."""
        if self.recompute is None:
            return self._features, self._ds, self._mid, self._models
        return self.recompute.inputs(values)


def holdout_start(t_first: int, t_last: int, settings: StudySettings) -> int:
    """Where the held-back period begins (``t_last + 1`` when nothing is held back)."""
    span = t_last - t_first
    if settings.holdout_hours is not None:
        back = int(settings.holdout_hours * H_NS)
    else:
        back = int(settings.holdout_fraction * span)
    if back <= 0:
        return t_last + 1
    if back >= span:
        raise StudyError(
            f"the held-back period ({back / H_NS:.3g} h) is the whole data ({span / H_NS:.3g} h)"
        )
    return t_last - back


def probability_key(cfg: Config, models: ModelsConfig, market: Market, windows: list[tuple[int, int]]) -> str:
    """The cache key of the walk-forward probabilities of ``windows``: the data, the feature, label,
    model and walk-forward configs (:mod:`orderflow.optimize.cache`)."""
    configs = {
        "features": cfg.features.model_dump(mode="json"),
        "labels": cfg.labels.model_dump(mode="json"),
        "models": models.model_dump(mode="json"),
        "walkforward": cfg.walkforward.model_dump(mode="json"),
    }
    return C.cache_key(C.data_hash(market), configs, windows)


@dataclass
class SearchPart:
    """What lies before the held-back period: the events, the feature rows, the labelled samples whose
    label ended before it, and the mid at each row."""

    market: Market
    features: pd.DataFrame
    ds: Dataset
    mid: np.ndarray | None


def search_part(
    market: Market, features: pd.DataFrame, ds: Dataset, mid: np.ndarray | None, h0: int
) -> SearchPart:
    r_h = int(np.searchsorted(market.b_ts, h0))
    keep = (ds.sample_ts < h0) & (ds.t_touch < h0)  # labels that end before the held-back period
    s_ds = subset(
        Dataset(ds.X[:r_h], ds.feature_names, ds.ts[:r_h], ds.sample_idx, ds.y, ds.t_touch, ds.schema_hash),
        np.flatnonzero(keep),
    )
    return SearchPart(market.window(None, h0), features.iloc[:r_h], s_ds, None if mid is None else mid[:r_h])


def prepare(
    cfg: Config,
    models: ModelsConfig,
    market: Market,
    features: pd.DataFrame,
    ds: Dataset,
    mid: np.ndarray | None,
    instrument: Instrument,
    settings: StudySettings,
    cache_dir: Path | None,
    say: Callable[[str], None] = print,
) -> Prepared:
    """Cut off the held-back period and compute (or load) the search windows' probabilities."""
    t_first, t_last = int(market.b_ts[0]), int(market.b_ts[-1])
    h0 = holdout_start(t_first, t_last, settings)
    wf = cfg.walkforward
    spans = window_spans(t_first, min(h0, t_last), wf)
    if not spans:
        raise StudyError(
            f"{(min(h0, t_last) - t_first) / H_NS:.3g} h before the held-back period hold no walk-forward "
            f"test window (train {wf.train_hours:g} h + half a {wf.test_hours:g} h test window); shorten "
            "walkforward.*, hold back less or give more data"
        )
    part = search_part(market, features, ds, mid, h0)
    key = probability_key(cfg, models, part.market, spans)

    def compute() -> list[WindowProbabilities]:
        with tempfile.TemporaryDirectory() as tmp:
            return window_probabilities(part.features, part.ds, models, Path(tmp), spans, wf, part.mid, say)

    wps, hit = C.cached_probabilities(cache_dir, key, compute)
    if not wps:
        raise StudyError("every walk-forward window was skipped (too few training samples)")
    search = EvalData.build(part.market, part.features, wps, instrument, h0, settings.period_minutes)
    return Prepared(search, h0, t_last, key, hit, spans, market, features, ds, mid, instrument, models)


# -- the study ------------------------------------------------------------------------------------------
def default_storage(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(directory / 'optuna.db').resolve()}"


def make_storage(url: str, heartbeat_s: float = 30.0) -> Any:
    import optuna
    from optuna.storages import RetryFailedTrialCallback

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*heartbeat.*")
    if url.endswith(".log") and "://" not in url:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url))
    try:
        beat = max(1, round(heartbeat_s))
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=beat,
            grace_period=3 * beat,
            failed_trial_callback=RetryFailedTrialCallback(max_retry=1),
        )
    except Exception as e:  # a bad URL or an unreachable server: one line
        raise StudyError(f"--storage {url}: {type(e).__name__}: {str(e).splitlines()[0]}") from None


def make_sampler(name: str, seed: int | None, n_trials: int, multi: bool) -> Any:
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            group=True,
            constraints_func=constraints_func(),
            n_startup_trials=min(10, max(2, n_trials // 5)),
        )
    if name == "nsga2":
        pop = max(4, min(50, n_trials // 8))
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=pop, constraints_func=constraints_func()
        )
    if name == "cmaes":
        if multi:
            raise StudyError("--sampler cmaes optimises one objective; use nsga2 or tpe for pnl_dd")
        return optuna.samplers.CmaEsSampler(
            seed=seed, warn_independent_sampling=False, n_startup_trials=min(5, max(1, n_trials // 10))
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise StudyError(f"--sampler {name}: use one of {', '.join(SAMPLERS)}")


def make_pruner(settings: StudySettings) -> Any:
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials, n_warmup_steps=0)
    if settings.pruner == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    return optuna.pruners.NopPruner()


def open_study(
    name: str,
    storage: str,
    space: SearchSpace,
    sampler: str,
    seed: int | None,
    n_trials: int,
    data_key: str | None = None,
) -> Any:
    """Create the study ``name`` in ``storage``, or resume it. Refused when the study exists with another
    space, other data, or the other number of objectives."""
    import optuna

    store = make_storage(storage, space.settings.heartbeat_s)
    directions: list[Literal["maximize", "minimize"]] = (
        ["maximize", "minimize"] if space.multi_objective else ["maximize"]
    )
    try:
        existing = optuna.load_study(study_name=name, storage=store)
    except KeyError:
        existing = None
    if existing is not None:
        attrs = existing.user_attrs
        if attrs.get("space") not in (None, space.fingerprint()):
            raise StudyError(
                f"--study {name}: it was started with another space (fingerprint "
                f"{attrs.get('space')}, this file {space.fingerprint()}); give a new name"
            )
        if data_key is not None and attrs.get("data") not in (None, data_key):
            raise StudyError(f"--study {name}: it was started on other data or configs; give a new name")
        if len(existing.directions) != len(directions):
            raise StudyError(
                f"--study {name}: it has {len(existing.directions)} objective(s), this space "
                f"{len(directions)}"
            )
    done = 0 if existing is None else len(existing.trials)
    study_seed = None if seed is None else seed + done  # a resumed random sampler draws new points
    study = optuna.create_study(
        study_name=name,
        storage=store,
        load_if_exists=True,
        directions=directions,
        sampler=make_sampler(sampler, study_seed, n_trials, space.multi_objective),
        pruner=make_pruner(space.settings),
    )
    if existing is None:
        study.set_user_attr("space", space.fingerprint())
        study.set_user_attr("keys", space.keys)
        if data_key is not None:
            study.set_user_attr("data", data_key)
    return study


def finished(study: Any) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())


def run_study(
    study: Any,
    objective: Callable[[Any], Any],
    n_trials: int,
    callbacks: list[Callable[[Any, Any], None]] | None = None,
) -> int:
    """Run trials until the study holds ``n_trials`` finished ones (or that many trials in any state,
    counted over every worker of a shared storage); returns how many were to run."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    reap_silent_trials(study)
    todo = max(0, n_trials - finished(study))
    if todo:
        # other workers on a shared storage run trials too: stop when the study holds n_trials
        cap = optuna.study.MaxTrialsCallback(n_trials, states=None)
        reaper = lambda st, _t: reap_silent_trials(st)  # noqa: E731 - a trial's end looks for dead ones
        study.optimize(objective, n_trials=todo, catch=(InvalidPoint,),
                       callbacks=[*(callbacks or []), reaper, cap], gc_after_trial=False)  # fmt: skip
    # a trial of a worker that died (before its first heartbeat, or after its last one): wait out the
    # grace period, fail it and run its retry here
    while _unattended(study):
        time.sleep(0.5)
        optuna.storages.fail_stale_trials(study)
        reap_silent_trials(study)
        waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        if waiting:
            study.optimize(objective, n_trials=len(waiting), catch=(InvalidPoint,), gc_after_trial=False)
    return todo


def _heartbeats(study: Any) -> tuple[Any, float] | None:
    """The RDB storage behind the study (optuna wraps it in a cache) and its grace period, when it keeps
    heartbeats."""
    storage = getattr(study._storage, "_backend", study._storage)
    interval = getattr(storage, "heartbeat_interval", None)
    if not interval:
        return None
    return storage, float(storage.grace_period or 2 * interval)


def _beats(study: Any) -> dict[int, float]:
    """Seconds since each running trial's last heartbeat (by the database clock), by trial id."""
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    storage = getattr(study._storage, "_backend", study._storage)
    with _create_scoped_session(storage.scoped_session) as session:  # optuna's own session helper
        now = session.execute(sqlalchemy.func.now()).scalar().replace(tzinfo=None)
        rows = session.query(models.TrialHeartbeatModel.trial_id, models.TrialHeartbeatModel.heartbeat).all()
    return {tid: (now - hb.replace(tzinfo=None)).total_seconds() for tid, hb in rows}


def _unattended(study: Any) -> bool:
    """A running trial nobody keeps alive: no heartbeat at all, or none for 1.5 heartbeat intervals."""
    hb = _heartbeats(study)
    if hb is None:
        return False
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return False
    beats = _beats(study)
    interval = float(hb[0].heartbeat_interval)
    return any(beats.get(t._trial_id, float("inf")) > 1.5 * interval for t in running)


def silent_trials(study: Any) -> list[Any]:
    """Running trials that never recorded a heartbeat: their process died between starting the trial and
    its first heartbeat, and optuna's stale-trial check, which looks only at heartbeats, misses them."""
    if _heartbeats(study) is None:
        return []
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    beaten = _beats(study)
    return [t for t in running if t._trial_id not in beaten]


def reap_silent_trials(study: Any) -> int:
    """Fail the :func:`silent_trials` older than the grace period and let the storage's callback queue
    their retry (as it does for a stale heartbeat); how many were failed."""
    import datetime as _dt

    import optuna

    hb = _heartbeats(study)
    if hb is None:
        return 0
    storage, grace = hb
    n = 0
    for t in silent_trials(study):
        start = t.datetime_start
        if start is None or (_dt.datetime.now() - start).total_seconds() < grace:
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # it finished meanwhile
        n += 1
        callback = storage.get_failed_trial_callback()
        if callback is not None:
            callback(study, study._storage.get_trial(t._trial_id))
    return n


def search(
    prepared: Prepared,
    space: SearchSpace,
    base: Config,
    study: Any,
    n_trials: int,
    callbacks: list[Callable[[Any, Any], None]] | None = None,
) -> int:
    """:func:`run_study` with the walk-forward :class:`Objective` over the search data only."""
    recompute = None if prepared.recompute is None else prepared.recompute.search_data
    return run_study(study, Objective(space, base, prepared.search, recompute), n_trials, callbacks)


# -- judgement ------------------------------------------------------------------------------------------
@dataclass
class Analysis:
    best: Any | None  # the best feasible complete trial (FrozenTrial)
    complete: int
    feasible: int
    pruned: int
    failed: int
    pbo: ST.PBOResult | None
    dsr: ST.DSRResult | None
    pareto: list[Any]
    notes: list[str]

    @property
    def best_values(self) -> dict[str, Any]:
        return dict(trial_eval(self.best).get("values", self.best.params)) if self.best is not None else {}

    def summary(self) -> dict[str, Any]:
        b = self.best
        return {
            "trials_complete": self.complete,
            "trials_feasible": self.feasible,
            "trials_pruned": self.pruned,
            "trials_failed": self.failed,
            "best_trial": None if b is None else b.number,
            "best_value": None if b is None else (list(b.values) if len(b.values) > 1 else b.values[0]),
            "best_params": self.best_values,
            "best_trades": None if b is None else trial_eval(b).get("trades"),
            "best_net_pnl": None if b is None else trial_eval(b).get("net_pnl"),
            "pbo": None if self.pbo is None else self.pbo.pbo,
            "pbo_combinations": None if self.pbo is None else self.pbo.n_combinations,
            "dsr": None if self.dsr is None else self.dsr.dsr,
            "dsr_detail": None if self.dsr is None else {k: float(v) for k, v in self.dsr.__dict__.items()},
            "notes": self.notes,
        }


def trial_eval(t: Any) -> dict[str, Any]:
    """What :class:`~orderflow.optimize.objective.Objective` kept of a trial (empty if it did not end)."""
    return dict(t.user_attrs.get("eval") or {})


def _feasible(t: Any) -> bool:
    return all(c <= 0 for c in t.user_attrs.get("constraint", (1.0,)))


def analyse(study: Any, settings: StudySettings) -> Analysis:
    """The best feasible trial (single objective: the highest value; two: on the Pareto front of the
    feasible trials, the highest net PnL), PBO over the complete feasible trials and the best's DSR."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    ok = [t for t in done if _feasible(t) and trial_eval(t).get("returns")]
    notes: list[str] = []
    pareto: list[Any] = []
    best = None
    if ok:
        if len(study.directions) > 1:
            pareto = [
                t
                for t in ok
                if not any(
                    o.values[0] >= t.values[0]
                    and o.values[1] <= t.values[1]
                    and tuple(o.values) != tuple(t.values)
                    for o in ok
                )
            ]
            best = max(pareto, key=lambda t: t.values[0])
        else:
            best = max(ok, key=lambda t: t.values[0])
    pbo = dsr = None
    if len(ok) >= 2 and best is not None:
        m = np.array([trial_eval(t)["returns"] for t in ok], dtype=np.float64).T
        j = ok.index(best)
        blocks = settings.cscv_blocks
        if m.shape[0] >= blocks:
            pbo = ST.pbo_cscv(m, blocks)
        else:
            notes.append(
                f"PBO not computed: {m.shape[0]} return periods < {blocks} CSCV blocks "
                "(lower study.period_minutes or cscv_blocks)"
            )
        dsr = ST.dsr_of_best(m, j)
    else:
        notes.append(f"PBO and DSR need at least 2 complete feasible trials, have {len(ok)}")
    if not ok and done:
        notes.append(f"no complete trial reached min_trades = {settings.min_trades}")
    return Analysis(
        best,
        len(done),
        len(ok),
        sum(t.state == TrialState.PRUNED for t in trials),
        sum(t.state == TrialState.FAIL for t in trials),
        pbo,
        dsr,
        pareto,
        notes,
    )


def verdict(analysis: Analysis, settings: StudySettings) -> str | None:
    """Why the best trial is likely luck (None when PBO and DSR both pass their thresholds)."""
    pbo = analysis.pbo.pbo if analysis.pbo is not None else float("nan")
    dsr = analysis.dsr.dsr if analysis.dsr is not None else float("nan")
    if analysis.best is None:
        return "no feasible trial"
    problems = []
    if not math.isfinite(pbo) or pbo > settings.pbo_max:
        problems.append(f"PBO {pbo:.3f} > {settings.pbo_max:g}" if math.isfinite(pbo) else "PBO unknown")
    if not math.isfinite(dsr) or dsr < settings.dsr_min:
        problems.append(f"DSR {dsr:.3f} < {settings.dsr_min:g}" if math.isfinite(dsr) else "DSR unknown")
    return "; ".join(problems) or None


# -- the held-back period -------------------------------------------------------------------------------
def holdout_windows(h0: int, t_end: int, test_hours: float) -> list[tuple[int, int]]:
    """Rolling test windows of ``test_hours`` from ``h0`` to ``t_end``: a remainder of at least half a
    window is a window of its own, a shorter one joins the last window, which keeps the last event."""
    out, step, t = [], int(test_hours * H_NS), h0
    while t + step // 2 <= t_end:
        out.append((t, t + step))
        t += step
    if out:
        out[-1] = (out[-1][0], t_end + 1)
    return out or ([(h0, t_end + 1)] if t_end > h0 else [])


@dataclass
class Holdout:
    best: Evaluation
    baseline: Evaluation
    windows: int
    looks: int


def holdout_evaluation(
    prepared: Prepared,
    study: Any,
    base: Config,
    best_values: dict[str, Any],
    settings: StudySettings,
    cache_dir: Path | None,
    say: Callable[[str], None] = print,
) -> Holdout | None:
    """Score the best config and ``base`` (the baseline) on the held-back period, once per best trial
    (the study counts every look in its ``holdout_looks`` attribute)."""
    h0, t_end = prepared.holdout_start, prepared.data_end
    if h0 > t_end:
        return None
    wf = base.walkforward
    spans = holdout_windows(h0, t_end, wf.test_hours)
    built: dict[str, EvalData] = {}

    def data_of(values: dict[str, Any]) -> EvalData:
        features, ds, mid, mcfg = prepared.inputs(values)
        key = probability_key(apply_values(base, values), mcfg, prepared._market, spans)
        if key not in built:

            def compute() -> list[WindowProbabilities]:
                with tempfile.TemporaryDirectory() as tmp:
                    return window_probabilities(features, ds, mcfg, Path(tmp), spans, wf, mid, say)

            wps, _ = C.cached_probabilities(cache_dir, key, compute)
            if not wps:
                raise StudyError(
                    "the held-back windows were all skipped (too few training samples before them)"
                )
            built[key] = EvalData.build(
                prepared._market, features, wps, prepared._instrument, t_end + 1, settings.period_minutes
            )
        return built[key]

    best = evaluate(apply_values(base, best_values), data_of(best_values))
    base_data = data_of({})
    baseline = evaluate(base, base_data)
    wps = base_data.windows
    looks = int(study.user_attrs.get("holdout_looks", 0)) + 1
    study.set_user_attr("holdout_looks", looks)
    return Holdout(best, baseline, len(wps), looks)


def export_config(
    directory: Path,
    base: Config,
    values: dict[str, Any],
    analysis: Analysis,
    settings: StudySettings,
    force: bool = False,
) -> Path:
    """Write the best config as ``DIR/config.yaml`` (a directory for ``--config``); refused with the
    numbers when :func:`verdict` finds the result likely luck, unless ``force``."""
    why = verdict(analysis, settings)
    if why is not None and not force:
        raise StudyError(f"export refused: the best trial is likely luck ({why}); --force to export anyway")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    cfg = apply_values(base, values)
    head = f"# orderflow optimize: best trial {analysis.best.number if analysis.best else '-'}"
    note = f" (exported with --force: {why})" if why else ""
    path.write_text(f"{head}{note}\n" + dump_yaml(cfg), encoding="utf-8")
    return path
