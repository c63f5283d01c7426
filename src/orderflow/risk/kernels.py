"""Numba risk kernels: the one definition of the entry gate, sizing, caps and breakers.

The backtester calls these from its own ``@njit`` event loop (arguments are arrays and scalars
only); paper/live trading and tests call them one at a time through
:class:`orderflow.risk.engine.RiskEngine`. State layout, config indices and reason codes are in
:mod:`orderflow.risk.layout`.

Units: prices and notionals in quote currency, quantities in base units, times int ns since the
epoch, fractions of equity (0.02 = 2 %). ``side`` is +1 (buy) or -1 (sell).

Entry checks, in order (the first that fails is the refusal): kill switch, input sanity
(``bad_input``), daily drawdown breaker, min interval, max trades in 24 h, opposite position, max adds,
confidence, high volatility; then sizing and the caps (position, capital in use, VaR) and the lot /
minimum-notional floor. Sizing: ``qty = max_loss_per_trade * equity * scale / stop_dist`` where
``scale`` grows linearly from ``min_confidence_scale`` at ``confidence_floor`` to 1 at
``confidence_full``; an add is multiplied by ``add_size_factor``, and by ``high_vol_size_factor`` when
``vol_pct >= high_vol_percentile``. Each cap bounds the position after the entry, the existing
position being marked at ``price``. The approved quantity is rounded down to ``lot_size``.
"""

from __future__ import annotations

import math

from numba import njit

from orderflow.risk import layout as RL


# ------------------------------------------------------------------------------------------ helpers
@njit(cache=True)
def _refuse(RS, code, value, limit):
    """Count a refusal and build the refused result tuple of check_entry."""
    RS[RL.S_REFUSED0 + code] += 1
    return 0.0, code, value, limit, RL.OK


@njit(cache=True)
def lot_qty(lots: float, lot_size: float) -> float:
    """``lots`` lots as the decimal quantity an exchange reads back from the printed order: for a lot of
    1/k (0.001...) ``lots / k``, which is the double nearest that decimal (``lots * 0.001`` may not be)."""
    k = round(1.0 / lot_size)
    if lot_size < 1.0 and abs(k * lot_size - 1.0) < 1e-9:
        return lots / k
    return lots * lot_size


@njit(cache=True)
def first_bad_input(side, price, stop_dist, equity, lot_size, vol_horizon, min_notional,
                    other_gross_notional, pos_qty, vol_pct):  # fmt: skip
    """(index in ``layout.BAD_INPUT_NAMES``, value) of the first invalid entry input, or (-1, 0.0).
    side must be +1 or -1; price, stop_dist, equity and lot_size finite and > 0; vol_horizon,
    min_notional and other_gross_notional finite and >= 0; pos_qty and vol_pct finite."""
    if side != 1 and side != -1:
        return 0, float(side)
    if not (math.isfinite(price) and price > 0.0):
        return 1, price
    if not (math.isfinite(stop_dist) and stop_dist > 0.0):
        return 2, stop_dist
    if not (math.isfinite(equity) and equity > 0.0):
        return 3, equity
    if not (math.isfinite(lot_size) and lot_size > 0.0):
        return 4, lot_size
    if not (math.isfinite(vol_horizon) and vol_horizon >= 0.0):
        return 5, vol_horizon
    if not (math.isfinite(min_notional) and min_notional >= 0.0):
        return 6, min_notional
    if not (math.isfinite(other_gross_notional) and other_gross_notional >= 0.0):
        return 7, other_gross_notional
    if not math.isfinite(pos_qty):
        return 8, pos_qty
    if not math.isfinite(vol_pct):
        return 9, vol_pct
    return -1, 0.0


@njit(cache=True)
def _cap_ratio(code, C, price, equity, vol_horizon, other_gross_notional, abs_qty):
    """(measure, limit) of cap ``code`` for a position of ``abs_qty`` after the entry."""
    notional = abs_qty * price
    if code == RL.MAX_POSITION:
        return notional / equity, C.max_position
    if code == RL.MAX_CAPITAL:
        return (other_gross_notional + notional) / equity, C.max_capital_in_use
    return RL.Z95 * vol_horizon * notional / equity, C.var95_limit


@njit(cache=True)
def confidence_scale(C, confidence):
    """Size scale for a confidence: 0 below the floor, min_confidence_scale at it, 1 from full up."""
    floor = C.confidence_floor
    if not confidence >= floor:  # NaN too
        return 0.0
    full = C.confidence_full
    if confidence >= full:
        return 1.0
    lo = C.min_confidence_scale
    return lo + (1.0 - lo) * (confidence - floor) / (full - floor)


# ------------------------------------------------------------------------------------------ equity
@njit(cache=True)
def on_equity(RS, RSF, C, ts, equity):
    """Observe account equity (quote) at ``ts``: start a new UTC day at the first observation after
    00:00 UTC (its equity becomes the day's start equity and the breaker resets), and trip the daily
    breaker when ``(start - equity) / start >= daily_drawdown``. Returns DAILY_DRAWDOWN once, at the
    observation that trips it, else OK. A non-finite equity is ignored; a timestamp from an earlier
    day than the current one counts in the current day (no roll backwards)."""
    if not math.isfinite(equity):
        return RL.OK
    day = ts // RL.DAY_NS
    if RS[RL.S_DAY_SET] == 0 or day > RS[RL.S_DAY]:
        RS[RL.S_DAY_SET] = 1
        RS[RL.S_DAY] = day
        RS[RL.S_HALTED] = 0
        RSF[RL.F_DAY_START_EQ] = equity
        RSF[RL.F_TRIP_DD] = 0.0
    RSF[RL.F_LAST_EQ] = equity
    if RS[RL.S_HALTED] != 0:
        return RL.OK
    start = RSF[RL.F_DAY_START_EQ]
    dd = (start - equity) / start if start > 0.0 else 1.0
    if dd >= C.daily_drawdown:
        RS[RL.S_HALTED] = 1
        RS[RL.S_TRIPS] += 1
        RSF[RL.F_TRIP_DD] = dd
        return RL.DAILY_DRAWDOWN
    return RL.OK


# ------------------------------------------------------------------------------------------ entries
@njit(cache=True)
def check_entry(
    RS, RSF, ring, C, ts, side, price, stop_dist, confidence, vol_horizon, vol_pct, equity, pos_qty,
    other_gross_notional, lot_size, min_notional,
):  # fmt: skip
    """Gate and size one entry.

    Arguments: ``ts`` (ns), ``side`` (+1/-1), ``price`` (expected fill, quote), ``stop_dist`` (distance
    to the stop, quote per base unit), ``confidence`` (0..1), ``vol_horizon`` (return std over the
    expected holding time, fraction), ``vol_pct`` (volatility percentile, 0..1), ``equity`` (quote),
    ``pos_qty`` (this symbol's signed position, base), ``other_gross_notional`` (gross notional of the
    other symbols' positions, quote), ``lot_size`` (base), ``min_notional`` (quote).

    Returns ``(qty, code, value, limit, resized_code)``: the approved quantity (base units, a multiple
    of lot_size; 0 when refused), the reason code (OK = approved), the offending value and the limit
    it broke (refusals), or for an approval the binding cap's measure after the entry and its limit
    (else the loss at the stop / equity and max_loss_per_trade), and the code of the rule that cut the
    size without refusing (a cap, else HIGH_VOL when the high-volatility factor applied, else OK).

    Refusal values: kill_switch mode vs 0; bad_input the first invalid input's value vs 0 (which one:
    :func:`first_bad_input`); daily_drawdown the drawdown at the trip vs the limit; min_interval
    seconds since the last entry vs the interval (s); max_trades_24h entries in the window vs the
    limit; opposite_position pos_qty vs 0; max_adds adds vs the limit; confidence vs the floor;
    high_vol vol_pct vs the percentile; a cap: its measure after the smallest tradeable entry vs the
    cap; min_size the sized notional vs the smallest tradeable notional (quote).

    Observes ``equity`` like :func:`on_equity` first (a caller that forgot on_equity is still
    protected); a refusal increments ``RS[S_REFUSED0 + code]``. Nothing else is written: the caller
    records a sent entry with :func:`record_entry`.
    """
    if math.isfinite(equity) and equity > 0.0:
        on_equity(RS, RSF, C, ts, equity)
    if RS[RL.S_KILL] != RL.KILL_OFF:
        return _refuse(RS, RL.KILL_SWITCH, float(RS[RL.S_KILL]), 0.0)
    bad, bad_value = first_bad_input(side, price, stop_dist, equity, lot_size, vol_horizon, min_notional,
                                     other_gross_notional, pos_qty, vol_pct)  # fmt: skip
    if bad >= 0:
        return _refuse(RS, RL.BAD_INPUT, bad_value, 0.0)
    # breakers and pacing
    if RS[RL.S_HALTED] != 0:
        return _refuse(RS, RL.DAILY_DRAWDOWN, RSF[RL.F_TRIP_DD], C.daily_drawdown)
    if RS[RL.S_HAS_ENTRY] != 0:
        since = ts - RS[RL.S_LAST_ENTRY_TS]
        if since < C.min_trade_interval_ns:
            return _refuse(RS, RL.MIN_INTERVAL, since / RL.NS, C.min_trade_interval_ns / RL.NS)
    n = ring.shape[0]
    head = RS[RL.S_HEAD]
    if head >= n and ts - ring[head % n] <= RL.DAY_NS:  # the n-th last entry is inside [ts - 24 h, ts]
        return _refuse(RS, RL.MAX_TRADES_24H, float(n), float(C.max_trades_24h))
    # position
    if pos_qty * side < 0.0:
        return _refuse(RS, RL.OPPOSITE_POSITION, pos_qty, 0.0)
    is_add = pos_qty * side > 0.0
    if is_add and RS[RL.S_ADDS] >= C.max_adds:
        return _refuse(RS, RL.MAX_ADDS, float(RS[RL.S_ADDS]), float(C.max_adds))
    scale = confidence_scale(C, confidence)
    if scale <= 0.0:
        return _refuse(RS, RL.CONFIDENCE, confidence, C.confidence_floor)
    high_vol = vol_pct >= C.high_vol_percentile
    if high_vol and C.high_vol_size_factor <= 0.0:
        return _refuse(RS, RL.HIGH_VOL, vol_pct, C.high_vol_percentile)
    # sizing: loss at the stop = max_loss_per_trade * equity * scale (times the add / high-vol factors)
    q = C.max_loss_per_trade * equity * scale / stop_dist
    if is_add:
        q *= C.add_size_factor
    if high_vol:
        q *= C.high_vol_size_factor
    # caps on the position after the entry (first binding cap wins ties)
    apos = abs(pos_qty)
    binding = RL.OK
    qc = q
    cap = C.max_position * equity / price - apos
    if cap < qc:
        qc, binding = cap, RL.MAX_POSITION
    cap = (C.max_capital_in_use * equity - other_gross_notional) / price - apos
    if cap < qc:
        qc, binding = cap, RL.MAX_CAPITAL
    if vol_horizon > 0.0:
        cap = C.var95_limit * equity / (RL.Z95 * vol_horizon * price) - apos
        if cap < qc:
            qc, binding = cap, RL.VAR95
    # lot grid and minimum notional
    lots = math.floor(max(qc, 0.0) / lot_size + RL.LOT_EPS)
    min_lots = max(1.0, math.ceil(min_notional / (price * lot_size) - RL.LOT_EPS))
    if lots < min_lots:
        if binding != RL.OK:
            value, limit = _cap_ratio(
                binding, C, price, equity, vol_horizon, other_gross_notional, apos + min_lots * lot_size
            )
            return _refuse(RS, binding, value, limit)
        return _refuse(RS, RL.MIN_SIZE, q * price, min_lots * lot_size * price)
    qty = lot_qty(lots, lot_size)
    if binding != RL.OK:
        value, limit = _cap_ratio(binding, C, price, equity, vol_horizon, other_gross_notional, apos + qty)
        return qty, RL.OK, value, limit, binding
    resized = RL.HIGH_VOL if high_vol else RL.OK
    return qty, RL.OK, qty * stop_dist / equity, C.max_loss_per_trade, resized


@njit(cache=True)
def record_entry(RS, ring, ts, side, is_add):
    """Record an entry sent at ``ts`` (ns): pacing, the 24 h ring, and the open position (a first
    entry starts the holding clock and resets the add count; an add increments it)."""
    n = ring.shape[0]
    ring[RS[RL.S_HEAD] % n] = ts
    RS[RL.S_HEAD] += 1
    RS[RL.S_HAS_ENTRY] = 1
    RS[RL.S_LAST_ENTRY_TS] = ts
    if not is_add or RS[RL.S_OPEN] == 0:
        RS[RL.S_OPEN] = 1
        RS[RL.S_OPEN_TS] = ts
        RS[RL.S_ADDS] = 0
        RS[RL.S_SIDE] = side
    if is_add:
        RS[RL.S_ADDS] += 1


@njit(cache=True)
def record_flat(RS):
    """The position is back to 0: stop the holding clock and forget the adds."""
    RS[RL.S_OPEN] = 0
    RS[RL.S_OPEN_TS] = 0
    RS[RL.S_ADDS] = 0
    RS[RL.S_SIDE] = 0


# ------------------------------------------------------------------------------------------ exits
@njit(cache=True)
def exit_due(RS, C, ts, pos_qty):
    """MAX_HOLDING when the open position is older than max_holding_s at ``ts``, else OK. A position
    (``pos_qty != 0``) with no recorded entry (e.g. found at start-up) starts its clock at this call."""
    if pos_qty == 0.0 or not math.isfinite(pos_qty):
        return RL.OK
    if RS[RL.S_OPEN] == 0:
        RS[RL.S_OPEN] = 1
        RS[RL.S_OPEN_TS] = ts
        RS[RL.S_ADDS] = 0
        RS[RL.S_SIDE] = 1 if pos_qty > 0.0 else -1
        return RL.OK
    if ts - RS[RL.S_OPEN_TS] > C.max_holding_ns:
        return RL.MAX_HOLDING
    return RL.OK


@njit(cache=True)
def check_exit(RS):
    """Exits (orders that reduce the position) are allowed except in kill mode 'halt' (KILL_SWITCH)."""
    if RS[RL.S_KILL] == RL.KILL_HALT:
        RS[RL.S_REFUSED0 + RL.KILL_SWITCH] += 1
        return RL.KILL_SWITCH
    return RL.OK


@njit(cache=True)
def set_kill(RS, mode):
    """Set the kill-switch mode (KILL_OFF, KILL_REDUCE_ONLY, KILL_HALT)."""
    RS[RL.S_KILL] = mode
