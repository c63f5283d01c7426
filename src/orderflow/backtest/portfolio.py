"""Backtests of several symbols in one run: one compiled loop over the events of every symbol merged in
exchange time, each symbol with its own book, signals, simulated exchange and trading-core state, all
sharing one book of risk (:class:`orderflow.risk.portfolio.PortfolioState`).

Order of events: by exchange time ``ts_event``; at equal times trades before book events (as the
one-symbol loop), then by the symbol's position in the run, then by the event's own order
(:func:`merge_order`). Per symbol, the loop does what :func:`orderflow.backtest.loop.run_loop` does,
with the same kernels, so a symbol run alone here equals its one-symbol backtest order for order. What
the book adds:

- before a decision at receive time ``t``, every symbol's fills and reports whose response time is
  ``<= t`` are handed to its core (each symbol's own decisions see exactly what they would alone; the
  book sees positions as soon as they are known), and the book's covariance bar closes
  (:func:`orderflow.engine.core.core_bar`) when ``t`` passed it;
- the core reads the book's equity and capital in use and runs the book's checks
  (:mod:`orderflow.risk.portfolio`);
- **allocation**: book events of different symbols at the same exchange time form a group. Their
  approved entries wait (``CANDIDATE``) and are granted at the end of the group in the order of their
  scores (confidence x EV per unit of risk, highest first; ties in symbol order) with the book's
  checks re-run after every grant (:func:`orderflow.engine.core.core_commit`); what no longer fits is
  refused with rule ``allocation``. Each granted order leaves at its own decision time.

The end of the run: each symbol's orders in flight are delivered and what is still open is closed
against its last book, as in the one-symbol loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from orderflow.backtest import loop as LP
from orderflow.backtest.config import VenueAccountConfig
from orderflow.backtest.engine import Market, Signals, collect_run, prepare_run
from orderflow.core.instruments import Instrument
from orderflow.engine import core as CO
from orderflow.engine.funding import FundingSchedule
from orderflow.engine.results import BacktestResult
from orderflow.execution import sim_kernels as SK
from orderflow.execution import sim_layout as SL
from orderflow.execution.exec_config import ExecutionConfig
from orderflow.risk import portfolio as PS
from orderflow.risk.config import RiskConfig
from orderflow.risk.covariance import correlation
from orderflow.strategy.config import StrategyConfig
from orderflow.strategy.layout import BookLevels

TRADE, BOOK = 0, 1  # event kinds in the merged order (trades first at equal times)


def merge_order(markets: Sequence[Market]) -> tuple[np.ndarray, ...]:
    """``(symbol, kind, index, ts_event, ts_recv)`` of every event of ``markets`` in the loop's order
    (module docstring)."""
    ts, recv, kind, sym, idx = [], [], [], [], []
    for k, m in enumerate(markets):
        for arr, rv, kd in ((m.t_ts, m.t_recv, TRADE), (m.b_ts, m.b_recv, BOOK)):
            ts.append(arr)
            recv.append(rv)
            kind.append(np.full(arr.size, kd, np.int64))
            sym.append(np.full(arr.size, k, np.int64))
            idx.append(np.arange(arr.size, dtype=np.int64))
    t, r, kd, s, i = (np.concatenate(x) for x in (ts, recv, kind, sym, idx))
    order = np.lexsort((i, s, kd, t))
    return tuple(np.ascontiguousarray(a[order]) for a in (s, kd, i, t, r))


@njit(cache=True, inline="always")  # no call with every array of a symbol flattened
def _send(ex, S, ib, what, side, qty, reduce_only, px, t_send, synced, book, jl):
    """Send what the core asked for on the symbol's exchange (the one-symbol loop's send)."""
    D = S.D
    if not synced:
        SK.on_book(ex, book.ts[jl], book.bid_px[jl], book.bid_sz[jl], book.ask_px[jl], book.ask_sz[jl])
    if what == CO.SEND_MARKET:
        SK.submit_order(
            ex, t_send, D[CO.D_OID], SL.MARKET, side, np.nan, np.nan, qty, SL.IOC, False, reduce_only
        )
    elif what == CO.SEND_LIMIT:
        SK.submit_order(ex, t_send, D[CO.D_OID], SL.LIMIT, side, px, np.nan, qty, SL.GTC, True, reduce_only)
    else:
        SK.cancel_order(ex, t_send, D[CO.D_CUR_OID])
    LP._pump(ex, D, ib)


@njit(cache=True, inline="always")  # no call with every array of a symbol flattened
def _book_event(book, sig, ex, S, O, prm, ib, j, jp):
    """Symbol's book event ``j`` (``jp``: its previous one, -1 none) up to the core's answer: the exchange
    sees the book, the core decides. Returns ``(what, side, qty, reduce_only, px, synced)``."""
    XI, D = ex.I, S.D
    synced = XI[SL.I_NLIVE] > 0
    if synced:
        SK.on_book(ex, book.ts[j], book.bid_px[j], book.bid_sz[j], book.ask_px[j], book.ask_sz[j])
        if XI[SL.I_NFILL] or XI[SL.I_NREP]:
            LP._to_inbox(ex, D, ib)
    t = book.recv[j]
    if D[CO.D_F_HEAD] < D[CO.D_F_TAIL] or D[CO.D_R_HEAD] < D[CO.D_R_TAIL]:
        vsp = sig.vol_state[jp] if jp >= 0 else np.nan
        LP._deliver(t, S, O, ib, np.int64(vsp) if math.isfinite(vsp) else np.int64(-1))
    if t >= D[CO.D_NEXT_FUND]:
        CO.core_funding(S, prm, t, book.bid_px[j, 0], book.ask_px[j, 0])
    what, side, qty, reduce_only, px = CO.core_book(
        S, O, prm, t, book.ts[j],
        CO.SignalRow(sig.valid[j], sig.ofi_z[j], sig.p_dn[j], sig.p_up[j], sig.rv_bps[j], sig.vol_state[j],
                     sig.trend_state[j], sig.vol_pct[j]),
        BookLevels(book.bid_px[j], book.bid_sz[j], book.ask_px[j], book.ask_sz[j]),
    )  # fmt: skip
    return what, side, qty, reduce_only, px, synced


@njit(cache=True, inline="always")  # no call with every array of a symbol flattened
def _inbox_busy(D):
    return D[CO.D_F_HEAD] < D[CO.D_F_TAIL] or D[CO.D_R_HEAD] < D[CO.D_R_TAIL]


@njit(cache=True)
def run_book_loop(o_sym, o_kind, o_idx, o_ts, o_recv, books, trades, sigs, exs, Ss, Os, prms, ibs,
                  decision_ns, close_at_end):  # fmt: skip
    """Replay the merged events (``o_*``: :func:`merge_order`, with each event's exchange and receive
    times) of K symbols (tuples of K of each of the one-symbol loop's inputs, plus their inboxes
    ``ibs``) through one book (module docstring). Returns ``(overflow, groups)``: whether any output
    overflowed, and how many groups of simultaneous entries were allocated.

    The hot path touches a symbol's arrays only when it must: a trade while that symbol's exchange holds
    no order only stamps its time (written into the core before its next book event, which is when
    the core reads it), and deliveries visit the symbols whose inbox holds something."""
    K = len(Ss)
    B = Ss[0].B
    n = o_sym.shape[0]
    jl = np.full(K, -1, np.int64)  # each symbol's last book event
    tl = np.zeros(K, np.int64)  # its decision time
    vss = np.full(K, -1, np.int64)  # the regime known at its last book event
    live = np.zeros(K, np.bool_)  # its exchange holds an order (a trade must be matched)
    busy = np.zeros(K, np.bool_)  # its inbox holds fills or reports
    last_trade = np.full(K, -1, np.int64)  # receive time of its last trade
    nxt_recv = np.full(K, np.int64(2**62))  # receive time of its next book event
    for k in range(K):
        if books[k].recv.shape[0] > 0:
            nxt_recv[k] = books[k].recv[0]
    cand = np.zeros(K, np.int64)
    cand_synced = np.zeros(K, np.bool_)
    n_groups = 0
    p = 0
    while p < n:
        k = o_sym[p]
        if o_kind[p] == TRADE:
            last_trade[k] = o_recv[p]
            if live[k]:
                i = o_idx[p]
                tr = trades[k]
                ex = exs[k]
                SK.on_trade(ex, tr.ts[i], tr.px[i], tr.sz[i], tr.side[i])
                D = Ss[k].D
                if ex.I[SL.I_NFILL] or ex.I[SL.I_NREP]:
                    LP._to_inbox(ex, D, ibs[k])
                live[k] = ex.I[SL.I_NLIVE] > 0
                busy[k] = _inbox_busy(D)
            p += 1
            continue
        # a group: consecutive book events of distinct symbols at this exchange time
        ts = o_ts[p]
        g = p + 1
        seen = np.int64(1) << k
        while g < n and o_kind[g] == BOOK and o_ts[g] == ts and not (seen >> o_sym[g]) & 1:
            seen |= np.int64(1) << o_sym[g]
            g += 1
        grouped = g - p > 1
        if grouped:
            B.QI[PS.QI_DEFER] = 1
        nc = 0
        for q in range(p, g):
            k = o_sym[q]
            j = o_idx[q]
            t = o_recv[q]
            if K > 1:
                for z in range(K):  # others' fills due by t, never after their next book event
                    if busy[z]:
                        Sz = Ss[z]
                        LP._deliver(min(t, nxt_recv[z]), Sz, Os[z], ibs[z], vss[z])
                        busy[z] = _inbox_busy(Sz.D)
                if t >= B.QI[PS.QI_NEXT_BAR]:
                    CO.core_bar(Ss[k], t)
            book, sig, S, ex = books[k], sigs[k], Ss[k], exs[k]
            S.D[CO.D_LAST_TRADE] = last_trade[k]
            what, side, qty, ro, px, synced = _book_event(book, sig, ex, S, Os[k], prms[k], ibs[k], j, jl[k])
            jl[k] = j
            tl[k] = t
            nxt_recv[k] = book.recv[j + 1] if j + 1 < book.recv.shape[0] else np.int64(2**62)
            vs = sig.vol_state[j]
            vss[k] = np.int64(vs) if math.isfinite(vs) else np.int64(-1)
            if what == CO.CANDIDATE:
                cand[nc] = k
                cand_synced[nc] = synced
                nc += 1
            elif what != CO.NOTHING:
                _send(ex, S, ibs[k], what, side, qty, ro, px, t + decision_ns, synced, book, j)
            live[k] = ex.I[SL.I_NLIVE] > 0
            busy[k] = _inbox_busy(S.D)
        if grouped:
            B.QI[PS.QI_DEFER] = 0
            if nc > 0:
                n_groups += 1
            # grant in the order of the scores, highest first (ties: symbol order of the group)
            done = np.zeros(nc, np.bool_)
            for _ in range(nc):
                best = -1
                for c in range(nc):
                    if not done[c] and (
                        best < 0 or Ss[cand[c]].Df[CO.DF_CAND_SCORE] > Ss[cand[best]].Df[CO.DF_CAND_SCORE]
                    ):
                        best = c
                done[best] = True
                k = cand[best]
                book, S, ex = books[k], Ss[k], exs[k]
                j = jl[k]
                what, side, qty, ro, px = CO.core_commit(
                    S,
                    prms[k],
                    tl[k],
                    BookLevels(book.bid_px[j], book.bid_sz[j], book.ask_px[j], book.ask_sz[j]),
                )
                if what != CO.NOTHING:
                    _send(
                        ex,
                        S,
                        ibs[k],
                        what,
                        side,
                        qty,
                        ro,
                        px,
                        tl[k] + decision_ns,
                        cand_synced[best],
                        book,
                        j,
                    )
                live[k] = ex.I[SL.I_NLIVE] > 0
                busy[k] = _inbox_busy(S.D)
        p = g
    overflow = False
    for k in range(K):
        Ss[k].D[CO.D_LAST_TRADE] = last_trade[k]
        LP.finish_run(
            books[k], sigs[k], exs[k], Ss[k], Os[k], ibs[k], jl[k], tl[k], decision_ns, close_at_end
        )
        if Ss[k].D[CO.D_OVERFLOW] != 0:
            overflow = True
    return overflow, n_groups


@dataclass
class BookResult:
    """A run of several symbols: each symbol's result (as a one-symbol backtest reports it, its equity
    being its own PnL on the account's initial equity) and the book's."""

    symbols: dict[str, BacktestResult]
    equity: pd.DataFrame  # ts, equity: the book's (initial + every symbol's PnL at its last mark)
    rejections: dict[str, int]  # summed over the symbols
    correlation: pd.DataFrame  # the correlation matrix of the covariance at the end of the run
    budget: pd.DataFrame  # ts, capital_in_use, correlated exposure (max), var95 (fractions of equity)
    seconds: float
    events: int
    info: dict[str, Any] = field(default_factory=dict)


def check_book_inputs(who: str, markets: Sequence[Market], signals: Sequence[Signals],
                      instruments: Sequence[Instrument]) -> list[str]:  # fmt: skip
    """The symbols of a book's inputs, or a ValueError naming what is wrong (``who``: the caller)."""
    if not markets:
        raise ValueError(f"{who}: no market given")
    if not (len(markets) == len(signals) == len(instruments)):
        raise ValueError(f"{who}: {len(markets)} markets, {len(signals)} signal sets and "
                         f"{len(instruments)} instruments: give one of each per symbol")  # fmt: skip
    names = [m.symbol for m in markets]
    if len(set(names)) != len(names):
        raise ValueError(f"{who}: a symbol appears twice in {names}")
    if len(markets) > 62:
        raise ValueError(f"{who}: {len(markets)} symbols, at most 62 in one run")
    return names


def run_book_backtest(
    markets: Sequence[Market],
    signals: Sequence[Signals],
    instruments: Sequence[Instrument],
    cfg: VenueAccountConfig | None = None,
    strategy: StrategyConfig | None = None,
    risk: RiskConfig | None = None,
    execution: ExecutionConfig | None = None,
    funding: Sequence[FundingSchedule | None] | None = None,
) -> BookResult:
    """Replay ``markets`` (one per symbol, distinct symbols) together through one book (module
    docstring), each with its signals and instrument; the configs are shared. Each symbol's result is
    what :func:`~orderflow.backtest.engine.run_backtest` reports for one symbol."""
    names = check_book_inputs("run_book_backtest", markets, signals, instruments)
    cfg = cfg or VenueAccountConfig()
    risk = risk or RiskConfig()
    K = len(markets)
    book = PS.new_portfolio(K, risk)
    funding = list(funding) if funding is not None else [None] * K
    per = zip(markets, signals, instruments, funding, strict=True)
    runs = [prepare_run(m, s, inst, cfg, strategy, risk, execution, f, book, k)
            for k, (m, s, inst, f) in enumerate(per)]  # fmt: skip
    order = merge_order(markets)
    ibs = tuple(LP.new_inbox() for _ in range(K))
    t0 = time.perf_counter()
    overflow, groups = run_book_loop(
        *order, tuple(m.book for m in markets), tuple(m.trades for m in markets),
        tuple(s.columns for s in signals), tuple(r.X for r in runs), tuple(r.S for r in runs),
        tuple(r.O for r in runs), tuple(r.prm for r in runs), ibs, runs[0].decision_ns, cfg.close_at_end,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    if overflow:
        raise RuntimeError(runs[0].overflow_message)
    results = {}
    for m, r in zip(markets, runs, strict=True):
        D = r.S.D
        results[m.symbol] = collect_run(r, m, int(D[CO.D_NFO]), int(D[CO.D_NEQ]), int(D[CO.D_NTR]),
                                        int(D[CO.D_OID]), seconds)  # fmt: skip
    rej: dict[str, int] = {}
    for res in results.values():
        for key, v in res.rejections.items():
            rej[key] = rej.get(key, 0) + v
    corr = pd.DataFrame(correlation(book.C), index=names, columns=names)
    return BookResult(
        symbols=results, equity=book_equity(results, cfg.initial_equity), rejections=rej, correlation=corr,
        budget=budget_frame(results, cfg.initial_equity), seconds=seconds,
        events=int(sum(m.n_book + m.t_ts.size for m in markets)),
        info={"groups_allocated": int(groups), "bars": int(book.QI[PS.QI_NBARS]), "symbols": names},
    )  # fmt: skip


def _asof(eq: pd.DataFrame, grid: np.ndarray, col: str, fill: float) -> np.ndarray:
    """``eq[col]`` as of each time of ``grid`` (``fill`` before its first sample)."""
    ts = eq["ts"].to_numpy(np.int64)
    if ts.size == 0:  # a symbol that never had a valid book
        return np.full(grid.size, fill)
    pos = np.searchsorted(ts, grid, side="right") - 1
    vals = eq[col].to_numpy(np.float64)
    return np.where(pos >= 0, vals[np.maximum(pos, 0)], fill)


def book_equity(results: dict[str, BacktestResult], initial: float) -> pd.DataFrame:
    """The book's equity at every symbol's equity sample: ``initial`` plus each symbol's PnL as of
    then."""
    grid = np.unique(np.concatenate([r.equity["ts"].to_numpy(np.int64) for r in results.values()]))
    total = np.full(grid.size, float(initial))
    for r in results.values():
        total += _asof(r.equity, grid, "equity", initial) - initial
    return pd.DataFrame({"ts": grid, "equity": total})


def budget_frame(results: dict[str, BacktestResult], initial: float) -> pd.DataFrame:
    """Capital in use over time (gross notional of every position / the book's equity), from the
    symbols' equity samples."""
    grid = np.unique(np.concatenate([r.equity["ts"].to_numpy(np.int64) for r in results.values()]))
    eq = book_equity(results, initial)["equity"].to_numpy()
    gross = np.zeros(grid.size)
    out = {"ts": grid}
    for name, r in results.items():
        notional = _asof(r.equity, grid, "position", 0.0) * _asof(r.equity, grid, "price", np.nan)
        notional = np.nan_to_num(notional)
        out[f"{name}_exposure"] = notional / eq
        gross += np.abs(notional)
    out["capital_in_use"] = gross / eq
    return pd.DataFrame(out)
