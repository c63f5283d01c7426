"""``orderflow run``: market data only. Simulate a market on embedded defaults, store it, check it and
print its stylized facts."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from orderflow.cli import types as T
from orderflow.cli.common import (
    SIM_HOURS,
    add_common,
    open_store,
    print_json,
    progress,
    sim_config,
    sim_summary,
)
from orderflow.cli.data import render_ls

if TYPE_CHECKING:
    from orderflow.config import Config


def register(subparsers: Any) -> None:
    """Add ``run`` to ``subparsers``."""
    p = subparsers.add_parser(
        "run", help="market data only: simulate a market, store it, check it and print its stylized facts"
    )
    add_common(p)
    p.add_argument("--hours", type=SIM_HOURS, help="simulated hours (default: simulator.hours from config)")
    p.add_argument("--seed", type=T.non_negative_int, help="simulator seed (default: simulator.seed)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run_main_job)


def run_main_job(cfg: Config, args: argparse.Namespace) -> int:
    """Simulate a market on embedded defaults, store it, check it and print its stylized facts."""
    from orderflow.data.quality import check, render
    from orderflow.data.simulator import simulate
    from orderflow.research.facts import compute_facts, render_facts

    store = open_store(cfg, args)
    sc = sim_config(cfg, args)
    t0 = time.perf_counter()
    if not args.json:
        print(f"orderflow {sc.hours:g} h market simulation of {sc.symbol} (seed {sc.seed}) into {store.root}")
    res = simulate(sc, store=store, progress=progress)
    t_sim = time.perf_counter() - t0
    report = check(store, venue=sc.venue, symbol=sc.symbol, thresholds=cfg.quality)
    facts = compute_facts(store, sc.venue, sc.symbol)
    failures = report.failures(cfg.quality)
    if args.json:
        print_json(
            {
                "simulation": sim_summary(res),
                "seconds": round(t_sim, 2),
                "quality": report.to_dict(),
                "quality_failures": failures,
                "facts": facts,
            }
        )
    else:
        print(f"\nsimulated in {t_sim:.1f} s: {sim_summary(res)}\n")
        print(render_ls(store))
        print("\ndata quality")
        print(render(report))
        for f in failures:
            print(f"FAIL: {f}")
        print("\nstylized facts")
        print(render_facts({f"{sc.venue}/{sc.symbol}": facts}))
    return 1 if failures else 0
