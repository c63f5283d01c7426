# ruff: noqa: E501 - HTML templates read better unwrapped
"""The HTML of a period report's model section: the figures of ``rep["model"]``
(:func:`orderflow.reports.build.build_report`) as tables and four embedded PNG plots in the style of
the equity plot (reliability and hit rate by decile; expected against realised EV and cost; the
rolling information coefficient; the largest feature drifts)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

BLUE, RED, GREEN, GREY, ORANGE = "#1f6feb", "#d1242f", "#1a7f37", "#656d76", "#bf8700"
CLASS_COLOURS = {"down": RED, "flat": GREY, "up": GREEN}


def _f(x: Any, d: int = 4) -> str:
    return "–" if x is None else f"{float(x):,.{d}f}"


def _pct(x: Any, d: int = 1) -> str:
    return "–" if x is None else f"{100 * float(x):.{d}f}%"


def _bp(x: Any, d: int = 2) -> str:
    return "–" if x is None else f"{1e4 * float(x):,.{d}f} bp"


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _img(alt: str, png: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{png}'>" if png else ""


def plot_calibration(m: dict[str, Any]) -> str:
    """Reliability (top label and per class, against the diagonal) and hit rate by confidence decile."""
    rel, dec = m["reliability"], m["hit_by_decile"]
    if not rel["bins"]:
        return ""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    a.plot([0, 1], [0, 1], color=GREY, lw=1, ls="--", label="perfect")
    for name, bins in rel["per_class"].items():
        if bins:
            a.plot([x["predicted"] for x in bins], [x["realised"] for x in bins], color=CLASS_COLOURS[name],
                   lw=1, marker=".", alpha=0.7, label=f"p({name})")  # fmt: skip
    xs = [x["predicted"] for x in rel["bins"]]
    ys = [x["realised"] for x in rel["bins"]]
    sizes = [12 + 120 * x["n"] / max(y["n"] for y in rel["bins"]) for x in rel["bins"]]
    a.plot(xs, ys, color=BLUE, lw=1.8, label=f"top label (ECE {m['reliability']['ece']:.3f})")
    a.scatter(xs, ys, s=sizes, color=BLUE, zorder=3)
    a.set_xlim(0, 1)
    a.set_ylim(0, 1)
    a.set_xlabel("predicted probability (bin mean)")
    a.set_ylabel("realised frequency")
    a.set_title("reliability (marker size: samples)", fontsize=10)
    a.grid(alpha=0.3)
    a.legend(fontsize=8, loc="upper left")
    d = [x["decile"] for x in dec]
    b.bar(d, [x["hit_rate"] for x in dec], color=BLUE, alpha=0.75, label="hit rate")
    b.plot(d, [x["confidence"] for x in dec], color=ORANGE, marker="o", lw=1.5, label="mean confidence")
    b.axhline(m["hit_rate"], color=GREY, lw=1, ls="--", label=f"all: {100 * m['hit_rate']:.1f}%")
    b.set_xticks(d)
    b.set_xlabel("confidence decile (1 = least confident)")
    b.set_ylabel("share")
    b.set_ylim(0, 1)
    b.set_title("hit rate of the top label by confidence decile", fontsize=10)
    b.grid(alpha=0.3, axis="y")
    b.legend(fontsize=8, loc="upper left")
    return _png(fig)


def plot_ev(m: dict[str, Any]) -> str:
    """Mean realised against mean expected EV per decile of expected EV; mean expected and realised
    cost of the traded and the untraded priced predictions (basis points of notional)."""
    ev = m["ev"]
    bins = ev["by_expected_decile"]
    if not bins:
        return ""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.0), gridspec_kw={"width_ratios": [1.5, 1]})
    x = [1e4 * v["ev_expected"] for v in bins]
    y = [1e4 * v["ev_realised"] for v in bins]
    lo, hi = min(x + y + [0.0]), max(x + y + [0.0])
    a.plot([lo, hi], [lo, hi], color=GREY, lw=1, ls="--", label="realised = expected")
    a.axhline(0, color=GREY, lw=0.8)
    a.plot(x, y, color=BLUE, marker="o", lw=1.5, label="decile means")
    a.set_xlabel("expected EV (bp of notional)")
    a.set_ylabel("realised EV, before costs (bp)")
    a.set_title("EV by decile of expected EV", fontsize=10)
    a.grid(alpha=0.3)
    a.legend(fontsize=8, loc="upper left")
    groups = [(k, ev[k]) for k in ("traded", "not_traded") if ev[k]["n"]]
    pos = range(len(groups))
    w = 0.38
    b.bar([p - w / 2 for p in pos], [1e4 * g["cost_expected"] for _, g in groups], w, color=ORANGE, alpha=0.8,
          label="expected")  # fmt: skip
    b.bar([p + w / 2 for p in pos], [1e4 * g["cost_realised"] for _, g in groups], w, color=RED, alpha=0.75,
          label="realised")  # fmt: skip
    b.set_xticks(list(pos))
    b.set_xticklabels([f"{k.replace('_', ' ')}\n(n={g['n']})" for k, g in groups])
    peak = max([g["cost_expected"] for _, g in groups] + [g["cost_realised"] for _, g in groups] + [0.0])
    b.set_ylim(0, 1e4 * peak * 1.3 or 1.0)  # room for the legend above the bars
    b.set_ylabel("round-trip cost (bp)")
    b.set_title("cost", fontsize=10)
    b.grid(alpha=0.3, axis="y")
    b.legend(fontsize=8, loc="upper center", ncol=2)
    return _png(fig)


def plot_ic(m: dict[str, Any], start_ns: int, start_label: str) -> str:
    """The rolling Spearman IC over the period."""
    ic = m["ic"]
    if not ic["ic"]:
        return ""
    plt = _pyplot()
    pts = [((t - start_ns) / 3.6e12, v) for t, v in zip(ic["ts_ns"], ic["ic"], strict=True) if v is not None]
    if not pts:
        return ""
    fig, a = plt.subplots(figsize=(10, 3.0))
    a.plot([p[0] for p in pts], [p[1] for p in pts], color=BLUE, lw=1.4, marker="." if len(pts) < 60 else None,
           label=f"rolling, {ic['window']} samples")  # fmt: skip
    a.axhline(0, color=GREY, lw=0.8)
    if ic["overall"] is not None:
        a.axhline(ic["overall"], color=ORANGE, lw=1.2, ls="--", label=f"whole period {ic['overall']:+.3f}")
    a.set_ylim(-1, 1)
    a.set_ylabel("Spearman IC")
    a.set_xlabel(f"hours since {start_label} UTC")
    a.grid(alpha=0.3)
    a.legend(fontsize=8, loc="lower left")
    return _png(fig)


def plot_drift(m: dict[str, Any]) -> str:
    """The largest PSIs, with the usual 0.1 and 0.25 marks."""
    top = m["drift"]["top"]
    if not top:
        return ""
    plt = _pyplot()
    fig, a = plt.subplots(figsize=(10, max(2.2, 0.9 + 0.32 * len(top))))
    names = [t["name"] for t in top][::-1]
    vals = [t["psi"] for t in top][::-1]
    colours = [RED if v > 0.25 else ORANGE if v > 0.1 else GREEN for v in vals]
    a.barh(names, vals, color=colours, alpha=0.85)
    for v, lab in ((0.1, "0.1"), (0.25, "0.25")):
        a.axvline(v, color=GREY, lw=1, ls="--")
        a.text(v, len(names) - 0.4, f" {lab}", color=GREY, fontsize=8, va="bottom")
    a.set_xlabel("PSI against the reference")
    a.grid(alpha=0.3, axis="x")
    return _png(fig)


def _kv(rows: list[tuple[str, str]]) -> str:
    return (
        "<table class='kv'>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
        + "</table>"
    )


def _grid(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p class='muted'>none</p>"
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='grid'><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def model_html(rep: dict[str, Any]) -> str:
    """The model section (``<h2>Model</h2>`` and what follows)."""
    m = rep.get("model")
    parts = ["<h2>Model</h2>"]
    if m is None:
        parts.append(
            "<p class='muted'>no prediction journaled in the period (no model served, or a run from before journal migration 0003)</p>"
        )
        return "".join(parts)
    versions = ", ".join(f"{html.escape(v)} ({n})" for v, n in m["versions"].items())
    parts.append(
        f"<p class='muted'>{m['predictions']} predictions, {m['resolved']} with an outcome ({m['unresolved']} without: their horizon outlived the run); versions: {versions}; horizon {', '.join(f'{h:g} s' for h in m['horizon_s'])}</p>"
    )
    if m["resolved"]:
        b = m["baseline"]
        cc = m["class_counts"]
        parts.append(
            _kv(
                [
                    ("realised labels (down / flat / up)", f"{cc['down']} / {cc['flat']} / {cc['up']}"),
                    (
                        "Brier score (model / baseline)",
                        f"{_f(m['brier'])} / {_f(b['brier'])} <span class='muted'>(skill {_f(m['brier_skill'], 3)})</span>",
                    ),
                    (
                        "log loss (model / baseline)",
                        f"{_f(m['log_loss'])} / {_f(b['log_loss'])} <span class='muted'>(skill {_f(m['log_loss_skill'], 3)})</span>",
                    ),
                    (
                        "baseline",
                        f"{html.escape(b['name'])} <span class='muted'>({html.escape(b['note'])})</span>",
                    ),
                    (
                        "ECE (top label) / classwise ECE",
                        f"{_f(m['reliability']['ece'])} / {_f(m['reliability']['classwise_ece'])}",
                    ),
                    ("hit rate of the top label", _pct(m["hit_rate"])),
                    (
                        "information coefficient (whole period / mean rolling)",
                        f"{_f(m['ic']['overall'], 3)} / {_f(m['ic']['mean_rolling'], 3)} <span class='muted'>(Spearman of {m['ic']['score']} vs the {m['ic']['target']}; window {m['ic']['window']} samples)</span>",
                    ),
                ]
            )
        )
        parts.append(_img("reliability and hit rate by confidence decile", plot_calibration(m)))
        parts.append(
            _grid(
                ["confidence decile", "samples", "confidence range", "mean confidence", "hit rate"],
                [
                    [
                        str(d["decile"]),
                        str(d["n"]),
                        f"{d['conf_lo']:.3f}–{d['conf_hi']:.3f}",
                        f"{d['confidence']:.3f}",
                        _pct(d["hit_rate"]),
                    ]
                    for d in m["hit_by_decile"]
                ],
            )
        )
        ev = m["ev"]
        parts.append("<h2>Expected and realised EV and cost</h2>")
        parts.append(f"<p class='muted'>{html.escape(ev['note'])}</p>")
        rows = []
        for k, label in (("traded", "sent an order"), ("not_traded", "sent none"), ("all", "all priced")):
            g = ev[k]
            if not g["n"]:
                rows.append([label, "0", "–", "–", "–", "–", "–", "–"])
                continue
            rows.append(
                [
                    label,
                    str(g["n"]),
                    _bp(g["ev_expected"]),
                    _bp(g["ev_realised"]),
                    _bp(g["cost_expected"]),
                    _bp(g["cost_realised"]),
                    _bp(g["net_expected"]),
                    _bp(g["net_realised"]),
                ]
            )
        parts.append(
            _grid(
                [
                    "predictions",
                    "n",
                    "EV expected",
                    "EV realised",
                    "cost expected",
                    "cost realised",
                    "net expected",
                    "net realised",
                ],
                rows,
            )
        )
        if ev["without_reference"]:
            parts.append(
                f"<p class='muted'>{ev['without_reference']} traded predictions left out: their fills carry no decision mid</p>"
            )
        parts.append(_img("expected and realised EV and cost", plot_ev(m)))
        parts.append("<h2>Information coefficient</h2>")
        start = rep["period"]["start"][:16].replace("T", " ")
        import datetime as dt

        from orderflow.reports.periods import NS

        start_ns = int(dt.datetime.fromisoformat(rep["period"]["start"]).timestamp()) * NS
        ic_png = plot_ic(m, start_ns, start)
        parts.append(
            _img("rolling information coefficient", ic_png)
            or "<p class='muted'>too few samples for a rolling IC (20 at least)</p>"
        )
    d = m["drift"]
    parts.append("<h2>Feature drift</h2>")
    parts.append(
        f"<p class='muted'>reference: {html.escape(d['reference'])}; {html.escape(d['rule_of_thumb'])}</p>"
    )
    for version, v in d["versions"].items():
        if "skipped" in v:
            parts.append(
                f"<p class='muted'>{html.escape(version)}: {v['n_ref']} reference and {v['n_cur']} compared vectors: {html.escape(v['skipped'])}</p>"
            )
    parts.append(_img("feature drift (PSI)", plot_drift(m)))
    parts.append(
        _grid(
            ["feature", "version", "PSI"],
            [[html.escape(t["name"]), html.escape(t["version"]), _f(t["psi"], 3)] for t in d["top"]],
        )
    )
    parts.append("".join(f"<p class='muted'>{html.escape(n)}</p>" for n in m["notes"]))
    return "".join(parts)
