"""Operator controls of a running engine: the kill switch, set from another process through a small
file (``orderflow kill halt|reduce_only|off``) that the engine polls, and the stop policy.

The file holds one word: ``off``, ``reduce_only`` (entries refused, exits allowed) or ``halt`` (every
order refused; the engine stops trading and exits, keeping what is open). Its path is
``$ORDERFLOW_KILL_FILE`` or ``<user data dir>/kill-switch``; a missing file means ``off``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import platformdirs

from orderflow.risk.layout import KILL_MODES


def kill_file(path: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        return Path(path)
    env = os.environ.get("ORDERFLOW_KILL_FILE")
    return Path(env) if env else Path(platformdirs.user_data_dir("orderflow")) / "kill-switch"


def write_kill(mode: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Set the kill switch (atomic replace, so a reader never sees half a word)."""
    if mode not in KILL_MODES:
        raise ValueError(f"kill switch mode {mode!r}: use one of {', '.join(KILL_MODES)}")
    p = kill_file(path)
    if p.is_dir():
        raise IsADirectoryError(f"kill-switch file {p} is a directory")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(mode + "\n")
    tmp.replace(p)
    return p


def read_kill(path: str | os.PathLike[str] | None = None) -> str:
    """The kill switch's mode; ``off`` when the file is missing or unreadable garbage is treated as
    ``halt`` (fail safe)."""
    p = kill_file(path)
    try:
        word = p.read_text().strip()
    except FileNotFoundError:
        return "off"
    return word if word in KILL_MODES else "halt"


async def watch_kill_switch(mode: str, on_change: Callable[[str], bool], every_s: float = 0.5,
                            path: str | os.PathLike[str] | None = None) -> None:  # fmt: skip
    """Poll the kill switch every ``every_s`` seconds from ``mode`` on; call ``on_change(new_mode)`` at
    each change, and return once it answers False (the engine stops: ``halt``)."""
    while True:
        new = read_kill(path)
        if new != mode:
            mode = new
            if not on_change(new):
                return
        await asyncio.sleep(every_s)
