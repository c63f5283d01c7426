"""The Python face of the strategy kernels (paper/live trading, tests): the same numba functions the
backtester calls in its loop, one event at a time, with readable results."""

from __future__ import annotations

import msgspec
import numpy as np

from orderflow.strategy import kernels as ST
from orderflow.strategy import layout as STL
from orderflow.strategy.config import StrategyConfig


class Decision(msgspec.Struct, frozen=True):
    """What the strategy wants at one row. ``gate`` names the gate that rejected a signal ("" if none);
    ``exit_reason`` why an EXIT is wanted."""

    action: str  # none, enter, add, exit
    side: int  # +1 buy, -1 sell, 0 none
    gate: str
    exit_reason: str
    fused: float
    confidence: float
    quality: float
    ev: float
    cost: float


class Strategy:
    """Holds one symbol's strategy state arrays and calls the kernels."""

    def __init__(self, cfg: StrategyConfig | None = None, taker_fee: float = 0.0005, venue: str = "sim"):
        self.cfg = cfg or StrategyConfig()
        self.C = self.cfg.to_record(taker_fee, venue)[0]  # the config record, read by field name
        self.G = np.zeros(STL.N_G, dtype=np.int64)
        self.H = np.zeros(STL.N_H, dtype=np.float64)
        ST.init_state(self.G, self.H)

    def decide(
        self,
        *,
        ts: int,
        valid: bool,
        ofi_z: float,
        p_down: float,
        p_up: float,
        rv_bps: float,
        bid_px: np.ndarray,
        bid_sz: np.ndarray,
        ask_px: np.ndarray,
        ask_sz: np.ndarray,
        nominal_qty: float,
        book_age_ns: int = 0,
        trade_age_ns: int = 0,
        vol_state: float = 1.0,
        trend_state: float = 0.0,
        risk_exit: bool = False,
    ) -> Decision:
        f8 = np.float64
        action, side, code = ST.decide(
            self.G, self.H, self.C, np.int64(ts), bool(valid), np.int64(book_age_ns),
            np.int64(trade_age_ns), f8(ofi_z), f8(p_down), f8(p_up), f8(rv_bps), f8(vol_state),
            f8(trend_state),
            STL.BookLevels(np.asarray(bid_px, f8), np.asarray(bid_sz, f8), np.asarray(ask_px, f8),
                         np.asarray(ask_sz, f8)),
            f8(nominal_qty), bool(risk_exit),
        )  # fmt: skip
        h = self.H
        return Decision(
            action=STL.ACTIONS[action],
            side=int(side),
            gate=STL.GATES[code] if action == STL.NONE and code != STL.PASS else "",
            exit_reason=STL.EXIT_REASONS[code] if action == STL.EXIT else "",
            fused=float(h[STL.H_LAST_FUSED]),
            confidence=float(h[STL.H_LAST_CONF]),
            quality=float(h[STL.H_LAST_QUALITY]),
            ev=float(h[STL.H_LAST_EV]),
            cost=float(h[STL.H_LAST_COST]),
        )

    def mark_sent(self, action: str) -> None:
        ST.mark_sent(self.G, STL.ACTIONS.index(action))

    def mark_done(self) -> None:
        ST.mark_done(self.G)

    def mark_risk_refused(self) -> None:
        ST.mark_risk_refused(self.G)

    def on_position(self, ts: int, pos_qty: float, avg_px: float) -> None:
        ST.on_position(self.G, self.H, self.C, np.int64(ts), float(pos_qty), float(avg_px))

    @property
    def side(self) -> int:
        return int(self.G[STL.G_SIDE])

    @property
    def barriers(self) -> tuple[float, float]:
        """(take-profit price, stop price) of the open position (NaN when flat)."""
        return float(self.H[STL.H_TP]), float(self.H[STL.H_SL])

    @property
    def threshold_mult(self) -> float:
        return float(self.H[STL.H_THR_MULT])

    def rejections(self) -> dict[str, int]:
        """Rejections per gate, as ``{"gate:<name>": count}`` for the gates that rejected anything."""
        return {
            f"gate:{g}": int(self.G[STL.G_REJ0 + i])
            for i, g in enumerate(STL.GATES)
            if i and self.G[STL.G_REJ0 + i]
        }
