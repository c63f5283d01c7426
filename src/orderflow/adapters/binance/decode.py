"""Binance wire messages: typed msgspec structs and a decoder into domain events.

Raw payloads are decoded here and nowhere else; past this module nothing knows Binance field names.
Numeric strings ("61800.20") are decoded straight to floats (``strict=False``).
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from orderflow.core.events import Bar, BookDelta, Liquidation, MarkPrice, Quote, Side, Trade
from orderflow.core.timeutil import NS_PER_MS

T = TypeVar("T")


class DepthUpdateMsg(msgspec.Struct):
    """Diff depth (``<symbol>@depth``, ``@depth@100ms``, futures ``@depth@0ms``)::

        {"e":"depthUpdate","E":1723161256352,"T":1723161256352,"s":"BTCUSDT","U":5123107837801,
         "u":5123107842679,"pu":5123107837557,"b":[["61800.20","2.909"]],"a":[["61800.30","0"]]}

    Spot has no ``T`` and no ``pu``.
    """

    E: int
    s: str
    U: int
    u: int
    b: list[tuple[float, float]]
    a: list[tuple[float, float]]
    T: int = 0
    pu: int = -1


class PartialDepthMsg(msgspec.Struct):
    """Partial depth (``<symbol>@depth5/10/20[@100ms]``). Spot sends ``{"lastUpdateId", "bids",
    "asks"}`` without symbol or time; futures send a depthUpdate-shaped event with ``E, T, s, U, u, pu``."""

    bids: list[tuple[float, float]] = []
    asks: list[tuple[float, float]] = []
    b: list[tuple[float, float]] = []
    a: list[tuple[float, float]] = []
    lastUpdateId: int = -1
    u: int = -1
    E: int = 0
    T: int = 0
    s: str = ""


class TradeMsg(msgspec.Struct):
    """Trade (``<symbol>@trade``)::

        {"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,
         "p":"61800.30","q":"0.006","X":"MARKET","m":false}

    ``m`` is isBuyerMaker: true means the buyer was the resting order, so the seller aggressed.
    """

    E: int
    s: str
    t: int
    p: float
    q: float
    m: bool
    T: int = 0
    X: str = "MARKET"


class AggTradeMsg(msgspec.Struct):
    """Aggregate trade (``<symbol>@aggTrade``): ``{"e":"aggTrade","E","s","a","p","q","f","l","T","m"}``."""

    E: int
    s: str
    a: int
    p: float
    q: float
    m: bool
    T: int = 0


class BookTickerMsg(msgspec.Struct):
    """Best bid/ask (``<symbol>@bookTicker``)::

        {"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507",
         "a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}

    Spot omits ``e``, ``E`` and ``T``.
    """

    u: int
    s: str
    b: float
    B: float
    a: float
    A: float
    E: int = 0
    T: int = 0


class KlineBody(msgspec.Struct):
    t: int
    T: int
    i: str
    o: float
    c: float
    h: float
    l: float
    v: float
    n: int
    x: bool
    q: float = float("nan")
    V: float = float("nan")


class KlineMsg(msgspec.Struct):
    """Kline (``<symbol>@kline_1m``)::

    {"e":"kline","E":1723161260000,"s":"BTCUSDT","k":{"t":1723161180000,"T":1723161239999,"i":"1m",
     "o":"61800.1","c":"61810.0","h":"61820.0","l":"61790.5","v":"12.5","n":42,"x":true,...}}
    """

    E: int
    s: str
    k: KlineBody


class MarkPriceMsg(msgspec.Struct):
    """Mark price (USD-M ``<symbol>@markPrice`` every 3 s, ``@markPrice@1s`` every second)::

        {"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000",
         "i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}

    ``p`` mark, ``i`` index, ``P`` estimated settle price, ``r`` funding rate, ``T`` next funding time.
    """

    E: int
    s: str
    p: float
    i: float = float("nan")
    P: float = float("nan")
    r: float = float("nan")
    T: int = 0


class ForceOrderBody(msgspec.Struct):
    s: str
    S: str
    q: float
    p: float
    ap: float
    X: str
    z: float
    T: int
    o: str = "LIMIT"
    f: str = "IOC"
    l: float = 0.0


class ForceOrderMsg(msgspec.Struct):
    """Liquidation order (USD-M ``<symbol>@forceOrder``, the latest one per symbol within 1000 ms)::

    {"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",
     "q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}
    """

    E: int
    o: ForceOrderBody


class SnapshotMsg(msgspec.Struct):
    """REST depth snapshot (``GET /api/v3/depth`` or ``/fapi/v1/depth``)::

    {"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,
     "bids":[["61800.20","2.909"],...],"asks":[...]}
    """

    lastUpdateId: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    E: int = 0
    T: int = 0


class Envelope(msgspec.Struct, Generic[T]):
    """Combined-stream wrapper ``{"stream": "...", "data": {...}}``."""

    stream: str
    data: T


_env_dec = msgspec.json.Decoder(Envelope[msgspec.Raw])
_depth_dec = msgspec.json.Decoder(DepthUpdateMsg, strict=False)
_partial_dec = msgspec.json.Decoder(PartialDepthMsg, strict=False)
_trade_dec = msgspec.json.Decoder(TradeMsg, strict=False)
_agg_dec = msgspec.json.Decoder(AggTradeMsg, strict=False)
_ticker_dec = msgspec.json.Decoder(BookTickerMsg, strict=False)
_kline_dec = msgspec.json.Decoder(KlineMsg, strict=False)
_snapshot_dec = msgspec.json.Decoder(SnapshotMsg, strict=False)
_mark_dec = msgspec.json.Decoder(MarkPriceMsg, strict=False)
_force_dec = msgspec.json.Decoder(ForceOrderMsg, strict=False)
# the streams only USD-M has (names as subscribed, without the symbol)
FUTURES_ONLY_STREAMS = ("markPrice", "forceOrder")


class DecodeError(ValueError):
    """A raw message that is not valid Binance JSON of a known stream."""


def stream_kind(stream: str) -> str:
    """Classify a stream name: ``btcusdt@depth@0ms`` -> ``depth``; ``btcusdt@depth20@100ms`` ->
    ``partial``; ``@trade``, ``@aggTrade``, ``@bookTicker``, ``@kline_1m`` -> trade, aggtrade, ticker,
    kline; USD-M ``@markPrice[@1s]`` -> markprice, ``@forceOrder`` -> forceorder."""
    parts = stream.split("@")
    if len(parts) < 2:
        raise DecodeError(f"not a Binance stream name: {stream!r}")
    ch = parts[1]
    if ch == "depth":
        return "depth"
    if ch.startswith("depth"):
        return "partial"
    if ch == "trade":
        return "trade"
    if ch == "aggTrade":
        return "aggtrade"
    if ch == "bookTicker":
        return "ticker"
    if ch.startswith("kline_"):
        return "kline"
    if ch == "markPrice":
        return "markprice"
    if ch == "forceOrder":
        return "forceorder"
    raise DecodeError(f"unsupported Binance stream {stream!r}")


def decode_snapshot(raw: bytes | str) -> SnapshotMsg:
    try:
        return _snapshot_dec.decode(raw)
    except msgspec.DecodeError as e:
        raise DecodeError(f"bad depth snapshot: {e}") from None


def snapshot_delta(venue: str, symbol: str, snap: SnapshotMsg, ts_recv: int) -> BookDelta:
    """A REST snapshot as a :class:`BookDelta` covering one update id (for lossless ``depth`` rows)."""
    ts_event = (snap.T or snap.E) * NS_PER_MS or ts_recv
    lid = snap.lastUpdateId
    return BookDelta(venue, symbol, ts_event, ts_recv, lid, lid, -1, tuple(snap.bids), tuple(snap.asks))


def is_snapshot(raw: bytes) -> bool:
    return raw[:40].find(b'"lastUpdateId"') >= 0


class Decoder:
    """Turns raw combined-stream messages into domain events for one venue.

    ``decode(raw, ts_recv)`` returns a :class:`BookDelta`, :class:`Trade`, :class:`Quote`,
    :class:`Bar`, :class:`MarkPrice`, :class:`Liquidation` or a ``(symbol, PartialDepthMsg)`` for
    partial depth (which needs the symbol from the stream name on spot). Raises :class:`DecodeError`
    naming the problem on bad input.
    """

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._kinds: dict[str, str] = {}

    def kind_of(self, stream: str) -> str:
        k = self._kinds.get(stream)
        if k is None:
            k = self._kinds[stream] = stream_kind(stream)
        return k

    def decode(self, raw: bytes | str, ts_recv: int):
        try:
            env = _env_dec.decode(raw)
        except msgspec.DecodeError as e:
            raise DecodeError(f"not a combined-stream message: {e}") from None
        return self.decode_data(env.stream, env.data, ts_recv)

    def decode_data(self, stream: str, data: bytes | msgspec.Raw, ts_recv: int):
        kind = self.kind_of(stream)
        venue = self.venue
        try:
            if kind == "depth":
                m = _depth_dec.decode(data)
                return BookDelta(
                    venue, m.s, (m.T or m.E) * NS_PER_MS, ts_recv, m.U, m.u, m.pu, tuple(m.b), tuple(m.a)
                )
            if kind == "trade":
                t = _trade_dec.decode(data)
                return Trade(
                    venue,
                    t.s,
                    (t.T or t.E) * NS_PER_MS,
                    ts_recv,
                    t.t,
                    t.p,
                    t.q,
                    Side.SELL if t.m else Side.BUY,
                )
            if kind == "ticker":
                q = _ticker_dec.decode(data)
                ts = (q.T or q.E) * NS_PER_MS or ts_recv
                return Quote(venue, q.s, ts, ts_recv, q.u, q.b, q.B, q.a, q.A)
            if kind == "aggtrade":
                g = _agg_dec.decode(data)
                return Trade(
                    venue,
                    g.s,
                    (g.T or g.E) * NS_PER_MS,
                    ts_recv,
                    g.a,
                    g.p,
                    g.q,
                    Side.SELL if g.m else Side.BUY,
                )
            if kind == "kline":
                km = _kline_dec.decode(data)
                k = km.k
                return Bar(
                    venue,
                    km.s,
                    k.i,
                    k.t * NS_PER_MS,
                    (k.T + 1) * NS_PER_MS,
                    ts_recv,
                    k.o,
                    k.h,
                    k.l,
                    k.c,
                    k.v,
                    k.q,
                    k.n,
                    k.V,
                    k.x,
                )
            if kind == "markprice":
                mp = _mark_dec.decode(data)
                return MarkPrice(
                    venue, mp.s, mp.E * NS_PER_MS, ts_recv, mp.p, mp.i, mp.P, mp.r, mp.T * NS_PER_MS
                )
            if kind == "forceorder":
                fo = _force_dec.decode(data).o
                side = Side.BUY if fo.S == "BUY" else Side.SELL
                return Liquidation(
                    venue, fo.s, fo.T * NS_PER_MS, ts_recv, side, fo.p, fo.ap, fo.q, fo.z, fo.X
                )
            p = _partial_dec.decode(data)
            return stream.split("@", 1)[0].upper(), p
        except msgspec.DecodeError as e:
            raise DecodeError(f"bad {kind} message on {stream}: {e}") from None
