"""A real recording turned into the telemetry a paper engine would publish trading over it, and the
anomalies the anomaly detector's tests inject into it.

:func:`replay` imports raw Binance files into a store (the production importer and depth sync), runs
the project's backtester over them (the real strategy, risk, execution and matching kernels; the model
is a fixed rule on the OFI z-score, as in the parity tests, with the gates opened so that it trades)
and builds, on the backtester's clock (receive time, never before exchange time), what
:class:`~orderflow.engine.telemetry.PaperTap` would publish:

- ``BookTop``: the top 10 levels, at most every 0.1 s (``EngineTelemetry.book``);
- ``TradeAgg``: market trades aggregated per 0.25 s (``EngineTelemetry.trade``);
- ``FeedHealth``: at the first book event of every second (``PaperTap.state``). Its ``lag_ms`` here is
  the recorded delay from exchange time to receive time of that book event, less the smallest such
  delay in the recording: the collectors' clocks are offset from Binance's (the 2024 USD-M files receive
  about 1.27 s *before* exchange time), and a replay has no wall clock of its own to measure the
  engine's lag against, so the recorded network delay and its jitter stand in for it;
- per order of the backtest (its fills grouped by time, side and action): one ``OrderUpdate``
  (``filled``), its ``FillEvent`` s (slippage against the mid at the decision, as ``PaperTap.fill``)
  and after each fill a ``PositionEvent`` (position, average price and realized PnL before fees, by
  average cost, as the portfolio books them).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from msgspec.structs import replace

from orderflow.backtest.config import VenueAccountConfig
from orderflow.backtest.engine import Market, make_signals, run_backtest
from orderflow.config import load_config
from orderflow.data.importers.binance_raw import import_binance_raw
from orderflow.data.store import Store
from orderflow.features.batch import build_features
from orderflow.telemetry import schema as S

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000


@dataclass
class Recording:
    name: str
    symbol: str
    events: list = field(repr=False)
    hours: float
    fills: pd.DataFrame = field(repr=False)
    trips: pd.DataFrame = field(repr=False)


def ofi_rule_probs(feats: pd.DataFrame) -> np.ndarray:
    """A fixed, causal stand-in for a model: probabilities leaning with the OFI z-score."""
    z = np.nan_to_num(feats["ofi_int_z_1s"].to_numpy(), nan=0.0)
    up = 0.5 + 0.5 * z / (1.0 + np.abs(z))
    return np.stack([0.8 * (1.0 - up), np.full_like(up, 0.2), 0.8 * up], axis=1)


def replay(name: str, paths: Sequence[Path], store_dir: Path, run_id: int = 1) -> Recording:
    store = Store(store_dir)
    import_binance_raw(store, list(paths))
    ((venue, symbol, _),) = store.datasets(kind="book")
    cfg = load_config(ROOT / "config" / "examples" / "short-recording", environ={})
    feats = build_features(store, venue, symbol, cfg.features)
    book, trades = store.read(venue, symbol, "book"), store.read(venue, symbol, "trade")
    market = Market.from_frames(venue, symbol, book, trades)
    strategy = cfg.strategy.model_copy(
        update={"confidence_gate": 0.55, "ev_cost_mult": 0.0, "quality_gate": 0.5}
    )
    res = run_backtest(
        market,
        make_signals(feats, ofi_rule_probs(feats), strategy),
        store.instrument(venue, symbol),
        VenueAccountConfig(),
        strategy,
    )
    book = book.sort_values("ts_event", kind="stable")
    delay = (book["ts_recv"].to_numpy(np.int64) - book["ts_event"].to_numpy(np.int64)) / 1e6
    events = telemetry(market, delay - delay.min(), res.fills, run_id)
    hours = (market.b_recv[-1] - market.b_recv[0]) / NS / 3600
    return Recording(name, symbol, events, hours, res.fills, res.trades)


def telemetry(market: Market, lag_ms: np.ndarray, fills: pd.DataFrame, run: int) -> list:
    """The events, ordered by time (module docstring)."""
    sym = market.symbol
    out: list[tuple[int, int, object]] = []  # (ts, order of publication, event)
    seq = 0
    last_book = last_state = -(2**62)
    bp, bs, ap, asz = (
        np.asarray(a[:, :10]) for a in (market.bid_px, market.bid_sz, market.ask_px, market.ask_sz)
    )
    for j, t in enumerate(market.b_recv.tolist()):
        if t - last_book >= NS // 10:
            last_book = t
            bids = tuple(
                (p, q) for p, q in zip(bp[j].tolist(), bs[j].tolist(), strict=True) if p == p and q > 0
            )
            asks = tuple(
                (p, q) for p, q in zip(ap[j].tolist(), asz[j].tolist(), strict=True) if p == p and q > 0
            )
            out.append(
                (t, seq, S.BookTop(run_id=run, ts_ns=t, symbol=sym, update_id=j, bids=bids, asks=asks))
            )
            seq += 1
        if t - last_state >= NS:
            last_state = t
            fh = S.FeedHealth(
                run_id=run,
                ts_ns=t,
                symbol=sym,
                lag_ms=float(lag_ms[j]),
                gaps=0,
                resyncs=0,
                reconnects=0,
                watchdog_trips=0,
                synced=True,
                book_updates=j + 1,
            )
            out.append((t, seq, fh))
            seq += 1
    start, agg = -1, []
    for t, p, q, side in zip(
        market.t_recv.tolist(),
        market.t_px.tolist(),
        market.t_sz.tolist(),
        market.t_side.tolist(),
        strict=True,
    ):
        if agg and t - start >= NS // 4:
            out.append((t, seq, _agg(run, sym, start, t, agg)))
            seq += 1
            agg = []
        if not agg:
            start = t
        agg.append((p, q, side))
    pos, avg, realized = 0.0, math.nan, 0.0
    order = -1
    key = None
    for t, side, qty, px, fee, maker, action, mid in fills.itertuples(index=False):
        t = int(t)
        if (t, side, action) != key:
            key, order = (t, side, action), order + 1
            ou = S.OrderUpdate(
                run_id=run,
                ts_ns=t,
                symbol=sym,
                client_order_id=f"bt-{order}",
                side="BUY" if side > 0 else "SELL",
                order_type="market",
                state="filled",
                qty=float(qty),
            )
            out.append((t, seq, ou))
            seq += 1
        slip = side * (px - mid) / mid if mid > 0 else 0.0
        out.append(
            (
                t,
                seq,
                S.FillEvent(
                    run_id=run,
                    ts_ns=t,
                    symbol=sym,
                    client_order_id=f"bt-{order}",
                    trade_id=f"{order}-{seq}",
                    side="BUY" if side > 0 else "SELL",
                    price=float(px),
                    qty=float(qty),
                    fee=float(fee),
                    liquidity="maker" if maker else "taker",
                    slippage=float(slip),
                ),
            )
        )
        seq += 1
        pos, avg, realized = book_fill(pos, avg, realized, side * qty, px)
        out.append(
            (
                t,
                seq,
                S.PositionEvent(
                    run_id=run,
                    ts_ns=t,
                    symbol=sym,
                    qty=pos,
                    avg_price=None if math.isnan(avg) else avg,
                    realized_pnl=realized,
                    unrealized_pnl=0.0,
                    mark_price=px,
                ),
            )
        )
        seq += 1
    out.sort(key=lambda r: (r[0], r[1]))
    return [e for _, _, e in out]


def _agg(run: int, sym: str, start: int, t: int, agg: list) -> S.TradeAgg:
    buy = sum(q for _, q, s in agg if s > 0)
    sell = sum(q for _, q, s in agg if s <= 0)
    vwap = sum(p * q for p, q, _ in agg) / (buy + sell) if buy + sell > 0 else agg[-1][0]
    return S.TradeAgg(
        run_id=run,
        ts_ns=t,
        symbol=sym,
        start_ns=start,
        count=len(agg),
        buy_qty=buy,
        sell_qty=sell,
        vwap=vwap,
        last=agg[-1][0],
        high=max(p for p, _, _ in agg),
        low=min(p for p, _, _ in agg),
    )


def book_fill(
    pos: float, avg: float, realized: float, signed_qty: float, px: float
) -> tuple[float, float, float]:
    """Position, average price and realized PnL after a fill, by average cost."""
    if pos == 0.0 or (pos > 0) == (signed_qty > 0):
        new = pos + signed_qty
        avg = px if pos == 0.0 else (avg * abs(pos) + px * abs(signed_qty)) / abs(new)
        return new, avg, realized
    closed = min(abs(signed_qty), abs(pos))
    realized += closed * (px - avg) * (1.0 if pos > 0 else -1.0)
    new = pos + signed_qty
    if abs(new) <= 1e-9 * max(abs(pos), 1.0):
        return 0.0, math.nan, realized
    return new, (avg if (new > 0) == (pos > 0) else px), realized


# -- injected anomalies ---------------------------------------------------------------------------
def _ts(events: list) -> list[int]:
    return [e.ts_ns for e in events]


def _insert(events: list, new: list) -> list:
    """``events`` with ``new`` placed by time (after the events of the same time)."""
    out = list(events)
    for e in sorted(new, key=lambda e: e.ts_ns):
        out.insert(bisect.bisect_right(_ts(out), e.ts_ns), e)
    return out


def mid_at(events: list, t: int) -> float:
    """The mid of the last BookTop at or before ``t``."""
    for e in reversed(events[: bisect.bisect_right(_ts(events), t)]):
        if isinstance(e, S.BookTop) and e.bids and e.asks:
            return 0.5 * (e.bids[0][0] + e.asks[0][0])
    raise ValueError(f"no book before {t}")


def flat_at(events: list, t: int) -> tuple[int, float, float]:
    """The first time at or after ``t`` when the position is flat and stays flat for 60 s, with the
    realized PnL and the size of the last position then."""
    last_q, realized, flat_since = 0.0, 0.0, None
    for e in events:
        if not isinstance(e, S.PositionEvent):
            continue
        if flat_since is not None and flat_since >= t and e.ts_ns - flat_since > 60 * NS:
            return flat_since + NS, realized, last_q
        realized = e.realized_pnl
        if e.qty == 0.0:
            flat_since = e.ts_ns
        else:
            flat_since, last_q = None, abs(e.qty)
    raise ValueError(f"no flat minute after {t}")


def widen_spread(events: list, t0: int, seconds: float, factor: float) -> list:
    """Every BookTop in ``[t0, t0 + seconds)`` with its spread times ``factor`` around the same mid."""
    t1 = t0 + int(seconds * NS)
    out = []
    for e in events:
        if isinstance(e, S.BookTop) and t0 <= e.ts_ns < t1 and e.bids and e.asks:
            half = 0.5 * (factor - 1.0) * (e.asks[0][0] - e.bids[0][0])
            e = replace(
                e, bids=tuple((p - half, q) for p, q in e.bids), asks=tuple((p + half, q) for p, q in e.asks)
            )
        out.append(e)
    return out


def add_lag(events: list, t0: int, seconds: float, ms: float) -> list:
    t1 = t0 + int(seconds * NS)
    return [
        replace(e, lag_ms=e.lag_ms + ms) if isinstance(e, S.FeedHealth) and t0 <= e.ts_ns < t1 else e
        for e in events
    ]


def set_slippage(events: list, t0: int, slippage: float) -> tuple[list, S.FillEvent]:
    """The first fill at or after ``t0`` with the given slippage."""
    out = list(events)
    for i in range(bisect.bisect_left(_ts(events), t0), len(events)):
        e = events[i]
        if isinstance(e, S.FillEvent):
            out[i] = replace(e, slippage=slippage)
            return out, out[i]
    raise ValueError(f"no fill after {t0}")


def far_fill(events: list, t0: int, bps: float, run: int) -> list:
    """One extra fill at ``t0`` priced ``bps`` above the mid (its slippage field left at 0)."""
    e = events[0]
    px = mid_at(events, t0) * (1 + bps / 1e4)
    return _insert(
        events,
        [
            S.FillEvent(
                run_id=run,
                ts_ns=t0,
                symbol=e.symbol,
                client_order_id="far-1",
                trade_id="far-1",
                side="BUY",
                price=px,
                qty=1.0,
                fee=0.0,
            )
        ],
    )


def flip_flops(events: list, t0: int, n: int, run: int) -> tuple[list, int]:
    """``n`` positions in 30 s from a flat moment at or after ``t0``, alternating long and short, each
    closed at no PnL; returns the events and the burst's start."""
    t, realized, q = flat_at(events, t0)
    sym = events[0].symbol
    new = []
    for k in range(n):
        ts = t + k * int(30 * NS / n)
        sign = 1.0 if k % 2 == 0 else -1.0
        new.append(
            S.PositionEvent(
                run_id=run,
                ts_ns=ts,
                symbol=sym,
                qty=sign * q,
                avg_price=1.0,
                realized_pnl=realized,
                unrealized_pnl=0.0,
            )
        )
        new.append(
            S.PositionEvent(
                run_id=run,
                ts_ns=ts + 1,
                symbol=sym,
                qty=0.0,
                avg_price=None,
                realized_pnl=realized,
                unrealized_pnl=0.0,
            )
        )
    return _insert(events, new), t


def pnl_trip(events: list, t0: int, pnl: float, run: int) -> tuple[list, int]:
    """One extra round trip from a flat moment at or after ``t0`` that makes ``pnl``."""
    t, realized, q = flat_at(events, t0)
    sym = events[0].symbol
    new = [
        S.PositionEvent(
            run_id=run, ts_ns=t, symbol=sym, qty=q, avg_price=1.0, realized_pnl=realized, unrealized_pnl=0.0
        ),
        S.PositionEvent(
            run_id=run,
            ts_ns=t + NS,
            symbol=sym,
            qty=0.0,
            avg_price=None,
            realized_pnl=realized + pnl,
            unrealized_pnl=0.0,
        ),
    ]
    return _insert(events, new), t


def order_burst(events: list, t0: int, n: int, run: int) -> list:
    """``n`` extra orders sent within the minute after ``t0``."""
    sym = events[0].symbol
    return _insert(
        events,
        [
            S.OrderUpdate(
                run_id=run,
                ts_ns=t0 + k * int(50 * NS / n),
                symbol=sym,
                client_order_id=f"burst-{k}",
                side="BUY",
                order_type="market",
                state="new",
                qty=1.0,
            )
            for k in range(n)
        ],
    )


def market_burst(events: list, t0: int, count: int, run: int) -> list:
    """One extra ``TradeAgg`` of ``count`` market trades at ``t0``."""
    e = next(e for e in events if isinstance(e, S.TradeAgg))
    px = e.last
    return _insert(
        events,
        [
            S.TradeAgg(
                run_id=run,
                ts_ns=t0,
                symbol=e.symbol,
                start_ns=t0 - NS // 4,
                count=count,
                buy_qty=float(count),
                sell_qty=0.0,
                vwap=px,
                last=px,
                high=px,
                low=px,
            )
        ],
    )


def trades_per_minute(events: list) -> np.ndarray:
    """The market's trades in every whole minute of the recording (empty minutes too)."""
    ta = [e for e in events if isinstance(e, S.TradeAgg)]
    first, last = events[0].ts_ns // (60 * NS), events[-1].ts_ns // (60 * NS)
    counts = np.zeros(last - first + 1, np.int64)
    for e in ta:
        counts[e.ts_ns // (60 * NS) - first] += e.count
    return counts
