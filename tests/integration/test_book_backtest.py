"""Several symbols in one book, on the real USD-M BTCUSDT and ETHUSDT recordings of 2024-08-08: a symbol
alone in a book is its one-symbol backtest; together, each symbol's fills are what it did alone up to
the first entry a rule of the book refused or cut (counted), and exactly what it did alone when the
book's limits do not bind; the command line writes the report of the book."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orderflow.backtest.config import VenueAccountConfig
from orderflow.backtest.engine import Market, make_signals, run_backtest
from orderflow.backtest.portfolio import run_book_backtest
from orderflow.cli import main
from orderflow.config import load_config
from orderflow.data.importers.binance_raw import import_binance_raw
from orderflow.data.store import Store
from orderflow.features.batch import build_features
from orderflow.risk.config import RiskConfig

pytestmark = (
    pytest.mark.slow
)  # two recordings imported, two loops compiled (the fast lane has the unit tests)
ROOT = Path(__file__).resolve().parents[2]
BOOK_RULES = ("risk:max_capital", "risk:correlation_budget", "risk:portfolio_var95", "risk:allocation")


def rule_probs(feats: pd.DataFrame) -> np.ndarray:
    """Probabilities of the OFI rule (as the parity tests use): no model, but entries to compare."""
    z = np.nan_to_num(feats["ofi_int_z_1s"].to_numpy(), nan=0.0)
    up = 1.0 / (1.0 + np.exp(-1.5 * z))
    return np.stack([0.8 * (1 - up), np.full_like(up, 0.2), 0.8 * up], axis=1)


@pytest.fixture(scope="module")
def two(shared_data, tmp_path_factory):
    raw = shared_data / "hftbacktest_binance_raw" / "usdm"
    store = Store(tmp_path_factory.mktemp("book") / "s")
    import_binance_raw(store, [raw / "btcusdt_20240808.gz", raw / "ethusdt_20240808.gz"])
    short = load_config(ROOT / "config" / "examples" / "short-recording", environ={})
    strategy = short.strategy.model_copy(update={"confidence_gate": 0.55, "ev_cost_mult": 0.0,
                                                 "quality_gate": 0.5})  # fmt: skip
    out = []
    for sym, tick in (("BTCUSDT", 0.1), ("ETHUSDT", 0.01)):
        f = build_features(store, "binance-usdm", sym, short.features.model_copy(update={"tick_size": tick}))
        m = Market.from_frames("binance-usdm", sym, store.read("binance-usdm", sym, "book"),
                               store.read("binance-usdm", sym, "trade"))  # fmt: skip
        s = make_signals(f, rule_probs(f), strategy)
        s.vol_pct = np.where(np.isfinite(s.vol_pct), s.vol_pct, 0.5)  # too short for the 1 h percentile
        out.append((m, s, store.instrument("binance-usdm", sym)))
    return out, strategy


def book(two, risk=None):
    runs, strategy = two
    return run_book_backtest([r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs],
                             VenueAccountConfig(), strategy, risk)  # fmt: skip


def alone(two, risk=None):
    runs, strategy = two
    return {m.symbol: run_backtest(m, s, i, VenueAccountConfig(), strategy, risk) for m, s, i in runs}


def test_a_symbol_alone_in_a_book_is_its_one_symbol_backtest(two):
    (m, s, i), _ = two[0][0], two[1]
    one = run_backtest(m, s, i, VenueAccountConfig(), two[1])
    res = run_book_backtest([m], [s], [i], VenueAccountConfig(), two[1]).symbols[m.symbol]
    assert one.orders > 20 and res.orders == one.orders
    for a, b in ((res.fills, one.fills), (res.trades, one.trades), (res.equity, one.equity)):
        pd.testing.assert_frame_equal(a, b)
    assert res.rejections == one.rejections


def test_together_each_symbol_does_what_it_did_alone_until_a_book_rule_binds(two):
    """Sleeves (sizing_equity: symbol), so that a symbol's decisions depend on the other only through
    the book's rules: every difference from its run alone starts at an entry those rules refused or
    cut, and they are counted."""
    risk = RiskConfig(sizing_equity="symbol")
    solo, res = alone(two, risk), book(two, risk)
    bound = 0
    for sym, r in res.symbols.items():
        a = solo[sym]
        first, n = r.info["book_first_bound_ns"], r.info["book_bound"]
        if n == 0:
            pd.testing.assert_frame_equal(r.fills, a.fills)
            continue
        bound += 1
        before = r.fills[r.fills["ts"] < first].reset_index(drop=True)
        pd.testing.assert_frame_equal(before, a.fills[a.fills["ts"] < first].reset_index(drop=True))
        refused = sum(r.rejections.get(k, 0) for k in BOOK_RULES)
        assert refused <= n  # n counts the book's refusals and the entries it cut
        assert not r.fills.equals(a.fills)
    assert bound >= 1, "no book rule bound: the test shows nothing"
    # the correlation budget (BTC and ETH move together) is what binds here
    assert res.rejections.get("risk:correlation_budget", 0) > 0
    assert 0.5 < res.correlation.loc["BTCUSDT", "ETHUSDT"] < 0.95


def test_where_the_books_limits_do_not_bind_the_book_is_the_union(two):
    risk = RiskConfig(sizing_equity="symbol", correlation_budget=100.0, max_capital_in_use=100.0)
    solo, res = alone(two, risk), book(two, risk)
    for sym, r in res.symbols.items():
        assert r.info["book_bound"] == 0
        pd.testing.assert_frame_equal(r.fills, solo[sym].fills)
        pd.testing.assert_frame_equal(r.trades, solo[sym].trades)
    assert sum(len(r.fills) for r in res.symbols.values()) > 100


def test_the_books_equity_is_the_initial_plus_every_symbols_pnl(two):
    res = book(two)  # the default: sizing on the book's equity
    initial = VenueAccountConfig().initial_equity
    final = {s: float(r.equity["equity"].iloc[-1]) for s, r in res.symbols.items()}
    assert float(res.equity["equity"].iloc[-1]) == pytest.approx(
        initial + sum(v - initial for v in final.values())
    )
    total = {}
    for r in res.symbols.values():
        for k, v in r.rejections.items():
            total[k] = total.get(k, 0) + v
    assert res.rejections == total
    assert (res.budget["capital_in_use"] <= RiskConfig().max_capital_in_use + 1e-9).all()


@pytest.mark.slow
def test_the_command_line_backtests_two_recordings_in_one_book(shared_data, tmp_path, capsys):
    raw = shared_data / "hftbacktest_binance_raw" / "usdm"
    rc = main(["backtest", str(raw / "btcusdt_20240808.gz"), str(raw / "ethusdt_20240808.gz"),
               "--walk-forward", "--quick", "--config", str(ROOT / "config" / "examples" / "short-recording"),
               "--report", str(tmp_path / "r"), "--log-level", "WARNING"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "2 symbols in one book" in out and "correlation at the end" in out
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert set(m["symbols"]) == {"BTCUSDT", "ETHUSDT"} and "trades" in m["portfolio"]
    assert m["portfolio"]["trades"] == sum(s["trades"] for s in m["symbols"].values())
    assert -1.0 <= m["correlation"]["BTCUSDT"]["ETHUSDT"] <= 1.0
    page = (tmp_path / "r" / "report.html").read_text()
    assert "Per symbol" in page and "Correlation matrix used" in page and "Risk budget in use" in page
    w = pd.read_csv(tmp_path / "r" / "models_by_window.csv")
    assert set(w["symbol"]) == {"BTCUSDT", "ETHUSDT"} and (w["n_test"] > 0).all()


def test_a_one_symbol_command_given_two_symbols_says_so_in_one_line(shared_data, tmp_path, capsys):
    raw = shared_data / "hftbacktest_binance_raw" / "usdm"
    rc = main(["features", "build", str(raw / "btcusdt_20240808.gz"), str(raw / "ethusdt_20240808.gz"),
               "--out", str(tmp_path / "f.parquet"), "--log-level", "WARNING"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    want = (
        "orderflow: btcusdt_20240808.gz + ethusdt_20240808.gz: expected one symbol, found "
        "binance-usdm/BTCUSDT, binance-usdm/ETHUSDT"
    )  # the import's notes come before it
    assert rc == 2 and err[-1] == want
    assert not (tmp_path / "f.parquet").exists()
