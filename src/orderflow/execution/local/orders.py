"""Orders of the local exchange and their JSON in Binance's formats (REST answers, spot
``executionReport`` and futures ``ORDER_TRADE_UPDATE``).

Prices in quote currency, quantities in base units, times in ms since the epoch (Binance's unit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from orderflow.execution.local.streams import fmt

TERMINAL = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED"})


@dataclass
class LocalOrder:
    """One order as the exchange holds it. ``type`` / ``tif`` are Binance's names; ``sim_type`` is the
    simulated exchange's (LIMIT / MARKET / STOP_LIMIT)."""

    symbol: str
    order_id: int
    client_id: str
    side: str  # BUY / SELL
    type: str  # spot: LIMIT MARKET LIMIT_MAKER STOP_LOSS_LIMIT; futures: LIMIT MARKET STOP
    tif: str  # GTC IOC FOK GTX
    price: float
    stop_price: float
    qty: float
    time_ms: int
    pdec: int
    sdec: int
    reduce_only: bool = False
    post_only: bool = False
    status: str = "NEW"
    executed: float = 0.0
    cum_quote: float = 0.0
    update_ms: int = 0
    working: bool = True
    locked: float = 0.0  # spot: amount still locked (quote for buys, base for sells)
    last_qty: float = 0.0
    last_px: float = 0.0
    last_fee: float = 0.0
    last_fee_asset: str | None = None
    last_trade_id: int = -1
    last_maker: bool = False
    last_realized: float = 0.0
    cancel_client_id: str = ""  # spot: newClientOrderId of the cancel request ("C" is then the original)
    fills: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sign(self) -> int:
        return 1 if self.side == "BUY" else -1

    @property
    def remaining(self) -> float:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL

    @property
    def avg_price(self) -> float:
        return self.cum_quote / self.executed if self.executed > 0 else 0.0

    def p(self, x: float) -> str:
        return fmt(0.0 if math.isnan(x) else x, self.pdec)

    def q(self, x: float) -> str:
        return fmt(x, self.sdec)

    # ------------------------------------------------------------------------------------ spot
    def spot_json(self, full: bool = True) -> dict[str, Any]:
        """GET /api/v3/order (and the RESULT part of a POST answer)."""
        out: dict[str, Any] = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_id,
            "price": self.p(self.price),
            "origQty": self.q(self.qty),
            "executedQty": self.q(self.executed),
            "cummulativeQuoteQty": fmt(self.cum_quote, 8),
            "status": self.status,
            "timeInForce": self.tif,
            "type": self.type,
            "side": self.side,
        }
        if full:
            out.update(
                {
                    "stopPrice": self.p(self.stop_price),
                    "icebergQty": self.q(0.0),
                    "time": self.time_ms,
                    "updateTime": self.update_ms,
                    "isWorking": self.working,
                    "workingTime": self.time_ms if self.working else -1,
                    "origQuoteOrderQty": fmt(0.0, 8),
                    "selfTradePreventionMode": "EXPIRE_MAKER",
                }
            )
        return out

    def spot_new_answer(self, resp_type: str) -> dict[str, Any]:
        ack = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_id,
            "transactTime": self.time_ms,
        }
        if resp_type == "ACK":
            return ack
        out = {**ack, **self.spot_json(full=False)}
        out["workingTime"] = self.time_ms if self.working else -1
        if resp_type == "FULL":
            out["fills"] = list(self.fills)
        out["selfTradePreventionMode"] = "EXPIRE_MAKER"
        return out

    def execution_report(self, event_ms: int, exec_type: str) -> dict[str, Any]:
        """Spot user data stream ``executionReport`` (on a cancel, ``c`` is the cancel request's client
        id and ``C`` the order's)."""
        trade = exec_type == "TRADE"
        cid, orig_client_id = self.client_id, ""
        if exec_type == "CANCELED" and self.cancel_client_id:
            cid, orig_client_id = self.cancel_client_id, self.client_id
        return {
            "e": "executionReport",
            "E": event_ms,
            "s": self.symbol,
            "c": cid,
            "S": self.side,
            "o": self.type,
            "f": self.tif,
            "q": self.q(self.qty),
            "p": self.p(self.price),
            "P": self.p(self.stop_price),
            "F": self.q(0.0),
            "g": -1,
            "C": orig_client_id,
            "x": exec_type,
            "X": self.status,
            "r": "NONE",
            "i": self.order_id,
            "l": self.q(self.last_qty if trade else 0.0),
            "z": self.q(self.executed),
            "L": self.p(self.last_px if trade else 0.0),
            "n": fmt(self.last_fee if trade else 0.0, 8),
            "N": self.last_fee_asset if trade else None,
            "T": event_ms,
            "t": self.last_trade_id if trade else -1,
            "I": event_ms,
            "w": self.is_open and self.working,
            "m": self.last_maker if trade else False,
            "M": False,
            "O": self.time_ms,
            "Z": fmt(self.cum_quote, 8),
            "Y": fmt(self.last_qty * self.last_px if trade else 0.0, 8),
            "Q": fmt(0.0, 8),
            "W": self.time_ms,
            "V": "EXPIRE_MAKER",
        }

    # --------------------------------------------------------------------------------- futures
    def futures_json(self) -> dict[str, Any]:
        """GET /fapi/v1/order, and POST / DELETE answers."""
        orig = self.type
        return {
            "avgPrice": self.p(self.avg_price),
            "clientOrderId": self.client_id,
            "cumQty": self.q(self.executed),
            "cumQuote": fmt(self.cum_quote, 8),
            "executedQty": self.q(self.executed),
            "orderId": self.order_id,
            "origQty": self.q(self.qty),
            "origType": orig,
            "price": self.p(self.price),
            "reduceOnly": self.reduce_only,
            "side": self.side,
            "positionSide": "BOTH",
            "status": self.status,
            "stopPrice": self.p(self.stop_price),
            "closePosition": False,
            "symbol": self.symbol,
            "time": self.time_ms,
            "timeInForce": self.tif,
            "type": self.type,
            "updateTime": self.update_ms,
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
        }

    def futures_ack(self) -> dict[str, Any]:
        """POST /fapi/v1/order answer with newOrderRespType=ACK: the order as accepted (NEW, nothing
        executed), whatever happened after."""
        out = self.futures_json()
        out.update(
            {
                "status": "NEW",
                "executedQty": self.q(0.0),
                "cumQty": self.q(0.0),
                "cumQuote": fmt(0.0, 8),
                "avgPrice": self.p(0.0),
                "updateTime": self.time_ms,
            }
        )
        return out

    def order_trade_update(self, event_ms: int, exec_type: str) -> dict[str, Any]:
        """Futures user data stream ``ORDER_TRADE_UPDATE``."""
        trade = exec_type == "TRADE"
        o = {
            "s": self.symbol,
            "c": self.client_id,
            "S": self.side,
            "o": self.type,
            "f": self.tif,
            "q": self.q(self.qty),
            "p": self.p(self.price),
            "ap": self.p(self.avg_price),
            "sp": self.p(self.stop_price),
            "x": exec_type,
            "X": self.status,
            "i": self.order_id,
            "l": self.q(self.last_qty if trade else 0.0),
            "z": self.q(self.executed),
            "L": self.p(self.last_px if trade else 0.0),
            "N": "USDT" if trade else None,
            "n": fmt(self.last_fee if trade else 0.0, 8),
            "T": event_ms,
            "t": self.last_trade_id if trade else 0,
            "b": "0",
            "a": "0",
            "m": self.last_maker if trade else False,
            "R": self.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": self.type,
            "ps": "BOTH",
            "cp": False,
            "rp": fmt(self.last_realized if trade else 0.0, 8),
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
        }
        if not trade:
            o.pop("N")
        return {"e": "ORDER_TRADE_UPDATE", "E": event_ms, "T": event_ms, "o": o}
