"""Allocation of a capital budget across simultaneous signals, by model confidence.

Each signal asks for a notional (quote currency) on one symbol with a confidence in [0, 1]. Its weight
is ``confidence - floor`` (nothing at or below the floor). The budget is shared in proportion to the
weights ("water filling"): a signal never gets more than it asked for, a symbol never more than its cap
(``alloc_max_symbol_share * budget`` by default, or an explicit cap per symbol), and what a capped
signal or symbol cannot take is shared again among the others. Every signal gets a reason code and the
numbers behind it (value vs limit). :func:`allocate_kernel` is ``@njit`` over arrays; :func:`allocate`
wraps it for Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from orderflow.core.events import Side
from orderflow.execution.exec_config import ExecutionConfig

# reasons
(
    A_PROPORTIONAL,  # got its proportional share (value: notional, limit: requested)
    A_BELOW_FLOOR,  # value: confidence, limit: floor
    A_REQUEST_CAP,  # got all it asked for (value: notional, limit: requested)
    A_SYMBOL_CAP,  # its symbol reached the cap (value: symbol total, limit: cap)
    A_NO_REQUEST,  # asked for nothing (value: requested, limit: 0)
    A_NO_BUDGET,  # the budget is gone (value: budget left, limit: 0)
) = range(6)
ALLOC_REASONS = ("proportional", "below_floor", "request_cap", "symbol_cap", "no_request", "no_budget")
_EPS = 1e-9


@njit(cache=True)
def _waterfill(amount, group, w, requested, out_alloc, out_reason, prop_reason) -> float:
    """Share ``amount`` among the signals in ``group`` in proportion to ``w``, none above its request
    (those get ``A_REQUEST_CAP``, the others ``prop_reason``); return what nobody could take."""
    n = w.shape[0]
    live = group.copy()
    while amount > _EPS:
        wsum = 0.0
        for i in range(n):
            if live[i]:
                wsum += w[i]
        if wsum <= 0.0:
            break
        bound = False
        for i in range(n):
            if live[i] and out_alloc[i] + amount * w[i] / wsum >= requested[i] - _EPS:
                bound = True
        if not bound:
            for i in range(n):
                if live[i]:
                    out_alloc[i] += amount * w[i] / wsum
                    out_reason[i] = prop_reason
            return 0.0
        share = amount
        for i in range(n):
            if live[i] and out_alloc[i] + share * w[i] / wsum >= requested[i] - _EPS:
                amount -= requested[i] - out_alloc[i]
                out_alloc[i] = requested[i]
                out_reason[i] = A_REQUEST_CAP
                live[i] = False
    return max(amount, 0.0)


@njit(cache=True)
def allocate_kernel(
    sym: np.ndarray,
    confidence: np.ndarray,
    requested: np.ndarray,
    budget: float,
    floor: float,
    sym_cap: np.ndarray,
    out_alloc: np.ndarray,
    out_reason: np.ndarray,
) -> float:
    """Allocate ``budget`` (quote) to the signals; ``sym`` holds symbol indices into ``sym_cap``
    (quote). Writes ``out_alloc`` (quote) and ``out_reason``; returns the budget left over.

    Water filling: a symbol whose signals' proportional shares (each at most its request) would pass
    its cap gets exactly its cap, shared inside the symbol the same way; the rest of the budget is
    shared again among the other symbols, until no cap binds."""
    n = sym.shape[0]
    ns = sym_cap.shape[0]
    active = np.zeros(n, dtype=np.bool_)
    w = np.zeros(n)
    for i in range(n):
        out_alloc[i] = 0.0
        if not (confidence[i] > floor):
            out_reason[i] = A_BELOW_FLOOR
        elif not (requested[i] > 0.0):
            out_reason[i] = A_NO_REQUEST
        else:
            out_reason[i] = A_PROPORTIONAL
            w[i] = confidence[i] - floor
            active[i] = True
    left = max(budget, 0.0)
    while left > _EPS:
        wsum = 0.0
        for i in range(n):
            if active[i]:
                wsum += w[i]
        if wsum <= 0.0:
            break
        want = np.zeros(ns)
        used = np.zeros(ns)
        for i in range(n):
            if active[i]:
                want[sym[i]] += min(left * w[i] / wsum, requested[i])
            else:
                used[sym[i]] += out_alloc[i]
        capped = False
        for s in range(ns):
            if used[s] + want[s] > sym_cap[s] + _EPS:
                group = np.zeros(n, dtype=np.bool_)
                for i in range(n):
                    group[i] = active[i] and sym[i] == s
                head = max(sym_cap[s] - used[s], 0.0)
                left -= head - _waterfill(head, group, w, requested, out_alloc, out_reason, A_SYMBOL_CAP)
                for i in range(n):
                    if group[i]:
                        active[i] = False
                capped = True
        if capped:
            continue
        bound = False
        for i in range(n):  # requests that bind: fix them and share the rest again
            if active[i] and left * w[i] / wsum >= requested[i] - _EPS:
                bound = True
        if not bound:
            for i in range(n):
                if active[i]:
                    out_alloc[i] = left * w[i] / wsum
            left = 0.0
            break
        share = left
        for i in range(n):
            if active[i] and share * w[i] / wsum >= requested[i] - _EPS:
                out_alloc[i] = requested[i]
                out_reason[i] = A_REQUEST_CAP
                left -= requested[i]
                active[i] = False
    for i in range(n):
        if out_reason[i] == A_PROPORTIONAL and out_alloc[i] <= _EPS:
            out_reason[i] = A_NO_BUDGET
    return left


@dataclass(frozen=True)
class SignalRequest:
    """A signal asking for ``notional`` (quote) on ``symbol`` with ``confidence`` in [0, 1]."""

    symbol: str
    side: Side
    confidence: float
    notional: float


@dataclass(frozen=True)
class Allocation:
    """What a signal got (quote) and why; ``value`` vs ``limit`` are the numbers of the reason."""

    signal: SignalRequest
    notional: float
    reason: str
    value: float
    limit: float


def allocate(
    signals: Sequence[SignalRequest],
    budget: float,
    config: ExecutionConfig | None = None,
    symbol_caps: Mapping[str, float] | None = None,
) -> list[Allocation]:
    """Share ``budget`` (quote) among ``signals`` (see the module docstring). ``symbol_caps`` (quote)
    overrides ``config.alloc_max_symbol_share * budget`` for the symbols it names."""
    cfg = config or ExecutionConfig()
    names = sorted({s.symbol for s in signals})
    idx = {n: i for i, n in enumerate(names)}
    default_cap = cfg.alloc_max_symbol_share * budget
    caps = np.array([(symbol_caps or {}).get(n, default_cap) for n in names], dtype=np.float64)
    sym = np.array([idx[s.symbol] for s in signals], dtype=np.int64)
    conf = np.array([s.confidence for s in signals], dtype=np.float64)
    req = np.array([s.notional for s in signals], dtype=np.float64)
    alloc = np.zeros(len(signals))
    reason = np.zeros(len(signals), dtype=np.int64)
    left = allocate_kernel(sym, conf, req, float(budget), cfg.alloc_confidence_floor, caps, alloc, reason)
    totals = {n: float(alloc[sym == idx[n]].sum()) for n in names}
    out = []
    for i, s in enumerate(signals):
        r = int(reason[i])
        if r == A_BELOW_FLOOR:
            value, limit = s.confidence, cfg.alloc_confidence_floor
        elif r == A_SYMBOL_CAP:
            value, limit = totals[s.symbol], float(caps[idx[s.symbol]])
        elif r == A_NO_REQUEST:
            value, limit = s.notional, 0.0
        elif r == A_NO_BUDGET:
            value, limit = float(left), 0.0
        else:
            value, limit = float(alloc[i]), s.notional
        out.append(Allocation(s, float(alloc[i]), ALLOC_REASONS[r], value, limit))
    return out
