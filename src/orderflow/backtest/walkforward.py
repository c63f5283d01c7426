"""Walk-forward evaluation: train on one window, backtest the next, roll; one out-of-sample record.

For test window k = ``[t_k, t_k + test)``:

1. the members are fitted on the samples whose label *ends* before ``t_k`` (label spans never reach
   into the test window) and which start at or after ``t_k - train`` (``expanding`` keeps every earlier
   sample), then calibrated and exported as an ONNX bundle (``fit_bundle``);
2. the bundle scores every feature row of the window as a stream (state warmed on the
   ``context_rows`` rows before ``t_k``, features only) through ONNX Runtime, the same path as live;
3. the ensemble weights are the Hedge weights learnt on the test windows before k, updated after
   window k with the samples whose labels ended inside it (no label from the future);
4. the backtester replays the window's events with those probabilities; windows are chained into one
   equity curve (``combine_windows``).

Nothing in window k's trading depends on a label or a price after the moment it is used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orderflow.backtest.config import VenueAccountConfig, WalkForwardConfig
from orderflow.backtest.engine import Market, make_signals, run_backtest, venue_exchange
from orderflow.backtest.metrics import combine_windows, compute_metrics
from orderflow.core.instruments import Instrument
from orderflow.engine import funding as FU
from orderflow.engine.results import BacktestResult
from orderflow.execution.exec_config import ExecutionConfig
from orderflow.models.config import ModelsConfig
from orderflow.models.dataset import Dataset
from orderflow.models.ensemble import HedgeEnsemble
from orderflow.models.metrics import classification_metrics
from orderflow.models.train import fit_bundle
from orderflow.risk.config import RiskConfig
from orderflow.strategy.config import StrategyConfig

log = logging.getLogger(__name__)

NS = 1_000_000_000
H_NS = 3600 * NS


@dataclass
class WalkForwardResult:
    windows: list[dict[str, Any]]
    equity: pd.DataFrame
    trades: pd.DataFrame
    fills: pd.DataFrame
    rejections: dict[str, int]
    metrics: dict[str, Any]
    model_table: pd.DataFrame  # per window: out-of-sample log loss of each member and the ensemble
    seconds: float
    notes: list[str] = field(default_factory=list)


class WalkForwardError(ValueError):
    """The data cannot be walked forward with these windows (too short, or every window skipped)."""


def required_hours(wf: WalkForwardConfig) -> float:
    """The shortest span of data that holds one test window: the training window plus half a test
    window (a last window of at least half the length counts, :func:`window_spans`)."""
    return wf.train_hours + wf.test_hours / 2


def subset(ds: Dataset, keep: np.ndarray) -> Dataset:
    """The same rows with only the samples ``keep`` (positions into ``ds.sample_idx``)."""
    return Dataset(ds.X, ds.feature_names, ds.ts, ds.sample_idx[keep], ds.y[keep], ds.t_touch[keep],
                   ds.schema_hash)  # fmt: skip


def window_spans(t_start: int, t_end: int, wf: WalkForwardConfig) -> list[tuple[int, int]]:
    """``(start, end)`` of every test window after the first training window."""
    out = []
    t = t_start + int(wf.train_hours * H_NS)
    step = int(wf.test_hours * H_NS)
    while t + step // 2 <= t_end:  # a last window of at least half the length
        out.append((t, min(t + step, t_end)))
        t += step
    return out


@dataclass(frozen=True)
class WindowProbabilities:
    """The out-of-sample ensemble probabilities of one test window ``[start_ns, end_ns)``: feature rows
    ``r0:r1`` (the window's book events), scored by members fitted only on samples whose labels ended
    before ``start_ns``; ``model_row`` is the window's row of the walk-forward model table."""

    window: int
    start_ns: int
    end_ns: int
    r0: int
    r1: int
    probs: np.ndarray  # (r1 - r0, 3): classes -1, 0, +1
    train_samples: int
    train_from_ns: int
    train_labels_until_ns: int
    weights: dict[str, float]
    model_row: dict[str, Any]
    seconds: float  # training and scoring time


def iter_window_probabilities(
    features: pd.DataFrame,
    ds: Dataset,
    models: ModelsConfig,
    work_dir: Path,
    windows: list[tuple[int, int]],
    wf: WalkForwardConfig,
    mid: np.ndarray | None = None,
    say: Callable[[str], None] | None = None,
    notes: list[str] | None = None,
) -> Iterator[WindowProbabilities]:
    """Steps 1-3 of the module docstring for each test window of ``windows`` in turn (a skipped window
    adds a line to ``notes``); the backtest of step 4 is the caller's. The probabilities depend on the
    data, the features, the labels, the models and the windows only, never on the strategy, risk or
    execution settings, so a caller may cache them and backtest them many times."""
    from orderflow.models.serving import EnsembleModel

    say = say or (lambda s: log.info("%s", s))
    notes = [] if notes is None else notes
    fts = features["ts_event"].to_numpy(np.int64)
    ens = HedgeEnsemble(list(models.members), models.ensemble)
    sample_ts = ds.sample_ts
    for k, (ts0, ts1) in enumerate(windows):
        lo = 0 if wf.expanding else ts0 - int(wf.train_hours * H_NS)
        train = np.flatnonzero((sample_ts >= lo) & (ds.t_touch < ts0))
        if train.size < wf.min_train_samples or np.unique(ds.y[train]).size < 2:
            notes.append(f"window {k}: skipped, {train.size} training samples")
            say(notes[-1])
            continue
        tw = time.perf_counter()
        say(f"window {k + 1}/{len(windows)}: training on {train.size:,} samples")
        bundle = work_dir / f"window{k}"
        fit_bundle(subset(ds, train), models, bundle, f"walk-forward window {k}", ens.weight_of(), None, mid)
        model = EnsembleModel.from_bundle(bundle, ds.schema_hash)
        r0, r1 = np.searchsorted(fts, [ts0, ts1])
        c0 = max(0, int(r0) - model.context_rows)
        state = model.new_state()
        per = model.predict_members(ds.X[c0:r1], state)
        per = {n: p[r0 - c0 :] for n, p in per.items()}
        w = model.weights
        probs = sum(w[n] * per[n] for n in per)
        # out-of-sample classification metrics of the window's samples, then the Hedge update
        in_win = np.flatnonzero((sample_ts >= ts0) & (sample_ts < ts1))
        rows = ds.sample_idx[in_win] - r0
        row = {"window": k, "n_test": int(in_win.size)}
        if in_win.size:
            for n, p in per.items():
                row[n] = classification_metrics(p[rows], ds.y[in_win])["log_loss"]
            row["ensemble"] = classification_metrics(probs[rows], ds.y[in_win])["log_loss"]
            done = ds.t_touch[in_win] < ts1  # labels known by the end of the window
            if done.any():
                ens.update({n: p[rows[done]] for n, p in per.items()}, ds.y[in_win[done]])
        yield WindowProbabilities(k, ts0, ts1, int(r0), int(r1), np.asarray(probs), int(train.size),
                                  int(sample_ts[train].min()), int(ds.t_touch[train].max()), w, row,
                                  time.perf_counter() - tw)  # fmt: skip


def window_probabilities(
    features: pd.DataFrame,
    ds: Dataset,
    models: ModelsConfig,
    work_dir: Path,
    windows: list[tuple[int, int]],
    wf: WalkForwardConfig,
    mid: np.ndarray | None = None,
    say: Callable[[str], None] | None = None,
    notes: list[str] | None = None,
) -> list[WindowProbabilities]:
    """Every window of :func:`iter_window_probabilities` (the ones not skipped), in order."""
    return list(iter_window_probabilities(features, ds, models, work_dir, windows, wf, mid, say, notes))


def walk_forward(
    market: Market,
    features: pd.DataFrame,
    ds: Dataset,
    instrument: Instrument,
    models: ModelsConfig,
    work_dir: Path,
    wf: WalkForwardConfig | None = None,
    backtest: VenueAccountConfig | None = None,
    strategy: StrategyConfig | None = None,
    risk: RiskConfig | None = None,
    mid: np.ndarray | None = None,
    progress: Callable[[str], None] | None = None,
    execution: ExecutionConfig | None = None,
    funding: FU.FundingSchedule | None = None,
) -> WalkForwardResult:
    """Run the walk-forward backtest (module docstring). ``features`` has one row per book event of
    ``market`` (as ``build_features`` writes it) and ``ds`` is built from those rows; ``execution`` says
    how entries are sent and ``funding`` which funding rates are booked (both as in
    :func:`~orderflow.backtest.engine.run_backtest`); the metrics carry the funding figures of
    :func:`~orderflow.engine.funding.funding_summary` over all test windows."""
    wf = wf or WalkForwardConfig()
    strategy = strategy or StrategyConfig()
    say = progress or (lambda s: log.info("%s", s))
    t0 = time.perf_counter()
    fts = features["ts_event"].to_numpy(np.int64)
    if len(fts) != market.n_book or not np.array_equal(fts, market.b_ts):
        raise ValueError("walk_forward: the feature rows must be the market's book events, in order")
    windows = window_spans(int(market.b_ts[0]), int(market.b_ts[-1]), wf)
    if not windows:
        raise WalkForwardError(
            f"walk_forward: {(market.b_ts[-1] - market.b_ts[0]) / H_NS:.2f} h of data is too short for "
            f"{wf.train_hours} h of training plus half a {wf.test_hours} h test window"
        )
    results: list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, int]]] = []
    info: list[dict[str, Any]] = []
    fund: list[dict[str, Any]] = []
    table: list[dict[str, Any]] = []
    notes: list[str] = []
    for wp in iter_window_probabilities(features, ds, models, work_dir, windows, wf, mid, say, notes):
        k, ts0, ts1, r0, r1, probs = wp.window, wp.start_ns, wp.end_ns, wp.r0, wp.r1, wp.probs
        tw = time.perf_counter() - wp.seconds
        table.append(wp.model_row)
        mask = (market.b_ts >= ts0) & (market.b_ts < ts1)
        sig = make_signals(features.iloc[int(r0) : int(r1)], probs, strategy)
        res: BacktestResult = run_backtest(market.window(ts0, ts1), sig, instrument, backtest, strategy,
                                           risk, execution, funding)  # fmt: skip
        funding_info = res.info["funding"]
        assert isinstance(funding_info, dict)  # engine.funding.funding_summary's
        fund.append(funding_info)
        assert int(mask.sum()) == len(probs)
        results.append((res.equity, res.trades, res.fills, res.rejections))
        net = float(res.trades["net_pnl"].sum()) if len(res.trades) else 0.0
        info.append({"window": k, "start_ns": ts0, "end_ns": ts1, "train_samples": wp.train_samples,
                     "train_from_ns": wp.train_from_ns,
                     "train_labels_until_ns": wp.train_labels_until_ns, "trades": len(res.trades),
                     "net_pnl": net, "seconds": time.perf_counter() - tw, "weights": wp.weights})  # fmt: skip
        say(f"window {k + 1}/{len(windows)}: {len(res.trades)} trades, net PnL {net:,.2f} "
            f"({time.perf_counter() - tw:.0f} s)")  # fmt: skip
    if not results:
        raise WalkForwardError("walk_forward: every window was skipped: " + "; ".join(notes))
    equity, trades, fills, rejections = combine_windows(results)
    initial = (backtest or VenueAccountConfig()).initial_equity
    metrics = compute_metrics(equity, trades, fills, rejections, initial)
    _venue, x = venue_exchange(market, backtest or VenueAccountConfig())
    rate = x.funding_rate if x.perpetual else 0.0
    source = FU.describe(funding if rate else None, rate, x.funding_interval_ns, int(info[0]["start_ns"]),
                         int(info[-1]["end_ns"]))  # fmt: skip
    metrics.update(FU.combine_summaries(fund, source))
    return WalkForwardResult(info, equity, trades, fills, rejections, metrics, pd.DataFrame(table),
                             time.perf_counter() - t0, notes)  # fmt: skip
