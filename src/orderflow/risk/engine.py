"""The risk engine for paper/live trading and tests: a thin wrapper over the numba kernels of
:mod:`orderflow.risk.kernels` (the backtester calls the same kernels from its compiled loop).

One engine per traded symbol: the add count and the holding clock belong to one position; the
account enters through ``equity`` and ``other_gross_notional``. Every decision is a frozen event
carrying the rule, the numbers (value vs limit) and a readable sentence; refusals are counted per
rule. Units: prices/notionals in quote currency, quantities in base units, ``ts`` int ns since the
epoch, fractions of equity.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import msgspec
import numpy as np

from orderflow.risk import kernels as RK
from orderflow.risk import layout as RL
from orderflow.risk.config import RiskConfig

log = logging.getLogger(__name__)

KillMode = Literal["off", "reduce_only", "halt"]


class RiskDecision(msgspec.Struct, frozen=True):
    """The answer to an entry or exit request.

    ``qty``: approved quantity (base units; 0 when refused; for exits the requested quantity).
    ``rule``: "ok" when approved, else the refusing rule (a name in ``layout.RULES``).
    ``value`` / ``limit``: the offending value and the limit it broke; for an approved entry the
    binding cap's measure after the entry and the cap, else the loss at the stop / equity and
    max_loss_per_trade. ``resized_by``: the rule that cut the size without refusing, or None.
    """

    approved: bool
    qty: float
    rule: str
    value: float
    limit: float
    resized_by: str | None
    message: str
    ts: int = 0
    side: int = 0


class RiskAlert(msgspec.Struct, frozen=True):
    """Something the caller must act on: the daily breaker tripped, or a position is held too long."""

    ts: int
    rule: str
    value: float
    limit: float
    message: str


def _pct(x: float) -> str:
    return f"{100.0 * x:.2f}%"


_CAP_WORDS = {
    RL.MAX_POSITION: "the position",
    RL.MAX_CAPITAL: "the capital in use",
    RL.VAR95: "the 95% VaR",
    RL.PORTFOLIO_VAR95: "the book's 95% VaR",
    RL.CORRELATION_BUDGET: "the correlated exposure",
}


def _refusal_message(code: int, value: float, limit: float, bad_name: str) -> str:
    rule = RL.RULES[code]
    head = f"refused by {rule}: "
    if code == RL.KILL_SWITCH:
        return head + f"kill switch is {RL.KILL_MODES[int(value)]!r} (entries need 'off')"
    if code == RL.BAD_INPUT:
        return head + f"{bad_name} = {value!r} is not a valid value"
    if code == RL.DAILY_DRAWDOWN:
        return head + (
            f"equity fell {_pct(value)} below the UTC day's start, limit {_pct(limit)}; "
            "entries halted until 00:00 UTC"
        )
    if code == RL.MIN_INTERVAL:
        return head + f"{value:.3f} s since the last entry, limit {limit:.3f} s"
    if code == RL.MAX_TRADES_24H:
        return head + f"{value:.0f} entries in the last 24 h, limit {limit:.0f}"
    if code == RL.OPPOSITE_POSITION:
        return head + f"position {value:g} is on the other side; exit it first"
    if code == RL.MAX_ADDS:
        return head + f"{value:.0f} adds to the open position, limit {limit:.0f}"
    if code == RL.CONFIDENCE:
        return head + f"confidence {value:.3f} is below the floor {limit:.3f}"
    if code == RL.HIGH_VOL:
        return head + f"volatility percentile {value:.3f} >= {limit:.3f} and high_vol_size_factor is 0"
    if code in _CAP_WORDS:
        return head + (
            f"the smallest tradeable entry makes {_CAP_WORDS[code]} {_pct(value)} of equity, "
            f"limit {_pct(limit)}"
        )
    if code == RL.ALLOCATION:
        return head + (
            f"score (confidence x EV per unit of risk) {value:.6g} lost to {limit:.6g}: the budget went to "
            "the simultaneous signals with the higher scores"
        )
    if code == RL.MIN_SIZE:
        return head + f"sized notional {value:.2f} is under the smallest tradeable notional {limit:.2f}"
    return head + f"value {value!r}, limit {limit!r}"


def _approval_message(qty: float, value: float, limit: float, resized: int) -> str:
    msg = f"approved {qty:g}"
    if resized in _CAP_WORDS:
        return msg + (
            f", resized by {RL.RULES[resized]}: {_CAP_WORDS[resized]} is {_pct(value)} of equity after the "
            f"entry, limit {_pct(limit)}"
        )
    msg += f": loss at the stop {_pct(value)} of equity (max_loss_per_trade {_pct(limit)})"
    if resized == RL.HIGH_VOL:
        msg += ", resized by high_vol"
    return msg


class RiskEngine:
    """Risk gate for one symbol. Call :meth:`on_equity` on every equity update, :meth:`check_entry`
    before every entry, :meth:`record_entry` once the entry is sent, :meth:`record_flat` when the
    position returns to 0, :meth:`exit_due` to learn that a position is held too long, and
    :meth:`check_exit` before every exit."""

    def __init__(self, cfg: RiskConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else RiskConfig()
        self.C = self.cfg.to_record()[0]  # the config record, read by field name
        self.RS = np.zeros(RL.N_S, dtype=np.int64)
        self.RSF = np.zeros(RL.N_F, dtype=np.float64)
        self.ring = np.zeros(self.cfg.max_trades_24h, dtype=np.int64)
        self._last_ts: int | None = None

    # -------------------------------------------------------------------------------- entries
    def check_entry(
        self,
        *,
        ts: int,
        side: int,
        price: float,
        stop_dist: float,
        confidence: float,
        vol_horizon: float,
        vol_pct: float,
        equity: float,
        lot_size: float,
        pos_qty: float = 0.0,
        other_gross_notional: float = 0.0,
        min_notional: float = 0.0,
    ) -> RiskDecision:
        """Gate and size one entry (see :func:`kernels.check_entry` for the checks and units).

        ``equity`` is observed as by :meth:`on_equity`: if it trips the daily breaker, the answer is a
        ``daily_drawdown`` refusal (no separate alert)."""
        ts, side = int(ts), int(side)
        price, stop_dist, equity, lot_size = float(price), float(stop_dist), float(equity), float(lot_size)
        vol_horizon, vol_pct, pos_qty = float(vol_horizon), float(vol_pct), float(pos_qty)
        other, min_notional = float(other_gross_notional), float(min_notional)
        qty, code, value, limit, resized = RK.check_entry(
            self.RS, self.RSF, self.ring, self.C, ts, side, price, stop_dist, float(confidence), vol_horizon,
            vol_pct, equity, pos_qty, other, lot_size, min_notional,
        )  # fmt: skip
        self._last_ts = ts
        if code != RL.OK:
            bad_name = ""
            if code == RL.BAD_INPUT:
                idx, _ = RK.first_bad_input(
                    side, price, stop_dist, equity, lot_size, vol_horizon, min_notional, other, pos_qty,
                    vol_pct,
                )  # fmt: skip
                bad_name = RL.BAD_INPUT_NAMES[idx]
            message = _refusal_message(code, value, limit, bad_name)
            log.debug("risk: %s", message)
            return RiskDecision(False, 0.0, RL.RULES[code], value, limit, None, message, ts, side)
        return RiskDecision(
            True,
            qty,
            "ok",
            value,
            limit,
            RL.RULES[resized] if resized != RL.OK else None,
            _approval_message(qty, value, limit, resized),
            ts,
            side,
        )

    def record_entry(self, *, ts: int, side: int, is_add: bool) -> None:
        """Record an entry sent at ``ts`` (an add when the position was already open on that side)."""
        RK.record_entry(self.RS, self.ring, int(ts), int(side), bool(is_add))
        self._last_ts = int(ts)

    def record_flat(self) -> None:
        """The position is back to 0."""
        RK.record_flat(self.RS)

    # -------------------------------------------------------------------------------- equity, exits
    def on_equity(self, *, ts: int, equity: float) -> RiskAlert | None:
        """Observe equity (quote); returns an alert when the daily breaker trips at this update."""
        ts = int(ts)
        self._last_ts = ts
        code = RK.on_equity(self.RS, self.RSF, self.C, ts, float(equity))
        if code == RL.OK:
            return None
        dd, lim = float(self.RSF[RL.F_TRIP_DD]), float(self.C["daily_drawdown"])
        msg = (
            f"daily_drawdown tripped: equity {equity:.2f} is {_pct(dd)} below the day's start "
            f"{self.RSF[RL.F_DAY_START_EQ]:.2f}, limit {_pct(lim)}; entries halted until 00:00 UTC"
        )
        log.warning("risk: %s", msg)
        return RiskAlert(ts, "daily_drawdown", dd, lim, msg)

    def exit_due(self, *, ts: int, pos_qty: float) -> RiskAlert | None:
        """An alert when the open position is older than max_holding_s (close it), else None."""
        ts = int(ts)
        code = RK.exit_due(self.RS, self.C, ts, float(pos_qty))
        if code == RL.OK:
            return None
        age = (ts - int(self.RS[RL.S_OPEN_TS])) / RL.NS
        lim = self.cfg.max_holding_s
        msg = f"max_holding: position {pos_qty:g} open for {age:.3f} s, limit {lim:g} s; close it"
        return RiskAlert(ts, "max_holding", age, lim, msg)

    def check_exit(self, *, ts: int = 0, qty: float = 0.0, side: int = 0) -> RiskDecision:
        """Exits are approved except in kill mode 'halt'. ``qty`` is echoed back when approved."""
        code = RK.check_exit(self.RS)
        if code == RL.OK:
            return RiskDecision(True, float(qty), "ok", 0.0, 0.0, None, f"exit of {qty:g} approved", ts, side)
        msg = "refused by kill_switch: mode 'halt' refuses every order, exits included"
        return RiskDecision(False, 0.0, "kill_switch", float(RL.KILL_HALT), 0.0, None, msg, ts, side)

    # -------------------------------------------------------------------------------- kill switch, state
    def kill(self, mode: KillMode) -> None:
        """Set the kill switch: 'off', 'reduce_only' (entries refused, exits allowed) or 'halt'."""
        if mode not in RL.KILL_MODES:
            raise ValueError(f"unknown kill mode {mode!r}: use one of {', '.join(RL.KILL_MODES)}")
        RK.set_kill(self.RS, RL.KILL_MODES.index(mode))
        log.warning("risk: kill switch set to %r", mode)

    @property
    def kill_mode(self) -> str:
        return RL.KILL_MODES[int(self.RS[RL.S_KILL])]

    @property
    def refusals(self) -> dict[str, int]:
        """Refusals so far per rule (entries and exits)."""
        counts = self.RS[RL.S_REFUSED0 : RL.S_REFUSED0 + RL.N_RULES]
        return {name: int(n) for name, n in zip(RL.RULES, counts, strict=True) if name != "ok"}

    def entries_24h(self, ts: int | None = None) -> int:
        """Entries recorded in [ts - 24 h, ts] (ts defaults to the last time the engine saw)."""
        if ts is None:
            ts = self._last_ts
        head = int(self.RS[RL.S_HEAD])
        if ts is None or head == 0:
            return 0
        n = self.ring.shape[0]
        recent = self.ring[: min(head, n)]
        return int(np.count_nonzero(ts - recent <= RL.DAY_NS))

    def state(self) -> dict[str, Any]:
        """A snapshot for a dashboard (plain JSON-able values)."""
        S, F = self.RS, self.RSF
        start = float(F[RL.F_DAY_START_EQ])
        last = float(F[RL.F_LAST_EQ])
        return {
            "kill_mode": self.kill_mode,
            "halted": bool(S[RL.S_HALTED]),
            "utc_day": int(S[RL.S_DAY]) if S[RL.S_DAY_SET] else None,
            "day_start_equity": start if S[RL.S_DAY_SET] else None,
            "equity": last if S[RL.S_DAY_SET] else None,
            "drawdown": (start - last) / start if S[RL.S_DAY_SET] and start > 0 else None,
            "breaker_trips": int(S[RL.S_TRIPS]),
            "last_entry_ts": int(S[RL.S_LAST_ENTRY_TS]) if S[RL.S_HAS_ENTRY] else None,
            "entries_total": int(S[RL.S_HEAD]),
            "entries_24h": self.entries_24h(),
            "position_open": bool(S[RL.S_OPEN]),
            "position_side": int(S[RL.S_SIDE]),
            "position_open_ts": int(S[RL.S_OPEN_TS]) if S[RL.S_OPEN] else None,
            "adds": int(S[RL.S_ADDS]),
            "refusals": self.refusals,
        }
