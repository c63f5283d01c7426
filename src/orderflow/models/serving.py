"""ONNX Runtime serving of an ensemble bundle, and hot reload of the registry's champion.

:class:`EnsembleModel` loads every member graph of a bundle (format in :mod:`orderflow.models.registry`)
into its own ``onnxruntime.InferenceSession`` (one intra-op thread: the engine owns the cores),
applies the member's calibration (vector scaling, ``orderflow.models.calibration``) and averages the
calibrated probabilities with the bundle's ensemble weights. It refuses a bundle whose feature schema
hash differs from the one the running feature engine produces (:class:`SchemaMismatch`).

:class:`HotReloader` uses a **background thread** (not an asyncio task): ONNX session creation and the
MLflow client are blocking, CPU/IO-bound calls that must stay off both the event loop and the hot
path, and a thread serves sync and async engines alike. The thread polls the registry alias every
``poll_s`` seconds; on a new version it downloads and loads it completely, then swaps one reference
``(version, model)``. ``predict`` reads that reference once per call, so a call never mixes two
versions and never waits for a load. A refused bundle (schema mismatch, broken file) is logged as an
error, recorded as a failed :class:`ReloadEvent`, and the current model keeps serving. A version whose
registry artifacts are missing or fail their checksums is tried again every ``retry_s`` seconds (the
file may be restored); one refused for its content (schema, graph) is not.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orderflow.models.registry import (
    CHAMPION,
    DEFAULT_MODEL_NAME,
    BundleManifest,
    RegistryError,
    read_manifest,
    verify_stamped,
)

if TYPE_CHECKING:
    import onnxruntime as ort

    from orderflow.models.registry import Registry

log = logging.getLogger(__name__)

PROBS_OUTPUT = "probs"


class SchemaMismatch(ValueError):
    """The bundle was trained on a different feature schema than the running engine produces."""


class BundleError(RegistryError, ValueError):
    """A bundle cannot be served (corrupt or truncated ONNX graph, missing output, bad weights)."""


class ModelNotReady(RuntimeError):
    """No model has been loaded yet (no champion, or every candidate was refused)."""


def _calibrator(d: Mapping[str, Any] | None) -> Callable[[np.ndarray], np.ndarray]:
    """A function raw (n, 3) probs -> calibrated probs, from a calibration dict (None: identity)."""
    if not d:
        return lambda p: np.asarray(p, dtype=np.float64)
    try:
        from orderflow.models.calibration import VectorScaling
    except ImportError:  # calibration module absent: the same maths, locally
        a = np.asarray(d["a"], dtype=np.float64)
        b = np.asarray(d["b"], dtype=np.float64)
        eps = float(d.get("eps", 1e-7))

        def apply(p: np.ndarray) -> np.ndarray:
            z = np.log(np.clip(np.asarray(p, dtype=np.float64), eps, 1.0)) * a + b
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)

        return apply
    return VectorScaling.from_dict(dict(d)).apply


def _first_differences(expected: Sequence[str], got: Sequence[str], limit: int = 3) -> str:
    diffs = [
        f"#{i}: expected {e!r}, bundle has {g!r}"
        for i, (e, g) in enumerate(zip(expected, got, strict=False))
        if e != g
    ][:limit]
    if len(expected) != len(got):
        diffs.append(f"expected {len(expected)} features, bundle has {len(got)}")
    return "; ".join(diffs) or "same names (different dtype or hash method)"


@dataclass
class _Member:
    name: str
    input_kind: str  # "tabular" or "stream"
    seq_len: int  # rows of history one prediction depends on (1 for tabular)
    columns: np.ndarray  # indices into the bundle's feature_names
    session: ort.InferenceSession
    calibrate: Callable[[np.ndarray], np.ndarray]
    state_names: tuple[str, ...] = ()
    state_init: tuple[np.ndarray, ...] = ()  # zero state of one stream
    block: int = 1  # rows per ONNX call in batch mode (stream members)


State = dict[str, list[np.ndarray]]  # member name -> its state tensors (stream members only)


def _stream_spec(sess: ort.InferenceSession, path: Path, name: str) -> tuple[tuple, tuple, int]:
    """State names, zero state of one stream and the batch block, from a stream graph's metadata."""
    meta = sess.get_modelmeta().custom_metadata_map
    if "state" not in meta:
        raise BundleError(f"{path}: stream member {name!r} has no state metadata")
    spec = json.loads(meta["state"])
    names = tuple(str(d["name"]) for d in spec)
    have = [i.name for i in sess.get_inputs()]
    if have != ["x", *names]:
        raise BundleError(f"{path}: member {name!r} inputs {have}, expected {['x', *names]}")
    init = tuple(np.zeros(d["shape"], dtype=np.float32) for d in spec)
    return names, init, max(1, int(meta.get("infer_block", "64")))


class EnsembleModel:
    """An immutable, loaded ensemble: per-member ONNX sessions, calibrations and weights.

    ``predict(rows, state)`` scores consecutive feature rows (n, F) over the bundle's
    ``feature_names``; stream members carry their state in ``state`` (from :meth:`new_state`, updated
    in place), so calling it with one row per book event (live) or with a whole replay (backtest)
    gives the same probabilities. Members run in parallel threads when ``rows`` is large (ONNX
    Runtime releases the GIL); each session uses one intra-op thread.
    """

    PARALLEL_MIN_ROWS = 256

    def __init__(
        self, manifest: BundleManifest, members: list[_Member], source: Path, workers: int = 1
    ) -> None:
        self.manifest = manifest
        self.source = source
        self._members = members
        w = np.array([max(manifest.ensemble.weights.get(m.name, 0.0), 0.0) for m in members])
        if not np.isfinite(w).all() or w.sum() <= 0:
            raise BundleError(f"{source}: ensemble weights {manifest.ensemble.weights} do not sum to > 0")
        self._weights = w / w.sum()
        self._pool = ThreadPoolExecutor(workers, "ensemble") if workers > 1 and len(members) > 1 else None

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | Path,
        expected_schema_hash: str | None,
        expected_feature_names: Sequence[str] | None = None,
        workers: int | None = None,
    ) -> EnsembleModel:
        """Load a bundle directory. ``expected_schema_hash`` None skips the schema check (offline use).
        ``workers``: threads that run members in parallel on large batches (default: the CPU count,
        at most 2).

        Raises SchemaMismatch naming both hashes (and the first differing feature names when
        ``expected_feature_names`` is given), RegistryError when a bundle cached by the registry no
        longer matches its checksums, BundleError (one line naming the file) when a graph cannot be
        loaded.
        """
        import onnxruntime as ort

        bundle_dir = Path(bundle_dir)
        m = read_manifest(bundle_dir)
        verify_stamped(bundle_dir)
        if expected_schema_hash is not None and m.schema_hash != expected_schema_hash:
            detail = (
                _first_differences(expected_feature_names, m.feature_names)
                if expected_feature_names is not None
                else f"bundle's first features {m.feature_names[:3]}"
            )
            raise SchemaMismatch(
                f"{bundle_dir}: feature schema hash {m.schema_hash[:16]} != expected "
                f"{expected_schema_hash[:16]} ({detail})"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        pos = {f: i for i, f in enumerate(m.feature_names)}
        members = []
        for e in m.members:
            path = bundle_dir / e.onnx
            try:
                sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own exception types
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise BundleError(
                    f"{path}: member {e.name!r} cannot be loaded (corrupt or truncated ONNX graph): {first}"
                ) from None
            if PROBS_OUTPUT not in [o.name for o in sess.get_outputs()]:
                raise BundleError(f"{path}: member {e.name!r} has no output {PROBS_OUTPUT!r}")
            member = _Member(
                name=e.name,
                input_kind=e.input_kind,
                seq_len=e.seq_len,
                columns=np.array([pos[f] for f in e.feature_names], dtype=np.intp),
                session=sess,
                calibrate=_calibrator(e.calibration),
            )
            if e.input_kind == "stream":
                member.state_names, member.state_init, member.block = _stream_spec(sess, path, e.name)
            members.append(member)
        workers = min(2, os.cpu_count() or 1) if workers is None else workers
        return cls(m, members, bundle_dir, workers)

    @property
    def schema_hash(self) -> str:
        return self.manifest.schema_hash

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self._members]

    @property
    def weights(self) -> dict[str, float]:
        return {m.name: float(w) for m, w in zip(self._members, self._weights, strict=True)}

    @property
    def context_rows(self) -> int:
        """Rows to replay into a fresh state so every member is warm (the longest receptive field)."""
        return max(m.seq_len for m in self._members) - 1

    def new_state(self) -> State:
        """The state at the start of a stream (zeros) for every stream member."""
        return {m.name: [a.copy() for a in m.state_init] for m in self._members if m.input_kind == "stream"}

    def _member_probs(self, m: _Member, rows: np.ndarray, state: State) -> np.ndarray:
        x = np.ascontiguousarray(rows[:, m.columns])
        if m.input_kind == "tabular":
            raw = m.session.run([PROBS_OUTPUT], {"x": x})[0]
            return m.calibrate(raw)
        st = state[m.name]
        out = np.empty((len(x), 3), dtype=np.float32)
        outputs = [PROBS_OUTPUT, *[f"{n}_out" for n in m.state_names]]
        for s in range(0, len(x), m.block):
            feeds = {"x": x[None, s : s + m.block], **dict(zip(m.state_names, st, strict=True))}
            res = m.session.run(outputs, feeds)
            out[s : s + m.block] = res[0][0]
            st[:] = res[1:]
        return m.calibrate(out)

    def predict_members(self, rows: np.ndarray, state: State | None = None) -> dict[str, np.ndarray]:
        """Calibrated (n, 3) probabilities per member for consecutive rows (n, F); columns are the
        classes (-1, 0, +1). ``state`` None: stream members start from a zero state (the output then
        depends on these rows only); otherwise it is advanced in place."""
        x = np.asarray(rows, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != len(self.manifest.feature_names):
            raise ValueError(
                f"rows of shape {np.shape(rows)}: expected (n, {len(self.manifest.feature_names)})"
            )
        st = self.new_state() if state is None else state
        missing = [m.name for m in self._members if m.input_kind == "stream" and m.name not in st]
        if missing:
            raise KeyError(f"state lacks stream member(s) {missing}: use EnsembleModel.new_state()")
        if self._pool is not None and len(x) >= self.PARALLEL_MIN_ROWS:
            # longest first (stream members dominate), so the two workers finish close together
            order = sorted(self._members, key=lambda m: m.input_kind != "stream")
            futures = {m.name: self._pool.submit(self._member_probs, m, x, st) for m in order}
            return {m.name: futures[m.name].result() for m in self._members}
        return {m.name: self._member_probs(m, x, st) for m in self._members}

    def predict(self, rows: np.ndarray, state: State | None = None) -> np.ndarray:
        """Weighted average of the calibrated member probabilities, (n, 3) float64."""
        per = self.predict_members(rows, state)
        acc = None
        for m, w in zip(self._members, self._weights, strict=True):
            acc = per[m.name] * w if acc is None else acc + per[m.name] * w
        assert acc is not None
        return acc


@dataclass(frozen=True)
class ReloadEvent:
    """One reload attempt: ``ok`` False means the candidate was refused and ``from_version`` kept."""

    ts_ns: int
    from_version: str | None
    to_version: str
    ok: bool
    load_ms: float
    error: str = ""


class HotReloader:
    """Serves the registry's ``alias`` version and swaps to a newly promoted one without a restart.

    Use ``start()``/``stop()`` or ``with HotReloader(...) as r:``. ``check_now()`` runs one poll in
    the caller's thread (tests, or engines that prefer to drive polling themselves). A version refused
    for its content is not retried (promote a fixed bundle as a new version); one whose artifacts were
    missing or changed (RegistryError) is retried after ``retry_s`` seconds of ``clock``.
    """

    def __init__(
        self,
        registry: Registry,
        alias: str = CHAMPION,
        expected_schema_hash: str | None = None,
        poll_s: float = 1.0,
        *,
        name: str = DEFAULT_MODEL_NAME,
        expected_feature_names: Sequence[str] | None = None,
        clock: Callable[[], int] = time.time_ns,
        retry_s: float = 30.0,
    ) -> None:
        self.registry = registry
        self.alias = alias
        self.expected_schema_hash = expected_schema_hash
        self.expected_feature_names = list(expected_feature_names) if expected_feature_names else None
        self.poll_s = poll_s
        self.name = name
        self._clock = clock
        self._live: tuple[str, EnsembleModel] | None = None
        self._refused: set[str] = set()
        self.retry_s = retry_s
        self._retry_at: dict[str, int] = {}  # version -> clock (ns) after which it may be tried again
        self._events: list[ReloadEvent] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()

    # -- serving (hot path)
    @property
    def current_version(self) -> str | None:
        live = self._live
        return live[0] if live else None

    @property
    def model(self) -> EnsembleModel:
        live = self._live
        if live is None:
            raise ModelNotReady(f"{self.name}@{self.alias}: no model loaded")
        return live[1]

    def predict_versioned(self, rows: np.ndarray) -> tuple[str, np.ndarray]:
        """(version, probabilities) from one consistent model; stream members start from a zero state
        (use :meth:`stream` to keep state across calls)."""
        live = self._live
        if live is None:
            raise ModelNotReady(f"{self.name}@{self.alias}: no model loaded")
        return live[0], live[1].predict(rows)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.predict_versioned(rows)[1]

    def stream(self, warm_rows: int | None = None) -> HotStream:
        """A stateful scorer that follows this reloader's swaps (see :class:`HotStream`)."""
        return HotStream(self, warm_rows)

    @property
    def events(self) -> list[ReloadEvent]:
        return list(self._events)

    # -- reloading (background)
    def check_now(self) -> bool:
        """Poll once; load and swap if the alias points to a new, acceptable version. True if swapped."""
        with self._poll_lock:
            try:
                target = self.registry.resolve(self.alias, self.name)
            except Exception:
                log.exception("%s@%s: registry poll failed", self.name, self.alias)
                return False
            current = self.current_version
            if target is None or target == current or target in self._refused:
                return False
            if self._clock() < self._retry_at.get(target, -1):
                return False
            t0 = time.perf_counter()
            try:
                path = self.registry.load_bundle(target, self.name)
                model = EnsembleModel.from_bundle(
                    path, self.expected_schema_hash, self.expected_feature_names
                )
            except Exception as exc:
                ms = (time.perf_counter() - t0) * 1e3
                retry = isinstance(exc, RegistryError) and not isinstance(exc, BundleError)
                if retry:  # missing or changed artifacts: the file may be restored
                    self._retry_at[target] = self._clock() + int(self.retry_s * 1e9)
                else:
                    self._refused.add(target)
                self._events.append(ReloadEvent(self._clock(), current, target, False, ms, str(exc)))
                log.error(
                    "%s@%s: refused version %s, still serving %s: %s%s",
                    self.name,
                    self.alias,
                    target,
                    current,
                    exc,
                    f" (retrying in {self.retry_s:g} s)" if retry else "",
                )
                return False
            self._retry_at.pop(target, None)
            ms = (time.perf_counter() - t0) * 1e3
            self._live = (target, model)  # the atomic swap
            self._events.append(ReloadEvent(self._clock(), current, target, True, ms))
            log.info(
                "%s@%s: now serving version %s (was %s, loaded in %.0f ms)",
                self.name,
                self.alias,
                target,
                current,
                ms,
            )
            return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check_now()

    def start(self) -> HotReloader:
        """Load the current alias target synchronously, then poll in a daemon thread."""
        if self._thread is not None:
            return self
        self.check_now()
        if self._live is None:
            log.warning("%s@%s: nothing to serve yet; waiting for a promotion", self.name, self.alias)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"hot-reload-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> HotReloader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HotStream:
    """Scores a live stream of feature rows with the reloader's current model, keeping each stream
    member's state; when the served version changes, a fresh state is warmed on the last
    ``warm_rows`` rows (default: the new model's ``context_rows``) before the next rows are scored, so
    a swap never feeds one version's state to another."""

    def __init__(self, reloader: HotReloader, warm_rows: int | None = None) -> None:
        self.reloader = reloader
        self.warm_rows = warm_rows
        self.version: str | None = None
        self._model: EnsembleModel | None = None
        self._state: State = {}
        self._recent: np.ndarray | None = None  # the last rows seen, for warming a new version

    def update(self, rows: np.ndarray) -> tuple[str, np.ndarray]:
        """(version, probabilities (n, 3)) for the next consecutive rows (n, F) or one row (F,)."""
        x = np.asarray(rows, dtype=np.float32)
        x = x[None] if x.ndim == 1 else x
        live = self.reloader._live
        if live is None:
            raise ModelNotReady(f"{self.reloader.name}@{self.reloader.alias}: no model loaded")
        version, model = live
        if version != self.version:
            self._state = model.new_state()
            if self._recent is not None and len(self._recent):
                model.predict(self._recent, self._state)  # warm the new version's state
            self.version, self._model = version, model
        probs = model.predict(x, self._state)
        keep = self.warm_rows if self.warm_rows is not None else model.context_rows
        if keep > 0:
            self._recent = x[-keep:] if self._recent is None else np.concatenate([self._recent, x])[-keep:]
        return version, probs
