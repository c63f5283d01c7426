"""The journal's record of the model in a paper/live run: sampled predictions, the outcome of each once
its horizon has passed, and the model's input values for feature drift; batched like the decision rows.

At every book event :meth:`PredictionLog.on_book` hands the mid to the
:class:`~orderflow.engine.outcomes.OutcomeTracker` (the training labels' triple-barrier rule, in exchange
time) and samples the model's probabilities at most every ``sample_s`` of exchange time, and at every
event that sent an order whatever the sampling (so each order has the prediction it was decided on),
on valid feature rows only: the model's output on a row still warming up (after a start or a gap) is
not one the strategy may trade on, and its inputs would show as drift. A
row carries the model version, the mid, the horizon, the order sent (if any) and, when the strategy
priced a trade at this very event, its expected value and cost (fractions of notional) and side. The
strategy prices a trade only for a directional signal that passed every gate before the EV gate
(pending, invalid, stale, regime, spot short, confidence, quality); its last EV and cost are otherwise
an earlier event's, so the row leaves them NULL rather than carry a stale figure. The tracker's
outcome (label, log return, the touch or vertical-barrier time) is written into the same row.

Feature drift: the model registry keeps no training feature statistics (a bundle's manifest names the
features, the training window and out-of-sample scores, not their distributions), so the reference
has to come from live data. Every ``inputs_every``-th row carries the model's input values as a
msgpack array of floats, in the order of ``model_inputs.names`` (written once per run and version):
at one prediction a second, one vector in ten and 50 inputs, about 0.45 kB per 10 s or 4 MB a day,
where a vector on every row would be ten times that. The report bins the period's vectors against the
model version's first journaled ones (:mod:`orderflow.reports.evaluation`).

Writes: new rows and outcomes wait in memory and go to the journal in one transaction every
``flush_s`` (default 5 s) or ``batch`` items, after the book event's order has gone out; a crash loses
at most that much. An outcome whose row is still waiting is written into the row itself.

Telemetry: ``on_output`` and ``on_outcome`` (set by the engine's tap) receive each sample and each
outcome, so one tracker serves the journal and the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from orderflow.engine.outcomes import OutcomeTracker, Resolved
from orderflow.strategy import layout as STL

if TYPE_CHECKING:
    from orderflow.engine.session import TradingSession
    from orderflow.journal import Journal

NS = 1_000_000_000
# the gates a signal can fail before the strategy computes its expected value and cost
_BEFORE_EV = ("pending", "invalid", "stale", "regime", "spot_short", "confidence", "quality")
_EARLY = tuple(STL.GATES.index(g) for g in _BEFORE_EV)
_REJ = slice(STL.G_REJ0, STL.G_REJ0 + STL.N_GATES)
_encode = msgspec.msgpack.Encoder().encode

Probs = tuple[float, float, float]


class PredictionLog:
    """Predictions of one symbol's model: ``tracker`` resolves them; with a ``journal`` (and the run id)
    they are journaled. ``names`` are the model's inputs (the columns ``cols`` of the engine's feature
    row), ``version`` the model version being served (the engine updates it on a hot reload)."""

    def __init__(
        self,
        tracker: OutcomeTracker,
        symbol: str,
        version: str,
        names: list[str],
        cols: np.ndarray,
        *,
        journal: Journal | None = None,
        run_id: int | None = None,
        inputs_every: int = 10,
        flush_s: float = 5.0,
        batch: int = 256,
        ts_ns: int = 0,
    ) -> None:
        if journal is not None and run_id is None:
            raise ValueError("PredictionLog: a journal needs the run id")
        if inputs_every < 0:
            raise ValueError(f"inputs_every {inputs_every}: use 0 (none) or a positive count")
        self.tracker, self.symbol, self.names, self.cols = tracker, symbol, list(names), cols
        self.journal, self.run_id = journal, run_id
        self.inputs_every = inputs_every
        self.flush_ns = int(flush_s * NS)
        self.batch = batch
        self.version = ""
        self.seq = 0  # the next row's number
        self.samples = self.resolved = 0
        self._rows: list[dict[str, object]] = []
        self._waiting: dict[int, dict[str, object]] = {}  # rows not yet written, by seq
        self._outcomes: list[tuple[int, int, float, int]] = []
        self._flush_t = 0
        self._nsig = -1  # the strategy's signal count and early rejections at the last event
        self._early = 0
        self.on_output: Callable[[int, int, Probs, str, float], None] | None = None
        self.on_outcome: Callable[[int, Resolved], None] | None = None
        self.set_version(version, ts_ns)

    def set_version(self, version: str, ts_ns: int) -> None:
        """The model version served from now on (its input names journaled once per run)."""
        self.version = str(version)
        if self.journal is not None:
            assert self.run_id is not None  # checked in __init__
            self.journal.record_model_inputs(self.run_id, self.version, self.names, ts_ns)

    def on_book(
        self,
        t: int,
        ts_event: int,
        session: TradingSession,
        x: np.ndarray,
        probs: Probs,
        client_order_id: str | None = None,
        infer_us: float = 0.0,
        valid: bool = True,
    ) -> None:
        """Book event received at ``t`` (exchange time ``ts_event``), after the core's turn and after
        the order it asked for, ``client_order_id``, has gone out; ``x`` is the feature row (``valid``:
        warm), ``probs`` the model's (down, flat, up)."""
        G = session.G
        nsig = int(G[STL.G_SIGNALS])
        priced = False
        if nsig != self._nsig:  # a directional signal at this event: priced unless an early gate refused
            rej = G[_REJ].tolist()
            early = sum(rej[k] for k in _EARLY)
            priced = self._nsig >= 0 and early == self._early
            self._nsig, self._early = nsig, early
        mid = session.mid
        if not math.isfinite(mid):
            return
        tr = self.tracker
        for r in tr.on_price(ts_event, mid):
            self._outcome(t, r)
        forced = client_order_id is not None
        if valid and (forced or tr.due(ts_event)) and tr.predict(ts_event, probs, force=forced, key=self.seq):
            self._sample(t, ts_event, session, x, probs, mid, priced, client_order_id, infer_us)
        if (self._rows or self._outcomes) and (
            t - self._flush_t >= self.flush_ns or len(self._rows) + len(self._outcomes) >= self.batch
        ):
            self.flush(t)

    def _sample(self, t: int, ts_event: int, session: TradingSession, x: np.ndarray, probs: Probs,
                mid: float, priced: bool, cid: str | None, infer_us: float) -> None:  # fmt: skip
        seq = self.seq
        self.seq += 1
        self.samples += 1
        if self.on_output is not None:
            self.on_output(t, seq, probs, self.version, infer_us)
        if self.journal is None:
            return
        H = session.H
        row: dict[str, object] = {
            "seq": seq,
            "ts_ns": t,
            "event_ns": ts_event,
            "version": self.version,
            "p_down": probs[0],
            "p_flat": probs[1],
            "p_up": probs[2],
            "horizon_ns": self.tracker.horizon_ns,
            "mid": mid,
            "client_order_id": cid,
        }
        if priced:
            row["ev"] = float(H[STL.H_LAST_EV]) / mid
            row["cost"] = float(H[STL.H_LAST_COST]) / mid
            row["side"] = 1 if H[STL.H_LAST_FUSED] > 0 else -1
        if self.inputs_every and seq % self.inputs_every == 0:
            row["inputs"] = _encode(x[self.cols].astype(float).tolist())
        self._rows.append(row)
        self._waiting[seq] = row

    def _outcome(self, t: int, r: Resolved) -> None:
        self.resolved += 1
        row = self._waiting.get(r.key)
        if row is not None:
            row.update(label=r.label, ret=r.ret, outcome_ns=r.ts_ns)
        elif self.journal is not None and r.key >= 0:
            self._outcomes.append((r.key, r.label, r.ret, r.ts_ns))
        if self.on_outcome is not None:
            self.on_outcome(t, r)

    def flush(self, t: int) -> None:
        """Write the waiting rows and outcomes (one transaction)."""
        if self.journal is not None and (self._rows or self._outcomes):
            assert self.run_id is not None  # checked in __init__
            self.journal.record_predictions(self.run_id, self.symbol, self._rows, self._outcomes)
        self._rows, self._outcomes = [], []
        self._waiting.clear()
        self._flush_t = t
