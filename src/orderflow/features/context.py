"""The market context feature group (``context``, issue 19): funding, premium, open interest against
price, Binance's taker statistic against the engine's own trades, top traders against the crowd,
liquidation notionals and the fear & greed index. Definitions: ``spec.context_specs``.

**Point in time.** A context row (:mod:`orderflow.data.context_schema`) is read only once it was
available, ``ts_recv <= t`` for a sample at t. The stream receives rows as events in ``ts_recv``
order (``on_context``), applied before the book event at equal time; the batch takes, for each
sample, the state after the last row of each kind with ``ts_recv <= t`` (an as-of join on
``ts_recv``, ties ordered by ``ts_event``). Derived windows (the funding z-score, the OI change, the
premium EWMA) are updated row by row, in that order, by the same per-kind code in both paths
(``_Funding``, ``_Mark``, ``_OpenInterest``, ``_Ratio``, ``_FearGreed``), so they are computed over
what was available. Three parts are computed differently by the two paths and compared by the
parity tests: the top-trader divergences (combined at each row in the stream, after the join in
the batch), the engine's own taker buy share (running sums per period in the stream, ``bincount``
in the batch) and the liquidation buckets (two open buckets in the stream, ``bincount`` in the batch).

**Availability.** A feature is NaN until its kind has delivered a row (the liquidation notionals:
NaN when the source has no ``liquidation`` series, 0 for buckets without one). Context features
never invalidate a vector (``valid`` is the core's and the technical group's).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Protocol

import numpy as np
import pandas as pd

from orderflow.data.context_schema import columns
from orderflow.features.config import ContextFeatureConfig
from orderflow.features.spec import context_specs

NS = 1_000_000_000
FNG_BANDS = (25.0, 47.0, 55.0, 76.0)  # alternative.me's class bands: value < 25 Extreme Fear, ...

# column offsets inside the group, in context_specs order
FUND, FUND_Z, FUND_EST, PREM, PREM_TW, OI_CHG, OI_PX, OI_CONF = range(8)
TK_SHARE, TK_DIFF, TK_BAD, LS_GLOBAL, LS_POS_DIV, LS_ACC_DIV, LIQ_BUY, LIQ_SELL = range(8, 16)
FNG, FNG_CLASS, FNG_REGIME = range(16, 19)
N_CONTEXT = 19


def needed_kinds(cfg: ContextFeatureConfig) -> tuple[str, ...]:
    """The context kinds the group reads: of the symbol, then ``fear_greed`` (alternative.me/FNG)."""
    p = cfg.period
    return (
        "funding", "mark_price", f"open_interest_{p}", f"taker_ratio_{p}", f"ls_global_{p}",
        f"ls_top_accounts_{p}", f"ls_top_positions_{p}", "liquidation", "fear_greed",
    )  # fmt: skip


def _trade_ok(px: float, sz: float) -> bool:
    return math.isfinite(px) and px > 0.0 and math.isfinite(sz) and sz >= 0.0


# -- per-kind updaters: the same code for the stream and the batch -------------------------------------
class _Updater(Protocol):
    """A kind's state: ``update(row)`` per row in delivery order; ``out`` the values after it, for the
    group columns ``cols`` (empty for the ls kinds, combined across kinds by ``_ls_values``)."""

    cols: tuple[int, ...]
    out: np.ndarray

    def update(self, row: Mapping) -> None: ...


class _Funding:
    cols: tuple[int, ...] = (FUND, FUND_Z)

    def __init__(self, cfg: ContextFeatureConfig) -> None:
        self.rates: deque[float] = deque(maxlen=cfg.funding_z_window)
        self.out = np.full(2, np.nan)

    def update(self, row: Mapping) -> None:
        r = float(row["rate"])
        if not math.isfinite(r):
            return
        self.rates.append(r)
        self.out[0] = r
        z = math.nan
        if len(self.rates) == self.rates.maxlen:
            a = np.array(self.rates)
            sd = float(a.std())
            if sd > 0.0:
                z = (r - float(a.mean())) / sd
        self.out[1] = z


class _Mark:
    cols: tuple[int, ...] = (FUND_EST, PREM, PREM_TW)

    def __init__(self, cfg: ContextFeatureConfig) -> None:
        self.hl = cfg.premium_halflife_s
        self.last_ts = -1
        self.out = np.full(3, np.nan)

    def update(self, row: Mapping) -> None:
        self.out[0] = float(row["funding_rate"])
        mark, index = float(row["mark_price"]), float(row["index_price"])
        if not (math.isfinite(mark) and math.isfinite(index) and index > 0.0):
            return
        p = 1e4 * (mark - index) / index
        ts = int(row["ts_event"])
        if self.last_ts < 0 or not math.isfinite(self.out[2]):
            ema = p
        else:
            dt = max(ts - self.last_ts, 0) / NS
            ema = self.out[2] + (1.0 - 2.0 ** (-dt / self.hl)) * (p - self.out[2])
        self.last_ts = ts
        self.out[1] = p
        self.out[2] = ema


class _OpenInterest:
    cols: tuple[int, ...] = (OI_CHG, OI_PX, OI_CONF)

    def __init__(self, cfg: ContextFeatureConfig) -> None:
        self.k = cfg.oi_window
        self.span = cfg.oi_window * cfg.period_s * NS
        self.rows: deque[tuple[int, float, float]] = deque(maxlen=cfg.oi_window + 1)
        self.out = np.full(3, np.nan)

    def update(self, row: Mapping) -> None:
        oi, val = float(row["open_interest"]), float(row["open_interest_value"])
        self.rows.append((int(row["ts_event"]), oi, val))
        self.out[:] = np.nan
        if len(self.rows) <= self.k:
            return
        t0, oi0, val0 = self.rows[0]
        t1 = self.rows[-1][0]
        if t1 - t0 != self.span or not (oi0 > 0.0 and oi > 0.0 and val0 > 0.0 and val > 0.0):
            return
        chg = 1e4 * math.log(oi / oi0)
        px = 1e4 * math.log((val / oi) / (val0 / oi0))
        self.out[0] = chg
        self.out[1] = px
        self.out[2] = chg * (1.0 if px > 0 else -1.0 if px < 0 else 0.0)


class _Ratio:
    """The log long/short ratio of one ls_* kind."""

    cols: tuple[int, ...] = ()

    def __init__(self, cfg: ContextFeatureConfig) -> None:
        self.out = np.full(1, np.nan)

    def update(self, row: Mapping) -> None:
        r = float(row["ratio"])
        self.out[0] = math.log(r) if r > 0.0 else math.nan


class _FearGreed:
    cols: tuple[int, ...] = (FNG, FNG_CLASS, FNG_REGIME)

    def __init__(self, cfg: ContextFeatureConfig) -> None:
        self.out = np.full(3, np.nan)

    def update(self, row: Mapping) -> None:
        v = float(row["value"])
        c = int(row["classification"])
        if c < 0 and math.isfinite(v):
            c = sum(v >= b for b in FNG_BANDS)
        self.out[0] = v
        self.out[1] = c if c >= 0 else math.nan
        self.out[2] = math.nan if c < 0 else (-1.0 if c <= 1 else 0.0 if c == 2 else 1.0)


def _taker(buy: float, sell: float, own_buy: float, own_sell: float, covered: bool, thr: float):
    """(Binance's buy share, its difference from the own share, the disagreement flag)."""
    tot = buy + sell
    share = buy / tot if tot > 0.0 else math.nan
    own = own_buy + own_sell
    diff = share - own_buy / own if covered and own > 0.0 else math.nan
    bad = math.nan if math.isnan(diff) else float(abs(diff) > thr)
    return share, diff, bad


def _notional(row: Mapping) -> float:
    ap, fq = float(row["avg_price"]), float(row["filled_qty"])
    if ap > 0.0 and fq > 0.0:
        return ap * fq
    return float(row["price"]) * float(row["qty"])


def _updaters(cfg: ContextFeatureConfig) -> dict[str, _Updater]:
    p = cfg.period
    return {
        "funding": _Funding(cfg),
        "mark_price": _Mark(cfg),
        f"open_interest_{p}": _OpenInterest(cfg),
        f"ls_global_{p}": _Ratio(cfg),
        f"ls_top_accounts_{p}": _Ratio(cfg),
        f"ls_top_positions_{p}": _Ratio(cfg),
        "fear_greed": _FearGreed(cfg),
    }


def _ls_values(out: np.ndarray, lg: np.ndarray, la: np.ndarray, lp: np.ndarray) -> None:
    """Write ctx_ls_global, the positions and the accounts divergences (arrays, in place)."""
    out[..., LS_GLOBAL] = lg
    out[..., LS_POS_DIV] = lp - lg
    out[..., LS_ACC_DIV] = la - lg


# -- streaming -----------------------------------------------------------------------------------------
class ContextStream:
    """The context group event by event. ``on_context(kind, row)`` for every context row in
    ``ts_recv`` order (row: a mapping with ``ts_event``, ``ts_recv`` and the kind's columns),
    ``on_trade`` for every trade, ``advance(ts)`` before reading ``values`` at a sample.
    ``kinds``: the kinds this source delivers at all (default: every kind the group reads); a kind
    left out keeps its features NaN (for liquidations: instead of 0 for a quiet bucket)."""

    def __init__(self, cfg: ContextFeatureConfig, kinds: Iterable[str] | None = None) -> None:
        self.cfg = cfg
        self.kinds = set(needed_kinds(cfg) if kinds is None else kinds)
        self.values = np.full(N_CONTEXT, np.nan)
        self._upd = _updaters(cfg)
        p = cfg.period
        self._taker_kind, self._p_ns = f"taker_ratio_{p}", cfg.period_s * NS
        self._ls = (f"ls_global_{p}", f"ls_top_accounts_{p}", f"ls_top_positions_{p}")
        self._first_trade = -1
        self._own: dict[int, list[float]] = {}
        self._bucket_ns = cfg.liq_bucket_s * NS
        self._liq = [[-1, 0.0, 0.0], [-1, 0.0, 0.0]]  # [bucket, buy, sell]: current, previous
        self.late_rows = 0

    def on_trade(self, ts_ns: int, price: float, size: float, side: int) -> None:
        if side == 0 or not _trade_ok(float(price), float(size)):
            return
        if self._first_trade < 0:
            self._first_trade = int(ts_ns)
        j = int(ts_ns) // self._p_ns
        acc = self._own.get(j)
        if acc is None:
            acc = self._own[j] = [0.0, 0.0]
            for old in [k for k in self._own if k < j - 64]:
                del self._own[old]
        acc[0 if side > 0 else 1] += float(size)

    def on_context(self, kind: str, row: Mapping) -> None:
        """Apply one context row (available now: the caller delivers it once ``ts_recv`` has passed)."""
        try:
            self._apply(kind, row)
        except KeyError as e:
            raise ValueError(f"context row of kind {kind!r} lacks column {e}") from None

    def _apply(self, kind: str, row: Mapping) -> None:
        upd = self._upd.get(kind)
        if upd is not None:
            upd.update(row)
            if kind in self._ls:
                lg, la, lp = (self._upd[k].out[0] for k in self._ls)
                _ls_values(self.values, lg, la, lp)
            else:
                self.values[list(upd.cols)] = upd.out
        elif kind == self._taker_kind:
            ps = int(row["ts_event"])
            own = self._own.get(ps // self._p_ns, (0.0, 0.0))
            covered = 0 <= self._first_trade <= ps
            self.values[[TK_SHARE, TK_DIFF, TK_BAD]] = _taker(
                float(row["buy_volume"]), float(row["sell_volume"]), own[0], own[1], covered,
                self.cfg.taker_bad_threshold,
            )  # fmt: skip
        elif kind == "liquidation":
            b = int(row["ts_recv"]) // self._bucket_ns
            cur = self._liq[0]
            if b != cur[0]:
                if b < cur[0]:
                    self.late_rows += 1
                    return
                self._liq = [[b, 0.0, 0.0], cur]
                cur = self._liq[0]
            cur[1 if int(row["side"]) > 0 else 2] += _notional(row)

    def advance(self, ts_ns: int) -> None:
        """Bring the time-dependent values (the last closed liquidation bucket) to ``ts_ns``."""
        if "liquidation" not in self.kinds:
            return
        target = int(ts_ns) // self._bucket_ns - 1
        buy = sell = 0.0
        for b, bb, ss in self._liq:
            if b == target:
                buy, sell = bb, ss
        self.values[LIQ_BUY] = buy
        self.values[LIQ_SELL] = sell


# -- batch ---------------------------------------------------------------------------------------------
def _by_recv(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in delivery order: ts_recv, then ts_event (stable)."""
    order = np.lexsort((df["ts_event"].to_numpy(np.int64), df["ts_recv"].to_numpy(np.int64)))
    return df.iloc[order].reset_index(drop=True)


def ordered_rows(context: Mapping[str, pd.DataFrame], cfg: ContextFeatureConfig):
    """(kind, frame in delivery order) of the kinds the group reads, for both paths."""
    for kind in needed_kinds(cfg):
        df = context.get(kind)
        if df is None:
            continue
        missing = {"ts_event", "ts_recv", *columns(kind)} - set(df.columns)
        if missing:
            raise ValueError(f"context frame {kind!r} lacks columns {sorted(missing)}")
        yield kind, _by_recv(df)


def _join(recv: np.ndarray, series: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """series[i] of the last row with recv <= t for each sample t (NaN before the first)."""
    i = np.searchsorted(recv, samples, side="right") - 1
    out = np.full((samples.size, series.shape[1]), np.nan)
    ok = i >= 0
    out[ok] = series[i[ok]]
    return out


def context_batch(
    context: Mapping[str, pd.DataFrame],
    trade_ts: np.ndarray,
    trade_px: np.ndarray,
    trade_sz: np.ndarray,
    trade_side: np.ndarray,
    sample_ts: np.ndarray,
    cfg: ContextFeatureConfig,
) -> np.ndarray:
    """(len(sample_ts), N_CONTEXT): row i equals ``ContextStream`` after every context row with
    ``ts_recv <= sample_ts[i]``, every trade with ``ts_event <= sample_ts[i]`` and ``advance``."""
    samples = np.asarray(sample_ts, np.int64)
    out = np.full((samples.size, N_CONTEXT), np.nan)
    upd = _updaters(cfg)
    p = cfg.period
    ls = {}
    for kind, df in ordered_rows(context, cfg):
        recv = df["ts_recv"].to_numpy(np.int64)
        if kind in upd:
            u = upd[kind]
            series = np.empty((len(df), u.out.size))
            for i, row in enumerate(df.to_dict("records")):
                u.update(row)
                series[i] = u.out
            vals = _join(recv, series, samples)
            if kind.startswith("ls_"):
                ls[kind] = vals[:, 0]
            else:
                out[:, list(u.cols)] = vals
        elif kind == f"taker_ratio_{p}":
            out[:, [TK_SHARE, TK_DIFF, TK_BAD]] = _join(
                recv, _taker_series(df, trade_ts, trade_px, trade_sz, trade_side, cfg), samples
            )
        elif kind == "liquidation":
            out[:, [LIQ_BUY, LIQ_SELL]] = _liquidation_series(df, samples, cfg)
    if ls:
        nan = np.full(samples.size, np.nan)
        lg, la, lp = (ls.get(f"{s}_{p}", nan) for s in ("ls_global", "ls_top_accounts", "ls_top_positions"))
        _ls_values(out, lg, la, lp)
    return out


def _taker_series(df, tts, tpx, tsz, tside, cfg: ContextFeatureConfig) -> np.ndarray:
    tts = np.asarray(tts, np.int64)
    tpx, tsz, tside = (np.asarray(a) for a in (tpx, tsz, tside))
    ok = np.isfinite(tpx) & (tpx > 0) & np.isfinite(tsz) & (tsz >= 0) & (tside != 0)
    tts, tsz, tside = tts[ok], tsz[ok].astype(np.float64), tside[ok]
    p_ns = cfg.period_s * NS
    ps = df["ts_event"].to_numpy(np.int64)
    series = np.full((len(df), 3), np.nan)
    first = int(tts[0]) if tts.size else -1
    if tts.size:
        j = tts // p_ns
        j0 = int(j[0])
        n = int(j[-1]) - j0 + 1
        own_b = np.bincount(j - j0, np.where(tside > 0, tsz, 0.0), n)
        own_s = np.bincount(j - j0, np.where(tside < 0, tsz, 0.0), n)
    buy, sell = df["buy_volume"].to_numpy(np.float64), df["sell_volume"].to_numpy(np.float64)
    for i in range(len(df)):
        ob = osl = 0.0
        if tts.size:
            k = int(ps[i]) // p_ns - j0
            if 0 <= k < n:
                ob, osl = float(own_b[k]), float(own_s[k])
        series[i] = _taker(float(buy[i]), float(sell[i]), ob, osl, 0 <= first <= int(ps[i]),
                           cfg.taker_bad_threshold)  # fmt: skip
    return series


def _liquidation_series(df: pd.DataFrame, samples: np.ndarray, cfg: ContextFeatureConfig) -> np.ndarray:
    out = np.zeros((samples.size, 2))
    if df.empty:
        return out
    b_ns = cfg.liq_bucket_s * NS
    rows = df.to_dict("records")
    notional = np.array([_notional(r) for r in rows])
    side = df["side"].to_numpy(np.int64)
    b = df["ts_recv"].to_numpy(np.int64) // b_ns
    b0 = int(b[0])
    n = int(b[-1]) - b0 + 1
    sums = np.stack([
        np.bincount(b - b0, np.where(side > 0, notional, 0.0), n),
        np.bincount(b - b0, np.where(side > 0, 0.0, notional), n),
    ], axis=1)  # fmt: skip
    k = samples // b_ns - 1 - b0
    ok = (k >= 0) & (k < n)
    out[ok] = sums[k[ok]]
    return out


def context_names(cfg: ContextFeatureConfig) -> list[str]:
    return [s.name for s in context_specs(cfg)]
