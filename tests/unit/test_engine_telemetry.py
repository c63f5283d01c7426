"""The engine's telemetry door: the book is thinned per symbol, trades are aggregated per interval, the
end of a run flushes everything, and the metrics endpoint serves what was published."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pytest

from orderflow.engine.telemetry import EngineTelemetry
from orderflow.telemetry import schema as S
from orderflow.telemetry.bus import FileReader

MS = 1_000_000


def _levels(mid: float) -> tuple[np.ndarray, ...]:
    bp = mid - 0.1 * np.arange(1, 21)
    ap = mid + 0.1 * np.arange(1, 21)
    return bp, np.ones(20), ap, np.full(20, 2.0)


def test_book_trades_and_the_end_of_a_run(tmp_path: Path):
    t = EngineTelemetry(str(tmp_path), 3, mode="paper", venue="local", symbols=("BTCUSDT",), metrics_port=0)
    for i in range(50):  # 50 book events 10 ms apart: 0.5 s, published at most every 100 ms
        t.book("BTCUSDT", 1_000 * MS + i * 10 * MS, i, *_levels(100.0 + i))
    prices = [(100.0, 1.0, True), (101.0, 3.0, False), (99.0, 2.0, True)]
    for k, (p, q, b) in enumerate(prices):  # within one 250 ms interval
        t.trade("BTCUSDT", 2_000 * MS + k * MS, p, q, b)
    t.trade("BTCUSDT", 2_300 * MS, 102.0, 1.0, True)  # the next interval: the first one is published
    t.decision(
        "BTCUSDT",
        {
            "ts_ns": 5,
            "fused": 0.5,
            "ofi_score": float("nan"),
            "ai_score": 0.1,
            "confidence": 0.7,
            "quality": 1.0,
            "ev": 1e-3,
            "cost": 5e-4,
            "action": "enter_long",
            "gate": "pass",
        },
    )
    assert t.metrics_url.startswith("http://127.0.0.1:")
    assert t.publisher.flush()
    with urllib.request.urlopen(t.metrics_url, timeout=5) as r:
        text = r.read().decode()
    assert 'orderflow_decisions_total{action="enter_long",gate="pass",symbol="BTCUSDT"} 1.0' in text
    url = t.metrics_url
    t.close("minutes elapsed")
    events = FileReader(tmp_path).read(3, max_events=10**6)
    books = [e for e in events if isinstance(e, S.BookTop)]
    assert 1 <= len(books) <= 6 and books[-1].bids[0][0] == pytest.approx(100.0 + 40 - 0.1)
    assert len(books[-1].bids) == 10
    aggs = [e for e in events if isinstance(e, S.TradeAgg)]
    assert len(aggs) == 2  # the full interval, then the one the close flushed
    a = aggs[0]
    assert (a.count, a.buy_qty, a.sell_qty, a.high, a.low, a.last) == (3, 3.0, 3.0, 101.0, 99.0, 99.0)
    assert a.vwap == pytest.approx((100 + 303 + 198) / 6)
    d = next(e for e in events if isinstance(e, S.Decision))
    assert d.ofi_score == 0.0  # a NaN score is sent as 0, not as NaN
    assert isinstance(events[0], S.RunStarted) and events[0].metrics_url == url
    assert isinstance(events[-1], S.RunStopped) or any(isinstance(e, S.RunStopped) for e in events)
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)  # the metrics server stopped with the run
