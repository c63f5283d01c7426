"""``orderflow research ...``: studies over stored or raw data."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from orderflow.cli import types as T
from orderflow.cli.common import UserError, add_common, add_source, open_store, print_json, resolve_source

if TYPE_CHECKING:
    from orderflow.config import Config


def register(subparsers: Any) -> None:
    """Add ``research`` and its sub-commands to ``subparsers``."""
    research = subparsers.add_parser(
        "research", help="research studies over stored or raw data"
    ).add_subparsers(dest="research_command", required=True)
    p = research.add_parser("impact", help="price impact of OFI: R^2 of mid change on OFI per interval")
    add_common(p)
    add_source(p)
    p.add_argument(
        "--intervals", type=T.float_list, default="1,10,60", help="bucket lengths in seconds, comma-separated"
    )
    p.add_argument(
        "--levels", type=T.int_range(1, 20), default=10, help="book levels for the multi-level regressions"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=research_impact)


def _float_list(text: str, what: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what} wants comma-separated numbers, got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise UserError(f"{what} wants positive numbers, got {text!r}")
    return vals


def research_impact(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.research.impact import impact_from_store, render_impact

    intervals = _float_list(args.intervals, "--intervals")
    if not 1 <= args.levels <= 20:
        raise UserError(f"--levels must be within 1..20 (the stored book depth), got {args.levels}")
    with resolve_source(open_store(cfg, args), args.source, args.allow_gaps) as (store, venue, symbol, name):
        result = impact_from_store(store, venue, symbol, intervals_s=tuple(intervals), levels=args.levels)
    if args.json:
        print_json({"source": name, **result})
    else:
        print(render_impact(result))
    return 0
