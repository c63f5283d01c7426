"""HTML report of one backtest run: ``metrics.json``, ``trades.csv``, ``fills.csv``, five PNG plots and
``report.html``.

The plots are drawn with matplotlib's Agg canvas on ``matplotlib.figure.Figure`` objects, without
pyplot, so importing or calling this module never changes the process-wide matplotlib backend and
leaves no open figures. Times are plotted in UTC. Price and equity lines are decimated to at most
:data:`MAX_LINE_POINTS` points, keeping the first and last point and the minimum and maximum of every
bucket, so a 24-hour tick series draws in about a second and keeps its spikes.

``report.html`` embeds every PNG as base64 (it opens from the file system, and can be moved or mailed
alone) and links each PNG file next to it.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from orderflow.backtest.metrics import (
    metrics_table,
    validate_equity,
    validate_fills,
    validate_rejections,
    validate_trades,
)

MAX_LINE_POINTS = 5_000
PLOTS = (
    ("equity_drawdown.png", "Equity and drawdown"),
    ("trades.png", "Trades on price"),
    ("pnl_hist.png", "Net PnL per trade"),
    ("rejections.png", "Rejections per gate / risk rule"),
    ("regimes.png", "Results per regime"),
)
WIN, LOSS, NEUTRAL = "#2a9d3f", "#c8363d", "#3b6ea8"


def decimate_indices(y: np.ndarray, max_points: int = MAX_LINE_POINTS) -> np.ndarray:
    """Sorted indices of at most ``max_points`` points of ``y`` (>= 4) for drawing a line: the first,
    the last, and the argmin and argmax of each of ``(max_points - 2) // 2`` equal buckets."""
    if max_points < 4:
        raise ValueError(f"decimate_indices: max_points must be >= 4, got {max_points}")
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n <= max_points:
        return np.arange(n)
    size = -(-n // ((max_points - 2) // 2))
    nb = -(-n // size)
    padded = np.concatenate([y, np.full(nb * size - n, y[-1])]).reshape(nb, size)
    base = np.arange(nb) * size
    lo = np.minimum(base + padded.argmin(axis=1), n - 1)
    hi = np.minimum(base + padded.argmax(axis=1), n - 1)
    return np.unique(np.concatenate(([0, n - 1], lo, hi)))


def _dt(ts: np.ndarray) -> np.ndarray:
    return np.asarray(ts, dtype=np.int64).view("datetime64[ns]")


def _time_axis(ax: Any) -> None:
    loc = mdates.AutoDateLocator(tz=mdates.UTC)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=mdates.UTC))
    ax.set_xlabel("time (UTC)")


def _widen(ax: Any, ts: np.ndarray) -> None:
    """A run of one instant: show half an hour either side instead of matplotlib's years."""
    if ts.size and ts[-1] == ts[0]:
        t0, half = _dt(ts[:1])[0], np.timedelta64(30 * 60, "s")
        ax.set_xlim(t0 - half, t0 + half)


def _say(ax: Any, text: str, y: float = 0.5) -> None:
    ax.text(0.5, y, text, transform=ax.transAxes, ha="center", va="center", fontsize=14, color="0.4")


def _figure(h: float = 5.0, w: float = 11.0) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _line(ax: Any, ts: np.ndarray, y: np.ndarray, **kw: Any) -> None:
    ok = np.isfinite(y)
    ts, y = ts[ok], y[ok]
    if y.size == 0:
        return
    i = decimate_indices(y)
    ax.plot(_dt(ts[i]), y[i], marker="o" if y.size == 1 else None, **kw)


def _plot_equity(eq: pd.DataFrame, metrics: Mapping[str, Any]) -> Figure:
    fig = _figure(6.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    ts, e = eq["ts"].to_numpy(), eq["equity"].to_numpy(dtype=np.float64)
    _line(top, ts, e, color=NEUTRAL, lw=1.0, label="equity", drawstyle="steps-post")
    start = metrics.get("initial_equity")
    if start is not None:
        top.axhline(start, color="0.5", lw=0.8, ls="--", label="initial equity")
    top.set_ylabel("equity (quote)")
    top.ticklabel_format(axis="y", useOffset=False, style="plain")
    top.legend(loc="best")
    top.set_title(f"Equity: return {_num(metrics.get('return_pct'))} %, sharpe {_num(metrics.get('sharpe'))}")
    dd = -100.0 * (1.0 - e / np.maximum.accumulate(e))
    i = decimate_indices(dd)
    bottom.fill_between(_dt(ts[i]), dd[i], 0.0, color=LOSS, alpha=0.4, lw=0, step="post")
    bottom.plot(_dt(ts[i]), dd[i], color=LOSS, lw=0.8, drawstyle="steps-post")
    bottom.set_ylabel("drawdown (%)")
    bottom.set_title(f"Drawdown: max {_num(100 * (metrics.get('max_drawdown') or 0.0))} %")
    if ts[-1] == ts[0]:
        _say(top, "single equity sample", y=0.75)
        _widen(bottom, ts)
    _time_axis(bottom)
    return fig


def _plot_trades(eq: pd.DataFrame, tr: pd.DataFrame, fl: pd.DataFrame) -> Figure:
    fig = _figure(6.0)
    ax = fig.subplots()
    _line(ax, eq["ts"].to_numpy(), eq["price"].to_numpy(dtype=np.float64), color="0.35", lw=0.8, label="mid")
    if len(fl) and len(fl) <= 20_000:
        buy = fl["side"].to_numpy() > 0
        for mask, name, color in ((buy, "buy fills", "#5b8fd9"), (~buy, "sell fills", "#e39b3b")):
            sub = fl[mask]
            ax.scatter(_dt(sub["ts"].to_numpy()), sub["price"], s=4, color=color, alpha=0.5, label=name)
    if len(tr) == 0:
        _say(ax, "no trades", y=0.75)
        _widen(ax, eq["ts"].to_numpy())
    else:
        ent, ext = _dt(tr["entry_ts"].to_numpy()), _dt(tr["exit_ts"].to_numpy())
        side = tr["side"].to_numpy()
        win = tr["net_pnl"].to_numpy(dtype=np.float64) > 0
        x0, x1 = mdates.date2num(ent), mdates.date2num(ext)
        segs = np.stack([np.column_stack([x0, tr["entry_px"]]), np.column_stack([x1, tr["exit_px"]])], axis=1)
        ax.add_collection(LineCollection(segs, colors=np.where(win, WIN, LOSS), lw=1.0, alpha=0.6))
        for mask, marker, name in ((side > 0, "^", "long entry"), (side < 0, "v", "short entry")):
            color = WIN if marker == "^" else LOSS
            ax.scatter(ent[mask], tr["entry_px"][mask], marker=marker, s=40, color=color, edgecolors="k",
                       linewidths=0.4, label=name, zorder=3)  # fmt: skip
        ax.scatter(ext, tr["exit_px"], marker="x", s=30, color="k", label="exit", zorder=3)
    ax.set_ylabel("price (quote)")
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_title(f"Trades on price: {len(tr)} round trips (line green = net win, red = net loss)")
    ax.legend(loc="upper left", fontsize=8)
    _time_axis(ax)
    return fig


def _plot_pnl_hist(tr: pd.DataFrame) -> Figure:
    fig = _figure(4.5)
    ax = fig.subplots()
    net = tr["net_pnl"].to_numpy(dtype=np.float64)
    if net.size == 0:
        _say(ax, "no trades")
    else:
        bins = int(min(60, max(10, np.sqrt(net.size))))
        ax.hist(net, bins=bins, color=NEUTRAL, alpha=0.8, edgecolor="white")
        ax.axvline(0.0, color="k", lw=0.8)
        ax.axvline(float(net.mean()), color=WIN if net.mean() > 0 else LOSS, ls="--", lw=1.0,
                   label=f"mean {net.mean():.4g}")  # fmt: skip
        ax.legend(loc="upper right")
    ax.set_xlabel("net PnL per trade (quote, after fees and funding)")
    ax.set_ylabel("trades")
    ax.set_title(f"Net PnL distribution ({net.size} trades)")
    return fig


def _plot_rejections(rej: Mapping[str, int]) -> Figure:
    items = sorted(((k, v) for k, v in rej.items() if v > 0), key=lambda kv: kv[1])
    fig = _figure(max(3.0, 1.0 + 0.3 * len(items)))
    ax = fig.subplots()
    if not items:
        _say(ax, "no rejections")
        ax.set_yticks([])
    else:
        names, counts = zip(*items, strict=True)
        bars = ax.barh(names, counts, color=[LOSS if n.startswith("risk") else NEUTRAL for n in names])
        ax.bar_label(bars, padding=3, fontsize=8)
        ax.margins(x=0.12)
    ax.set_xlabel("refused signals / orders (count)")
    ax.set_ylabel("gate or risk rule")
    ax.set_title(f"Rejections: {sum(rej.values())} in total")
    return fig


def _plot_regimes(metrics: Mapping[str, Any]) -> Figure:
    fig = _figure(4.5)
    left, right = fig.subplots(1, 2)
    per = metrics.get("per_regime") or {}
    if not per:
        msg = "no trades" if not metrics.get("trades") else "no regime labels on trades"
        for ax in (left, right):
            _say(ax, msg)
    else:
        names = list(per)
        net = [per[n]["net_pnl"] for n in names]
        left.bar(names, net, color=[WIN if v > 0 else LOSS for v in net])
        left.axhline(0.0, color="k", lw=0.8)
        right.bar(names, [per[n]["trades"] for n in names], color=NEUTRAL)
    left.set_xlabel("regime")
    left.set_ylabel("net PnL (quote)")
    left.set_title("Net PnL per regime")
    right.set_xlabel("regime")
    right.set_ylabel("trades")
    right.set_title("Trades per regime")
    return fig


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def figures_html(out: Path, plots: tuple[tuple[str, str], ...]) -> list[str]:
    """A ``<figure>`` per (PNG file in ``out``, caption): the image embedded as base64, linked by name."""
    esc = html.escape
    figs = []
    for name, caption in plots:
        data = base64.b64encode((out / name).read_bytes()).decode("ascii")
        img = f'<img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
        link = f'<figcaption><a href="{name}">{name}</a></figcaption>'
        figs.append(f"<figure><h2>{esc(caption)}</h2>{img}{link}</figure>")
    return figs


def _html(title: str, notes: str | None, metrics: Mapping[str, Any], out: Path) -> str:
    esc = html.escape
    rows = "\n".join(
        f"<tr><td>{esc(n)}</td><td>{esc(v)}</td></tr>"
        for n, v in metrics_table(metrics).itertuples(index=False)
    )
    paras = [p.strip() for p in (notes or "").split("\n\n") if p.strip()]
    notes_html = "".join(f"<p>{esc(p)}</p>" for p in paras) or "<p>(none)</p>"
    figs = figures_html(out, PLOTS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} td {{ border: 1px solid #ccc; padding: 2px 8px; }}
td:last-child {{ text-align: right; font-family: monospace; }} img {{ max-width: 100%; }}
figure {{ margin: 1.5em 0; }} .notes {{ background: #f4f4f4; padding: 0.5em 1em; }}
</style></head><body>
<h1>{esc(title)}</h1>
<section class="notes"><h2>Notes</h2>{notes_html}</section>
<section><h2>Metrics</h2><p>Definitions: <code>orderflow.backtest.metrics</code>; raw values in
<a href="metrics.json">metrics.json</a>.</p><table>
{rows}
</table></section>
{"".join(figs)}
</body></html>
"""


def write_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    equity: pd.DataFrame,
    trades: pd.DataFrame,
    fills: pd.DataFrame,
    rejections: Mapping[str, int],
    title: str,
    notes: str | None = None,
) -> Path:
    """Write ``metrics.json`` (indent 2, sorted keys), the round trips and fills behind it
    (``trades.csv``, ``fills.csv``; times in ns, floats exact), the PNGs of :data:`PLOTS` and
    ``report.html`` into ``out_dir`` (created if needed); return the path of ``report.html``.

    ``metrics`` is the dict of :func:`~orderflow.backtest.metrics.compute_metrics` for the same run;
    the frames follow that module's input contract. ``notes`` is free text (paragraphs split on blank
    lines), e.g. "out of sample, after fees and slippage: walk-forward test windows only".
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    eq, tr, fl = validate_equity(equity), validate_trades(trades), validate_fills(fills)
    rej = validate_rejections(rejections)
    text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False)
    (out / "metrics.json").write_text(text + "\n", encoding="utf-8")
    tr.to_csv(out / "trades.csv", index=False)
    fl.to_csv(out / "fills.csv", index=False)
    figures = (_plot_equity(eq, metrics), _plot_trades(eq, tr, fl), _plot_pnl_hist(tr),
               _plot_rejections(rej), _plot_regimes(metrics))  # fmt: skip
    for (name, _), fig in zip(PLOTS, figures, strict=True):
        fig.savefig(out / name, format="png")
    page = out / "report.html"
    page.write_text(_html(title, notes, metrics, out), encoding="utf-8")
    return page
