"""Decoding of Binance trading payloads (REST order/account bodies, user data stream events) into
the domain events of :mod:`orderflow.adapters.binance.trading.events`.

Spot ``executionReport`` (user data stream; over the WebSocket API it is wrapped in
``{"subscriptionId": 0, "event": {...}}``, both forms are accepted)::

    {"e":"executionReport","E":1499405658658,"s":"ETHBTC","c":"mUvoqJxFIILMdfAW5iGSOW","S":"BUY",
     "o":"LIMIT","f":"GTC","q":"1.00000000","p":"0.10264410","P":"0.00000000","C":"","x":"NEW",
     "X":"NEW","r":"NONE","i":4293153,"l":"0.00000000","z":"0.00000000","L":"0.00000000","n":"0",
     "N":null,"T":1499405658657,"t":-1,"m":false,"Z":"0.00000000", ...}

On a cancel ``c`` is the cancel request's id and ``C`` the cancelled order's client id. USD-M
``ORDER_TRADE_UPDATE``::

    {"e":"ORDER_TRADE_UPDATE","E":1568879465651,"T":1568879465650,"o":{"s":"BTCUSDT","c":"TEST",
     "S":"SELL","o":"TRAILING_STOP_MARKET","f":"GTC","q":"0.001","p":"0","ap":"0","sp":"7103.04",
     "x":"NEW","X":"NEW","i":8886774,"l":"0","z":"0","L":"0","N":"USDT","n":"0","T":1568879465650,
     "t":0,"b":"0","a":"9.91","m":false,"R":false, ...}}

``ACCOUNT_UPDATE`` (USD-M) ``{"e":"ACCOUNT_UPDATE","E":..,"T":..,"a":{"m":"ORDER","B":[{"a":"USDT",
"wb":"122624.12","cw":"100.12","bc":"50.12"}],"P":[{"s":"BTCUSDT","pa":"0","ep":"0.0","up":"0",
"ps":"BOTH",...}]}}`` and spot ``outboundAccountPosition`` ``{"e":"outboundAccountPosition","E":..,
"u":..,"B":[{"a":"ETH","f":"10000.000000","l":"0.000000"}]}``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from orderflow.adapters.binance.trading.events import (
    AccountUpdate,
    Balance,
    ExecType,
    Order,
    OrderStatus,
    OrderUpdate,
    Position,
)
from orderflow.core.orders import OrderType, Side, TimeInForce
from orderflow.core.timeutil import NS_PER_MS

NAN = float("nan")


class DecodeError(ValueError):
    """A payload that is not what the adapter expects (the message says which field)."""


_STATUS = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.PENDING_CANCEL,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
    "NEW_INSURANCE": OrderStatus.NEW,
    "NEW_ADL": OrderStatus.NEW,
}
_EXEC = {
    "NEW": ExecType.NEW,
    "TRADE": ExecType.TRADE,
    "CANCELED": ExecType.CANCELED,
    "REJECTED": ExecType.REJECTED,
    "EXPIRED": ExecType.EXPIRED,
    "TRADE_PREVENTION": ExecType.EXPIRED,
    "AMENDMENT": ExecType.AMENDMENT,
    "REPLACED": ExecType.AMENDMENT,
    "CALCULATED": ExecType.TRADE,
}


def map_status(s: str) -> OrderStatus:
    try:
        return _STATUS[s]
    except KeyError:
        raise DecodeError(f"unknown order status {s!r}") from None


def map_type(binance_type: str, tif: str) -> tuple[OrderType, TimeInForce, bool]:
    """(domain type, time in force, post_only) of a Binance order type and timeInForce."""
    post_only = binance_type == "LIMIT_MAKER" or tif == "GTX"
    if binance_type in ("LIMIT", "LIMIT_MAKER"):
        otype = OrderType.LIMIT
    elif binance_type in ("STOP_LOSS_LIMIT", "STOP", "TAKE_PROFIT_LIMIT", "TAKE_PROFIT"):
        otype = OrderType.STOP_LIMIT
    elif binance_type.endswith("MARKET") or binance_type == "STOP_LOSS":
        otype = OrderType.MARKET
    else:
        raise DecodeError(f"unknown order type {binance_type!r}")
    tif_d = TimeInForce(tif) if tif in ("GTC", "IOC", "FOK") else TimeInForce.GTC
    return otype, tif_d, post_only


def _f(x: Any) -> float:
    if x is None or x == "":
        return NAN
    return float(x)


def _side(s: str) -> Side:
    if s == "BUY":
        return Side.BUY
    if s == "SELL":
        return Side.SELL
    raise DecodeError(f"unknown side {s!r}")


def order_from_rest(d: dict[str, Any], venue: str) -> Order:
    """An :class:`Order` from a REST order body (new order, query, cancel; spot or USD-M)."""
    try:
        otype, tif, post_only = map_type(d["type"], d.get("timeInForce", "GTC"))
        quote = d.get("cummulativeQuoteQty", d.get("cumQuote"))
        filled = float(d.get("executedQty", 0) or 0)
        if quote is None and d.get("avgPrice") is not None:
            quote = float(d["avgPrice"]) * filled
        ts_ms = d.get("updateTime") or d.get("transactTime") or d.get("time") or 0
        price = _f(d.get("price"))
        return Order(
            venue=venue,
            symbol=d["symbol"],
            order_id=int(d["orderId"]),
            client_order_id=d["clientOrderId"],
            side=_side(d["side"]),
            order_type=otype,
            time_in_force=tif,
            post_only=post_only,
            reduce_only=bool(d.get("reduceOnly", False)),
            price=price if price > 0 else NAN,
            stop_price=_f(d.get("stopPrice")) or NAN,
            quantity=float(d["origQty"]),
            filled_qty=filled,
            filled_quote=float(quote or 0.0),
            status=map_status(d["status"]),
            ts_update=int(ts_ms) * NS_PER_MS,
        )
    except KeyError as e:
        raise DecodeError(f"order body without {e.args[0]!r}") from None


def update_from_order(o: Order, prev: Order | None, ts_recv: int) -> OrderUpdate:
    """The :class:`OrderUpdate` that takes ``prev`` (or nothing) to ``o``, as found by REST: the fill
    between them is reported as one fill at its average price, fee unknown (NaN)."""
    prev_qty = prev.filled_qty if prev is not None else 0.0
    prev_quote = prev.filled_quote if prev is not None else 0.0
    dq = o.filled_qty - prev_qty
    last_qty = dq if dq > 1e-15 else 0.0
    last_px = (o.filled_quote - prev_quote) / dq if last_qty > 0 else NAN
    return OrderUpdate(
        venue=o.venue,
        symbol=o.symbol,
        ts_event=o.ts_update,
        ts_recv=ts_recv,
        order_id=o.order_id,
        client_order_id=o.client_order_id,
        side=o.side,
        order_type=o.order_type,
        execution=ExecType.RECOVERED,
        status=o.status,
        price=o.price,
        quantity=o.quantity,
        filled_qty=o.filled_qty,
        filled_quote=o.filled_quote,
        last_fill_price=last_px,
        last_fill_qty=last_qty,
        fee=NAN,
        fee_asset="",
        trade_id=-1,
        is_maker=False,
        reduce_only=o.reduce_only,
        reject_reason="",
        source="rest",
    )


def _exec_update(o: dict[str, Any], venue: str, ts_recv: int, futures: bool, event_ms: int) -> OrderUpdate:
    xtype = o["x"]
    cid = o["c"]
    if not futures and xtype == "CANCELED" and o.get("C"):
        cid = o["C"]  # spot: "c" is the cancel request's id, "C" the order's
    otype, _tif, _post = map_type(o["o"], o.get("f", "GTC"))
    last_qty = float(o.get("l", 0) or 0)
    if futures:
        ap = float(o.get("ap", 0) or 0)
        quote = ap * float(o["z"])
    else:
        quote = float(o.get("Z", 0) or 0)
    fee_asset = o.get("N") or ""
    price = _f(o.get("p"))
    return OrderUpdate(
        venue=venue,
        symbol=o["s"],
        ts_event=int(o.get("T") or event_ms) * NS_PER_MS,
        ts_recv=ts_recv,
        order_id=int(o["i"]),
        client_order_id=cid,
        side=_side(o["S"]),
        order_type=otype,
        execution=_EXEC.get(xtype, ExecType.AMENDMENT),
        status=map_status(o["X"]),
        price=price if price > 0 else NAN,
        quantity=float(o["q"]),
        filled_qty=float(o["z"]),
        filled_quote=quote,
        last_fill_price=float(o.get("L", 0) or 0) if last_qty > 0 else NAN,
        last_fill_qty=last_qty,
        fee=float(o.get("n", 0) or 0),
        fee_asset=fee_asset,
        trade_id=int(o.get("t", -1) or -1),
        is_maker=bool(o.get("m", False)),
        reduce_only=bool(o.get("R", False)),
        reject_reason="" if o.get("r", "NONE") == "NONE" else str(o.get("r")),
        source="stream",
    )


def decode_user_event(
    raw: bytes | str, venue: str, ts_recv: int, futures: bool
) -> OrderUpdate | AccountUpdate | str | None:
    """Decode one user-data-stream message (bare, or wrapped as the spot WebSocket API sends it:
    ``{"subscriptionId": n, "event": {...}}``): an :class:`OrderUpdate`, an :class:`AccountUpdate`, the
    name of an event that ends the stream (``"listenKeyExpired"``, ``"eventStreamTerminated"``,
    ``"serverShutdown"``), or ``None`` for events the client does not use."""
    try:
        msg = msgspec.json.decode(raw)
    except msgspec.DecodeError as bad:
        raise DecodeError(f"user stream message is not JSON: {bad}") from None
    if isinstance(msg, dict) and "event" in msg and isinstance(msg["event"], dict):
        msg = msg["event"]
    if not isinstance(msg, dict):
        raise DecodeError("user stream message is not an object")
    e = msg.get("e")
    try:
        event_ms = int(msg.get("E", 0))
        if e == "executionReport":
            return _exec_update(msg, venue, ts_recv, False, event_ms)
        if e == "ORDER_TRADE_UPDATE":
            return _exec_update(msg["o"], venue, ts_recv, True, event_ms)
        if e == "ACCOUNT_UPDATE":
            a = msg["a"]
            bals = tuple(
                Balance(b["a"], float(b.get("cw", b["wb"])), float(b["wb"]) - float(b.get("cw", b["wb"])))
                for b in a.get("B", [])
            )
            pos = tuple(
                Position(p["s"], float(p["pa"]), float(p["ep"]), float(p.get("up", 0)), p.get("ps", "BOTH"))
                for p in a.get("P", [])
            )
            changes = tuple((b["a"], float(b["bc"])) for b in a.get("B", []) if "bc" in b)
            return AccountUpdate(
                venue, int(msg.get("T") or event_ms) * NS_PER_MS, ts_recv, a.get("m", ""), bals, pos, changes
            )
        if e == "outboundAccountPosition":
            bals = tuple(Balance(b["a"], float(b["f"]), float(b["l"])) for b in msg.get("B", []))
            return AccountUpdate(venue, int(msg.get("u") or event_ms) * NS_PER_MS, ts_recv, "", bals, ())
        if e in ("listenKeyExpired", "eventStreamTerminated", "serverShutdown"):
            return str(e)
    except (KeyError, TypeError, ValueError) as err:
        raise DecodeError(f"{e} event: bad or missing field ({err})") from None
    return None


def balances_from_account(d: dict[str, Any], futures: bool) -> dict[str, Balance]:
    """Balances from ``GET /api/v3/account`` (``balances: [{asset, free, locked}]``) or USD-M
    ``GET /fapi/v3/account`` (``assets: [{asset, walletBalance, availableBalance}]``)."""
    out: dict[str, Balance] = {}
    if futures:
        for a in d.get("assets", []):
            wallet = float(a.get("walletBalance", 0))
            avail = float(a.get("availableBalance", wallet))
            out[a["asset"]] = Balance(a["asset"], avail, wallet - avail)
    else:
        for b in d.get("balances", []):
            out[b["asset"]] = Balance(b["asset"], float(b["free"]), float(b["locked"]))
    return out


def positions_from_rest(rows: list[dict[str, Any]]) -> dict[str, Position]:
    """Non-zero positions from USD-M ``GET /fapi/v3/positionRisk`` rows, by symbol (and side)."""
    out: dict[str, Position] = {}
    for r in rows:
        qty = float(r.get("positionAmt", 0))
        if qty == 0:
            continue
        ps = r.get("positionSide", "BOTH")
        key = r["symbol"] if ps == "BOTH" else f"{r['symbol']}:{ps}"
        upnl = r.get("unRealizedProfit", r.get("unrealizedProfit", 0))
        out[key] = Position(r["symbol"], qty, float(r.get("entryPrice", 0)), float(upnl), ps)
    return out
