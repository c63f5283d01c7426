"""Helpers shared by the ``orderflow`` commands: options every command group adds, the store, SOURCE
arguments, time ranges, the feature matrix, the simulator settings and ``--model`` bundles.

Nothing heavy is imported at module level (the store, the importers, the feature code and the model
registry are imported inside the functions), so ``orderflow --help`` and ``orderflow config`` stay light.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from orderflow.cli import types as T

if TYPE_CHECKING:
    from orderflow.config import Config
    from orderflow.data.simulator import SimulatorConfig
    from orderflow.data.store import Store

log = logging.getLogger("orderflow")

SIM_HOURS = T.float_range(0.0, 24 * 31)  # the simulator's own limits: (0, 31 days]
HTTP_URL = T.url("http", "https")
WS_URL = T.url("ws", "wss")


class UserError(Exception):
    """Bad input from the command line: printed without a traceback, exit status 2."""


# -- options shared by several commands -----------------------------------------------------------------
def add_common(p: argparse.ArgumentParser) -> None:
    """``--store``, ``--config`` and ``--log-level``."""
    p.add_argument(
        "--store",
        type=T.dir_path,
        help="market-data store directory (default: $ORDERFLOW_STORE or the user data dir)",
    )
    p.add_argument(
        "--config",
        type=T.existing_dir,
        help="config directory with YAML files (default: $ORDERFLOW_CONFIG or ./config)",
    )
    p.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override logging.level"
    )


def add_registry(p: argparse.ArgumentParser) -> None:
    """:func:`add_common` and ``--registry``."""
    add_common(p)
    p.add_argument(
        "--registry",
        type=T.registry_location,
        help="registry directory or tracking URL (default: $ORDERFLOW_REGISTRY)",
    )


def add_source(p: argparse.ArgumentParser) -> None:
    """The SOURCE positional (see :func:`resolve_source`) and ``--allow-gaps``."""
    p.add_argument(
        "source", nargs="+", type=T.source, help="VENUE/SYMBOL in the store, or raw Binance recording file(s)"
    )
    add_allow_gaps(p)


def add_allow_gaps(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-gaps",
        action="store_true",
        help="use a raw recording whose depth chain has gaps (refused by default; the gaps are listed)",
    )


def add_ws_routes(p: argparse.ArgumentParser) -> None:
    """``--ws-routes`` of the commands that open Binance WebSockets."""
    p.add_argument("--ws-routes", choices=("auto", "combined", "split"), default="auto",
                   help="USD-M WebSocket layout: split (Binance since 2026-04-23) or combined (legacy, "
                   "local servers); auto = split on Binance's URLs, combined with --ws-url")  # fmt: skip


# -- small things ---------------------------------------------------------------------------------------
def open_store(cfg: Config, args: argparse.Namespace) -> Store:
    """The store of ``--store`` (else ``ORDERFLOW_STORE``, else the config's ``data.store``)."""
    from orderflow.data.store import Store

    root = cfg.store_dir(getattr(args, "store", None))
    if root.exists() and not root.is_dir():  # --store is checked by the parser; this is the env/config one
        raise UserError(f"store {root} is a file, not a directory (ORDERFLOW_STORE or data.store)")
    return Store(root)


def existing_files(names: list[str], problem: str = "no such file") -> list[Path]:
    """The paths, or a UserError naming every one that is not an existing file."""
    paths = [Path(p) for p in names]
    dirs = [str(p) for p in paths if p.is_dir()]
    if dirs:
        raise UserError(f"a directory, not a file: {', '.join(dirs)}")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{problem}: {', '.join(missing)}")
    return paths


def parse_time(text: str) -> int:
    """An ISO date/time (UTC unless it carries an offset) in integer nanoseconds."""
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"not an ISO date/time: {text!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1e9)


def time_range(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """``--start`` / ``--end`` in nanoseconds (None when not given); the end must follow the start."""
    start = parse_time(args.start) if getattr(args, "start", None) else None
    end = parse_time(args.end) if getattr(args, "end", None) else None
    if start is not None and end is not None and end <= start:
        raise UserError(f"--end {args.end} is not after --start {args.start}")
    return start, end


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=1, default=str))


def print_problems(report, limit: int = 50, file=None) -> None:
    """The importer's notes and problems (``file:line: message``) and its gap count, as ``data import``
    prints them."""
    for note in report.notes:
        print(f"note: {note}", file=file)
    for prob in report.problems[:limit]:
        print(f"problem: {prob}", file=file)
    if len(report.problems) > limit:
        print(f"... {len(report.problems) - limit} more problems (use --json)", file=file)


# -- the simulator ----------------------------------------------------------------------------------------
def sim_config(cfg: Config, args: argparse.Namespace) -> SimulatorConfig:
    """The ``simulator`` config section with ``--symbol``, ``--hours``, ``--seed`` and ``--start``."""
    over = {
        k: v
        for k, v in {
            "symbol": getattr(args, "symbol", None),
            "hours": args.hours,
            "seed": args.seed,
            "start": getattr(args, "start", None),
        }.items()
        if v is not None
    }
    return cfg.simulator.model_copy(update=over) if over else cfg.simulator


def progress(done: float, total: float) -> None:
    """The simulator's progress callback: a log line."""
    log.info("simulated %.1f / %.1f h", done, total)


def sim_summary(res) -> str:
    out = f"{res.book_rows:,} book rows, {res.trade_rows:,} trades, {res.regime_rows:,} regime rows"
    if res.context_rows:  # funding, mark price, open interest, ratios, taker volumes, liquidations
        out += f", {res.context_rows:,} market context rows"
    return out


# -- SOURCE arguments and the feature matrix ------------------------------------------------------------
@contextlib.contextmanager
def resolve_source(
    store: Store, source: list[str], allow_gaps: bool = False
) -> Iterator[tuple[Store, str, str, str]]:
    """A SOURCE argument of one symbol (:func:`resolve_sources`; several symbols are refused). Yields
    (store, venue, symbol, display name)."""
    with resolve_sources(store, source, allow_gaps) as (st, pairs, name):
        if len(pairs) != 1:
            raise UserError(f"{name}: expected one symbol, found {', '.join(f'{v}/{s}' for v, s in pairs)}")
        yield st, pairs[0][0], pairs[0][1], name


@contextlib.contextmanager
def resolve_sources(
    store: Store, source: list[str], allow_gaps: bool = False
) -> Iterator[tuple[Store, list[tuple[str, str]], str]]:
    """SOURCE arguments: stored ``VENUE/SYMBOL``s, or raw Binance recording file(s) (of one or several
    symbols), imported on the fly into a temporary store. The import's notes and problems are printed
    to stderr; a recording whose depth chain has gaps is refused unless ``allow_gaps``. Yields (store,
    [(venue, symbol)...] in the order given / sorted, display name)."""
    if all("/" in s and not Path(s).exists() for s in source):
        pairs: list[tuple[str, str]] = []
        for s in source:
            venue, symbol = s.split("/", 1)
            if not store.files(venue, symbol, "book"):
                raise UserError(
                    f"no book data for {venue}/{symbol} in {store.root} (see `orderflow data ls`)"
                )
            if (venue, symbol) in pairs:
                raise UserError(f"{s}: given twice")
            pairs.append((venue, symbol))
        yield store, pairs, " + ".join(source)
        return
    dirs = [p for p in source if Path(p).is_dir()]
    if dirs:
        raise UserError(f"{', '.join(dirs)}: a directory, not a recording file or a stored VENUE/SYMBOL")
    paths = existing_files(source, "neither a stored VENUE/SYMBOL nor an existing file")
    from orderflow.data.importers import import_paths
    from orderflow.data.importers.base import ImportError_
    from orderflow.data.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        tmp_store = Store(tmp)
        try:
            rep = import_paths(tmp_store, paths, "binance-raw")
        except ImportError_ as e:
            raise UserError(str(e)) from None
        print_problems(rep, limit=10, file=sys.stderr)
        name = " + ".join(p.name for p in paths)
        if rep.gaps and not allow_gaps:
            raise UserError(
                f"{name}: the depth chain has {rep.gaps} gap(s) (listed above); the book is invalid around "
                "each one. Give --allow-gaps to use the recording anyway"
            )
        if rep.gaps:
            print(
                f"warning: {name}: using a recording with {rep.gaps} gap(s) (--allow-gaps)", file=sys.stderr
            )
        ds = sorted({(d.venue, d.symbol) for d in tmp_store.ls() if d.kind == "book"})
        if not ds:
            raise UserError(
                f"{source}: no book in the files"
                + (f"; problems: {rep.problems[:3]}" if rep.problems else "")
            )
        yield tmp_store, ds, name


def feature_matrix(cfg: Config, store: Store, venue: str, symbol: str, args: argparse.Namespace):
    """The batch feature matrix of ``venue/symbol`` over ``--start``/``--end``; with
    ``--fit-integrated-until`` the integrated-OFI loadings are fitted on [start, TIME) first."""
    from orderflow.features.batch import build_features, fit_integrated_weights

    start, end = time_range(args)
    fcfg = cfg.features
    if fcfg.tick_size is None:
        inst = store.instrument(venue, symbol)
        if inst is None:
            raise UserError(f"tick size of {venue}/{symbol} unknown: set features.tick_size in the config")
        fcfg = fcfg.model_copy(update={"tick_size": inst.tick_size})
    if venue == "binance-spot" and fcfg.futures:  # no funding on spot
        fcfg = fcfg.model_copy(update={"futures": False})
    fit_until = getattr(args, "fit_integrated_until", None)
    if fit_until:
        t_fit = parse_time(fit_until)
        book = store.read(venue, symbol, "book", start, t_fit)
        try:
            w = fit_integrated_weights(book, fcfg, start or 0, t_fit)
        except ValueError as e:
            raise UserError(str(e)) from None
        log.info("integrated-OFI loadings fitted on [%s, %s): %s", args.start or "start", fit_until, w)
        fcfg = fcfg.model_copy(update={"integrated_weights": w})
    t0 = time.perf_counter()
    try:
        x = build_features(store, venue, symbol, fcfg, start, end)
    except ValueError as e:
        raise UserError(str(e)) from None
    log.info("built %d x %d features in %.1f s", len(x), x.shape[1] - 3, time.perf_counter() - t0)
    return x


# -- --model --------------------------------------------------------------------------------------------
def model_bundle(args: argparse.Namespace, optional: bool = False) -> Path | None:
    """``--model``: a bundle directory, a registry version number, or an alias (production = champion).
    ``optional``: None instead of an error when the alias points to no version."""
    from orderflow.models.registry import Registry, RegistryError

    spec = args.model
    if Path(spec).is_dir():
        return Path(spec)
    reg = Registry(getattr(args, "registry", None))
    alias = "champion" if spec in ("production", "champion", "auto") else spec
    try:
        version = alias if alias.isdigit() else reg.resolve(alias)
        if version is None:
            if optional:
                return None
            raise UserError(
                f"--model {spec}: no version has the alias {alias!r} in {reg}; train and promote one "
                "(`orderflow models train ...`, `orderflow models promote N`) or pass a bundle directory"
            )
        return reg.load_bundle(version)
    except RegistryError as e:
        raise UserError(f"--model {spec}: {e}") from None
