"""Instrument metadata: tick and lot sizes at exchange precision."""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec

VENUES = ("binance-usdm", "binance-spot", "binance-coinm", "sim")
MARKET_TO_VENUE = {"usdm": "binance-usdm", "spot": "binance-spot", "coinm": "binance-coinm"}

QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of a Binance symbol, e.g. BTCUSDT -> (BTC, USDT)."""
    for q in QUOTES:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)], q
    return symbol[:-4], symbol[-4:]


class Instrument(msgspec.Struct, frozen=True):
    venue: str
    symbol: str
    tick_size: float
    lot_size: float
    min_notional: float = 0.0

    def price_to_ticks(self, price: float) -> int:
        return round(price / self.tick_size)

    def ticks_to_price(self, ticks: int) -> float:
        return float(Decimal(ticks) * Decimal(str(self.tick_size)))

    @property
    def price_decimals(self) -> int:
        return max(0, -Decimal(str(self.tick_size)).as_tuple().exponent)  # type: ignore[operator]

    @property
    def size_decimals(self) -> int:
        return max(0, -Decimal(str(self.lot_size)).as_tuple().exponent)  # type: ignore[operator]


# Binance exchangeInfo filters (PRICE_FILTER.tickSize, LOT_SIZE.stepSize, MIN_NOTIONAL) for the
# symbols this project uses by default. Other symbols get metadata from exchangeInfo or from data.
KNOWN: dict[tuple[str, str], Instrument] = {
    ("binance-usdm", "BTCUSDT"): Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001, 100.0),
    ("binance-usdm", "ETHUSDT"): Instrument("binance-usdm", "ETHUSDT", 0.01, 0.001, 20.0),
    ("binance-spot", "BTCUSDT"): Instrument("binance-spot", "BTCUSDT", 0.01, 0.00001, 5.0),
    ("binance-spot", "ETHUSDT"): Instrument("binance-spot", "ETHUSDT", 0.01, 0.0001, 5.0),
    ("binance-coinm", "BTCUSD_PERP"): Instrument("binance-coinm", "BTCUSD_PERP", 0.1, 1.0),
    ("binance-coinm", "ETHUSD_PERP"): Instrument("binance-coinm", "ETHUSD_PERP", 0.01, 1.0),
}


def lookup(venue: str, symbol: str) -> Instrument | None:
    return KNOWN.get((venue, symbol.upper()))


def infer_tick(prices: list[float] | object, max_decimals: int = 8) -> float:
    """Smallest price increment seen in ``prices`` (a sequence or numpy array), rounded to a power-ten
    multiple. Used when an instrument is not known from exchange metadata."""
    import numpy as np

    p = np.unique(np.asarray(prices, dtype=np.float64))
    p = p[np.isfinite(p)]
    if p.size < 2:
        return float("nan")
    d = np.diff(p)
    d = d[d > 10 ** (-max_decimals - 1)]
    if d.size == 0:
        return float("nan")
    tick = float(d.min())
    exp = math.floor(math.log10(tick))
    mant = round(tick / 10**exp, 6)
    for m in (1, 2, 5, 10):
        if abs(mant - m) < 0.05 * m:
            return round(m * 10**exp, max_decimals)
    return round(tick, max_decimals)
