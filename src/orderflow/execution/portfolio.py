"""Portfolio accounting of one symbol: numba kernels over a float64 state array ``P`` (indices ``P_*``)
and the ``Portfolio`` wrapper.

Units: position in base units (signed, + long), prices in quote currency, PnL, fees and funding in
quote currency, times in int ns since the epoch, rates as fractions.

- ``apply_fill(P, side, qty, price, fee)``: a fill that increases the position moves the average entry
  price to the size-weighted mean; one that reduces it realizes ``closed * (price - avg) * sign(pos)``
  on the closed part at the average entry price (the average of the rest is unchanged); a close leaves
  position 0 and average NaN; a flip closes the old position and opens the rest at the fill price.
- ``funding(P, ts_prev, ts, mark, rate, interval_ns)``: at each funding time crossed,
  ``ts_prev < k * interval_ns <= ts`` (k integer, so 8 h gives 00:00, 08:00 and 16:00 UTC), charges
  ``position * mark * rate``: longs pay when the rate is positive, shorts receive. Perpetuals only:
  pass rate 0 (``SimConfig.to_record()["funding_rate"]`` is 0 for spot venues).
- ``equity(P, mark) = initial + realized + position * (mark - avg) - fees - funding``.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
from numba import njit

from orderflow.core.records import Indices

_p = Indices()
P_POS = _p()  # signed position, base units
P_AVG = _p()  # average entry price of the position (NaN when flat)
P_REALIZED = _p()  # realized price PnL, quote (before fees and funding)
P_FEES = _p()  # fees paid, quote
P_FUNDING = _p()  # funding paid, quote (negative = received)
P_INITIAL = _p()  # initial equity, quote
P_VOLUME = _p()  # traded notional, quote
P_NFILLS = _p()  # number of fills
N_P = _p.n

# the fields of P by name, as the backtest reports them
P_NAMES = {
    "position": P_POS,
    "avg_price": P_AVG,
    "realized": P_REALIZED,
    "fees": P_FEES,
    "funding": P_FUNDING,
    "initial": P_INITIAL,
    "volume": P_VOLUME,
    "fills": P_NFILLS,
}


def by_name(P: np.ndarray) -> dict[str, float]:
    """The portfolio array ``P`` as ``{name: value}`` (names in :data:`P_NAMES`)."""
    return {k: float(P[i]) for k, i in P_NAMES.items()}


_POS_EPS = 1e-12  # a position below this share of the larger of old position and fill is flat


@njit(cache=True)
def reset(P: np.ndarray, initial: float) -> None:
    """Flat portfolio with ``initial`` equity (quote)."""
    P[:] = 0.0
    P[P_AVG] = np.nan
    P[P_INITIAL] = initial


@njit(cache=True)
def apply_fill(P: np.ndarray, side: int, qty: float, price: float, fee: float) -> float:
    """Book one fill (``side`` +1 buy / -1 sell, ``qty`` > 0 base units, ``price`` quote, ``fee`` quote);
    returns the PnL it realized (quote, before fees)."""
    pos = P[P_POS]
    avg = P[P_AVG]
    d = side * qty
    realized = 0.0
    if pos == 0.0 or (pos > 0.0) == (d > 0.0):
        new = pos + d
        P[P_AVG] = price if pos == 0.0 else (abs(pos) * avg + qty * price) / abs(new)
    else:
        closed = min(qty, abs(pos))
        realized = closed * (price - avg) * (1.0 if pos > 0.0 else -1.0)
        new = pos + d
        if abs(new) <= _POS_EPS * max(abs(pos), qty):
            new = 0.0
            P[P_AVG] = np.nan
        elif (new > 0.0) != (pos > 0.0):
            P[P_AVG] = price  # flipped: the rest opens at the fill price
    P[P_POS] = new
    P[P_REALIZED] += realized
    P[P_FEES] += fee
    P[P_VOLUME] += qty * price
    P[P_NFILLS] += 1.0
    return realized


@njit(cache=True)
def fundings_crossed(ts_prev: int, ts: int, interval_ns: int) -> int:
    """Number of funding times ``k * interval_ns`` with ``ts_prev < k * interval_ns <= ts``."""
    if ts <= ts_prev:
        return 0
    return ts // interval_ns - ts_prev // interval_ns


@njit(cache=True)
def funding(P: np.ndarray, ts_prev: int, ts: int, mark: float, rate: float, interval_ns: int) -> float:
    """Charge funding for the funding times crossed in (ts_prev, ts]; returns the amount paid (quote,
    negative = received)."""
    n = fundings_crossed(ts_prev, ts, interval_ns)
    if n == 0 or P[P_POS] == 0.0:
        return 0.0
    paid = n * P[P_POS] * mark * rate
    P[P_FUNDING] += paid
    return paid


@njit(cache=True)
def unrealized(P: np.ndarray, mark: float) -> float:
    """Price PnL of the open position at ``mark`` (quote)."""
    if P[P_POS] == 0.0:
        return 0.0
    return P[P_POS] * (mark - P[P_AVG])


@njit(cache=True)
def equity(P: np.ndarray, mark: float) -> float:
    """initial + realized + position * (mark - avg) - fees - funding (quote)."""
    return P[P_INITIAL] + P[P_REALIZED] + unrealized(P, mark) - P[P_FEES] - P[P_FUNDING]


class PortfolioSnapshot(msgspec.Struct, frozen=True):
    position: float
    avg_price: float
    realized_pnl: float
    fees: float
    funding: float
    initial_equity: float
    volume: float
    fills: int


class Portfolio:
    """One symbol's portfolio over the same kernels (paper/live trading, tests)."""

    def __init__(self, initial_equity: float) -> None:
        if not math.isfinite(initial_equity):
            raise ValueError(f"initial_equity must be finite, got {initial_equity}")
        self.P = np.zeros(N_P)
        reset(self.P, float(initial_equity))

    def apply_fill(self, side: int, qty: float, price: float, fee: float) -> float:
        """Book a fill; returns the realized PnL (quote, before fees)."""
        if int(side) not in (1, -1):
            raise ValueError(f"side must be +1 or -1, got {side!r}")
        if not qty > 0 or not math.isfinite(qty) or not price > 0:
            raise ValueError(f"fill needs qty > 0 and price > 0, got qty {qty}, price {price}")
        return float(apply_fill(self.P, int(side), float(qty), float(price), float(fee)))

    def funding(self, ts_prev: int, ts: int, mark: float, rate: float, interval_ns: int) -> float:
        """Funding for the funding times in (ts_prev, ts]; returns the amount paid (quote)."""
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be > 0, got {interval_ns}")
        return float(funding(self.P, int(ts_prev), int(ts), float(mark), float(rate), int(interval_ns)))

    def equity(self, mark: float) -> float:
        return float(equity(self.P, float(mark)))

    def unrealized(self, mark: float) -> float:
        return float(unrealized(self.P, float(mark)))

    @property
    def position(self) -> float:
        return float(self.P[P_POS])

    @property
    def avg_price(self) -> float:
        return float(self.P[P_AVG])

    @property
    def realized_pnl(self) -> float:
        return float(self.P[P_REALIZED])

    @property
    def fees(self) -> float:
        return float(self.P[P_FEES])

    @property
    def funding_paid(self) -> float:
        return float(self.P[P_FUNDING])

    def snapshot(self) -> PortfolioSnapshot:
        P = self.P
        return PortfolioSnapshot(
            position=float(P[P_POS]),
            avg_price=float(P[P_AVG]),
            realized_pnl=float(P[P_REALIZED]),
            fees=float(P[P_FEES]),
            funding=float(P[P_FUNDING]),
            initial_equity=float(P[P_INITIAL]),
            volume=float(P[P_VOLUME]),
            fills=int(P[P_NFILLS]),
        )
