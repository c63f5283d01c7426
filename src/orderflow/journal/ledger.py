"""A position rebuilt from its fills in exact decimals: what the journal stores as a run's position.

Realized PnL is booked by FIFO lots: a fill that reduces the position closes the oldest open lots first
and realizes ``closed * (price - lot price)`` per lot (negated for a short). That is products and sums
of the exchange's own decimal prices and quantities, so it is exact; average-cost accounting (the
trading core's, in floats) divides by the position and must round. Over a position opened and closed
completely both give the same PnL, ``sum(sells) - sum(buys)`` in quote; while a position is partly
closed they split the same total differently between realized and unrealized.

Units: quantities in base units (signed, + long), prices and money in quote currency.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal, localcontext

ZERO = Decimal(0)
_PREC = 60  # digits: products of two exchange decimals never round


class Ledger:
    """One symbol's position: open lots, realized PnL (gross of fees), fees and traded volume."""

    def __init__(self) -> None:
        self.lots: deque[list[Decimal]] = deque()  # [signed qty, price], oldest first
        self.realized = ZERO
        self.fees = ZERO
        self.volume = ZERO

    def apply(self, side: str | int, qty: Decimal, price: Decimal, fee: Decimal = ZERO) -> Decimal:
        """Book a fill (``side`` buy/sell or +1/-1, ``qty`` > 0); returns the PnL it realized."""
        buy = side in ("buy", 1)
        with localcontext() as ctx:
            ctx.prec = _PREC
            d = qty if buy else -qty
            realized = ZERO
            while d and self.lots and (self.lots[0][0] > 0) != (d > 0):
                lot = self.lots[0]
                sign = 1 if lot[0] > 0 else -1
                closed = min(abs(d), abs(lot[0]))
                realized += closed * (price - lot[1]) * sign
                lot[0] -= closed * sign
                d += closed * sign
                if lot[0] == 0:
                    self.lots.popleft()
            if d:
                self.lots.append([d, price])
            self.realized += realized
            self.fees += fee
            self.volume += qty * price
        return realized

    @property
    def qty(self) -> Decimal:
        """Signed position, base units."""
        return sum((lot[0] for lot in self.lots), ZERO)

    @property
    def avg_price(self) -> Decimal | None:
        """Average price of the open lots (``None`` when flat); a quotient, so rounded to 28 digits."""
        q = self.qty
        if q == 0:
            return None
        with localcontext() as ctx:
            ctx.prec = _PREC
            cost = sum((lot[0] * lot[1] for lot in self.lots), ZERO)
        return cost / q
