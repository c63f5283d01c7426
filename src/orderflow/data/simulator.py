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
simulated latency. Simulation and writing go in chunks of ``chunk_hours`` so memory stays bounded.
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
from pydantic import BaseModel, ConfigDict, Field

from orderflow.core.instruments import Instrument
from orderflow.data import simulator_kernel as k
from orderflow.data.schema import book_columns
from orderflow.data.store import Store

log = logging.getLogger(__name__)
NS = 1_000_000_000


class SimulatorConfig(BaseModel):
    """Simulator settings. Sizes are in base currency (BTC), prices in quote currency, times in s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field("BTCUSDT", description="symbol written to the store")
    venue: str = Field("sim", description="venue written to the store")
    start: str = Field("2024-01-01", description="ISO date or datetime (UTC) of the first event")
    hours: float = Field(1.0, gt=0, le=24 * 31, description="simulated hours")
    seed: int = Field(1, ge=0, description="random seed: same seed, same output")
    levels: int = Field(20, ge=1, le=100, description="book levels per stored row")
    snapshot_interval_ms: int = Field(100, ge=1, description="book row interval")
    tick_size: float = Field(0.1, gt=0, description="price grid (Binance USD-M BTCUSDT)")
    lot_size: float = Field(0.001, gt=0, description="size grid (Binance USD-M BTCUSDT)")
    initial_price: float = Field(60000.0, gt=0, description="starting mid")
    latency_ms: float = Field(5.0, ge=0, description="mean ts_recv - ts_event (exponential around it)")
    chunk_hours: float = Field(1.0, gt=0, description="simulate and write in chunks of this length")
    # noise market orders
    market_order_rate: float = Field(7.0, gt=0, description="noise market orders/s (both sides, calm)")
    market_order_size: float = Field(0.03, gt=0, description="median market order size")
    market_order_sigma: float = Field(1.8, ge=0, description="log-normal sigma of market order sizes")
    hawkes_alpha: float = Field(1.0, ge=0, description="intensity added per market order (1/s)")
    hawkes_beta: float = Field(8.0, gt=0, description="decay rate of the excitation (1/s)")
    prints_per_lot: float = Field(0.01, ge=0, description="extra trade prints per lot filled at a level")
    # liquidity
    join_rate: float = Field(8.0, ge=0, description="orders/s joining each best queue")
    join_size: float = Field(0.2, gt=0, description="median size joining or cancelled at the best")
    join_sigma: float = Field(1.0, ge=0, description="log-normal sigma of best-queue order sizes")
    cancel_rate: float = Field(8.0, ge=0, description="cancels/s at each best when it holds queue_ref")
    queue_ref: float = Field(3.0, gt=0, description="reference best-queue size for cancel rates")
    deep_rate: float = Field(6.0, ge=0, description="orders/s per side behind the best")
    deep_size: float = Field(0.13, gt=0, description="median size of orders behind the best")
    deep_sigma: float = Field(1.2, ge=0, description="log-normal sigma of orders behind the best")
    deep_max: int = Field(150, ge=2, le=2000, description="ticks behind the best where orders land")
    deep_cancel: float = Field(0.05, ge=0, description="cancel rate of each level behind the best")
    inside_rate: float = Field(200.0, gt=0, description="quotes/s arriving inside a spread > 1 tick")
    inside_size: float = Field(1.5, gt=0, description="median size of a new quote (inside or re-quote)")
    follow: float = Field(1.0, description="log-odds that a quote inside the spread follows the last move")
    fair_pull: float = Field(0.05, ge=0, description="log-odds per tick of F-mid toward fair value")
    requote_rate: float = Field(
        20.0, gt=0, description="re-quotes/s once |F-mid| > requote_threshold (1/reaction time)"
    )
    requote_threshold: float = Field(8.0, ge=0.5, description="ticks of |F-mid| before market makers move")
    requote_step: float = Field(40.0, ge=1, description="most ticks one re-quote moves the quotes")
    kyle_lambda: float = Field(1.0, ge=0, description="ticks F moves per unit (BTC) of market order flow")
    impact_follow: float = Field(
        0.0, ge=0, le=1, description="share of a market order's own mid move that F adopts"
    )
    # news and private information
    news_rate: float = Field(0.35, ge=0, description="public news events/s (times activity)")
    news_scale: tuple[float, float, float] = Field(
        (32.0, 45.0, 65.0), description="scale of Student-t news moves of V and F per regime, ticks"
    )
    news_df: float = Field(3.0, gt=2, description="degrees of freedom of the news moves")
    news_alpha: float = Field(0.0, ge=0, description="news intensity added per news event (1/s)")
    news_beta: float = Field(2.0, gt=0, description="decay rate of the news excitation (1/s)")
    news_reveal: float = Field(0.03, ge=0, le=1, description="share of V-F made public by a news event")
    private_vol: float = Field(13.0, ge=0, description="vol of private information (V only), ticks/sqrt(s)")
    # informed flow
    informed_rate: float = Field(
        4.0, ge=0, description="informed market orders/s at |V-mid| = informed_scale"
    )
    informed_scale: float = Field(50.0, gt=0, description="ticks of |V-mid| for informed_rate")
    informed_cap: float = Field(3.0, gt=0, description="cap on |V-mid| / informed_scale")
    # regimes: calm, trending, volatile
    regime_activity: tuple[float, float, float] = Field((1.0, 1.3, 2.0), description="rate multipliers")
    fair_vol: tuple[float, float, float] = Field(
        (1.0, 1.5, 2.5), description="public diffusion of V and F, ticks/sqrt(s)"
    )
    trend_drift: float = Field(1.0, description="drift of V and F in the trending regime, ticks/s")
    jump_rate: float = Field(0.0005, ge=0, description="rare large public jumps/s (times activity)")
    jump_scale: float = Field(150.0, ge=0, description="scale of Student-t(3) rare jumps, ticks")
    regime_durations_s: tuple[float, float, float] = Field(
        (2400.0, 900.0, 600.0), description="mean durations"
    )
    regime_transitions: tuple[tuple[float, float, float], ...] = Field(
        ((0.0, 0.6, 0.4), (0.6, 0.0, 0.4), (0.7, 0.3, 0.0)), description="row-stochastic jump matrix"
    )

    def start_ns(self) -> int:
        ts = pd.Timestamp(self.start)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return int(ts.value)

    def instrument(self) -> Instrument:
        return Instrument(self.venue, self.symbol, self.tick_size, self.lot_size)

    def kernel_params(self) -> np.ndarray:
        lots = 1.0 / self.lot_size
        v = {
            "mo_rate": self.market_order_rate,
            "mo_size_med": self.market_order_size * lots,
            "mo_size_sigma": self.market_order_sigma,
            "hawkes_alpha": self.hawkes_alpha,
            "hawkes_beta": self.hawkes_beta,
            "join_rate": self.join_rate,
            "join_size_med": self.join_size * lots,
            "join_size_sigma": self.join_sigma,
            "cancel_rate": self.cancel_rate,
            "queue_ref": self.queue_ref * lots,
            "deep_rate": self.deep_rate,
            "deep_size_med": self.deep_size * lots,
            "deep_size_sigma": self.deep_sigma,
            "deep_max": float(self.deep_max),
            "deep_cancel": self.deep_cancel,
            "inside_rate": self.inside_rate,
            "inside_size_med": self.inside_size * lots,
            "follow": self.follow,
            "fair_pull": self.fair_pull,
            "informed_rate": self.informed_rate,
            "informed_scale": self.informed_scale,
            "informed_cap": self.informed_cap,
            "kyle": self.kyle_lambda * self.lot_size,
            "impact_follow": self.impact_follow,
            "requote_rate": self.requote_rate,
            "requote_thr": self.requote_threshold,
            "requote_step": self.requote_step,
            "news_rate": self.news_rate,
            "news_df": self.news_df,
            "news_reveal": self.news_reveal,
            "news_alpha": self.news_alpha,
            "news_beta": self.news_beta,
            "private_vol": self.private_vol,
            "prints_per_lot": self.prints_per_lot,
            "snap_s": self.snapshot_interval_ms / 1000.0,
            "drift_1": self.trend_drift,
            "jump_rate": self.jump_rate,
            "jump_scale": self.jump_scale,
        }
        for i in range(3):
            v[f"act_{i}"] = self.regime_activity[i]
            v[f"fv_vol_{i}"] = self.fair_vol[i]
            v[f"news_{i}"] = self.news_scale[i]
            v[f"dur_{i}"] = self.regime_durations_s[i]
        return np.array([float(v[n]) for n in k.P_NAMES])

    def transition_matrix(self) -> np.ndarray:
        m = np.array(self.regime_transitions, dtype=np.float64)
        if m.shape != (3, 3) or np.any(m < 0) or not np.allclose(m.sum(axis=1), 1.0):
            raise ValueError(f"regime_transitions must be a 3x3 row-stochastic matrix, got {m.tolist()}")
        return m


@dataclass
class SimResult:
    """Counts and timings of a run; with no store, the generated tables themselves."""

    config: SimulatorConfig
    start_ns: int
    end_ns: int
    book_rows: int = 0
    trade_rows: int = 0
    regime_rows: int = 0
    sim_seconds: float = 0.0  # wall time in the simulation kernel and table building
    write_seconds: float = 0.0  # wall time writing the store
    source: str = ""
    book: pd.DataFrame | None = None
    trades: pd.DataFrame | None = None
    regimes: pd.DataFrame | None = None
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


def _clear_source(store: Store, cfg: SimulatorConfig) -> None:
    """Remove the parts of every earlier simulation of this venue/symbol (of any seed: one store holds one
    simulated market per symbol, and mixing two would interleave two unrelated price paths)."""
    for kind in ("book", "trade", "regime"):
        store.remove_parts(cfg.venue, cfg.symbol, kind, "sim-seed")


def simulate(
    config: SimulatorConfig,
    store: Store | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> SimResult:
    """Run the simulator. With ``store``, write kinds ``book``, ``trade`` and ``regime`` chunk by chunk
    (source ``sim-seed<seed>-c<chunk>``) in one store transaction that replaces every earlier simulation of
    the symbol, and the instrument; without, return the tables in the result.
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
    p = cfg.kernel_params()
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
    if store is None:
        res.book = pd.concat(keep["book"], ignore_index=True)
        res.trades = pd.concat(keep["trade"], ignore_index=True)
        res.regimes = pd.concat(keep["regime"], ignore_index=True)
    return res
