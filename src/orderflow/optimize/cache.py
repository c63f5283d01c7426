"""The cache of level (a): out-of-sample probabilities a walk-forward computed once, on disk.

A strategy, risk, execution or account parameter changes only the backtest, never the probabilities
(:func:`orderflow.backtest.walkforward.iter_window_probabilities`), so every trial of such a study
re-runs the backtest over the same cached arrays. The key is a hash of what the probabilities depend
on: the market data (every event array), the feature, label and model configs, the dataset's sampling
and the window layout (the spans and the walk-forward config). Changing any of them misses the cache.

One entry is ``<dir>/<key>.npz`` (the probabilities and row ranges) and ``<dir>/<key>.json`` (the rest),
written to a temporary name and renamed, so a crash leaves no half entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from orderflow.backtest.engine import Market
from orderflow.backtest.walkforward import WindowProbabilities

VERSION = 1


def data_hash(market: Market) -> str:
    """A hash of every event array of ``market`` (times, levels, sizes, trades)."""
    h = hashlib.sha256()
    for name in (
        "b_ts",
        "b_recv",
        "bid_px",
        "bid_sz",
        "ask_px",
        "ask_sz",
        "t_ts",
        "t_recv",
        "t_px",
        "t_sz",
        "t_side",
    ):
        a = np.ascontiguousarray(getattr(market, name))
        h.update(f"{name}{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:24]


def cache_key(data: str, configs: dict[str, Any], windows: Sequence[tuple[int, int]]) -> str:
    """The entry's name: ``data`` (:func:`data_hash`), the configs the probabilities depend on (as JSON)
    and the window layout."""
    blob = json.dumps(
        {"v": VERSION, "data": data, "configs": configs, "windows": [list(w) for w in windows]},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _save(path: Path, wps: list[WindowProbabilities]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"p{i}": w.probs for i, w in enumerate(wps)}
    meta = [
        {
            k: getattr(w, k)
            for k in (
                "window",
                "start_ns",
                "end_ns",
                "r0",
                "r1",
                "train_samples",
                "train_from_ns",
                "train_labels_until_ns",
                "weights",
                "model_row",
                "seconds",
            )
        }
        for w in wps
    ]
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp.with_suffix(".npz"), "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    tmp.with_suffix(".json").write_text(json.dumps(meta, default=float))
    os.replace(tmp.with_suffix(".npz"), path.with_suffix(".npz"))
    os.replace(tmp.with_suffix(".json"), path.with_suffix(".json"))


def _load(path: Path) -> list[WindowProbabilities] | None:
    npz, js = path.with_suffix(".npz"), path.with_suffix(".json")
    if not (npz.is_file() and js.is_file()):
        return None
    meta = json.loads(js.read_text())
    with np.load(npz) as z:
        return [WindowProbabilities(probs=z[f"p{i}"], **m) for i, m in enumerate(meta)]


def load(directory: Path | None, key: str) -> list[WindowProbabilities] | None:
    """The entry ``key`` of ``directory`` (None: not there, or no directory)."""
    return None if directory is None else _load(directory / key)


def store(directory: Path | None, key: str, wps: list[WindowProbabilities]) -> None:
    """Write the entry ``key`` (nothing without a directory or windows)."""
    if directory is not None and wps:
        _save(directory / key, wps)


def cached_probabilities(
    directory: Path | None, key: str, compute: Callable[[], list[WindowProbabilities]]
) -> tuple[list[WindowProbabilities], bool]:
    """The entry ``key`` of ``directory``, else ``compute()`` stored under it (no directory: computed,
    not stored). Returns the windows and whether they came from the cache."""
    got = load(directory, key)
    if got is not None:
        return got, True
    wps = compute()
    store(directory, key, wps)
    return wps, False
