"""compute_facts on a real Binance USD-M recording, pinned against the independent reference figures
in ../shared/data/README.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderflow.data.importers.binance_raw import import_binance_raw
from orderflow.research.facts import compute_facts

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def btc(shared_data: Path, tmp_path_factory):
    from orderflow.data.store import Store

    store = Store(tmp_path_factory.mktemp("facts") / "store")
    import_binance_raw(store, [shared_data / "hftbacktest_binance_raw/usdm/btcusdt_20240808.gz"])
    return store


@pytest.mark.slow
def test_facts_of_usdm_btcusdt_20240808(btc):
    f = compute_facts(btc, "binance-usdm", "BTCUSDT")
    assert f["book_events"] == 6547
    assert f["book_events_per_s"] == pytest.approx(19.0, abs=0.1)
    assert f["trades_per_s"] == pytest.approx(61.9, abs=0.1)
    assert f["spread_1tick_share"] == pytest.approx(0.992, abs=0.002)
    assert f["ret_1s_kurtosis"] == pytest.approx(23.1, abs=1.5)  # plain kurtosis (normal = 3)
    assert f["ret_1s_zero_share"] == pytest.approx(0.465, abs=0.01)
    assert (f["trade_size_p50"], f["trade_size_p99"]) == pytest.approx((0.016, 1.15), abs=0.01)
    assert (f["ofi_1s_n"], f["ofi_10s_n"]) == (344, 34)
    # reference 0.435 / 0.538 and 0.576 / 0.730; ours starts 3 book events earlier (see next test)
    assert f["ofi_1s_r2_best"] == pytest.approx(0.4235, abs=0.005)
    assert f["ofi_1s_r2_5level"] == pytest.approx(0.4428, abs=0.005)
    assert f["ofi_10s_r2_best"] == pytest.approx(0.5851, abs=0.005)
    assert f["ofi_10s_r2_5level"] == pytest.approx(0.7622, abs=0.005)
    assert f["abs_ret_acf_1_10"] > 0 and 1.0 < f["hill_tail_index"] < 4.0


def test_facts_match_reference_when_aligned_to_its_first_event(btc):
    """The reference counts 6,544 book events, 3 fewer than this importer's rows; starting at our 4th
    row (same event count) reproduces its R^2 figures closely."""
    ts = btc.read("binance-usdm", "BTCUSDT", "book", columns=["ts_event"])["ts_event"]
    f = compute_facts(btc, "binance-usdm", "BTCUSDT", start_ns=int(ts.iloc[3]))
    assert f["book_events"] == 6544
    assert f["ofi_1s_r2_best"] == pytest.approx(0.435, abs=0.01)
    assert f["ofi_1s_r2_5level"] == pytest.approx(0.538, abs=0.01)
    assert f["ofi_10s_r2_best"] == pytest.approx(0.576, abs=0.01)
    assert f["ofi_10s_r2_5level"] == pytest.approx(0.730, abs=0.01)
