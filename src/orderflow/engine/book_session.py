"""The Python driver of a book of several symbols: one :class:`~orderflow.engine.session.TradingSession`
per symbol sharing one book (:mod:`orderflow.risk.portfolio`), fed one event at a time, each matched
by its own simulated exchange's Python wrapper. It is the paper engine's path for several symbols
without the network, and it does what the compiled loop :func:`orderflow.backtest.portfolio.run_book_loop`
does, step for step (the same merge order, deliveries, covariance bars and allocation groups; that
module's docstring), so the two give the same orders and fills (``tests/integration/test_book_parity.py``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from orderflow.backtest.config import VenueAccountConfig
from orderflow.backtest.engine import Market, Signals, venue_exchange
from orderflow.backtest.portfolio import BOOK, check_book_inputs, merge_order
from orderflow.core.instruments import Instrument
from orderflow.engine.funding import FundingSchedule
from orderflow.engine.results import BacktestResult
from orderflow.engine.session import TERMINAL, TradingSession
from orderflow.execution import sim_layout as SL
from orderflow.execution.exec_config import ExecutionConfig
from orderflow.execution.sim_exchange import SimulatedExchange
from orderflow.risk.config import RiskConfig
from orderflow.risk.portfolio import new_portfolio
from orderflow.strategy.config import StrategyConfig

BIG = 2**62


class _Symbol:
    """One symbol's session, exchange and inbox in the driver."""

    def __init__(
        self, market: Market, signals: Signals, session: TradingSession, ex: SimulatedExchange
    ) -> None:
        self.m, self.sig, self.s, self.ex = market, signals, session, ex
        self.fills: deque = deque()
        self.reports: deque = deque()
        self.jl = -1  # the last book event
        self.t = 0  # its decision time

    def pump(self) -> None:
        self.fills.extend(self.ex.drain_fills(None))
        self.reports.extend(self.ex.drain_reports(None))

    def deliver(self, upto: int | None) -> None:
        """Fills, then reports, due by ``upto`` (None: all), never after the next book event's receive
        time (as the compiled loop)."""
        self.pump()
        if upto is not None and self.jl + 1 < self.m.n_book:
            upto = min(upto, int(self.m.b_recv[self.jl + 1]))
        while self.fills and (upto is None or self.fills[0].ts_strategy <= upto):
            f = self.fills.popleft()
            self.s.on_fill(f.ts_strategy, f.side, f.qty, f.price, f.fee, f.maker)
        while self.reports and (upto is None or self.reports[0].ts_strategy <= upto):
            r = self.reports.popleft()
            self.s.on_report(r.order_id, r.status in TERMINAL)

    def levels(self, j: int):
        m = self.m
        return m.bid_px[j], m.bid_sz[j], m.ask_px[j], m.ask_sz[j]


def replay_book_paper(
    markets: Sequence[Market],
    signals: Sequence[Signals],
    instruments: Sequence[Instrument],
    cfg: VenueAccountConfig | None = None,
    strategy: StrategyConfig | None = None,
    risk: RiskConfig | None = None,
    execution: ExecutionConfig | None = None,
    funding: Sequence[FundingSchedule | None] | None = None,
) -> dict[str, BacktestResult]:
    """Replay ``markets`` together through one book, one event at a time (module docstring); each
    symbol's result as :func:`~orderflow.engine.session.replay_paper` reports one symbol's."""
    check_book_inputs("replay_book_paper", markets, signals, instruments)
    cfg = cfg or VenueAccountConfig()
    risk = risk or RiskConfig()
    K = len(markets)
    book = new_portfolio(K, risk)
    funding = list(funding) if funding is not None else [None] * K
    syms = []
    for k, (m, sig, inst, fu) in enumerate(zip(markets, signals, instruments, funding, strict=True)):
        venue, x = venue_exchange(m, cfg)
        rate = float(x.to_record()["funding_rate"][0])
        own = risk.for_symbol() if K > 1 else risk  # the symbol's own checks (the book keeps risk)
        s = TradingSession(inst, venue, x.taker_rate, rate, x.funding_interval_ns, strategy, own, cfg,
                           execution=execution, maker_fee=x.maker_rate,
                           funding=(fu if fu is not None else m.funding) if x.perpetual else None,
                           book=(book, k))  # fmt: skip
        syms.append(_Symbol(m, sig, s, SimulatedExchange(x, levels=m.bid_px.shape[1])))
    decision_ns = int(cfg.decision_latency_us * 1000)
    o_sym, o_kind, o_idx, _ts, _recv = merge_order(markets)
    t0 = time.perf_counter()
    n, p = o_sym.shape[0], 0
    while p < n:
        k, i = int(o_sym[p]), int(o_idx[p])
        y = syms[k]
        if o_kind[p] != BOOK:
            m = y.m
            y.ex.on_trade(int(m.t_ts[i]), float(m.t_px[i]), float(m.t_sz[i]), int(m.t_side[i]))
            y.s.on_trade(int(m.t_recv[i]))
            p += 1
            continue
        ts = int(y.m.b_ts[i])
        g, seen = p + 1, {k}
        while (
            g < n
            and o_kind[g] == BOOK
            and int(o_sym[g]) not in seen
            and int(syms[int(o_sym[g])].m.b_ts[int(o_idx[g])]) == ts
        ):
            seen.add(int(o_sym[g]))
            g += 1
        grouped = g - p > 1
        if grouped:
            syms[0].s.set_grouping(True)
        waiting = []
        for q in range(p, g):
            y = syms[int(o_sym[q])]
            j = int(o_idx[q])
            m = y.m
            y.ex.on_book(int(m.b_ts[j]), *y.levels(j))
            t = int(m.b_recv[j])
            if K > 1:
                for z in syms:
                    z.deliver(t)
                y.s.on_bar(t)
            else:
                y.deliver(t)
            sig = y.sig
            req = y.s.on_book(t, int(m.b_ts[j]), bool(sig.valid[j]), sig.ofi_z[j], sig.p_dn[j], sig.p_up[j],
                              sig.rv_bps[j], sig.vol_state[j], sig.trend_state[j], sig.vol_pct[j],
                              *y.levels(j))  # fmt: skip
            y.jl, y.t = j, t
            if y.s.candidate:
                waiting.append(y)
            elif req is not None:
                y.ex.submit(req, t + decision_ns)
        if grouped:
            syms[0].s.set_grouping(False)
            # highest score first; ties keep the group's order (a stable sort)
            for y in sorted(waiting, key=lambda z: -z.s.candidate_score):
                req = y.s.commit(y.t, *y.levels(y.jl))
                if req is not None:
                    y.ex.submit(req, y.t + decision_ns)
        p = g
    out = {}
    for y in syms:
        out[y.m.symbol] = _close(y, cfg, decision_ns, time.perf_counter() - t0)
    return out


def _close(y: _Symbol, cfg: VenueAccountConfig, decision_ns: int, seconds: float) -> BacktestResult:
    """The end of one symbol's run, as the one-symbol driver ends."""
    m, s, ex, jl = y.m, y.s, y.ex, y.jl
    nxt = lambda: int(ex.state.I[SL.I_NEXT_ARR])  # noqa: E731
    if jl >= 0:
        ts_end = max(nxt(), int(m.b_ts[jl])) if nxt() < BIG else int(m.b_ts[jl])
        ex.on_book(ts_end, *y.levels(jl))
    y.deliver(None)
    if cfg.close_at_end and jl >= 0:
        req = s.close_position()
        if req is not None:
            t_end = y.t + decision_ns
            ex.submit(req, t_end)
            ta = nxt() if nxt() < BIG else t_end
            ex.on_book(max(ta, int(m.b_ts[jl])), *y.levels(jl))
            y.deliver(None)
    if jl >= 0:
        s.finish(y.t, float(y.sig.vol_state[jl]))
    return s.result(seconds, int(m.n_book + m.t_ts.size))
