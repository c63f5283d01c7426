"""`orderflow backtest` reads the configuration's ``execution`` section, as paper and live do: a
passive-entry configuration run through the CLI gives the same fills (times, sides, prices, sizes,
maker flags) as the paper driver of the engine parity harness on the same events and configuration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from orderflow.backtest.engine import Market, make_signals
from orderflow.cli import main
from orderflow.config import load_config
from orderflow.data.store import Store
from orderflow.engine.session import replay_paper
from orderflow.features.batch import build_features

ROOT = Path(__file__).resolve().parents[2]


def passive_config_dir(tmp_path: Path) -> Path:
    """The project's config directory with ``execution.entry_style: passive`` and the OFI-only strategy
    of config/examples/ofi-only (so a run without a model trades)."""
    d = tmp_path / "config"
    shutil.copytree(ROOT / "config", d, ignore=shutil.ignore_patterns("examples"))
    ex = (d / "execution.yaml").read_text()
    assert "entry_style: market " in ex  # the default this test switches
    (d / "execution.yaml").write_text(ex.replace("entry_style: market ", "entry_style: passive "))
    strategy = yaml.safe_load((d / "strategy.yaml").read_text())
    ofi_only = yaml.safe_load((ROOT / "config" / "examples" / "ofi-only" / "strategy.yaml").read_text())
    strategy["strategy"].update(ofi_only["strategy"])
    (d / "strategy.yaml").write_text(yaml.safe_dump(strategy))
    return d


@pytest.mark.slow
def test_cli_backtest_uses_the_execution_section_like_the_paper_driver(tmp_path, capsys):
    cfg_dir, store_dir, report = passive_config_dir(tmp_path), tmp_path / "store", tmp_path / "r"
    assert main(["data", "simulate", "--hours", "0.5", "--seed", "5", "--store", str(store_dir)]) == 0
    rc = main(["backtest", "sim/BTCUSDT", "--store", str(store_dir), "--config", str(cfg_dir),
               "--model", "none", "--report", str(report)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    m = json.loads((report / "metrics.json").read_text())
    # passive entries rest as post-only limits: about half the traded notional is maker (the entries)
    assert m["trades"] > 20 and m["maker_share"] is not None and m["maker_share"] > 0.2, m
    cli = pd.read_csv(report / "fills.csv")
    assert len(cli) == m["fills"] and cli["maker"].sum() > 20

    # the parity harness: the paper driver (TradingSession + simulated exchange) on the same events,
    # features and configuration
    cfg = load_config(cfg_dir, environ={})
    assert cfg.execution.entry_style == "passive"
    store = Store(store_dir)
    venue, symbol = "sim", "BTCUSDT"
    inst = store.instrument(venue, symbol)
    fcfg = cfg.features.model_copy(update={"tick_size": cfg.features.tick_size or inst.tick_size})
    feats = build_features(store, venue, symbol, fcfg)
    market = Market.from_frames(venue, symbol, store.read(venue, symbol, "book"),
                                store.read(venue, symbol, "trade"))  # fmt: skip
    sig = make_signals(feats, None, cfg.strategy)
    paper = replay_paper(market, sig, inst, cfg.backtest, cfg.strategy, cfg.risk, cfg.execution).fills
    assert len(cli) == len(paper)
    for c in ("ts", "side", "maker"):
        assert np.array_equal(cli[c].to_numpy(), paper[c].to_numpy()), c
    for c in ("price", "qty", "fee"):
        np.testing.assert_allclose(cli[c].to_numpy(), paper[c].to_numpy(), rtol=1e-12, atol=0, err_msg=c)
