"""Handlers behind ``orderflow models ...`` (kept apart so the data commands do not import torch)."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from orderflow.commands import UserError, _feature_matrix, _print_json, _store, _time_range, resolve_source
from orderflow.config import Config

log = logging.getLogger("orderflow.models")


def models_config(cfg: Config):
    """The ``models`` config section validated as :class:`ModelsConfig` (errors name the bad key)."""
    from pydantic import ValidationError

    from orderflow.models.train import ModelsConfig

    try:
        return ModelsConfig.model_validate(cfg.models)
    except ValidationError as e:
        bad = "; ".join(
            f"models.{'.'.join(str(x) for x in err['loc'])}: "
            + ("unknown key" if err["type"] == "extra_forbidden" else err["msg"])
            for err in e.errors()
        )
        raise UserError(f"invalid models configuration: {bad}") from None


def _registry_errors(fn):
    """Registry failures (unknown version, no previous champion, ...) become clear CLI errors."""
    import functools

    @functools.wraps(fn)
    def wrapper(cfg: Config, args: argparse.Namespace) -> int:
        from orderflow.models.registry import PromotionRefused, RegistryError

        try:
            return fn(cfg, args)
        except (PromotionRefused, RegistryError) as e:
            raise UserError(str(e)) from None

    return wrapper


def _registry(args: argparse.Namespace):
    from orderflow.models.registry import Registry

    return Registry(getattr(args, "registry", None))


def models_train(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.models.train import ALL_MEMBERS, labelled_dataset, train_models, write_report

    mcfg = models_config(cfg)
    mcfg = mcfg.quick() if args.quick else mcfg
    if args.members:
        names = tuple(m.strip() for m in args.members.split(",") if m.strip())
        unknown = [m for m in names if m not in ALL_MEMBERS]
        if unknown:
            raise UserError(f"unknown member(s) {unknown}; known: {', '.join(ALL_MEMBERS)}")
        mcfg = mcfg.model_copy(update={"members": names})
    registry = _registry(args)
    gaps = getattr(args, "allow_gaps", False)  # demo runs this with its own arguments
    with resolve_source(_store(cfg, args), args.source, gaps) as (store, venue, symbol, name):
        x = _feature_matrix(cfg, store, venue, symbol, args)
        start, end = _time_range(args)
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
    rows = _registry(args).ls(models_config(cfg).model_name)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no registered versions")
    for r in rows:
        print(json.dumps(r, default=str))
    return 0


@_registry_errors
def models_evaluate(cfg: Config, args: argparse.Namespace) -> int:
    mcfg = models_config(cfg)
    out = _registry(args).evaluate(args.version, rule=mcfg.rule, name=mcfg.model_name)
    _print_json(out)
    return 0


@_registry_errors
def models_promote(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.models.registry import PromotionRefused

    try:
        mcfg = models_config(cfg)
        v = _registry(args).promote(args.version, rule=mcfg.rule, force=args.force, name=mcfg.model_name)
    except PromotionRefused as e:
        raise UserError(str(e)) from None
    print(f"version {v} is now the champion")
    return 0


@_registry_errors
def models_rollback(cfg: Config, args: argparse.Namespace) -> int:
    v = _registry(args).rollback(models_config(cfg).model_name)
    print(f"champion rolled back to version {v}")
    return 0
