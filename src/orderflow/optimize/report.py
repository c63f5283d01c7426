"""The study's report: ``report.json``, ``trials.csv``, PNG plots and ``report.html``.

Plots (matplotlib's Agg canvas on ``Figure`` objects, no pyplot, as :mod:`orderflow.backtest.report`):
the optimisation history (every trial's value, the best so far, pruned and infeasible trials marked),
the parameter importances (Optuna's fANOVA evaluator), parallel coordinates, the best trial and the
baseline (the config as given, no search) in the search's test windows and in the held-back period, the
CSCV logits behind the PBO with the in-sample winner's in- and out-of-sample Sharpe, the trials' Sharpe
ratios against the expected maximum SR0 of unskilled trials behind the DSR, the best trial's per-window
figures and its cumulative return path in each window against every trial's window returns, and the
Pareto front of a two-objective study. ``report.html`` embeds every PNG as base64.

Every trading figure in it is out of sample (walk-forward test windows, or the held-back period) and
after fees, spread, slippage and funding.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from orderflow.optimize import stats as ST
from orderflow.optimize.objective import Evaluation, combine
from orderflow.optimize.space import StudySettings
from orderflow.optimize.study import Analysis, Holdout, trial_eval, verdict

BEST, BASE, MUTED, BAD = "#3b6ea8", "#999999", "#cccccc", "#c8363d"


def _figure(h: float = 4.5, w: float = 10.0) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _say(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _history(study: Any, settings: StudySettings) -> Figure:
    from optuna.trial import TrialState

    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        _say(ax, "no complete trial")
        return fig
    feas = [t for t in done if all(c <= 0 for c in t.user_attrs.get("constraint", (1.0,)))]
    infeas = [t for t in done if t not in feas]
    v = lambda t: t.values[0]  # noqa: E731
    ax.scatter([t.number for t in feas], [v(t) for t in feas], s=14, color=BEST, label="complete")
    if infeas:
        ax.scatter(
            [t.number for t in infeas],
            [v(t) for t in infeas],
            s=14,
            color=BAD,
            marker="x",
            label=f"fewer than {settings.min_trades} trades",
        )
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    if pruned:
        last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
        ax.scatter([t.number for t in pruned], last, s=10, color=MUTED, label="pruned (last window mean)")
    if feas and len(study.directions) == 1:
        xs = sorted(t.number for t in feas)
        by = {t.number: v(t) for t in feas}
        ax.step(
            xs, np.maximum.accumulate([by[x] for x in xs]), where="post", color="black", label="best so far"
        )
    name = (
        "net PnL" if settings.objective == "pnl_dd" else f"{settings.objective}: mean - {settings.lam:g} std"
    )
    ax.set_xlabel("trial")
    ax.set_ylabel(name)
    ax.set_title("Optimisation history (out-of-sample test windows)")
    ax.legend(fontsize=8)
    return fig


def _importance(study: Any) -> tuple[Figure, dict[str, float]]:
    import optuna

    keys = {k for t in study.get_trials(deepcopy=False) for k in t.params}
    fig = _figure(h=max(2.5, 0.45 * len(keys) + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    imp: dict[str, float] = {}
    try:
        target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
        imp = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), target=target
        )
    except (RuntimeError, ValueError) as e:
        _say(ax, f"no importances: {e}")
        return fig, imp
    if not imp:
        _say(ax, "no importances (one parameter or too few trials)")
        return fig, imp
    names = list(imp)[::-1]
    ax.barh(names, [imp[n] for n in names], color=BEST)
    ax.set_xlabel("fANOVA importance (share of the objective's variance)")
    ax.set_title("Parameter importances")
    fig.subplots_adjust(left=0.35)
    return fig, dict(imp)


def _holdout(search_best: float, search_base: float, hold: Holdout | None, settings: StudySettings) -> Figure:
    fig = _figure(h=4.0, w=8.0)
    ax = fig.add_subplot(1, 1, 1)
    if hold is None:
        _say(ax, "no held-back period (study.holdout_fraction = 0)")
        return fig
    name = settings.objective if settings.objective != "pnl_dd" else "net_pnl"
    hb, hbase = _score(hold.best, settings), _score(hold.baseline, settings)
    x = np.arange(2)
    ax.bar(x - 0.2, [search_best, hb], 0.4, color=BEST, label="best trial")
    ax.bar(x + 0.2, [search_base, hbase], 0.4, color=BASE, label="baseline: the config as given")
    ax.set_xticks(x, ["in search (test windows)", f"held back ({hold.windows} window(s), seen once)"])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel(name if name == "net_pnl" else f"{name}: mean - {settings.lam:g} std")
    ax.set_title("In-search against held-back, after costs")
    ax.legend(fontsize=8)
    return fig


def _score(ev: Evaluation, settings: StudySettings) -> float:
    return (
        ev.net_pnl
        if settings.objective == "pnl_dd"
        else combine(ev.figures[settings.objective], settings.lam)
    )


def _pbo(analysis: Analysis) -> Figure:
    fig = _figure(h=4.0)
    a1, a2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    p = analysis.pbo
    if p is None:
        _say(a1, "PBO not computed")
        _say(a2, "; ".join(analysis.notes) or "-")
        return fig
    a1.hist(p.logits, bins=40, color=BEST)
    a1.axvline(0, color=BAD)
    a1.set_xlabel("logit of the in-sample winner's out-of-sample rank")
    a1.set_title(f"PBO = {p.pbo:.3f} ({p.n_combinations:,} CSCV splits, S = {p.blocks})")
    a2.scatter(p.is_best, p.oos_of_best, s=4, color=BEST, alpha=0.4)
    a2.axhline(0, color="black", lw=0.8)
    a2.set_xlabel("in-sample Sharpe of the winner (per period)")
    a2.set_ylabel("its out-of-sample Sharpe")
    a2.set_title("Performance degradation")
    fig.tight_layout()
    return fig


def _dsr(study: Any, analysis: Analysis) -> Figure:
    fig = _figure(h=4.0)
    ax = fig.add_subplot(1, 1, 1)
    d = analysis.dsr
    if d is None:
        _say(ax, "DSR not computed")
        return fig
    srs = [
        ST.sharpe(np.asarray(trial_eval(t)["returns"]))
        for t in study.get_trials(deepcopy=False)
        if trial_eval(t).get("returns")
    ]
    ax.hist(srs, bins=30, color=MUTED, label="trials' Sharpe (per period)")
    ax.axvline(d.sr0, color=BAD, label=f"SR0 = {d.sr0:.4f} (expected max of {d.n_effective:.1f} unskilled)")
    ax.axvline(d.sharpe, color=BEST, lw=2, label=f"best = {d.sharpe:.4f}")
    ax.set_title(f"Deflated Sharpe ratio = {d.dsr:.3f} (T = {d.n_obs}, skew {d.skew:.2f}, kurt {d.kurt:.2f})")
    ax.legend(fontsize=8)
    return fig


def _windows(best: Any, settings: StudySettings) -> Figure:
    fig = _figure(h=3.8)
    ax = fig.add_subplot(1, 1, 1)
    rows = trial_eval(best).get("windows") if best is not None else None
    if not rows:
        _say(ax, "no best trial")
        return fig
    name = settings.objective if settings.objective != "pnl_dd" else "net_pnl"
    vals = [r[name] for r in rows]
    x = np.arange(len(rows))
    ax.bar(x, vals, color=[BEST if v >= 0 else BAD for v in vals])
    ax.set_xticks(x, [str(r["window"]) for r in rows])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("walk-forward test window")
    ax.set_ylabel(name)
    ax.set_title(f"Best trial {best.number}: its out-of-sample windows")
    return fig


def window_paths(ev: dict[str, Any], period_minutes: float) -> list[np.ndarray]:
    """A trial's cumulative out-of-sample return path in each of its test windows (from its per-period
    returns on the ``period_minutes`` grid; the windows' periods lie end to end in ``returns``)."""
    rets = np.asarray(ev.get("returns") or [], dtype=np.float64)
    period_ns = int(period_minutes * 60e9)
    out, i = [], 0
    for w in ev.get("windows") or []:
        n = max(0, (int(w["end_ns"]) - int(w["start_ns"])) // period_ns)
        out.append(np.cumprod(1.0 + rets[i : i + n]) - 1.0)
        i += n
    return out


def path_summary(study: Any, best: Any, settings: StudySettings) -> dict[str, Any] | None:
    """The distribution of the best trial's out-of-sample paths: each window's final return, worst
    point and quantiles across windows, next to the same windows' final returns over every complete
    trial."""
    if best is None:
        return None
    paths = window_paths(trial_eval(best), settings.period_minutes)
    finals = [float(p[-1]) if p.size else 0.0 for p in paths]
    worst = [float(p.min()) if p.size else 0.0 for p in paths]
    every = [
        float(p[-1]) if p.size else 0.0
        for t in study.get_trials(deepcopy=False)
        if trial_eval(t).get("returns")
        for p in window_paths(trial_eval(t), settings.period_minutes)
    ]
    q = lambda a: {f"p{k}": float(np.percentile(a, k)) for k in (5, 25, 50, 75, 95)} if a else {}  # noqa: E731
    return {"final_return": finals, "worst_point": worst, "best_quantiles": q(finals),
            "all_trials_quantiles": q(every), "windows_positive": sum(f > 0 for f in finals)}  # fmt: skip


def _paths(study: Any, best: Any, settings: StudySettings) -> Figure:
    fig = _figure(h=4.0)
    a1, a2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    if best is None:
        _say(a1, "no best trial")
        _say(a2, "-")
        return fig
    step = settings.period_minutes
    paths = window_paths(trial_eval(best), step)
    for k, path in enumerate(paths):
        a1.plot(np.arange(1, path.size + 1) * step, 100 * path, lw=1, label=f"window {k}" if k < 8 else None)
    a1.axhline(0, color="black", lw=0.8)
    a1.set_xlabel("minutes into the test window")
    a1.set_ylabel("cumulative return, %")
    a1.set_title(f"Best trial {best.number}: its path in each window")
    if len(paths) <= 8:
        a1.legend(fontsize=7)
    s = path_summary(study, best, settings) or {}
    every = [
        float(p[-1]) for t in study.get_trials(deepcopy=False) if trial_eval(t).get("returns")
        for p in window_paths(trial_eval(t), step) if p.size
    ]  # fmt: skip
    a2.hist(100 * np.asarray(every), bins=30, color=MUTED, label="every trial's windows")
    for f in s.get("final_return", []):
        a2.axvline(100 * f, color=BEST, lw=1.5)
    a2.axvline(0, color="black", lw=0.8)
    a2.set_xlabel("window return, % (blue: the best trial's)")
    a2.set_title(f"{s.get('windows_positive', 0)} of {len(paths)} windows positive")
    a2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _parallel(study: Any) -> Figure:
    """One line per complete trial across its parameters (each scaled to the range the trials covered;
    a categorical key by its choice's position), coloured by the trial's first value."""
    from matplotlib import colormaps

    fig = _figure(h=4.5, w=11.0)
    ax = fig.add_subplot(1, 1, 1)
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.values]
    keys = sorted({k for t in done for k in t.params})
    if len(done) < 2 or not keys:
        _say(ax, "too few complete trials")
        return fig
    cols = []
    for k in keys:
        raw = [t.params.get(k) for t in done]
        given = [v for v in raw if v is not None]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in given):
            lo, hi = min(given), max(given)
            cols.append([np.nan if v is None else (v - lo) / (hi - lo) if hi > lo else 0.5 for v in raw])
        else:
            order = {c: i for i, c in enumerate(sorted({str(v) for v in given}))}
            n = max(len(order) - 1, 1)
            cols.append([np.nan if v is None else order[str(v)] / n for v in raw])
    vals = np.array([t.values[0] for t in done], dtype=np.float64)
    span = np.ptp(vals) or 1.0
    cmap = colormaps["viridis"]
    x = np.arange(len(keys))
    for i in np.argsort(vals):
        ax.plot(x, [c[i] for c in cols], color=cmap((vals[i] - vals.min()) / span), alpha=0.6, lw=1)
    ax.set_xticks(x, [k.split(".", 1)[1] for k in keys], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("position in the range tried")
    ax.set_title("Parallel coordinates (yellow: the highest values)")
    fig.tight_layout()
    return fig


def _pareto(study: Any, analysis: Analysis) -> Figure:
    fig = _figure(h=4.0, w=7.0)
    ax = fig.add_subplot(1, 1, 1)
    done = [t for t in study.get_trials(deepcopy=False) if t.values is not None and len(t.values) == 2]
    ax.scatter([t.values[1] for t in done], [t.values[0] for t in done], s=10, color=MUTED, label="trials")
    front = sorted(analysis.pareto, key=lambda t: t.values[1])
    ax.plot(
        [t.values[1] for t in front], [t.values[0] for t in front], "o-", color=BEST, label="Pareto front"
    )
    ax.set_xlabel("max drawdown (largest window)")
    ax.set_ylabel("net PnL after costs")
    ax.set_title("Pareto front")
    ax.legend(fontsize=8)
    return fig


def trials_frame(study: Any) -> pd.DataFrame:
    """Every trial: number, state, value(s), trades, net PnL, parameters and per-window figures."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        ev = trial_eval(t)
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name}
        for i, v in enumerate(t.values or []):
            row[f"value{i if i else ''}"] = v
        row["trades"], row["net_pnl"] = ev.get("trades"), ev.get("net_pnl")
        row.update({f"param:{k}": v for k, v in t.params.items()})
        for w in ev.get("windows", []):
            row[f"w{w['window']}:net_pnl"], row[f"w{w['window']}:sharpe"] = w["net_pnl"], w["sharpe"]
        if t.state.name == "FAIL":
            row["reason"] = t.system_attrs.get("fail_reason", "")
        rows.append(row)
    return pd.DataFrame(rows)


def _png(fig: Figure, path: Path) -> str:
    fig.savefig(path, format="png")
    return base64.b64encode(path.read_bytes()).decode()


def _num(v: Any) -> str:
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:,.4f}" if abs(v) < 1000 else f"{v:,.1f}"
    return "-" if v is None else html.escape(str(v))


def write_report(
    directory: Path,
    study: Any,
    analysis: Analysis,
    settings: StudySettings,
    search_base: Evaluation,
    hold: Holdout | None,
    meta: dict[str, Any],
) -> Path:
    """Write the report into ``directory`` (created); returns the path of ``report.html``."""
    directory.mkdir(parents=True, exist_ok=True)
    best = analysis.best
    search_best = float(best.values[0]) if best is not None else float("nan")
    base_score = _score(search_base, settings)
    imp_fig, imp = _importance(study)
    figs = [
        ("history.png", "Optimisation history", _history(study, settings)),
        ("importance.png", "Parameter importances", imp_fig),
        ("parallel.png", "Parallel coordinates", _parallel(study)),
        ("holdout.png", "In search against held back", _holdout(search_best, base_score, hold, settings)),
        ("pbo.png", "Probability of backtest overfitting", _pbo(analysis)),
        ("dsr.png", "Deflated Sharpe ratio", _dsr(study, analysis)),
        ("windows.png", "The best trial's out-of-sample windows", _windows(best, settings)),
        ("paths.png", "The best trial's out-of-sample paths", _paths(study, best, settings)),
    ]
    if len(study.directions) > 1:
        figs.append(("pareto.png", "Pareto front", _pareto(study, analysis)))
    why = verdict(analysis, settings)
    summary = {
        **meta,
        **analysis.summary(),
        "importances": imp,
        "verdict": why or "passes PBO and DSR thresholds",
        "search": {
            "best": search_best,
            "baseline": base_score,
            "baseline_net_pnl": search_base.net_pnl,
            "baseline_trades": search_base.trades,
        },
        "holdout": None
        if hold is None
        else {
            "best": _score(hold.best, settings),
            "baseline": _score(hold.baseline, settings),
            "best_net_pnl": hold.best.net_pnl,
            "baseline_net_pnl": hold.baseline.net_pnl,
            "best_trades": hold.best.trades,
            "baseline_trades": hold.baseline.trades,
            "best_windows": hold.best.windows,
            "windows": hold.windows,
            "looks": hold.looks,
        },
        "best_paths": path_summary(study, best, settings),
        "settings": settings.model_dump(),
    }
    (directory / "report.json").write_text(json.dumps(summary, indent=1, default=str))
    trials_frame(study).to_csv(directory / "trials.csv", index=False)
    imgs = "".join(
        f"<h2>{html.escape(title)}</h2><p><a href='{name}'>{name}</a></p>"
        f"<img src='data:image/png;base64,{_png(fig, directory / name)}'>"
        for name, title, fig in figs
    )
    keys = [
        "study",
        "sampler",
        "objective",
        "trials_complete",
        "trials_feasible",
        "trials_pruned",
        "trials_failed",
        "best_trial",
        "best_value",
        "best_trades",
        "best_net_pnl",
        "pbo",
        "dsr",
        "verdict",
    ]
    table = "".join(f"<tr><td>{k}</td><td>{_num(summary.get(k))}</td></tr>" for k in keys)
    rows = [("in search (test windows)", search_best, base_score)]
    if hold is not None:
        rows.append(
            (
                f"held back ({hold.windows} window(s), look {hold.looks})",
                summary["holdout"]["best"],
                summary["holdout"]["baseline"],
            )
        )
    comp = "".join(f"<tr><td>{a}</td><td>{_num(b)}</td><td>{_num(c)}</td></tr>" for a, b, c in rows)
    params = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_num(v)}</td></tr>" for k, v in analysis.best_values.items()
    )
    note = (
        "Every figure is out of sample and after fees, spread, slippage and funding: walk-forward test "
        "windows scored by models fitted only on samples whose labels ended before each window, and a "
        "held-back final period the search never saw. The baseline is the config as given, no search."
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>orderflow optimize</title><style>"
        "body{font-family:sans-serif;max-width:1050px;margin:auto}td{padding:2px 10px}img{max-width:100%}"
        f"</style></head><body><h1>orderflow optimize: {html.escape(str(meta.get('study')))}</h1>"
        f"<p>{note}</p><table>{table}</table><h2>Best against baseline</h2><table><tr><th></th>"
        f"<th>best trial</th><th>baseline</th></tr>{comp}</table><h2>Best parameters</h2><table>{params}"
        f"</table>{imgs}<p><a href='trials.csv'>trials.csv</a>: every trial's parameters and per-window "
        "figures; <a href='report.json'>report.json</a>.</p></body></html>"
    )
    out = directory / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
