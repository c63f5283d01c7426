"""Backtest HTML report: files, metrics.json round trip, embedded and linked plots, empty runs, decimation."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.backtest.metrics import compute_metrics
from orderflow.backtest.report import PLOTS, decimate_indices, write_report

NS = 1_000_000_000
T0 = 1_723_160_000 * NS
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_run(n: int = 2_000, k: int = 12, seed: int = 1):
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(n, dtype=np.int64) * 5 * NS
    px = 60_000.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, n)))
    pos = np.zeros(n)
    rows, fills = [], []
    starts = np.sort(rng.choice(np.arange(0, n - 20, 20), k, replace=False))
    for j, i in enumerate(starts):
        x, side, qty = i + 10, (1 if j % 3 else -1), 0.02
        pos[i:x] = side * qty
        gross = side * qty * (px[x] - px[i])
        fee = qty * (px[i] + px[x]) * 0.00002
        funding = 0.01 * side
        row = dict(entry_ts=ts[i], exit_ts=ts[x], side=side, qty=qty, entry_px=px[i], exit_px=px[x])
        row |= dict(gross_pnl=gross, fees=fee, slippage=0.05, funding=funding, net_pnl=gross - fee - funding)
        reason, regime = ("take_profit", "stop", "timeout")[j % 3], ("trend", "range")[j % 2]
        rows.append(row | dict(exit_reason=reason, regime=regime))
        fills.append((ts[i], side, qty, px[i], qty * px[i] * 0.00002, False))
        fills.append((ts[x], -side, qty, px[x], qty * px[x] * 0.00002, True))
    trades = pd.DataFrame(rows)
    pnl = np.zeros(n)
    for r in rows:
        pnl[np.searchsorted(ts, r["exit_ts"]) :] += r["net_pnl"]
    equity = pd.DataFrame({"ts": ts, "equity": 10_000.0 + pnl, "position": pos, "price": px})
    fills_df = pd.DataFrame(fills, columns=["ts", "side", "qty", "price", "fee", "maker"])
    rejections = {"gate:confidence": 812, "gate:spread": 40, "risk:max_trades_24h": 3}
    return equity, trades, fills_df, rejections


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_report(out: Path, page: Path, metrics: dict) -> str:
    assert page == out / "report.html" and page.is_file()
    assert json.loads((out / "metrics.json").read_text()) == metrics
    text = page.read_text(encoding="utf-8")
    for name, caption in PLOTS:
        data = (out / name).read_bytes()
        w, h = png_size(data)
        assert w >= 800 and h >= 250 and len(data) > 5_000, name
        assert f'href="{name}"' in text, name  # linked
        assert base64.b64encode(data).decode("ascii") in text, name  # and embedded
        assert caption in text
    return text


def test_report_of_synthetic_run(tmp_path: Path) -> None:
    equity, trades, fills, rej = synthetic_run()
    metrics = compute_metrics(equity, trades, fills, rej, 10_000.0)
    assert metrics["trades"] == 12
    first = "out of sample, after fees and slippage: walk-forward test windows only"
    notes = f"{first}\n\n<b>second</b> paragraph"
    before = matplotlib.get_backend()
    page = write_report(tmp_path / "run", metrics, equity, trades, fills, rej, "BTCUSDT <test>", notes)
    assert matplotlib.get_backend() == before  # the report never switches the process backend
    text = check_report(tmp_path / "run", page, metrics)
    assert "<title>BTCUSDT &lt;test&gt;</title>" in text
    assert f"<p>{first}</p>" in text
    assert "&lt;b&gt;second&lt;/b&gt; paragraph" in text and "<b>second" not in text
    assert "<td>per_regime.trend.trades</td>" in text and "<td>rejections.gate:spread</td><td>40</td>" in text
    assert f"<td>trades</td><td>{metrics['trades']}</td>" in text
    raw = (tmp_path / "run" / "metrics.json").read_text()
    assert raw == json.dumps(metrics, indent=2, sort_keys=True) + "\n"  # indent 2, sorted keys


def test_report_of_empty_run(tmp_path: Path) -> None:
    equity = pd.DataFrame({"ts": [T0], "equity": [1_000.0], "position": [0.0], "price": [60_000.0]})
    metrics = compute_metrics(equity, pd.DataFrame(), pd.DataFrame(), {}, 1_000.0)
    page = write_report(tmp_path, metrics, equity, pd.DataFrame(), pd.DataFrame(), {}, "empty")
    text = check_report(tmp_path, page, metrics)
    assert "<td>sharpe</td><td>n/a</td>" in text
    assert "<p>(none)</p>" in text  # no notes


def test_trades_without_regime_and_no_rejections(tmp_path: Path) -> None:
    equity, trades, fills, _ = synthetic_run(k=3)
    trades = trades.drop(columns=["regime"])
    metrics = compute_metrics(equity, trades, fills, {}, 10_000.0)
    assert metrics["per_regime"] == {}
    check_report(tmp_path, write_report(tmp_path, metrics, equity, trades, fills, {}, "no regimes"), metrics)


def test_report_refuses_non_json_metrics_and_bad_frames(tmp_path: Path) -> None:
    equity, trades, fills, rej = synthetic_run(k=2)
    metrics = compute_metrics(equity, trades, fills, rej, 10_000.0)
    with pytest.raises(ValueError, match="JSON"):
        write_report(tmp_path, {**metrics, "sharpe": float("nan")}, equity, trades, fills, rej, "x")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['price'\]"):
        write_report(tmp_path, metrics, equity.drop(columns=["price"]), trades, fills, rej, "x")


def test_decimation_of_a_day_of_ticks() -> None:
    rng = np.random.default_rng(7)
    y = np.cumsum(rng.normal(size=1_000_000))
    y[123_457] = 1e6  # a spike must survive
    idx = decimate_indices(y, 5_000)
    assert idx.size <= 5_000 and idx.size > 4_000
    assert np.all(np.diff(idx) > 0) and idx[0] == 0 and idx[-1] == y.size - 1
    assert 123_457 in idx and int(np.argmin(y)) in idx
    assert decimate_indices(y[:10], 5_000).tolist() == list(range(10))
    with pytest.raises(ValueError, match="max_points"):
        decimate_indices(y, 3)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), min_size=1, max_size=300),
    st.integers(min_value=4, max_value=40),
)
def test_decimation_keeps_extremes_within_budget(values: list[float], max_points: int) -> None:
    y = np.array(values)
    idx = decimate_indices(y, max_points)
    assert idx.size <= max(max_points, y.size if y.size <= max_points else 0)
    assert np.all(np.diff(idx) > 0) and idx[0] == 0 and idx[-1] == y.size - 1
    assert y[idx].min() == y.min() and y[idx].max() == y.max()
