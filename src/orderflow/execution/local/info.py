"""``exchangeInfo`` of the local exchange in Binance's format, with the filters of
:mod:`orderflow.core.instruments` (PRICE_FILTER tickSize, LOT_SIZE / MARKET_LOT_SIZE stepSize and
minQty, spot NOTIONAL minNotional, futures MIN_NOTIONAL notional)."""

from __future__ import annotations

from typing import Any

from orderflow.core.instruments import Instrument
from orderflow.execution.local.accounts import split_symbol
from orderflow.execution.local.trading import MAX_PRICE, MAX_QTY


def _g(x: float, dec: int) -> str:
    return f"{x:.{dec}f}"


def _symbol_spot(inst: Instrument, max_orders: int) -> dict[str, Any]:
    base, quote = split_symbol(inst.symbol)
    pd_, sd = max(inst.price_decimals, 8), max(inst.size_decimals, 8)
    lot = {
        "minQty": _g(inst.lot_size, sd),
        "maxQty": _g(MAX_QTY["spot"], sd),
        "stepSize": _g(inst.lot_size, sd),
    }
    return {
        "symbol": inst.symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _g(inst.tick_size, pd_),
                "maxPrice": _g(MAX_PRICE["spot"], pd_),
                "tickSize": _g(inst.tick_size, pd_),
            },
            {"filterType": "LOT_SIZE", **lot},
            {"filterType": "MARKET_LOT_SIZE", **lot},
            {
                "filterType": "NOTIONAL",
                "minNotional": _g(inst.min_notional, 8),
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": max_orders},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _symbol_futures(inst: Instrument, max_orders: int) -> dict[str, Any]:
    base, quote = split_symbol(inst.symbol)
    pdec, sdec = inst.price_decimals, inst.size_decimals
    lot = {
        "minQty": _g(inst.lot_size, sdec),
        "maxQty": _g(MAX_QTY["usdm"], sdec),
        "stepSize": _g(inst.lot_size, sdec),
    }
    return {
        "symbol": inst.symbol,
        "pair": inst.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": pdec,
        "quantityPrecision": sdec,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _g(inst.tick_size, pdec),
                "maxPrice": _g(MAX_PRICE["usdm"], pdec),
                "tickSize": _g(inst.tick_size, pdec),
            },
            {"filterType": "LOT_SIZE", **lot},
            {"filterType": "MARKET_LOT_SIZE", **lot},
            {"filterType": "MAX_NUM_ORDERS", "limit": max_orders},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": f"{inst.min_notional:g}"},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def exchange_info(
    futures: bool,
    instruments: list[Instrument],
    server_ms: int,
    weight_limit: int,
    order_limit: int,
    max_orders: int,
) -> dict[str, Any]:
    limits = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_limit},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": order_limit},
    ]
    if futures:
        return {
            "timezone": "UTC",
            "serverTime": server_ms,
            "futuresType": "U_MARGINED",
            "rateLimits": limits,
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [_symbol_futures(i, max_orders) for i in instruments],
        }
    return {
        "timezone": "UTC",
        "serverTime": server_ms,
        "rateLimits": limits,
        "exchangeFilters": [],
        "symbols": [_symbol_spot(i, max_orders) for i in instruments],
    }
