"""``orderflow optimize run``: a parameter search over out-of-sample walk-forward results (issue 16).

The walk-forward's test-window probabilities are computed once and cached; each trial re-runs only
the backtest with the trial's strategy, risk, execution and account keys. A final period is held back
from the search and scored once at the end, next to the config as given. See docs/optimize.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderflow.cli import types as T
from orderflow.cli.common import (
    UserError,
    add_common,
    add_registry,
    add_source,
    feature_matrix,
    open_store,
    print_json,
    resolve_source,
    time_range,
)

if TYPE_CHECKING:
    from orderflow.config import Config

SAMPLERS = ("tpe", "nsga2", "cmaes", "random")
OBJECTIVES = ("sharpe", "sortino", "calmar", "net_pnl", "pnl_dd")


def _study_args(p: argparse.ArgumentParser, registry: bool = False) -> None:
    """The options ``run`` and ``worker`` share (``run`` also logs to the registry's MLflow)."""
    (add_registry if registry else add_common)(p)
    add_source(p)
    p.add_argument("--space", required=True, type=T.existing_file, help="search-space YAML file")
    p.add_argument(
        "--trials",
        type=T.int_range(1, 1_000_000),
        default=50,
        help="finished trials the study should hold (a resumed study runs the rest; default 50)",
    )
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="default tpe")
    p.add_argument("--objective", choices=OBJECTIVES, help="overrides the space file's study.objective")
    p.add_argument("--study", type=T.non_empty, help="study name (default: the space file's name)")
    p.add_argument(
        "--storage",
        type=T.non_empty,
        help="Optuna storage URL (sqlite:///F, postgresql+psycopg://...) or a .log journal file "
        "(default: an SQLite file next to the store)",
    )
    p.add_argument("--seed", type=T.non_negative_int, help="sampler seed")
    p.add_argument(
        "--holdout-hours",
        type=T.float_range(0.0, lo_open=False),
        help="final hours held back (overrides the space)",
    )
    p.add_argument(
        "--cache", type=T.dir_path, help="probability cache directory (default: next to the storage)"
    )
    p.add_argument("--quick", action="store_true", help="the small member configurations (smoke runs)")
    p.add_argument("--start", type=T.iso_time, help="ISO date/time (UTC)")
    p.add_argument("--end", type=T.iso_time, help="ISO date/time (UTC)")


def register(subparsers: Any) -> None:
    """Add ``optimize`` and its sub-commands to ``subparsers``."""
    opt = subparsers.add_parser(
        "optimize", help="parameter search over out-of-sample walk-forward results, with PBO and DSR"
    ).add_subparsers(dest="optimize_command", required=True)
    p = opt.add_parser("run", help="create or resume a study and run its trials (docs/optimize.md)")
    _study_args(p, registry=True)
    p.add_argument(
        "--no-mlflow",
        action="store_true",
        help="do not log the run to MLflow (the tracking store of the registry)",
    )
    p.add_argument("--report", type=T.dir_path, help="directory for report.html, report.json and trials.csv")
    p.add_argument("--export", type=T.dir_path, help="write the best config as a --config directory")
    p.add_argument(
        "--force", action="store_true", help="export even when PBO or DSR call the best likely luck"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    ray = p.add_mutually_exclusive_group()  # the trials as Ray tasks (orderflow.optimize.distributed)
    ray.add_argument("--ray", action=_RayOption, nargs=0, default=False, help="run the trials on a local Ray")
    ray.add_argument(
        "--ray-cpus", action=_RayOption, type=T.int_range(1, 4096), help="a local Ray with N CPUs (as --ray)"
    )
    ray.add_argument(
        "--ray-address",
        action=_RayOption,
        type=_ray_address,
        metavar="HOST:PORT",
        help="run the trials on the Ray cluster whose head is at HOST:PORT (docs/optimize.md)",
    )
    p.set_defaults(handler=optimize_run)

    p = opt.add_parser("worker", help="join a study on a shared storage (PostgreSQL) and run its trials")
    _study_args(p)
    for action in p._actions:  # a worker names the study it joins and where it is
        if action.dest in ("study", "storage"):
            action.required = True
    p.set_defaults(handler=optimize_worker)


def _ray_address(text: str) -> str:
    from orderflow.optimize.distributed import split_address

    try:
        split_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


class _RayOption(argparse.Action):
    """``--ray``, ``--ray-cpus``, ``--ray-address``: refused while parsing, in one line, when the address
    does not answer or Ray is not installed (before the data is prepared and anything is written)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        from orderflow.optimize import distributed as DIST

        try:
            DIST.check(values if self.dest == "ray_address" else None)
        except DIST.RayError as e:
            parser.exit(2, f"orderflow: {e}\n")
        setattr(namespace, self.dest, True if self.nargs == 0 else values)


def _progress(total: int, multi: bool) -> tuple[Any, Any]:
    """A tqdm bar on stderr (trials done, best value, ETA) and the Optuna callback that moves it."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc="trials", unit="trial", file=sys.stderr, dynamic_ncols=True)

    def callback(study: Any, trial: Any) -> None:
        bar.update(1)
        if not multi:
            with contextlib.suppress(ValueError):  # no complete trial yet
                bar.set_postfix(best=f"{study.best_value:.4g}", refresh=False)

    return bar, callback


@dataclass(frozen=True)
class StoreSource:
    """A level (b) search's events and feature matrices, read from a store directory (picklable: a Ray
    worker reads the same store, which must be at this path on its node)."""

    root: str
    venue: str
    symbol: str
    start: str | None
    end: str | None

    def _args(self) -> argparse.Namespace:
        return argparse.Namespace(start=self.start, end=self.end)

    def load(self) -> tuple[Any, Any, Any]:
        from orderflow.backtest.engine import Market
        from orderflow.core.instruments import Instrument
        from orderflow.data.store import Store
        from orderflow.engine.funding import from_store

        store = Store(self.root)
        start, end = time_range(self._args())
        book = store.read(self.venue, self.symbol, "book", start, end)
        trades = store.read(self.venue, self.symbol, "trade", start, end)
        market = Market.from_frames(self.venue, self.symbol, book, trades)
        market.funding = from_store(store, self.venue, self.symbol)  # booked as orderflow backtest does
        inst = store.instrument(self.venue, self.symbol)
        inst = inst if isinstance(inst, Instrument) else Instrument(**inst)
        return market, book[["ts_event", "bid_px_1", "ask_px_1"]], inst

    def features(self, cfg: Config) -> Any:
        from orderflow.data.store import Store

        return feature_matrix(cfg, Store(self.root), self.venue, self.symbol, self._args())


@dataclass
class _Setup:
    """What ``run`` and ``worker`` share: the space, the study, the prepared search data."""

    space: Any
    name: str
    storage: str
    cache: Path
    models: Any
    prep: Any
    study: Any
    src: str
    close: Any  # releases the source's store (level (b) keeps it open for the run)


def _space(args: argparse.Namespace) -> Any:
    from orderflow.optimize.space import SpaceError, load_space

    try:
        space = load_space(args.space)
        over: dict[str, Any] = {}
        if args.objective:
            over["objective"] = args.objective
        if args.holdout_hours is not None:
            over["holdout_hours"] = args.holdout_hours or None
            over["holdout_fraction"] = 0.0 if args.holdout_hours == 0 else space.settings.holdout_fraction
        if over:
            settings = type(space.settings).model_validate({**space.settings.model_dump(), **over})
            space = type(space)(space.params, settings, space.source)
    except SpaceError as e:
        raise UserError(str(e)) from None
    if args.sampler == "cmaes" and space.multi_objective:
        raise UserError("--sampler cmaes optimises one objective; use nsga2 or tpe with pnl_dd")
    return space


def _setup(cfg: Config, args: argparse.Namespace, say: Any, seed: int | None) -> _Setup:
    """Load the space and the data, prepare the search (held-back cut, cached probabilities), open the
    study. A space with feature, label or model keys (level (b)) keeps the source's store open for the
    run (``_Setup.close``): its trials rebuild features from it."""
    from orderflow.backtest.engine import Market
    from orderflow.core.instruments import Instrument
    from orderflow.engine.funding import from_store
    from orderflow.models.train import labelled_dataset
    from orderflow.optimize import study as SD

    start, end = time_range(args)
    models = cfg.models.quick() if args.quick else cfg.models
    stack = contextlib.ExitStack()
    try:
        store, venue, symbol, src = stack.enter_context(
            resolve_source(open_store(cfg, args), args.source, args.allow_gaps)
        )
        space = _space(args)  # refused before the features are built and before anything is written
        features = feature_matrix(cfg, store, venue, symbol, args)
        book = store.read(venue, symbol, "book", start, end)
        market = Market.from_frames(venue, symbol, book, store.read(venue, symbol, "trade", start, end))
        market.funding = from_store(store, venue, symbol)  # booked as orderflow backtest does
        inst = store.instrument(venue, symbol)
        if inst is None:
            raise UserError(f"{venue}/{symbol}: instrument (tick, lot) unknown in {store.root}")
        inst = inst if isinstance(inst, Instrument) else Instrument(**inst)
        top = book[["ts_event", "bid_px_1", "ask_px_1"]]
        del book
        ds, mid = labelled_dataset(features, top, cfg.labels, models.sample_every_s)
        name = args.study or Path(args.space).stem
        home = cfg.store_dir(getattr(args, "store", None)).parent / "optimize"
        cache = Path(args.cache) if args.cache else home / "cache"
        storage = args.storage or SD.default_storage(home)
        try:
            prep = SD.prepare(cfg, models, market, features, ds, mid, inst, space.settings, cache, say)
            level = "level (b): features, labels and members per point" if space.recomputes else "level (a)"
            say(
                f"{src}: {len(prep.search.windows)} walk-forward test windows before the held-back period "
                f"({'cached' if prep.cache_hit else 'computed'} probabilities); searching "
                f"{', '.join(space.keys)} ({level})"
            )
            if space.recomputes:
                from orderflow.optimize.recompute import Recompute

                source = StoreSource(str(store.root), venue, symbol, args.start, args.end)
                prep.recompute = Recompute(cfg, prep, source.features, top, cache, say, source=source)
            else:
                stack.close()
            study = SD.open_study(name, storage, space, args.sampler, seed, args.trials, prep.data_key)
        except SD.StudyError as e:
            raise UserError(str(e)) from None
    except BaseException:
        stack.close()
        raise
    return _Setup(space, name, storage, cache, models, prep, study, src, stack.close)


def _search(cfg: Config, args: argparse.Namespace, st: _Setup, say: Any) -> int | None:
    """Run the study's remaining trials with a progress bar; how many this process ran, None when Ctrl-C
    stopped it."""
    from optuna.exceptions import StorageInternalError

    from orderflow.optimize import study as SD

    done = SD.finished(st.study)
    todo = max(0, args.trials - done)
    if done:
        say(f"study {st.name}: resuming with {done} finished trials, {todo} to run")
    bar, callback = _progress(todo, st.space.multi_objective)
    try:
        if any(getattr(args, k, None) for k in ("ray", "ray_cpus", "ray_address")):  # `worker` has none
            from orderflow.optimize import distributed as DIST

            try:
                DIST.search(st.prep, st.space, cfg, st.study, args.trials, [callback], args.ray_address,
                            args.ray_cpus, say)  # fmt: skip
            except DIST.RayError as e:
                raise UserError(str(e)) from None
        else:
            SD.search(st.prep, st.space, cfg, st.study, args.trials, [callback])
    except KeyboardInterrupt:
        bar.close()
        print(
            f"orderflow: interrupted; run the same command to resume study {st.name} ({st.storage})",
            file=sys.stderr,
        )
        return None
    except StorageInternalError as e:
        raise UserError(f"--storage {st.storage}: {e}") from None
    finally:
        bar.close()
    return int(bar.n)


def optimize_worker(cfg: Config, args: argparse.Namespace) -> int:
    """``orderflow optimize worker``: join a study on a shared storage and run trials until it holds
    ``--trials`` of them (counted over every worker); the held-back evaluation and the report are the
    business of ``optimize run``."""
    from orderflow.optimize import study as SD

    # workers draw different points: the pid is spread far apart, because the study adds the number of
    # trials it found (two workers a pid and a trial apart would otherwise get one seed)
    seed = None if args.seed is None else (args.seed + os.getpid() * 1_000_003) % 2**31
    st = _setup(cfg, args, print, seed)
    t0 = time.perf_counter()
    try:
        ran = _search(cfg, args, st, print)
    finally:
        st.close()
    if ran is None:
        return 130
    n = SD.finished(st.study)
    took = time.perf_counter() - t0
    print(f"worker {os.getpid()}: study {st.name} holds {n} finished trials ({ran} run by this worker, "
          f"{took:.0f} s)")  # fmt: skip
    return 0


def optimize_run(cfg: Config, args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    say = (lambda s: print(s, file=sys.stderr)) if args.json else print
    st = _setup(cfg, args, say, args.seed)
    try:
        return _run(cfg, args, st, say, t0)
    finally:
        st.close()


def _run(cfg: Config, args: argparse.Namespace, st: _Setup, say: Any, t0: float) -> int:
    from orderflow.optimize import study as SD
    from orderflow.optimize.objective import evaluate
    from orderflow.optimize.report import write_report

    space, name, storage, cache, prep, study, src = (
        st.space, st.name, st.storage, st.cache, st.prep, st.study, st.src
    )  # fmt: skip
    settings = space.settings
    todo = max(0, args.trials - SD.finished(study))
    t_search = time.perf_counter()
    if _search(cfg, args, st, say) is None:
        return 130
    search_s = time.perf_counter() - t_search
    analysis = SD.analyse(study, settings)
    baseline = evaluate(cfg, prep.search)
    hold = None
    if analysis.best is not None:
        hold = SD.holdout_evaluation(prep, study, cfg, analysis.best_values, settings, cache, say)
    meta = {
        "study": name,
        "storage": storage,
        "sampler": args.sampler,
        "objective": settings.objective,
        "source": src,
        "space": space.fingerprint(),
        "data": prep.data_key,
        "seed": args.seed,
        "holdout_start_ns": prep.holdout_start,
        "search_windows": len(prep.search.windows),
        "trials_run_now": todo,
        "search_seconds": search_s,
        "trials_per_minute": 60 * todo / search_s if todo and search_s > 0 else None,
    }
    report = None
    if args.report:
        report = write_report(Path(args.report), study, analysis, settings, baseline, hold, meta)
    summary = _summary(meta, analysis, baseline, hold, settings)
    if not args.no_mlflow:
        summary["mlflow_run"] = _log_mlflow(args, summary, space, report)
    if args.export:
        try:
            path = SD.export_config(
                Path(args.export), cfg, analysis.best_values, analysis, settings, args.force
            )
        except SD.StudyError as e:
            _print(summary, args.json, report)
            raise UserError(str(e)) from None
        summary["exported"] = str(path)
    _print(summary, args.json, report)
    say(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


def _log_mlflow(args: argparse.Namespace, s: dict[str, Any], space: Any, report: Path | None) -> str:
    """Log the study's run to MLflow next to the model registry (experiment ``orderflow-optimize``):
    the data hash, git revision, seed and space as parameters, the judgement as metrics, the space file
    and the report as artifacts. Returns the run id."""
    from orderflow.models.registry import Registry, RegistryError

    params = {
        k: s[k]
        for k in ("study", "storage", "sampler", "objective", "source", "space", "data", "seed",
                  "holdout_start_ns", "search_windows")
    }  # fmt: skip
    params["space_keys"] = ",".join(space.keys)
    params["best_params"] = s["best_params"]
    best = s["best_value"][0] if isinstance(s["best_value"], list) else s["best_value"]
    metrics = {
        "best_value": best,
        "pbo": s["pbo"],
        "dsr": s["dsr"],
        "baseline_search": s["baseline_search"],
        "holdout_best": s.get("holdout_best"),
        "holdout_baseline": s.get("holdout_baseline"),
        "holdout_best_net_pnl": s.get("holdout_best_net_pnl"),
        "holdout_looks": s.get("holdout_looks"),
        "trials_complete": s["trials_complete"],
        "trials_feasible": s["trials_feasible"],
        "trials_per_minute": s["trials_per_minute"],
    }
    try:
        reg = Registry(getattr(args, "registry", None))
        arts = [Path(args.space)] + ([report.parent] if report is not None else [])
        return reg.log_run("orderflow-optimize", f"{s['study']}", params, metrics,
                           {"orderflow.kind": "optimize", "verdict": s["verdict"]}, arts)  # fmt: skip
    except (RegistryError, OSError) as e:
        raise UserError(f"--registry: cannot log the run to MLflow: {e} (--no-mlflow skips it)") from None


def _summary(meta: dict[str, Any], analysis: Any, baseline: Any, hold: Any, settings: Any) -> dict[str, Any]:
    from orderflow.optimize.objective import combine
    from orderflow.optimize.study import verdict

    def score(ev: Any) -> float:
        return (
            ev.net_pnl
            if settings.objective == "pnl_dd"
            else combine(ev.figures[settings.objective], settings.lam)
        )

    out = {
        **meta,
        **analysis.summary(),
        "verdict": verdict(analysis, settings) or "passes PBO and DSR",
        "baseline_search": score(baseline),
        "baseline_search_net_pnl": baseline.net_pnl,
    }
    if hold is not None:
        out.update(
            {
                "holdout_best": score(hold.best),
                "holdout_baseline": score(hold.baseline),
                "holdout_best_net_pnl": hold.best.net_pnl,
                "holdout_baseline_net_pnl": hold.baseline.net_pnl,
                "holdout_best_trades": hold.best.trades,
                "holdout_looks": hold.looks,
            }
        )
    return out


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:,.4f}" if isinstance(v, float) else str(v)


def _print(s: dict[str, Any], as_json: bool, report: Path | None) -> None:
    if as_json:
        print_json({**s, "report": None if report is None else str(report)})
        return
    best = s["best_value"][0] if isinstance(s["best_value"], list) else s["best_value"]
    print(
        f"trials: {s['trials_complete']} complete ({s['trials_feasible']} feasible), {s['trials_pruned']} "
        f"pruned, {s['trials_failed']} failed; {_f(s['trials_per_minute'])} trials/min this run"
    )
    print("out of sample, after fees       best trial     baseline (config as given)")
    print(f"  in search ({s['objective']:>7})      {_f(best):>12}   {_f(s['baseline_search']):>12}")
    if "holdout_best" in s:
        print(
            f"  held back ({s['objective']:>7})      {_f(s['holdout_best']):>12}   "
            f"{_f(s['holdout_baseline']):>12}   (look {s['holdout_looks']})"
        )
        print(
            f"  held back net PnL           {_f(s['holdout_best_net_pnl']):>12}   "
            f"{_f(s['holdout_baseline_net_pnl']):>12}"
        )
    print(f"best trial {s['best_trial']}: {s['best_params']}")
    print(f"PBO {_f(s['pbo'])}, DSR {_f(s['dsr'])}: {s['verdict']}")
    for n in s["notes"]:
        print(f"note: {n}")
    if "exported" in s:
        print(f"exported: {s['exported']}")
    if "mlflow_run" in s:
        print(f"mlflow: run {s['mlflow_run']} in experiment orderflow-optimize")
    if report is not None:
        print(f"report: {report}")
