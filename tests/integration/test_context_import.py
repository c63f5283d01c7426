"""Context series imported point in time (issue 19): funding-rate histories and the fear & greed
index from the recorded files in ``../shared/data/context`` and from files in Binance's and
alternative.me's documented JSON shapes (``tests/data/context``), each row stored with the time it
became available; a decision sees a row only once it was published."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orderflow.cli import main
from orderflow.data.context import asof
from orderflow.data.importers import ImportError_, import_paths
from orderflow.data.importers.context import FEAR_GREED_DELAY_S

HERE = Path(__file__).resolve().parents[1] / "data" / "context"
NS = 1_000_000_000


def t(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


def test_binance_funding_history_is_stored_with_its_funding_times(shared_data, store):
    f = shared_data / "context" / "binance_usdm_funding_2022-2025" / "BTC_USDT_USDT-8h-funding_rate.feather"
    rep = import_paths(store, [f], "funding")
    assert rep.rows == {"binance-usdm/BTCUSDT/funding": 4188} and not rep.problems
    rows = store.read("binance-usdm", "BTCUSDT", "funding")
    assert len(rows) == 4188 and rows["ts_event"].is_monotonic_increasing
    assert (rows["ts_recv"] == rows["ts_event"]).all()  # a settled rate is published at its funding time
    assert rows["rate"].iloc[0] == pytest.approx(1e-4) and np.abs(rows["rate"]).max() < 0.03
    gaps = np.diff(rows["ts_event"].to_numpy()) / 3600e9
    assert np.median(gaps) == pytest.approx(8.0, abs=0.01)
    # a second import adds nothing
    again = import_paths(store, [f], "funding")
    assert sum(again.rows.values()) == 0 or again.rows == {"binance-usdm/BTCUSDT/funding": 4188}
    assert len(store.read("binance-usdm", "BTCUSDT", "funding")) == 4188


def test_four_perpetuals_funding_from_the_may_2025_files(shared_data, store):
    d = shared_data / "context" / "binance_usdm_1m_2025-05"
    files = sorted(d.glob("*-8h-funding_rate.feather"))
    rep = import_paths(store, files, "funding")
    assert rep.rows == {f"binance-usdm/{s}USDT/funding": n
                        for s, n in (("BNB", 266), ("BTC", 266), ("ETH", 302), ("SOL", 266))}  # fmt: skip


def test_the_fear_and_greed_value_of_a_day_is_visible_only_after_its_publication(shared_data, store):
    f = shared_data / "context" / "fear_and_greed" / "fear_and_greed_index.csv"
    rep = import_paths(store, [f], "fear-greed")
    assert rep.rows == {"alternative.me/FNG/fear_greed": 2958}
    rows = store.read("alternative.me", "FNG", "fear_greed")
    assert rows["ts_event"].is_monotonic_increasing  # the file is newest first
    assert ((rows["ts_recv"] - rows["ts_event"]) == int(FEAR_GREED_DELAY_S * NS)).all()
    # the file: 2026-03-10 13, 2026-03-11 15, 2026-03-12 18 (Extreme Fear = 0)
    at = np.array([t("2026-03-12 00:05"), t("2026-03-12 12:00"), t("2026-03-13 00:09:59"),
                   t("2026-03-13 00:10"), t("2026-03-20")])  # fmt: skip
    got = asof(rows, at)
    assert got["value"].tolist() == [13.0, 15.0, 15.0, 18.0, 18.0]
    assert got["ts_event"].tolist() == [t("2026-03-10"), t("2026-03-11"), t("2026-03-11"), t("2026-03-12"),
                                        t("2026-03-12")]  # fmt: skip
    assert (got["ts_recv"] <= at).all() and got["classification"].tolist() == [0, 0, 0, 0, 0]
    # before the first publication nothing is known
    early = asof(rows, np.array([t("2018-02-01 12:00")]))
    assert np.isnan(early["value"][0]) and early["ts_event"][0] == -1


def test_files_in_the_documented_json_shapes(store, tmp_path):
    rep = import_paths(store, [HERE / "binance_fundingRate.json"], "funding")
    assert rep.rows == {"binance-usdm/BTCUSDT/funding": 2}
    rows = store.read("binance-usdm", "BTCUSDT", "funding")
    assert rows["ts_event"].tolist() == [1570608000000 * 1_000_000, 1570636800000 * 1_000_000]
    assert rows["rate"].tolist() == [-0.0375, 0.0001] and rows["mark_price"].iloc[0] == 34287.54619963
    # at a funding time the rate settling then is known; a nanosecond before, the one before it
    seen = asof(rows, np.array([1570636800000 * 1_000_000 - 1, 1570636800000 * 1_000_000]))
    assert seen["rate"].tolist() == [-0.0375, 0.0001]
    rep = import_paths(store, [HERE / "fear_greed_api.json"], "fear-greed")
    rows = store.read("alternative.me", "FNG", "fear_greed")
    assert rows["ts_event"].tolist() == [t("2026-03-11"), t("2026-03-12")]
    assert rows["value"].tolist() == [15, 18]


@pytest.mark.parametrize(
    ("name", "text", "fmt", "message"),
    [
        ("x.csv", "when,rate\n2024-01-01,0.1\n", "funding", r"want freqtrade's date/open columns or Binance"),
        ("x.json", json.dumps({"data": [{"a": 1}]}), "funding", r"not a fundingRate answer"),
        ("f.csv", "day,v\n2024-01-01,5\n", "fear-greed", r"want the columns date, value"),
        ("g.csv", "date,value\nsoon,5\n", "fear-greed", r"column 'date' holds values that are not times"),
        ("BTCUSDT.json", "[]", "funding", r"not a fundingRate answer"),
    ],
)
def test_a_bad_context_file_is_one_line_naming_it(store, tmp_path, name, text, fmt, message):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ImportError_, match=message) as e:
        import_paths(store, [p], fmt)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_the_cli_imports_context_files(tmp_path, capsys):
    cases = [(HERE / "fear_greed_api.json", "fear-greed", "alternative.me/FNG/fear_greed"),
             (HERE / "binance_fundingRate.json", "funding", "binance-usdm/BTCUSDT/funding")]  # fmt: skip
    for f, fmt, key in cases:
        rc = main(["data", "import", str(f), "--format", fmt, "--store", str(tmp_path / "s"), "--json"])
        out = capsys.readouterr().out
        assert rc == 0 and json.loads(out)["rows"] == {key: 2}
    rc = main(["data", "import", str(HERE / "fear_greed_api.json"), "--format", "fear-greed",
               "--symbol", "BTCUSDT", "--store", str(tmp_path / "s")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "--venue/--symbol do not apply" in err and len(err.strip().splitlines()) == 1
