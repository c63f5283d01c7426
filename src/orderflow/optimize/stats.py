"""Overfitting statistics of a parameter search: how much of the best trial's result is luck.

Inputs are per-period simple returns (one bar of ``period_minutes`` on the out-of-sample test windows);
Sharpe ratios here are per period, not annualised, as both papers write them.

- **Probability of backtest overfitting** (Bailey, Borwein, López de Prado & Zhu 2015, "The probability
  of backtest overfitting"), by combinatorially symmetric cross-validation (CSCV): the T x N matrix of
  the N trials' returns is cut into S row blocks; for each of the C(S, S/2) ways to pick half the
  blocks as the in-sample set (the rest out of sample) the trial n* with the best in-sample Sharpe is
  ranked among all trials out of sample, ``omega = rank / (N + 1)`` (rank 1 = worst) and
  ``lambda = log(omega / (1 - omega))``. PBO is the share of combinations with ``lambda <= 0``: the
  in-sample winner is at or below the out-of-sample median.
- **Deflated Sharpe ratio** (Bailey & López de Prado 2014, "The deflated Sharpe ratio"): the
  probability that the true Sharpe exceeds ``SR0``, the expected maximum Sharpe of N unskilled trials,
  given T observations and the returns' skewness and kurtosis:

  ``SR0 = sqrt(V[SR_n]) * ((1 - gamma) * Z^-1(1 - 1/N) + gamma * Z^-1(1 - 1/(N e)))``
  (gamma the Euler-Mascheroni constant, V[SR_n] the variance of the trials' Sharpe ratios), and
  ``DSR = Z((SR - SR0) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2))``
  (g3 skewness, g4 kurtosis, 3 for normal returns).
- **Effective number of trials**: trials of a search are correlated (neighbouring parameters trade
  alike), so N in SR0 is the number of clusters of the trials' return series: complete-linkage
  hierarchical clustering on the distance ``sqrt((1 - rho) / 2)``, cut where every pair inside a
  cluster has a correlation of at least ``CLUSTER_CORR`` (0.5). Independent trials are N clusters,
  copies of one trial one cluster (López de Prado's advice in "A data science solution to the
  multiple-testing crisis in financial research", 2019, with a fixed cut instead of his ONC search).
  The participation ratio of the correlation matrix's eigenvalues, ``(sum l)^2 / sum l^2``, is
  reported next to it as a second reading.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

EULER_GAMMA = 0.5772156649015329


def sharpe(r: np.ndarray) -> float:
    """Per-period Sharpe ratio ``mean / std(ddof=1)`` (0 when the returns do not vary)."""
    r = np.asarray(r, dtype=np.float64)
    if r.size < 2:
        return 0.0
    sd = float(r.std(ddof=1))
    return float(r.mean()) / sd if sd > 0 else 0.0


def moments(r: np.ndarray) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis of ``r``; (0, 3), the normal's, when ``r`` does not vary."""
    r = np.asarray(r, dtype=np.float64)
    sd = float(r.std())
    if r.size < 2 or sd == 0:
        return 0.0, 3.0
    z = (r - r.mean()) / sd
    return float((z**3).mean()), float((z**4).mean())


def expected_max_sharpe(n_trials: float, var_sharpe: float) -> float:
    """``SR0``: the expected maximum Sharpe ratio of ``n_trials`` unskilled trials whose Sharpe ratios
    have variance ``var_sharpe`` (module docstring); 0 for one trial."""
    if n_trials <= 1 or var_sharpe <= 0:
        return 0.0
    n = float(n_trials)
    z1 = norm.ppf(1.0 - 1.0 / n)
    z2 = norm.ppf(1.0 - 1.0 / (n * math.e))
    return math.sqrt(var_sharpe) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe(sr: float, n_obs: int, skew: float, kurt: float, sr0: float) -> float:
    """Probability that the true Sharpe ratio exceeds ``sr0`` given the observed per-period ``sr`` over
    ``n_obs`` returns of skewness ``skew`` and kurtosis ``kurt`` (the probabilistic Sharpe ratio at the
    benchmark ``sr0``; with ``sr0`` from :func:`expected_max_sharpe` it is the DSR)."""
    if n_obs < 2:
        return float("nan")
    den = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if den <= 0:
        return float("nan")
    return float(norm.cdf((sr - sr0) * math.sqrt(n_obs - 1) / math.sqrt(den)))


def effective_trials(returns: np.ndarray) -> float:
    """Participation ratio of the eigenvalues of the columns' correlation matrix (module docstring).
    Columns that never vary count as one trial between them."""
    m = np.asarray(returns, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] == 0:
        return 0.0
    live = m[:, m.std(axis=0) > 0]
    flat = m.shape[1] - live.shape[1]
    if live.shape[1] <= 1:
        return float(live.shape[1] + (flat > 0))
    c = np.corrcoef(live, rowvar=False)
    lam = np.clip(np.linalg.eigvalsh(c), 0.0, None)
    return float(lam.sum() ** 2 / (lam**2).sum()) + (1.0 if flat else 0.0)


CLUSTER_CORR = 0.5


def trial_clusters(returns: np.ndarray, min_corr: float = CLUSTER_CORR) -> np.ndarray:
    """Cluster label of each column (module docstring): complete linkage on ``sqrt((1 - rho) / 2)``,
    cut at the distance of ``min_corr``. Columns that never vary form one cluster between them."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    m = np.asarray(returns, dtype=np.float64)
    n = m.shape[1] if m.ndim == 2 else 0
    labels = np.zeros(n, dtype=np.int64)
    if n == 0:
        return labels
    live = np.flatnonzero(m.std(axis=0) > 0)
    if live.size >= 2:
        rho = np.clip(np.corrcoef(m[:, live], rowvar=False), -1.0, 1.0)
        dist = np.sqrt(np.clip((1.0 - rho) / 2.0, 0.0, None))
        np.fill_diagonal(dist, 0.0)
        z = linkage(squareform(dist, checks=False), method="complete")
        labels[live] = fcluster(z, t=math.sqrt((1.0 - min_corr) / 2.0), criterion="distance")
    elif live.size == 1:
        labels[live] = 1
    labels[labels == 0] = labels.max() + 1  # the flat columns, together
    return labels


@dataclass(frozen=True)
class DSRResult:
    sharpe: float  # per period
    sr0: float
    dsr: float
    n_trials: int
    n_effective: float  # clusters of the trials' returns: the N behind SR0
    n_obs: int
    skew: float
    kurt: float
    var_sharpe: float
    participation: float = float("nan")  # the eigenvalue reading of N, reported only


def dsr_of_best(returns: np.ndarray, best: int) -> DSRResult:
    """The DSR of column ``best`` of the T x N returns matrix, deflated by the effective number of
    trials (clusters of their returns) and the variance of their Sharpe ratios."""
    m = np.asarray(returns, dtype=np.float64)
    srs = np.array([sharpe(m[:, j]) for j in range(m.shape[1])])
    n_eff = float(np.unique(trial_clusters(m)).size)
    var = float(srs.var(ddof=1)) if srs.size > 1 else 0.0
    sr0 = expected_max_sharpe(n_eff, var)
    sk, ku = moments(m[:, best])
    sr = float(srs[best])
    dsr = deflated_sharpe(sr, m.shape[0], sk, ku, sr0)
    return DSRResult(sr, sr0, dsr, m.shape[1], n_eff, m.shape[0], sk, ku, var, effective_trials(m))


@dataclass(frozen=True)
class PBOResult:
    pbo: float
    logits: np.ndarray  # lambda of each combination
    is_best: np.ndarray  # in-sample Sharpe of the in-sample winner, per combination
    oos_of_best: np.ndarray  # its out-of-sample Sharpe
    n_combinations: int
    blocks: int


def pbo_cscv(returns: np.ndarray, blocks: int = 16) -> PBOResult:
    """PBO of the T x N returns matrix by CSCV with ``blocks`` (even) row blocks (module docstring).
    The performance measure is the per-period Sharpe ratio; a tie ranks the winner at the lowest of the
    tied positions (``rank = #{out-of-sample Sharpe < winner's} + 1``), the cautious reading."""
    m = np.asarray(returns, dtype=np.float64)
    t, n = m.shape
    if blocks < 2 or blocks % 2:
        raise ValueError(f"pbo_cscv: blocks must be even and >= 2, got {blocks}")
    if n < 2:
        raise ValueError(f"pbo_cscv: needs at least 2 trials, got {n}")
    if t < blocks:
        raise ValueError(f"pbo_cscv: {t} periods cannot be cut into {blocks} blocks")
    edges = np.linspace(0, t, blocks + 1).astype(int)
    # per block: row count, sum and sum of squares of every trial
    cnt = np.diff(edges).astype(np.float64)
    s1 = np.add.reduceat(m, edges[:-1], axis=0)
    s2 = np.add.reduceat(m * m, edges[:-1], axis=0)
    combos = np.array(list(itertools.combinations(range(blocks), blocks // 2)), dtype=np.int64)
    sel = np.zeros((len(combos), blocks), dtype=np.float64)
    sel[np.arange(len(combos))[:, None], combos] = 1.0

    def sharpes(w: np.ndarray) -> np.ndarray:
        k = w @ cnt
        mean = (w @ s1) / k[:, None]
        var = ((w @ s2) - k[:, None] * mean**2) / (k[:, None] - 1)
        sd = np.sqrt(np.clip(var, 0.0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sd > 0, mean / sd, 0.0)

    sr_is, sr_oos = sharpes(sel), sharpes(1.0 - sel)
    rows = np.arange(len(combos))
    best = np.argmax(sr_is, axis=1)
    oos_best = sr_oos[rows, best]
    rank = (sr_oos < oos_best[:, None]).sum(axis=1) + 1
    omega = rank / (n + 1.0)
    logits = np.log(omega / (1.0 - omega))
    return PBOResult(float((logits <= 0).mean()), logits, sr_is[rows, best], oos_best, len(combos), blocks)
