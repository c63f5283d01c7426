"""Importers of tardis, Binance Vision and generic OHLCV files: formats, inference and bad input."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orderflow.data.importers import FORMATS, ImportError_, import_paths
from orderflow.data.importers.klines import names_from_path, parse_interval

VISION_ROWS = [
    "1637971200000,0.00002853,0.00002854,0.00002851,0.00002854,36304.2,1637971259999,1.03547608,79,19523.0,0.556,0",
    "1637971260000,0.00002854,0.00002860,0.00002854,0.00002859,89196.6,1637971319999,2.54751330,98,59004.2,1.685,0",
    "1637971320000,0.00002859,0.00002860,0.00002857,0.00002859,26547.3,1637971379999,0.75867802,50,5425.9,0.155,0",
]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_formats_and_unknown_format(store, tmp_path):
    assert FORMATS == ("binance-raw", "tardis", "binance-vision", "ohlcv", "funding", "binance-funding",
                       "binance-metrics", "fear-greed")  # fmt: skip
    f = write(tmp_path / "x.csv", "a\n")
    with pytest.raises(ImportError_, match="unknown import format 'csv'"):
        import_paths(store, [f], "csv")
    with pytest.raises(ImportError_, match=r"nope\.csv: no such file"):
        import_paths(store, [tmp_path / "nope.csv"], "ohlcv")


def test_names_from_path():
    assert names_from_path(Path("data/spot/daily/klines/ADABTC/1m/ADABTC-1m-2021-11-27.zip")) == (
        "binance-spot",
        "ADABTC",
        "1m",
    )
    assert names_from_path(Path("futures/um/BTCUSDT-5m-2024-01.csv")) == ("binance-usdm", "BTCUSDT", "5m")
    assert names_from_path(Path("ETH_BTC-5m.feather")) == (None, "ETHBTC", "5m")
    assert names_from_path(Path("XRP_USDT_USDT-1h-futures.feather")) == (None, "XRPUSDT", "1h")
    assert names_from_path(Path("BTCUSDT_60m.csv")) == (None, "BTCUSDT", "1h")
    assert names_from_path(Path("btc-perp-20211231-20220201_1m.csv")) == (None, None, "1m")
    assert parse_interval("90m") == ("90m", 5400 * 10**9)
    with pytest.raises(ImportError_, match="funding-rate"):
        names_from_path(Path("XRP_USDT_USDT-8h-funding_rate.feather"))


def test_binance_vision_ms_us_and_header(store, tmp_path):
    f = write(tmp_path / "spot" / "ADABTC-1m-2021-11-27.csv", "\n".join(VISION_ROWS) + "\n")
    rep = import_paths(store, [f], "binance-vision")
    assert rep.rows == {"binance-spot/ADABTC/bar_1m": 3}
    df = store.read("binance-spot", "ADABTC", "bar_1m")
    assert df.ts_open.tolist() == [1637971200000 * 10**6 + i * 60 * 10**9 for i in range(3)]
    assert (df.ts_event - df.ts_open == 60 * 10**9).all()
    assert df.trades.tolist() == [79, 98, 50]
    assert df.quote_volume.iloc[0] == pytest.approx(1.03547608)
    assert df.taker_buy_volume.iloc[1] == pytest.approx(59004.2)
    # newer spot files: microsecond open times and a header row
    us_rows = [r.replace("1637971", "1637971", 1).split(",") for r in VISION_ROWS]
    for r in us_rows:
        r[0] += "000"
        r[6] += "000"
    hdr = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,tbq,ignore\n"
    g = write(tmp_path / "us" / "ADABTC-1m-2021-11-27.csv", hdr + "\n".join(",".join(r) for r in us_rows))
    import_paths(store, [g], "binance-vision", venue="binance-spot")
    df2 = store.read("binance-spot", "ADABTC", "bar_1m")
    assert len(df2) == 3  # same name = same source: replaced, not duplicated
    assert df2.ts_open.tolist() == df.ts_open.tolist()


def test_missing_venue_is_named(store, tmp_path):
    f = write(tmp_path / "ADABTC-1m-2021-11-27.csv", "\n".join(VISION_ROWS))
    with pytest.raises(ImportError_, match=r"venue.*--venue"):
        import_paths(store, [f], "binance-vision")
    g = write(tmp_path / "bars.csv", "timestamp,open,high,low,close,volume\n1,1,1,1,1,1\n61,1,1,1,1,1\n")
    with pytest.raises(ImportError_, match="--venue and --symbol"):
        import_paths(store, [g], "ohlcv")
    assert store.files() == []


def test_ohlcv_newest_first_banner_duplicates_and_inferred_interval(store, tmp_path):
    lines = [
        "https://www.CryptoDataDownload.com",
        "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount",
    ]
    for i in (3, 2, 2, 1, 0):  # newest first, one duplicate hour
        ts = 1655078400 + i * 3600
        lines.append(
            f"{ts}000,2022-06-13 0{i}:00:00,BTC/USDT,{100 + i},{101 + i},{99 + i},{100.5 + i},{i + 1},"
            f"{(i + 1) * 100},{10 * i}"
        )
    f = write(tmp_path / "prices.csv", "\n".join(lines) + "\n")
    rep = import_paths(store, [f], "ohlcv", venue="binance-spot")
    assert rep.rows == {"binance-spot/BTCUSDT/bar_1h": 4}
    assert any("duplicate open time" in p for p in rep.problems)
    assert any("newest-first" in n for n in rep.notes)
    assert any("inferred" in n for n in rep.notes)
    df = store.read("binance-spot", "BTCUSDT", "bar_1h")
    assert df.open.tolist() == [100, 101, 102, 103]
    assert df.volume.tolist() == [1, 2, 3, 4]
    assert df.quote_volume.tolist() == [100, 200, 300, 400]
    assert df.trades.tolist() == [0, 10, 20, 30]
    assert math.isnan(df.taker_buy_volume.iloc[0])


def test_ohlcv_datetime_strings_and_seconds(store, tmp_path):
    f = write(
        tmp_path / "a" / "ETHUSDT_1m.csv",
        "Date,Open,High,Low,Close,Volume\n"
        "2025-08-05 20:49:00,1,2,0.5,1.5,9\n2025-08-05 20:50:00,1,2,0.5,1.5,9\n",
    )
    import_paths(store, [f], "ohlcv", venue="v")
    df = store.read("v", "ETHUSDT", "bar_1m")
    assert df.ts_open.iloc[0] == pd.Timestamp("2025-08-05 20:49:00", tz="UTC").value
    assert df.trades.tolist() == [-1, -1]
    g = write(
        tmp_path / "b" / "x.csv",
        "timestamp,open,high,low,close,volume\n1700000000,1,1,1,1,1\n1700000300,1,1,1,1,1\n",
    )
    import_paths(store, [g], "ohlcv", venue="v", symbol="X")
    assert store.read("v", "X", "bar_5m").ts_open.tolist() == [1700000000 * 10**9, 1700000300 * 10**9]


def test_freqtrade_feather(store, tmp_path):
    dates = pd.date_range("2018-01-10 04:55", periods=4, freq="5min", tz="UTC")
    df = pd.DataFrame(
        {
            "date": dates,
            "open": [1.0, 2, 3, 4],
            "high": 5.0,
            "low": 0.5,
            "close": 1.0,
            "volume": [10.0, 20, 30, 40],
        }
    )
    f = tmp_path / "ETH_BTC-5m.feather"
    df.to_feather(f)
    import_paths(store, [f], "ohlcv", venue="binance-spot")
    out = store.read("binance-spot", "ETHBTC", "bar_5m")
    assert out.ts_open.tolist() == [d.value for d in dates.as_unit("ns")]
    assert out.volume.tolist() == [10, 20, 30, 40]


def test_tardis_trades_quotes_and_venue_mapping(store, tmp_path):
    trades = write(
        tmp_path / "t.csv.gz.src",
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "binance-futures,BTCUSDT,1582329602111000,1582329602418379,42377944,buy,9682,0.132\n"
        "binance-futures,BTCUSDT,1582329602116000,1582329602418420,42377945,sell,9681.5,0.412\n"
        "binance-futures,BTCUSDT,1582329602150000,1582329602421528,42377946,unknown,9682,0.296\n",
    )
    gz = tmp_path / "trades.csv.gz"
    gz.write_bytes(gzip.compress(trades.read_bytes()))
    rep = import_paths(store, [gz], "tardis")
    assert rep.rows == {"binance-usdm/BTCUSDT/trade": 3}
    t = store.read("binance-usdm", "BTCUSDT", "trade")
    assert t.side.tolist() == [1, -1, 0]
    assert t.trade_id.tolist() == [42377944, 42377945, 42377946]
    assert t.ts_event.iloc[0] == 1582329602111000 * 1000 and t.ts_recv.iloc[0] == 1582329602418379 * 1000
    q = write(
        tmp_path / "q.csv",
        "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"
        "binance,ETHUSDT,1582329601096000,1582329603502092,0.84,9682,9681.92,0.67\n"
        "binance,ETHUSDT,1582329603401000,1582329603522418,,,9681.83,0.003\n",
    )
    import_paths(store, [q], "tardis")
    qq = store.read("binance-spot", "ETHUSDT", "quote")
    assert (
        qq.bid_px.tolist() == [9681.92, 9681.83]
        and qq.ask_px.iloc[0] == 9682
        and math.isnan(qq.ask_px.iloc[1])
    )


def test_tardis_incremental_book(store, tmp_path):
    h = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
    rows = [
        (1000, "true", "bid", 99.5, 1),
        (1000, "true", "bid", 99.0, 2),
        (1000, "true", "ask", 100.0, 3),
        (2000, "false", "ask", 100.0, 0),
        (2000, "false", "ask", 100.5, 4),  # one group: best ask moves
        (3000, "false", "bid", 100.0, 5),
        (4000, "true", "bid", 98.0, 7),
        (4000, "true", "ask", 101.0, 8),  # new snapshot resets
    ]
    body = "".join(f"deribit,BTC-PERPETUAL,{t},{t + 50},{s},{sd},{p},{a}\n" for t, s, sd, p, a in rows)
    f = write(tmp_path / "deribit_incremental_book_L2_BTC-PERPETUAL.csv", h + body)
    rep = import_paths(store, [f], "tardis")
    assert rep.rows == {"deribit/BTC-PERPETUAL/depth": 8, "deribit/BTC-PERPETUAL/book": 4}
    b = store.read("deribit", "BTC-PERPETUAL", "book")
    assert b.bid_px_1.tolist() == [99.5, 99.5, 100.0, 98.0]
    assert b.ask_px_1.tolist() == [100.0, 100.5, 100.5, 101.0]
    assert b.bid_px_2.iloc[2] == 99.5 and math.isnan(b.bid_px_2.iloc[3])  # the reset dropped old levels
    assert b.ts_event.tolist() == [t * 1000 for t in (1000, 2000, 3000, 4000)]
    d = store.read("deribit", "BTC-PERPETUAL", "depth")
    assert d.is_snapshot.sum() == 5 and d.side.tolist()[:3] == [1, 1, -1]


def test_tardis_book_snapshot_levels(store, tmp_path):
    cols = ["exchange", "symbol", "timestamp", "local_timestamp"]
    vals = ["binance-futures", "BTCUSDT", "1598918403696000", "1598918403810979"]
    for i in range(25):
        cols += [f"asks[{i}].price", f"asks[{i}].amount", f"bids[{i}].price", f"bids[{i}].amount"]
        vals += [str(100 + i), "1", str(99 - i), "2"]
    f = write(tmp_path / "s25.csv", ",".join(cols) + "\n" + ",".join(vals) + "\n")
    rep = import_paths(store, [f], "tardis")
    b = store.read("binance-usdm", "BTCUSDT", "book")
    assert b.ask_px_20.iloc[0] == 119 and b.bid_px_20.iloc[0] == 80 and "ask_px_21" not in b.columns
    assert any("top 20" in n for n in rep.notes)
    five = [c for c in cols if not any(f"[{i}]" in c for i in range(5, 25))]
    g = write(tmp_path / "s5.csv", ",".join(five) + "\n" + ",".join(vals[: len(five)]) + "\n")
    import_paths(store, [g], "tardis", symbol="BTCUSDT")
    b = store.read("binance-usdm", "BTCUSDT", "book")
    assert len(b) == 2 and (b.bid_px_5 == 95).all()
    assert np.isnan(b.bid_px_6.to_numpy()).sum() == 1
    with pytest.raises(ImportError_, match="symbol 'ETHUSDT' not in the file"):
        import_paths(store, [g], "tardis", symbol="ETHUSDT")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty file"),
        ("date,open,high,close,volume\n2024-01-01,1,1,1,1\n", "missing column.*low"),
        ("open,high,low,close,volume\n1,1,1,1,1\n", "no time column"),
        ("1,2,3,4,5,6\n", "no header row"),
    ],
)
def test_ohlcv_fatal_errors_write_nothing(store, tmp_path, text, match):
    f = write(tmp_path / "BTCUSDT_1m.csv", text)
    with pytest.raises(ImportError_, match=match):
        import_paths(store, [f], "ohlcv", venue="v")
    assert store.files() == []


def test_bad_lines_are_reported_with_file_and_line(store, tmp_path):
    rows = list(VISION_ROWS)
    rows[1] = rows[1].replace("0.00002860", "abc", 1)  # non-numeric field on line 2
    rows.append(VISION_ROWS[2][:30])  # truncated last line
    f = write(tmp_path / "ADABTC-1m-2021-11-27.csv", "\n".join(rows))
    rep = import_paths(store, [f], "binance-vision", venue="binance-spot")
    assert rep.rows == {"binance-spot/ADABTC/bar_1m": 2}
    assert any(p.startswith(f"{f}:2: column 'high': not a number: 'abc'") for p in rep.problems)
    assert any(p.startswith(f"{f}:4: expected 12 fields, got 3") for p in rep.problems)


def test_truncated_gzip_keeps_lines_before_damage(store, tmp_path):
    body = "timestamp,open,high,low,close,volume\n" + "".join(
        f"{1700000000 + 60 * i},1,1,1,1,1\n" for i in range(2000)
    )
    data = gzip.compress(body.encode())
    f = tmp_path / "BTCUSDT_1m.csv.gz"
    f.write_bytes(data[: len(data) * 2 // 3])
    rep = import_paths(store, [f], "ohlcv", venue="v")
    assert any("truncated or corrupt" in p for p in rep.problems)
    n = rep.rows["v/BTCUSDT/bar_1m"]
    assert 0 < n < 2000
    assert len(store.read("v", "BTCUSDT", "bar_1m")) == n
