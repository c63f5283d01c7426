"""Covariance of recent returns across symbols, ex ante: the input of a portfolio VaR and of a
correlation-aware risk budget (issue 17).

An exponentially weighted (RiskMetrics) covariance of per-bar log returns with zero mean,
``C_t = lam C_(t-1) + (1 - lam) r_t r_t'`` with ``lam = 0.5 ** (1 / halflife_bars)``. The estimate
used at bar t is the one *before* its return is known (``ewma_covariances`` returns, for every bar,
the covariance from the bars strictly before it), so a decision never reads the bar it acts in.
A NaN return (a symbol without a bar) leaves that symbol's rows and columns as they were.

Units: returns are log returns per bar; variances are per bar; a VaR over ``h`` bars scales with
``sqrt(h)``; exposures are signed notionals in quote currency.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

Z95 = 1.6448536269514722  # the standard normal's 95% quantile


def decay(halflife_bars: float) -> float:
    """The EWMA factor of a half-life in bars (ValueError naming a non-positive one)."""
    if not halflife_bars > 0:
        raise ValueError(f"covariance half-life must be > 0 bars, got {halflife_bars}")
    return 0.5 ** (1.0 / halflife_bars)


@njit(cache=True)
def ewma_update(C: np.ndarray, r: np.ndarray, lam: float) -> None:
    """One bar: ``C = lam C + (1 - lam) r r'`` in place, over the symbols whose return is finite."""
    n = r.shape[0]
    for i in range(n):
        if not math.isfinite(r[i]):
            continue
        for j in range(n):
            if math.isfinite(r[j]):
                C[i, j] = lam * C[i, j] + (1.0 - lam) * r[i] * r[j]


@njit(cache=True)
def _ex_ante(R: np.ndarray, lam: float, C0: np.ndarray, out: np.ndarray) -> None:
    C = C0.copy()
    for t in range(R.shape[0]):
        out[t] = C
        ewma_update(C, R[t], lam)


def ewma_covariances(
    returns: np.ndarray, halflife_bars: float, initial: np.ndarray | None = None
) -> np.ndarray:
    """(T, N, N): for every bar t, the covariance estimated from bars < t (``initial`` before the first,
    default zeros). ``returns``: (T, N) log returns per bar."""
    R = np.ascontiguousarray(returns, np.float64)
    if R.ndim != 2:
        raise ValueError(f"returns must be (bars, symbols), got shape {R.shape}")
    n = R.shape[1]
    C0 = np.zeros((n, n)) if initial is None else np.ascontiguousarray(initial, np.float64)
    if C0.shape != (n, n):
        raise ValueError(f"initial covariance must be {n} x {n}, got {C0.shape}")
    out = np.empty((R.shape[0], n, n))
    _ex_ante(R, decay(halflife_bars), C0, out)
    return out


def correlation(C: np.ndarray) -> np.ndarray:
    """The correlation matrix of a covariance (NaN where a variance is 0)."""
    d = np.sqrt(np.diag(C))
    with np.errstate(invalid="ignore", divide="ignore"):
        return C / np.outer(d, d)


@njit(cache=True)
def portfolio_var95(exposure: np.ndarray, C: np.ndarray, horizon_bars: float) -> float:
    """Parametric 95% VaR (quote currency, positive = loss) of signed notional ``exposure`` under
    covariance ``C`` over ``horizon_bars`` bars: ``Z95 * sqrt(w' C w * h)``."""
    v = 0.0
    n = exposure.shape[0]
    for i in range(n):
        for j in range(n):
            v += exposure[i] * C[i, j] * exposure[j]
    return Z95 * math.sqrt(max(v, 0.0) * horizon_bars)
