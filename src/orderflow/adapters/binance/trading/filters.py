"""Binance symbol filters (from ``exchangeInfo``) checked before an order is sent.

Rules (Binance ``filters.md``; USD-M "Filters"):

- PRICE_FILTER: ``minPrice <= price <= maxPrice`` and ``price % tickSize == 0`` (each rule off when
  its value is 0); applies to ``price`` and ``stopPrice``;
- LOT_SIZE: ``minQty <= quantity <= maxQty`` and ``(quantity - minQty) % stepSize == 0``;
  MARKET_LOT_SIZE is the same for MARKET orders;
- spot MIN_NOTIONAL (``minNotional``, ``applyToMarket``) and NOTIONAL (``minNotional``,
  ``applyMinToMarket``, ``maxNotional``, ``applyMaxToMarket``); USD-M MIN_NOTIONAL (``notional``),
  which reduce-only orders are exempt from ("Order's notional must be no smaller than 5 (unless you
  choose reduce only)"). A MARKET order is checked against a reference price when one is given;
- the price band, checked when a reference price is given (Binance's weighted average / mark price;
  the engine passes its mid): USD-M PERCENT_PRICE, one bound per side (a BUY at most ``ref *
  multiplierUp``, a SELL at least ``ref * multiplierDown``; a stop-limit's price against its stop
  price); spot PERCENT_PRICE_BY_SIDE (a BUY within ``[bidMultiplierDown, bidMultiplierUp] * ref``, a
  SELL within the ask multipliers) and the older two-sided spot PERCENT_PRICE.

MAX_NUM_ORDERS, MAX_NUM_ALGO_ORDERS and MAX_POSITION depend on the account's open orders and
balances, which one order's parameters do not show: the exchange answers them (``EXCHANGE_CHECKED``).

All arithmetic is in :class:`~decimal.Decimal` on the exchange's decimal strings, so ``0.1 + 0.2``
issues cannot make a valid price fail or an invalid one pass. Prices are in quote currency,
quantities in base units. With ``round_to_grid`` the price is moved to the passive side of the grid
(down for a BUY, up for a SELL) and the quantity down to the step, so rounding never makes an order
more aggressive or larger than asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from orderflow.adapters.binance.common.errors import BadRequest, FilterError

ZERO = Decimal(0)
# symbol filters checked here before sending, and those only the exchange can check (account state)
CHECKED = frozenset(
    {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "MIN_NOTIONAL", "NOTIONAL", "PERCENT_PRICE",
     "PERCENT_PRICE_BY_SIDE"}
)  # fmt: skip
EXCHANGE_CHECKED = frozenset({"MAX_NUM_ORDERS", "MAX_NUM_ALGO_ORDERS", "MAX_POSITION"})


def to_decimal(x: Decimal | float | int | str, name: str = "value") -> Decimal:
    """Exact decimal of ``x`` (floats go through ``repr`` so ``0.1`` is ``Decimal('0.1')``)."""
    if isinstance(x, Decimal):
        d = x
    else:
        try:
            d = Decimal(repr(x)) if isinstance(x, float) else Decimal(str(x))
        except InvalidOperation:
            raise BadRequest(f"{name} {x!r} is not a number") from None
    if not d.is_finite():
        raise BadRequest(f"{name} {x!r} is not a finite number")
    return d


def fmt(d: Decimal) -> str:
    """Plain decimal string without exponent or trailing zeros (``Decimal('1E+2')`` -> ``'100'``)."""
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


@dataclass(frozen=True, slots=True)
class SymbolFilters:
    """The filters of one symbol; a 0 disables a rule, as in exchangeInfo."""

    symbol: str
    tick_size: Decimal = ZERO
    min_price: Decimal = ZERO
    max_price: Decimal = ZERO
    step_size: Decimal = ZERO
    min_qty: Decimal = ZERO
    max_qty: Decimal = ZERO
    market_step_size: Decimal = ZERO
    market_min_qty: Decimal = ZERO
    market_max_qty: Decimal = ZERO
    min_notional: Decimal = ZERO
    max_notional: Decimal = ZERO
    min_notional_to_market: bool = True
    max_notional_to_market: bool = False
    reduce_only_exempt: bool = False  # USD-M: reduce-only orders skip MIN_NOTIONAL
    # price band: multipliers of the reference price per side (0 = no bound), and the filter's name
    bid_up: Decimal = ZERO
    bid_down: Decimal = ZERO
    ask_up: Decimal = ZERO
    ask_down: Decimal = ZERO
    band_filter: str = ""
    base_asset: str = ""
    quote_asset: str = ""

    @classmethod
    def from_symbol_info(cls, info: dict[str, Any], futures: bool) -> SymbolFilters:
        """From one element of ``exchangeInfo.symbols``."""
        f = {x.get("filterType"): x for x in info.get("filters", [])}

        def d(filter_type: str, key: str) -> Decimal:
            v = f.get(filter_type, {}).get(key)
            return Decimal(str(v)) if v not in (None, "") else ZERO

        kw: dict[str, Any] = {
            "symbol": info["symbol"],
            "tick_size": d("PRICE_FILTER", "tickSize"),
            "min_price": d("PRICE_FILTER", "minPrice"),
            "max_price": d("PRICE_FILTER", "maxPrice"),
            "step_size": d("LOT_SIZE", "stepSize"),
            "min_qty": d("LOT_SIZE", "minQty"),
            "max_qty": d("LOT_SIZE", "maxQty"),
            "market_step_size": d("MARKET_LOT_SIZE", "stepSize"),
            "market_min_qty": d("MARKET_LOT_SIZE", "minQty"),
            "market_max_qty": d("MARKET_LOT_SIZE", "maxQty"),
            "base_asset": info.get("baseAsset", ""),
            "quote_asset": info.get("quoteAsset", ""),
            "reduce_only_exempt": futures,
        }
        if futures and "PERCENT_PRICE" in f:  # one bound per side
            up, down = d("PERCENT_PRICE", "multiplierUp"), d("PERCENT_PRICE", "multiplierDown")
            kw.update(bid_up=up, ask_down=down, band_filter="PERCENT_PRICE")
        elif "PERCENT_PRICE_BY_SIDE" in f:
            kw.update(
                {k: d("PERCENT_PRICE_BY_SIDE", f"{side}Multiplier{ud}")
                 for k, side, ud in (("bid_up", "bid", "Up"), ("bid_down", "bid", "Down"),
                                     ("ask_up", "ask", "Up"), ("ask_down", "ask", "Down"))},
                band_filter="PERCENT_PRICE_BY_SIDE",
            )  # fmt: skip
        elif "PERCENT_PRICE" in f:  # spot's older two-sided band
            up, down = d("PERCENT_PRICE", "multiplierUp"), d("PERCENT_PRICE", "multiplierDown")
            kw.update(bid_up=up, bid_down=down, ask_up=up, ask_down=down, band_filter="PERCENT_PRICE")
        if futures:
            kw["min_notional"] = d("MIN_NOTIONAL", "notional")
        elif "NOTIONAL" in f:
            kw["min_notional"] = d("NOTIONAL", "minNotional")
            kw["max_notional"] = d("NOTIONAL", "maxNotional")
            kw["min_notional_to_market"] = bool(f["NOTIONAL"].get("applyMinToMarket", True))
            kw["max_notional_to_market"] = bool(f["NOTIONAL"].get("applyMaxToMarket", False))
        elif "MIN_NOTIONAL" in f:
            kw["min_notional"] = d("MIN_NOTIONAL", "minNotional")
            kw["min_notional_to_market"] = bool(f["MIN_NOTIONAL"].get("applyToMarket", True))
        return cls(**kw)


def parse_exchange_info(info: dict[str, Any], futures: bool) -> dict[str, SymbolFilters]:
    """Filters of every symbol in an ``exchangeInfo`` body, by symbol."""
    return {s["symbol"]: SymbolFilters.from_symbol_info(s, futures) for s in info.get("symbols", [])}


@dataclass(frozen=True, slots=True)
class CheckedOrder:
    """Quantity, price and stop price as the strings to send (``None`` when not used)."""

    quantity: str
    price: str | None
    stop_price: str | None


def _on_grid(x: Decimal, base: Decimal, step: Decimal) -> bool:
    return step == 0 or (x - base) % step == 0


def _snap(x: Decimal, base: Decimal, step: Decimal, up: bool) -> Decimal:
    if step == 0:
        return x
    n = ((x - base) / step).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return base + n * step


def _check_price(f: SymbolFilters, name: str, p: Decimal, round_up: bool, rnd: bool) -> Decimal:
    sym = f.symbol
    if p <= 0:
        raise FilterError(
            f"{name} {fmt(p)} must be > 0 (PRICE_FILTER)",
            filter="PRICE_FILTER",
            value=fmt(p),
            limit="0",
            symbol=sym,
        )
    if not _on_grid(p, ZERO, f.tick_size):
        if not rnd:
            raise FilterError(
                f"{name} {fmt(p)} is not on the {fmt(f.tick_size)} tick (PRICE_FILTER)",
                filter="PRICE_FILTER",
                value=fmt(p),
                limit=fmt(f.tick_size),
                symbol=sym,
            )
        p = _snap(p, ZERO, f.tick_size, round_up)
    if f.min_price > 0 and p < f.min_price:
        raise FilterError(
            f"{name} {fmt(p)} is below the minimum price {fmt(f.min_price)} (PRICE_FILTER)",
            filter="PRICE_FILTER",
            value=fmt(p),
            limit=fmt(f.min_price),
            symbol=sym,
        )
    if f.max_price > 0 and p > f.max_price:
        raise FilterError(
            f"{name} {fmt(p)} is above the maximum price {fmt(f.max_price)} (PRICE_FILTER)",
            filter="PRICE_FILTER",
            value=fmt(p),
            limit=fmt(f.max_price),
            symbol=sym,
        )
    return p


def _check_qty(f: SymbolFilters, q: Decimal, market: bool, rnd: bool) -> Decimal:
    sym = f.symbol
    use_market = market and (f.market_step_size > 0 or f.market_min_qty > 0 or f.market_max_qty > 0)
    name = "MARKET_LOT_SIZE" if use_market else "LOT_SIZE"
    step = f.market_step_size if use_market else f.step_size
    mn = f.market_min_qty if use_market else f.min_qty
    mx = f.market_max_qty if use_market else f.max_qty
    if q <= 0:
        raise FilterError(
            f"quantity {fmt(q)} must be > 0 ({name})", filter=name, value=fmt(q), limit="0", symbol=sym
        )
    if not _on_grid(q, mn, step):
        if not rnd:
            raise FilterError(
                f"quantity {fmt(q)} is not a multiple of the {fmt(step)} step above {fmt(mn)} ({name})",
                filter=name,
                value=fmt(q),
                limit=fmt(step),
                symbol=sym,
            )
        q = _snap(q, mn, step, up=False)
    if mn > 0 and q < mn:
        raise FilterError(
            f"quantity {fmt(q)} is under the minimum {fmt(mn)} ({name})",
            filter=name,
            value=fmt(q),
            limit=fmt(mn),
            symbol=sym,
        )
    if mx > 0 and q > mx:
        raise FilterError(
            f"quantity {fmt(q)} is over the maximum {fmt(mx)} ({name})",
            filter=name,
            value=fmt(q),
            limit=fmt(mx),
            symbol=sym,
        )
    return q


def _check_band(f: SymbolFilters, buy: bool, p: Decimal, ref: Decimal | None) -> None:
    """PERCENT_PRICE / PERCENT_PRICE_BY_SIDE of the limit price ``p`` around ``ref``."""
    if ref is None or not f.band_filter:
        return
    up, down = (f.bid_up, f.bid_down) if buy else (f.ask_up, f.ask_down)
    for mult, over in ((up, True), (down, False)):
        bound = ref * mult
        if mult > 0 and (p > bound if over else p < bound):
            word = "above" if over else "below"
            raise FilterError(
                f"price {fmt(p)} is {word} {fmt(bound)} = {fmt(mult)} x reference price {fmt(ref)} "
                f"({f.band_filter})",
                filter=f.band_filter,
                value=fmt(p),
                limit=fmt(bound),
                symbol=f.symbol,
            )


def check_order(
    f: SymbolFilters,
    *,
    side: str,
    quantity: Decimal | float | str,
    price: Decimal | float | str | None = None,
    stop_price: Decimal | float | str | None = None,
    market: bool = False,
    reduce_only: bool = False,
    ref_price: Decimal | float | str | None = None,
    round_to_grid: bool = False,
) -> CheckedOrder:
    """Apply the filters to an order (``side`` "BUY"/"SELL"); raise :class:`FilterError` naming the
    filter and the numbers, or return the (possibly rounded) strings to send.

    ``ref_price`` is the price a MARKET order's notional is checked at and the reference of the price
    band (e.g. the mid); without it neither is checked here (the exchange still checks them).
    """
    buy = side.upper() == "BUY"
    q = _check_qty(f, to_decimal(quantity, "quantity"), market, round_to_grid)
    p = (
        None
        if price is None
        else _check_price(f, "price", to_decimal(price, "price"), not buy, round_to_grid)
    )
    sp = None
    if stop_price is not None:
        sp = _check_price(f, "stop price", to_decimal(stop_price, "stop price"), not buy, round_to_grid)
    ref = to_decimal(ref_price, "reference price") if ref_price is not None else None
    if p is not None and not market:
        _check_band(f, buy, p, sp if (f.reduce_only_exempt and sp is not None) else ref)
    notional_price = ref if market else (p if p is not None else sp)
    if notional_price is not None and not (reduce_only and f.reduce_only_exempt):
        notional = notional_price * q
        check_min = f.min_notional > 0 and (not market or f.min_notional_to_market)
        check_max = f.max_notional > 0 and (not market or f.max_notional_to_market)
        name = "NOTIONAL" if f.max_notional > 0 else "MIN_NOTIONAL"
        if check_min and notional < f.min_notional:
            raise FilterError(
                f"notional {fmt(notional)} (price {fmt(notional_price)} x quantity {fmt(q)}) is under the "
                f"minimum {fmt(f.min_notional)} ({name})",
                filter=name,
                value=fmt(notional),
                limit=fmt(f.min_notional),
                symbol=f.symbol,
            )
        if check_max and notional > f.max_notional:
            raise FilterError(
                f"notional {fmt(notional)} is over the maximum {fmt(f.max_notional)} (NOTIONAL)",
                filter="NOTIONAL",
                value=fmt(notional),
                limit=fmt(f.max_notional),
                symbol=f.symbol,
            )
    return CheckedOrder(fmt(q), None if p is None else fmt(p), None if sp is None else fmt(sp))
