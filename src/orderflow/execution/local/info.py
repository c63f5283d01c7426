"""``exchangeInfo`` of the local exchange in Binance's format; each symbol's ``filters`` are
:func:`orderflow.execution.local.filters.symbol_filters` (from :mod:`orderflow.core.instruments`:
PRICE_FILTER tickSize, LOT_SIZE / MARKET_LOT_SIZE stepSize and minQty, spot NOTIONAL minNotional,
futures MIN_NOTIONAL notional; the rest Binance's BTCUSDT values), the very list orders are checked
against."""

from __future__ import annotations

from typing import Any

from orderflow.core.instruments import Instrument, split_symbol


def _symbol_spot(inst: Instrument, filters: list[dict[str, Any]]) -> dict[str, Any]:
    base, quote = split_symbol(inst.symbol)
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
        "filters": filters,
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _symbol_futures(inst: Instrument, filters: list[dict[str, Any]]) -> dict[str, Any]:
    base, quote = split_symbol(inst.symbol)
    pdec, sdec = inst.price_decimals, inst.size_decimals
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
        "filters": filters,
        "orderTypes": ["LIMIT", "MARKET", "STOP"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def exchange_info(
    futures: bool,
    instruments: list[Instrument],
    server_ms: int,
    weight_limit: int,
    order_limit: int,
    filters: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The ``exchangeInfo`` body; ``filters`` by symbol (:attr:`LocalVenue.filters`)."""
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
            "symbols": [_symbol_futures(i, filters[i.symbol]) for i in instruments],
        }
    return {
        "timezone": "UTC",
        "serverTime": server_ms,
        "rateLimits": limits,
        "exchangeFilters": [],
        "symbols": [_symbol_spot(i, filters[i.symbol]) for i in instruments],
    }
