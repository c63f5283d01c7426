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


@pytest.mark.slow
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


@pytest.mark.slow
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


# -- Binance Vision daily metrics and monthly fundingRate files (tests/data/context, real header layout;
# the fundingRate rows are the BTCUSDT rates of the shared history, the metrics values are hand-written)


def test_binance_vision_metrics_end_labelled_file_into_five_kinds(store):
    rep = import_paths(store, [HERE / "BTCUSDT-metrics-2024-01-01.csv"], "binance-metrics")
    kinds = (
        "open_interest_5m",
        "ls_top_accounts_5m",
        "ls_top_positions_5m",
        "ls_global_5m",
        "taker_ratio_5m",
    )
    # four rows; the taker ratio of 00:15 is empty in the file and left out
    assert rep.rows == {f"binance-usdm/BTCUSDT/{k}": 3 if k == "taker_ratio_5m" else 4 for k in kinds}
    oi = store.read("binance-usdm", "BTCUSDT", "open_interest_5m")
    # before 2026-06-25 create_time is the period's end: 00:05 labels [00:00, 00:05), published 00:05:10
    assert oi.ts_event.iloc[0] == t("2024-01-01 00:00") and oi.ts_recv.iloc[0] == t("2024-01-01 00:05:10")
    assert oi.open_interest.iloc[0] == 70512.341 and oi.open_interest_value.iloc[0] == 2983025187.4512
    top = store.read("binance-usdm", "BTCUSDT", "ls_top_accounts_5m")
    assert top.ratio.iloc[0] == 1.25  # count_toptrader_long_short_ratio
    assert top.long_share.iloc[0] == pytest.approx(1.25 / 2.25) and top.short_share.iloc[0] == pytest.approx(
        1 / 2.25
    )
    assert store.read("binance-usdm", "BTCUSDT", "ls_top_positions_5m").ratio.iloc[0] == 1.1052
    assert store.read("binance-usdm", "BTCUSDT", "ls_global_5m").ratio.iloc[0] == 1.5
    tk = store.read("binance-usdm", "BTCUSDT", "taker_ratio_5m")
    assert list(tk.buy_sell_ratio) == [0.9342, 1.2187, 0.8766]
    assert tk.buy_volume.isna().all() and tk.sell_volume.isna().all()  # not in the file
    # a decision at 00:05:09 does not yet see the first period's open interest; at 00:05:10 it does
    seen = asof(oi, np.array([t("2024-01-01 00:05:09"), t("2024-01-01 00:05:10")]), ["open_interest"])
    assert np.isnan(seen.open_interest.iloc[0]) and seen.open_interest.iloc[1] == 70512.341


def test_binance_vision_metrics_start_labelled_zip_from_2026_06_25(store):
    import_paths(store, [HERE / "BTCUSDT-metrics-2026-06-25.zip"], "binance-metrics")
    oi = store.read("binance-usdm", "BTCUSDT", "open_interest_5m")
    # from 2026-06-25 create_time is the period's start: 00:00 labels [00:00, 00:05)
    assert list(oi.ts_event) == [t("2026-06-25 00:00"), t("2026-06-25 00:05"), t("2026-06-25 00:10")]
    assert oi.ts_recv.iloc[0] == t("2026-06-25 00:05:10")


def test_binance_vision_funding_rate_file(store):
    for fmt in ("binance-funding", "funding"):
        rep = import_paths(store, [HERE / "BTCUSDT-fundingRate-2024-01.csv"], fmt)
        assert rep.rows == {"binance-usdm/BTCUSDT/funding": 5}
    f = store.read("binance-usdm", "BTCUSDT", "funding")
    assert list(f.ts_event) == [t("2024-01-01 00:00"), t("2024-01-01 08:00"), t("2024-01-01 16:00"),
                                t("2024-01-02 00:00"), t("2024-01-02 08:00")]  # fmt: skip
    assert (f.ts_recv == f.ts_event).all() and f.rate.iloc[0] == 0.00037409 and f.mark_price.isna().all()


def test_a_bad_metrics_file_is_one_line_naming_it(store, tmp_path):
    p = tmp_path / "BTCUSDT-metrics-2024-01-01.csv"
    p.write_text("create_time,symbol,sum_open_interest\n2024-01-01 00:05:00,BTCUSDT,1\n")
    with pytest.raises(
        ImportError_, match=r"not a Binance Vision metrics file \(missing columns sum_open_interest_value"
    ) as e:
        import_paths(store, [p], "binance-metrics")
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_the_cli_imports_binance_vision_files(tmp_path, capsys):
    rc = main(["data", "import", str(HERE / "BTCUSDT-metrics-2026-06-25.zip"), "--format", "binance-metrics",
               "--store", str(tmp_path / "s"), "--json"])  # fmt: skip
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rc == 0 and rows["binance-usdm/BTCUSDT/taker_ratio_5m"] == 3 and len(rows) == 5
