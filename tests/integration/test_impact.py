"""OFI price-impact study on real Binance USD-M recordings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orderflow.data.importers.binance_raw import import_binance_raw
from orderflow.data.schema import book_arrays
from orderflow.features.ofi import impact_design, pca_weights, weighted_ofi
from orderflow.research.facts import compute_facts
from orderflow.research.impact import impact_from_store, impact_study, render_impact

pytestmark = pytest.mark.shared_data

KEYS = {"seconds", "n", "r2_best", "r2_multi", "r2_weighted", "r2_integrated", "beta_best"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["btcusdt", "ethusdt"])
def test_impact_on_usdm_recordings(shared_data: Path, store, name):
    import_binance_raw(store, [shared_data / f"hftbacktest_binance_raw/usdm/{name}_20240808.gz"])
    symbol = name.upper()
    tick = store.instrument("binance-usdm", symbol).tick_size
    res = impact_from_store(store, "binance-usdm", symbol, intervals_s=(1, 10, 60), levels=10)
    assert res["tick"] == tick and res["levels"] == 10
    json.loads(json.dumps(res, allow_nan=False))  # plain JSON: undefined figures are null
    rows = {r["seconds"]: r for r in res["intervals"]}
    assert sorted(rows) == [1, 10, 60] and all(set(r) >= KEYS for r in rows.values())
    assert (rows[1]["n"], rows[10]["n"], rows[60]["n"]) == (344, 34, 5)
    for s in (1, 10):
        r = rows[s]
        assert r["r2_multi"] >= r["r2_best"]  # the joint OLS nests the best level
        assert 0.3 < r["r2_best"] < 0.8 and r["beta_best"] > 0
        for k in ("r2_weighted", "r2_integrated"):
            assert 0.0 < r[k] <= r["r2_multi"] + 1e-12  # single regressors in the span of the 10 levels
    assert rows[60]["r2_multi"] is None  # 5 buckets cannot fit 11 coefficients
    table = render_impact(res).splitlines()
    assert len(table) == 5 and table[0].startswith(f"OFI price impact binance-usdm/{symbol}")
    assert table[2].split()[:3] == ["1", "344", f"{rows[1]['r2_best']:.3f}"] and "-" in table[4].split()
    facts = compute_facts(store, "binance-usdm", symbol)
    assert abs(rows[1]["r2_best"] - facts["ofi_1s_r2_best"]) <= 1e-12
    assert abs(rows[10]["r2_best"] - facts["ofi_10s_r2_best"]) <= 1e-12
    five = impact_from_store(store, "binance-usdm", symbol, intervals_s=(1,), levels=5)["intervals"][0]
    assert abs(five["r2_multi"] - facts["ofi_1s_r2_5level"]) <= 1e-12
    assert five["r2_multi"] <= rows[1]["r2_multi"] + 1e-12  # 10 levels nest 5


@pytest.mark.slow
def test_one_level_collapses_every_variant(shared_data: Path, store):
    import_binance_raw(store, [shared_data / "hftbacktest_binance_raw/usdm/ethusdt_20240808.gz"])
    book = store.read("binance-usdm", "ETHUSDT", "book")
    r = impact_study(book, 0.01, intervals_s=(1,), levels=1)["intervals"][0]
    for k in ("r2_multi", "r2_weighted", "r2_integrated"):
        assert r[k] == pytest.approx(r["r2_best"], abs=1e-12)
    # weighted OFI uses 1/m; the PCA weights have unit L1 norm and a positive sum
    ts = book["ts_event"].to_numpy(np.int64)
    x, _ = impact_design(ts, *book_arrays(book, 3), 1_000_000_000, 0.01, levels=3)
    np.testing.assert_allclose(weighted_ofi(x), x[:, 0] + x[:, 1] / 2 + x[:, 2] / 3)
    w = pca_weights(x)
    assert abs(np.abs(w).sum() - 1.0) < 1e-12 and w.sum() > 0
    with pytest.raises(ValueError, match="20 levels, 25 requested"):
        impact_study(book, 0.01, levels=25)
    with pytest.raises(ValueError, match="tick must be a positive"):
        impact_study(book, 0.0)
