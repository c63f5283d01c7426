"""Acceptance: importing a real raw Binance recording rebuilds a book that agrees with the exchange.

In usdm/btcusdt_20240808.gz, 629 update ids are shared by a bookTicker message and a depth diff; the
book rebuilt by the importer (the production sync code) must equal the bookTicker's best bid/ask price
and size at every one of them, and the quality check must find no gaps and no crossed books.
"""

from __future__ import annotations

import json

import pytest

from orderflow.cli import main

pytestmark = pytest.mark.shared_data


@pytest.mark.slow
def test_import_check_and_book_matches_book_ticker(shared_data, tmp_path, capsys):
    raw = shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240808.gz"
    store = str(tmp_path / "store")
    assert main(["data", "import", str(raw), "--format", "binance-raw", "--store", store]) == 0
    capsys.readouterr()

    assert main(["data", "check", "--store", store, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    book = _entry(report, "BTCUSDT", "book")
    assert book["gaps"] == 0
    assert book["crossed"] == 0
    assert book["events"] == 6547
    assert _entry(report, "BTCUSDT", "depth")["gaps"] == 0

    from orderflow.data.store import Store

    s = Store(store)
    b = s.read(
        "binance-usdm",
        "BTCUSDT",
        "book",
        columns=["update_id", "bid_px_1", "bid_sz_1", "ask_px_1", "ask_sz_1"],
    )
    q = s.read(
        "binance-usdm", "BTCUSDT", "quote", columns=["update_id", "bid_px", "bid_sz", "ask_px", "ask_sz"]
    )
    m = b.merge(q, on="update_id")
    assert len(m) == 629
    assert (m.bid_px_1 == m.bid_px).all() and (m.ask_px_1 == m.ask_px).all()
    assert (m.bid_sz_1 == m.bid_sz).all() and (m.ask_sz_1 == m.ask_sz).all()


@pytest.mark.slow
def test_reimport_is_idempotent(shared_data, tmp_path, capsys):
    raw = shared_data / "hftbacktest_binance_raw" / "spot" / "btcusdt_20240808.gz"
    store = str(tmp_path / "store")
    for _ in range(2):
        assert main(["data", "import", str(raw), "--format", "binance-raw", "--store", store]) == 0
    capsys.readouterr()
    assert main(["data", "ls", "--store", store, "--json"]) == 0
    listing = {d["kind"]: d["rows"] for d in json.loads(capsys.readouterr().out)}
    assert listing["trade"] == 9757  # every trade once, not twice


def _entry(report, symbol: str, kind: str) -> dict:
    """Find one (symbol, kind) entry whatever the report's nesting (list of dicts or nested dicts)."""
    if isinstance(report, dict) and "datasets" in report:
        report = report["datasets"]
    if isinstance(report, list):
        for e in report:
            if e.get("symbol") == symbol and e.get("kind") == kind:
                return e
        raise AssertionError(f"no {symbol}/{kind} in {report}")
    for venue in report.values():
        if symbol in venue and kind in venue[symbol]:
            return venue[symbol][kind]
    raise AssertionError(f"no {symbol}/{kind} in {report}")
