"""The journal's record of the strategy's decisions in a paper/live run: every order the strategy asked
for (gate ``pass``), and directional signals a gate rejected, one row when the rejecting gate changes
and then at most one per gate per second (a gate can reject every book event for minutes). Rows are
written in batches (256 rows or one second)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from orderflow.core.orders import CancelRequest, OrderRequest
from orderflow.engine import core as CO
from orderflow.strategy import layout as STL

if TYPE_CHECKING:
    from orderflow.engine.session import TradingSession
    from orderflow.journal import Journal

NS = 1_000_000_000


class SignalJournal:
    """Signal rows of run ``run_id`` and ``symbol`` for ``journal``; ``ofi_scale`` turns the OFI z-score
    into the strategy's OFI score (``tanh(z / scale)``)."""

    def __init__(self, journal: Journal, run_id: int, symbol: str, ofi_scale: float) -> None:
        self.journal, self.run_id, self.symbol, self.ofi_scale = journal, run_id, symbol, ofi_scale
        self._rej = np.zeros(STL.N_GATES, dtype=np.int64)  # rejection counters seen so far
        self._nsig = 0
        self._gate_t: dict[int, int] = {}
        self._rows: list[dict[str, object]] = []  # rows waiting for the next write (column -> value)
        self._flush_t = 0
        self.on_row: Callable[[dict[str, object]], None] | None = None  # each row as it is made (telemetry)

    def note(self, t: int, session: TradingSession, req: OrderRequest | CancelRequest | None, ofi_z: float,
             p_dn: float, p_up: float) -> None:  # fmt: skip
        """The decision at book event ``t`` (the session's state after it, and the request it made)."""
        G, H = session.G, session.H
        nsig = int(G[STL.G_SIGNALS])
        if not isinstance(req, OrderRequest) and nsig == self._nsig:
            return
        rej = G[STL.G_REJ0 : STL.G_REJ0 + STL.N_GATES]
        delta = rej - self._rej
        self._rej[:] = rej
        self._nsig = nsig
        if isinstance(req, OrderRequest):
            action, gate = int(session.D[CO.D_CUR_ACTION]), STL.PASS
        elif delta.any():
            action, gate = STL.NONE, int(np.argmax(delta))
            last = self._gate_t.get(gate)
            if last is not None and t - last < NS and self._rows and self._rows[-1]["gate"] == gate:
                return
            self._gate_t[gate] = t
        else:
            return
        mid = session.mid
        per_notional = 1.0 / mid if mid > 0 else math.nan
        ofi = math.tanh(ofi_z / self.ofi_scale) if math.isfinite(ofi_z) else math.nan
        self._rows.append(
            {
                "ts_ns": t,
                "fused": float(H[STL.H_LAST_FUSED]),
                "ofi_score": ofi,
                "ai_score": p_up - p_dn,
                "confidence": float(H[STL.H_LAST_CONF]),
                "quality": float(H[STL.H_LAST_QUALITY]),
                "ev": float(H[STL.H_LAST_EV]) * per_notional,
                "cost": float(H[STL.H_LAST_COST]) * per_notional,
                "action": action,
                "gate": gate,
            }
        )
        if self.on_row is not None:
            self.on_row(self._rows[-1])
        if len(self._rows) >= 256 or t - self._flush_t >= NS:
            self.flush(t)

    def flush(self, t: int) -> None:
        """Write the waiting rows."""
        if self._rows:
            self.journal.record_signals(self.run_id, self.symbol, self._rows)
        self._rows = []
        self._flush_t = t
