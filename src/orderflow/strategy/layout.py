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

from orderflow.core.records import Indices

NS = 1_000_000_000


class BookLevels(NamedTuple):
    """The top levels of one book event, best first (float64 arrays of equal length)."""

    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray


# actions returned by the decision kernel
ACTIONS = ("none", "enter", "add", "exit")
NONE, ENTER, ADD, EXIT = range(len(ACTIONS))

# gate codes (why a directional signal did not become an order); 0 = passed
GATES = ("pass", "invalid", "stale", "regime", "confidence", "quality", "ev", "risk", "pending", "spot_short")
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
) = range(len(GATES))
N_GATES = len(GATES)

# exit reasons
EXIT_REASONS = ("", "take_profit", "stop", "timeout", "signal", "risk", "end")
X_NONE, X_TAKE_PROFIT, X_STOP, X_TIMEOUT, X_SIGNAL, X_RISK, X_END = range(len(EXIT_REASONS))

# int state G
_g = Indices()
G_SIDE = _g()  # side of the managed position: +1, -1, 0 flat
G_ENTRY_TS = _g()  # time of the first entry of the position
G_ADDS = _g()  # adds made to the position
G_PENDING = _g()  # 1 while an order of ours is in flight
G_ADAPT_T0 = _g()  # start of the current threshold-adaptation window (-1: none yet)
G_ADAPT_N = _g()  # entries in the current adaptation window
G_DECISIONS = _g()  # rows evaluated
G_SIGNALS = _g()  # rows with a directional fused signal
G_ENTRIES = _g()
G_EXITS = _g()
G_REJ0 = _g(N_GATES)  # G[G_REJ0 + code]: rejections with that gate code
N_G = _g.n

# float state H
_h = Indices()
H_ENTRY_PX = _h()  # reference price of the first entry (mid at decision)
H_R = _h()  # volatility unit R at entry (log-return units)
H_TP = _h()  # take-profit price
H_SL = _h()  # stop price (moves with the trailing stop)
H_PEAK = _h()  # best favourable exit price seen since entry
H_THR_MULT = _h()  # adaptive multiplier of the fused threshold
H_LAST_FUSED = _h()
H_LAST_CONF = _h()
H_LAST_QUALITY = _h()
H_LAST_EV = _h()
H_LAST_COST = _h()
N_H = _h.n
