"""The report of a backtest of several symbols in one book (:mod:`orderflow.backtest.portfolio`).

``metrics.json`` has a ``portfolio`` section (the metrics of the book's equity, every round trip and
fill of every symbol, the summed refusals, and the book's own figures: allocation groups, covariance
bars, entries each book rule bound), a ``symbols.<SYMBOL>`` section per symbol (its metrics as a
one-symbol report has them: its equity being the initial equity plus its own PnL), the ``correlation``
matrix of the covariance at the end of the run and a ``budget`` summary (capital in use over time).
``trades.csv`` and ``fills.csv`` hold every symbol's rows with a ``symbol`` column; ``budget.csv`` the
risk budget's use over time.

``report.html`` shows the notes, a table per symbol, the book's metrics, the correlation matrix used
and the plots: the book's equity and drawdown, each symbol's PnL, the risk budget's use over time,
the correlation matrix, and the refusals.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orderflow.backtest import report as RP
from orderflow.backtest.metrics import compute_metrics, metrics_table
from orderflow.backtest.portfolio import BookResult

PLOTS = (
    ("equity_drawdown.png", "The book: equity and drawdown"),
    ("symbols_pnl.png", "PnL per symbol"),
    ("budget.png", "Risk budget in use over time"),
    ("correlation.png", "Correlation matrix used (EWMA, end of the run)"),
    ("rejections.png", "Refusals per gate / risk rule, all symbols"),
)
SYMBOL_COLUMNS = ("trades", "win_rate", "gross_pnl", "fees", "slippage", "net_pnl", "sharpe", "max_drawdown",
                  "exposure", "book_bound")  # fmt: skip


def book_metrics(res: BookResult, initial: float) -> dict[str, Any]:
    """``{"portfolio": ..., "symbols": {SYMBOL: ...}, "correlation": ..., "budget": ...}`` (module
    docstring)."""
    symbols: dict[str, Any] = {}
    for name, r in res.symbols.items():
        m = compute_metrics(r.equity, r.trades, r.fills, r.rejections, initial)
        m["book_bound"] = int(r.info["book_bound"])  # type: ignore[call-overload]
        m["events"] = r.events
        symbols[name] = m
    eq = book_equity_frame(res)
    port = compute_metrics(eq, all_rows(res, "trades"), all_rows(res, "fills"), res.rejections, initial)
    port.update({"symbols": len(res.symbols), "events": res.events, "seconds": res.seconds,
                 "allocation_groups": int(res.info["groups_allocated"]),
                 "covariance_bars": int(res.info["bars"]),
                 "book_bound": int(sum(int(s["book_bound"]) for s in symbols.values()))})  # fmt: skip
    cu = res.budget["capital_in_use"].to_numpy(np.float64) if len(res.budget) else np.zeros(1)
    corr = res.correlation
    return {
        "portfolio": port,
        "symbols": symbols,
        "correlation": {a: {b: _finite(corr.loc[a, b]) for b in corr.columns} for a in corr.index},
        "budget": {"capital_in_use_mean": float(cu.mean()), "capital_in_use_max": float(cu.max())},
    }


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def all_rows(res: BookResult, what: str) -> pd.DataFrame:
    """Every symbol's ``trades`` or ``fills``, a ``symbol`` column first, sorted by time."""
    frames = [getattr(r, what).assign(symbol=name) for name, r in res.symbols.items()]
    df = pd.concat(frames, ignore_index=True)
    df = df[["symbol", *[c for c in df.columns if c != "symbol"]]]
    key = "entry_ts" if what == "trades" else "ts"
    return df.sort_values([key, "symbol"], kind="stable").reset_index(drop=True)


def book_equity_frame(res: BookResult) -> pd.DataFrame:
    """The book's equity in the metrics' equity layout: ``position`` is the capital in use (a share of
    equity, so ``exposure`` is the time anything was held), ``price`` is not defined."""
    eq = res.equity.copy()
    b = res.budget
    eq["position"] = np.interp(eq["ts"], b["ts"], b["capital_in_use"]) if len(b) else 0.0
    eq["price"] = np.nan
    return eq


def _plot_symbols(res: BookResult, initial: float):
    fig = RP._figure(5.0)
    ax = fig.subplots()
    for name, r in res.symbols.items():
        e = r.equity
        RP._line(ax, e["ts"].to_numpy(), e["equity"].to_numpy(np.float64) - initial, lw=1.0, label=name,
                 drawstyle="steps-post")  # fmt: skip
    ax.axhline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_ylabel("PnL (quote), after fees and funding")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("Each symbol's PnL in the book")
    RP._time_axis(ax)
    return fig


def _plot_budget(res: BookResult, limits: Mapping[str, float]):
    fig = RP._figure(5.0)
    ax = fig.subplots()
    b = res.budget
    ts = b["ts"].to_numpy()
    cu = 100 * b["capital_in_use"].to_numpy(np.float64)
    RP._line(ax, ts, cu, color="k", lw=1.2, label="capital in use", drawstyle="steps-post")
    for name in res.symbols:
        RP._line(ax, ts, 100 * b[f"{name}_exposure"].to_numpy(np.float64), lw=0.8, alpha=0.8,
                 label=f"{name} exposure (signed)", drawstyle="steps-post")  # fmt: skip
    for key, style in (("max_capital_in_use", "--"), ("max_position", ":")):
        if key in limits:
            ax.axhline(
                100 * limits[key], color="#c8363d", lw=0.8, ls=style, label=f"{key} {100 * limits[key]:g}%"
            )
    ax.set_ylabel("% of the book's equity")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("Risk budget in use: gross capital, and each symbol's signed exposure")
    RP._time_axis(ax)
    return fig


def _plot_correlation(corr: pd.DataFrame):
    fig = RP._figure(4.5, 6.0)
    ax = fig.subplots()
    m = corr.to_numpy(np.float64)
    im = ax.imshow(np.nan_to_num(m), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(corr)), corr.columns, rotation=30)
    ax.set_yticks(range(len(corr)), corr.index)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m[i, j]
            color = "white" if np.isfinite(v) and abs(v) > 0.6 else "black"
            ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", color=color)
    fig.colorbar(im, ax=ax)
    ax.set_title("correlation of bar returns")
    return fig


def _table(df: pd.DataFrame) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(str(c))}</th>" for c in df.columns)

    def cell(v: Any) -> str:
        return f"<td>{esc(RP._num(v) if isinstance(v, float) else str(v))}</td>"

    body = "\n".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>\n{body}</table>"


def write_book_report(
    out_dir: str | Path,
    res: BookResult,
    initial: float,
    title: str,
    notes: str | None = None,
    limits: Mapping[str, float] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write the report of ``res`` (module docstring) into ``out_dir``; ``limits`` are the risk limits
    drawn on the budget plot. Returns the path of ``report.html`` and the metrics written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = book_metrics(res, initial)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n")
    all_rows(res, "trades").to_csv(out / "trades.csv", index=False)
    all_rows(res, "fills").to_csv(out / "fills.csv", index=False)
    res.budget.to_csv(out / "budget.csv", index=False)
    eq = book_equity_frame(res)
    figures = (RP._plot_equity(eq, metrics["portfolio"]), _plot_symbols(res, initial),
               _plot_budget(res, limits or {}), _plot_correlation(res.correlation),
               RP._plot_rejections(res.rejections))  # fmt: skip
    for (name, _), fig in zip(PLOTS, figures, strict=True):
        fig.savefig(out / name, format="png")
    per = pd.DataFrame(
        [{"symbol": s, **{c: m.get(c) for c in SYMBOL_COLUMNS}} for s, m in metrics["symbols"].items()]
    )
    esc = html.escape
    paras = [p.strip() for p in (notes or "").split("\n\n") if p.strip()]
    rows = "\n".join(f"<tr><td>{esc(n)}</td><td>{esc(v)}</td></tr>"
                     for n, v in metrics_table(metrics["portfolio"]).itertuples(index=False))  # fmt: skip
    figs = RP.figures_html(out, PLOTS)
    page = out / "report.html"
    page.write_text(f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; }} td {{ text-align: right; font-family: monospace; }}
td:first-child {{ text-align: left; }} img {{ max-width: 100%; }} figure {{ margin: 1.5em 0; }}
.notes {{ background: #f4f4f4; padding: 0.5em 1em; }}
</style></head><body>
<h1>{esc(title)}</h1>
<section class="notes"><h2>Notes</h2>{"".join(f"<p>{esc(p)}</p>" for p in paras) or "<p>(none)</p>"}</section>
<section><h2>Per symbol</h2><p>Each symbol's figures in the book (its equity: the initial equity plus its
own PnL). <code>book_bound</code>: entries refused or cut by a rule of the book (capital in use,
correlation budget, the book's VaR, allocation, the book's breakers).</p>{_table(per)}</section>
<section><h2>Correlation matrix used</h2>{_table(res.correlation.reset_index(names="symbol"))}</section>
<section><h2>The book</h2><p>Raw values in <a href="metrics.json">metrics.json</a>.</p><table>
{rows}
</table></section>
{"".join(figs)}
</body></html>
""")
    return page, metrics
