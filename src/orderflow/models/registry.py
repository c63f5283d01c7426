"""Versioned model registry on MLflow (tracking + model registry), SQLite by default.

Bundle format (``format_version`` 2)
-----------------------------------
A *bundle* is a directory that the registry stores and hands back unchanged::

    bundle.json          the manifest below
    <member>.onnx        one ONNX graph per member, classes ordered (-1, 0, +1): tabular members
                         take "x" float32 (n, f) and give "probs" (n, 3); stream members take
                         "x" (n, b, f) plus their state tensors and give "probs" (n, b, 3) plus
                         "<state>_out" (see orderflow.models.nets_train)

``bundle.json``::

    {
      "format_version": 2,
      "feature_names": ["ofi_l1_1s", ...],          # the full ordered feature schema
      "schema_hash": "<sha256 of the feature schema>",
      "members": [{"name": "expert_lgbm", "input_kind": "tabular", "seq_len": 1,  # stream: receptive field
                   "feature_names": [...], "onnx": "expert_lgbm.onnx",
                   "calibration": {... VectorScaling.to_dict() ...} or null}],
      "ensemble": {"weights": {"expert_lgbm": 0.5, ...}, "floor": 0.05, "cap": 0.6},
      "training_window": {"start_ns": ..., "end_ns": ...},
      "data_source": "store:binance-usdm/BTCUSDT" ,
      "hyperparameters": {"expert_lgbm": {...}, ...},
      "metrics": {                                   # every number out of sample, one value per fold
        "members":   {"lstm": {"log_loss": [..], "ece": [..], "auc": [..]}, ...},
        "ensemble":  {"log_loss": [..], "ece": [..], ...},
        "baselines": {"majority": {"log_loss": [..]}, "logreg_ofi": {"log_loss": [..]}}
      },
      "code_version": "v0.3.0-12-gabc1234",          # git describe, else the package version
      "created": "2026-11-22T03:00:00+00:00"
    }

Registry layout: ``Registry(dir)`` keeps the tracking/registry database at ``<dir>/mlflow.db`` and the
artifacts under ``<dir>/artifacts``; ``Registry("http://host:5000")`` talks to a tracking server.
``register`` logs the bundle as run artifacts (``bundle/``) with its parameters and metrics (fold =
step) and creates a model version; ``promote`` applies the :class:`GoldenRule` and moves the alias
``champion`` (the former champion becomes ``previous``); ``rollback`` moves ``champion`` back to
``previous``.

Integrity: ``register`` records the sha256 of every bundle file in the version tag ``artifact_sha256``
and, for a directory registry, the bundle's location relative to the registry root in
``artifact_path`` (so a registry directory can be copied or moved). ``load_bundle`` verifies the local
cache against those checksums on every call and rebuilds it when it does not match (a missing file, a
changed one, a partly materialised directory); the cache directory is complete only once its stamp
``.verified.json`` is written, last. A broken artifact is one :class:`RegistryError` line naming the
version and the file. Versions registered before checksums existed are checked structurally (every
member ONNX present and loadable) and verified against the checksums of their first good copy.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "orderflow-ensemble"
EXPERIMENT_NAME = "orderflow-models"
CHAMPION = "champion"
PREVIOUS = "previous"
MANIFEST = "bundle.json"
FORMAT_VERSION = 2  # 2: stream members (stateful ONNX graphs) replace window members
ENV_VAR = "ORDERFLOW_REGISTRY"
CHECKSUMS_TAG = "artifact_sha256"  # version tag: JSON {relative file path: sha256} of the bundle
LOCATION_TAG = "artifact_path"  # version tag: the bundle's directory relative to the registry root
CACHE_STAMP = ".verified.json"  # written last into a cached bundle: {"who": ..., "sha256": {...}}

# A trading box does not phone home and does not draw progress bars in logs; users may override.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _quiet_loggers() -> None:
    # mlflow configures its logger when imported, so this runs after the import
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


class RegistryError(RuntimeError):
    """A registry operation failed (unknown version/alias, bad bundle, ...)."""


class PromotionRefused(RegistryError):
    """The golden rule refused a promotion; the message names each failed clause with its numbers."""

    def __init__(self, version: str, failures: list[str]) -> None:
        self.version = version
        self.failures = failures
        super().__init__(f"promotion of version {version} refused: " + "; ".join(failures))


# ----------------------------------------------------------------------------------------- manifest
class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemberEntry(_Frozen):
    name: str
    input_kind: str = Field(pattern="^(tabular|stream)$")
    seq_len: int = Field(default=1, ge=1)
    feature_names: list[str]
    onnx: str
    calibration: dict[str, Any] | None = None


class EnsembleEntry(_Frozen):
    weights: dict[str, float]
    floor: float = 0.0
    cap: float = 1.0


class TrainingWindow(_Frozen):
    start_ns: int
    end_ns: int


class BundleManifest(_Frozen):
    """The validated content of ``bundle.json`` (see the module docstring)."""

    format_version: int = FORMAT_VERSION
    feature_names: list[str]
    schema_hash: str
    members: list[MemberEntry]
    ensemble: EnsembleEntry
    training_window: TrainingWindow | None = None
    data_source: str = ""
    hyperparameters: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    code_version: str = ""
    created: str = ""


def read_manifest(bundle_dir: str | os.PathLike[str]) -> BundleManifest:
    """Read and validate ``<bundle_dir>/bundle.json``; checks that every member's ONNX file exists."""
    path = Path(bundle_dir) / MANIFEST
    if not path.is_file():
        raise RegistryError(f"{path}: no bundle manifest")
    try:
        m = BundleManifest.model_validate_json(path.read_bytes())
    except ValueError as e:
        raise RegistryError(f"{path}: invalid bundle manifest: {e}") from None
    if m.format_version != FORMAT_VERSION:
        raise RegistryError(f"{path}: format_version {m.format_version}, expected {FORMAT_VERSION}")
    for mem in m.members:
        if not (Path(bundle_dir) / mem.onnx).is_file():
            raise RegistryError(f"{path}: member {mem.name!r} ONNX file {mem.onnx!r} missing")
        unknown = [f for f in mem.feature_names if f not in set(m.feature_names)]
        if unknown:
            raise RegistryError(f"{path}: member {mem.name!r} reads unknown features {unknown[:5]}")
    return m


def write_manifest(bundle_dir: str | os.PathLike[str], manifest: BundleManifest) -> Path:
    """Write ``bundle.json``; fills ``code_version`` and ``created`` when empty."""
    upd: dict[str, Any] = {}
    if not manifest.code_version:
        upd["code_version"] = code_version()
    if not manifest.created:
        upd["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    manifest = manifest.model_copy(update=upd)
    path = Path(bundle_dir) / MANIFEST
    path.write_text(manifest.model_dump_json(indent=2))
    return path


def code_version() -> str:
    """``git describe --always --dirty`` of the source tree, else the installed package version."""
    here = Path(__file__).resolve().parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    try:
        return metadata.version("orderflow")
    except metadata.PackageNotFoundError:
        return "unknown"


# ------------------------------------------------------------------------------- artifact integrity
def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundle_checksums(bundle_dir: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative path: sha256}`` of every file of a bundle directory (the cache stamp excluded)."""
    root = Path(bundle_dir)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != CACHE_STAMP)
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in files}


def verify_checksums(
    bundle_dir: str | os.PathLike[str], expected: Mapping[str, str], who: str, where: str | None = None
) -> None:
    """Raise RegistryError ``<who>: artifact <file>: ...`` for the first missing or changed file
    (``where``: the location to name, default ``bundle_dir``)."""
    root = Path(bundle_dir)
    where = where or str(root)
    for rel, want in sorted(expected.items()):
        path = root / rel
        if not path.is_file():
            raise RegistryError(f"{who}: artifact {rel}: missing from {where}")
        if sha256_file(path) != want:
            raise RegistryError(
                f"{who}: artifact {rel}: checksum mismatch (file changed or truncated) in {where}"
            )


def check_onnx_loads(path: Path, who: str, rel: str) -> None:
    """Raise RegistryError naming ``rel`` when onnxruntime cannot load the graph (corrupt, truncated)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    try:
        ort.InferenceSession(path.read_bytes(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise RegistryError(
            f"{who}: artifact {rel}: not a loadable ONNX graph (corrupt or truncated): {first}"
        ) from None


def read_stamp(bundle_dir: str | os.PathLike[str]) -> tuple[str, dict[str, str]] | None:
    """(who, checksums) from a cached bundle's stamp, None when absent or unreadable."""
    path = Path(bundle_dir) / CACHE_STAMP
    try:
        doc = json.loads(path.read_text())
        return str(doc["who"]), {str(k): str(v) for k, v in doc["sha256"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def verify_stamped(bundle_dir: str | os.PathLike[str]) -> None:
    """Verify a bundle directory against its cache stamp (no stamp: nothing to verify)."""
    stamp = read_stamp(bundle_dir)
    if stamp is not None:
        verify_checksums(bundle_dir, stamp[1], stamp[0])


# -------------------------------------------------------------------------------------- golden rule
def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _std(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


class GoldenRule(_Frozen):
    """The written promotion rule. All numbers are out of sample, one value per fold.

    A fold is *beaten* when the ensemble's log loss is at least ``margin`` below the best baseline's
    log loss on that fold. Promotion requires: at least ``min_folds_beaten`` folds beaten (and at least
    that many folds); mean ensemble ECE <= ``max_ece``; std of the ensemble log loss across folds <=
    ``max_fold_std``.
    """

    min_folds_beaten: int = Field(default=3, ge=1)
    margin: float = Field(default=0.0, ge=0.0, description="log-loss nats below the best baseline")
    max_ece: float = Field(default=0.05, gt=0.0)
    max_fold_std: float = Field(default=0.05, ge=0.0)

    def check(self, metrics: Mapping[str, Any]) -> list[str]:
        """Failed clauses with their numbers (empty: the rule passes)."""
        ens = metrics.get("ensemble") or {}
        bases = metrics.get("baselines") or {}
        ll = [float(x) for x in ens.get("log_loss") or []]
        if not ll:
            return ["metrics: no ensemble log_loss per fold"]
        if not bases:
            return ["metrics: no baselines"]
        fails: list[str] = []
        for bname, b in bases.items():
            n_b = len(b.get("log_loss") or [])
            if n_b != len(ll):
                return [f"metrics: baseline {bname!r} has {n_b} folds of log_loss, ensemble {len(ll)}"]
        best = [min(float(b["log_loss"][i]) for b in bases.values()) for i in range(len(ll))]
        beaten = sum(1 for e, b in zip(ll, best, strict=True) if e <= b - self.margin)
        if beaten < self.min_folds_beaten:
            pairs = ", ".join(f"{e:.4f} vs {b:.4f}" for e, b in zip(ll, best, strict=True))
            fails.append(
                f"min_folds_beaten: beats the best baseline by >= {self.margin} on {beaten} of {len(ll)} "
                f"folds, needs {self.min_folds_beaten} (ensemble vs best baseline log loss: {pairs})"
            )
        ece = [float(x) for x in ens.get("ece") or []]
        if not ece:
            fails.append("max_ece: no ensemble ece per fold in metrics")
        elif _mean(ece) > self.max_ece:
            fails.append(f"max_ece: mean ECE {_mean(ece):.4f} > {self.max_ece}")
        if _std(ll) > self.max_fold_std:
            fails.append(f"max_fold_std: log-loss std across folds {_std(ll):.4f} > {self.max_fold_std}")
        return fails


# ----------------------------------------------------------------------------------------- registry
def default_registry_location(override: str | os.PathLike[str] | None = None) -> str:
    """``--registry`` value, else ``$ORDERFLOW_REGISTRY``, else ``<user data dir>/orderflow/registry``."""
    chosen = override or os.environ.get(ENV_VAR)
    if chosen:
        return str(chosen)
    return str(Path(platformdirs.user_data_dir("orderflow")) / "registry")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if not isinstance(v, str) else v
    return out


class Registry:
    """MLflow-backed registry of ensemble bundles.

    ``uri_or_dir``: a directory (SQLite ``<dir>/mlflow.db``, artifacts ``<dir>/artifacts``), a
    database URI (``sqlite:///...``, ``postgresql://...``) or a tracking server URL (``http(s)://``);
    ``None`` uses :func:`default_registry_location`.
    """

    def __init__(self, uri_or_dir: str | os.PathLike[str] | None = None) -> None:
        from mlflow import MlflowClient

        _quiet_loggers()
        loc = default_registry_location(uri_or_dir)
        artifact_location: str | None = None
        self.root: Path | None = None  # a directory registry's root; artifacts are found relative to it
        if "://" in loc or loc.startswith("sqlite:"):
            self.uri = loc
            self.cache_dir = Path(platformdirs.user_cache_dir("orderflow")) / "registry-cache"
        else:
            root = self.root = Path(loc).expanduser().resolve()
            (root / "artifacts").mkdir(parents=True, exist_ok=True)
            self.uri = f"sqlite:///{root / 'mlflow.db'}"
            artifact_location = (root / "artifacts").as_uri()
            self.cache_dir = root / "cache"
        with _quiet():
            self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            exp = self.client.get_experiment_by_name(EXPERIMENT_NAME)
            self.experiment_id = (
                exp.experiment_id
                if exp is not None
                else self.client.create_experiment(EXPERIMENT_NAME, artifact_location=artifact_location)
            )

    def __repr__(self) -> str:
        return f"Registry({self.uri!r})"

    # -- writing
    def log_run(
        self,
        experiment: str,
        run_name: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float | None],
        tags: Mapping[str, str] | None = None,
        artifacts: Sequence[Path] = (),
    ) -> str:
        """Log a run that is not a model version (a parameter study, say) in ``experiment``, next to
        the models: parameters, finite metrics, tags and artifact files or directories. Returns the run
        id; the run is marked FAILED if logging breaks half way."""
        from mlflow.entities import Metric, Param, RunTag

        with _quiet():
            exp = self.client.get_experiment_by_name(experiment)
            if exp is not None:
                eid = exp.experiment_id
            else:
                where = None if self.root is None else (self.root / "artifacts" / experiment).as_uri()
                eid = self.client.create_experiment(experiment, artifact_location=where)
            run = self.client.create_run(eid, tags={"mlflow.runName": run_name, **(tags or {})})
            rid = run.info.run_id
            try:
                now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
                plist = [Param(k[:250], str(v)[:6000]) for k, v in _flatten(params).items()]
                for i in range(0, len(plist), 100):
                    self.client.log_batch(rid, params=plist[i : i + 100])
                ms = [Metric(k, float(v), now, 0) for k, v in metrics.items()
                      if v is not None and math.isfinite(float(v))]  # fmt: skip
                self.client.log_batch(rid, metrics=ms)
                self.client.log_batch(rid, tags=[RunTag("code_version", code_version())])
                for a in artifacts:
                    a = Path(a)
                    if a.is_dir():
                        self.client.log_artifacts(rid, str(a), a.name)
                    elif a.is_file():
                        self.client.log_artifact(rid, str(a))
                self.client.set_terminated(rid)
            except Exception:
                self.client.set_terminated(rid, status="FAILED")
                raise
        return str(rid)

    def register(
        self,
        bundle_dir: str | os.PathLike[str],
        name: str = DEFAULT_MODEL_NAME,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Log ``bundle_dir`` as a run (artifacts, params, per-fold metrics) and register a version.

        Returns the new version number as a string.
        """
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException

        m = read_manifest(bundle_dir)
        for mem in m.members:  # a corrupt graph is refused now, not at the first load
            check_onnx_loads(Path(bundle_dir) / mem.onnx, f"bundle {bundle_dir}", mem.onnx)
        checksums = bundle_checksums(bundle_dir)
        vtags = {
            "schema_hash": m.schema_hash,
            "members": ",".join(x.name for x in m.members),
            "code_version": m.code_version or code_version(),
            "data_source": m.data_source,
            **(tags or {}),
        }
        params = {
            "schema_hash": m.schema_hash,
            "n_features": str(len(m.feature_names)),
            "data_source": m.data_source,
            "code_version": vtags["code_version"],
            **(
                {
                    "train_start_ns": str(m.training_window.start_ns),
                    "train_end_ns": str(m.training_window.end_ns),
                }
                if m.training_window
                else {}
            ),
            **{f"ensemble.{k}": v for k, v in _flatten(m.ensemble.model_dump()).items()},
            **{f"hp.{k}": v for k, v in _flatten(m.hyperparameters).items()},
        }
        now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        metrics = [Metric(k, v, now, step) for k, v, step in _metric_rows(m.metrics)]
        with _quiet():
            run = self.client.create_run(self.experiment_id, tags={"mlflow.runName": f"{name}-bundle"})
            rid = run.info.run_id
            try:
                source, location = self._store_artifacts(rid, run.info.artifact_uri, bundle_dir, checksums)
                plist = [Param(k[:250], str(v)[:6000]) for k, v in params.items()]
                for i in range(0, len(plist), 100):
                    self.client.log_batch(rid, params=plist[i : i + 100])
                for i in range(0, len(metrics), 500):
                    self.client.log_batch(rid, metrics=metrics[i : i + 500])
                self.client.log_batch(rid, tags=[RunTag(k, str(v)) for k, v in vtags.items()])
                self.client.set_terminated(rid)
            except Exception:
                self.client.set_terminated(rid, status="FAILED")
                raise
            try:
                self.client.get_registered_model(name)
            except MlflowException:
                self.client.create_registered_model(name)
            integrity = {CHECKSUMS_TAG: json.dumps(checksums, sort_keys=True)}
            if location is not None:
                integrity[LOCATION_TAG] = location
            mv = self.client.create_model_version(
                name, source=source, run_id=rid, tags={**vtags, **integrity}
            )
        log.info("registered %s version %s (run %s, schema %s)", name, mv.version, rid, m.schema_hash[:12])
        return str(mv.version)

    def _store_artifacts(
        self, run_id: str, artifact_uri: str, bundle_dir: str | os.PathLike[str], checksums: Mapping[str, str]
    ) -> tuple[str, str | None]:
        """Store the bundle of a run; returns (source URI, location relative to the root or None).

        A directory registry copies the bundle under ``<root>/artifacts/<run>/artifacts/bundle`` itself:
        the experiment's stored artifact location is absolute and, in a copied registry, still names
        the original directory."""
        if self.root is None:
            self.client.log_artifacts(run_id, str(bundle_dir), "bundle")
            return f"{artifact_uri}/bundle", None
        rel = f"artifacts/{run_id}/artifacts/bundle"
        dest = self.root / rel
        shutil.copytree(bundle_dir, dest, ignore=shutil.ignore_patterns(CACHE_STAMP))
        verify_checksums(dest, checksums, f"registering into {self.root}")
        return dest.as_uri(), rel

    def promote(
        self,
        version: str | int,
        rule: GoldenRule | None = None,
        *,
        force: bool = False,
        name: str = DEFAULT_MODEL_NAME,
    ) -> str:
        """Apply ``rule`` (default :class:`GoldenRule`) and make ``version`` the champion.

        Raises PromotionRefused naming the failed clauses unless ``force`` (then logs a warning).
        The former champion becomes alias ``previous``.
        """
        version = str(version)
        verdict = self.evaluate(version, rule, name=name)
        if not verdict["passed"]:
            if not force:
                raise PromotionRefused(version, verdict["failures"])
            log.warning(
                "forcing promotion of %s v%s despite: %s", name, version, "; ".join(verdict["failures"])
            )
        current = self.resolve(CHAMPION, name)
        with _quiet():
            if current is not None and current != version:
                self.client.set_registered_model_alias(name, PREVIOUS, current)
            self.client.set_registered_model_alias(name, CHAMPION, version)
            self.client.set_model_version_tag(
                name, version, "promoted_forced", str(bool(force and not verdict["passed"]))
            )
        log.info("promoted %s v%s to %s (previous: %s)", name, version, CHAMPION, current)
        return version

    def rollback(self, name: str = DEFAULT_MODEL_NAME) -> str:
        """Move ``champion`` back to ``previous`` and drop the ``previous`` alias; returns the version."""
        prev = self.resolve(PREVIOUS, name)
        if prev is None:
            raise RegistryError(f"{name}: no alias {PREVIOUS!r} to roll back to")
        current = self.resolve(CHAMPION, name)
        with _quiet():
            self.client.set_registered_model_alias(name, CHAMPION, prev)
            self.client.delete_registered_model_alias(name, PREVIOUS)
            if current is not None:
                self.client.set_model_version_tag(name, current, "rolled_back", "true")
        log.warning("rolled back %s champion from v%s to v%s", name, current, prev)
        return prev

    # -- reading
    def resolve(self, version_or_alias: str | int, name: str = DEFAULT_MODEL_NAME) -> str | None:
        """The version number for a version or alias; None when the alias is unset."""
        from mlflow.exceptions import MlflowException

        s = str(version_or_alias)
        with _quiet():
            try:
                if s.isdigit():
                    return str(self.client.get_model_version(name, s).version)
                return str(self.client.get_model_version_by_alias(name, s).version)
            except MlflowException:
                if s.isdigit():
                    raise RegistryError(f"{name}: no version {s}") from None
                return None

    def ls(self, name: str = DEFAULT_MODEL_NAME) -> list[dict[str, Any]]:
        """Every version, newest first: version, created, members, schema_hash, aliases, metrics summary."""
        with _quiet():
            versions = self.client.search_model_versions(f"name='{name}'")
            # search results carry no aliases on every backend: take them from the registered model
            by_version: dict[str, list[str]] = {}
            if versions:
                for alias, ver in self.client.get_registered_model(name).aliases.items():
                    by_version.setdefault(str(ver), []).append(alias)
            rows = []
            for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
                run_metrics = self.client.get_run(mv.run_id).data.metrics if mv.run_id else {}
                rows.append(
                    {
                        "version": str(mv.version),
                        "created": dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.UTC).isoformat(
                            timespec="seconds"
                        ),
                        "members": [x for x in (mv.tags.get("members") or "").split(",") if x],
                        "schema_hash": mv.tags.get("schema_hash", ""),
                        "code_version": mv.tags.get("code_version", ""),
                        "aliases": sorted(by_version.get(str(mv.version), [])),
                        "metrics": {k: v for k, v in sorted(run_metrics.items()) if k.endswith(".mean")},
                    }
                )
        return rows

    def evaluate(
        self, version: str | int, rule: GoldenRule | None = None, *, name: str = DEFAULT_MODEL_NAME
    ) -> dict[str, Any]:
        """Stored out-of-sample metrics of ``version`` and the golden-rule verdict."""
        rule = rule or GoldenRule()
        v = self.resolve(version, name)
        if v is None:
            raise RegistryError(f"{name}: no version or alias {version!r}")
        m = read_manifest(self.load_bundle(v, name))
        fails = rule.check(m.metrics)
        return {
            "version": v,
            "schema_hash": m.schema_hash,
            "metrics": m.metrics,
            "rule": rule.model_dump(),
            "passed": not fails,
            "failures": fails,
        }

    def load_bundle(self, version_or_alias: str | int = CHAMPION, name: str = DEFAULT_MODEL_NAME) -> Path:
        """Local directory holding the verified bundle of a version or alias.

        The cached copy is checked against the checksums recorded at registration on every call and
        rebuilt from the registry's artifacts when it does not match; a broken artifact raises
        RegistryError naming the version and the file, and never leaves a cache entry behind."""
        v = self.resolve(version_or_alias, name)
        if v is None:
            raise RegistryError(f"{name}: alias {version_or_alias!r} is not set")
        who = f"{name} version {v}"
        with _quiet():
            mv = self.client.get_model_version(name, v)
        recorded = mv.tags.get(CHECKSUMS_TAG)
        expected = json.loads(recorded) if recorded else None
        dest = self.cache_dir / name / f"v{v}"
        if _cache_matches(dest, expected):
            return dest
        tmp = dest.with_name(f".v{v}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            staged, where = self._materialise(mv, who, tmp)
            _check_bundle(staged, expected, who, where)
            stamp = {"who": who, "sha256": expected or bundle_checksums(staged)}
            (staged / CACHE_STAMP).write_text(json.dumps(stamp, sort_keys=True))
            swapped = _swap_in(staged, dest, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not swapped and not _cache_matches(dest, expected):  # another process's copy is in the way
            raise RegistryError(f"{who}: cache {dest} changed while it was being rebuilt; load it again")
        return dest

    def _materialise(self, mv: Any, who: str, tmp: Path) -> tuple[Path, str]:
        """Copy (directory registry) or download (server) the version's bundle into ``tmp``; returns
        the copy and where it came from."""
        src = self._local_artifacts(mv, who)
        if src is not None:
            staged = tmp / "bundle"
            shutil.copytree(src, staged, ignore=shutil.ignore_patterns(CACHE_STAMP))
            return staged, str(src)
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        try:
            with _quiet():
                got = mlflow.artifacts.download_artifacts(
                    run_id=mv.run_id, artifact_path="bundle", dst_path=str(tmp), tracking_uri=self.uri
                )
        except (MlflowException, OSError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise RegistryError(f"{who}: artifacts of run {mv.run_id} not downloadable: {first}") from None
        return Path(got), str(mv.source)

    def _local_artifacts(self, mv: Any, who: str) -> Path | None:
        """The bundle directory of a version in a directory registry, found relative to the root
        (None: not a directory registry). Versions without a recorded location (registered before
        it was recorded) try the layout this class writes, then the stored absolute source."""
        if self.root is None:
            return None
        rel = mv.tags.get(LOCATION_TAG)
        layout = self.root / "artifacts" / mv.run_id / "artifacts" / "bundle"
        candidates = [self.root / rel] if rel else [layout]
        if not rel and str(mv.source).startswith("file://"):
            from urllib.parse import unquote, urlparse

            candidates.append(Path(unquote(urlparse(str(mv.source)).path)))
        for c in candidates:
            if c.is_dir():
                return c
        raise RegistryError(f"{who}: artifacts missing: no directory {candidates[0]}")


def _metric_rows(metrics: Mapping[str, Any]) -> Iterator[tuple[str, float, int]]:
    """(key, value, fold) rows plus ``<key>.mean`` summaries from the bundle's metrics tree."""
    groups = [("ensemble", {"": metrics.get("ensemble") or {}})]
    groups += [("member", metrics.get("members") or {}), ("baseline", metrics.get("baselines") or {})]
    for prefix, table in groups:
        for who, ms in table.items():
            for metric, vals in (ms or {}).items():
                base = f"{prefix}.{who}.{metric}" if who else f"{prefix}.{metric}"
                seq = vals if isinstance(vals, list) else [vals]
                nums = [float(x) for x in seq if isinstance(x, int | float) and math.isfinite(float(x))]
                for i, x in enumerate(nums):
                    yield base, x, i
                if nums:
                    yield f"{base}.mean", _mean(nums), 0


def _cache_matches(dest: Path, expected: Mapping[str, str] | None) -> bool:
    """True when ``dest`` is a complete cached copy (stamp written last) whose files match."""
    stamp = read_stamp(dest)
    if stamp is None or (expected is not None and stamp[1] != dict(expected)):
        return False
    try:
        verify_checksums(dest, stamp[1], stamp[0])
    except RegistryError as e:
        log.warning("rebuilding the cached bundle: %s", e)
        return False
    return True


def _check_bundle(staged: Path, expected: Mapping[str, str] | None, who: str, where: str) -> None:
    """The registered checksums when recorded, else (older versions) every member ONNX loadable."""
    if expected is not None:
        verify_checksums(staged, expected, who, where)
    try:
        m = read_manifest(staged)
    except RegistryError as e:
        raise RegistryError(f"{who}: {str(e).replace(str(staged), where)}") from None
    if expected is None:
        for mem in m.members:
            check_onnx_loads(staged / mem.onnx, who, mem.onnx)


def _swap_in(staged: Path, dest: Path, tmp: Path) -> bool:
    """Replace ``dest`` by the complete ``staged`` directory (renames on one file system); False when
    another process's copy took the place first."""
    if dest.exists():
        with contextlib.suppress(OSError):
            dest.rename(tmp / "stale")
    try:
        staged.rename(dest)
    except OSError:
        if not dest.is_dir():
            raise
        return False
    return True
