"""Queue position of resting limit orders (numba).

A resting order joins behind the displayed size at its price (``queue_ahead`` = level size, 0 when
the level is empty or new). Our orders are not in the replayed book, so level sizes never include us.
Between two book events:

- trades at the order's price on its side reduce ``queue_ahead`` (see ``sim_kernels.on_trade``);
- at the next book event, the decrease of the level not explained by those trades is cancellation:
  ``cancel = max(0, (old_size - traded) - new_size)``. The share of it that happened ahead of us comes
  from the queue model (``ahead_share``), with ``ahead = queue_ahead`` and ``behind = old_size - traded
  - queue_ahead``. Then ``queue_ahead = min(queue_ahead - share * cancel, new_size)``: it never
  exceeds the current level size.

A price deeper than the visible levels (all L levels shown and the price beyond the last one) has an
unknown size: ``queue_ahead`` stays as it was (``inf`` for an order that arrived there: no fill from
trades at its price until the level becomes visible, after which it is clamped to the level size).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from orderflow.execution.sim_layout import (
    B_ASK_PX,
    B_ASK_SZ,
    B_BID_PX,
    B_BID_SZ,
    BUY,
    PX_REL_EPS,
    Q_LOG,
    Q_POWER,
    T_MF,
    f8,
    i8,
    px_eq,
)


@njit(f8(i8, f8, f8, f8), cache=True)
def ahead_share(model: int, n: float, ahead: float, behind: float) -> float:
    """Share in [0, 1] of a level's cancellations that happened ahead of our order.

    risk_averse: 0 (every cancel is behind us); power: ahead^n / (ahead^n + behind^n); log:
    log(1+ahead) / (log(1+ahead) + log(1+behind)). 0 when nothing is ahead."""
    if ahead <= 0.0:
        return 0.0
    if model == Q_POWER:
        a = ahead**n
        b = behind**n if behind > 0.0 else 0.0
        return a / (a + b)
    if model == Q_LOG:
        a = math.log1p(ahead)
        b = math.log1p(behind) if behind > 0.0 else 0.0
        return a / (a + b)
    return 0.0


@njit(f8(T_MF, i8, f8), cache=True)
def own_level(B: np.ndarray, side: int, px: float) -> float:
    """Displayed size at price ``px`` on the book side of an order of ``side`` (bids for a buy).

    0.0 when the price lies within the visible part of that side but has no level (or the side shows
    fewer than L levels, i.e. all of it); NaN when all L levels are shown and ``px`` is deeper."""
    prow = B_BID_PX if side == BUY else B_ASK_PX
    srow = B_BID_SZ if side == BUY else B_ASK_SZ
    for i in range(B.shape[1]):
        p = B[prow, i]
        if math.isnan(p):
            return 0.0
        if px_eq(p, px):
            return B[srow, i]
        tol = PX_REL_EPS * abs(px)
        if (side == BUY and p < px - tol) or (side != BUY and p > px + tol):
            return 0.0  # passed where px would be: no level there
    return np.nan


@njit(f8(i8, f8, f8, f8, f8, f8), cache=True)
def queue_after_book(
    model: int, n: float, q: float, old_level: float, traded: float, new_level: float
) -> float:
    """``queue_ahead`` after a book event (sizes in base units; see the module docstring).

    ``old_level``: displayed size at our price in the previous book (NaN = not visible); ``traded``:
    trade volume at our price on our side since then; ``new_level``: size now (NaN = not visible)."""
    if math.isnan(new_level):
        return q
    if not math.isnan(old_level) and q > 0.0 and not math.isinf(q):
        rest = old_level - traded
        if rest < 0.0:
            rest = 0.0
        cancel = rest - new_level
        if cancel > 0.0:
            behind = rest - q
            if behind < 0.0:
                behind = 0.0
            q -= ahead_share(model, n, q, behind) * cancel
            if q < 0.0:
                q = 0.0
    if q > new_level:
        q = new_level
    return q
