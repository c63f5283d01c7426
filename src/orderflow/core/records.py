"""Numpy record (structured) dtypes generated from pydantic config models, so that a config field is
written once: in its model. The compiled kernels read the record by name (``C.w_ofi``); numba compiles
records in nopython mode and caches functions that take them (hftbacktest keeps its state this way).

A :class:`RecordSpec` maps every field of a model (nested models are flattened: their fields keep
their own names) to a field of the record:

- copied, by default, under its own name, with the dtype its annotation implies: ``float`` -> float64,
  ``int`` -> int64, ``bool`` -> bool, ``Literal["a", "b"]`` -> int64 code (the index in the Literal),
  ``tuple[float, ...]`` of fixed length -> float64 sub-array, ``tuple[bool, ...]`` -> uint8 sub-array
  (numba has no bool sub-arrays);
- or converted: a :class:`Derived` field computed from the model (units, defaults that depend on other
  fields) and from keyword context given at build time (a venue's fee); the model fields it reads are
  its ``sources``, and a field that is a source is not copied as well;
- or skipped with a reason (strings the kernels do not read).

A field of another type that is neither derived nor skipped is an error when the spec is made, so a new
field cannot be forgotten. :meth:`RecordSpec.build` returns a 1-element record array; kernels take
``rec[0]``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel


@dataclass(frozen=True)
class Derived:
    """A record field computed by ``get(cfg, ctx)`` (``ctx``: the keyword context of the build) from the
    model fields ``sources`` (dotted paths; empty when it comes from the context alone)."""

    name: str
    dtype: Any
    get: Callable[[Any, Mapping[str, Any]], Any]
    sources: tuple[str, ...] = ()


def _model_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, Any]]:
    """``(dotted path, leaf name, annotation)`` of every field, nested models flattened."""
    out: list[tuple[str, str, Any]] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(_model_fields(ann, f"{prefix}{name}."))
        else:
            out.append((f"{prefix}{name}", name, ann))
    return out


def _literal_values(ann: Any) -> tuple[Any, ...] | None:
    return typing.get_args(ann) if typing.get_origin(ann) is Literal else None


def _dtype_of(path: str, ann: Any) -> Any:
    """The record dtype a field's annotation implies (module docstring), or an error naming the field."""
    if ann is bool:
        return np.bool_
    if ann is int:
        return np.int64
    if ann is float:
        return np.float64
    lit = _literal_values(ann)
    if lit is not None and all(isinstance(v, str) for v in lit):
        return np.int64
    if typing.get_origin(ann) is tuple:
        args = typing.get_args(ann)
        if args and Ellipsis not in args and len(set(args)) == 1 and args[0] in (float, bool):
            return (np.float64 if args[0] is float else np.uint8, (len(args),))
    raise TypeError(f"{path}: field of type {ann!r} has no record dtype; derive or skip it")


def _get(cfg: BaseModel, path: str) -> Any:
    v: Any = cfg
    for part in path.split("."):
        v = getattr(v, part)
    return v


class RecordSpec:
    """The record layout of one pydantic model (module docstring)."""

    def __init__(
        self,
        model: type[BaseModel],
        derived: tuple[Derived, ...] = (),
        skip: Mapping[str, str] | None = None,
    ) -> None:
        self.model = model
        self.derived = derived
        self.skip = dict(skip or {})
        fields = _model_fields(model)
        paths = {p for p, _, _ in fields}
        used = {s for d in derived for s in d.sources}
        for p in sorted((used | set(self.skip)) - paths):
            raise ValueError(f"{model.__name__}: {p}: not a field of the model")
        self.copied: dict[str, str] = {}  # record field -> dotted model path
        self._literals: dict[str, tuple[Any, ...]] = {}
        spec: list[tuple[Any, ...]] = []
        for path, leaf, ann in fields:
            if path in used or path in self.skip:
                continue
            if leaf in self.copied:
                raise ValueError(f"{model.__name__}: {path}: record field {leaf!r} already taken")
            dt = _dtype_of(path, ann)
            spec.append((leaf, *dt) if isinstance(dt, tuple) else (leaf, dt))
            self.copied[leaf] = path
            lit = _literal_values(ann)
            if lit is not None:
                self._literals[leaf] = lit
        for d in derived:
            if d.name in self.copied or any(s[0] == d.name for s in spec):
                raise ValueError(f"{model.__name__}: record field {d.name!r} defined twice")
            spec.append((d.name, *d.dtype) if isinstance(d.dtype, tuple) else (d.name, d.dtype))
        self.dtype = np.dtype(spec, align=True)

    def mapped(self) -> dict[str, str]:
        """Every model field (dotted path) -> how it enters the record: ``copy <name>``, ``derived
        <name>`` or ``skip: <reason>``."""
        out = {p: f"copy {leaf}" for leaf, p in self.copied.items()}
        for d in self.derived:
            for s in d.sources:
                out[s] = f"derived {d.name}"
        out.update({p: f"skip: {why}" for p, why in self.skip.items()})
        return out

    def code(self, name: str, value: Any) -> int:
        """The int code of a Literal field's value (its index in the Literal)."""
        return self._literals[name].index(value)

    def build(self, cfg: BaseModel, **ctx: Any) -> np.ndarray:
        """The 1-element record array of ``cfg``; ``ctx`` is handed to the derived fields."""
        if not isinstance(cfg, self.model):
            raise TypeError(f"record of {self.model.__name__}: got {type(cfg).__name__}")
        rec = np.zeros(1, dtype=self.dtype)
        for leaf, path in self.copied.items():
            v = _get(cfg, path)
            rec[leaf][0] = self.code(leaf, v) if leaf in self._literals else v
        for d in self.derived:
            rec[d.name][0] = d.get(cfg, ctx)
        return rec


class Indices:
    """Index constants of a layout, numbered in the order they are taken, and their count, so that no
    count is written by hand::

        _d = Indices()
        D_NFO = _d()  # fill rows written
        D_REJ0 = _d(N_GATES)  # the first of a block of N_GATES indices
        N_D = _d.n

    The constants are plain ints (numba reads module globals as compile-time constants)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, width: int = 1) -> int:
        if width < 1:
            raise ValueError(f"Indices: a block of {width} indices")
        i = self.n
        self.n += width
        return i
