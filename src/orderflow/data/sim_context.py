"""The simulated market context (issue 19): the series a USD-M perpetual publishes beside its book and
trades, derived from the simulated trades so that they agree with the flow.

Model, on a 1 s grid (second k holds the events with ``ts_event`` in ``[start + k s, start + (k+1) s)``;
its state is stamped ``E_k = start + (k+1) s``); ``cfg`` is a
:class:`~orderflow.data.config.ContextSimConfig`:

- **price** ``P_k``: the last trade price up to ``E_k`` (the first trade's price before it);
- **index** ``I_k = EMA(P, index_halflife_s) x (1 + b_k)``: a slow average of the price (an index of
  spot prices lags the perpetual) times a slow AR(1) noise ``b`` (std ``basis_bps``, time constant
  ``basis_tau_s``); **mark** = the price; **premium** ``p_k = (mark - index) / index``;
- **funding** at every 8 h UTC time T (00, 08, 16 h) after the start: ``Pbar`` = the mean premium over
  the seconds of (T - 8 h, T - 1 s] (the time-weighted premium, seconds being equal), and Binance's rate
  ``clamp(Pbar + clamp(interest - Pbar, +-interest_clamp), +-funding_cap)``; the mark-price stream's
  ``funding_rate`` is the same formula on the premium averaged since the last funding time, so its last
  announcement before T is the rate settled at T;
- **open interest** ``OI = oi_initial + y``, ``y_k = d y_(k-1) + oi_open_share V_k + oi_persist_gain
  |F_k| - L_k`` with ``d = exp(-1 s / oi_tau_s)``, ``V`` the volume traded in second k, ``F`` an EMA
  (half-life ``flow_halflife_s``) of the signed volume per second and ``L`` the liquidated quantity:
  volume opens positions, persistent one-sided aggression opens more, opened positions close
  (decay) when the flow stops, liquidations close them at once;
- **taker volumes** of a period: exactly the summed sizes of the buyer- (``side > 0``) and
  seller-aggressed (``side < 0``) trades with ``ts_event`` in [start, start + period);
  ``buy_sell_ratio = buy / sell`` (NaN without sells);
- **long/short ratios** per period: the global long share ``ls_base_global + ls_flow_gain x m + n``
  follows the flow (``m`` an EMA over periods of the period's volume imbalance); top traders lean
  with the informed flow, the price move to come: top accounts ``ls_base_top + ls_informed_gain / 2
  x tanh(R / informed_ret_scale) + ls_flow_gain / 3 x m + n``, top positions the same with the full
  ``ls_informed_gain``, ``R`` the log price change from the period start over ``informed_horizon_s``
  (clipped to the run). ``n``: AR(1) noise (coefficient 0.8 a period, std ``ls_noise``); shares are
  clipped to [0.05, 0.95], ``ratio = long / short``;
- **liquidations** burst on sharp moves: in second k, ``Poisson(liq_rate x max(|r| / liq_threshold - 1,
  0))`` orders, ``r`` the log price change over the last ``liq_window_s`` s; sells (longs liquidated) on
  drops, buys on rallies; at most one row a second (Binance's forceOrder stream sends the latest order
  per second; here the second's orders summed), quantity log-normal (``liq_size``, ``liq_sigma``) per
  order, price 0.2 % through the mark (``avg_price`` = the mark).

Times: ``mark_price`` and ``liquidation`` rows are received a small exponential latency
(``latency_ms``) after their event time; periodic statistics at
:func:`~orderflow.data.context_schema.publication_ns` (the period's end + ``stat_delay_s``); funding at
its funding time. Periods lie on the UTC grid and only whole periods inside [start, end] are written.

:class:`ContextAccumulator` keeps per-second sums (memory bounded by the span, not by the trades) so
the simulator feeds it chunk by chunk; :func:`simulate_context` is the one-frame entry point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from orderflow.data.config import ContextSimConfig
from orderflow.data.context_schema import PERIODS, frame, periodic_kind, publication_ns

NS = 1_000_000_000
FUNDING_INTERVAL_S = 8 * 3600


def _ema(x: np.ndarray, halflife_s: float, x0: float) -> np.ndarray:
    """EMA on the 1 s grid, started at ``x0``: y_k = a y_(k-1) + (1 - a) x_k, a = 2^(-1/halflife)."""
    a = 2.0 ** (-1.0 / halflife_s)
    y, _ = lfilter([1.0 - a], [1.0, -a], x, zi=[a * x0])
    return y


def _ar1(rng: np.random.Generator, n: int, coef: float, std: float) -> np.ndarray:
    """A stationary AR(1) path of ``n`` steps with marginal std ``std``."""
    e = rng.standard_normal(n) * std * np.sqrt(max(1.0 - coef * coef, 0.0))
    y, _ = lfilter([1.0], [1.0, -coef], e, zi=[coef * rng.standard_normal() * std])
    return y


class ContextAccumulator:
    """Per-second trade sums over [start_ns, end_ns), fed chunk by chunk; :meth:`frames` builds the
    context series."""

    def __init__(self, start_ns: int, end_ns: int, periods: tuple[str, ...]) -> None:
        if end_ns <= start_ns:
            raise ValueError(f"simulate_context: end_ns {end_ns} is not after start_ns {start_ns}")
        self.start, self.end = int(start_ns), int(end_ns)
        self.n = -(-(self.end - self.start) // NS)
        self.last_px = np.full(self.n, np.nan)
        self.buy = np.zeros(self.n)
        self.sell = np.zeros(self.n)
        self.periods = periods
        self._p0 = {p: -(-self.start // (PERIODS[p] * NS)) for p in periods}  # first whole period
        self._np = {p: (self.end // (PERIODS[p] * NS)) - self._p0[p] for p in periods}
        self.taker = {p: (np.zeros(max(self._np[p], 0)), np.zeros(max(self._np[p], 0))) for p in periods}

    def add(self, trades: pd.DataFrame) -> None:
        """Add trades (ts_event, price, size, side; sorted by ts_event) inside [start, end)."""
        missing = {"ts_event", "price", "size", "side"} - set(trades.columns)
        if missing:
            raise ValueError(f"simulate_context: trade frame lacks columns {sorted(missing)}")
        ts = trades["ts_event"].to_numpy(np.int64)
        if ts.size == 0:
            return
        if np.any(np.diff(ts) < 0):
            raise ValueError("simulate_context: trades are not sorted by ts_event")
        keep = (ts >= self.start) & (ts < self.end)
        ts = ts[keep]
        px = trades["price"].to_numpy(np.float64)[keep]
        sz = trades["size"].to_numpy(np.float64)[keep]
        side = trades["side"].to_numpy(np.int64)[keep]
        k = (ts - self.start) // NS
        last = np.flatnonzero(np.r_[k[1:] != k[:-1], True]) if k.size else k
        self.last_px[k[last]] = px[last]
        b, s = np.where(side > 0, sz, 0.0), np.where(side < 0, sz, 0.0)
        self.buy += np.bincount(k, b, self.n)
        self.sell += np.bincount(k, s, self.n)
        for p in self.periods:
            m = self._np[p]
            if m <= 0:
                continue
            j = ts // (PERIODS[p] * NS) - self._p0[p]
            ok = (j >= 0) & (j < m)
            tb, tsell = self.taker[p]
            tb += np.bincount(j[ok], b[ok], m)
            tsell += np.bincount(j[ok], s[ok], m)

    def frames(self, seed: int = 0, cfg: ContextSimConfig | None = None) -> dict[str, pd.DataFrame]:
        cfg = cfg or ContextSimConfig()
        if not np.isfinite(self.last_px).any():
            raise ValueError("simulate_context: no trades in [start_ns, end_ns)")
        rng = np.random.default_rng([int(seed), 19])
        n = self.n
        px = pd.Series(self.last_px).ffill().bfill().to_numpy()
        E = self.start + (np.arange(n, dtype=np.int64) + 1) * NS  # the state of second k at E_k
        vol = self.buy + self.sell
        signed = self.buy - self.sell
        index = _ema(px, cfg.index_halflife_s, px[0]) * (
            1.0 + _ar1(rng, n, np.exp(-1.0 / cfg.basis_tau_s), cfg.basis_bps * 1e-4)
        )
        mark = np.round(px, 2)
        index = np.round(index, 2)
        prem = (mark - index) / index
        out: dict[str, pd.DataFrame] = {}
        out["funding"], est = self._funding(E, prem, mark, cfg)
        lat = np.round(rng.exponential(cfg.latency_ms * 1e6, n)).astype(np.int64)
        step = FUNDING_INTERVAL_S * NS
        out["mark_price"] = frame(
            "mark_price", E, E + lat, mark_price=mark, index_price=index, est_settle_price=index,
            funding_rate=est, next_funding_ns=(E // step + 1) * step,
        )  # fmt: skip
        out["liquidation"], liq = self._liquidations(rng, px, cfg)
        flow = _ema(signed, cfg.flow_halflife_s, 0.0)
        u = cfg.oi_open_share * vol + cfg.oi_persist_gain * np.abs(flow) - liq
        d = np.exp(-1.0 / cfg.oi_tau_s)
        oi = cfg.oi_initial + lfilter([1.0], [1.0, -d], u)
        oi = np.maximum(oi, 0.0)
        for p in self.periods:
            out.update(self._periodic(p, rng, px, mark, oi, cfg))
        return out

    def _funding(self, E, prem, mark, cfg) -> tuple[pd.DataFrame, np.ndarray]:
        step = FUNDING_INTERVAL_S * NS
        interval = (E - 1) // step  # second k's premium counts toward funding time (interval + 1) x step
        first = np.r_[True, interval[1:] != interval[:-1]]
        grp = np.cumsum(first) - 1
        csum = np.cumsum(prem)
        base = np.r_[0.0, csum][np.flatnonzero(first)][grp]
        cnt = np.arange(E.size) - np.flatnonzero(first)[grp] + 1
        pbar = (csum - base) / cnt  # mean premium since the interval started
        est = np.clip(pbar + np.clip(cfg.interest_rate - pbar, -cfg.interest_clamp, cfg.interest_clamp),
                      -cfg.funding_cap, cfg.funding_cap)  # fmt: skip
        # the rate settled at T is the one the mark-price stream announced last for T (its second
        # ending at T - 1 s), as an engine booking the announced rate reads it before T
        at = np.flatnonzero((E + NS) % step == 0)
        t = E[at] + NS
        df = frame("funding", t, t, rate=est[at], mark_price=mark[at])
        return df, est

    def _liquidations(self, rng, px, cfg) -> tuple[pd.DataFrame, np.ndarray]:
        n, w = px.size, cfg.liq_window_s
        r = np.zeros(n)
        lp = np.log(px)
        r[w:] = lp[w:] - lp[:-w]
        lam = cfg.liq_rate * np.maximum(np.abs(r) / cfg.liq_threshold - 1.0, 0.0)
        count = rng.poisson(lam)
        k = np.flatnonzero(count > 0)
        qty = np.zeros(n)
        if k.size:
            per = rng.lognormal(np.log(cfg.liq_size), cfg.liq_sigma, int(count[k].sum()))
            qty[k] = np.add.reduceat(per, np.r_[0, np.cumsum(count[k])[:-1]])
        q = np.round(qty[k], 3)
        side = np.where(r[k] < 0, -1, 1).astype(np.int8)
        ts = self.start + k * NS + rng.integers(0, 1000, k.size) * 1_000_000
        lat = np.round(rng.exponential(cfg.latency_ms * 1e6, k.size)).astype(np.int64)
        mark = np.round(px[k], 2)
        df = frame("liquidation", ts, ts + lat, side=side, price=np.round(mark * (1 + 0.002 * side), 2),
                   avg_price=mark, qty=q, filled_qty=q)  # fmt: skip
        qty[k] = q
        return df, qty

    def _periodic(self, p, rng, px, mark, oi, cfg) -> dict[str, pd.DataFrame]:
        m = self._np[p]
        if m <= 0:
            return {}
        ps = PERIODS[p] * NS
        t0 = (self._p0[p] + np.arange(m, dtype=np.int64)) * ps  # period starts
        kend = (t0 + ps - self.start) // NS - 1  # the second ending at the period's end
        kstart = np.maximum((t0 - self.start) // NS - 1, 0)
        out = {}
        kind = periodic_kind("open_interest", p)
        o = np.round(oi[kend], 3)
        out[kind] = frame(kind, t0, publication_ns(kind, t0, cfg.stat_delay_s), open_interest=o,
                          open_interest_value=np.round(o * mark[kend], 2))  # fmt: skip
        buy, sell = self.taker[p]
        kind = periodic_kind("taker_ratio", p)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(sell > 0, buy / sell, np.nan)
            imb = np.where(buy + sell > 0, (buy - sell) / (buy + sell), 0.0)
        out[kind] = frame(kind, t0, publication_ns(kind, t0, cfg.stat_delay_s), buy_sell_ratio=ratio,
                          buy_volume=buy.copy(), sell_volume=sell.copy())  # fmt: skip
        mflow = lfilter([0.5], [1.0, -0.5], imb)  # EMA over periods of the volume imbalance
        horizon = round(cfg.informed_horizon_s)
        kfwd = np.minimum(kstart + horizon, px.size - 1)
        fwd = np.log(px[kfwd] / px[kstart])
        lean = np.tanh(fwd / cfg.informed_ret_scale)
        shares = {
            "ls_global": cfg.ls_base_global + cfg.ls_flow_gain * mflow,
            "ls_top_accounts": cfg.ls_base_top
            + cfg.ls_informed_gain / 2 * lean
            + cfg.ls_flow_gain / 3 * mflow,
            "ls_top_positions": cfg.ls_base_top + cfg.ls_informed_gain * lean + cfg.ls_flow_gain / 3 * mflow,
        }
        for stem, base in shares.items():
            kind = periodic_kind(stem, p)
            long = np.round(np.clip(base + _ar1(rng, m, 0.8, cfg.ls_noise), 0.05, 0.95), 4)
            short = np.round(1.0 - long, 4)
            ratio = np.round(long / short, 4)
            pub = publication_ns(kind, t0, cfg.stat_delay_s)
            out[kind] = frame(kind, t0, pub, ratio=ratio, long_share=long, short_share=short)
        return out


def simulate_context(
    trades: pd.DataFrame,
    start_ns: int,
    end_ns: int,
    seed: int = 0,
    cfg: ContextSimConfig | None = None,
) -> dict[str, pd.DataFrame]:
    """The context series of [start_ns, end_ns) consistent with ``trades`` (ts_event, price, size, side;
    sorted), keyed by kind (``funding``, ``mark_price``, ``liquidation``, ``open_interest_<p>``,
    ``taker_ratio_<p>``, ``ls_global_<p>``, ``ls_top_accounts_<p>``, ``ls_top_positions_<p>`` for the
    periods of ``cfg``), each built by :func:`orderflow.data.context_schema.frame`. Same seed, same output."""
    cfg = cfg or ContextSimConfig()
    acc = ContextAccumulator(start_ns, end_ns, cfg.periods)
    acc.add(trades)
    return acc.frames(seed, cfg)
