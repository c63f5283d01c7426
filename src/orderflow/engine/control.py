"""Operator controls of a running engine: the kill switch, set from another process through a small
file (``orderflow kill halt|reduce_only|off``) that the engine polls, and the stop policy.

The file holds one word: ``off``, ``reduce_only`` (entries refused, exits allowed) or ``halt`` (every
order refused; the engine stops trading and exits, keeping what is open), or a JSON object
``{"mode": ..., "who": ..., "why": ..., "ts_ns": ...}`` when the dashboard sets it. Its path is
``$ORDERFLOW_KILL_FILE`` or ``<user data dir>/kill-switch``; a missing file means ``off``. One run can
be set apart from the others with ``kill-switch.run-<id>`` beside it; an engine obeys the stricter of
the two.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from orderflow.risk.layout import KILL_MODES


def kill_file(path: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        return Path(path)
    env = os.environ.get("ORDERFLOW_KILL_FILE")
    return Path(env) if env else Path(platformdirs.user_data_dir("orderflow")) / "kill-switch"


def run_kill_file(run_id: int, path: str | os.PathLike[str] | None = None) -> Path:
    """The kill-switch file of one run, beside the global one."""
    p = kill_file(path)
    return p.with_name(f"{p.name}.run-{run_id}")


@dataclass(frozen=True)
class Control:
    """A kill-switch setting and, when the dashboard set it, who set it, when and why."""

    mode: str
    who: str = ""
    why: str = ""
    ts_ns: int = 0


def _write(p: Path, text: str) -> Path:
    if p.is_dir():
        raise IsADirectoryError(f"kill-switch file {p} is a directory")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(p)
    return p


def write_kill(mode: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Set the kill switch (atomic replace, so a reader never sees half a word)."""
    if mode not in KILL_MODES:
        raise ValueError(f"kill switch mode {mode!r}: use one of {', '.join(KILL_MODES)}")
    return _write(kill_file(path), mode + "\n")


def write_control(
    mode: str, who: str, why: str, run_id: int | None = None, path: str | os.PathLike[str] | None = None
) -> Path:
    """Set the kill switch of one run (or, with ``run_id=None``, of every run), saying who and why."""
    if mode not in KILL_MODES:
        raise ValueError(f"kill switch mode {mode!r}: use one of {', '.join(KILL_MODES)}")
    target = kill_file(path) if run_id is None else run_kill_file(run_id, path)
    body = {"mode": mode, "who": who, "why": why, "ts_ns": time.time_ns()}
    return _write(target, json.dumps(body) + "\n")


def _parse(text: str) -> Control:
    text = text.strip()
    if text.startswith("{"):
        try:
            body = json.loads(text)
            mode = str(body.get("mode", ""))
            if mode in KILL_MODES:
                return Control(
                    mode, str(body.get("who", "")), str(body.get("why", "")), int(body.get("ts_ns", 0))
                )
        except (ValueError, TypeError, AttributeError):
            pass
        return Control("halt", why=f"unreadable kill-switch file: {text[:80]!r}")
    return (
        Control(text)
        if text in KILL_MODES
        else Control("halt", why=f"unreadable kill-switch file: {text[:80]!r}")
    )


def read_control(run_id: int | None = None, path: str | os.PathLike[str] | None = None) -> Control:
    """The kill switch in force for ``run_id``: the stricter of the global file and the run's own
    (``halt`` > ``reduce_only`` > ``off``); unreadable content counts as ``halt`` (fail safe)."""
    found = [Control("off")]
    files = [kill_file(path)] + ([run_kill_file(run_id, path)] if run_id is not None else [])
    for p in files:
        try:
            found.append(_parse(p.read_text()))
        except FileNotFoundError:
            continue
    return max(found, key=lambda c: KILL_MODES.index(c.mode))


def read_control_file(p: Path) -> Control:
    """The setting of one kill-switch file alone (``off`` when it is missing; unreadable is ``halt``)."""
    try:
        return _parse(p.read_text())
    except FileNotFoundError:
        return Control("off")


def read_kill(path: str | os.PathLike[str] | None = None) -> str:
    """The kill switch's mode; ``off`` when the file is missing or unreadable garbage is treated as
    ``halt`` (fail safe)."""
    try:
        return _parse(kill_file(path).read_text()).mode
    except FileNotFoundError:
        return "off"


async def watch_kill_switch(
    mode: str,
    on_change: Callable[[Control], bool],
    every_s: float = 0.5,
    path: str | os.PathLike[str] | None = None,
    run_id: int | None = None,
) -> None:
    """Poll the kill switch of ``run_id`` (the stricter of the global and the run's file, see
    :func:`read_control`) every ``every_s`` seconds from ``mode`` on; call ``on_change(control)`` at
    each change, and return once it answers False (the engine stops: ``halt``)."""
    while True:
        c = read_control(run_id, path)
        if c.mode != mode:
            mode = c.mode
            if not on_change(c):
                return
        await asyncio.sleep(every_s)
