"""Cost control: the expected cost of an order against the signal's expected value, and the decision to
keep, reprice or cancel it.

Units: prices in quote currency, quantities in base units, costs and expected values in quote currency,
fee rates as fractions. A side is +1 (buy) or -1 (sell). Books are float64 arrays of shape (n, 2) with
rows (price, size), best first (bids descending, asks ascending); NaN or non-positive sizes end a book.

Cost model (implementation shortfall against the reference mid ``m``, the mid when the signal was
decided; NaN: the current mid), for the order's remaining quantity ``q``:

- a marketable limit (a buy at or above the best ask) walks the opposite side up to its limit: the
  half-spread ``side * (touch - m)`` per unit is *spread*, the walk beyond the touch is *slippage*, the
  taker fee is paid on the traded notional; what is left rests at the limit (maker fee, spread
  ``side * (price - m)``);
- a passive limit at or ahead of its own touch (a buy at or above the best bid) costs
  ``side * (price - m) * q`` (usually negative: it earns half the spread) plus the maker fee;
- a passive limit *behind* its own touch is stale: it fills only if the market comes back, so the cost
  of completing it is the cost of taking the book now (the market-order walk). Quantity the book
  cannot absorb is priced at its last level.

Decision (:func:`cost_decision`): EV <= 0 cancels. If the cost is at most ``max_cost_share_of_ev * EV``
the order is kept. Otherwise a stale or marketable limit is moved to its own touch (a buy to the best
bid) if that is at most ``max_reprice_ticks`` away and then affordable (REPRICE); else CANCEL. Each
outcome carries a reason code and the numbers (cost vs budget, ticks vs limit) in ``out``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from orderflow.core.records import Indices

# actions
ACTIONS = ("keep", "reprice", "cancel")
KEEP, REPRICE, CANCEL = range(len(ACTIONS))

# reasons
COST_REASONS = (
    "within_budget",
    "no_book",
    "ev_nonpositive",
    "repriced",
    "at_touch_too_costly",
    "beyond_reprice_ticks",
    "still_too_costly",
)
(
    R_WITHIN_BUDGET,
    R_NO_BOOK,
    R_EV_NONPOSITIVE,
    R_REPRICED,
    R_AT_TOUCH_TOO_COSTLY,
    R_BEYOND_TICKS,
    R_STILL_TOO_COSTLY,
) = range(len(COST_REASONS))

# out columns (float64)
_o = Indices()
O_COST = _o()  # expected cost at the order's price
O_BUDGET = _o()  # max_cost_share_of_ev * ev
O_SPREAD = _o()  # components of O_COST
O_SLIPPAGE = _o()
O_FEE = _o()
O_NEW_PRICE = _o()  # reprice target (NaN unless REPRICE or a target was examined)
O_NEW_COST = _o()  # cost at the target
O_TICKS = _o()  # distance to the target in ticks
O_TICK_LIMIT = _o()  # max_reprice_ticks
N_O = _o.n
_EPS = 1e-12


@njit(cache=True)
def book_len(book: np.ndarray) -> int:
    """Number of usable levels (a NaN price or a non-positive size ends the book)."""
    n = 0
    for i in range(book.shape[0]):
        if not (book[i, 1] > 0.0) or not (book[i, 0] > 0.0):
            break
        n += 1
    return n


@njit(cache=True)
def walk(book: np.ndarray, side: int, qty: float, limit: float) -> tuple[float, float]:
    """Take ``qty`` from the opposite ``book`` up to ``limit`` (NaN: no limit): ``(filled, notional)``.
    With no limit, quantity beyond the book is priced at its last level."""
    n = book_len(book)
    left = qty
    notional = 0.0
    last = math.nan
    for i in range(n):
        px = book[i, 0]
        if not math.isnan(limit) and side * (px - limit) > _EPS:
            break
        take = min(left, book[i, 1])
        notional += take * px
        left -= take
        last = px
        if left <= _EPS:
            left = 0.0
            break
    if math.isnan(limit) and left > 0.0 and not math.isnan(last):
        notional += left * last
        left = 0.0
    return qty - left, notional


@njit(cache=True)
def order_cost(
    side: int,
    price: float,
    qty: float,
    ref_mid: float,
    bids: np.ndarray,
    asks: np.ndarray,
    maker_fee: float,
    taker_fee: float,
    out: np.ndarray,
) -> float:
    """Expected cost (quote) of ``qty`` at limit ``price`` (NaN: a market order); writes the spread,
    slippage and fee components to ``out[O_SPREAD..O_FEE]`` and returns their sum. NaN without a book."""
    nb, na = book_len(bids), book_len(asks)
    out[O_SPREAD] = 0.0
    out[O_SLIPPAGE] = 0.0
    out[O_FEE] = 0.0
    if nb == 0 or na == 0:
        return math.nan
    bid, ask = bids[0, 0], asks[0, 0]
    m = ref_mid if not math.isnan(ref_mid) else 0.5 * (bid + ask)
    own_touch = bid if side > 0 else ask
    opp_touch = ask if side > 0 else bid
    opp = asks if side > 0 else bids
    marketable = math.isnan(price) or side * (price - opp_touch) >= -_EPS
    stale = (not marketable) and side * (own_touch - price) > _EPS
    if marketable or stale:
        limit = price if marketable else math.nan
        filled, notional = walk(opp, side, qty, limit)
        out[O_SPREAD] = side * (opp_touch - m) * filled
        out[O_SLIPPAGE] = side * (notional - opp_touch * filled)
        out[O_FEE] = taker_fee * notional
        rest = qty - filled
        if rest > _EPS and not math.isnan(price):
            out[O_SPREAD] += side * (price - m) * rest
            out[O_FEE] += maker_fee * price * rest
    else:
        out[O_SPREAD] = side * (price - m) * qty
        out[O_FEE] = maker_fee * price * qty
    return out[O_SPREAD] + out[O_SLIPPAGE] + out[O_FEE]


@njit(cache=True)
def cost_decision(
    side: int,
    price: float,
    qty: float,
    ref_mid: float,
    ev: float,
    bids: np.ndarray,
    asks: np.ndarray,
    tick: float,
    X: np.void,
    out: np.ndarray,
) -> tuple[int, int]:
    """``(action, reason)`` for an order of ``qty`` at ``price`` (NaN: market) whose signal expects
    ``ev`` (quote). ``out`` (``N_O``) receives the numbers; ``out[O_NEW_PRICE]`` is the reprice target."""
    for i in range(N_O):
        out[i] = math.nan
    maker, taker = X["maker_fee"], X["taker_fee"]
    out[O_TICK_LIMIT] = X["max_reprice_ticks"]
    out[O_BUDGET] = X["max_cost_share_of_ev"] * ev
    cost = order_cost(side, price, qty, ref_mid, bids, asks, maker, taker, out)
    out[O_COST] = cost
    if math.isnan(cost):
        return KEEP, R_NO_BOOK
    if not (ev > 0.0):
        return CANCEL, R_EV_NONPOSITIVE
    if cost <= out[O_BUDGET] + _EPS:
        return KEEP, R_WITHIN_BUDGET
    bid, ask = bids[0, 0], asks[0, 0]
    own_touch = bid if side > 0 else ask
    if not math.isnan(price) and abs(price - own_touch) <= 0.5 * tick:
        return CANCEL, R_AT_TOUCH_TOO_COSTLY
    spread, slip, fee = out[O_SPREAD], out[O_SLIPPAGE], out[O_FEE]
    out[O_NEW_PRICE] = own_touch
    ticks = 0.0 if math.isnan(price) else round(abs(price - own_touch) / tick)
    out[O_TICKS] = ticks
    out[O_NEW_COST] = order_cost(side, own_touch, qty, ref_mid, bids, asks, maker, taker, out)
    out[O_SPREAD], out[O_SLIPPAGE], out[O_FEE] = spread, slip, fee
    if ticks > X["max_reprice_ticks"]:
        return CANCEL, R_BEYOND_TICKS
    if out[O_NEW_COST] > out[O_BUDGET] + _EPS:
        return CANCEL, R_STILL_TOO_COSTLY
    return REPRICE, R_REPRICED


@dataclass(frozen=True)
class CostDecision:
    """A cost-control decision with its numbers (quote currency; ``ticks`` vs ``tick_limit``)."""

    client_order_id: str
    action: str
    reason: str
    cost: float
    budget: float
    spread: float
    slippage: float
    fee: float
    new_price: float
    new_cost: float
    ticks: float
    tick_limit: float


def decide(
    client_order_id: str,
    side: int,
    price: float,
    qty: float,
    ref_mid: float,
    ev: float,
    bids: np.ndarray,
    asks: np.ndarray,
    tick: float,
    X: np.void,
) -> CostDecision:
    """Python wrapper of :func:`cost_decision` (same kernel) returning a :class:`CostDecision`."""
    out = np.empty(N_O, dtype=np.float64)
    b = np.ascontiguousarray(bids, dtype=np.float64).reshape(-1, 2)
    a = np.ascontiguousarray(asks, dtype=np.float64).reshape(-1, 2)
    action, reason = cost_decision(
        int(side), float(price), float(qty), float(ref_mid), float(ev), b, a, tick, X, out
    )
    return CostDecision(
        client_order_id,
        ACTIONS[action],
        COST_REASONS[reason],
        *(float(out[i]) for i in (O_COST, O_BUDGET, O_SPREAD, O_SLIPPAGE, O_FEE)),
        *(float(out[i]) for i in (O_NEW_PRICE, O_NEW_COST, O_TICKS, O_TICK_LIMIT)),
    )
