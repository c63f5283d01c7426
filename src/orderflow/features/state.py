"""The arrays the feature kernels read and write, sized from a ``FeatureConfig``, and the final
validity codes: shared by the streaming engine (``engine``) and the batch path (``batch``)."""

from __future__ import annotations

import numpy as np

from orderflow.features import kernels as FK
from orderflow.features.config import FeatureConfig
from orderflow.features.registry import core_specs

NS = FK.NS


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
        self.state = FK.FeatureState(
            self.I, self.F, self.prev, self.D, self.tsb, self.vb, self.bwns, self.bptr, self.bacc, self.bref,
            self.tst, self.vt, self.twns, self.tptr, self.tacc, self.tref, self.dq, self.zv, self.zs,
            self.kv, self.vp, self.pv, self.P, self.Q, self.W, self.IX,
        )  # fmt: skip
        # the plain tuples the step kernels take (kernels_layout: why not the named tuples)
        self.book_args = tuple(self.state)
        self.trade_args = tuple(FK.TradeState.of(self.state))
        self.reset(FK.WARMUP)

    def reset(self, reason: int) -> None:
        FK.reset(self.book_args, reason)


def combine_validity(status: np.ndarray, tech: np.ndarray | None, require_tech: bool) -> np.ndarray:
    """Final reason codes: the kernel's, and 'warmup' where a required technical value is NaN."""
    st = np.asarray(status, dtype=np.int8).copy()
    if tech is not None and require_tech and tech.shape[1]:
        cold = ~np.isfinite(tech).all(axis=1) & (st == FK.OK)
        st[cold] = FK.WARMUP
    return st
