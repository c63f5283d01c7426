"""``TradingSession``: one symbol's trading core (:mod:`orderflow.engine.core`) driven one event at a time
from Python, the way the paper and live engines drive it; and :func:`replay_paper`, a Python driver that
replays stored events through a session and the simulated exchange's Python wrapper. The backtester
runs the same core functions in its compiled loop; a test checks both drivers give the same fills.
"""

from __future__ import annotations

import numpy as np

from orderflow.backtest.config import VenueAccountConfig
from orderflow.backtest.engine import Market, Signals, venue_exchange
from orderflow.core.instruments import Instrument
from orderflow.core.orders import CancelRequest, OrderRequest, OrderType, Side, TimeInForce
from orderflow.engine import core as CO
from orderflow.engine.funding import FundingSchedule, funding_summary
from orderflow.engine.results import BacktestResult, equity_frame, fill_frame, rejection_counts, trade_frame
from orderflow.execution import portfolio as PF
from orderflow.execution import sim_layout as SL
from orderflow.execution.exec_config import ExecutionConfig
from orderflow.execution.sim_exchange import SimulatedExchange
from orderflow.kernel_cache import Direct
from orderflow.risk import layout as RL
from orderflow.risk import portfolio as PS
from orderflow.risk.config import RiskConfig
from orderflow.risk.portfolio import PortfolioState, new_portfolio
from orderflow.strategy import kernels as ST
from orderflow.strategy import layout as STL
from orderflow.strategy.config import StrategyConfig

NS = 1_000_000_000
TERMINAL = {"FILLED", "CANCELED", "REJECTED", "EXPIRED"}


# the per-event entry points, called without the dispatcher's per-call type resolution
_CORE_BOOK = Direct(CO.core_book)
_CORE_FILL = Direct(CO.core_fill)


def request_from_core(what: int, order_id: int, side: int, qty: float, reduce_only: bool,
                      price: float) -> OrderRequest | CancelRequest | None:  # fmt: skip
    """The one boundary from the core's int outputs (``core_book``'s ``what``: NOTHING, SEND_MARKET,
    SEND_LIMIT or CANCEL) to the order vocabulary: a market order (IOC), a post-only GTC limit at
    ``price``, or the cancel of order ``order_id``."""
    if what == CO.NOTHING:
        return None
    if what == CO.CANCEL:
        return CancelRequest(int(order_id))
    sd = Side.BUY if side > 0 else Side.SELL
    if what == CO.SEND_LIMIT:
        return OrderRequest(int(order_id), sd, float(qty), bool(reduce_only), OrderType.LIMIT, float(price),
                            TimeInForce.GTC, post_only=True)  # fmt: skip
    return OrderRequest(int(order_id), sd, float(qty), bool(reduce_only))


class TradingSession:
    """The core's state arrays for one symbol and the per-event calls into ``engine.core``."""

    def __init__(
        self,
        instrument: Instrument,
        venue: str,
        taker_fee: float,
        funding_rate: float = 0.0,
        funding_interval_ns: int = 8 * 3600 * NS,
        strategy: StrategyConfig | None = None,
        risk: RiskConfig | None = None,
        backtest: VenueAccountConfig | None = None,
        capacity: int = 200_000,
        execution: ExecutionConfig | None = None,
        maker_fee: float | None = None,
        funding: FundingSchedule | None = None,
        book: tuple[PortfolioState, int] | None = None,
    ) -> None:
        """``book``: the book this symbol shares with others and its row there (risk.portfolio; None:
        a book of its own)."""
        self.strategy = strategy or StrategyConfig()
        self.risk = risk or RiskConfig()
        self.cfg = backtest or VenueAccountConfig()
        self.instrument = instrument
        self.P = np.zeros(PF.N_P)
        PF.reset(self.P, self.cfg.initial_equity)
        self.G = np.zeros(STL.N_G, dtype=np.int64)
        self.H = np.zeros(STL.N_H)
        ST.init_state(self.G, self.H)
        self.SC = self.strategy.to_record(taker_fee, venue)
        self.RC = self.risk.to_record()
        fees = {"taker_fee": taker_fee} | ({} if maker_fee is None else {"maker_fee": maker_fee})
        self.XA = (execution or ExecutionConfig()).model_copy(update=fees).to_record()
        self.RS = np.zeros(RL.N_S, dtype=np.int64)
        self.RSF = np.zeros(RL.N_F)
        self.ring = np.zeros(self.risk.max_trades_24h, dtype=np.int64)
        self.D, self.Df = CO.new_core_state()
        self.fo_i = np.zeros((capacity, 4), np.int64)
        self.fo_f = np.zeros((capacity, 4))
        self.tr_i = np.zeros((capacity, 5), np.int64)
        self.tr_f = np.zeros((capacity, 8))
        self.eq_ts = np.zeros(capacity * 4, np.int64)
        self.eq_f = np.zeros((capacity * 4, 4))
        self.funding_rate = float(funding_rate)
        self.funding_ns = int(funding_interval_ns)
        self._vstate = -1
        self.funding = funding if funding is not None else FundingSchedule.empty("announced")
        # the book (risk.portfolio): shared with other symbols, or this symbol's alone
        self.book = book[0] if book else new_portfolio(1, self.risk)
        self.D[CO.D_SYM] = book[1] if book else 0
        self.candidate = False  # the last on_book approved an entry that waits for commit (allocation)
        # the same arrays grouped as the core's kernels take them
        self._S = CO.CoreState(self.D, self.Df, self.P, self.G, self.H, self.SC, self.RS, self.RSF, self.ring,
                               self.RC, self.XA, *self.funding.arrays, self.book)  # fmt: skip
        self._O = CO.CoreOutputs(self.fo_i, self.fo_f, self.eq_ts, self.eq_f, self.tr_i, self.tr_f)
        self._prm = CO.CoreParams(
            float(instrument.lot_size), float(instrument.min_notional),
            int(np.int64(self.cfg.equity_every_s * NS)), float(self.risk.max_position), self.funding_rate,
            self.funding_ns, float(instrument.tick_size),
        )  # fmt: skip

    # -- events
    def set_funding(self, ts: int, rate: float, mark: float = float("nan")) -> None:
        """The exchange announced the rate of the funding at ``ts`` (ns): the core books it then, instead
        of the constant (:meth:`FundingSchedule.with_point`; the announcement of a later time adds a
        point, a new value for the same time replaces it). Funding times before the first announced
        one and after the last keep the constant."""
        if self.funding.n and int(ts) < int(self.funding.ts[-1]):
            return  # an older announcement arriving late: the later one stands
        self.funding = self.funding.with_point(int(ts), float(rate), float(mark))
        self._S = self._S._replace(FT=self.funding.ts, FR=self.funding.rate, FM=self.funding.mark)
        self.D[CO.D_NEXT_FUND] = min(int(self.D[CO.D_NEXT_FUND]), int(ts))  # the core looks at it then

    def funding_summary(self, start_ns: int, end_ns: int) -> dict:
        """The funding booked so far (:func:`orderflow.engine.funding.funding_summary`)."""
        return funding_summary(self.funding, self.D, self.Df, self.funding_rate, self.funding_ns, start_ns,
                               end_ns)  # fmt: skip

    def on_trade(self, ts_recv: int) -> None:
        CO.core_trade(self.D, np.int64(ts_recv))

    def on_book(
        self, t: int, ts_event: int, valid: bool, ofi_z: float, p_dn: float, p_up: float, rv_bps: float,
        vol_state: float, trend_state: float, vol_pct: float, bid_px: np.ndarray, bid_sz: np.ndarray,
        ask_px: np.ndarray, ask_sz: np.ndarray,
    ) -> OrderRequest | CancelRequest | None:  # fmt: skip
        """The strategy's turn at a book event received at ``t``; the order to send or cancel, if any."""
        self._vstate = int(vol_state) if np.isfinite(vol_state) else -1
        if t >= self.D[CO.D_NEXT_FUND]:
            CO.core_funding(self._S, self._prm, np.int64(t), float(bid_px[0]), float(ask_px[0]))
        what, side, qty, reduce_only, px = _CORE_BOOK(
            self._S, self._O, self._prm, np.int64(t), np.int64(ts_event),
            CO.SignalRow(bool(valid), float(ofi_z), float(p_dn), float(p_up), float(rv_bps), float(vol_state),
                         float(trend_state), float(vol_pct)),
            STL.BookLevels(bid_px, bid_sz, ask_px, ask_sz),
        )  # fmt: skip
        self.candidate = what == CO.CANDIDATE
        if self.candidate:
            return None
        oid = self.D[CO.D_CUR_OID] if what == CO.CANCEL else self.D[CO.D_OID]
        return request_from_core(int(what), int(oid), int(side), float(qty), bool(reduce_only), float(px))

    # -- the book of several symbols
    def on_bar(self, t: int) -> None:
        """Close the book's covariance bar before a decision at ``t`` when it is due (several symbols)."""
        B = self.book
        if B.Q.shape[0] > 1 and t >= B.QI[PS.QI_NEXT_BAR]:
            CO.core_bar(self._S, np.int64(t))

    def set_grouping(self, on: bool) -> None:
        """While on, approved entries wait for :meth:`commit` (simultaneous entries of the book)."""
        self.book.QI[PS.QI_DEFER] = 1 if on else 0

    @property
    def candidate_score(self) -> float:
        """The waiting entry's score: confidence x EV per unit of risk (risk.portfolio.entry_score)."""
        return float(self.Df[CO.DF_CAND_SCORE])

    def commit(
        self, t: int, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray
    ) -> OrderRequest | None:
        """The allocation's turn for the waiting entry (decided at ``t`` on that book): the order, or
        None when what was granted before it left no room (refused with rule ``allocation``)."""
        self.candidate = False
        levels = STL.BookLevels(bid_px, bid_sz, ask_px, ask_sz)
        what, side, qty, reduce_only, px = CO.core_commit(self._S, self._prm, np.int64(t), levels)
        req = request_from_core(int(what), int(self.D[CO.D_OID]), int(side), float(qty), bool(reduce_only),
                                float(px))  # fmt: skip
        assert not isinstance(req, CancelRequest)  # an entry or nothing
        return req

    def on_fill(self, ts: int, side: int, qty: float, price: float, fee: float, maker: bool) -> None:
        _CORE_FILL(self._S, self._O, np.int64(ts), np.int64(side), float(qty), float(price), float(fee),
                     np.int64(maker), np.int64(self._vstate))  # fmt: skip

    def on_report(self, order_id: int, terminal: bool) -> None:
        CO.core_report(self.D, self.Df, self.G, np.int64(order_id), bool(terminal))

    def close_position(self) -> OrderRequest | None:
        """The reduce-only market order that closes the position, if there is one."""
        send, side, qty = CO.core_close(self.D, self.Df, self.G, self.P)
        what = CO.SEND_MARKET if send else CO.NOTHING
        req = request_from_core(what, int(self.D[CO.D_OID]), int(side), float(qty), True, float("nan"))
        assert not isinstance(req, CancelRequest)  # core_close sends a market order or nothing
        return req

    def final_equity(self, t: int, vol_state: float) -> None:
        CO.core_final_equity(self.D, self.Df, self.P, self.eq_ts, self.eq_f, np.int64(t), float(vol_state))

    def finish(self, t_last_book: int, vol_state: float) -> None:
        """The run's last equity sample, at the later of the last book event and the last fill (as the
        backtester ends)."""
        t = int(t_last_book)
        if self.D[CO.D_NFO] > 0:
            t = max(t, int(self.fo_i[self.D[CO.D_NFO] - 1, CO.FO_TS]))
        self.final_equity(t, vol_state)

    # -- results
    @property
    def mid(self) -> float:
        """The last valid mid the core saw (NaN before the first valid book)."""
        return float(self.Df[CO.DF_MID])

    @property
    def position(self) -> float:
        """The signed position the core books, base units."""
        return float(self.P[PF.P_POS])

    @property
    def order_in_flight(self) -> int:
        return int(self.D[CO.D_CUR_OID])

    @property
    def resting_limit(self) -> bool:
        """The order in flight is a resting limit (a passive entry child)."""
        return int(self.D[CO.D_CUR_OID]) >= 0 and int(self.D[CO.D_CUR_KIND]) == CO.SEND_LIMIT

    def result(self, seconds: float = 0.0, events: int = 0) -> BacktestResult:
        D = self.D
        if D[CO.D_OVERFLOW]:
            raise RuntimeError("trading session buffers overflowed; raise the capacity")
        return BacktestResult(
            equity=equity_frame(self.eq_ts[: D[CO.D_NEQ]], self.eq_f[: D[CO.D_NEQ]]),
            trades=trade_frame(self.tr_i[: D[CO.D_NTR]], self.tr_f[: D[CO.D_NTR]]),
            fills=fill_frame(self.fo_i[: D[CO.D_NFO]], self.fo_f[: D[CO.D_NFO]]),
            rejections=rejection_counts(self.G, self.RS),
            orders=int(D[CO.D_OID]),
            seconds=seconds,
            events=events,
        )


def replay_paper(
    market: Market,
    signals: Signals,
    instrument: Instrument,
    cfg: VenueAccountConfig | None = None,
    strategy: StrategyConfig | None = None,
    risk: RiskConfig | None = None,
    execution: ExecutionConfig | None = None,
    funding: FundingSchedule | None = None,
) -> BacktestResult:
    """Replay stored events through a :class:`TradingSession` and the simulated exchange's Python
    wrapper, one event at a time (the paper driver's path, without the network); ``funding`` as in
    :func:`~orderflow.backtest.engine.run_backtest`."""
    import time

    cfg = cfg or VenueAccountConfig()
    venue, xcfg = venue_exchange(market, cfg)
    ex = SimulatedExchange(xcfg, levels=market.bid_px.shape[1])
    s = TradingSession(instrument, venue, xcfg.taker_rate, float(xcfg.to_record()["funding_rate"][0]),
                       xcfg.funding_interval_ns, strategy, risk, cfg, execution=execution,
                       maker_fee=xcfg.maker_rate, funding=funding if xcfg.perpetual else None)  # fmt: skip
    decision_ns = int(cfg.decision_latency_us * 1000)
    t0 = time.perf_counter()
    fills: list = []
    reports: list = []

    def deliver(upto: int | None) -> None:
        fills.extend(ex.drain_fills(None))
        reports.extend(ex.drain_reports(None))
        while fills and (upto is None or fills[0].ts_strategy <= upto):
            f = fills.pop(0)
            s.on_fill(f.ts_strategy, f.side, f.qty, f.price, f.fee, f.maker)
        while reports and (upto is None or reports[0].ts_strategy <= upto):
            r = reports.pop(0)
            s.on_report(r.order_id, r.status in TERMINAL)

    i = j = 0
    jl = -1
    nb, nt = market.n_book, market.t_ts.size
    t = 0
    while i < nt or j < nb:
        if i < nt and (j >= nb or market.t_ts[i] <= market.b_ts[j]):
            ex.on_trade(
                int(market.t_ts[i]), float(market.t_px[i]), float(market.t_sz[i]), int(market.t_side[i])
            )
            s.on_trade(int(market.t_recv[i]))
            i += 1
            continue
        ex.on_book(
            int(market.b_ts[j]), market.bid_px[j], market.bid_sz[j], market.ask_px[j], market.ask_sz[j]
        )
        jl, j = j, j + 1
        t = int(market.b_recv[jl])
        deliver(t)  # with the regime of the previous event (set by on_book), as the engine knows it
        req = s.on_book(t, int(market.b_ts[jl]), bool(signals.valid[jl]), signals.ofi_z[jl], signals.p_dn[jl],
                        signals.p_up[jl], signals.rv_bps[jl], signals.vol_state[jl], signals.trend_state[jl],
                        signals.vol_pct[jl], market.bid_px[jl], market.bid_sz[jl], market.ask_px[jl],
                        market.ask_sz[jl])  # fmt: skip
        if req is None:
            continue
        ex.submit(req, t + decision_ns)
    big = 2**62
    nxt = lambda: int(ex.state.I[SL.I_NEXT_ARR])  # noqa: E731  (the next pending arrival, as the loop reads it)
    if jl >= 0:
        ts_end = max(nxt(), int(market.b_ts[jl])) if nxt() < big else int(market.b_ts[jl])
        ex.on_book(ts_end, market.bid_px[jl], market.bid_sz[jl], market.ask_px[jl], market.ask_sz[jl])
    deliver(None)
    if cfg.close_at_end and jl >= 0:
        req = s.close_position()
        if req is not None:
            t_end = t + decision_ns
            ex.submit(req, t_end)
            ta = nxt() if nxt() < big else t_end
            ex.on_book(max(ta, int(market.b_ts[jl])), market.bid_px[jl], market.bid_sz[jl], market.ask_px[jl],
                       market.ask_sz[jl])  # fmt: skip
            deliver(None)
    if jl >= 0:
        s.finish(t, float(signals.vol_state[jl]))
    return s.result(time.perf_counter() - t0, int(nb + nt))
