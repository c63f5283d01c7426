# ruff: noqa: E501 - HTML and CSS templates read better unwrapped
"""Write a period report: ``report.html`` (figures and plots), ``report.json`` (every figure; amounts as
exact strings) and, when Debian's Chromium is there, ``report.pdf`` printed from the HTML."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

from orderflow.reports.build import plain
from orderflow.reports.render_model import _grid, model_html
from orderflow.reports.render_model import _kv as _table

log = logging.getLogger(__name__)
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _money(x: Any, d: int = 2) -> str:
    if x is None:
        return "–"
    return f"{float(x):,.{d}f}"


def _pct(x: Any, d: int = 1) -> str:
    return "–" if x is None else f"{100 * float(x):.{d}f}%"


def _num(x: Any, d: int = 2) -> str:
    return "–" if x is None else f"{float(x):,.{d}f}"


def _plot(rep: dict[str, Any]) -> str:
    """Equity (capital + PnL) and drawdown over the period, as an embedded PNG; '' without data."""
    curve = rep["equity"]["pnl_curve"]
    if not curve["minute"]:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.array(curve["minute"]) / 60.0
    eq = rep["equity"]["capital"] + np.array(curve["pnl"])
    peak = np.maximum.accumulate(eq)
    dd = (eq - peak) / peak * 100
    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    a.plot(m, eq, color="#1f6feb", lw=1.6)
    a.set_ylabel("equity")
    a.ticklabel_format(axis="y", useOffset=False, style="plain")
    a.grid(alpha=0.3)
    b.fill_between(m, dd, 0, color="#d1242f", alpha=0.3)
    b.plot(m, dd, color="#d1242f", lw=1)
    b.set_ylabel("drawdown %")
    b.set_xlabel(f"hours since {rep['period']['start'][:16].replace('T', ' ')} UTC")
    b.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1f2328; margin: 28px auto; max-width: 980px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 26px 0 8px; border-bottom: 1px solid #d0d7de; }
.muted { color: #656d76; } .pos { color: #1a7f37; } .neg { color: #cf222e; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 12px; }
.card span { display: block; color: #656d76; font-size: 11px; text-transform: uppercase; letter-spacing: .4px; }
.card b { font-size: 18px; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.kv th { text-align: left; font-weight: 500; color: #656d76; padding: 2px 18px 2px 0; }
table.grid { width: 100%; } table.grid th, table.grid td { padding: 3px 8px; border-bottom: 1px solid #eaeef2; text-align: right; }
table.grid th:first-child, table.grid td:first-child { text-align: left; }
img { max-width: 100%; }
@media print { body { margin: 10mm; } h2 { break-after: avoid; } }
"""


def _alerts_html(a: dict[str, Any]) -> str:
    if not a.get("messages"):
        return "<p class='muted'>no alert in the period</p>"
    import time

    counts = _grid(
        ["rule", "opened", "resolved", "escalated"],
        [
            [html.escape(r), str(k.get("trigger", 0)), str(k.get("resolved", 0)), str(k.get("escalation", 0))]
            for r, k in a["by_rule"].items()
        ],
    )
    opened = _grid(
        ["time (UTC)", "severity", "incident"],
        [
            [time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(o["ts_ns"] / 1e9)), html.escape(o["severity"]),
             html.escape(o["title"])]
            for o in a["opened"][:50]
        ],
    )  # fmt: skip
    return counts + opened


def render_html(rep: dict[str, Any]) -> str:
    p, pnl, tr, ra = rep["period"], rep["pnl"], rep["trades"], rep["ratios"]
    net = float(pnl["net"])
    cards = "".join(
        f"<div class='card'><span>{k}</span><b class='{c}'>{v}</b></div>"
        for k, v, c in [
            ("net PnL", _money(pnl["net"]), "pos" if net > 0 else "neg" if net < 0 else ""),
            ("round trips", str(tr["count"]), ""),
            ("win rate", _pct(tr["win_rate"]), ""),
            ("max drawdown", _pct(ra["max_drawdown"], 2), ""),
        ]
    )
    img = _plot(rep)
    runs = (
        ", ".join(f"{r['id']} ({html.escape(r['mode'])}, {html.escape(r['symbols'])})" for r in rep["runs"])
        or "none"
    )
    parts = [
        f"<h1>orderflow {p['kind']} report · {p['label']}</h1>",
        f"<p class='muted'>{p['start'][:16].replace('T', ' ')} to {p['end'][:16].replace('T', ' ')} UTC · runs: {runs}"
        + (f" · run {rep['run']} only" if rep["run"] is not None else "")
        + "</p>",
        f"<div class='cards'>{cards}</div>",
        "<h2>PnL</h2>",
        _table(
            [
                ("gross (realised by the period's fills, FIFO)", _money(pnl["gross"], 4)),
                ("fees", _money(pnl["fees"], 4)),
                (
                    "funding",
                    _money(pnl["funding"], 4)
                    + f" <span class='muted'>({html.escape(pnl['funding_note'])})</span>",
                ),
                ("funding charged by the exchange", _money(pnl["funding_exchange"], 4)),
                (
                    "slippage against the decision mid",
                    (
                        _money(pnl["slippage"], 4) + f" over {pnl['slippage_fills']} fills "
                        if pnl["slippage"] is not None
                        else ""
                    )
                    + f"<span class='muted'>({html.escape(pnl['slippage_note'])})</span>",
                ),
                ("net", f"<b>{_money(pnl['net'], 4)}</b>"),
                ("cost share of gross PnL", _pct(rep["cost_share"])),
            ]
        ),
        "<h2>Trades</h2>",
        _table(
            [
                ("fills", str(rep["fills"])),
                ("traded notional", _money(rep["notional"])),
                ("round trips closed", str(tr["count"])),
                ("win rate", _pct(tr["win_rate"])),
                ("average win", _money(tr["avg_win"], 4)),
                ("average loss", _money(tr["avg_loss"], 4)),
                ("profit factor", _num(tr["profit_factor"])),
            ]
        ),
        "<h2>Risk-adjusted</h2>",
        _table(
            [
                ("Sharpe", _num(ra["sharpe"])),
                ("Sortino", _num(ra["sortino"])),
                ("max drawdown", _pct(ra["max_drawdown"], 3)),
                ("longest drawdown", f"{ra['max_drawdown_minutes']} min"),
                ("mean exposure", _money(rep["exposure"]["mean"])),
                ("turnover", _num(rep["exposure"]["turnover"])),
                ("annualisation", html.escape(ra["annualisation"])),
            ]
        ),
        f"<img alt='equity and drawdown' src='data:image/png;base64,{img}'>"
        if img
        else "<p class='muted'>no equity snapshot in the period</p>",
        "<h2>Rejections and risk</h2>",
        f"<p>accepted signals: {rep['accepted']}</p>",
        _grid(
            ["gate", "rejections"], [[html.escape(g), str(n)] for g, n in rep["rejections_by_gate"].items()]
        ),
        _grid(["risk rule", "events"], [[html.escape(r), str(n)] for r, n in rep["risk_by_rule"].items()]),
        "<h2>Alerts</h2>",
        _alerts_html(rep.get("alerts") or {}),
        "<h2>Per symbol</h2>",
        _grid(
            ["symbol", "fills", "notional", "gross", "fees", "slippage", "net", "round trips"],
            [
                [
                    html.escape(s),
                    str(v["fills"]),
                    _money(v["notional"]),
                    _money(v["gross"], 4),
                    _money(v["fees"], 4),
                    _money(v["slippage"], 4),
                    _money(v["net"], 4),
                    str(v["trips"]),
                ]
                for s, v in rep["by_symbol"].items()
            ],
        ),
        "<h2>Per day (UTC)</h2>",
        _grid(
            ["day", "fills", "gross", "fees", "net", "round trips"],
            [
                [
                    d,
                    str(v["fills"]),
                    _money(v["gross"], 4),
                    _money(v["fees"], 4),
                    _money(v["net"], 4),
                    str(v["trips"]),
                ]
                for d, v in rep["by_day"].items()
            ],
        ),
        model_html(rep),
    ]
    return f"<!doctype html><html><head><meta charset='utf-8'><title>orderflow {p['kind']} {p['label']}</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>"


def _chromium() -> str | None:
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    return None


def write_report(rep: dict[str, Any], out: Path, pdf: bool = True) -> dict[str, Path]:
    """Write report.html, report.json and (with Chromium) report.pdf into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "report.html", "json": out / "report.json"}
    paths["html"].write_text(render_html(rep))
    paths["json"].write_text(
        json.dumps(plain(rep), indent=2, default=lambda x: str(x) if isinstance(x, Decimal) else x)
    )
    exe = _chromium() if pdf else None
    if exe is not None:
        target = out / "report.pdf"
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--print-to-pdf={target}",
            "--no-pdf-header-footer",
            paths["html"].resolve().as_uri(),
        ]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
            paths["pdf"] = target
        except (subprocess.SubprocessError, OSError) as exc:
            log.warning("report.pdf not printed: %s", exc)
    return paths
