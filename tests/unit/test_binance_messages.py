"""Decoding Binance wire messages (samples copied from the recordings) into domain events."""

from __future__ import annotations

import pytest

from orderflow.adapters.binance.decode import DecodeError, Decoder, decode_snapshot, stream_kind
from orderflow.core.events import Bar, BookDelta, Quote, Side, Trade

USDM_DEPTH = (
    b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256352,"T":1723161256352,'
    b'"s":"BTCUSDT","U":5123107837801,"u":5123107842679,"pu":5123107837557,'
    b'"b":[["1000.00","606.675"],["61800.20","0.000"]],"a":[["61800.30","2.155"]]}}'
)
SPOT_TICKER = (
    b'{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000",'
    b'"B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}'
)
TRADE = (
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256321,"s":"BTCUSDT",'
    b'"t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":true}}'
)
KLINE = (
    b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1723161260000,"s":"BTCUSDT","k":{"t":1723161180000,'
    b'"T":1723161239999,"s":"BTCUSDT","i":"1m","f":1,"L":2,"o":"61800.1","c":"61810.0","h":"61820.0",'
    b'"l":"61790.5","v":"12.5","n":42,"x":true,"q":"772000.1","V":"6.1","Q":"1","B":"0"}}}'
)


def test_depth_update():
    ev = Decoder("binance-usdm").decode(USDM_DEPTH, 7)
    assert isinstance(ev, BookDelta)
    assert (ev.first_update_id, ev.last_update_id, ev.prev_update_id) == (
        5123107837801,
        5123107842679,
        5123107837557,
    )
    assert ev.ts_event == 1723161256352 * 10**6 and ev.ts_recv == 7
    assert ev.bids == ((1000.0, 606.675), (61800.2, 0.0)) and ev.asks == ((61800.3, 2.155),)


def test_trade_aggressor_from_is_buyer_maker():
    ev = Decoder("binance-usdm").decode(TRADE, 1)
    assert isinstance(ev, Trade)
    assert ev.aggressor is Side.SELL  # m=true: the buyer rested, the seller crossed
    assert ev.ts_event == 1723161256321 * 10**6  # trade time T, not event time E
    assert (ev.price, ev.size, ev.trade_id) == (61800.3, 0.006, 5266583935)
    buy = Decoder("binance-usdm").decode(TRADE.replace(b'"m":true', b'"m":false'), 1)
    assert buy.aggressor is Side.BUY


def test_spot_book_ticker_without_times_uses_receive_time():
    ev = Decoder("binance-spot").decode(SPOT_TICKER, 99)
    assert isinstance(ev, Quote)
    assert ev.ts_event == 99 and ev.update_id == 50093239212
    assert (ev.bid_price, ev.ask_price) == (61837.63, 61837.64)


def test_kline():
    ev = Decoder("binance-usdm").decode(KLINE, 1)
    assert isinstance(ev, Bar)
    assert (ev.interval, ev.open, ev.high, ev.low, ev.close, ev.trades, ev.closed) == (
        "1m",
        61800.1,
        61820.0,
        61790.5,
        61810.0,
        42,
        True,
    )
    assert ev.ts_event - ev.ts_open == 60 * 10**9


def test_snapshot():
    snap = decode_snapshot(b'{"lastUpdateId":5,"E":1,"T":2,"bids":[["1.0","2"]],"asks":[]}')
    assert snap.lastUpdateId == 5 and snap.bids == [(1.0, 2.0)] and snap.T == 2


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"{not json", "not a combined-stream message"),
        (USDM_DEPTH[:80], "not a combined-stream message"),
        (
            b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate"}}',
            "bad depth message on btcusdt@depth@0ms",
        ),
        (b'{"stream":"btcusdt@compositeIndex","data":{}}', "unsupported Binance stream"),
        (b'{"stream":"btcusdt@forceOrder","data":{}}', "bad forceorder message on btcusdt@forceOrder"),
        (b'{"stream":"btcusdt@markPrice@1s","data":{"E":1}}', "bad markprice message on btcusdt@markPrice"),
        (b'{"stream":"btcusdt@trade","data":{"E":1,"s":"X","t":1,"p":"abc","q":"1","m":true}}', "bad trade"),
    ],
)
def test_bad_messages_raise_decode_error_naming_the_problem(raw, match):
    with pytest.raises(DecodeError, match=match):
        Decoder("binance-usdm").decode(raw, 0)


def test_stream_kinds():
    assert stream_kind("btcusdt@depth@100ms") == "depth"
    assert stream_kind("btcusdt@depth20@100ms") == "partial"
    assert stream_kind("btcusdt@aggTrade") == "aggtrade"
    assert stream_kind("btcusdt@kline_4h") == "kline"
