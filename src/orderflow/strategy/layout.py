"""State layout of the strategy kernels: indices into the state arrays, the actions,
the gate codes and the exit reasons. No numba here, so configuration code imports it cheaply.

Arrays (one set per traded symbol):

- ``G`` (int64, ``N_G``): counters and timestamps (int ns; float64 cannot hold them exactly).
  ``G[G_REJ0 + code]`` counts rejections per gate code.
- ``H`` (float64, ``N_H``): the position the strategy manages (entry, barriers, peak) and the adaptive
  threshold.
- ``C``: the configuration, a record (:mod:`orderflow.core.records`) built by
  :meth:`StrategyConfig.to_record` and read by field name (``C.w_ofi``).

:class:`BookLevels` groups the four top-of-book arrays of one book event that the kernels read (best
first, NaN = no level); numba compiles it as a named tuple.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

NS = 1_000_000_000


class BookLevels(NamedTuple):
    """The top levels of one book event, best first (float64 arrays of equal length)."""

    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray


# actions returned by the decision kernel
NONE, ENTER, ADD, EXIT = 0, 1, 2, 3
ACTIONS = ("none", "enter", "add", "exit")

# gate codes (why a directional signal did not become an order); 0 = passed
(
    PASS,
    GATE_INVALID,  # feature vector invalid (warm-up, gap, bad book)
    GATE_STALE,  # book or trades older than the freshness limits
    GATE_REGIME,  # the regime's parameters forbid entries
    GATE_CONFIDENCE,  # AI confidence in the direction below the gate
    GATE_QUALITY,  # signal quality below the gate
    GATE_EV,  # expected value below ev_cost_mult x round-trip cost
    GATE_RISK,  # the risk engine refused (its own rule is counted there)
    GATE_PENDING,  # an order of ours is still in flight
    GATE_SPOT_SHORT,  # a short entry on a venue without shorting
) = range(10)
GATES = ("pass", "invalid", "stale", "regime", "confidence", "quality", "ev", "risk", "pending", "spot_short")
N_GATES = len(GATES)

# exit reasons
X_NONE, X_TAKE_PROFIT, X_STOP, X_TIMEOUT, X_SIGNAL, X_RISK, X_END = range(7)
EXIT_REASONS = ("", "take_profit", "stop", "timeout", "signal", "risk", "end")

# int state G
(
    G_SIDE,  # side of the managed position: +1, -1, 0 flat
    G_ENTRY_TS,  # time of the first entry of the position
    G_ADDS,  # adds made to the position
    G_PENDING,  # 1 while an order of ours is in flight
    G_ADAPT_T0,  # start of the current threshold-adaptation window (-1: none yet)
    G_ADAPT_N,  # entries in the current adaptation window
    G_DECISIONS,  # rows evaluated
    G_SIGNALS,  # rows with a directional fused signal
    G_ENTRIES,
    G_EXITS,
) = range(10)
G_REJ0 = 10
N_G = G_REJ0 + N_GATES

# float state H
(
    H_ENTRY_PX,  # reference price of the first entry (mid at decision)
    H_R,  # volatility unit R at entry (log-return units)
    H_TP,  # take-profit price
    H_SL,  # stop price (moves with the trailing stop)
    H_PEAK,  # best favourable exit price seen since entry
    H_THR_MULT,  # adaptive multiplier of the fused threshold
    H_LAST_FUSED,
    H_LAST_CONF,
    H_LAST_QUALITY,
    H_LAST_EV,
    H_LAST_COST,
) = range(11)
N_H = 11
