"""Latency model of the simulated exchange (numba): a seeded splitmix64 RNG held in the state array
(each exchange has its own stream, so runs are deterministic for a seed and exchanges do not disturb
each other) and the entry / response latency draws selected by ``C.latency_kind``.

Requests from one client travel on one FIFO channel: an arrival is never earlier than the previous
one (a cancel never overtakes its order). Event-driven responses (fills, status reports) are FIFO too.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from orderflow.execution.sim_layout import (
    I_LAST_ARR,
    I_LAST_RESP,
    I_RNG,
    LAT_LOGNORMAL,
    T_C,
    T_VI,
    b1,
    f8,
    i8,
)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_M53 = 1.0 / 9007199254740992.0


@njit(f8(T_VI), cache=True)
def uniform(I: np.ndarray) -> float:
    """Next draw in (0, 1) from the splitmix64 stream in ``I[I_RNG]``."""
    s = np.uint64(I[I_RNG]) + _GOLDEN
    I[I_RNG] = np.int64(s)
    z = s
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return (np.float64(z >> np.uint64(11)) + 0.5) * _TWO_M53


@njit(f8(T_VI), cache=True)
def normal(I: np.ndarray) -> float:
    """Standard normal draw (Box-Muller on two uniforms)."""
    u1 = uniform(I)
    u2 = uniform(I)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(i8(T_VI, T_C, f8), cache=True)
def latency_ns(I: np.ndarray, C: np.void, median_ns: float) -> int:
    """One latency draw in ns: the value itself (constant) or median * exp(sigma * z) (lognormal)."""
    if C.latency_kind == LAT_LOGNORMAL and median_ns > 0.0:
        return np.int64(round(median_ns * math.exp(C.sigma * normal(I))))
    return np.int64(round(median_ns))


@njit(i8(T_VI, T_C, i8), cache=True)
def arrival_ts(I: np.ndarray, C: np.void, ts: int) -> int:
    """Exchange time at which a request sent at strategy time ``ts`` arrives (FIFO)."""
    a = ts + latency_ns(I, C, C.entry_ns)
    if a < I[I_LAST_ARR]:
        a = I[I_LAST_ARR]
    I[I_LAST_ARR] = a
    return a


@njit(i8(T_VI, T_C, i8, b1), cache=True)
def response_ts(I: np.ndarray, C: np.void, t_ex: int, ordered: bool) -> int:
    """Strategy time at which a message sent at exchange time ``t_ex`` arrives. ``ordered``: FIFO
    with the previous event-driven messages (False for answers computed ahead, at submit time)."""
    r = t_ex + latency_ns(I, C, C.response_ns)
    if ordered:
        if r < I[I_LAST_RESP]:
            r = I[I_LAST_RESP]
        I[I_LAST_RESP] = r
    return r
