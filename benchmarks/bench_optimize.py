"""Parameter search throughput and sampler quality. Prints figures; not a test.

    .venv/bin/python benchmarks/bench_optimize.py                   # 24 simulated hours, default walk-forward
    .venv/bin/python benchmarks/bench_optimize.py --hours 3 --train-hours 1 --test-hours 0.5 --trials 10 \\
        --budget 30 --seeds 1                                       # a smoke run (about a minute)
    .venv/bin/python benchmarks/bench_optimize.py --ray-workers 1,2   # also on 1 and 2 local Ray workers

1. **Level (a) trials per minute**: the simulator (``--hours``, seed 1), its features and labels, the
   walk-forward probabilities of the search windows computed once (timed apart: the models' training),
   then ``--trials`` trials of the example space (``config/optimize/space.yaml``) with TPE, each
   re-running only the backtest of every test window: on the default SQLite storage and on a journal
   file. The first trial (numba's cache load) is timed apart. With ``--ray-workers 1,2``: the same on a
   local Ray of 1 and of 2 CPUs (``orderflow optimize run --ray``: the driver asks and tells on SQLite,
   the tasks run the backtests), its first round of trials (the workers' start) timed apart, and the
   speed-up over 1 worker and over a sequential run without the pruner (Ray runs every window).
2. **Level (b) trials per minute** (``--trials-b``, default 8): a label key and a model key next to two
   strategy keys, random sampler: each new (labels, model) point relabels and trains its windows;
   sequentially and on local Rays of ``--ray-workers`` CPUs (every worker first rebuilds the inputs
   from the store, timed in).
3. **Distance to a planted optimum per sampler**: the three-key synthetic objective of
   ``tests/unit/test_optimize_study.py`` (distance scaled to each key's range), ``--budget`` trials per
   study on a journal file, mean and worst best distance over ``--seeds`` seeds for TPE, NSGA-II,
   CMA-ES and random.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OPTIMUM = {"strategy.confidence_gate": 0.72, "strategy.take_profit_r": 1.3, "risk.max_loss_per_trade": 0.017}
SYNTHETIC = """\
study: {objective: sharpe, pruner: none}
space:
  strategy.confidence_gate: {low: 0.5, high: 0.9}
  strategy.take_profit_r: {low: 0.5, high: 2.0}
  risk.max_loss_per_trade: {low: 0.01, high: 0.03, log: true}
"""


def distance(v: dict[str, float]) -> float:
    a = (v["strategy.confidence_gate"] - 0.72) / 0.4
    b = (v["strategy.take_profit_r"] - 1.3) / 1.5
    c = (math.log(v["risk.max_loss_per_trade"]) - math.log(0.017)) / math.log(3.0)
    return math.sqrt(a * a + b * b + c * c)


def level_a(args: argparse.Namespace, tmp: Path) -> None:
    from orderflow.backtest.engine import Market
    from orderflow.config import load_config
    from orderflow.core.instruments import Instrument
    from orderflow.data.simulator import simulate
    from orderflow.data.store import Store
    from orderflow.features.batch import build_features
    from orderflow.models.train import labelled_dataset
    from orderflow.optimize import study as SD
    from orderflow.optimize.space import load_space

    cfg = load_config(ROOT / "config")
    wf = {k: v for k, v in (("train_hours", args.train_hours), ("test_hours", args.test_hours)) if v}
    if wf:
        cfg = cfg.model_copy(update={"walkforward": cfg.walkforward.model_copy(update=wf)})
    sc = cfg.simulator.model_copy(update={"hours": args.hours, "seed": 1})
    store = Store(tmp / "store")
    t = time.perf_counter()
    simulate(sc, store=store)
    inst = store.instrument(sc.venue, sc.symbol)
    inst = inst if isinstance(inst, Instrument) else Instrument(**inst)
    fcfg = cfg.features.model_copy(update={"tick_size": inst.tick_size})
    feats = build_features(store, sc.venue, sc.symbol, fcfg)
    book = store.read(sc.venue, sc.symbol, "book")
    market = Market.from_frames(sc.venue, sc.symbol, book, store.read(sc.venue, sc.symbol, "trade"))
    models = cfg.models if args.full_models else cfg.models.quick()
    ds, mid = labelled_dataset(
        feats, book[["ts_event", "bid_px_1", "ask_px_1"]], cfg.labels, models.sample_every_s
    )
    took = time.perf_counter() - t
    print(f"data: {args.hours:g} simulated hours, {market.n_book:,} book events ({took:.0f} s)")
    space = load_space(ROOT / "config" / "optimize" / "space.yaml")
    t = time.perf_counter()
    prep = SD.prepare(
        cfg, models, market, feats, ds, mid, inst, space.settings, tmp / "cache", lambda s: None
    )
    w = cfg.walkforward
    n_win = len(prep.search.windows)
    print(f"walk-forward {w.train_hours:g} h / {w.test_hours:g} h, {n_win} search windows: "
          f"probabilities computed once in {time.perf_counter() - t:.1f} s "
          f"({'full' if args.full_models else 'quick'} members {', '.join(models.members)})")  # fmt: skip
    rates: dict[str, float] = {}
    for label, storage in (("SQLite", SD.default_storage(tmp / "sqlite")), ("journal", str(tmp / "j.log"))):
        study = SD.open_study("bench", storage, space, "tpe", 0, args.trials + 1)
        t = time.perf_counter()
        SD.search(prep, space, cfg, study, 1)
        first = time.perf_counter() - t
        t = time.perf_counter()
        SD.search(prep, space, cfg, study, args.trials + 1)
        dt = time.perf_counter() - t
        rates[label] = 60 * args.trials / dt
        print(f"level (a), TPE, {label:>7} storage: {rates[label]:7.1f} trials/min "
              f"({args.trials} trials in {dt:.1f} s; the first trial {first:.1f} s)")  # fmt: skip
    if args.ray_workers:  # Ray runs every window of every trial: the sequential figure to match
        space = type(space)(space.params, space.settings.model_copy(update={"pruner": "none"}), space.source)
        study = SD.open_study("bench", SD.default_storage(tmp / "nopruner"), space, "tpe", 0, args.trials + 1)
        SD.search(prep, space, cfg, study, 1)
        t = time.perf_counter()
        SD.search(prep, space, cfg, study, args.trials + 1)
        rates["seq"] = 60 * args.trials / (time.perf_counter() - t)
        print(f"level (a), TPE,  SQLite storage, no pruner (every window, as on Ray): {rates['seq']:7.1f} "
              "trials/min")  # fmt: skip
    for n in args.ray_workers:
        r = rates[f"ray{n}"] = ray_level_a(prep, space, cfg, tmp / f"ray{n}", n, args.trials)
        than = f"x{r / rates['seq']:.2f} the sequential run without pruner"
        if n != 1 and "ray1" in rates:
            than += f", x{r / rates['ray1']:.2f} 1 Ray worker"
        print(f"level (a), TPE, Ray {n} worker(s), SQLite: {r:7.1f} trials/min ({than})")
    if args.trials_b:
        level_b(args, tmp, cfg, prep, sc)


SPACE_B = """\
study: {objective: sharpe, min_trades: 10, pruner: none}
space:
  labels.horizon_s: {choices: [30.0, 60.0, 120.0]}
  models.expert.lgbm_n_estimators: {low: 30, high: 90, step: 30}
  strategy.confidence_gate: {low: 0.5, high: 0.9}
  strategy.take_profit_r: {low: 0.5, high: 2.0}
"""


def level_b(args: argparse.Namespace, tmp: Path, cfg, prep, sc) -> None:
    """Level (b) trials per minute: a label key and a model key next to two strategy keys (random
    sampler, no pruner); a new (labels, model) point relabels and trains its search windows, a point
    drawn again trains nothing. Sequential, then on local Rays of ``--ray-workers`` CPUs (each worker
    rebuilds the inputs from the store first: timed in)."""
    from orderflow.cli.optimize import StoreSource
    from orderflow.optimize import distributed as DIST
    from orderflow.optimize import study as SD
    from orderflow.optimize.recompute import Recompute
    from orderflow.optimize.space import load_space

    (tmp / "level_b.yaml").write_text(SPACE_B)
    space = load_space(tmp / "level_b.yaml")
    source = StoreSource(str(tmp / "store"), sc.venue, sc.symbol, None, None)
    top = source.load()[1]
    runs = [0, *args.ray_workers]
    for n in runs:
        cache = tmp / f"cache-b{n}"
        shutil.copytree(tmp / "cache", cache)  # the base's windows, as the driver would have them
        prep.recompute = Recompute(cfg, prep, source.features, top, cache, lambda s: None, source=source)
        study = SD.open_study("bench-b", str(tmp / f"b{n}.log"), space, "random", 0, args.trials_b)
        t = time.perf_counter()
        if n == 0:
            SD.search(prep, space, cfg, study, args.trials_b)
        else:
            with DIST.connect(num_cpus=n):
                DIST.run_trials(study, space, DIST.score_rebuilt, prep.recompute.spec(space.settings),
                                args.trials_b, say=lambda s: None)  # fmt: skip
        dt = time.perf_counter() - t
        points = {(t.params["labels.horizon_s"], t.params["models.expert.lgbm_n_estimators"])
                  for t in study.get_trials(deepcopy=False)}  # fmt: skip
        where = "sequential" if n == 0 else f"Ray, {n} worker(s)"
        print(f"level (b), random, {where}: {60 * args.trials_b / dt:6.2f} trials/min ({args.trials_b} "
              f"trials, {len(points)} (labels, model) points trained, in {dt:.0f} s)")  # fmt: skip
    prep.recompute = None


def ray_level_a(prep, space, cfg, tmp: Path, n: int, trials: int) -> float:
    """Trials per minute on a local Ray of ``n`` CPUs, after a first round of ``n`` trials."""
    from orderflow.optimize import distributed as DIST
    from orderflow.optimize import study as SD

    shared = (prep.search, cfg, space.settings)
    with DIST.connect(num_cpus=n) as cluster:
        assert cluster.cpus == n
        study = SD.open_study("bench", SD.default_storage(tmp), space, "tpe", 0, trials + n)
        t = time.perf_counter()
        DIST.run_trials(study, space, DIST.score_point, shared, n, say=lambda s: None)
        first = time.perf_counter() - t
        t = time.perf_counter()
        DIST.run_trials(study, space, DIST.score_point, shared, trials + n, say=lambda s: None)
        dt = time.perf_counter() - t
    print(
        f"  Ray, {n} worker(s): {trials} trials in {dt:.1f} s; the first {n} (workers' start) {first:.1f} s"
    )
    return 60 * trials / dt


def samplers(args: argparse.Namespace, tmp: Path) -> None:
    from orderflow.optimize import study as SD
    from orderflow.optimize.space import load_space

    (tmp / "synthetic.yaml").write_text(SYNTHETIC)
    space = load_space(tmp / "synthetic.yaml")

    def objective(trial):
        return -(distance(space.sample(trial)) ** 2)

    print(f"synthetic objective, {args.budget} trials per study, {args.seeds} seed(s); best distance to the "
          "optimum (scaled to each key's range):")  # fmt: skip
    for name in ("tpe", "nsga2", "cmaes", "random"):
        d, t = [], time.perf_counter()
        for seed in range(args.seeds):
            study = SD.open_study(f"{name}-{seed}", str(tmp / "s.log"), space, name, seed, args.budget)
            SD.run_study(study, objective, args.budget)
            d.append(distance(study.best_trial.params))
        print(f"  {name:>6}: mean {np.mean(d):.4f}, worst {max(d):.4f} ({time.perf_counter() - t:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    ap.add_argument("--train-hours", type=float, help="override walkforward.train_hours")
    ap.add_argument("--test-hours", type=float, help="override walkforward.test_hours")
    ap.add_argument("--full-models", action="store_true", help="members at their configured sizes")
    ap.add_argument("--trials", type=int, default=60, help="level (a) trials timed per storage (default 60)")
    ap.add_argument("--budget", type=int, default=60, help="trials per synthetic study (default 60)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds per sampler (default 5)")
    ap.add_argument("--skip-level-a", action="store_true", help="only the synthetic samplers")
    ap.add_argument(
        "--ray-workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[],
        help="level (a) on local Rays of these CPU counts too, e.g. 1,2 (needs the scale extra)",
    )
    ap.add_argument("--skip-samplers", action="store_true", help="only level (a)")
    ap.add_argument("--trials-b", type=int, default=8, help="level (b) trials per run (0: none; default 8)")
    args = ap.parse_args()
    import logging
    import warnings

    logging.getLogger("orderflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as d:
        if not args.skip_level_a:
            level_a(args, Path(d))
        if not args.skip_samplers:
            samplers(args, Path(d))


if __name__ == "__main__":
    main()
