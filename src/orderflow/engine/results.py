"""What a run of the trading core produced, as frames: equity, round trips, fills and rejection counts.

The core (``engine.core``) writes its outputs into preallocated arrays whose columns are named there
(``EO_*`` equity, ``TI_*``/``TF_*`` round trips, ``FO_*`` fills). The backtester's compiled loop and the
paper/live ``TradingSession`` both turn those arrays into a :class:`BacktestResult` with these functions,
so a backtest and a live run are reported alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from orderflow.engine import core as CO
from orderflow.risk import layout as RL
from orderflow.strategy import layout as STL

REGIMES = ("calm", "normal", "high_vol")


@dataclass
class BacktestResult:
    """One run of the core: a backtest window, or a paper/live session so far."""

    equity: pd.DataFrame  # ts, equity, position, price, regime
    trades: pd.DataFrame  # the round trips (metrics.TRADE_COLUMNS)
    fills: pd.DataFrame  # ts, side, qty, price, fee, maker, action
    rejections: dict[str, int]
    orders: int
    seconds: float
    events: int
    info: dict[str, object] = field(default_factory=dict)  # run facts for reports (JSON values)


def _regime_names(codes: np.ndarray) -> list[str]:
    return [REGIMES[r] if 0 <= r < 3 else "unknown" for r in codes]


def rejection_counts(G: np.ndarray, RS: np.ndarray) -> dict[str, int]:
    """Refusals by gate (``gate:<name>``) and, for the risk gate, by rule (``risk:<rule>``), zeros left
    out."""
    out = {f"gate:{g}": int(G[STL.G_REJ0 + i]) for i, g in enumerate(STL.GATES) if i and G[STL.G_REJ0 + i]}
    out.pop("gate:risk", None)  # counted per rule below
    for code, rule in enumerate(RL.RULES):
        c = int(RS[RL.S_REFUSED0 + code]) if code else 0
        if c:
            out[f"risk:{rule}"] = c
    return out


def equity_frame(ts: np.ndarray, f: np.ndarray) -> pd.DataFrame:
    vs = f[:, CO.EO_VOLSTATE]
    regime = np.where(np.isfinite(vs), vs, -1).astype(int)
    return pd.DataFrame(
        {
            "ts": ts,
            "equity": f[:, CO.EO_EQUITY],
            "position": f[:, CO.EO_POS],
            "price": f[:, CO.EO_MID],
            "regime": _regime_names(regime),
        }
    )


def trade_frame(ti: np.ndarray, tf: np.ndarray) -> pd.DataFrame:
    qty = tf[:, CO.TF_QTY]
    xq = tf[:, CO.TF_EXIT_QTY]
    with np.errstate(invalid="ignore", divide="ignore"):
        entry_px = tf[:, CO.TF_ENTRY_NOT] / qty
        exit_px = tf[:, CO.TF_EXIT_NOT] / xq
    gross, fees, fund = tf[:, CO.TF_GROSS], tf[:, CO.TF_FEES], tf[:, CO.TF_FUND]
    return pd.DataFrame(
        {
            "entry_ts": ti[:, CO.TI_ENTRY_TS],
            "exit_ts": ti[:, CO.TI_EXIT_TS],
            "side": ti[:, CO.TI_SIDE],
            "qty": qty,
            "entry_px": entry_px,
            "exit_px": exit_px,
            "gross_pnl": gross,
            "fees": fees,
            "slippage": tf[:, CO.TF_SLIP],
            "funding": fund,
            "net_pnl": gross - fees - fund,
            "exit_reason": [STL.EXIT_REASONS[r] or "signal" for r in ti[:, CO.TI_REASON]],
            "regime": _regime_names(ti[:, CO.TI_VOLSTATE]),
        }
    )


def fill_frame(fi: np.ndarray, ff: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": fi[:, CO.FO_TS],
            "side": fi[:, CO.FO_SIDE],
            "qty": ff[:, CO.FO_QTY],
            "price": ff[:, CO.FO_PX],
            "fee": ff[:, CO.FO_FEE],
            "maker": fi[:, CO.FO_MAKER].astype(bool),
            "action": [STL.ACTIONS[a] for a in fi[:, CO.FO_ACTION]],
            "mid_at_decision": ff[:, CO.FO_MID],
        }
    )
