"""Numba strategy kernels: signal fusion, gates, the adaptive threshold and triple-barrier exits.

One definition for backtest, paper and live: the backtester calls these inside its ``@njit`` event
loop; the live engine calls them per event through :class:`orderflow.strategy.engine.Strategy`.
Layouts and codes are in :mod:`orderflow.strategy.layout`. Parameters: ``C``, the record of
:class:`orderflow.strategy.config.StrategyConfig` (``StrategyConfig.to_record()[0]``), read by the
config's own field names (``C.w_ofi``).

Decision at a row (a book event whose features and model probabilities are known):

1. Position open: exits are checked first, on the price the exit would trade at (bid for a long, ask
   for a short): take profit (``take_profit_r x R`` from the entry), stop (``stop_r x R``; once the
   best price has moved ``trail_start_r x R`` in favour the stop trails it at ``trail_r x R``),
   timeout (``timeout_s``), the risk engine's maximum holding time, and (``exit_on_signal``) a fused
   signal past the threshold on the other side.
2. Fusion: ``fused = w_ofi * tanh(ofi_z / ofi_scale) + w_ai * (p_up - p_down)``; a signal when
   ``|fused| >= threshold x adaptive multiplier x regime multiplier``. Rows without a signal are not
   counted by any gate.
3. Gates, in order, each counted when it rejects a signal: an order of ours in flight (pending),
   invalid features or missing inputs (invalid), a stale book or no recent trade (stale), the
   regime's ``allow`` flag (regime), shorts on spot (spot_short), AI confidence
   ``p(direction) / (p_up + p_down)`` below ``confidence_gate`` (confidence), signal quality below
   ``quality_gate`` (quality), and expected value below ``ev_cost_mult x`` the round-trip cost (ev).
   Signal quality = 0.5 x agreement + 0.25 x freshness + 0.25 x regime fit: agreement is 1 when the
   OFI and AI scores both point in the signal's direction, 0.5 when one is neutral (``|score| <
   neutral``), 0 when one points against it; freshness is 1 for a valid, fresh row; regime fit is 1
   with the trend state (or with no trend), ``counter_trend_fit`` against it.
   Expected value per unit = ``mid x R x (p_dir x take_profit_r - p_opp x stop_r)`` (a timeout exit
   counted at zero); round-trip cost per unit = spread + 2 x taker fee x mid + 2 x the slippage of
   walking the book for ``nominal_qty`` beyond the best price.
4. The result ENTER/ADD goes to the risk engine, which sizes it or refuses it.

Adaptive threshold: every ``adapt_every_s`` the entries of the window are compared with
``target_trades_per_hour``: more raise the multiplier by ``adapt_step``, fewer lower it, within
``threshold_mult_range``. The confidence, quality and EV gates never adapt.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from orderflow.strategy import layout as STL


@njit(cache=True)
def init_state(G, H):
    """Reset the strategy state (flat, adaptive multiplier 1)."""
    G[:] = 0
    H[:] = 0.0
    G[STL.G_ADAPT_T0] = -1
    H[STL.H_THR_MULT] = 1.0
    H[STL.H_SL] = np.nan
    H[STL.H_TP] = np.nan


@njit(cache=True)
def vol_unit(C, rv_bps):
    """R in log-return units from a realised volatility in bps over ``rv_window_s`` (NaN if missing)."""
    if not math.isfinite(rv_bps) or rv_bps < 0.0:
        return np.nan
    r = rv_bps * 1e-4 * math.sqrt(C.horizon_s / C.rv_window_s)
    return max(r, C.min_r)


@njit(cache=True)
def walk_slippage(px, sz, qty):
    """Average price distance beyond the first level when taking ``qty`` from levels (px, sz), best
    first; the part beyond the visible depth is priced at the last level. NaN levels end the book."""
    if qty <= 0.0 or px.shape[0] == 0 or not math.isfinite(px[0]):
        return 0.0
    best = px[0]
    left, cost, last = qty, 0.0, best
    for i in range(px.shape[0]):
        if not (math.isfinite(px[i]) and math.isfinite(sz[i])) or sz[i] <= 0.0:
            break
        take = min(left, sz[i])
        cost += take * abs(px[i] - best)
        last = px[i]
        left -= take
        if left <= 0.0:
            break
    if left > 0.0:
        cost += left * abs(last - best)
    return cost / qty


@njit(cache=True)
def quality_score(C, side, ofi_score, ai_score, fresh, trend_state):
    """Signal quality in [0, 1] (module docstring)."""
    nt = C.neutral
    agree = 1.0
    for s in (ofi_score, ai_score):
        if abs(s) < nt:
            agree = min(agree, 0.5)
        elif s * side < 0.0:
            agree = 0.0
    fit = 1.0
    if math.isfinite(trend_state) and trend_state * side < 0.0:
        fit = C.counter_trend_fit
    return 0.5 * agree + 0.25 * (1.0 if fresh else 0.0) + 0.25 * fit


@njit(cache=True)
def _adapt(G, H, C, ts):
    if C.target_trades_per_hour <= 0.0:
        return
    if G[STL.G_ADAPT_T0] < 0:
        G[STL.G_ADAPT_T0] = ts
        return
    span = ts - G[STL.G_ADAPT_T0]
    if span < C.adapt_every_ns:
        return
    rate = G[STL.G_ADAPT_N] / (span / 3.6e12)
    m = H[STL.H_THR_MULT]
    if rate > C.target_trades_per_hour:
        m *= 1.0 + C.adapt_step
    elif rate < C.target_trades_per_hour:
        m /= 1.0 + C.adapt_step
    H[STL.H_THR_MULT] = min(max(m, C.threshold_mult_range[0]), C.threshold_mult_range[1])
    G[STL.G_ADAPT_T0] = ts
    G[STL.G_ADAPT_N] = 0


@njit(cache=True)
def _reject(G, code):
    G[STL.G_REJ0 + code] += 1
    return STL.NONE, 0, code


@njit(cache=True)
def _check_exit(G, H, C, ts, bid, ask, fused, thr, risk_exit):
    side = G[STL.G_SIDE]
    px = bid if side > 0 else ask
    if not math.isfinite(px):
        return STL.X_NONE
    if side > 0:
        H[STL.H_PEAK] = max(H[STL.H_PEAK], px)
        if H[STL.H_PEAK] >= H[STL.H_ENTRY_PX] * math.exp(C.trail_start_r * H[STL.H_R]):
            H[STL.H_SL] = max(H[STL.H_SL], H[STL.H_PEAK] * math.exp(-C.trail_r * H[STL.H_R]))
        if px >= H[STL.H_TP]:
            return STL.X_TAKE_PROFIT
        if px <= H[STL.H_SL]:
            return STL.X_STOP
    else:
        H[STL.H_PEAK] = min(H[STL.H_PEAK], px)
        if H[STL.H_PEAK] <= H[STL.H_ENTRY_PX] * math.exp(-C.trail_start_r * H[STL.H_R]):
            H[STL.H_SL] = min(H[STL.H_SL], H[STL.H_PEAK] * math.exp(C.trail_r * H[STL.H_R]))
        if px <= H[STL.H_TP]:
            return STL.X_TAKE_PROFIT
        if px >= H[STL.H_SL]:
            return STL.X_STOP
    if ts - G[STL.G_ENTRY_TS] >= C.timeout_ns:
        return STL.X_TIMEOUT
    if risk_exit:
        return STL.X_RISK
    if C.exit_on_signal and math.isfinite(fused) and fused * side <= -thr:
        return STL.X_SIGNAL
    return STL.X_NONE


@njit(cache=True, inline="always")
def decide(
    G, H, C, ts, valid, book_age_ns, trade_age_ns, ofi_z, p_dn, p_up, rv_bps, vol_state, trend_state,
    book, nominal_qty, risk_exit,
):  # fmt: skip
    """One decision at time ``ts`` -> ``(action, side, code)``.

    ``action`` is ``layout.NONE/ENTER/ADD/EXIT``; ``side`` the order side (+1 buy, -1 sell); ``code``
    the rejecting gate for a rejected signal, or the exit reason (``layout.X_*``) for an EXIT.
    ``book`` holds the book levels (:class:`layout.BookLevels`, best first); ``nominal_qty`` the largest
    size the risk engine could approve (for the slippage in the EV cost); ``risk_exit`` True when the
    risk engine says the position must close. The managed position is ``G[G_SIDE]``, set by
    :func:`on_position`.
    """
    bid_px, bid_sz, ask_px, ask_sz = book
    G[STL.G_DECISIONS] += 1
    _adapt(G, H, C, ts)
    bid, ask = bid_px[0], ask_px[0]
    mid = 0.5 * (bid + ask)
    ofi_score = math.tanh(ofi_z / C.ofi_scale) if math.isfinite(ofi_z) else np.nan
    ai_score = p_up - p_dn
    fused = C.w_ofi * ofi_score + C.w_ai * ai_score
    vs = int(vol_state) if math.isfinite(vol_state) and 0.0 <= vol_state <= 2.0 else 1
    thr = C.threshold * H[STL.H_THR_MULT] * C.threshold_mult[vs]
    H[STL.H_LAST_FUSED] = fused

    side_open = G[STL.G_SIDE]
    if side_open != 0 and G[STL.G_PENDING] == 0:
        reason = _check_exit(G, H, C, ts, bid, ask, fused, thr, risk_exit)
        if reason != STL.X_NONE:
            return STL.EXIT, -side_open, reason
    if not math.isfinite(fused) or abs(fused) < thr:
        return STL.NONE, 0, STL.PASS
    side = 1 if fused > 0.0 else -1
    action = STL.ENTER
    if side_open != 0:
        if side_open != side or not C.pyramid:
            return STL.NONE, 0, STL.PASS  # the exit check above handles an opposite signal
        action = STL.ADD
    G[STL.G_SIGNALS] += 1
    if G[STL.G_PENDING] != 0:
        return _reject(G, STL.GATE_PENDING)
    r = vol_unit(C, rv_bps)
    if not valid or not math.isfinite(mid) or not math.isfinite(r) or ask <= bid:
        return _reject(G, STL.GATE_INVALID)
    fresh = book_age_ns <= C.max_book_age_ns and trade_age_ns <= C.max_trade_age_ns
    if not fresh:
        return _reject(G, STL.GATE_STALE)
    if C.allow[vs] == 0:
        return _reject(G, STL.GATE_REGIME)
    if side < 0 and not C.allow_short:
        return _reject(G, STL.GATE_SPOT_SHORT)
    p_dir, p_opp = (p_up, p_dn) if side > 0 else (p_dn, p_up)
    conf = p_dir / (p_dir + p_opp) if p_dir + p_opp > 0.0 else 0.5
    H[STL.H_LAST_CONF] = conf
    if conf < C.confidence_gate:
        return _reject(G, STL.GATE_CONFIDENCE)
    q = quality_score(C, side, ofi_score, ai_score, fresh, trend_state)
    H[STL.H_LAST_QUALITY] = q
    if q < C.quality_gate:
        return _reject(G, STL.GATE_QUALITY)
    ev = mid * r * (p_dir * C.take_profit_r - p_opp * C.stop_r)
    slip = (
        walk_slippage(ask_px, ask_sz, nominal_qty) if side > 0 else walk_slippage(bid_px, bid_sz, nominal_qty)
    )
    cost = (ask - bid) + 2.0 * C.taker_fee * mid + 2.0 * slip
    H[STL.H_LAST_EV] = ev
    H[STL.H_LAST_COST] = cost
    if ev < C.ev_cost_mult * cost:
        return _reject(G, STL.GATE_EV)
    H[STL.H_R] = r if action == STL.ENTER else H[STL.H_R]
    return action, side, STL.PASS


@njit(cache=True)
def mark_sent(G, action):
    """An order for ``action`` was sent: no new decision until :func:`mark_done`."""
    G[STL.G_PENDING] = 1
    if action == STL.ENTER or action == STL.ADD:
        G[STL.G_ENTRIES] += 1
        G[STL.G_ADAPT_N] += 1
    elif action == STL.EXIT:
        G[STL.G_EXITS] += 1


@njit(cache=True)
def mark_done(G):
    """The order in flight is final (filled, cancelled, rejected or expired)."""
    G[STL.G_PENDING] = 0


@njit(cache=True)
def mark_risk_refused(G):
    """The risk engine refused the entry the strategy proposed."""
    G[STL.G_REJ0 + STL.GATE_RISK] += 1


@njit(cache=True)
def on_position(G, H, C, ts, pos_qty, avg_px):
    """Sync with the portfolio after fills: a new position sets its barriers from its average entry
    price and the R of the decision; a flat position clears them."""
    side = 1 if pos_qty > 0.0 else (-1 if pos_qty < 0.0 else 0)
    if side == 0:
        G[STL.G_SIDE] = 0
        G[STL.G_ADDS] = 0
        H[STL.H_TP] = np.nan
        H[STL.H_SL] = np.nan
        return
    if G[STL.G_SIDE] == side:
        return  # an add: the barriers stay those of the first entry
    G[STL.G_SIDE] = side
    G[STL.G_ENTRY_TS] = ts
    r = H[STL.H_R]
    H[STL.H_ENTRY_PX] = avg_px
    H[STL.H_PEAK] = avg_px
    H[STL.H_TP] = avg_px * math.exp(side * C.take_profit_r * r)
    H[STL.H_SL] = avg_px * math.exp(-side * C.stop_r * r)
