"""Feature configuration, kernel state and the streaming feature engine.

The per-event math is in ``kernels`` (numba); this module sizes its state from a ``FeatureConfig`` and
drives it event by event (``StreamingFeatureEngine``, for live). ``batch.batch_features`` drives the
same kernels over whole arrays. Feature names and docs: ``registry.default_specs``.

Event order: trades, then gaps, then the book event at equal ``ts_event``; vectors are emitted at book
events. Validity of a vector (``valid`` / ``reason``):

- ``bad_book``: this book is crossed, has a NaN / non-positive size or NaN price at level 1, or a
  negative size at any level. The engine resets (the book cannot be trusted) and re-warms.
- ``gap``: the data layer flagged a gap (``on_gap``); every window is reset and the engine re-warms.
- ``warmup``: less than ``warmup_s`` of event time or fewer than ``zscore_window`` book events since
  the start or the last reset (reported as ``gap`` / ``bad_book`` when that reset was the cause), or,
  with ``require_technical_warm``, a technical value still NaN.
Technical bars are built from every trade and are not reset by gaps.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orderflow.features import kernels as FK
from orderflow.features.registry import FeatureSpec, core_specs, default_specs
from orderflow.features.technical import TechnicalConfig

log = logging.getLogger(__name__)
NS = FK.NS

Windows = tuple[float, ...]


class FeatureConfig(BaseModel):
    """Settings of the feature engines. Times are event time in seconds; windows hold ts > t - w."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    levels: int = Field(10, ge=1, le=20, description="book levels L used (the stored book has 20)")
    zscore_window: int = Field(1200, ge=2, description="samples (book events) in the rolling z-scores")
    momentum_windows_s: Windows = Field((1.0, 5.0, 30.0), description="OFI sums and mid returns")
    vol_windows_s: Windows = Field((10.0, 60.0), description="std of per-event OFI and per-trade flow")
    rv_windows_s: Windows = Field((10.0, 60.0, 300.0), description="realized vol of mid log returns")
    cvd_windows_s: Windows = Field((1.0, 5.0, 30.0, 60.0), description="CVD change windows")
    trade_windows_s: Windows = Field((5.0, 30.0), description="buy/sell volume, counts, trade stats")
    level_window_s: float = Field(1.0, gt=0, description="window of the normalised per-level OFI sums")
    ofi_weights: Literal["inverse"] | tuple[float, ...] = Field(
        "inverse", description="'inverse' = 1/m, or one weight per level; normalised to sum 1"
    )
    integrated_weights: tuple[float, ...] | None = Field(
        None,
        description="PCA loadings from fit_integrated_weights (unit L1 norm); None = equal weights 1/L",
    )
    depth_halflife_s: float = Field(60.0, gt=0, description="half-life of the running average depth D_m")
    kyle_buckets: int = Field(60, ge=3, description="closed 1 s buckets in Kyle's lambda and Amihud")
    vpin_bucket_notional: float = Field(250_000.0, gt=0, description="VPIN volume bucket, quote notional")
    vpin_buckets: int = Field(50, ge=1, description="VPIN buckets K")
    regime_vol_windows_s: tuple[float, float] = Field(
        (60.0, 300.0), description="short and long rv windows of the regime (must be in rv_windows_s)"
    )
    vol_state_thresholds: tuple[float, float] = Field((0.8, 1.25), description="vol_ratio cut points")
    vol_pct_buckets: int = Field(300, ge=2, description="1 s bucket closes in the vol percentile")
    trend_halflives_s: tuple[float, float] = Field((30.0, 300.0), description="fast/slow EWMA of log mid")
    trend_threshold: float = Field(0.5, ge=0, description="|trend_strength| above which trend_state != 0")
    futures: bool = Field(True, description="add time-to-funding features")
    funding_hours: tuple[float, ...] = Field((0.0, 8.0, 16.0), description="UTC funding hours")
    technical: TechnicalConfig | None = Field(
        default_factory=TechnicalConfig, description="technical group (None = off)"
    )
    require_technical_warm: bool = Field(
        False, description="True: vectors stay 'warmup' until every technical value is defined"
    )
    tick_size: float | None = Field(None, gt=0, description="price tick (spread in ticks); required")
    warmup_s: float = Field(300.0, gt=0, description="event time after start/reset before vectors are valid")
    book_capacity: int = Field(1 << 16, ge=16, description="book ring size (events in the longest window)")
    trade_capacity: int = Field(1 << 17, ge=16, description="trade ring size (trades in the longest window)")

    @model_validator(mode="after")
    def _check(self) -> FeatureConfig:
        for name in (
            "momentum_windows_s",
            "vol_windows_s",
            "rv_windows_s",
            "cvd_windows_s",
            "trade_windows_s",
        ):
            v = getattr(self, name)
            if not v or any(w <= 0 for w in v) or len(set(v)) != len(v):
                raise ValueError(f"{name} must be distinct positive seconds, got {v}")
        if self.ofi_weights != "inverse" and len(self.ofi_weights) != self.levels:
            raise ValueError(f"ofi_weights has {len(self.ofi_weights)} weights for {self.levels} levels")
        if self.integrated_weights is not None and len(self.integrated_weights) != self.levels:
            raise ValueError(
                f"integrated_weights has {len(self.integrated_weights)} weights for {self.levels} levels"
            )
        for w in self.regime_vol_windows_s:
            if w not in self.rv_windows_s:
                raise ValueError(f"regime_vol_windows_s {w} is not in rv_windows_s {self.rv_windows_s}")
        if not self.funding_hours or any(not 0 <= h < 24 for h in self.funding_hours):
            raise ValueError(f"funding_hours must be in [0, 24), got {self.funding_hours}")
        longest = max(
            *self.momentum_windows_s, *self.vol_windows_s, *self.rv_windows_s, *self.cvd_windows_s,
            *self.trade_windows_s, self.level_window_s, self.trend_halflives_s[1], self.kyle_buckets,
            self.vol_pct_buckets,
        )  # fmt: skip
        if self.warmup_s < longest:
            raise ValueError(f"warmup_s {self.warmup_s} is shorter than the longest window ({longest} s)")
        return self

    @property
    def divergence_window_s(self) -> float:
        """Window of the flow-price divergence features: the longest momentum window."""
        return max(self.momentum_windows_s)

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(weighted, integrated) level weights. Weighted: 1/m or the configured ones, summing to 1;
        integrated: the fitted loadings, or equal weights 1/L (unit L1 norm, like fitted loadings)."""
        L = self.levels
        w = 1.0 / np.arange(1, L + 1) if self.ofi_weights == "inverse" else np.array(self.ofi_weights, float)
        if w.sum() == 0:
            raise ValueError("ofi_weights sum to 0")
        u = np.full(L, 1.0 / L) if self.integrated_weights is None else np.array(self.integrated_weights)
        return w / w.sum(), u


def _ns(w: float) -> int:
    return round(w * NS)


class KernelState:
    """All arrays the kernels read and write, sized from a config (one per engine)."""

    def __init__(self, cfg: FeatureConfig) -> None:
        if cfg.tick_size is None:
            raise ValueError(
                "FeatureConfig.tick_size is required (spread in ticks); take it from the instrument"
            )
        L = cfg.levels
        self.cfg = cfg
        bwin = sorted({*cfg.momentum_windows_s, *cfg.vol_windows_s, *cfg.rv_windows_s, cfg.level_window_s})
        twin = sorted({*cfg.cvd_windows_s, *cfg.trade_windows_s, *cfg.vol_windows_s, cfg.divergence_window_s})
        self.bwns = np.array([_ns(w) for w in bwin], dtype=np.int64)
        self.twns = np.array([_ns(w) for w in twin], dtype=np.int64)
        rows = [
            [bwin.index(w) for w in cfg.momentum_windows_s],
            [bwin.index(w) for w in cfg.vol_windows_s],
            [bwin.index(w) for w in cfg.rv_windows_s],
            [twin.index(w) for w in cfg.cvd_windows_s],
            [twin.index(w) for w in cfg.trade_windows_s],
            [twin.index(w) for w in cfg.vol_windows_s],
            sorted(_ns(h * 3600) for h in cfg.funding_hours),
        ]
        self.IX = np.zeros((len(rows), 1 + max(len(r) for r in rows)), dtype=np.int64)
        for i, r in enumerate(rows):
            self.IX[i, 0] = len(r)
            self.IX[i, 1 : 1 + len(r)] = r
        Q = np.zeros(FK.N_Q, dtype=np.int64)
        Q[FK.Q_L] = L
        Q[FK.Q_ZN] = cfg.zscore_window
        Q[FK.Q_KN] = cfg.kyle_buckets
        Q[FK.Q_VK] = cfg.vpin_buckets
        Q[FK.Q_PM] = cfg.vol_pct_buckets
        Q[FK.Q_LVL_B] = bwin.index(cfg.level_window_s)
        Q[FK.Q_DIV_B] = bwin.index(cfg.divergence_window_s)
        Q[FK.Q_W0_B] = bwin.index(cfg.momentum_windows_s[0])
        Q[FK.Q_C0_T] = twin.index(cfg.cvd_windows_s[0])
        Q[FK.Q_DIV_T] = twin.index(cfg.divergence_window_s)
        Q[FK.Q_RVS_B] = bwin.index(cfg.regime_vol_windows_s[0])
        Q[FK.Q_RVL_B] = bwin.index(cfg.regime_vol_windows_s[1])
        Q[FK.Q_TMAX_T] = twin.index(max(cfg.trade_windows_s))
        Q[FK.Q_FUTURES] = int(cfg.futures)
        self.Q = Q
        P = np.zeros(FK.N_P)
        P[FK.P_TICK] = cfg.tick_size
        P[FK.P_DEPTH_HL_NS] = cfg.depth_halflife_s * NS
        P[FK.P_EMA_F_HL_NS] = cfg.trend_halflives_s[0] * NS
        P[FK.P_EMA_S_HL_NS] = cfg.trend_halflives_s[1] * NS
        P[FK.P_VPIN_V] = cfg.vpin_bucket_notional
        P[FK.P_VS_LO], P[FK.P_VS_HI] = cfg.vol_state_thresholds
        P[FK.P_TREND_THR] = cfg.trend_threshold
        P[FK.P_WARMUP_NS] = cfg.warmup_s * NS
        self.P = P
        self.W = np.vstack(cfg.weights())
        nb, nt = len(bwin), len(twin)
        self.I = np.zeros(FK.N_I, dtype=np.int64)
        self.F = np.zeros(FK.N_F)
        self.prev = np.full((4, L), np.nan)
        self.D = np.zeros(L)
        self.tsb = np.zeros(cfg.book_capacity, dtype=np.int64)
        self.vb = np.zeros((cfg.book_capacity, FK.book_cols(L)))
        self.bptr = np.zeros(nb, dtype=np.int64)
        self.bacc = np.zeros((nb, 2, FK.book_cols(L)))
        self.bref = np.full(nb, np.nan)
        self.tst = np.zeros(cfg.trade_capacity, dtype=np.int64)
        self.vt = np.zeros((cfg.trade_capacity, FK.N_CT))
        self.tptr = np.zeros(nt, dtype=np.int64)
        self.tacc = np.zeros((nt, 2, FK.N_CT))
        self.tref = np.full(nt, np.nan)
        self.dq = np.zeros(cfg.trade_capacity, dtype=np.int64)
        self.zv = np.zeros((cfg.zscore_window, FK.N_Z))
        self.zs = np.zeros((3, FK.N_Z))
        self.kv = np.zeros((cfg.kyle_buckets, 4))
        self.vp = np.zeros(cfg.vpin_buckets)
        self.pv = np.full(cfg.vol_pct_buckets, np.nan)
        self.n_core = len(core_specs(cfg))
        self.trade_args = (self.I, self.F, self.tst, self.vt, self.twns, self.tptr, self.tacc, self.tref,
                           self.dq, self.kv, self.vp, self.pv, self.P, self.Q)  # fmt: skip
        self.state = FK.FeatureState(
            self.I, self.F, self.prev, self.D, self.tsb, self.vb, self.bwns, self.bptr, self.bacc, self.bref,
            self.tst, self.vt, self.twns, self.tptr, self.tacc, self.tref, self.dq, self.zv, self.zs,
            self.kv, self.vp, self.pv, self.P, self.Q, self.W, self.IX,
        )  # fmt: skip
        self.book_args = tuple(self.state)  # step_book's state parameters (kernels_layout: why flat)
        self.reset_args = (self.I, self.F, self.prev, self.D, self.bptr, self.bacc, self.bref, self.tptr,
                           self.tacc, self.zs, self.kv, self.vp, self.pv)  # fmt: skip
        self.reset(FK.WARMUP)

    def reset(self, reason: int) -> None:
        FK.reset(*self.reset_args, reason)


def combine_validity(status: np.ndarray, tech: np.ndarray | None, require_tech: bool) -> np.ndarray:
    """Final reason codes: the kernel's, and 'warmup' where a required technical value is NaN."""
    st = np.asarray(status, dtype=np.int8).copy()
    if tech is not None and require_tech and tech.shape[1]:
        cold = ~np.isfinite(tech).all(axis=1) & (st == FK.OK)
        st[cold] = FK.WARMUP
    return st


class StreamingFeatureEngine:
    """Per-event features for live trading: O(1) (amortised) work per event in the numba kernels.

    ``on_book`` returns the engine's vector buffer (``values``), overwritten by the next book event:
    copy it to keep it. ``valid`` / ``reason`` describe the last vector."""

    def __init__(self, cfg: FeatureConfig) -> None:
        self.cfg = cfg
        self.specs: list[FeatureSpec] = default_specs(cfg)
        self._k = KernelState(cfg)
        self.n_core = self._k.n_core
        self.values = np.full(len(self.specs), np.nan)
        self._core = self.values[: self.n_core]
        self._tech = None
        if cfg.technical is not None:
            from orderflow.features.technical import TechnicalStream

            self._tech = TechnicalStream(cfg.technical)
        self.valid = False
        self.reason = "warmup"
        self.status = FK.WARMUP
        self._L = cfg.levels
        self._overflow_logged = 0

    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def on_trade(self, ts_ns: int, price: float, size: float, side: int) -> None:
        """A trade: aggressor ``side`` +1 buyer, -1 seller, 0 unknown (tick rule)."""
        FK.step_trade(*self._k.trade_args, ts_ns, price, size, side)
        if self._tech is not None:
            self._tech.on_trade(ts_ns, price, size, side)

    def on_gap(self, ts_ns: int, reason: str = "gap") -> None:
        """The data layer lost events (``reason`` is logged): reset every window; invalid until warm."""
        log.info("feature engine reset at %d: %s", ts_ns, reason)
        self._k.reset(FK.GAP)
        self.valid = False
        self.reason = "gap"
        self.status = FK.GAP

    def on_book(
        self, ts_ns: int, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray
    ) -> np.ndarray:
        """A book event: the top levels after it (arrays of at least ``levels`` values, NaN = absent)."""
        L = self._L
        st = FK.step_book(
            *self._k.book_args, ts_ns, bid_px[:L], bid_sz[:L], ask_px[:L], ask_sz[:L], self._core
        )
        if self._tech is not None:
            self._tech.advance(ts_ns)
            tv = self._tech.values
            self.values[self.n_core :] = tv
            if st == FK.OK and self.cfg.require_technical_warm and not np.isfinite(tv).all():
                st = FK.WARMUP
        self.status = st
        self.valid = st == FK.OK
        self.reason = FK.REASONS[st]
        if self._k.I[FK.I_OVERFLOW] != self._overflow_logged:
            self._overflow_logged = int(self._k.I[FK.I_OVERFLOW])
            log.warning(
                "feature ring full: %d events dropped from windows (raise *_capacity)", self._overflow_logged
            )
        return self.values

    @property
    def bad_trades(self) -> int:
        """Trades ignored because of a NaN/negative size or a non-positive price."""
        return int(self._k.I[FK.I_BAD_TRADES])


def __getattr__(name: str):  # batch functions are re-exported lazily (batch imports this module)
    if name in ("batch_features", "build_features", "fit_integrated_weights"):
        from orderflow.features import batch

        return getattr(batch, name)
    raise AttributeError(name)
