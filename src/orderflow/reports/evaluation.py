"""The model-evaluation metrics of a period report, as plain functions of arrays (no journal, no I/O).

Classes are ordered (down, flat, up) = labels (-1, 0, +1); ``P`` is an (n, 3) array of probabilities
as journaled (not renormalised), ``y`` the realised labels.

- **Brier score**: ``mean(sum_k (P[i, k] - [y_i = k])^2)``, from 0 (perfect) to 2;
- **log loss**: ``mean(-ln max(P[i, y_i], 1e-15))``;
- **reliability** of the top label: the predicted class is the most probable one (the first on a tie),
  its probability the confidence; in ``n_bins`` equal-width bins of confidence over [0, 1] the mean
  confidence against the share of hits. **ECE** = ``sum_b n_b / n * |hit_b - conf_b|``. Per class: the
  probability of class k in the same bins against the share of labels k, and the classwise ECE (the
  mean over the classes of that class's ECE);
- **hit rate by confidence decile**: the samples sorted by confidence (ties in time order) and cut
  into ten groups of sizes as equal as possible (``floor(10 * rank / n)``);
- **prequential baseline**: for each sample the class frequencies of the labels known before it
  (``outcome_ns`` at or before the sample's ``event_ns``), add-one smoothed, so the first sample gets
  (1/3, 1/3, 1/3). The baseline never uses a label from its own future;
- **Spearman IC**: Pearson's correlation of the average ranks (ties share their mean rank); the rolling
  IC takes windows of ``window`` consecutive samples every ``step`` samples;
- **PSI** of a feature: the reference's deciles as bin edges (repeated edges merged; bins are
  ``(-inf, e_1], (e_1, e_2], ..., (e_m, inf)``, plus one for NaN when either side has one), the
  shares ``e`` (reference) and ``a`` (compared) floored at 1e-4, ``PSI = sum (a - e) ln(a / e)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

CLASSES = ("down", "flat", "up")
EPS_LOG = 1e-15
EPS_PSI = 1e-4


def one_hot(y: np.ndarray) -> np.ndarray:
    """Labels -1/0/1 as an (n, 3) indicator array."""
    out = np.zeros((y.size, 3))
    out[np.arange(y.size), y.astype(np.int64) + 1] = 1.0
    return out


def brier(P: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.sum((P - one_hot(y)) ** 2, axis=1))) if y.size else math.nan


def log_loss(P: np.ndarray, y: np.ndarray) -> float:
    if not y.size:
        return math.nan
    p = P[np.arange(y.size), y.astype(np.int64) + 1]
    return float(np.mean(-np.log(np.maximum(p, EPS_LOG))))


def top_label(P: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, hit) of the most probable class of each sample."""
    k = np.argmax(P, axis=1)
    return P[np.arange(len(P)), k], (k - 1) == y


def _bins(p: np.ndarray, outcome: np.ndarray, n_bins: int) -> tuple[list[dict[str, Any]], float]:
    idx = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    rows, ece, n = [], 0.0, p.size
    for b in range(n_bins):
        m = idx == b
        k = int(m.sum())
        if not k:
            continue
        conf, freq = float(p[m].mean()), float(outcome[m].mean())
        ece += k / n * abs(freq - conf)
        rows.append({"lo": b / n_bins, "hi": (b + 1) / n_bins, "n": k, "predicted": conf, "realised": freq})
    return rows, ece


def reliability(P: np.ndarray, y: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Top-label reliability and ECE; per-class reliability and the classwise ECE."""
    if not y.size:
        return {"bins": [], "ece": None, "per_class": {}, "classwise_ece": None, "n_bins": n_bins}
    conf, hit = top_label(P, y)
    bins, ece = _bins(conf, hit.astype(float), n_bins)
    per: dict[str, list[dict[str, Any]]] = {}
    eces = []
    for k, name in enumerate(CLASSES):
        per[name], e = _bins(P[:, k], (y == k - 1).astype(float), n_bins)
        eces.append(e)
    return {"bins": bins, "ece": ece, "per_class": per, "classwise_ece": float(np.mean(eces)),
            "n_bins": n_bins}  # fmt: skip


def deciles(conf: np.ndarray, hit: np.ndarray) -> list[dict[str, Any]]:
    """Hit rate per confidence decile (see the module doc); fewer groups below ten samples."""
    n = conf.size
    if not n:
        return []
    order = np.argsort(conf, kind="stable")
    group = np.empty(n, dtype=np.int64)
    group[order] = (np.arange(n) * 10) // n
    out = []
    for d in range(10):
        m = group == d
        if not m.any():
            continue
        c = conf[m]
        out.append({"decile": d + 1, "n": int(m.sum()), "conf_lo": float(c.min()), "conf_hi": float(c.max()),
                    "confidence": float(c.mean()), "hit_rate": float(hit[m].mean())})  # fmt: skip
    return out


def prequential_prior(
    sample_event_ns: np.ndarray, known_ns: np.ndarray, known_label: np.ndarray, counts0: np.ndarray
) -> np.ndarray:
    """Per sample, the add-one smoothed class frequencies of ``counts0`` (labels known before every
    sample) plus the labels ``known_label`` whose outcome time ``known_ns`` is at or before the
    sample's ``sample_event_ns``. Returns (n, 3)."""
    order = np.argsort(known_ns, kind="stable")
    kt, kl = known_ns[order], known_label[order].astype(np.int64) + 1
    cum = np.zeros((kt.size + 1, 3))
    if kt.size:
        cum[1:] = np.cumsum(np.eye(3)[kl], axis=0)
    upto = np.searchsorted(kt, sample_event_ns, side="right")
    c = cum[upto] + counts0[None, :] + 1.0
    return c / c.sum(axis=1, keepdims=True)


def rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based; ties share their mean rank)."""
    n = x.size
    order = np.argsort(x, kind="stable")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]] if n else np.empty(0, dtype=bool)
    start = np.flatnonzero(first)
    end = np.r_[start[1:], n] - 1
    ranks = np.empty(n)
    ranks[order] = ((start + end) / 2.0 + 1.0)[np.cumsum(first) - 1]
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation; None when either side is constant or there are < 3 samples."""
    if a.size < 3:
        return None
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float(np.sum(ra * ra)) * float(np.sum(rb * rb)))
    return float(np.sum(ra * rb)) / den if den > 0 else None


def rolling_ic(score: np.ndarray, ret: np.ndarray, window: int, step: int) -> dict[str, Any]:
    """Spearman IC over windows of ``window`` consecutive samples ending at ``window-1``, then every
    ``step`` samples (the last window always included)."""
    n = score.size
    ends: list[int] = []
    if n >= window >= 3:
        ends = list(range(window - 1, n, step))
        if ends[-1] != n - 1:
            ends.append(n - 1)
    ics = [spearman(score[e - window + 1 : e + 1], ret[e - window + 1 : e + 1]) for e in ends]
    return {"window": window, "step": step, "end": ends, "ic": ics}


def psi(ref: np.ndarray, cur: np.ndarray, n_bins: int = 10) -> tuple[float, list[float], list[float]]:
    """PSI of ``cur`` against ``ref`` (see the module doc): (psi, reference shares, compared shares)."""
    rf, cf = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    edges = np.unique(np.quantile(rf, np.arange(1, n_bins) / n_bins)) if rf.size else np.empty(0)
    nb = edges.size + 1

    def shares(v: np.ndarray, finite: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, finite, side="left"), minlength=nb).astype(float)
        return np.append(counts, float(v.size - finite.size)) / v.size

    e, a = shares(ref, rf), shares(cur, cf)
    if e[-1] == 0 and a[-1] == 0:  # no NaN on either side: no NaN bin
        e, a = e[:-1], a[:-1]
    ef, af = np.maximum(e, EPS_PSI), np.maximum(a, EPS_PSI)
    return float(np.sum((af - ef) * np.log(af / ef))), e.tolist(), a.tolist()
