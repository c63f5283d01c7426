"""Order endpoints of the local exchange (new / query / cancel / open / all orders) with Binance's
validation order and answers: parameters (-1102 / -1100 / -1104 / -1106 / -1115 / -1116 / -1117),
symbol (-1121), every advertised filter (:mod:`.filters`: spot -1013 ``Filter failure: <FILTER>``;
futures -4013 / -4002 / -4014 / -4003 / -4004 / -4005 / -4023 / -2025 / -4045 / -4164 / -4016 /
-4024 / -4131), duplicate live client id
(spot -2010 "Duplicate order sent."; futures -4116), post-only that would take (spot -2010; futures
-5022), stop that would trigger at once (spot -2010; futures -2021), reduce-only without a position
to reduce (-2022), balance (spot -2010 "Account has insufficient balance for requested action.";
futures -2019 "Margin is insufficient."), unknown order (-2011 on cancel, -2013 on query).

Supported types: spot LIMIT, MARKET (``quantity`` or ``quoteOrderQty``), LIMIT_MAKER,
STOP_LOSS_LIMIT; futures LIMIT (GTC / IOC / FOK / GTX), MARKET, STOP (stop-limit). Others get -1116.
"""

from __future__ import annotations

import math
from typing import Any

from orderflow.core.instruments import split_symbol
from orderflow.core.orders import OrderRequest, OrderType, Side, TimeInForce
from orderflow.execution.local import errors as E
from orderflow.execution.local.filters import NewOrder, check_new_order
from orderflow.execution.local.orders import LocalOrder
from orderflow.execution.local.params import Params
from orderflow.execution.local.venue import EPS, LocalVenue

SPOT_NEW = {
    "symbol",
    "side",
    "type",
    "timeInForce",
    "quantity",
    "quoteOrderQty",
    "price",
    "newClientOrderId",
    "strategyId",
    "strategyType",
    "stopPrice",
    "trailingDelta",
    "icebergQty",
    "newOrderRespType",
    "selfTradePreventionMode",
}
FUT_NEW = {
    "symbol",
    "side",
    "positionSide",
    "type",
    "timeInForce",
    "quantity",
    "reduceOnly",
    "price",
    "newClientOrderId",
    "stopPrice",
    "closePosition",
    "activationPrice",
    "callbackRate",
    "workingType",
    "priceProtect",
    "newOrderRespType",
    "priceMatch",
    "selfTradePreventionMode",
    "goodTillDate",
}
SPOT_TYPES = ("LIMIT", "MARKET", "LIMIT_MAKER", "STOP_LOSS_LIMIT")
FUT_TYPES = ("LIMIT", "MARKET", "STOP")


def _walk(levels_px, levels_sz, qty: float, limit: float, buy: bool) -> tuple[float, float]:
    """(qty available up to ``limit``, its cost) walking one side of the book, best first."""
    got = cost = 0.0
    for p, s in zip(levels_px, levels_sz, strict=True):
        if math.isnan(p) or got >= qty:
            break
        if (buy and p > limit * (1 + EPS)) or (not buy and p < limit * (1 - EPS)):
            break
        take = min(s, qty - got)
        got += take
        cost += take * p
    return got, cost


def new_order(v: LocalVenue, p: Params) -> dict[str, Any]:
    """POST /api/v3/order or /fapi/v1/order."""
    p.check_known(FUT_NEW if v.futures else SPOT_NEW)
    sym = p.symbol()
    side = p.req("side").upper()
    otype = p.req("type").upper()
    if sym not in v.markets:
        raise E.bad_symbol()
    if side not in ("BUY", "SELL"):
        raise E.invalid_side()
    if otype not in (FUT_TYPES if v.futures else SPOT_TYPES):
        raise E.invalid_order_type()
    tif = p.get("timeInForce")
    tif = tif.upper() if tif else None
    if otype in ("MARKET", "LIMIT_MAKER") and tif is not None:
        raise E.param_not_required("timeInForce")
    if otype in ("LIMIT", "STOP_LOSS_LIMIT") and tif is None:
        raise E.mandatory("timeInForce")
    tif = tif or "GTC"
    if tif not in (("GTC", "IOC", "FOK", "GTX") if v.futures else ("GTC", "IOC", "FOK")):
        raise E.invalid_tif()
    reduce = p.boolean("reduceOnly") if v.futures else False
    price = p.decimal("price", required=otype != "MARKET")
    stop = p.decimal("stopPrice", required=otype in ("STOP_LOSS_LIMIT", "STOP"))
    mkt = v.markets[sym]
    buy = side == "BUY"
    quote_qty = p.decimal("quoteOrderQty") if not v.futures and otype == "MARKET" else None
    qty: float | None
    if quote_qty is not None:
        qty = _qty_for_quote(v, sym, quote_qty, buy)
    else:
        qty = p.decimal("quantity", required=True)
    assert qty is not None
    price_f = math.nan if price is None or otype == "MARKET" else price
    stop_f = math.nan if stop is None else stop
    if otype == "MARKET" and price is not None:
        raise E.param_not_required("price")
    resp_type = (p.get("newOrderRespType") or ("ACK" if v.futures else "FULL")).upper()
    if resp_type not in ("ACK", "RESULT", "FULL") or (v.futures and resp_type == "FULL"):
        raise E.invalid_param("newOrderRespType", resp_type)
    cid = p.client_id("newClientOrderId")
    check_new_order(v, NewOrder(sym, side == "BUY", otype, price_f, stop_f, qty, reduce))
    if cid is not None and (sym, cid) in v.live_client_ids:
        raise E.ApiError(400, -4116, "ClientOrderId is duplicated.") if v.futures else E.duplicate_order()
    post_only = otype == "LIMIT_MAKER" or tif == "GTX"
    opp_px = mkt.ask_px if buy else mkt.bid_px
    opp_sz = mkt.ask_sz if buy else mkt.bid_sz
    if post_only and not math.isnan(opp_px[0]) and (opp_px[0] <= price_f if buy else opp_px[0] >= price_f):
        raise E.fut_post_only() if v.futures else E.would_take()
    if otype in ("STOP_LOSS_LIMIT", "STOP"):
        last = v.last_trade_px.get(sym, v.marks().get(sym, math.nan))
        if not math.isnan(last) and (last >= stop_f if buy else last <= stop_f):
            raise (
                E.ApiError(400, -2021, "Order would immediately trigger.")
                if v.futures
                else E.stop_would_trigger()
            )
    pos = v.fut.position(sym) if v.futures else None
    if reduce and pos is not None and (pos.amount == 0 or (pos.amount > 0) == buy):
        raise E.reduce_only_rejected()
    limit = price_f if otype != "MARKET" else (math.inf if buy else 0.0)
    avail, cost = _walk(opp_px, opp_sz, qty, limit, buy)
    fok_fails = tif == "FOK" and avail < qty * (1 - EPS)
    if fok_fails and v.futures:
        raise E.fut_fok()
    # balance / margin
    base, quote = split_symbol(sym)
    lock = 0.0
    if v.futures:
        if not reduce:
            ref = price_f if otype != "MARKET" else (cost / avail if avail > 0 else v.marks().get(sym, 0.0))
            need = ref * qty / pos.leverage  # type: ignore[union-attr]
            if need > v.fut.available(v.marks()) + EPS:
                raise E.margin_insufficient()
    else:
        if buy:
            need = (
                cost + (qty - avail) * (opp_px[0] if not math.isnan(opp_px[0]) else 0.0)
                if otype == "MARKET"
                else price_f * qty
            )
            lock = 0.0 if otype == "MARKET" else need
            if need > v.spot.free.get(quote, 0.0) + EPS:
                raise E.spot_insufficient_balance()
        else:
            lock = qty
            if qty > v.spot.free.get(base, 0.0) + EPS:
                raise E.spot_insufficient_balance()
    oid = v.next_order_id
    v.next_order_id += 1
    mkt_inst = mkt.inst
    o = LocalOrder(
        symbol=sym,
        order_id=oid,
        client_id=cid or f"local{v.cfg.seed}x{oid}",
        side=side,
        type=otype,
        tif=tif,
        price=0.0 if otype == "MARKET" else price_f,
        stop_price=0.0 if math.isnan(stop_f) else stop_f,
        qty=qty,
        time_ms=v.now_ms,
        pdec=mkt_inst.price_decimals,
        sdec=mkt_inst.size_decimals,
        reduce_only=reduce,
        post_only=post_only,
        update_ms=v.now_ms,
        working=otype not in ("STOP_LOSS_LIMIT", "STOP"),
    )
    v.orders[oid] = o
    v.live_client_ids[(sym, o.client_id)] = oid
    if lock > 0:
        o.locked = lock
        v.spot.lock(quote if buy else base, lock)
    if v.futures and not reduce and otype != "MARKET":
        v.fut.open_order_margin[oid] = price_f * qty / pos.leverage  # type: ignore[union-attr]
    ts = v.order_time_ns()
    m = v.matchers[sym]
    if fok_fails:  # spot FOK that cannot fill: accepted, then expired without a fill
        v.user_out.append(o.execution_report(v.now_ms, "NEW"))
        o.status = "EXPIRED"
        v._finish(o)
        v.user_out.append(o.execution_report(v.now_ms, "EXPIRED"))
    else:  # the wire's order as the order vocabulary (FOK matches as IOC: its fill was checked above)
        kind = (
            OrderType.MARKET
            if otype == "MARKET"
            else OrderType.STOP_LIMIT
            if otype in ("STOP_LOSS_LIMIT", "STOP")
            else OrderType.LIMIT
        )
        m.submit(
            OrderRequest(oid, Side.BUY if buy else Side.SELL, qty, reduce, kind, price_f,
                         TimeInForce.IOC if tif in ("IOC", "FOK") else TimeInForce.GTC, post_only, stop_f),
            ts,
        )  # fmt: skip
    if not fok_fails:
        if not v.lockstep:  # in lockstep the order is still on its way (the latency model)
            m.flush(ts)
        v._drain(sym)
    if v.futures:
        return o.futures_json() if resp_type == "RESULT" else o.futures_ack()
    return o.spot_new_answer(resp_type)


def _qty_for_quote(v: LocalVenue, sym: str, quote_qty: float, buy: bool) -> float:
    """Base quantity a MARKET order with ``quoteOrderQty`` buys / sells walking the book, rounded down
    to the lot size."""
    mkt = v.markets[sym]
    px, sz = (mkt.ask_px, mkt.ask_sz) if buy else (mkt.bid_px, mkt.bid_sz)
    spent = got = 0.0
    for p_, s in zip(px, sz, strict=True):
        if math.isnan(p_) or spent >= quote_qty:
            break
        take = min(s, (quote_qty - spent) / p_)
        got += take
        spent += take * p_
    lot = mkt.inst.lot_size
    return math.floor(got / lot + 1e-9) * lot


def _find(v: LocalVenue, p: Params, cancel: bool) -> LocalOrder:
    sym = p.symbol()
    if sym not in v.markets:
        raise E.bad_symbol()
    oid = p.integer("orderId")
    ocid = p.client_id("origClientOrderId")
    if oid is None and ocid is None:
        raise E.ApiError(
            400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )
    o = v.orders.get(oid) if oid is not None else None
    if o is None and ocid is not None:
        cands = [x for x in v.orders.values() if x.symbol == sym and x.client_id == ocid]
        o = max(cands, key=lambda x: x.order_id) if cands else None
    if o is None or o.symbol != sym or (ocid is not None and o.client_id != ocid):
        raise E.unknown_order_cancel() if cancel else E.order_does_not_exist()
    return o


def query_order(v: LocalVenue, p: Params) -> dict[str, Any]:
    """GET /api/v3/order or /fapi/v1/order."""
    p.check_known({"symbol", "orderId", "origClientOrderId"})
    o = _find(v, p, cancel=False)
    return o.futures_json() if v.futures else o.spot_json()


def cancel_order(v: LocalVenue, p: Params) -> dict[str, Any]:
    """DELETE /api/v3/order or /fapi/v1/order."""
    p.check_known({"symbol", "orderId", "origClientOrderId", "newClientOrderId", "cancelRestrictions"})
    o = _find(v, p, cancel=True)
    if not o.is_open:
        raise E.unknown_order_cancel()
    return _cancel(v, o, p.client_id("newClientOrderId"))


def _cancel(v: LocalVenue, o: LocalOrder, new_cid: str | None) -> dict[str, Any]:
    o.cancel_client_id = new_cid or f"cancel{v.cfg.seed}x{o.order_id}"
    m = v.matchers[o.symbol]
    m.cancel(o.order_id, v.order_time_ns())
    if not v.lockstep:
        m.flush(v.now_ns)
    v._drain(o.symbol)
    if v.futures:
        return o.futures_json()
    out = {
        "symbol": o.symbol,
        "origClientOrderId": o.client_id,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.cancel_client_id,
        "transactTime": v.now_ms,
    }
    out.update({k: val for k, val in o.spot_json(full=False).items() if k not in out})
    out["selfTradePreventionMode"] = "EXPIRE_MAKER"
    return out


def open_orders(v: LocalVenue, p: Params) -> list[dict[str, Any]]:
    """GET /api/v3/openOrders or /fapi/v1/openOrders (symbol optional)."""
    p.check_known({"symbol"})
    sym = p.get("symbol")
    if sym is not None and sym.upper() not in v.markets:
        raise E.bad_symbol()
    out = [o for o in v.orders.values() if o.is_open and (sym is None or o.symbol == sym.upper())]
    return [o.futures_json() if v.futures else o.spot_json() for o in out]


def cancel_all(v: LocalVenue, p: Params) -> Any:
    """DELETE /api/v3/openOrders (list of canceled orders) or /fapi/v1/allOpenOrders (code 200)."""
    p.check_known({"symbol"})
    sym = p.symbol()
    if sym not in v.markets:
        raise E.bad_symbol()
    out = [_cancel(v, o, None) for o in list(v.orders.values()) if o.symbol == sym and o.is_open]
    if v.futures:
        return {"code": 200, "msg": "The operation of cancel all open order is done."}
    return out


def all_orders(v: LocalVenue, p: Params) -> list[dict[str, Any]]:
    """GET /api/v3/allOrders or /fapi/v1/allOrders (symbol required; orderId = from; limit <= 1000)."""
    p.check_known({"symbol", "orderId", "startTime", "endTime", "limit"})
    sym = p.symbol()
    if sym not in v.markets:
        raise E.bad_symbol()
    start = p.integer("orderId", 0) or 0
    limit = p.integer("limit", 500) or 500
    rows = [o for o in v.orders.values() if o.symbol == sym and o.order_id >= start][:limit]
    return [o.futures_json() if v.futures else o.spot_json() for o in rows]
