"""Online learning: incremental member updates, Hedge weight updates, drift detection, shadow swaps.

:class:`OnlineLearner` receives labelled samples as their labels mature (the caller feeds a sample
only once its label end ``t_touch`` has passed), in time order, each with the feature row, the class
index ``y`` in {0, 1, 2} and the calibrated probabilities every ensemble member predicted for it
*before* the label was known. For every sample, in order:

1. The served (current) model's probabilities are the ensemble output with the weights as they were
   before this sample's batch was learned, so its log loss is out of sample.
2. That per-sample log loss feeds the drift detector (``river.drift.ADWIN`` or ``PageHinkley``,
   watching for an increase of the loss).
3. If a candidate model is under shadow evaluation, the candidate scores the same sample (it was
   trained before the sample arrived, so out of sample too) and both losses are accumulated.
4. The sample joins a buffer; every ``update_every`` samples the buffer updates the members that
   support incremental updates (:class:`IncrementalMember`: ``partial_fit(x, y)``) and the ensemble
   weights (:meth:`HedgeEnsemble.update`), then is cleared.

On drift (and when no candidate is pending) the ``retrain`` callback is called with a
:class:`DriftEvent`. It may return a candidate (anything with ``predict_proba(x) -> (n, 3)``) at once
or return ``None`` and hand one over later with :meth:`OnlineLearner.submit_candidate`. A candidate
replaces the current model only if, over the next ``shadow_min_samples`` labelled samples, its mean
log loss is at most the current model's (``<= current + shadow_margin``); then ``on_replace`` is
called with it (the owner swaps the served model and, if the member set changed, calls
:meth:`OnlineLearner.replace_ensemble`). Either way the detector restarts after the decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from orderflow.models.ensemble import HedgeEnsemble, log_loss_per_sample

log = logging.getLogger(__name__)


class OnlineConfig(BaseModel):
    """Online-learning parameters (river drift detectors' own parameters keep their river names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    update_every: int = Field(50, ge=1, description="labelled samples between incremental updates")
    detector: Literal["adwin", "page_hinkley"] = "adwin"
    adwin_delta: float = Field(0.002, gt=0, lt=1, description="ADWIN confidence")
    adwin_clock: int = Field(32, ge=1, description="ADWIN checks for drift every `clock` samples")
    adwin_grace_period: int = Field(10, ge=1)
    ph_min_instances: int = Field(30, ge=1, description="Page-Hinkley warm-up")
    ph_delta: float = Field(0.005, ge=0, description="Page-Hinkley tolerated change magnitude")
    ph_threshold: float = Field(50.0, gt=0, description="Page-Hinkley alarm threshold (lambda)")
    ph_alpha: float = Field(0.9999, gt=0, le=1, description="Page-Hinkley forgetting factor")
    shadow_min_samples: int = Field(200, ge=1, description="labelled samples in a shadow evaluation")
    shadow_margin: float = Field(0.0, ge=0, description="candidate may be this much worse (mean log loss)")


@runtime_checkable
class IncrementalMember(Protocol):
    """A member that learns from new labelled samples in place (e.g. SGD logistic, a river model)."""

    def partial_fit(self, x: np.ndarray, y: np.ndarray) -> None: ...


class ProbaModel(Protocol):
    """Anything that maps feature rows (n, f) to probabilities (n, 3) over classes (-1, 0, +1)."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class DriftEvent:
    """Handed to the retrain callback: where the drift was detected."""

    n_seen: int  # labelled samples seen so far (the drift sample included)
    detector: str
    recent_loss: float  # mean ensemble log loss over the last update_every samples


@dataclass(frozen=True)
class ShadowResult:
    """Outcome of one shadow evaluation (both models scored on the same samples)."""

    n_samples: int
    current_loss: float
    candidate_loss: float
    accepted: bool


def make_detector(cfg: OnlineConfig) -> Any:
    """A fresh river drift detector configured from ``cfg``."""
    from river import drift

    if cfg.detector == "adwin":
        return drift.ADWIN(delta=cfg.adwin_delta, clock=cfg.adwin_clock, grace_period=cfg.adwin_grace_period)
    return drift.PageHinkley(
        min_instances=cfg.ph_min_instances,
        delta=cfg.ph_delta,
        threshold=cfg.ph_threshold,
        alpha=cfg.ph_alpha,
        mode="up",
    )


class SGDLogisticMember:
    """A small incremental member: multinomial logistic regression by SGD (sklearn
    ``SGDClassifier(loss="log_loss")``); NaN features become 0. ``fit`` = first ``partial_fit``."""

    def __init__(
        self,
        name: str = "sgd",
        feature_names: Sequence[str] | None = None,
        alpha: float = 1e-2,
        seed: int = 0,
    ):
        from sklearn.linear_model import SGDClassifier

        self.name = name
        self.input_kind = "tabular"
        self.seq_len = 1
        self.feature_names = list(feature_names or [])
        self._clf = SGDClassifier(loss="log_loss", alpha=alpha, random_state=seed)
        self._fitted = False

    def partial_fit(self, x: np.ndarray, y: np.ndarray) -> None:
        self._clf.partial_fit(
            np.nan_to_num(np.asarray(x, dtype=np.float64)), np.asarray(y), classes=[0, 1, 2]
        )
        self._fitted = True

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if not self._fitted:
            return np.full((len(x), 3), 1 / 3)
        return self._clf.predict_proba(np.nan_to_num(np.asarray(x, dtype=np.float64)))

    predict_proba_raw = predict_proba


class OnlineLearner:
    """Drives incremental updates, Hedge weights, drift detection and shadow evaluation.

    ``members`` maps member names to member objects; those implementing :class:`IncrementalMember`
    are updated every ``update_every`` samples. If ``feature_names`` (the columns of the rows passed to
    :meth:`learn`) is given and a member has a non-empty ``feature_names`` attribute, the member gets
    only its own columns, in its order.
    """

    def __init__(
        self,
        ensemble: HedgeEnsemble,
        cfg: OnlineConfig | None = None,
        members: Mapping[str, object] | None = None,
        retrain: Callable[[DriftEvent], ProbaModel | None] | None = None,
        on_replace: Callable[[ProbaModel], None] | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        self.cfg = cfg or OnlineConfig()
        self.ensemble = ensemble
        self.members = dict(members or {})
        self.retrain = retrain
        self.on_replace = on_replace
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.detector = make_detector(self.cfg)
        self.n_seen = 0
        self.drift_at: list[int] = []  # n_seen at each detected drift
        self.shadow_results: list[ShadowResult] = []
        self.candidate: ProbaModel | None = None
        self._retrain_pending = False
        self._shadow_cur: list[float] = []
        self._shadow_cand: list[float] = []
        self._buf_x: list[np.ndarray] = []
        self._buf_y: list[int] = []
        self._buf_p: dict[str, list[np.ndarray]] = {n: [] for n in ensemble.member_names}
        self._recent: list[float] = []

    # -- public -----------------------------------------------------------------------------------

    def submit_candidate(self, candidate: ProbaModel) -> None:
        """Start a shadow evaluation of ``candidate`` on the next ``shadow_min_samples`` samples."""
        self.candidate = candidate
        self._retrain_pending = False
        self._shadow_cur, self._shadow_cand = [], []
        log.info("online: shadow evaluation of a candidate starts at sample %d", self.n_seen)

    def replace_ensemble(self, ensemble: HedgeEnsemble, members: Mapping[str, object] | None = None) -> None:
        """Swap the ensemble (and members) after an accepted candidate changed the member set."""
        self._flush()
        self.ensemble = ensemble
        if members is not None:
            self.members = dict(members)
        self._buf_p = {n: [] for n in ensemble.member_names}

    def learn(self, x: np.ndarray, y: np.ndarray, member_probs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Process labelled samples in time order; returns the served model's per-sample log loss.

        ``x`` (n, f) feature rows, ``y`` (n,) class indices, ``member_probs[name]`` (n, 3) calibrated
        out-of-sample probabilities. The caller guarantees every label has matured (``t_touch`` passed).
        """
        x = np.atleast_2d(np.asarray(x))
        y = np.asarray(y, dtype=np.int64)
        if len(x) != len(y):
            raise ValueError(f"OnlineLearner.learn: {len(x)} feature rows but {len(y)} labels")
        probs = {n: np.asarray(member_probs[n], dtype=np.float64) for n in self.ensemble.member_names}
        losses = np.empty(len(y))
        i = 0
        while i < len(y):
            # the ensemble weights change only at buffer flushes: score up to the next flush at once
            j = min(len(y), i + self.cfg.update_every - len(self._buf_y))
            seg = slice(i, j)
            p_cur = self.ensemble.predict({n: p[seg] for n, p in probs.items()})
            loss_cur = log_loss_per_sample(p_cur, y[seg])
            for k in range(i, j):
                self._observe(x[k], int(y[k]), float(loss_cur[k - i]), {n: p[k] for n, p in probs.items()})
            losses[seg] = loss_cur
            i = j
        return losses

    # -- internals --------------------------------------------------------------------------------

    def _observe(self, xk: np.ndarray, yk: int, loss: float, pk: Mapping[str, np.ndarray]) -> None:
        self.n_seen += 1
        self._recent = [*self._recent, loss][-self.cfg.update_every :]
        if self.candidate is not None:
            p_cand = np.asarray(self.candidate.predict_proba(xk[None, :]), dtype=np.float64)
            self._shadow_cand.append(float(log_loss_per_sample(p_cand, np.array([yk]))[0]))
            self._shadow_cur.append(loss)
            if len(self._shadow_cand) >= self.cfg.shadow_min_samples:
                self._decide()
        else:
            self.detector.update(loss)
            if self.detector.drift_detected and not self._retrain_pending:
                self._on_drift()
        self._buf_x.append(xk)
        self._buf_y.append(yk)
        for n, p in pk.items():
            self._buf_p[n].append(p)
        if len(self._buf_y) >= self.cfg.update_every:
            self._flush()

    def _on_drift(self) -> None:
        ev = DriftEvent(self.n_seen, self.cfg.detector, float(np.mean(self._recent)))
        self.drift_at.append(self.n_seen)
        log.warning(
            "online: drift detected by %s at sample %d (recent loss %.4f)",
            ev.detector,
            ev.n_seen,
            ev.recent_loss,
        )
        if self.retrain is None:
            self.detector = make_detector(self.cfg)
            return
        self._retrain_pending = True
        cand = self.retrain(ev)
        if cand is not None:
            self.submit_candidate(cand)

    def _decide(self) -> None:
        cur, cand = float(np.mean(self._shadow_cur)), float(np.mean(self._shadow_cand))
        accepted = cand <= cur + self.cfg.shadow_margin
        res = ShadowResult(len(self._shadow_cand), cur, cand, accepted)
        self.shadow_results.append(res)
        log.info(
            "online: candidate %s (shadow log loss %.4f vs current %.4f over %d samples)",
            "accepted" if accepted else "rejected",
            cand,
            cur,
            res.n_samples,
        )
        candidate, self.candidate = self.candidate, None
        self._shadow_cur, self._shadow_cand = [], []
        self.detector = make_detector(self.cfg)
        if accepted and candidate is not None and self.on_replace is not None:
            self.on_replace(candidate)

    def _member_columns(self, member: object, x: np.ndarray) -> np.ndarray:
        names = getattr(member, "feature_names", None)
        if not names or self.feature_names is None or list(names) == self.feature_names:
            return x
        try:
            cols = [self.feature_names.index(c) for c in names]
        except ValueError as e:
            raise KeyError(f"OnlineLearner: member {getattr(member, 'name', member)!r}: {e}") from e
        return x[:, cols]

    def _flush(self) -> None:
        if not self._buf_y:
            return
        x = np.stack(self._buf_x)
        y = np.asarray(self._buf_y, dtype=np.int64)
        for name, m in self.members.items():
            if isinstance(m, IncrementalMember):
                m.partial_fit(self._member_columns(m, x), y)
                log.debug("online: member %s updated on %d samples", name, len(y))
        self.ensemble.update({n: np.stack(p) for n, p in self._buf_p.items()}, y)
        self._buf_x, self._buf_y = [], []
        self._buf_p = {n: [] for n in self.ensemble.member_names}
