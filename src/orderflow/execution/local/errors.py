"""Binance's error answers: HTTP status, error code and message, as the real venue sends them.

A handler raises :class:`ApiError`; the server turns it into ``{"code": <code>, "msg": <msg>}`` with
the status (and headers such as ``Retry-After``). Messages follow Binance's documentation
(https://developers.binance.com/docs/binance-spot-api-docs/errors and the USD-M futures error codes);
``%s`` placeholders are filled with the values of the request.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error answer: ``status`` (HTTP), Binance ``code`` (negative int), ``msg``."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status} code {code}: {msg}")
        self.status, self.code, self.msg = status, code, msg
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


# ---- 10xx / 11xx: request issues
def too_much_weight(limit: int, retry_after_s: int) -> ApiError:
    return ApiError(
        429,
        -1003,
        f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
        {"Retry-After": str(retry_after_s)},
    )


def banned(until_ms: int, retry_after_s: int) -> ApiError:
    return ApiError(
        418,
        -1003,
        f"Way too much request weight used; IP banned until {until_ms}. "
        "Please use WebSocket Streams for live updates to avoid bans.",
        {"Retry-After": str(retry_after_s)},
    )


def too_many_orders(limit: int, retry_after_s: int) -> ApiError:
    return ApiError(
        429,
        -1015,
        f"Too many new orders; current limit is {limit} orders per TEN_SECONDS.",
        {"Retry-After": str(retry_after_s)},
    )


def timestamp_outside(ahead: bool) -> ApiError:
    if ahead:
        return ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    return ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def bad_signature() -> ApiError:
    return ApiError(400, -1022, "Signature for this request is not valid.")


def illegal_chars(param: str, legal: str = "^([0-9]{1,20})(\\.[0-9]{1,20})?$") -> ApiError:
    return ApiError(400, -1100, f"Illegal characters found in parameter '{param}'; legal range is '{legal}'.")


def mandatory(param: str) -> ApiError:
    return ApiError(400, -1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")


def unread_params(read: int, sent: int) -> ApiError:
    return ApiError(
        400, -1104, f"Not all sent parameters were read; read '{read}' parameter(s) but was sent '{sent}'."
    )


def malformed_json() -> ApiError:
    return ApiError(400, -1102, "A mandatory parameter was not sent, was empty/null, or malformed.")


def invalid_tif() -> ApiError:
    return ApiError(400, -1115, "Invalid timeInForce.")


def invalid_order_type() -> ApiError:
    return ApiError(400, -1116, "Invalid orderType.")


def invalid_side() -> ApiError:
    return ApiError(400, -1117, "Invalid side.")


def bad_symbol() -> ApiError:
    return ApiError(400, -1121, "Invalid symbol.")


def bad_interval() -> ApiError:
    return ApiError(400, -1120, "Invalid interval.")


def invalid_listen_key() -> ApiError:
    return ApiError(400, -1125, "This listenKey does not exist.")


def param_not_required(param: str) -> ApiError:
    return ApiError(400, -1106, f"Parameter '{param}' sent when not required.")


def invalid_param(param: str, value: str) -> ApiError:
    return ApiError(400, -1130, f"Invalid data sent for a parameter: {param}={value}.")


# ---- 20xx: order and account issues
def filter_failure(name: str) -> ApiError:
    """Spot: -1013 "Filter failure: <FILTER>" (PRICE_FILTER, LOT_SIZE, PERCENT_PRICE_BY_SIDE, ...)."""
    return ApiError(400, -1013, f"Filter failure: {name}")


def spot_insufficient_balance() -> ApiError:
    return ApiError(400, -2010, "Account has insufficient balance for requested action.")


def duplicate_order() -> ApiError:
    return ApiError(400, -2010, "Duplicate order sent.")


def would_take() -> ApiError:
    return ApiError(400, -2010, "Order would immediately match and take.")


def stop_would_trigger() -> ApiError:
    return ApiError(400, -2010, "Stop price would trigger immediately.")


def unknown_order_cancel() -> ApiError:
    return ApiError(400, -2011, "Unknown order sent.")


def order_does_not_exist() -> ApiError:
    return ApiError(400, -2013, "Order does not exist.")


def api_key_format() -> ApiError:
    return ApiError(401, -2014, "API-key format invalid.")


def invalid_api_key() -> ApiError:
    return ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def margin_insufficient() -> ApiError:
    return ApiError(400, -2019, "Margin is insufficient.")


def reduce_only_rejected() -> ApiError:
    return ApiError(400, -2022, "ReduceOnly Order is rejected.")


# ---- futures 40xx / 41xx filter failures
def fut_qty_not_positive() -> ApiError:
    return ApiError(400, -4003, "Quantity less than or equal to zero.")


def fut_qty_below_min() -> ApiError:
    return ApiError(400, -4004, "Quantity less than min quantity.")


def fut_qty_above_max() -> ApiError:
    return ApiError(400, -4005, "Quantity greater than max quantity.")


def fut_price_below_min() -> ApiError:
    return ApiError(400, -4013, "Price less than min price.")


def fut_price_tick() -> ApiError:
    return ApiError(400, -4014, "Price not increased by tick size.")


def fut_price_above_max() -> ApiError:
    return ApiError(400, -4002, "Price greater than max price.")


def fut_stop_above_max() -> ApiError:
    return ApiError(400, -4007, "Stop price greater than max price.")


def fut_max_open_orders() -> ApiError:
    """MAX_NUM_ORDERS."""
    return ApiError(400, -2025, "Reach max open order limit.")


def fut_max_stop_orders() -> ApiError:
    """MAX_NUM_ALGO_ORDERS."""
    return ApiError(400, -4045, "Reach max stop order limit.")


def fut_limit_above_band(cap: str) -> ApiError:
    """PERCENT_PRICE, a BUY above markPrice * multiplierUp (PRICE_HIGHTER_THAN_MULTIPLIER_UP)."""
    return ApiError(400, -4016, f"Limit price can't be higher than {cap}.")


def fut_limit_below_band(floor: str) -> ApiError:
    """PERCENT_PRICE, a SELL below markPrice * multiplierDown (PRICE_LOWER_THAN_MULTIPLIER_DOWN)."""
    return ApiError(400, -4024, f"Limit price can't be lower than {floor}.")


def fut_stop_limit_above(cap: str) -> ApiError:
    """A stop-limit BUY whose price is above stopPrice * multiplierUp."""
    return ApiError(400, -4183, f"Limit price can't be higher than {cap}.")


def fut_stop_limit_below(floor: str) -> ApiError:
    """A stop-limit SELL whose price is below stopPrice * multiplierDown."""
    return ApiError(400, -4184, f"Limit price can't be lower than {floor}.")


def fut_market_band() -> ApiError:
    """PERCENT_PRICE, a MARKET order whose counterparty best price is outside the band."""
    return ApiError(400, -4131, "The counterparty's best price does not meet the PERCENT_PRICE filter limit.")


def fut_qty_step() -> ApiError:
    return ApiError(400, -4023, "Quantity not increased by step size.")


def fut_min_notional(notional: str) -> ApiError:
    return ApiError(
        400, -4164, f"Order's notional must be no smaller than {notional} (unless you choose reduce only)."
    )


def fut_post_only() -> ApiError:
    return ApiError(
        400, -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected."
    )


def fut_fok() -> ApiError:
    return ApiError(
        400, -5021, "Due to the order could not be filled immediately, the FOK order has been rejected."
    )
