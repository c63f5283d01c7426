"""Backtests: market events + per-row signals -> the compiled event loop -> equity, trades, fills,
rejections and metrics.

``Market`` holds the replayed events (top-L book after every book event, trades with aggressor side,
both with exchange and receive times). ``Signals`` holds, per book event, what the strategy reads: the
feature vector's validity and the features it uses (OFI z-score, realised volatility, regime states,
volatility percentile) and the ensemble's calibrated probabilities. :func:`run_backtest` runs
:func:`orderflow.backtest.loop.run_loop` over them with the same strategy, risk, matching and portfolio
kernels paper and live trading use.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from orderflow.backtest import loop as LP
from orderflow.backtest.config import VenueAccountConfig
from orderflow.core.instruments import Instrument
from orderflow.data.schema import book_arrays
from orderflow.engine import core as CO
from orderflow.engine.core import CoreOutputs, CoreParams, CoreState, new_core_state
from orderflow.engine.funding import FundingSchedule, funding_summary
from orderflow.engine.results import BacktestResult, equity_frame, fill_frame, rejection_counts, trade_frame
from orderflow.execution import portfolio as PF
from orderflow.execution.exec_config import ExecutionConfig
from orderflow.execution.sim_config import SimConfig
from orderflow.execution.sim_layout import make_state
from orderflow.risk import layout as RL
from orderflow.risk.config import RiskConfig
from orderflow.risk.portfolio import PortfolioState, new_portfolio
from orderflow.strategy import kernels as ST
from orderflow.strategy import layout as STL
from orderflow.strategy.config import StrategyConfig

log = logging.getLogger(__name__)

NS = 1_000_000_000


@dataclass
class Market:
    """Events of one symbol, time-ordered. Book arrays are (n, L) best first, NaN for missing levels."""

    venue: str
    symbol: str
    b_ts: np.ndarray
    b_recv: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    t_ts: np.ndarray
    t_recv: np.ndarray
    t_px: np.ndarray
    t_sz: np.ndarray
    t_side: np.ndarray
    # the symbol's stored funding history (engine.funding.from_store), booked by run_backtest when it
    # is given no schedule of its own; None: the configured constant
    funding: FundingSchedule | None = None

    @property
    def n_book(self) -> int:
        return int(self.b_ts.size)

    @property
    def book(self) -> LP.BookArrays:
        return LP.BookArrays(self.b_ts, self.b_recv, self.bid_px, self.bid_sz, self.ask_px, self.ask_sz)

    @property
    def trades(self) -> LP.TradeArrays:
        return LP.TradeArrays(self.t_ts, self.t_recv, self.t_px, self.t_sz, self.t_side)

    @classmethod
    def from_frames(cls, venue: str, symbol: str, book: pd.DataFrame, trades: pd.DataFrame) -> Market:
        """From stored ``book`` and ``trade`` frames (sorted stably by ``ts_event``)."""
        if book.empty:
            raise ValueError(f"{venue}/{symbol}: no book events to replay")
        book = book.sort_values("ts_event", kind="stable")
        trades = trades.sort_values("ts_event", kind="stable") if len(trades) else trades
        bp, bs, ap, asz = book_arrays(book)
        b_ts = book["ts_event"].to_numpy(np.int64)
        b_recv = book["ts_recv"].to_numpy(np.int64) if "ts_recv" in book else b_ts.copy()
        t_ts = trades["ts_event"].to_numpy(np.int64) if len(trades) else np.zeros(0, np.int64)
        t_recv = trades["ts_recv"].to_numpy(np.int64) if "ts_recv" in trades and len(trades) else t_ts.copy()
        levels = (np.ascontiguousarray(a) for a in (bp, bs, ap, asz))
        return cls(
            venue, symbol, b_ts, np.maximum(b_recv, b_ts), *levels,
            t_ts, np.maximum(t_recv, t_ts),
            trades["price"].to_numpy(np.float64) if len(trades) else np.zeros(0),
            trades["size"].to_numpy(np.float64) if len(trades) else np.zeros(0),
            trades["side"].to_numpy(np.int64) if len(trades) else np.zeros(0, np.int64),
        )  # fmt: skip

    def window(self, start_ns: int | None, end_ns: int | None) -> Market:
        """The events with ``start_ns <= ts_event < end_ns``."""
        lo = -(2**62) if start_ns is None else start_ns
        hi = 2**62 if end_ns is None else end_ns
        b = (self.b_ts >= lo) & (self.b_ts < hi)
        t = (self.t_ts >= lo) & (self.t_ts < hi)
        return Market(
            self.venue, self.symbol, self.b_ts[b], self.b_recv[b], self.bid_px[b], self.bid_sz[b],
            self.ask_px[b], self.ask_sz[b], self.t_ts[t], self.t_recv[t], self.t_px[t], self.t_sz[t],
            self.t_side[t], self.funding,
        )  # fmt: skip


@dataclass
class Signals:
    """What the strategy reads at every book event (arrays of the book's length)."""

    valid: np.ndarray  # bool
    ofi_z: np.ndarray
    p_dn: np.ndarray
    p_up: np.ndarray
    rv_bps: np.ndarray
    vol_state: np.ndarray
    trend_state: np.ndarray
    vol_pct: np.ndarray

    def window(self, mask: np.ndarray) -> Signals:
        return Signals(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))

    @property
    def columns(self) -> LP.SignalArrays:
        return LP.SignalArrays(*(getattr(self, f) for f in LP.SignalArrays._fields))


def make_signals(features: pd.DataFrame, probs: np.ndarray | None, cfg: StrategyConfig) -> Signals:
    """Signals from a feature matrix (one row per book event, as ``build_features`` writes it) and the
    ensemble's calibrated probabilities at every row ((n, 3), classes -1, 0, +1; None = no model: the AI
    score is 0 and no signal passes the confidence gate)."""
    need = [cfg.ofi_feature, cfg.rv_feature, "vol_state", "trend_state", "vol_pct"]
    missing = [c for c in need if c not in features.columns]
    if missing:
        raise ValueError(f"make_signals: the feature matrix lacks {missing} (strategy config needs them)")
    n = len(features)
    if probs is None:
        probs = np.zeros((n, 3))
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n, 3):
        raise ValueError(f"make_signals: probabilities of shape {probs.shape}, want ({n}, 3)")
    col = lambda c: np.ascontiguousarray(features[c].to_numpy(np.float64))  # noqa: E731
    valid = features["valid"].to_numpy(bool) if "valid" in features else np.ones(n, bool)
    return Signals(
        valid=np.ascontiguousarray(valid), ofi_z=col(cfg.ofi_feature),
        p_dn=np.ascontiguousarray(probs[:, 0]), p_up=np.ascontiguousarray(probs[:, 2]),
        rv_bps=col(cfg.rv_feature), vol_state=col("vol_state"), trend_state=col("trend_state"),
        vol_pct=col("vol_pct"),
    )  # fmt: skip


def venue_exchange(market: Market, cfg: VenueAccountConfig) -> tuple[str, SimConfig]:
    """The venue a market is replayed as (a Binance venue, else the simulator's) and the simulated
    exchange's config for it (``cfg.exchange`` with that venue)."""
    venue = market.venue if market.venue in ("binance-usdm", "binance-spot") else "sim"
    x = cfg.exchange
    return venue, x if x.venue == venue else x.model_copy(update={"venue": venue})


def execution_record(execution: ExecutionConfig | None, xcfg: SimConfig) -> np.ndarray:
    """The execution config record the core reads, with the venue's fee rates for cost control."""
    fees = {"maker_fee": xcfg.maker_rate, "taker_fee": xcfg.taker_rate}
    return (execution or ExecutionConfig()).model_copy(update=fees).to_record()


def run_backtest(
    market: Market,
    signals: Signals,
    instrument: Instrument,
    cfg: VenueAccountConfig | None = None,
    strategy: StrategyConfig | None = None,
    risk: RiskConfig | None = None,
    execution: ExecutionConfig | None = None,
    funding: FundingSchedule | None = None,
) -> BacktestResult:
    """Replay ``market`` through the strategy (module docstring); ``execution`` says how entries are
    sent (market or passive, slicing, cost control); ``funding`` is the stored funding history of the
    symbol (:func:`orderflow.engine.funding.from_store`; default ``market.funding``), booked at its times
    instead of the configured constant, which still applies outside its span (None or empty: the
    constant everywhere; ignored on
    a venue without funding). ``info["funding"]`` says which was booked, how often and how much."""
    run = prepare_run(market, signals, instrument, cfg, strategy, risk, execution, funding)
    t0 = time.perf_counter()
    nfo, neq, ntr, overflow, orders = LP.run_loop(
        market.book,
        market.trades,
        signals.columns,
        run.X,
        run.S,
        run.O,
        run.prm,
        run.decision_ns,
        run.cfg.close_at_end,
    )
    if overflow:
        raise RuntimeError(run.overflow_message)
    return collect_run(run, market, nfo, neq, ntr, orders, time.perf_counter() - t0)


@dataclass
class PreparedRun:
    """One symbol's arrays for a compiled loop (:func:`prepare_run`) and what reading them back needs."""

    cfg: VenueAccountConfig
    venue: str
    xcfg: SimConfig
    X: Any  # the simulated exchange's SimState
    S: CoreState
    O: CoreOutputs
    prm: CoreParams
    decision_ns: int
    funding: FundingSchedule
    caps: tuple[int, int, int]  # fills, trades, equity rows

    @property
    def overflow_message(self) -> str:
        f, t, e = self.caps
        return (f"backtest buffers overflowed (fills {f}, trades {t}, equity {e}): "
                "this is a bug in the capacity estimate; please report it")  # fmt: skip


def prepare_run(
    market: Market,
    signals: Signals,
    instrument: Instrument,
    cfg: VenueAccountConfig | None = None,
    strategy: StrategyConfig | None = None,
    risk: RiskConfig | None = None,
    execution: ExecutionConfig | None = None,
    funding: FundingSchedule | None = None,
    book: PortfolioState | None = None,
    index: int = 0,
) -> PreparedRun:
    """The state, outputs and parameters of one symbol's run (as :func:`run_backtest` documents);
    ``book`` is the book it shares with other symbols (row ``index``; None: a book of its own); in a
    book of several symbols the symbol's own checks read ``risk.for_symbol()``."""
    cfg = cfg or VenueAccountConfig()
    strategy = strategy or StrategyConfig()
    risk = risk or RiskConfig()
    if book is not None and book.Q.shape[0] > 1:
        risk = risk.for_symbol()
    n = market.n_book
    if signals.valid.shape[0] != n:
        raise ValueError(f"run_backtest: {signals.valid.shape[0]} signal rows for {n} book events")
    venue, xcfg = venue_exchange(market, cfg)
    levels = market.bid_px.shape[1]
    X = make_state(xcfg, levels=levels)
    P = np.zeros(PF.N_P)
    PF.reset(P, cfg.initial_equity)
    G = np.zeros(STL.N_G, dtype=np.int64)
    H = np.zeros(STL.N_H)
    ST.init_state(G, H)
    SC = strategy.to_record(xcfg.taker_rate, venue)
    RC = risk.to_record()
    XA = execution_record(execution, xcfg)
    D, Df = new_core_state()
    D[CO.D_SYM] = index
    funding = funding if funding is not None else market.funding
    if funding is None or not xcfg.perpetual:
        funding = FundingSchedule.empty()
    FT, FR, FM = funding.arrays
    S = CoreState(
        D=D, Df=Df, P=P, G=G, H=H, SC=SC, RS=np.zeros(RL.N_S, dtype=np.int64), RSF=np.zeros(RL.N_F),
        ring=np.zeros(risk.max_trades_24h, dtype=np.int64), RC=RC, X=XA, FT=FT, FR=FR, FM=FM,
        B=book if book is not None else new_portfolio(1, risk),
    )  # fmt: skip
    span_s = max((market.b_ts[-1] - market.b_ts[0]) / NS, 1.0) if n else 1.0
    cap_trades = int(min(max(1000, risk.max_trades_24h * (span_s / 86_400 + 1) * 2), 10_000_000))
    cap_fills = cap_trades * 4 * (levels + 2)
    cap_eq = int(span_s / cfg.equity_every_s) + 16
    O = CoreOutputs(
        fo_i=np.zeros((cap_fills, CO.N_FO_I), np.int64), fo_f=np.zeros((cap_fills, CO.N_FO_F)),
        eq_ts=np.zeros(cap_eq, np.int64), eq_f=np.zeros((cap_eq, CO.N_EO)),
        tr_i=np.zeros((cap_trades, CO.N_TI), np.int64), tr_f=np.zeros((cap_trades, CO.N_TF)),
    )  # fmt: skip
    prm = CoreParams(
        lot=float(instrument.lot_size), min_notional=float(instrument.min_notional),
        equity_every_ns=int(cfg.equity_every_s * NS), max_position_frac=float(risk.max_position),
        funding_rate=float(X.C[0]["funding_rate"]), funding_ns=int(X.C[0]["funding_ns"]),
        tick=float(instrument.tick_size),
    )  # fmt: skip
    return PreparedRun(cfg, venue, xcfg, X, S, O, prm, int(cfg.decision_latency_us * 1000), funding,
                       (cap_fills, cap_trades, cap_eq))  # fmt: skip


def collect_run(run: PreparedRun, market: Market, nfo: int, neq: int, ntr: int, orders: int,
                seconds: float) -> BacktestResult:  # fmt: skip
    """The frames and facts of a finished run (``nfo``/``neq``/``ntr``: rows written)."""
    fo_i, fo_f, eq_ts, eq_f, tr_i, tr_f = run.O
    S, n = run.S, market.n_book
    G, H, P = S.G, S.H, S.P
    return BacktestResult(
        equity=equity_frame(eq_ts[:neq], eq_f[:neq]),
        trades=trade_frame(tr_i[:ntr], tr_f[:ntr]),
        fills=fill_frame(fo_i[:nfo], fo_f[:nfo]),
        rejections=rejection_counts(G, S.RS),
        orders=int(orders),
        seconds=seconds,
        events=int(market.n_book + market.t_ts.size),
        info={
            "portfolio": PF.by_name(P),
            "signals": int(G[STL.G_SIGNALS]),
            "entries_sent": int(G[STL.G_ENTRIES]),
            "exits_sent": int(G[STL.G_EXITS]),
            "threshold_mult": float(H[STL.H_THR_MULT]),
            "book_bound": int(S.D[CO.D_BOOK_BOUND]),
            "book_first_bound_ns": int(S.D[CO.D_BOOK_FIRST]),
            "venue": run.venue,
            "maker_fee": run.xcfg.maker_rate,
            "taker_fee": run.xcfg.taker_rate,
            "funding": funding_summary(run.funding, S.D, S.Df, run.prm.funding_rate, run.prm.funding_ns,
                                       int(market.b_recv[0]) if n else 0, int(market.b_recv[-1]) if n else 0),
        },
    )  # fmt: skip
