"""Exchange filters applied before an order is sent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderflow.adapters.binance.common.errors import FilterError
from orderflow.adapters.binance.trading.filters import SymbolFilters, check_order, parse_exchange_info

FUT_INFO = {
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "baseAsset": "BTC",
            "quoteAsset": "USDT",
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "556.80",
                    "maxPrice": "4529764",
                    "tickSize": "0.10",
                },
                {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
                {"filterType": "MIN_NOTIONAL", "notional": "100"},
            ],
        }
    ]
}
SPOT_INFO = {
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01",
                    "maxPrice": "1000000.00",
                    "tickSize": "0.01",
                },
                {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "5.0",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
        }
    ]
}


@pytest.fixture()
def fut() -> SymbolFilters:
    return parse_exchange_info(FUT_INFO, futures=True)["BTCUSDT"]


@pytest.fixture()
def spot() -> SymbolFilters:
    return parse_exchange_info(SPOT_INFO, futures=False)["BTCUSDT"]


def test_parse_reads_filters_exactly(fut, spot):
    assert fut.tick_size == Decimal("0.10") and fut.step_size == Decimal("0.001")
    assert fut.min_notional == Decimal("100") and fut.market_max_qty == Decimal("120")
    assert spot.min_notional == Decimal("5.0") and spot.max_notional == Decimal("9000000")
    assert fut.base_asset == "BTC"


def test_price_off_tick_names_filter_and_numbers(fut):
    with pytest.raises(FilterError) as ei:
        check_order(fut, side="BUY", quantity="0.01", price="100000.05")
    e = ei.value
    assert str(e) == "price 100000.05 is not on the 0.1 tick (PRICE_FILTER)"
    assert (e.filter, e.value, e.limit) == ("PRICE_FILTER", "100000.05", "0.1")


def test_quantity_under_minimum_and_off_step(fut):
    with pytest.raises(FilterError, match=r"quantity 0.0005 is not a multiple of the 0.001 step") as ei:
        check_order(fut, side="BUY", quantity=0.0005, price=100000)
    assert ei.value.filter == "LOT_SIZE"
    with pytest.raises(FilterError, match=r"under the minimum 0.001 \(LOT_SIZE\)"):
        check_order(fut, side="BUY", quantity=0.0005, price=100000, round_to_grid=True)


def test_min_notional_and_reduce_only_exemption_on_futures(fut):
    with pytest.raises(FilterError, match=r"notional 50 .* under the minimum 100 \(MIN_NOTIONAL\)") as ei:
        check_order(fut, side="SELL", quantity="0.001", price="50000")
    assert (ei.value.value, ei.value.limit) == ("50", "100")
    ok = check_order(fut, side="SELL", quantity="0.001", price="50000", reduce_only=True)
    assert ok.quantity == "0.001"


def test_spot_notional_max_and_market_reference(spot):
    with pytest.raises(FilterError, match="NOTIONAL"):
        check_order(spot, side="BUY", quantity="0.0001", market=True, ref_price="30000")  # 3 USDT < 5
    assert check_order(spot, side="BUY", quantity="0.0001", market=True).price is None  # no ref: not checked
    with pytest.raises(FilterError, match=r"over the maximum 9000000 \(NOTIONAL\)"):
        check_order(spot, side="BUY", quantity="1000", price="10000")


def test_market_lot_size_applies_to_market_orders(fut):
    with pytest.raises(FilterError, match="MARKET_LOT_SIZE"):
        check_order(fut, side="BUY", quantity="200", market=True)
    assert check_order(fut, side="BUY", quantity="200", price="100000").quantity == "200"


def test_round_to_grid_moves_to_passive_side(fut):
    buy = check_order(fut, side="BUY", quantity="0.0123", price="100000.07", round_to_grid=True)
    sell = check_order(fut, side="SELL", quantity="0.0123", price="100000.07", round_to_grid=True)
    assert (buy.price, buy.quantity) == ("100000", "0.012")
    assert (sell.price, sell.quantity) == ("100000.1", "0.012")


def test_stop_price_checked_and_float_inputs_are_exact(fut):
    with pytest.raises(FilterError, match=r"stop price 99999\.99"):
        check_order(fut, side="SELL", quantity=0.01, price=100000.0, stop_price=99999.99)
    ok = check_order(fut, side="BUY", quantity=0.003, price=0.1 * 3 + 100000 - 0.3)
    assert ok.price == "100000"


def test_price_range(fut):
    with pytest.raises(FilterError, match=r"below the minimum price 556.8"):
        check_order(fut, side="BUY", quantity="1", price="500")


@given(ticks=st.integers(min_value=5568, max_value=10**7), lots=st.integers(min_value=1, max_value=10**6))
def test_on_grid_orders_pass_unchanged(ticks, lots):
    f = parse_exchange_info(FUT_INFO, futures=True)["BTCUSDT"]
    price = Decimal(ticks) * Decimal("0.1")
    qty = Decimal(lots) * Decimal("0.001")
    if price * qty < 100:
        return
    c = check_order(f, side="BUY", quantity=str(qty), price=str(price))
    assert Decimal(c.price) == price and Decimal(c.quantity) == qty


@given(
    price=st.decimals(min_value=Decimal("600"), max_value=Decimal("100000"), places=4),
    qty=st.decimals(min_value=Decimal("0.001"), max_value=Decimal("500"), places=5),
    buy=st.booleans(),
)
def test_rounded_orders_are_on_grid_and_never_more_aggressive(price, qty, buy):
    f = parse_exchange_info(FUT_INFO, futures=True)["BTCUSDT"]
    try:
        c = check_order(f, side="BUY" if buy else "SELL", quantity=qty, price=price, round_to_grid=True)
    except FilterError as e:
        assert e.filter in ("MIN_NOTIONAL", "LOT_SIZE")
        return
    p, q = Decimal(c.price), Decimal(c.quantity)
    assert p % Decimal("0.1") == 0 and (q - Decimal("0.001")) % Decimal("0.001") == 0
    assert q <= qty and (p <= price if buy else p >= price)


# ---------------------------------------------------------------- the local exchange's filters
def _local(futures: bool) -> SymbolFilters:
    from orderflow.core.instruments import lookup
    from orderflow.execution.local.filters import symbol_filters

    inst = lookup("binance-usdm" if futures else "binance-spot", "BTCUSDT")
    assert inst is not None
    info = {"symbol": "BTCUSDT", "filters": symbol_filters(inst, futures, 200, None if futures else 1.0)}
    return SymbolFilters.from_symbol_info(info, futures)


@pytest.mark.parametrize("futures", [True, False])
def test_knows_every_filter_the_local_exchange_advertises(futures):
    from orderflow.adapters.binance.trading.filters import CHECKED, EXCHANGE_CHECKED
    from orderflow.core.instruments import lookup
    from orderflow.execution.local.filters import symbol_filters

    inst = lookup("binance-usdm" if futures else "binance-spot", "BTCUSDT")
    assert inst is not None
    advertised = {f["filterType"] for f in symbol_filters(inst, futures, 200, None if futures else 1.0)}
    assert advertised - CHECKED - EXCHANGE_CHECKED == set()
    f = _local(futures)
    assert f.band_filter == ("PERCENT_PRICE" if futures else "PERCENT_PRICE_BY_SIDE")
    assert 0 < f.market_max_qty < f.max_qty


def test_usdm_percent_price_one_bound_per_side_around_the_reference():
    f = _local(futures=True)  # multiplierUp 1.05, multiplierDown 0.95
    ref = "60000"
    with pytest.raises(FilterError, match=r"price 63000.1 is above 63000 .*\(PERCENT_PRICE\)") as ei:
        check_order(f, side="BUY", quantity="0.01", price="63000.1", ref_price=ref)
    assert (ei.value.filter, ei.value.limit) == ("PERCENT_PRICE", "63000")
    with pytest.raises(FilterError, match=r"below 57000"):
        check_order(f, side="SELL", quantity="0.01", price="56999.9", ref_price=ref)
    for side, px in (("BUY", "63000"), ("BUY", "30000"), ("SELL", "57000"), ("SELL", "120000")):
        check_order(f, side=side, quantity="0.01", price=px, ref_price=ref)  # passive: no bound
    check_order(f, side="BUY", quantity="0.01", price="90000")  # no reference: left to the exchange
    with pytest.raises(FilterError, match=r"above 63000 = 1.05 x reference price 60000"):  # stop-limit
        check_order(f, side="BUY", quantity="0.01", price="63000.1", stop_price="60000", ref_price="1")


def test_spot_percent_price_by_side_has_both_bounds_per_side():
    f = _local(futures=False)  # 0.2 .. 5 on both sides
    for side in ("BUY", "SELL"):
        for px in ("300000.01", "11999.99"):
            with pytest.raises(FilterError) as ei:
                check_order(f, side=side, quantity="0.001", price=px, ref_price="60000")
            assert ei.value.filter == "PERCENT_PRICE_BY_SIDE"
        check_order(f, side=side, quantity="0.001", price="300000", ref_price="60000")
        check_order(f, side=side, quantity="0.001", price="12000", ref_price="60000")
