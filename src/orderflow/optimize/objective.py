"""What one trial scores: a purged walk-forward evaluation of its config on the test windows only.

The probabilities of every test window come from members fitted on samples whose labels ended before
the window (:func:`orderflow.backtest.walkforward.iter_window_probabilities`, computed once and cached:
level (a)); a trial re-runs only the backtest of each window with its strategy, risk, execution and
account settings, after fees, spread, slippage and funding as the simulated exchange charges them.

Per window w the backtest gives its figures (``compute_metrics`` of the window alone: annualised
Sharpe and Sortino of 1-minute returns, Calmar, net PnL after costs, max drawdown, trades; a figure
that is undefined, such as the Sharpe of a window without trades, counts as 0). The trial's value:

- ``sharpe`` / ``sortino`` / ``calmar`` / ``net_pnl``: ``mean_w(f_w) - lam * std_w(f_w)`` (population
  std over the windows), maximised;
- ``pnl_dd``: two values, the net PnL summed over the windows (maximised) and the largest window
  drawdown (minimised), for NSGA-II.

The trade count over all windows must reach ``min_trades``: an Optuna constraint (``constraint``
user attribute, <= 0 is feasible), not a penalty on the value. After each window the running mean of
the window figures is reported as an intermediate value, so a median or Wilcoxon pruner can stop a
poor trial before its last window. The per-period returns on the ``period_minutes`` grid of the test
windows are kept for the overfitting statistics (:mod:`orderflow.optimize.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from orderflow.backtest.engine import Market, make_signals, run_backtest
from orderflow.backtest.metrics import compute_metrics
from orderflow.backtest.walkforward import WindowProbabilities
from orderflow.config import Config
from orderflow.core.instruments import Instrument
from orderflow.optimize.space import InvalidPoint, SearchSpace, StudySettings, apply_values

NS = 1_000_000_000


@dataclass
class EvalData:
    """What a trial may read: the events, feature rows and cached probabilities of its test windows,
    all before ``limit_ns`` (the start of the held-back period on a search; the end of the data on the
    final held-back evaluation)."""

    windows: list[WindowProbabilities]
    markets: list[Market]  # one per window, its events only
    features: list[pd.DataFrame]  # one per window, its feature rows only
    instrument: Instrument
    limit_ns: int
    period_ns: int

    @classmethod
    def build(
        cls,
        market: Market,
        features: pd.DataFrame,
        windows: list[WindowProbabilities],
        instrument: Instrument,
        limit_ns: int,
        period_minutes: float,
    ) -> EvalData:
        markets = [market.window(w.start_ns, w.end_ns) for w in windows]
        feats = [features.iloc[w.r0 : w.r1] for w in windows]
        for w, m, f in zip(windows, markets, feats, strict=True):
            if m.n_book != len(w.probs) or len(f) != len(w.probs):
                raise ValueError(
                    f"window {w.window}: {m.n_book} book events, {len(f)} feature rows and "
                    f"{len(w.probs)} probabilities do not line up"
                )
            if w.end_ns > limit_ns:
                raise ValueError(f"window {w.window} ends after the limit {limit_ns}")
        return cls(windows, markets, feats, instrument, limit_ns, int(period_minutes * 60 * NS))

    @property
    def n_periods(self) -> int:
        return sum(max(0, (w.end_ns - w.start_ns) // self.period_ns) for w in self.windows)

    @property
    def n_windows(self) -> int:
        """Test windows a trial is scored on (an upper bound while they are still being computed)."""
        return len(self.windows)

    def items(self) -> Iterator[tuple[WindowProbabilities, Market, pd.DataFrame]]:
        """Each window with its events and feature rows, in order (a level (b) trial's are computed as
        the backtest reaches them: :class:`orderflow.optimize.recompute.LazyEvalData`)."""
        return zip(self.windows, self.markets, self.features, strict=True)


@dataclass
class Evaluation:
    """One config on every window: per-window figures, totals, the per-period returns."""

    windows: list[dict[str, Any]]
    returns: np.ndarray
    trades: int
    net_pnl: float
    max_drawdown: float
    figures: dict[str, list[float]] = field(default_factory=dict)

    def score(self, settings: StudySettings) -> float | tuple[float, float]:
        if settings.objective == "pnl_dd":
            return self.net_pnl, self.max_drawdown
        return combine(self.figures[settings.objective], settings.lam)


def combine(figures: list[float], lam: float) -> float:
    """``mean - lam * std`` of the per-window figures (population std; one window: its figure)."""
    a = np.asarray(figures, dtype=np.float64)
    return float(a.mean() - lam * a.std()) if a.size else float("nan")


def _period_returns(equity: pd.DataFrame, t0: int, t1: int, period_ns: int, initial: float) -> np.ndarray:
    """Simple returns between the equity marks at ``t0 + k * period`` (the last sample at or before
    each mark; the initial equity before the first sample)."""
    k = (t1 - t0) // period_ns
    if k <= 0:
        return np.zeros(0)
    marks = t0 + np.arange(k + 1, dtype=np.int64) * period_ns
    if len(equity):
        ts = equity["ts"].to_numpy(np.int64)
        eq = equity["equity"].to_numpy(np.float64)
        i = np.searchsorted(ts, marks, side="right") - 1
        vals = np.where(i >= 0, eq[np.clip(i, 0, None)], initial)
    else:
        vals = np.full(marks.size, initial)
    return vals[1:] / vals[:-1] - 1.0


def _fig(v: Any) -> float:
    return float(v) if v is not None and math.isfinite(float(v)) else 0.0


def evaluate(
    cfg: Config,
    data: EvalData,
    on_window: Callable[[int, dict[str, list[float]]], None] | None = None,
) -> Evaluation:
    """Backtest ``cfg`` on every window of ``data`` (module docstring). ``on_window(k, figures so far)``
    runs after each window (a pruner raises from it)."""
    initial = cfg.backtest.initial_equity
    rows: list[dict[str, Any]] = []
    rets: list[np.ndarray] = []
    figs: dict[str, list[float]] = {"sharpe": [], "sortino": [], "calmar": [], "net_pnl": []}
    for k, (w, market, feats) in enumerate(data.items()):
        if market.n_book and int(market.b_ts[-1]) >= data.limit_ns:  # the held-back period stays unseen
            raise AssertionError(f"window {w.window} reads events at or after {data.limit_ns}")
        sig = make_signals(feats, w.probs, cfg.strategy)
        res = run_backtest(market, sig, data.instrument, cfg.backtest, cfg.strategy, cfg.risk, cfg.execution)
        m = compute_metrics(res.equity, res.trades, res.fills, res.rejections, initial)
        row = {
            "window": w.window,
            "start_ns": w.start_ns,
            "end_ns": w.end_ns,
            "trades": int(m["trades"]),
            "net_pnl": _fig(m["net_pnl"]),
            "fees": _fig(m["fees"]),
            "sharpe": _fig(m["sharpe"]),
            "sortino": _fig(m["sortino"]),
            "calmar": _fig(m["calmar"]),
            "max_drawdown": _fig(m["max_drawdown"]),
        }
        rows.append(row)
        for name in figs:
            figs[name].append(row[name])
        rets.append(_period_returns(res.equity, w.start_ns, w.end_ns, data.period_ns, initial))
        if on_window is not None:
            on_window(k, figs)
    return Evaluation(
        windows=rows,
        returns=np.concatenate(rets) if rets else np.zeros(0),
        trades=sum(r["trades"] for r in rows),
        net_pnl=float(sum(r["net_pnl"] for r in rows)),
        max_drawdown=max((r["max_drawdown"] for r in rows), default=0.0),
        figures=figs,
    )


def evaluate_point(
    base: Config,
    values: dict[str, Any],
    data: EvalData,
    settings: StudySettings,
    on_window: Callable[[int, dict[str, list[float]]], None] | None = None,
) -> tuple[Evaluation, dict[str, Any]]:
    """One trial's point, wherever it runs (in this process, or in a Ray task:
    :mod:`orderflow.optimize.distributed`): ``values`` set on ``base`` (:class:`InvalidPoint` when the
    models refuse the combination), then :func:`evaluate` on ``data``. Returns the evaluation and the
    user attributes the trial keeps: ``eval`` (its point, windows, returns and totals) and
    ``constraint`` (the trade-count gap, <= 0 feasible)."""
    cfg = apply_values(base, values)
    ev = evaluate(cfg, data, on_window)
    attrs = {
        "eval": {
            "values": values,
            "windows": ev.windows,
            "trades": ev.trades,
            "net_pnl": ev.net_pnl,
            "max_drawdown": ev.max_drawdown,
            "returns": [float(x) for x in ev.returns],
        },
        "constraint": [float(settings.min_trades - ev.trades)],
    }
    return ev, attrs


def record(trial: Any, attrs: dict[str, Any]) -> None:
    """Keep the attributes of :func:`evaluate_point` on a live trial, and its constraint."""
    for key, value in attrs.items():  # one write each: a user attribute is one RDB transaction
        trial.set_user_attr(key, value)
    if hasattr(trial, "set_constraint"):  # Optuna >= 5 (before: the samplers' constraints_func)
        trial.set_constraint("min_trades", attrs["constraint"][0])


def record_failure(trial: Any, reason: str) -> None:
    """Why a trial failed (an :class:`InvalidPoint`'s message), as its ``fail_reason`` system attribute
    (the report's ``reason`` column); the caller then fails the trial."""
    trial.study._storage.set_trial_system_attr(trial._trial_id, "fail_reason", reason)


class Objective:
    """The Optuna objective: sample a point of ``space``, :func:`evaluate_point` it on ``data`` with
    ``base`` for the keys not searched, :func:`record` what it keeps. A point the models refuse fails
    the trial with its reason."""

    def __init__(
        self,
        space: SearchSpace,
        base: Config,
        data: EvalData,
        recompute: Callable[[dict[str, Any]], EvalData] | None = None,
    ) -> None:
        self.space, self.base, self.data, self.recompute = space, base, data, recompute
        self.settings = space.settings

    def data_for(self, values: dict[str, Any]) -> EvalData:
        """The search data a point is scored on: the cached level (a) data, or, when the space searches
        feature, label or model keys, what :mod:`orderflow.optimize.recompute` builds for them."""
        return self.data if self.recompute is None else self.recompute(values)

    def __call__(self, trial: Any) -> float | tuple[float, float]:
        import optuna

        values = self.space.sample(trial)
        prune = not self.space.multi_objective and self.settings.pruner != "none"
        name = self.settings.objective

        data = self.data  # the point's own (level (b)) once data_for has run

        def on_window(k: int, figs: dict[str, list[float]]) -> None:
            if prune and k < data.n_windows - 1:
                trial.report(combine(figs[name], 0.0), k)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after window {k + 1}/{data.n_windows}")

        try:
            data = self.data_for(values)
            ev, attrs = evaluate_point(self.base, values, data, self.settings, on_window)
        except InvalidPoint as e:  # the study records the trial as failed (run_study catches it)
            record_failure(trial, str(e))
            raise
        record(trial, attrs)
        return ev.score(self.settings)


def constraints_func() -> Callable[[Any], tuple[float, ...]] | None:
    """The samplers' ``constraints_func`` on an Optuna without ``Trial.set_constraint`` (< 5), else
    None (the objective sets the constraint on the trial)."""
    import optuna

    return None if hasattr(optuna.trial.Trial, "set_constraint") else constraints


def constraints(trial: Any) -> tuple[float, ...]:
    """Optuna's ``constraints_func``: the trade-count constraint (<= 0 feasible); a trial that never
    reached its end (pruned, failed) has none and counts as feasible to the sampler only."""
    return tuple(trial.user_attrs.get("constraint", (0.0,)))
