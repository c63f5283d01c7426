"""Order-flow market simulator: a limit order book on an integer tick grid driven by order arrivals.

Model (all rates per second; sizes in base currency, rounded to the lot grid; prices in ticks):

- **Two latent prices.** The *value* ``V`` (what informed traders know) and the *public fair value*
  ``F`` (what market makers quote around). Public **news** (``news_rate`` × regime activity,
  Student-t(``news_df``) moves of ``news_scale[regime]`` ticks) moves both and makes a share
  ``news_reveal`` of the private part ``V - F`` public; a small public diffusion (``fair_vol``), a
  drift in the trending regime and rare large jumps move both; private information
  (``private_vol``) moves ``V`` only. Market makers also read the flow: every market order moves
  ``F`` by ``kyle_lambda`` ticks per unit (plus ``impact_follow`` × the order's own mid move).
- **Re-quotes**: once |F − mid| > ``requote_threshold``, market makers move their quotes toward
  ``F`` at ``requote_rate`` (their reaction time), at most ``requote_step`` ticks at a time: the
  stale side's levels in between are cancelled and a fresh 1-tick market is quoted. The price thus
  moves in discrete jumps of several ticks with quiet seconds in between (as on Binance BTCUSDT,
  where a 0.1 tick is tiny), and the side left behind keeps a gap below/above its new best.
- **Noise market orders** arrive at ``market_order_rate`` × activity plus a short-lived Hawkes
  excitation (``hawkes_alpha`` per order, decaying at ``hawkes_beta``), log-normal sizes; they walk
  the book and print one trade per maker order filled (several prints per level).
- **Informed market orders** go toward ``V`` at ``informed_rate`` × min(|V − mid| /
  ``informed_scale``, ``informed_cap``) × activity: signed volume predicts later returns a little.
- **Liquidity**: orders joining the best queue, partial cancels at the best in proportion to its size
  (so the top queue hovers near ``queue_ref``), thin orders behind the best up to ``deep_max`` ticks
  that are cancelled as whole levels, and, whenever the spread is wider than one tick, fast new quotes
  next to the other side (``inside_rate``) whose side follows the last move (``follow``) and leans
  toward ``F`` (``fair_pull``).
- **Regimes**: a Markov chain calm (0) / trending (1) / volatile (2) with mean durations
  ``regime_durations_s``; activity, news size and diffusion grow from calm to volatile, which keeps
  volatility clustered at the minute scale while 1 s returns are nearly uncorrelated in size.

The mid is never set: it moves only when a best queue empties (market orders, cancels), a quote
arrives inside the spread or market makers re-quote, so price *emerges* from the book, on one tick
grid, never crossed. Output: a ``book`` row (top ``levels``) at the grid times k ×
``snapshot_interval_ms`` **only when the top ``levels`` changed** since the previous row (unchanged
snapshots are skipped), its ``update_id`` being the count of simulated events so far, so ids are
strictly increasing and never repeat; every trade with aggressor side and consecutive trade ids; a
``regime`` row per second (regime, ``fair_price`` = the value ``V``). ``ts_recv`` = ``ts_event`` +
simulated latency. With ``context`` (on by default) the market context series (funding, mark and
index price, open interest, long/short ratios, taker volumes, liquidations) are derived from the
simulated trades (:mod:`orderflow.data.sim_context`). Simulation and writing go in chunks of
``chunk_hours`` so memory stays bounded.
Same seed, same output.

Calibrated (defaults) against Binance USD-M BTCUSDT recordings: about 35 trades/s, 1 s return std
~5e-5 (calm) to ~1.4e-4 (volatile), about half of the seconds without a mid change, 1 s OFI R^2 ~0.4
at the best level (see ``benchmarks/bench_simulator.py`` and ``orderflow data facts``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from orderflow.data import simulator_kernel as k
from orderflow.data.config import SimulatorConfig
from orderflow.data.context_schema import COLUMNS, PERIODIC, PERIODS
from orderflow.data.schema import book_columns
from orderflow.data.sim_context import ContextAccumulator
from orderflow.data.store import Store

log = logging.getLogger(__name__)
NS = 1_000_000_000


@dataclass
class SimResult:
    """Counts and timings of a run; with no store, the generated tables themselves."""

    config: SimulatorConfig
    start_ns: int
    end_ns: int
    book_rows: int = 0
    trade_rows: int = 0
    regime_rows: int = 0
    context_rows: int = 0
    sim_seconds: float = 0.0  # wall time in the simulation kernel and table building
    write_seconds: float = 0.0  # wall time writing the store
    source: str = ""
    book: pd.DataFrame | None = None
    trades: pd.DataFrame | None = None
    regimes: pd.DataFrame | None = None
    context: dict[str, pd.DataFrame] | None = None  # kind -> frame (sim_context), without a store
    parts: list = field(default_factory=list)

    @property
    def hours(self) -> float:
        return (self.end_ns - self.start_ns) / NS / 3600.0


class _Tables:
    """Turns kernel buffers into the stored layouts (prices and sizes back on their grids)."""

    def __init__(self, cfg: SimulatorConfig, start_ns: int, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.start_ns = start_ns
        self.rng = rng
        inst = cfg.instrument()
        self.pdec, self.sdec = inst.price_decimals, inst.size_decimals
        self.cols = book_columns(cfg.levels)

    def _latency(self, n: int) -> np.ndarray:
        return np.round(self.rng.exponential(self.cfg.latency_ms * 1e6, n)).astype(np.int64)

    def book(self, t: np.ndarray, rows: np.ndarray, uid: np.ndarray) -> pd.DataFrame:
        lv = self.cfg.levels
        vals = rows.copy()
        vals[:, :lv] = np.round(vals[:, :lv] * self.cfg.tick_size, self.pdec)
        vals[:, 2 * lv : 3 * lv] = np.round(vals[:, 2 * lv : 3 * lv] * self.cfg.tick_size, self.pdec)
        vals[:, lv : 2 * lv] = np.round(vals[:, lv : 2 * lv] * self.cfg.lot_size, self.sdec)
        vals[:, 3 * lv :] = np.round(vals[:, 3 * lv :] * self.cfg.lot_size, self.sdec)
        ts = self.start_ns + np.round(t * 1e9).astype(np.int64)
        df = pd.DataFrame(vals, columns=self.cols)
        df.insert(0, "update_id", uid.astype(np.int64))
        df.insert(0, "ts_recv", ts + self._latency(len(ts)))
        df.insert(0, "ts_event", ts)
        return df

    def trades(self, t, px, sz, side, first_id: int) -> pd.DataFrame:
        ts = self.start_ns + np.round(t * 1e9).astype(np.int64)
        return pd.DataFrame(
            {
                "ts_event": ts,
                "ts_recv": ts + self._latency(len(ts)),
                "trade_id": np.arange(first_id, first_id + len(ts), dtype=np.int64),
                "price": np.round(px * self.cfg.tick_size, self.pdec),
                "size": np.round(sz * self.cfg.lot_size, self.sdec),
                "side": side.astype(np.int8),
            }
        )

    def regimes(self, t: np.ndarray, reg: np.ndarray, value: np.ndarray) -> pd.DataFrame:
        """One row per whole second of simulated time: regime and the latent value ``V``."""
        ts = self.start_ns + np.round(t).astype(np.int64) * NS
        return pd.DataFrame(
            {
                "ts_event": ts,
                "ts_recv": ts,
                "regime": reg.astype(np.int8),
                "fair_price": np.round(value * self.cfg.tick_size, self.pdec + 2),
            }
        )


def _kernel_params(cfg: SimulatorConfig) -> np.ndarray:
    """The kernel's float parameters (``simulator_kernel.P_NAMES`` order), sizes in lots."""
    lots = 1.0 / cfg.lot_size
    v = {
        "mo_rate": cfg.market_order_rate,
        "mo_size_med": cfg.market_order_size * lots,
        "mo_size_sigma": cfg.market_order_sigma,
        "hawkes_alpha": cfg.hawkes_alpha,
        "hawkes_beta": cfg.hawkes_beta,
        "join_rate": cfg.join_rate,
        "join_size_med": cfg.join_size * lots,
        "join_size_sigma": cfg.join_sigma,
        "cancel_rate": cfg.cancel_rate,
        "queue_ref": cfg.queue_ref * lots,
        "deep_rate": cfg.deep_rate,
        "deep_size_med": cfg.deep_size * lots,
        "deep_size_sigma": cfg.deep_sigma,
        "deep_max": float(cfg.deep_max),
        "deep_cancel": cfg.deep_cancel,
        "inside_rate": cfg.inside_rate,
        "inside_size_med": cfg.inside_size * lots,
        "follow": cfg.follow,
        "fair_pull": cfg.fair_pull,
        "informed_rate": cfg.informed_rate,
        "informed_scale": cfg.informed_scale,
        "informed_cap": cfg.informed_cap,
        "kyle": cfg.kyle_lambda * cfg.lot_size,
        "impact_follow": cfg.impact_follow,
        "requote_rate": cfg.requote_rate,
        "requote_thr": cfg.requote_threshold,
        "requote_step": cfg.requote_step,
        "news_rate": cfg.news_rate,
        "news_df": cfg.news_df,
        "news_reveal": cfg.news_reveal,
        "news_alpha": cfg.news_alpha,
        "news_beta": cfg.news_beta,
        "private_vol": cfg.private_vol,
        "prints_per_lot": cfg.prints_per_lot,
        "snap_s": cfg.snapshot_interval_ms / 1000.0,
        "drift_1": cfg.trend_drift,
        "jump_rate": cfg.jump_rate,
        "jump_scale": cfg.jump_scale,
    }
    for i in range(3):
        v[f"act_{i}"] = cfg.regime_activity[i]
        v[f"fv_vol_{i}"] = cfg.fair_vol[i]
        v[f"news_{i}"] = cfg.news_scale[i]
        v[f"dur_{i}"] = cfg.regime_durations_s[i]
    return np.array([float(v[n]) for n in k.P_NAMES])


def _clear_source(store: Store, cfg: SimulatorConfig) -> None:
    """Remove the parts of every earlier simulation of this venue/symbol (of any seed: one store holds one
    simulated market per symbol, and mixing two would interleave two unrelated price paths)."""
    context = [k for k in COLUMNS if k != "fear_greed"] + [f"{s}_{p}" for s in PERIODIC for p in PERIODS]
    for kind in ("book", "trade", "regime", *context):
        store.remove_parts(cfg.venue, cfg.symbol, kind, "sim-seed")


def simulate(
    config: SimulatorConfig,
    store: Store | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> SimResult:
    """Run the simulator. With ``store``, write kinds ``book``, ``trade`` and ``regime`` chunk by chunk
    (source ``sim-seed<seed>-c<chunk>``) and, with ``config.context``, the market context series of
    :mod:`orderflow.data.sim_context` at the end (source ``sim-seed<seed>-ctx``), in one store
    transaction that replaces every earlier simulation of the symbol, and the instrument; without,
    return the tables in the result.
    ``progress(done_hours, total_hours)`` is called per chunk."""
    if store is not None:
        with store.transaction():
            return _simulate(config, store, progress)
    return _simulate(config, None, progress)


def _simulate(
    config: SimulatorConfig,
    store: Store | None,
    progress: Callable[[float, float], None] | None,
) -> SimResult:
    cfg = config
    start_ns = cfg.start_ns()
    total_s = cfg.hours * 3600.0
    p = _kernel_params(cfg)
    trans = cfg.transition_matrix()
    prefix = f"sim-seed{cfg.seed}"
    res = SimResult(cfg, start_ns, start_ns + round(total_s * NS), source=prefix)
    if store is not None:
        store.put_instrument(cfg.instrument())
        _clear_source(store, cfg)
    tables = _Tables(cfg, start_ns, np.random.default_rng(cfg.seed + 7_919))
    k.seed_rng(cfg.seed)
    bq = np.zeros(k.W, dtype=np.int64)
    aq = np.zeros(k.W, dtype=np.int64)
    sf = np.zeros(8)
    si = np.zeros(8, dtype=np.int64)
    k.init_book(bq, aq, sf, si, p, round(cfg.initial_price / cfg.tick_size))
    chunk_s = cfg.chunk_hours * 3600.0
    snap_cap = int(chunk_s / p[k.PI["snap_s"]]) + 2
    reg_cap = int(chunk_s) + 2
    tr_cap = 400_000
    last_row = np.full(4 * cfg.levels, np.nan)
    snap_t = np.empty(snap_cap)
    snap_rows = np.empty((snap_cap, 4 * cfg.levels))
    snap_uid = np.empty(snap_cap, dtype=np.int64)
    reg_t = np.empty(reg_cap)
    reg_reg = np.empty(reg_cap, dtype=np.int64)
    reg_val = np.empty(reg_cap)
    tr_t = np.empty(tr_cap)
    tr_px = np.empty(tr_cap, dtype=np.int64)
    tr_sz = np.empty(tr_cap, dtype=np.int64)
    tr_side = np.empty(tr_cap, dtype=np.int64)
    book_buf = k.BookRows(snap_t, snap_rows, snap_uid)
    regime_buf = k.RegimeRows(reg_t, reg_reg, reg_val)
    trade_buf = k.TradeRows(tr_t, tr_px, tr_sz, tr_side)
    keep: dict[str, list[pd.DataFrame]] = {"book": [], "trade": [], "regime": []}
    ctx = ContextAccumulator(res.start_ns, res.end_ns, cfg.context.periods) if cfg.context else None
    chunk = 0
    next_trade_id = 1
    while sf[k.SF_T] < total_s:
        t_end = min(total_s, (chunk + 1) * chunk_s)
        books, trades, regs = [], [], []
        while sf[k.SF_T] < t_end:
            t0 = time.perf_counter()
            ns, nr, nt = k.run_chunk(
                bq,
                aq,
                sf,
                si,
                p,
                trans,
                t_end,
                cfg.levels,
                last_row,
                book_buf,
                regime_buf,
                trade_buf,
            )
            books.append(tables.book(snap_t[:ns], snap_rows[:ns], snap_uid[:ns]))
            regs.append(tables.regimes(reg_t[:nr], reg_reg[:nr], reg_val[:nr]))
            trades.append(tables.trades(tr_t[:nt], tr_px[:nt], tr_sz[:nt], tr_side[:nt], next_trade_id))
            next_trade_id += nt
            res.sim_seconds += time.perf_counter() - t0
        frames = {
            "book": pd.concat(books, ignore_index=True),
            "trade": pd.concat(trades, ignore_index=True),
            "regime": pd.concat(regs, ignore_index=True),
        }
        res.book_rows += len(frames["book"])
        res.trade_rows += len(frames["trade"])
        res.regime_rows += len(frames["regime"])
        if ctx is not None:
            t0 = time.perf_counter()
            ctx.add(frames["trade"])
            res.sim_seconds += time.perf_counter() - t0
        if store is not None:
            t0 = time.perf_counter()
            for kind, df in frames.items():
                res.parts += store.write(cfg.venue, cfg.symbol, kind, df, source=f"{prefix}-c{chunk:05d}")
            res.write_seconds += time.perf_counter() - t0
        else:
            for kind, df in frames.items():
                keep[kind].append(df)
        chunk += 1
        log.info(
            "simulated %.2f of %.2f h (%d book rows, %d trades)",
            t_end / 3600,
            cfg.hours,
            res.book_rows,
            res.trade_rows,
        )
        if progress is not None:
            progress(t_end / 3600.0, cfg.hours)
    if ctx is not None:
        t0 = time.perf_counter()
        context = ctx.frames(cfg.seed, cfg.context)
        res.context_rows = sum(len(df) for df in context.values())
        res.sim_seconds += time.perf_counter() - t0
        if store is not None:
            t0 = time.perf_counter()
            for kind, df in context.items():
                res.parts += store.write(cfg.venue, cfg.symbol, kind, df, source=f"{prefix}-ctx")
            res.write_seconds += time.perf_counter() - t0
        else:
            res.context = context
    if store is None:
        res.book = pd.concat(keep["book"], ignore_index=True)
        res.trades = pd.concat(keep["trade"], ignore_index=True)
        res.regimes = pd.concat(keep["regime"], ignore_index=True)
    return res
