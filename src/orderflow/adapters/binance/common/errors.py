"""Typed errors of the Binance adapter (market data and trading), mapped from Binance's error codes.

A Binance error body is ``{"code": -1121, "msg": "Invalid symbol."}`` (spot ``errors.md``; USD-M
futures "Error Codes"). :func:`error_from_response` turns (HTTP status, code, msg) into the most
specific class below. ``retryable`` says whether sending the same request again could succeed; the
client never retries the others. Messages never contain the API key or a signature (the transport
redacts before building them). The market-data client and the trading client share this hierarchy: both
go through the one REST transport, which maps every error body here.
"""

from __future__ import annotations

from typing import Any


class BinanceError(Exception):
    """Base class. ``code`` is Binance's error code (0 when the error is local), ``status`` the HTTP
    status (0 when no response), ``path`` the REST path, ``symbol`` the symbol when known."""

    retryable = False

    def __init__(self, message: str, *, code: int = 0, status: int = 0, path: str = "", symbol: str = ""):
        self.code, self.status, self.path, self.symbol = code, status, path, symbol
        self.msg = message
        where = f" {path}" if path else ""
        sym = f" [{symbol}]" if symbol else ""
        head = f"Binance {code} (HTTP {status}){where}{sym}: " if code or status else ""
        super().__init__(f"{head}{message}")


class TimestampError(BinanceError):
    """-1021: the request timestamp is outside ``recvWindow`` (or ahead of the server). The client
    resynchronises its clock offset and retries once."""

    retryable = True


class SignatureError(BinanceError):
    """-1022: the signature does not match (wrong secret, or the payload was altered)."""


class AuthError(BinanceError):
    """-2014 / -2015 / -1002: API key format, permissions or IP whitelist."""


class UnknownSymbol(BinanceError):
    """-1121: the symbol is not listed (or not in the loaded exchange info)."""


class FilterError(BinanceError):
    """An order breaks a symbol filter: -1013 (spot "Filter failure: ..."), -4014 / -4003 / -4164 and
    relatives (futures), or the client's own pre-send check. ``filter`` names the filter
    (PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL, ...); ``value`` and ``limit`` are the numbers compared."""

    def __init__(
        self,
        message: str,
        *,
        filter: str = "",
        value: str = "",
        limit: str = "",
        code: int = 0,
        status: int = 0,
        path: str = "",
        symbol: str = "",
    ) -> None:
        self.filter, self.value, self.limit = filter, value, limit
        super().__init__(message, code=code, status=status, path=path, symbol=symbol)


class OrderRejected(BinanceError):
    """-2010 (spot NEW_ORDER_REJECTED) and other matching-engine rejections."""


class InsufficientBalance(OrderRejected):
    """-2010 "Account has insufficient balance for requested action." / -2019 "Margin is insufficient."."""


class PostOnlyRejected(OrderRejected):
    """A post-only order would have taken liquidity (spot -2010 "Order would immediately match and
    take.", futures -5022)."""


class DuplicateOrder(OrderRejected):
    """The client order id is already in use (spot -2010 "Duplicate order sent.", futures -4116)."""


class UnknownOrder(BinanceError):
    """-2011 (cancel of an unknown order) / -2013 (order does not exist)."""


class BadRequest(BinanceError):
    """-1100..-1131: malformed, missing, unknown or unread parameters, bad precision, etc."""


class RateLimited(BinanceError):
    """HTTP 429 persisted after the allowed waits, or the local limiter would have to wait longer than
    allowed. ``retry_after_s`` is the server's last ``Retry-After``."""

    retryable = True

    def __init__(self, message: str, *, retry_after_s: float = 0.0, **kw: object) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, **kw)  # type: ignore[arg-type]


class IpBanned(BinanceError):
    """HTTP 418: the IP is banned until ``ban_until_ns`` (local clock, ns); ``retry_after_s`` is the
    server's ``Retry-After``. Trading stops: every call raises this until then; the feed stops."""

    def __init__(self, message: str, *, ban_until_ns: int, retry_after_s: float = 0.0, **kw: object) -> None:
        self.ban_until_ns = ban_until_ns
        self.retry_after_s = retry_after_s
        super().__init__(message, **kw)  # type: ignore[arg-type]


class ExchangeUnavailable(BinanceError):
    """HTTP 5xx, -1001/-1006/-1007/-1008, a timeout or a dropped connection: the outcome of the request
    is UNKNOWN (Binance: "do NOT treat this as a failure"). Orders are reconciled by client id."""

    retryable = True


class ListenKeyError(BinanceError):
    """-1125: the listen key does not exist (expired); the user stream makes a new one."""


_FUTURES_FILTER_CODES = {
    -4003: "LOT_SIZE",  # QTY_LESS_THAN_ZERO
    -4004: "LOT_SIZE",  # QTY_LESS_THAN_MIN_QTY
    -4005: "LOT_SIZE",  # QTY_GREATER_THAN_MAX_QTY
    -4013: "PRICE_FILTER",  # PRICE_LESS_THAN_MIN_PRICE
    -4014: "PRICE_FILTER",  # PRICE_NOT_INCREASED_BY_TICK_SIZE
    -4016: "PERCENT_PRICE",  # PRICE_HIGHTER_THAN_MULTIPLIER_UP
    -4023: "LOT_SIZE",  # QTY_NOT_INCREASED_BY_STEP_SIZE
    -4024: "PERCENT_PRICE",  # PRICE_LOWER_THAN_MULTIPLIER_DOWN
    -4164: "MIN_NOTIONAL",  # MIN_NOTIONAL
    -4002: "PRICE_FILTER",  # PRICE_GREATER_THAN_MAX_PRICE
    -4131: "PERCENT_PRICE",  # MARKET_ORDER_REJECT (the counterparty's best price is outside the band)
    -4183: "PERCENT_PRICE",  # the limit price of a stop order is outside the band around its stop price
    -2025: "MAX_NUM_ORDERS",  # REACH_MAX_OPEN_ORDER_LIMIT
    -4045: "MAX_NUM_ALGO_ORDERS",  # REACH_MAX_STOP_ORDER_LIMIT
}


def _filter_name(msg: str) -> str:
    for name in (
        "PRICE_FILTER",
        "PERCENT_PRICE_BY_SIDE",
        "PERCENT_PRICE",
        "MARKET_LOT_SIZE",
        "LOT_SIZE",
        "MIN_NOTIONAL",
        "NOTIONAL",
        "MAX_NUM_ALGO_ORDERS",
        "MAX_NUM_ORDERS",
        "MAX_POSITION",
    ):
        if name in msg:
            return name
    return ""


def error_from_response(status: int, code: int, msg: str, path: str = "", symbol: str = "") -> BinanceError:
    """The typed error for an HTTP ``status`` with a Binance error body ``{code, msg}``."""
    kw: dict[str, Any] = {"code": code, "status": status, "path": path, "symbol": symbol}
    low = msg.lower()
    if status >= 500 or code in (-1001, -1006, -1007, -1008):
        return ExchangeUnavailable(msg, **kw)
    if code == -1021:
        return TimestampError(msg, **kw)
    if code == -1022:
        return SignatureError(msg, **kw)
    if code in (-1002, -2014, -2015):
        return AuthError(msg, **kw)
    if code == -1121:
        return UnknownSymbol(msg, **kw)
    if code == -1125:
        return ListenKeyError(msg, **kw)
    if code == -1013 or code in _FUTURES_FILTER_CODES:
        return FilterError(msg, filter=_FUTURES_FILTER_CODES.get(code) or _filter_name(msg), **kw)
    if code in (-2011, -2013):
        return UnknownOrder(msg, **kw)
    if code == -2019 or (code == -2010 and "insufficient" in low):
        return InsufficientBalance(msg, **kw)
    if code == -5022 or (code == -2010 and "immediately match" in low):
        return PostOnlyRejected(msg, **kw)
    if code == -4116 or (code == -2010 and "duplicate" in low):
        return DuplicateOrder(msg, **kw)
    if code == -2010 or code == -2022 or code == -2021:
        return OrderRejected(msg, **kw)
    if -1199 <= code <= -1100:
        return BadRequest(msg, **kw)
    if status == 429 or code in (-1003, -1015):
        return RateLimited(msg, **kw)
    return BinanceError(msg, **kw)
