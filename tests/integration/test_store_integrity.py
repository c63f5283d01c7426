"""The store cannot hold a duplicate, and a damaged part is named, not fatal (real recordings).

The same events imported under another name, truncated and then whole, as a day file and then inside
a multi-file chain, or any number of times, give identical row counts; ``data check`` fails on a store
seeded with duplicates past the write path; a truncated part is named by ``data ls``, ``data check``,
``data verify`` and ``backtest``, with no traceback.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from orderflow.cli import main
from orderflow.data.store import Store
from support.store_parts import plant_part, truncated_copy

pytestmark = pytest.mark.shared_data


def counts(root: Path) -> dict[str, int]:
    return {f"{d.venue}/{d.symbol}/{d.kind}": d.rows for d in Store(root).ls()}


def run(capsys, *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    return rc, text


def imp(capsys, root: Path, *files: Path) -> str:
    rc, text = run(
        capsys, "data", "import", *map(str, files), "--format", "binance-raw", "--store", str(root)
    )
    assert rc == 0, text
    return text


@pytest.fixture(scope="module")
def usdm(shared_data) -> Path:
    return shared_data / "hftbacktest_binance_raw" / "usdm"


@pytest.mark.slow
def test_the_same_events_under_any_name_and_grouping_are_stored_once(usdm, tmp_path, capsys):
    day, nxt = usdm / "btcusdt_20240718.gz", usdm / "btcusdt_20240719.gz"
    ref_day, ref_chain = tmp_path / "ref_day", tmp_path / "ref_chain"
    imp(capsys, ref_day, day)
    imp(capsys, ref_chain, day, nxt)
    one, both = counts(ref_day), counts(ref_chain)
    assert one["binance-usdm/BTCUSDT/trade"] == 974 and both["binance-usdm/BTCUSDT/trade"] == 974 + 9_727

    root = tmp_path / "store"
    imp(capsys, root, day)
    imp(capsys, root, day)  # again
    renamed = tmp_path / "copies" / "renamed-copy.gz"
    renamed.parent.mkdir()
    shutil.copy(day, renamed)
    text = imp(capsys, root, renamed)  # a renamed copy
    assert "0 rows written, 974 already stored" in text
    assert counts(root) == one
    imp(capsys, root, day, nxt)  # the day again, inside a chain
    assert counts(root) == both
    imp(capsys, root, day)  # and alone once more
    assert counts(root) == both

    # truncated first (same file name), then the whole file
    trunc_root = tmp_path / "trunc"
    truncated_copy(day, tmp_path / "cut" / day.name, 0.5)
    imp(capsys, trunc_root, tmp_path / "cut" / day.name)
    part = counts(trunc_root)
    assert 0 < part["binance-usdm/BTCUSDT/trade"] < 974
    imp(capsys, trunc_root, day)
    assert counts(trunc_root) == one
    for r in (root, trunc_root):
        rc, text = run(capsys, "data", "check", "--store", str(r))
        assert rc == 0 and "OK: no threshold crossed" in text, text
    # the rows read back in exchange order: the stored book replays its update-id chain unbroken
    depth = Store(root).read("binance-usdm", "BTCUSDT", "depth")
    msgs = depth.drop_duplicates(["last_update_id", "is_snapshot"])
    assert msgs["last_update_id"].is_monotonic_increasing
    assert len(depth) == both["binance-usdm/BTCUSDT/depth"]


def test_data_check_fails_on_a_store_seeded_with_duplicates(usdm, tmp_path, capsys):
    root = tmp_path / "store"
    imp(capsys, root, usdm / "btcusdt_20240718.gz")
    trades = Store(root).read("binance-usdm", "BTCUSDT", "trade")
    plant_part(Store(root), "binance-usdm", "BTCUSDT", "trade", trades.head(100), "2024-07-18")
    rc, text = run(capsys, "data", "check", "--store", str(root))
    assert rc == 1
    assert "binance-usdm/BTCUSDT/trade: duplicates 100 > max_duplicates 0" in text


def test_a_truncated_part_is_named_and_the_rest_still_listed(usdm, tmp_path, capsys):
    root = tmp_path / "store"
    imp(capsys, root, usdm / "btcusdt_20240718.gz")
    [trade_part] = Store(root).files(kind="trade")
    data = trade_part.read_bytes()
    trade_part.write_bytes(data[: len(data) // 2])

    rc, text = run(capsys, "data", "ls", "--store", str(root))
    assert rc == 0
    assert f"CORRUPT {trade_part}" in text and "quote" in text and "7,113" in text

    rc, text = run(capsys, "data", "check", "--store", str(root))
    assert rc == 1
    assert "binance-usdm/BTCUSDT/trade: corrupt_parts 1 > max_corrupt_parts 0" in text
    assert str(trade_part) in text

    rc, text = run(capsys, "data", "verify", "--store", str(root))
    assert rc == 1
    assert f"CORRUPT {trade_part}" in text and "1 corrupt" in text

    rc, text = run(capsys, "backtest", "binance-usdm/BTCUSDT", "--store", str(root), "--model", "none")
    assert rc == 2
    assert str(trade_part) in text and "corrupt store part" in text
    assert len(text.strip().splitlines()[-1]) < 400


def test_verify_finds_a_flipped_byte_that_the_footer_check_misses(usdm, tmp_path, capsys):
    root = tmp_path / "store"
    imp(capsys, root, usdm / "btcusdt_20240718.gz")
    part = Store(root).files(kind="depth")[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside a data page
    part.write_bytes(bytes(data))
    rc, text = run(capsys, "data", "verify", "--store", str(root), "--quick")
    assert rc == 0  # the footer is intact
    rc, text = run(capsys, "data", "verify", "--store", str(root))
    assert rc == 1 and f"CORRUPT {part}" in text


def test_an_empty_or_foreign_file_says_why_nothing_was_imported(tmp_path, capsys):
    empty = tmp_path / "empty.gz"
    with gzip.open(empty, "wb"):
        pass
    foreign = tmp_path / "prices.csv"
    foreign.write_text("time,price\n" + "1,2\n" * 10)
    rc, text = run(
        capsys, "data", "import", str(empty), "--format", "binance-raw", "--store", str(tmp_path / "s")
    )
    assert rc == 1 and f"imported 0 events from {empty}: file is empty" in text
    assert "imported 1 file" not in text
    rc, text = run(
        capsys, "data", "import", str(foreign), "--format", "binance-raw", "--store", str(tmp_path / "s")
    )
    assert rc == 1
    assert "not a raw Binance recording" in text and "(first line: time,price)" in text
    rc, text = run(
        capsys, "data", "import", str(tmp_path), "--format", "binance-raw", "--store", str(tmp_path / "s")
    )
    assert rc == 2 and "no such file" not in text and "director" in text


@pytest.mark.slow
def test_raw_sources_print_problems_and_refuse_gaps(usdm, tmp_path, capsys):
    """A raw recording read directly (backtest, features build, data facts) prints the importer's problems
    and gaps, and a recording with gaps is refused unless --allow-gaps."""
    day = usdm / "btcusdt_20240718.gz"
    with gzip.open(day, "rb") as fh:
        lines = fh.readlines()
    depth_rows = [i for i, ln in enumerate(lines) if b"depthUpdate" in ln]
    gapped = tmp_path / "gapped.gz"
    with gzip.open(gapped, "wb") as fh:  # one diff lost mid-file, and one garbled line
        drop = depth_rows[len(depth_rows) // 2]
        fh.writelines(ln for i, ln in enumerate(lines) if i != drop)
        fh.write(b"12345 {not json\n")
    rc, text = run(capsys, "data", "facts", str(gapped))
    assert rc == 2
    assert "gap(s)" in text and "--allow-gaps" in text and "problem:" in text
    rc, text = run(capsys, "data", "facts", str(gapped), "--allow-gaps")
    assert rc == 0 and "problem:" in text and "with 1 gap(s) (--allow-gaps)" in text
    out = tmp_path / "x.parquet"
    rc, text = run(capsys, "features", "build", str(gapped), "--out", str(out))
    assert rc == 2 and "--allow-gaps" in text and not out.exists()
