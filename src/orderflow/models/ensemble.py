"""Dynamically weighted ensemble of calibrated member probabilities (Hedge with bounded weights).

The ensemble output is ``p = Σ_m w_m · p_m`` over the members' calibrated probabilities ``p_m``
(shape ``(n, 3)``, classes ordered ``(-1, 0, +1)``). The weights adapt to each member's recent
*out-of-sample* log loss:

1. **Hedge / exponentiated gradient with discounting.** For a batch of ``n`` labelled samples in time
   order with per-sample log losses ``ℓ_{m,k}`` and per-sample discount ``γ = 0.5 ** (1 / halflife)``::

       log w'_m = γ^n · log w_m − eta · Σ_k γ^(n−k) · ℓ_{m,k}

   i.e. ``w_m ∝ exp(−eta · L_m)`` with ``L_m`` the exponentially discounted cumulative loss (old
   evidence fades with half-life ``halflife`` samples, so the weights can move back when a member
   recovers). The raw weights are then normalised to sum to 1.
2. **Projection onto the bounded simplex** ``{w : floor ≤ w_m ≤ cap, Σ w_m = 1}`` in relative
   entropy (KL), the projection that matches multiplicative updates. Its solution has the form
   ``w_m = clip(c · v_m, floor, cap)`` for one scalar ``c > 0``; ``g(c) = Σ clip(c · v_m, floor, cap)``
   is continuous and non-decreasing in ``c``, so ``c`` is found by bisection (on ``log c``) to
   ``|g(c) − 1| < 1e-12``, then the result is renormalised and clipped once more. The set is non-empty
   iff ``M · floor ≤ 1 ≤ M · cap`` (checked at construction; with few members the cap is raised to
   ``1 / M`` if needed, and the floor lowered to ``1 / M`` if needed, with a log line).

Only labelled samples may reach :meth:`HedgeEnsemble.update`; see its docstring.

The optional **stacking** meta-model is a multinomial logistic regression on the members'
log-probabilities (``3·M`` inputs), fitted on validation folds only (:meth:`fit_stacking`); when
``stacking=True`` and it is fitted, :meth:`predict` uses it instead of the weighted average.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from orderflow.models.config import EnsembleConfig

log = logging.getLogger(__name__)

N_CLASSES = 3
EPS = 1e-6  # probabilities are clipped to [EPS, 1] before taking logs


def log_loss_per_sample(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample log loss ``−log p[i, y[i]]`` with probabilities clipped to ``[EPS, 1]``."""
    p = np.clip(probs[np.arange(len(y)), y], EPS, 1.0)
    return -np.log(p)


def project_bounded_simplex(v: np.ndarray, floor: float, cap: float) -> np.ndarray:
    """KL projection of positive weights ``v`` onto ``{floor ≤ w ≤ cap, Σ w = 1}``.

    ``w = clip(c · v, floor, cap)`` with ``c`` found by bisection on ``log c`` (see module docstring).
    Raises ``ValueError`` when the set is empty (``M · floor > 1`` or ``M · cap < 1``).
    """
    v = np.asarray(v, dtype=np.float64)
    m = len(v)
    if m == 0:
        raise ValueError("project_bounded_simplex: no weights")
    if m * floor > 1 + 1e-12 or m * cap < 1 - 1e-12:
        raise ValueError(
            f"project_bounded_simplex: infeasible bounds floor={floor} cap={cap} for {m} weights"
        )
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError(f"project_bounded_simplex: weights must be finite and >= 0, got {v}")
    logv = np.log(np.maximum(v / max(v.sum(), 1e-300), 1e-300))
    log_cap = math.log(cap)

    def clipped(logc: float) -> np.ndarray:  # clip(c·v, floor, cap) without overflow
        return np.maximum(np.exp(np.minimum(logc + logv, log_cap)), floor)

    def g(logc: float) -> float:
        return float(clipped(logc).sum())

    lo, hi = -1.0, 1.0
    while g(lo) > 1.0:
        lo *= 2.0
        if lo < -2000:
            break
    while g(hi) < 1.0:
        hi *= 2.0
        if hi > 2000:
            break
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        s = g(mid)
        if abs(s - 1.0) < 1e-12:
            lo = hi = mid
            break
        if s < 1.0:
            lo = mid
        else:
            hi = mid
    w = clipped(0.5 * (lo + hi))
    w = np.clip(w / w.sum(), floor, cap)
    return w / w.sum()


class HedgeEnsemble:
    """Weighted average of calibrated member probabilities with Hedge weights in ``[floor, cap]``.

    ``member_names`` fixes the member order (weights are reported in that order). Weights start
    uniform.
    """

    def __init__(self, member_names: Sequence[str], cfg: EnsembleConfig | None = None) -> None:
        names = list(member_names)
        if not names:
            raise ValueError("HedgeEnsemble: member_names is empty")
        if len(set(names)) != len(names):
            raise ValueError(f"HedgeEnsemble: duplicate member names {names}")
        self.cfg = cfg or EnsembleConfig()
        self.member_names = names
        m = len(names)
        self.floor = min(self.cfg.floor, 1.0 / m)
        self.cap = max(self.cfg.cap, 1.0 / m)
        if (self.floor, self.cap) != (self.cfg.floor, self.cfg.cap):
            log.info(
                "HedgeEnsemble: bounds adjusted to floor=%g cap=%g for %d members", self.floor, self.cap, m
            )
        self.weights = np.full(m, 1.0 / m)
        self.recent_loss = np.full(m, np.nan)  # discounted mean OOS log loss per member
        self.n_updates = 0  # labelled samples seen
        self._loss_num = np.zeros(m)
        self._loss_den = 0.0
        self.stack_coef: np.ndarray | None = None  # (3, 3·M)
        self.stack_intercept: np.ndarray | None = None  # (3,)

    @property
    def decay(self) -> float:
        """Per-sample discount ``γ`` of past losses."""
        return 0.5 ** (1.0 / self.cfg.halflife)

    def weight_of(self) -> dict[str, float]:
        """Current weights by member name."""
        return {n: float(w) for n, w in zip(self.member_names, self.weights, strict=True)}

    def _stack(self, member_probs: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = [n for n in self.member_names if n not in member_probs]
        if missing:
            raise KeyError(f"HedgeEnsemble: probabilities missing for members {missing}")
        arrs = []
        for n in self.member_names:
            p = np.asarray(member_probs[n], dtype=np.float64)
            if p.ndim != 2 or p.shape[1] != N_CLASSES:
                raise ValueError(
                    f"HedgeEnsemble: member {n!r} probabilities have shape {p.shape}, want (n, 3)"
                )
            arrs.append(p)
        lens = {a.shape[0] for a in arrs}
        if len(lens) != 1:
            raise ValueError(f"HedgeEnsemble: members disagree on the number of samples: {sorted(lens)}")
        return np.stack(arrs)  # (M, n, 3)

    def predict_weighted(self, member_probs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Weighted average ``Σ w_m p_m`` (n, 3)."""
        p = self._stack(member_probs)
        return np.einsum("m,mnc->nc", self.weights, p)

    def predict(self, member_probs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Ensemble probabilities (n, 3): the stacking model when enabled and fitted, else the weights."""
        if self.cfg.stacking and self.stack_coef is not None:
            return self.predict_stacking(member_probs)
        return self.predict_weighted(member_probs)

    def update(self, member_probs: Mapping[str, np.ndarray], y: np.ndarray) -> None:
        """Update the weights from out-of-sample losses on labelled samples (time order).

        The caller guarantees that every sample's label is known, i.e. its label end ``t_touch`` has
        passed at the time of the update, and that ``member_probs`` are the predictions the members
        made *before* they saw these labels (out of sample). ``y`` holds class indices in {0, 1, 2}.
        An empty batch leaves the state unchanged.
        """
        y = np.asarray(y)
        p = self._stack(member_probs)
        if p.shape[1] != len(y):
            raise ValueError(f"HedgeEnsemble.update: {p.shape[1]} probability rows but {len(y)} labels")
        if len(y) == 0:
            return
        if y.min() < 0 or y.max() > 2:
            raise ValueError(f"HedgeEnsemble.update: labels must be class indices 0..2, got {np.unique(y)}")
        y = y.astype(np.int64)
        n = len(y)
        losses = np.stack([log_loss_per_sample(p[m], y) for m in range(len(self.member_names))])  # (M, n)
        g = self.decay
        disc = g ** np.arange(n - 1, -1, -1, dtype=np.float64)  # γ^(n−k)
        batch = losses @ disc
        logw = (g**n) * np.log(self.weights) - self.cfg.eta * batch
        logw -= logw.max()
        self.weights = project_bounded_simplex(np.exp(logw), self.floor, self.cap)
        self._loss_num = (g**n) * self._loss_num + batch
        self._loss_den = (g**n) * self._loss_den + float(disc.sum())
        self.recent_loss = self._loss_num / self._loss_den
        self.n_updates += n

    # -- stacking ---------------------------------------------------------------------------------

    def _stack_inputs(self, member_probs: Mapping[str, np.ndarray]) -> np.ndarray:
        p = self._stack(member_probs)  # (M, n, 3)
        return np.log(np.clip(p, EPS, 1.0)).transpose(1, 0, 2).reshape(p.shape[1], -1)

    def fit_stacking(self, member_probs: Mapping[str, np.ndarray], y: np.ndarray) -> None:
        """Fit the stacking meta-model on *validation-fold* predictions only (out of sample for
        every member). Needs at least one sample of each of two classes."""
        from sklearn.linear_model import LogisticRegression

        x = self._stack_inputs(member_probs)
        y = np.asarray(y, dtype=np.int64)
        if len(np.unique(y)) < 2:
            raise ValueError("HedgeEnsemble.fit_stacking: need at least two classes in y")
        lr = LogisticRegression(C=self.cfg.stacking_c, max_iter=1000)
        lr.fit(x, y)
        coef = np.zeros((N_CLASSES, x.shape[1]))
        icpt = np.full(N_CLASSES, -30.0)  # classes absent from y get ~zero probability
        classes = lr.classes_.astype(np.int64)
        if len(classes) == 2:  # sklearn returns one row for binary problems
            coef[classes[1]] = lr.coef_[0]
            icpt[classes[1]] = lr.intercept_[0]
            icpt[classes[0]] = 0.0
        else:
            coef[classes] = lr.coef_
            icpt[classes] = lr.intercept_
        self.stack_coef, self.stack_intercept = coef, icpt

    def predict_stacking(self, member_probs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Stacking meta-model probabilities (n, 3); numpy only, so it serialises via to_dict."""
        if self.stack_coef is None or self.stack_intercept is None:
            raise RuntimeError("HedgeEnsemble.predict_stacking: the stacking model is not fitted")
        z = self._stack_inputs(member_probs) @ self.stack_coef.T + self.stack_intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    # -- persistence ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (config, weights, loss statistics, stacking model)."""
        return {
            "member_names": list(self.member_names),
            "cfg": self.cfg.model_dump(),
            "weights": self.weights.tolist(),
            "n_updates": self.n_updates,
            "loss_num": self._loss_num.tolist(),
            "loss_den": self._loss_den,
            "stack_coef": None if self.stack_coef is None else self.stack_coef.tolist(),
            "stack_intercept": None if self.stack_intercept is None else self.stack_intercept.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HedgeEnsemble:
        """Inverse of :meth:`to_dict`."""
        ens = cls(d["member_names"], EnsembleConfig(**d["cfg"]))
        w = np.asarray(d["weights"], dtype=np.float64)
        if w.shape != ens.weights.shape:
            raise ValueError(f"HedgeEnsemble.from_dict: {len(w)} weights for {len(ens.member_names)} members")
        ens.weights = w
        ens.n_updates = int(d["n_updates"])
        ens._loss_num = np.asarray(d["loss_num"], dtype=np.float64)
        ens._loss_den = float(d["loss_den"])
        if ens._loss_den > 0:
            ens.recent_loss = ens._loss_num / ens._loss_den
        if d.get("stack_coef") is not None:
            ens.stack_coef = np.asarray(d["stack_coef"], dtype=np.float64)
            ens.stack_intercept = np.asarray(d["stack_intercept"], dtype=np.float64)
        return ens
