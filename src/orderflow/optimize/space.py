"""The search space: a YAML file over config keys, checked against the pydantic config models.

The file has two blocks (``config/optimize/space.yaml`` is the commented example)::

    study:                       # optional: how trials are scored and judged (StudySettings)
      objective: sharpe
      min_trades: 10
    space:                       # dotted config key -> its range, in sampling order
      strategy.confidence_gate: {low: 0.5, high: 0.9}
      risk.max_loss_per_trade: {low: 0.01, high: 0.03, log: true}
      strategy.timeout_s: {low: 30, high: 180, step: 30}
      risk.max_adds: {low: 0, high: 3}                        # an int field: integer steps
      execution.entry_style: {choices: [market, passive]}
      execution.passive_ttl_s: {low: 2, high: 30, when: {execution.entry_style: passive}}
      strategy.w_ofi: {low: 0.2, high: 0.8}
      strategy.w_ai: {one_minus: strategy.w_ofi}              # kept so that w_ofi + w_ai = 1

Rules, each refused by name in one line (:class:`SpaceError`):

- a key names a field of :class:`orderflow.config.Config` (``section.key`` or ``section.sub.key``);
  an unknown section or key, or a key that is a whole section, is refused;
- two levels of cost share one study. **Level (a)**, the sections a backtest reads (``strategy``,
  ``risk``, ``execution``, ``backtest``): a trial re-runs only the backtest over cached out-of-sample
  probabilities. **Level (b)**, ``features``, ``labels`` and ``models``: a trial recomputes the
  features and labels and retrains the members per window (:mod:`orderflow.optimize.recompute`),
  cached by what they depend on. ``walkforward`` keys are refused: the test windows are the frame
  every trial of a study is scored on (their return series must line up for the PBO); so are
  ``features.tick_size`` and ``features.futures``, which the instrument and venue set;
- ``low``/``high`` (and every ``choices`` entry) must pass the field's own constraints (``ge``, ``lt``,
  the type: an int field takes integer bounds), ``low < high``, ``log`` needs ``low > 0`` and no
  ``step``; a field that is neither int nor float needs ``choices`` (scalars only);
- ``when: {KEY: VALUE or [VALUES]}`` samples the key only when an earlier categorical key took one of
  those values (otherwise the config keeps its value); ``one_minus: KEY`` sets ``1 - KEY``.

A sampled point can still break a rule between fields (``risk.confidence_full`` above
``risk.confidence_floor``): :meth:`SearchSpace.apply` raises :class:`InvalidPoint` naming it and the
trial is recorded as failed with that reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from orderflow.config import Config

if TYPE_CHECKING:
    import optuna

LEVEL_A = ("strategy", "risk", "execution", "backtest")  # re-run only the backtest
LEVEL_B = ("features", "labels", "models")  # recompute features and labels, retrain per window
FIXED = {"features.tick_size": "the instrument sets it", "features.futures": "the venue sets it"}
SPEC_KEYS = {"low", "high", "step", "log", "choices", "when", "one_minus"}
Scalar = bool | int | float | str


class SpaceError(ValueError):
    """A search-space file that cannot be used; the message names the file and the key."""


class InvalidPoint(ValueError):
    """A sampled point the config models refuse (a rule between fields); the trial fails with it."""


class StudySettings(BaseModel):
    """How trials are scored and judged (the space file's ``study:`` block; every key optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objective: Literal["sharpe", "sortino", "calmar", "net_pnl", "pnl_dd"] = Field(
        "sharpe",
        description="per-window figure: mean - lam * std over the test windows; pnl_dd: two objectives "
        "(net PnL after costs up, max drawdown down) for NSGA-II",
    )
    lam: float = Field(0.5, ge=0, description="penalty on the spread of the per-window figures")
    min_trades: int = Field(5, ge=0, description="a trial with fewer out-of-sample trades is infeasible")
    holdout_fraction: float = Field(
        0.2, ge=0, lt=1, description="final share of the data the search never sees (0: none)"
    )
    holdout_hours: float | None = Field(None, gt=0, description="final hours held back (wins over fraction)")
    period_minutes: float = Field(5.0, gt=0, description="bar of the return series PBO and DSR read")
    cscv_blocks: int = Field(16, ge=2, le=24, description="CSCV blocks S for the PBO (even)")
    pbo_max: float = Field(0.5, ge=0, le=1, description="export refused when the PBO is above this")
    dsr_min: float = Field(0.95, ge=0, le=1, description="export refused when the DSR is below this")
    pruner: Literal["median", "wilcoxon", "none"] = Field(
        "median", description="stops a trial early on its per-window intermediate values"
    )
    startup_trials: int = Field(5, ge=0, description="trials before the pruner may stop any")
    heartbeat_s: float = Field(
        30.0, ge=1, le=3600, description="RDB storages: a trial silent for 3 heartbeats is failed and retried"
    )

    @model_validator(mode="after")
    def _even(self) -> StudySettings:
        if self.cscv_blocks % 2:
            raise ValueError(f"cscv_blocks must be even, got {self.cscv_blocks}")
        return self


@dataclass(frozen=True)
class Param:
    """One searched key. ``kind``: float, int, categorical or one_minus (``1 - of``)."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Scalar, ...] = ()
    when: tuple[tuple[str, tuple[Scalar, ...]], ...] = ()
    of: str | None = None

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    settings: StudySettings
    source: str = "space"

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    @property
    def recomputes(self) -> bool:
        """Whether a trial recomputes features or retrains (a level (b) key is searched)."""
        return any(p.section in LEVEL_B for p in self.params)

    @property
    def multi_objective(self) -> bool:
        return self.settings.objective == "pnl_dd"

    def fingerprint(self) -> str:
        """A hash of the parameters and settings: a study resumes only with the space it started with."""
        blob = json.dumps([[asdict(p) for p in self.params], self.settings.model_dump()], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """One point: dotted key -> value (conditional keys whose condition fails are absent)."""
        values: dict[str, Any] = {}
        for p in self.params:
            if any(values.get(k, _MISSING) not in vs for k, vs in p.when):
                continue
            if p.kind == "float":
                assert p.low is not None and p.high is not None
                values[p.key] = trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)
            elif p.kind == "int":
                assert p.low is not None and p.high is not None
                values[p.key] = trial.suggest_int(
                    p.key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log
                )
            elif p.kind == "categorical":
                values[p.key] = trial.suggest_categorical(p.key, list(p.choices))
            elif p.of in values:  # one_minus
                values[p.key] = 1.0 - float(values[p.of])
        return values

    def apply(self, cfg: Config, values: dict[str, Any]) -> Config:
        """``cfg`` with ``values`` set; :class:`InvalidPoint` when the models refuse the combination."""
        return apply_values(cfg, values)


_MISSING = object()


def apply_values(cfg: Config, values: dict[str, Any]) -> Config:
    """``cfg`` with the dotted keys of ``values`` set, validated again as a whole."""
    data = cfg.model_dump()
    for key, v in values.items():
        cur = data
        *head, last = key.split(".")
        for part in head:
            cur = cur[part]
        cur[last] = v
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        msgs = [f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}".lstrip(": ") for err in e.errors()]
        raise InvalidPoint("; ".join(msgs)) from None


def _field(key: str, where: str) -> tuple[Any, Any]:
    """The field's annotation and metadata (constraints) of dotted ``key``, or a SpaceError."""
    parts = key.split(".")
    section = parts[0]
    if section not in Config.model_fields:
        raise SpaceError(f"{where}: unknown section {section!r} (sections: {', '.join(Config.model_fields)})")
    if section == "walkforward":
        raise SpaceError(
            f"{where}: walkforward keys move the test windows every trial is scored on (their returns "
            "must line up for the PBO); run one study per window layout"
        )
    if section not in LEVEL_A + LEVEL_B:
        raise SpaceError(
            f"{where}: the {section} section is not searchable; search {', '.join(LEVEL_A + LEVEL_B)} keys"
        )
    if key in FIXED:
        raise SpaceError(f"{where}: {key} is not searchable ({FIXED[key]})")
    if len(parts) < 2:
        raise SpaceError(f"{where}: {section} is a whole section; name one of its keys")
    model: type[BaseModel] = Config
    ann: Any = None
    metadata: list[Any] = []
    for i, part in enumerate(parts):
        fi = model.model_fields.get(part)
        if fi is None:
            owner = ".".join(parts[:i])
            raise SpaceError(f"{where}: unknown key ({owner} has no key {part!r})")
        ann, metadata = fi.annotation, list(fi.metadata)
        is_model = isinstance(ann, type) and issubclass(ann, BaseModel)
        if i < len(parts) - 1:
            if not is_model:
                raise SpaceError(f"{where}: {'.'.join(parts[: i + 1])} is a value, not a section")
            model = ann
        elif is_model:
            raise SpaceError(f"{where}: {key} is a whole section; name one of its keys")
    return ann, metadata


def _check_value(adapter: TypeAdapter[Any], value: Any, what: str, where: str) -> None:
    try:
        adapter.validate_python(value, strict=isinstance(value, bool))
    except ValidationError as e:
        raise SpaceError(f"{where}: {what} {value!r} is out of range ({e.errors()[0]['msg']})") from None


def _param(key: str, spec: Any, earlier: dict[str, Param], where: str) -> Param:
    if not isinstance(spec, dict):
        raise SpaceError(f"{where}: want a mapping such as {{low: 0.5, high: 0.9}}, got {spec!r}")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise SpaceError(f"{where}: unknown entry {unknown[0]!r} (use {', '.join(sorted(SPEC_KEYS))})")
    ann, metadata = _field(key, where)
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[(ann, *metadata)] if metadata else ann)
    when = _when(spec.get("when"), earlier, where)
    if "one_minus" in spec:
        of = spec["one_minus"]
        parent = earlier.get(of) if isinstance(of, str) else None
        if parent is None or parent.kind != "float":
            raise SpaceError(f"{where}: one_minus {of!r} must name an earlier float key of the space")
        if set(spec) - {"one_minus", "when"}:
            raise SpaceError(f"{where}: one_minus takes no other entry than when")
        assert parent.low is not None and parent.high is not None
        for what, v in (("1 - low", 1.0 - parent.high), ("1 - high", 1.0 - parent.low)):
            _check_value(adapter, v, what, where)
        return Param(key, "one_minus", of=of, when=when or parent.when)
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: choices must be a non-empty list, got {choices!r}")
        if set(spec) - {"choices", "when"}:
            raise SpaceError(f"{where}: choices take no low, high, step or log")
        for c in choices:
            if not isinstance(c, bool | int | float | str):
                raise SpaceError(f"{where}: choice {c!r} is not a scalar (number, string, true/false)")
            _check_value(adapter, c, "choice", where)
        return Param(key, "categorical", choices=tuple(choices), when=when)
    kind = "int" if ann is int else "float" if ann is float else None
    if kind is None:
        raise SpaceError(f"{where}: {key} is not a number ({getattr(ann, '__name__', ann)}); give choices")
    if "low" not in spec or "high" not in spec:
        raise SpaceError(f"{where}: give low and high (or choices)")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    for what, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise SpaceError(f"{where}: {what} must be a number, got {v!r}")
        if kind == "int" and not isinstance(v, int):
            raise SpaceError(f"{where}: {key} is an integer key; {what} {v!r} is not an integer")
        _check_value(adapter, v, what, where)
    if not low < high:
        raise SpaceError(f"{where}: low {low!r} must be below high {high!r}")
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: log must be true or false, got {log!r}")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise SpaceError(f"{where}: step must be a number > 0, got {step!r}")
        if kind == "int" and not isinstance(step, int):
            raise SpaceError(f"{where}: {key} is an integer key; step {step!r} is not an integer")
        if log:
            raise SpaceError(f"{where}: log and step do not go together")
    if log and low <= 0:
        raise SpaceError(f"{where}: log needs low > 0, got {low!r}")
    return Param(key, kind, float(low), float(high), None if step is None else float(step), log, when=when)


def _when(spec: Any, earlier: dict[str, Param], where: str) -> tuple[tuple[str, tuple[Scalar, ...]], ...]:
    if spec is None:
        return ()
    if not isinstance(spec, dict) or not spec:
        raise SpaceError(f"{where}: when must map an earlier key to a value or a list, got {spec!r}")
    out = []
    for k, v in spec.items():
        parent = earlier.get(k)
        if parent is None or parent.kind != "categorical":
            raise SpaceError(f"{where}: when {k!r}: not an earlier categorical key of the space")
        vs = tuple(v) if isinstance(v, list) else (v,)
        bad = [x for x in vs if x not in parent.choices]
        if bad:
            raise SpaceError(
                f"{where}: when {k}: {bad[0]!r} is not one of its choices {list(parent.choices)}"
            )
        out.append((k, vs))
    return tuple(out)


def parse_space(data: Any, source: str = "space") -> SearchSpace:
    """A :class:`SearchSpace` from the file's parsed YAML (module docstring)."""
    if not isinstance(data, dict):
        raise SpaceError(f"{source}: want a mapping with a space: block")
    extra = sorted(set(data) - {"study", "space"})
    if extra:
        raise SpaceError(f"{source}: unknown block {extra[0]!r} (use study: and space:)")
    try:
        settings = StudySettings.model_validate(data.get("study") or {})
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise SpaceError(f"{source}: study.{loc}: {msg}".replace("study.: ", "study: ")) from None
    raw = data.get("space")
    if not isinstance(raw, dict) or not raw:
        raise SpaceError(f"{source}: the space: block must map at least one config key to its range")
    params: dict[str, Param] = {}
    for key, spec in raw.items():
        params[str(key)] = _param(str(key), spec, params, f"{source}: {key}")
    return SearchSpace(tuple(params.values()), settings, source)


def load_space(path: str | Path) -> SearchSpace:
    """Read and check a space file (module docstring); :class:`SpaceError` in one line otherwise."""
    p = Path(path)
    if not p.is_file():
        raise SpaceError(f"{p}: no such space file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpaceError(f"{p}: not valid YAML ({getattr(e, 'problem', None) or 'parse error'})") from None
    return parse_space(data, str(p))
