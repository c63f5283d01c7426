"""``orderflow config``: print the effective configuration (YAML). Imports only ``orderflow.config``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from orderflow.cli.common import add_common

if TYPE_CHECKING:
    from orderflow.config import Config


def register(subparsers: Any) -> None:
    """Add ``config`` to ``subparsers``."""
    p = subparsers.add_parser("config", help="show the effective configuration")
    add_common(p)
    p.set_defaults(handler=show_config)


def show_config(cfg: Config, args: argparse.Namespace) -> int:
    from orderflow.config import dump_yaml

    print(dump_yaml(cfg), end="")
    return 0
