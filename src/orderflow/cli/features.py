"""``orderflow features ...``: list the feature set, build a feature matrix, select features."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderflow.cli import types as T
from orderflow.cli.common import (
    UserError,
    add_common,
    add_source,
    feature_matrix,
    open_store,
    print_json,
    resolve_source,
    time_range,
)

if TYPE_CHECKING:
    from orderflow.config import Config


def register(subparsers: Any) -> None:
    """Add ``features`` and its sub-commands to ``subparsers``."""
    feats = subparsers.add_parser("features", help="feature engine: list, build, select").add_subparsers(
        dest="features_command", required=True
    )
    p = feats.add_parser("list", help="the default feature set: name, group, definition, window, unit")
    add_common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=features_list)

    p = feats.add_parser("build", help="write the feature matrix (ts_event, features, valid) to Parquet")
    add_common(p)
    add_source(p)
    p.add_argument("--out", required=True, type=T.parquet_file, help="output .parquet file")
    p.add_argument("--start", type=T.iso_time, help="ISO date/time (UTC): first event read")
    p.add_argument("--end", type=T.iso_time, help="ISO date/time (UTC): events before this are read")
    p.add_argument(
        "--fit-integrated-until",
        metavar="TIME",
        type=T.iso_time,
        help="fit the integrated-OFI loadings on [start, TIME) (an explicit training window) and use them",
    )
    p.set_defaults(handler=features_build)

    p = feats.add_parser(
        "select", help="rank features by out-of-sample importance across purged walk-forward folds"
    )
    add_common(p)
    add_source(p)
    p.add_argument(
        "--out",
        type=T.file_path,
        help="where to record the chosen set (JSON); default <store>/selections/...",
    )
    p.add_argument("--n-keep", type=T.positive_int, help="features to keep (default: selection.n_keep)")
    p.add_argument(
        "--folds", type=T.positive_int, help="walk-forward test folds (default: selection.n_folds)"
    )
    p.add_argument("--start", type=T.iso_time, help="ISO date/time (UTC)")
    p.add_argument("--end", type=T.iso_time, help="ISO date/time (UTC)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=features_select)


def features_list(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.features.registry import default_specs, group_counts

    specs = default_specs(cfg.features)
    if args.json:
        print_json([s.__dict__ for s in specs])
        return 0
    for s in specs:
        print(f"{s.name:<34} {s.group:<9} {s.unit:<12} {s.window:<22} {s.definition}")
    counts = ", ".join(f"{g} {n}" for g, n in group_counts(specs).items())
    print(f"{len(specs)} features ({counts})")
    return 0


def features_build(cfg: Config, args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".parquet":
        raise UserError(f"--out must name a .parquet file, got {out}")
    with resolve_source(open_store(cfg, args), args.source, args.allow_gaps) as (store, venue, symbol, name):
        x = feature_matrix(cfg, store, venue, symbol, args)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    x.to_parquet(tmp, index=False)
    tmp.replace(out)  # never a half-written matrix under the final name
    valid = int(x["valid"].sum())
    reasons = x.loc[~x["valid"], "invalid_reason"].value_counts().to_dict()
    print(f"{name}: {len(x):,} rows x {x.shape[1] - 3} features -> {out}; valid {valid:,}; invalid {reasons}")
    return 0


def features_select(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.features.labels import triple_barrier
    from orderflow.features.ofi import mid_price
    from orderflow.features.selection import select_features

    scfg = cfg.selection
    over = {k: v for k, v in {"n_keep": args.n_keep, "n_folds": args.folds}.items() if v is not None}
    if over:
        scfg = scfg.model_validate({**scfg.model_dump(), **over})
    root = open_store(cfg, args)
    with resolve_source(root, args.source, args.allow_gaps) as (store, venue, symbol, name):
        x = feature_matrix(cfg, store, venue, symbol, args)
        start, end = time_range(args)
        book = store.read(venue, symbol, "book", start, end, columns=["ts_event", "bid_px_1", "ask_px_1"])
    ts = book["ts_event"].to_numpy()
    mid = mid_price(book["bid_px_1"].to_numpy(), book["ask_px_1"].to_numpy())
    labels = triple_barrier(ts, mid, x["ts_event"].to_numpy(), cfg.labels, by="ts")
    n_keep = min(scfg.n_keep, x.shape[1] - 3)
    if n_keep != scfg.n_keep:
        scfg = scfg.model_copy(update={"n_keep": n_keep})
    try:
        res = select_features(x, labels, scfg)
    except ValueError as e:
        raise UserError(f"{name}: {e}") from None
    out = Path(args.out) if args.out else root.root.parent / "selections" / f"{venue}_{symbol}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(res.to_json())
    doc.update({"source": name, "venue": venue, "symbol": symbol, "labels": cfg.labels.model_dump()})
    out.write_text(json.dumps(doc, indent=2))
    if args.json:
        print_json(doc)
    else:
        print(res.ranking.head(scfg.n_keep).to_string(index=False))
        print(res.folds.to_string(index=False))
        print(f"kept {len(res.selected)} of {x.shape[1] - 3} features; recorded in {out}")
    scored = res.folds[~res.folds["skipped"].astype(bool)]
    beat = int((scored["log_loss"] < scored["log_loss_prior"]).sum())
    if beat * 2 <= len(scored):
        print(
            f"warning: the model beat the class prior out of sample on only {beat} of {len(scored)} folds; "
            "importance rankings from a model without out-of-sample skill are weak evidence",
            file=sys.stderr,
        )
    return 0
