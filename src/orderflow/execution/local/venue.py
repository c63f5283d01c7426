"""The core of the local exchange (no networking): the replayed market, one simulated exchange per
symbol, the account, and the order book-keeping that turns the simulated exchange's fills and reports
into Binance orders, execution reports and account updates.

Matching: every order goes through :class:`SimulatedExchange` (the backtester's fill rules: book walk,
queue model, stop-limit trigger on trades) with zero latency, fed with the same book and trade events
the market streams publish. An order sent over REST is matched at once against the current book at the
exchange time of the last applied event (:meth:`LocalVenue.now_ns`), so the answer already shows its
taker fills; resting orders fill on later book and trade events.

Lockstep clock (``cfg.clock == "lockstep"``, driven by :mod:`orderflow.engine.lockstep`): the venue
behaves like the backtester's exchange, so that an engine trading against it over the network gets the
backtest's fills. Event times are cut to Binance's ms and prices and sizes to their printed decimals (what
the streams carry); times are not shifted unless ``start_ms`` is given; orders are matched by
``cfg.matching`` (latency, queue model, fees) and leave at the client's time (:attr:`LocalVenue.client_ns`,
set by the driver) plus ``cfg.decision_latency_us``; the user data messages of a fill or report are held
until its response time (``ts_strategy``) and handed out by :meth:`LocalVenue.release`.

Output queues, emptied by the server after each call: ``market_out`` (stream name, payload) and
``user_out`` (user data stream payloads). Units: prices in quote currency, sizes in base units,
internal times in int ns, Binance times in ms.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from orderflow.adapters.binance.common.venues import caps
from orderflow.core.instruments import split_symbol
from orderflow.data.schema import book_columns
from orderflow.execution import sim_layout as SL
from orderflow.execution.local.accounts import FuturesAccount, SpotAccount
from orderflow.execution.local.config import LocalExchangeConfig
from orderflow.execution.local.filters import symbol_filters
from orderflow.execution.local.market import BOOK, TRADE, SymbolData, Timeline
from orderflow.execution.local.orders import LocalOrder
from orderflow.execution.local.streams import NS_PER_MS, SymbolMarket
from orderflow.execution.sim_config import LatencyConfig, SimConfig
from orderflow.execution.sim_exchange import Fill, OrderReport, SimulatedExchange
from orderflow.execution.sim_requests import process_arrivals

EPS = 1e-9


class _Matcher(SimulatedExchange):
    """The simulated exchange with one addition: process requests that have arrived by ``ts`` now
    (a REST order is answered with its state after matching, not at the next market event)."""

    def flush(self, ts: int) -> None:
        process_arrivals(*self._args, int(ts))
        self._collect()


def _printed(a: np.ndarray, decimals: int) -> np.ndarray:
    """``a`` as a client reads it back from the wire: each value printed with ``decimals`` and parsed."""
    flat = [float(f"{x:.{decimals}f}") if x == x else math.nan for x in a.ravel().tolist()]
    return np.array(flat, dtype=np.float64).reshape(a.shape)


def on_wire(d: SymbolData) -> SymbolData:
    """One symbol's rows as the streams carry them: times cut to ms, prices and sizes printed."""
    ms = lambda t: (t // 1_000_000) * 1_000_000  # noqa: E731
    inst = d.instrument
    pdec, sdec = inst.price_decimals, inst.size_decimals
    b_recv, t_recv = d.recv_times()
    return replace(
        d,
        book_ts=ms(d.book_ts),
        trade_ts=ms(d.trade_ts),
        book_recv=b_recv,
        trade_recv=t_recv,
        bid_px=_printed(d.bid_px, pdec),
        ask_px=_printed(d.ask_px, pdec),
        bid_sz=_printed(d.bid_sz, sdec),
        ask_sz=_printed(d.ask_sz, sdec),
        trade_px=_printed(d.trade_px, pdec),
        trade_sz=_printed(d.trade_sz, sdec),
    )


class LocalVenue:
    """Market, matching and account of one local exchange (see the module docstring)."""

    def __init__(self, cfg: LocalExchangeConfig, data: list[SymbolData], start_ns: int) -> None:
        self.cfg = cfg
        self.futures = caps(cfg.market).futures
        self.lockstep = cfg.clock == "lockstep"
        if self.lockstep:
            data = [on_wire(d) for d in data]
            if cfg.start_ms is None:  # no shift: the replay keeps the source's times
                start_ns = min(int(a[0]) for d in data for a in (d.book_ts, d.trade_ts) if len(a))
        self.timeline = Timeline(data, start_ns)
        self.start_ns = start_ns
        self.pos = 0
        self.data = {d.symbol: d for d in data}
        self.markets = {d.symbol: SymbolMarket(d.instrument, cfg.levels, self.futures) for d in data}
        # the filters exchangeInfo advertises, by symbol: the ones every new order is checked against
        self.filters = {
            d.symbol: symbol_filters(d.instrument, self.futures, cfg.max_open_orders, cfg.max_position)
            for d in data
        }
        if self.lockstep:
            mc = cfg.matching or SimConfig()
            sim_cfg = mc.model_copy(
                update={"venue": cfg.venue, "max_orders": max(mc.max_orders, cfg.max_open_orders + 8)}
            )
        else:
            sim_cfg = SimConfig(
                venue=cfg.venue,
                maker_fee=cfg.maker_fee,
                taker_fee=cfg.taker_fee,
                latency=LatencyConfig(entry_ms=0.0, response_ms=0.0),
                max_orders=cfg.max_open_orders + 8,
            )
        self.sim_cfg = sim_cfg
        self.matchers = {d.symbol: _Matcher(sim_cfg, levels=cfg.levels) for d in data}
        self.orders: dict[int, LocalOrder] = {}
        self.live_client_ids: dict[tuple[str, str], int] = {}
        self.next_order_id = 1
        self.spot = SpotAccount(cfg.spot_balances)
        for s in self.markets:
            for a in split_symbol(s):
                self.spot.ensure(a)
        self.fut = FuturesAccount(cfg.futures_wallet, leverage=cfg.leverage)
        # perpetual funding, as the backtester books it: at every k * interval (UTC) the open positions
        # pay position * mark * rate (received when negative)
        self.funding_rate = sim_cfg.funding_rate if sim_cfg.perpetual else 0.0
        self.funding_ns = sim_cfg.funding_interval_ns
        self.funding_paid = 0.0  # quote, paid by the account so far
        self.fundings = 0  # funding times that charged a position
        # a symbol's served funding history (times in exchange time, rates): charged at its times, the
        # constant only on the grid before its first time and after its last (as the trading core books
        # a stored or announced schedule); set by the context service (set_funding_schedule)
        self.funding_schedule: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._next_fund = -1  # with a schedule: no funding time before this one (exchange time)
        self.market_out: list[tuple[str, dict[str, Any]]] = []
        self.user_out: list[dict[str, Any]] = []
        self._last_ts = start_ns
        self.last_trade_px: dict[str, float] = {}
        # lockstep: the client's clock, and user data messages held until their response time
        self.client_ns = start_ns
        self.decision_ns = round(cfg.decision_latency_us * 1000)
        self.held: list[tuple[int, int, dict[str, Any]]] = []
        self._seq = 0
        self._last_book: dict[str, int] = {}

    # ---------------------------------------------------------------------------------- clock
    @property
    def now_ns(self) -> int:
        """Exchange time: the (shifted) time of the last applied event."""
        return self._last_ts

    @property
    def now_ms(self) -> int:
        return self._last_ts // NS_PER_MS

    def order_time_ns(self) -> int:
        """When an order sent now leaves the client: exchange time, or in lockstep the client's clock
        plus the decision latency (the simulated exchange adds its entry latency)."""
        return self.client_ns + self.decision_ns if self.lockstep else self._last_ts

    def recv_ns(self, pos: int) -> int:
        """Receive time recorded with the event at timeline position ``pos``."""
        tl = self.timeline
        d = tl.symbols[int(tl.sym[pos])]
        b, t = d.recv_times()
        return int((b if tl.kind[pos] == BOOK else t)[int(tl.row[pos])]) + tl.offset

    def event_kind(self, pos: int) -> str:
        return "book" if self.timeline.kind[pos] == BOOK else "trade"

    @property
    def remaining_events(self) -> int:
        return len(self.timeline) - self.pos

    def next_event_ns(self) -> int | None:
        return int(self.timeline.ts[self.pos]) if self.pos < len(self.timeline) else None

    def step(self) -> bool:
        """Apply the next market event (book or trade); False at the end of the source."""
        tl = self.timeline
        if self.pos >= len(tl):
            return False
        i = self.pos
        self.pos += 1
        ts, d = int(tl.ts[i]), self.timeline.symbols[int(tl.sym[i])]
        r = int(tl.row[i])
        self._charge_funding(ts)
        self._last_ts = max(self._last_ts, ts)
        sym, mkt, m = d.symbol, self.markets[d.symbol], self.matchers[d.symbol]
        low = sym.lower()
        if tl.kind[i] == BOOK:
            self._last_book[sym] = r
            m.on_book(ts, d.bid_px[r], d.bid_sz[r], d.ask_px[r], d.ask_sz[r])
            for suffix, payload in mkt.apply_book(
                ts, d.bid_px[r], d.bid_sz[r], d.ask_px[r], d.ask_sz[r]
            ).items():
                self.market_out.append((f"{low}@{suffix}", payload))
        else:
            px, sz, side = float(d.trade_px[r]), float(d.trade_sz[r]), int(d.trade_side[r])
            m.on_trade(ts, px, sz, side)
            self.last_trade_px[sym] = px
            for suffix, payload in mkt.apply_trade(ts, px, sz, side).items():
                self.market_out.append((f"{low}@{suffix}", payload))
        self._drain(sym)
        return True

    def advance(self, events: int | None = None, until_ns: int | None = None) -> int:
        """Apply ``events`` events, or every event with time <= ``until_ns``; returns how many."""
        n = 0
        while self.pos < len(self.timeline):
            if events is not None and n >= events:
                break
            if until_ns is not None and int(self.timeline.ts[self.pos]) > until_ns:
                break
            self.step()
            n += 1
        if until_ns is not None and until_ns > self._last_ts:
            self._charge_funding(until_ns)
            self._last_ts = until_ns
        return n

    def set_funding_schedule(self, symbol: str, ts: np.ndarray, rates: np.ndarray) -> None:
        """Charge ``symbol``'s funding at these times (exchange time, ns, ascending) and rates."""
        t = np.asarray(ts, np.int64)
        if t.size:
            self.funding_schedule[symbol] = (t, np.asarray(rates, np.float64))
            self._next_fund = -1

    def _grid(self, a: int, b: int) -> int:
        """Constant funding times k * interval in (a, b] (portfolio.fundings_crossed, in plain Python:
        this runs at every event and a numba call's dispatch would cost more than the arithmetic)."""
        if b <= a or self.funding_rate == 0.0:
            return 0
        return b // self.funding_ns - a // self.funding_ns

    def _funding_rate_sum(self, sym: str, a: int, b: int) -> tuple[float, int]:
        """(sum of the rates, number of funding times) of ``sym`` in (a, b]."""
        sched = self.funding_schedule.get(sym)
        if sched is None:
            n = self._grid(a, b)
            return n * self.funding_rate, n
        t, r = sched
        i0, i1 = int(np.searchsorted(t, a, "right")), int(np.searchsorted(t, b, "right"))
        k = self._grid(a, min(b, int(t[0]) - 1)) + self._grid(max(a, int(t[-1])), b)
        return float(r[i0:i1].sum()) + k * self.funding_rate, (i1 - i0) + k

    def _next_funding_after(self, ts: int) -> int:
        """The first funding time (grid or schedule) after ``ts``: no charge is due before it."""
        nxt = (ts // self.funding_ns + 1) * self.funding_ns if self.funding_rate != 0.0 else 2**62
        for t, _ in self.funding_schedule.values():
            i = int(np.searchsorted(t, ts, "right"))
            if i < t.size:
                nxt = min(nxt, int(t[i]))
        return nxt

    def _charge_funding(self, ts: int) -> None:
        """Funding for the funding times in (exchange time, ``ts``], at the marks before the event at
        ``ts``; an ``ACCOUNT_UPDATE`` with reason ``FUNDING_FEE`` carries the balance only (cross margin)."""
        last = self._last_ts
        if ts <= last:
            return
        if not self.funding_schedule:  # the constant only: one integer check per event
            n = self._grid(last, ts)
            if n <= 0:
                return
            marks, paid = self.marks(), 0.0
            for sym, p in self.fut.positions.items():
                if p.amount != 0.0 and sym in marks:
                    paid += n * p.amount * marks[sym] * self.funding_rate
        else:
            if ts < self._next_fund:
                return
            self._next_fund = self._next_funding_after(ts)
            marks, paid, n = None, 0.0, 0
            for sym, p in self.fut.positions.items():
                if p.amount == 0.0:
                    continue
                rate, k = self._funding_rate_sum(sym, last, ts)
                if k == 0:
                    continue
                marks = marks if marks is not None else self.marks()
                if sym in marks:
                    paid += p.amount * marks[sym] * rate
                    n = max(n, k)
        if paid == 0.0:
            return
        self.fut.wallet -= paid
        self.funding_paid += paid
        self.fundings += n
        ms = ts // NS_PER_MS
        self.user_out.append(self.fut.funding_update(ms, -paid))

    def marks(self) -> dict[str, float]:
        out = {}
        for s, m in self.markets.items():
            mid = 0.5 * (m.bid_px[0] + m.ask_px[0])
            if not math.isnan(mid):
                out[s] = mid
        return out

    # --------------------------------------------------------------------------- matcher output
    def _drain(self, symbol: str) -> None:
        m = self.matchers[symbol]
        reports, fills = m.drain_reports(), m.drain_fills()
        if not reports and not fills:
            return
        first: list[int] = []
        acc: dict[int, list[OrderReport]] = defaultdict(list)
        rest: dict[int, list[OrderReport]] = defaultdict(list)
        fl: dict[int, list[Fill]] = defaultdict(list)
        for r in reports:
            if r.order_id not in first:
                first.append(r.order_id)
            (acc if r.reason in ("accepted", "triggered", "reduce_only_trimmed") else rest)[
                r.order_id
            ].append(r)
        for f in fills:
            if f.order_id not in first:
                first.append(f.order_id)
            fl[f.order_id].append(f)
        for oid in first:
            o = self.orders.get(oid)
            if o is None:
                continue
            for r in acc[oid]:
                self._held_after(r.ts_strategy, self._on_report, o, r)
            for f in fl[oid]:
                self._held_after(f.ts_strategy, self._on_fill, o, f)
            for r in rest[oid]:
                self._held_after(r.ts_strategy, self._on_report, o, r)

    def _held_after(self, release_ns: int, fn: Any, *args: Any) -> None:
        """Run ``fn``; in lockstep the user data messages it produced wait until ``release_ns``."""
        n0 = len(self.user_out)
        fn(*args)
        if self.lockstep and len(self.user_out) > n0:
            for payload in self.user_out[n0:]:
                self.held.append((int(release_ns), self._seq, payload))
                self._seq += 1
            del self.user_out[n0:]

    # ------------------------------------------------------------------------------- lockstep
    def next_release_ns(self) -> int | None:
        """Response time of the earliest held user data message (lockstep), or None."""
        return min(h[0] for h in self.held) if self.held else None

    def release(self, upto_ns: int) -> int:
        """Hand out (to ``user_out``, in order) the held messages due by ``upto_ns``; returns how many."""
        due = sorted((h for h in self.held if h[0] <= upto_ns), key=lambda h: (h[0], h[1]))
        if due:
            self.held = [h for h in self.held if h[0] > upto_ns]
            self.user_out.extend(p for _, _, p in due)
        return len(due)

    def finish(self) -> None:
        """End of the replay (lockstep), as the backtester ends: orders still on their way arrive and are
        matched against the last book, and everything they produce is held for release."""
        for sym, m in self.matchers.items():
            r = self._last_book.get(sym)
            if r is None:
                continue
            d = self.data[sym]
            last = int(d.book_ts[r]) + self.timeline.offset
            nxt = int(m.state.I[SL.I_NEXT_ARR])
            ts = max(nxt, last) if nxt < 2**62 else last
            m.on_book(ts, d.bid_px[r], d.bid_sz[r], d.ask_px[r], d.ask_sz[r])
            self._drain(sym)

    def replayed_frames(self, symbol: str, from_pos: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``symbol``'s book and trade events at timeline positions ``>= from_pos`` as stored frames
        (``ts_event``/``ts_recv`` with the replay's shift, prices and sizes as replayed): the data a
        backtest of what the streams carried from that position on needs."""
        tl = self.timeline
        k = list(self.data).index(symbol)
        sel = (np.arange(len(tl)) >= from_pos) & (tl.sym == k)
        d = self.data[symbol]
        b_recv, t_recv = d.recv_times()
        rb = tl.row[sel & (tl.kind == BOOK)]
        rt = tl.row[sel & (tl.kind == TRADE)]
        L = d.bid_px.shape[1]
        cols = book_columns(L)
        vals = np.concatenate([d.bid_px[rb], d.bid_sz[rb], d.ask_px[rb], d.ask_sz[rb]], axis=1)
        book = pd.DataFrame(vals, columns=cols)
        book.insert(0, "ts_event", d.book_ts[rb] + tl.offset)
        book.insert(1, "ts_recv", b_recv[rb] + tl.offset)
        book.insert(2, "update_id", np.arange(len(rb), dtype=np.int64))
        trades = pd.DataFrame(
            {
                "ts_event": d.trade_ts[rt] + tl.offset,
                "ts_recv": t_recv[rt] + tl.offset,
                "trade_id": np.arange(len(rt), dtype=np.int64),
                "price": d.trade_px[rt],
                "size": d.trade_sz[rt],
                "side": d.trade_side[rt],
            }
        )
        return book, trades

    def _emit_order(self, o: LocalOrder, exec_type: str, ms: int) -> None:
        if self.futures:
            self.user_out.append(o.order_trade_update(ms, exec_type))
        else:
            self.user_out.append(o.execution_report(ms, exec_type))

    def _on_report(self, o: LocalOrder, r: OrderReport) -> None:
        ms = r.ts_exchange // NS_PER_MS
        if r.reason == "accepted":
            o.update_ms = ms
            self._emit_order(o, "NEW", ms)
            if not self.futures and o.locked > 0:
                self.user_out.append(self.spot.position_event(ms, list(split_symbol(o.symbol))))
        elif r.reason == "triggered":
            o.working = True
            o.update_ms = ms
        elif r.reason == "reduce_only_trimmed":
            o.qty = r.limit
        elif r.status in ("CANCELED", "EXPIRED", "REJECTED") and r.reason not in (
            "cancel_not_open",
            "cancel_pending",
        ):
            o.status = "EXPIRED" if r.status == "REJECTED" else r.status
            o.update_ms = ms
            released = self._finish(o)
            self._emit_order(o, "CANCELED" if o.status == "CANCELED" else "EXPIRED", ms)
            if released:
                self.user_out.append(self.spot.position_event(ms, list(split_symbol(o.symbol))))

    def _on_fill(self, o: LocalOrder, f: Fill) -> None:
        ms = f.ts_exchange // NS_PER_MS
        q, px = f.qty, f.price
        o.executed += q
        o.cum_quote += q * px
        o.status = "FILLED" if f.remaining <= EPS * o.qty else "PARTIALLY_FILLED"
        if o.status == "FILLED":
            o.executed = o.qty
        o.last_qty, o.last_px, o.last_maker = q, px, f.maker
        o.last_trade_id = self.markets[o.symbol].next_trade_id()
        o.update_ms = ms
        base, quote = split_symbol(o.symbol)
        if self.futures:
            o.last_fee, o.last_fee_asset = f.fee, self.fut.asset
            o.last_realized = self.fut.fill(o.symbol, o.sign, q, px, f.fee, ms)
            if o.is_open and not o.reduce_only:
                self.fut.open_order_margin[o.order_id] = (
                    o.price * o.remaining / self.fut.position(o.symbol).leverage
                )
        else:
            acct = self.spot
            if o.side == "BUY":
                fee = f.fee / px  # the buyer pays the commission in the base asset
                rel = min(o.locked, o.price * q) if o.locked > 0 else 0.0
                o.locked -= rel
                acct.locked[quote] = max(0.0, acct.locked[quote] - rel)
                acct.free[quote] += rel - px * q
                acct.free[base] += q - fee
                o.last_fee, o.last_fee_asset = fee, base
            else:
                rel = min(o.locked, q)
                o.locked -= rel
                acct.locked[base] = max(0.0, acct.locked[base] - rel)
                acct.free[base] += rel - q
                acct.free[quote] += px * q - f.fee
                o.last_fee, o.last_fee_asset = f.fee, quote
            acct.update_ms = ms
        o.fills.append(
            {
                "price": o.p(px),
                "qty": o.q(q),
                "commission": f"{o.last_fee:.8f}",
                "commissionAsset": o.last_fee_asset,
                "tradeId": o.last_trade_id,
            }
        )
        if not o.is_open:
            self._finish(o)
        self._emit_order(o, "TRADE", ms)
        if self.futures:
            self.user_out.append(self.fut.account_update(ms, o.symbol, self.marks()))
        else:
            self.user_out.append(self.spot.position_event(ms, [base, quote]))

    def _finish(self, o: LocalOrder) -> bool:
        """A terminal order gives back what it held (spot locked balance, futures order margin);
        True if a spot balance changed."""
        self.live_client_ids.pop((o.symbol, o.client_id), None)
        self.fut.open_order_margin.pop(o.order_id, None)
        if not self.futures and o.locked > 0:
            base, quote = split_symbol(o.symbol)
            self.spot.unlock(quote if o.side == "BUY" else base, o.locked)
            o.locked = 0.0
            return True
        return False
