"""Symbol filters of the local exchange: what ``exchangeInfo`` advertises and what a new order must
meet, from one list, so that every advertised filter is enforced with the advertised values.

:func:`symbol_filters` builds a symbol's ``filters`` (Binance's field names and values for BTCUSDT
where the instrument does not fix them); :func:`check_new_order` applies each of them in that order
and raises Binance's answer for the first one broken. A filter type without a check cannot be
advertised (:func:`symbol_filters` refuses it).

Spot (https://developers.binance.com/docs/binance-spot-api-docs/filters; every failure is -1013
``Filter failure: <FILTER>``): PRICE_FILTER (price and stopPrice), LOT_SIZE (non-MARKET orders),
MARKET_LOT_SIZE (MARKET), PERCENT_PRICE_BY_SIDE (the limit price of LIMIT / LIMIT_MAKER /
STOP_LOSS_LIMIT: a BUY within ``[bidMultiplierDown, bidMultiplierUp]`` and a SELL within
``[askMultiplierDown, askMultiplierUp]`` times the reference price), NOTIONAL (min, and max unless
MARKET), MAX_NUM_ORDERS (open orders, algo included), MAX_NUM_ALGO_ORDERS (untriggered
STOP_LOSS_LIMIT orders) and, when configured, MAX_POSITION (a BUY whose base balance, free and
locked, plus the open BUY quantities plus its own quantity would exceed ``maxPosition``).

USD-M (Binance's USD-M "Filters" and error codes): PRICE_FILTER (-4013 below min, -4002 / -4007 above
max, -4014 off tick), LOT_SIZE / MARKET_LOT_SIZE (-4003 / -4004 / -4005 / -4023), MAX_NUM_ORDERS
(-2025 "Reach max open order limit."), MAX_NUM_ALGO_ORDERS (-4045 "Reach max stop order limit.",
untriggered STOP orders), MIN_NOTIONAL (-4164, reduce-only exempt) and PERCENT_PRICE, one bound per
side as Binance documents it: a LIMIT BUY at most ``markPrice * multiplierUp`` (-4016), a LIMIT SELL
at least ``markPrice * multiplierDown`` (-4024) -- a passive order far from the market passes, an
aggressive one does not; a STOP's limit price against its stop price the same way (-4183 / -4184);
a MARKET order whose counterparty best price is outside the band: -4131. The messages of -4016 /
-4024 are the ones Binance sends ("Limit price can't be higher than %s."; its error page also
lists "Price is higher than mark price multiplier cap.").

Reference price: the local exchange has no weighted average price or separate mark price; both the
spot ``weightedAveragePrice`` and the USD-M ``markPrice`` are the current mid of the replayed book
(:meth:`LocalVenue.marks`), the same reference MARKET notionals use. With no two-sided book the
price-band filters are not applied. Prices in quote currency, quantities in base units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orderflow.core.instruments import Instrument
from orderflow.execution.local import errors as E

if TYPE_CHECKING:
    from orderflow.execution.local.venue import LocalVenue

EPS = 1e-9
MAX_PRICE = {"spot": 1_000_000.0, "usdm": 4_529_764.0}
MAX_QTY = {"spot": 9000.0, "usdm": 1000.0}
MARKET_MAX_QTY = {"spot": 100.0, "usdm": 120.0}  # Binance's BTCUSDT MARKET_LOT_SIZE maxQty (spot varies)
MAX_NOTIONAL_SPOT = 9_000_000.0
MAX_ALGO_ORDERS = {"spot": 5, "usdm": 10}
# Binance's BTCUSDT values: spot PERCENT_PRICE_BY_SIDE, USD-M PERCENT_PRICE
SPOT_BAND = {
    "bidMultiplierUp": "5",
    "bidMultiplierDown": "0.2",
    "askMultiplierUp": "5",
    "askMultiplierDown": "0.2",
}
USDM_BAND = {"multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"}
ALGO_TYPES = ("STOP_LOSS_LIMIT", "STOP")


def _g(x: float, dec: int) -> str:
    return f"{x:.{dec}f}"


def on_grid(x: float, step: float) -> bool:
    n = x / step
    return abs(n - round(n)) <= 1e-9 * max(1.0, abs(n))


def symbol_filters(
    inst: Instrument, futures: bool, max_orders: int, max_position: float | None = None
) -> list[dict[str, Any]]:
    """``exchangeInfo.symbols[].filters`` of one symbol (the order is the order they are checked in)."""
    mk = "usdm" if futures else "spot"
    pd_ = inst.price_decimals if futures else max(inst.price_decimals, 8)
    sd = inst.size_decimals if futures else max(inst.size_decimals, 8)
    lot = {"minQty": _g(inst.lot_size, sd), "maxQty": _g(MAX_QTY[mk], sd), "stepSize": _g(inst.lot_size, sd)}
    mlot = {**lot, "maxQty": _g(MARKET_MAX_QTY[mk], sd)}
    price = {
        "filterType": "PRICE_FILTER",
        "minPrice": _g(inst.tick_size, pd_),
        "maxPrice": _g(MAX_PRICE[mk], pd_),
        "tickSize": _g(inst.tick_size, pd_),
    }
    out: list[dict[str, Any]]
    if futures:
        out = [
            price,
            {"filterType": "LOT_SIZE", **lot},
            {"filterType": "MARKET_LOT_SIZE", **mlot},
            {"filterType": "MAX_NUM_ORDERS", "limit": max_orders},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": MAX_ALGO_ORDERS[mk]},
            {"filterType": "MIN_NOTIONAL", "notional": f"{inst.min_notional:g}"},
            {"filterType": "PERCENT_PRICE", **USDM_BAND},
        ]
    else:
        out = [
            price,
            {"filterType": "LOT_SIZE", **lot},
            {"filterType": "MARKET_LOT_SIZE", **mlot},
            {"filterType": "PERCENT_PRICE_BY_SIDE", **SPOT_BAND, "avgPriceMins": 5},
            {
                "filterType": "NOTIONAL",
                "minNotional": _g(inst.min_notional, 8),
                "applyMinToMarket": True,
                "maxNotional": _g(MAX_NOTIONAL_SPOT, 8),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": max_orders},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": MAX_ALGO_ORDERS[mk]},
        ]
        if max_position is not None:
            out.append({"filterType": "MAX_POSITION", "maxPosition": _g(max_position, 8)})
    checks = FUTURES_CHECKS if futures else SPOT_CHECKS
    missing = [f["filterType"] for f in out if f["filterType"] not in checks]
    if missing:  # never advertise a filter that is not enforced
        raise RuntimeError(f"local exchange advertises filters it does not check: {missing}")
    return out


@dataclass(frozen=True)
class NewOrder:
    """A new order as the filters see it (``price`` / ``stop`` NaN when not sent)."""

    symbol: str
    buy: bool
    type: str
    price: float
    stop: float
    qty: float
    reduce_only: bool


Check = Callable[["LocalVenue", NewOrder, dict[str, Any]], None]


def check_new_order(v: LocalVenue, o: NewOrder) -> None:
    """Apply every filter of ``o.symbol`` (raise the first failure's :class:`ApiError`)."""
    checks = FUTURES_CHECKS if v.futures else SPOT_CHECKS
    for f in v.filters[o.symbol]:
        checks[f["filterType"]](v, o, f)


# ------------------------------------------------------------------------------------- helpers
def _num(f: dict[str, Any], key: str) -> float:
    return float(f[key])


def _ref(v: LocalVenue, sym: str) -> float:
    """The reference (weighted average / mark) price: the mid, NaN without a two-sided book."""
    return v.marks().get(sym, math.nan)


def _open(v: LocalVenue, sym: str) -> list[Any]:
    return [x for x in v.orders.values() if x.symbol == sym and x.is_open]


def _untriggered_algo(v: LocalVenue, sym: str) -> int:
    return sum(1 for x in _open(v, sym) if x.type in ALGO_TYPES and not x.working)


def _qty_bad(o: NewOrder, f: dict[str, Any]) -> str | None:
    """Which LOT_SIZE rule ``o.qty`` breaks: "zero", "min", "max", "step" or None."""
    if o.qty <= 0:
        return "zero"
    if o.qty < _num(f, "minQty") * (1 - EPS):
        return "min"
    if o.qty > _num(f, "maxQty") * (1 + EPS):
        return "max"
    if not on_grid(o.qty, _num(f, "stepSize")):
        return "step"
    return None


def _price_bad(x: float, f: dict[str, Any]) -> str | None:
    if math.isnan(x):
        return None
    if x < _num(f, "minPrice") * (1 - EPS):
        return "min"
    if x > _num(f, "maxPrice") * (1 + EPS):
        return "max"
    if not on_grid(x, _num(f, "tickSize")):
        return "tick"
    return None


def _cap(x: float, tick: float, up: bool) -> float:
    """``x`` moved onto the tick grid inside the band (down for a cap, up for a floor)."""
    n = x / tick
    return (math.floor(n + 1e-9) if up else math.ceil(n - 1e-9)) * tick


# ---------------------------------------------------------------------------------------- spot
def _spot_price(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    if _price_bad(o.price, f) or _price_bad(o.stop, f):
        raise E.filter_failure("PRICE_FILTER")


def _spot_lot(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    if o.type != "MARKET" and _qty_bad(o, f):
        raise E.filter_failure("LOT_SIZE")


def _spot_market_lot(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    if o.type == "MARKET" and _qty_bad(o, f):
        raise E.filter_failure("MARKET_LOT_SIZE")


def _spot_band(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    ref = _ref(v, o.symbol)
    if o.type == "MARKET" or math.isnan(o.price) or math.isnan(ref):
        return
    side = "bid" if o.buy else "ask"
    hi, lo = ref * _num(f, f"{side}MultiplierUp"), ref * _num(f, f"{side}MultiplierDown")
    if o.price > hi * (1 + EPS) or o.price < lo * (1 - EPS):
        raise E.filter_failure("PERCENT_PRICE_BY_SIDE")


def _spot_notional(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    market = o.type == "MARKET"
    px = _ref(v, o.symbol) if market else o.price
    if math.isnan(px):
        return
    n = px * o.qty
    if (not market or f["applyMinToMarket"]) and n < _num(f, "minNotional") * (1 - EPS):
        raise E.filter_failure("NOTIONAL")
    if (not market or f["applyMaxToMarket"]) and n > _num(f, "maxNotional") * (1 + EPS):
        raise E.filter_failure("NOTIONAL")


def _spot_max_orders(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    if len(_open(v, o.symbol)) >= int(f["maxNumOrders"]):
        raise E.filter_failure("MAX_NUM_ORDERS")


def _spot_max_algo(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    if o.type in ALGO_TYPES and _untriggered_algo(v, o.symbol) >= int(f["maxNumAlgoOrders"]):
        raise E.filter_failure("MAX_NUM_ALGO_ORDERS")


def _spot_max_position(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    if not o.buy:
        return
    from orderflow.core.instruments import split_symbol

    base = split_symbol(o.symbol)[0]
    held = v.spot.free.get(base, 0.0) + v.spot.locked.get(base, 0.0)
    buys = sum(x.remaining for x in _open(v, o.symbol) if x.side == "BUY")
    if held + buys + o.qty > _num(f, "maxPosition") * (1 + EPS):
        raise E.filter_failure("MAX_POSITION")


SPOT_CHECKS: dict[str, Check] = {
    "PRICE_FILTER": _spot_price,
    "LOT_SIZE": _spot_lot,
    "MARKET_LOT_SIZE": _spot_market_lot,
    "PERCENT_PRICE_BY_SIDE": _spot_band,
    "NOTIONAL": _spot_notional,
    "MAX_NUM_ORDERS": _spot_max_orders,
    "MAX_NUM_ALGO_ORDERS": _spot_max_algo,
    "MAX_POSITION": _spot_max_position,
}


# ------------------------------------------------------------------------------------- futures
def _fut_price(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    for x, above_max in ((o.price, E.fut_price_above_max), (o.stop, E.fut_stop_above_max)):
        bad = _price_bad(x, f)
        if bad == "min":
            raise E.fut_price_below_min()
        if bad == "max":
            raise above_max()
        if bad == "tick":
            raise E.fut_price_tick()


def _fut_lot(market: bool) -> Check:
    def check(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
        if (o.type == "MARKET") != market:
            return
        bad = _qty_bad(o, f)
        if bad == "zero":
            raise E.fut_qty_not_positive()
        if bad == "min":
            raise E.fut_qty_below_min()
        if bad == "max":
            raise E.fut_qty_above_max()
        if bad == "step":
            raise E.fut_qty_step()

    return check


def _fut_max_orders(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    if len(_open(v, o.symbol)) >= int(f["limit"]):
        raise E.fut_max_open_orders()


def _fut_max_algo(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    if o.type in ALGO_TYPES and _untriggered_algo(v, o.symbol) >= int(f["limit"]):
        raise E.fut_max_stop_orders()


def _fut_notional(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    px = _ref(v, o.symbol) if o.type == "MARKET" else o.price
    if not o.reduce_only and not math.isnan(px) and px * o.qty < _num(f, "notional") * (1 - EPS):
        raise E.fut_min_notional(f["notional"])


def _fut_band(v: LocalVenue, o: NewOrder, f: dict[str, Any]) -> None:
    up, down = _num(f, "multiplierUp"), _num(f, "multiplierDown")
    inst = v.markets[o.symbol].inst
    tick, pdec = inst.tick_size, inst.price_decimals
    if o.type == "STOP":  # the limit price of a stop-limit, against its stop price
        ref, hi_err, lo_err = o.stop, E.fut_stop_limit_above, E.fut_stop_limit_below
    else:
        ref, hi_err, lo_err = _ref(v, o.symbol), E.fut_limit_above_band, E.fut_limit_below_band
    if math.isnan(ref):
        return
    if o.type == "MARKET":
        mkt = v.markets[o.symbol]
        best = mkt.ask_px[0] if o.buy else mkt.bid_px[0]
        if not math.isnan(best) and (best > ref * up * (1 + EPS) if o.buy else best < ref * down * (1 - EPS)):
            raise E.fut_market_band()
        return
    if o.buy and o.price > ref * up * (1 + EPS):
        raise hi_err(_g(_cap(ref * up, tick, up=True), pdec))
    if not o.buy and o.price < ref * down * (1 - EPS):
        raise lo_err(_g(_cap(ref * down, tick, up=False), pdec))


FUTURES_CHECKS: dict[str, Check] = {
    "PRICE_FILTER": _fut_price,
    "LOT_SIZE": _fut_lot(market=False),
    "MARKET_LOT_SIZE": _fut_lot(market=True),
    "MAX_NUM_ORDERS": _fut_max_orders,
    "MAX_NUM_ALGO_ORDERS": _fut_max_algo,
    "MIN_NOTIONAL": _fut_notional,
    "PERCENT_PRICE": _fut_band,
}
