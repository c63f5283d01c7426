"""``orderflow models ...``: train, evaluate, version and promote models (torch and the model code are
imported inside the handlers)."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderflow.cli import types as T
from orderflow.cli.common import (
    UserError,
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
    from orderflow.models.registry import Registry

log = logging.getLogger("orderflow.models")

Handler = Callable[["Config", argparse.Namespace], int]


def register(subparsers: Any) -> None:
    """Add ``models`` and its sub-commands to ``subparsers``."""
    models = subparsers.add_parser(
        "models", help="train, evaluate, version and promote models"
    ).add_subparsers(dest="models_command", required=True)

    p = models.add_parser("train", help="train every member and the ensemble; register a version")
    add_registry(p)
    add_source(p)
    p.add_argument("--quick", action="store_true", help="small configurations: a smoke run in under a minute")
    p.add_argument("--report", type=T.dir_path, help="directory for the evaluation report (HTML + JSON)")
    p.add_argument("--members", type=T.name_list, help="comma-separated subset of members to train")
    p.add_argument("--start", type=T.iso_time, help="ISO date/time (UTC)")
    p.add_argument("--end", type=T.iso_time, help="ISO date/time (UTC)")
    p.set_defaults(handler=models_train)
    p = models.add_parser("ls", help="registered versions with members, metrics and aliases")
    add_registry(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=models_ls)
    p = models.add_parser("evaluate", help="stored out-of-sample metrics and the golden-rule verdict")
    add_registry(p)
    p.add_argument("version", type=T.version_ref, help="version number or alias (champion, previous)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=models_evaluate)
    p = models.add_parser("promote", help="make a version the champion if it passes the golden rule")
    add_registry(p)
    p.add_argument("version", type=T.version_ref)
    p.add_argument("--force", action="store_true", help="bypass the golden rule (logged)")
    p.set_defaults(handler=models_promote)
    p = models.add_parser("rollback", help="move the champion alias back to the previous champion")
    add_registry(p)
    p.set_defaults(handler=models_rollback)


def _registry_errors(fn: Handler) -> Handler:
    """Registry failures (unknown version, no previous champion, ...) become clear CLI errors."""

    @functools.wraps(fn)
    def wrapper(cfg: Config, args: argparse.Namespace) -> int:
        from orderflow.models.registry import PromotionRefused, RegistryError

        try:
            return fn(cfg, args)
        except (PromotionRefused, RegistryError) as e:
            raise UserError(str(e)) from None

    return wrapper


def _registry(args: argparse.Namespace) -> Registry:
    from orderflow.models.registry import Registry

    return Registry(getattr(args, "registry", None))


def models_train(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.models.train import ALL_MEMBERS, labelled_dataset, train_models, write_report

    mcfg = cfg.models
    mcfg = mcfg.quick() if args.quick else mcfg
    if args.members:
        names = tuple(m.strip() for m in args.members.split(",") if m.strip())
        unknown = [m for m in names if m not in ALL_MEMBERS]
        if unknown:
            raise UserError(f"unknown member(s) {unknown}; known: {', '.join(ALL_MEMBERS)}")
        mcfg = mcfg.model_copy(update={"members": names})
    registry = _registry(args)
    gaps = getattr(args, "allow_gaps", False)  # demo runs this with its own arguments
    with resolve_source(open_store(cfg, args), args.source, gaps) as (store, venue, symbol, name):
        x = feature_matrix(cfg, store, venue, symbol, args)
        start, end = time_range(args)
        book = store.read(venue, symbol, "book", start, end, columns=["ts_event", "bid_px_1", "ask_px_1"])
    ds, mid = labelled_dataset(x, book, cfg.labels, mcfg.sample_every_s)
    if ds.n_samples < 200:
        raise UserError(
            f"{name}: only {ds.n_samples} labelled samples; need at least 200 to train and evaluate"
        )
    print(
        f"{name}: {ds.n_samples:,} labelled samples x {len(ds.feature_names)} features; "
        f"members {', '.join(mcfg.members)}{' (quick)' if args.quick else ''}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        res = train_models(
            ds, mcfg, Path(tmp) / "bundle", f"{venue}/{symbol} ({name})", progress=print, mid=mid
        )
        res.version = registry.register(res.bundle_dir, name=mcfg.model_name, tags={"source": name})
    report_dir = Path(args.report) if args.report else _reports_dir(args) / f"v{res.version}"
    jpath, hpath = write_report(res, report_dir, f"orderflow models: {name}")
    from orderflow.models.train import summary_table

    print(summary_table(res.folds).to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"registered {mcfg.model_name} version {res.version} in {registry}; report {hpath} and {jpath}")
    return 0


def _reports_dir(args: argparse.Namespace) -> Path:
    from orderflow.models.registry import default_registry_location

    loc = default_registry_location(getattr(args, "registry", None))
    return Path("reports") if "://" in loc or loc.startswith("sqlite:") else Path(loc) / "reports"


@_registry_errors
def models_ls(cfg: Config, args: argparse.Namespace) -> int:
    rows = _registry(args).ls(cfg.models.model_name)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no registered versions")
    for r in rows:
        print(json.dumps(r, default=str))
    return 0


@_registry_errors
def models_evaluate(cfg: Config, args: argparse.Namespace) -> int:
    mcfg = cfg.models
    out = _registry(args).evaluate(args.version, rule=mcfg.rule, name=mcfg.model_name)
    print_json(out)
    return 0


@_registry_errors
def models_promote(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.models.registry import PromotionRefused

    try:
        mcfg = cfg.models
        v = _registry(args).promote(args.version, rule=mcfg.rule, force=args.force, name=mcfg.model_name)
    except PromotionRefused as e:
        raise UserError(str(e)) from None
    print(f"version {v} is now the champion")
    return 0


@_registry_errors
def models_rollback(cfg: Config, args: argparse.Namespace) -> int:
    v = _registry(args).rollback(cfg.models.model_name)
    print(f"champion rolled back to version {v}")
    return 0
