"""Typed, frozen configuration.

Sources, later ones winning:

1. the defaults in the models below (embedded: a fresh install runs with no files at all);
2. YAML files (``*.yaml`` and ``*.yml``, read in name order) in the config directory (``--config DIR``,
   ``ORDERFLOW_CONFIG``, or the repository's ``config/``): each file holds one or more top-level
   sections (``data:``, ``feed:``, ...); other files there are named in a warning, never read;
3. environment variables ``ORDERFLOW__<SECTION>__<KEY>[__<SUBKEY>]=value`` (value parsed as YAML),
   e.g. ``ORDERFLOW__QUALITY__MAX_GAPS=3``; plus ``ORDERFLOW_STORE`` for the store directory.

Unknown keys anywhere are errors that name the key and the file or variable that set it; a bad
environment override (not YAML, out of range, a section set both whole and key by key) is one line
naming the variable. Secrets are
never read from these files: API keys come from the environment or an owner-only secrets file
(:mod:`orderflow.secrets`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import platformdirs
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orderflow.adapters.binance.common.endpoints import BinanceEndpoints, FeedConfig, default_endpoints
from orderflow.adapters.binance.common.venues import VENUES
from orderflow.alerts.config import AlertsConfig
from orderflow.backtest.config import VenueAccountConfig, WalkForwardConfig
from orderflow.data.config import QualityThresholds, SimulatorConfig
from orderflow.execution.exec_config import ExecutionConfig
from orderflow.features.config import FeatureConfig, LabelConfig, SelectionConfig
from orderflow.models.config import ModelsConfig
from orderflow.risk.config import RiskConfig
from orderflow.strategy.config import StrategyConfig
from orderflow.telemetry.config import MonitorConfig

log = logging.getLogger(__name__)
REPO_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
ENV_PREFIX = "ORDERFLOW__"


class ConfigError(ValueError):
    pass


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Frozen):
    store: str | None = Field(None, description="store directory; ORDERFLOW_STORE or --store override it")
    raw_dir: str | None = Field(
        None, description="where `data record` writes raw gz files; default <store>/../raw"
    )
    fear_greed_url: str = Field(
        "https://api.alternative.me", description="base URL of the fear & greed API (`data backfill-context`)"
    )


class LoggingConfig(_Frozen):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = False


class BinanceConfig(_Frozen):
    testnet: bool = False
    usdm: BinanceEndpoints = default_endpoints("usdm")
    spot: BinanceEndpoints = default_endpoints("spot")

    def endpoints(self, market: str) -> BinanceEndpoints:
        if market not in VENUES:
            raise ConfigError(f"unknown market {market!r}: use usdm or spot")
        if self.testnet:
            return default_endpoints(market, testnet=True)  # type: ignore[arg-type]
        return self.usdm if market == "usdm" else self.spot


class Config(_Frozen):
    data: DataConfig = DataConfig()
    logging: LoggingConfig = LoggingConfig()
    binance: BinanceConfig = BinanceConfig()
    feed: FeedConfig = FeedConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    quality: QualityThresholds = QualityThresholds()
    features: FeatureConfig = FeatureConfig()
    labels: LabelConfig = LabelConfig()
    selection: SelectionConfig = SelectionConfig()
    models: ModelsConfig = ModelsConfig()
    risk: RiskConfig = RiskConfig()
    strategy: StrategyConfig = StrategyConfig()
    backtest: VenueAccountConfig = VenueAccountConfig()
    execution: ExecutionConfig = ExecutionConfig()
    walkforward: WalkForwardConfig = WalkForwardConfig()
    monitor: MonitorConfig = MonitorConfig()
    alerts: AlertsConfig = AlertsConfig()

    def store_dir(self, override: str | None = None) -> Path:
        chosen = override or os.environ.get("ORDERFLOW_STORE") or self.data.store
        if chosen:
            return Path(chosen).expanduser()
        return Path(platformdirs.user_data_dir("orderflow")) / "store"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= 80 else raw[:77] + "...")


def _env_overrides(environ: dict[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The overrides as nested sections, and which variable set each path. A bad override (not YAML,
    or a section set both as a value and key by key) is a one-line ConfigError naming the variable."""
    out: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for key in sorted(k for k in environ if k.startswith(ENV_PREFIX)):
        raw = environ[key]
        path = tuple(p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p)
        if not path:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as e:
            what = str(getattr(e, "problem", None) or "parse error")
            raise ConfigError(f"environment variable {key}={_shown(raw)}: not valid YAML ({what})") from None
        for other_path, other in origin.items():  # one is a section the other sets a key inside
            n = min(len(path), len(other_path))
            if other_path[:n] == path[:n]:
                raise ConfigError(
                    f"environment variables {other} and {key} both set {'.'.join(path[:n])}: "
                    f"set the whole section or its keys one by one, not both"
                )
        cur = out
        for p in path[:-1]:
            cur = cur.setdefault(p, {})
        cur[path[-1]] = value
        origin[path] = key
    return out, origin


def _validate_env(over: dict[str, Any], origin: dict[tuple[str, ...], str], env: dict[str, str]) -> None:
    """Validate the overrides alone; each error names the variable that set the key, with its value."""
    try:
        Config.model_validate(over)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            keys = tuple(str(x) for x in err["loc"])
            var = next((v for p, v in origin.items() if keys[: len(p)] == p or p[: len(keys)] == keys), None)
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            where = "ORDERFLOW__..." if var is None else f"{var}={_shown(env[var])}"
            problems.append(f"environment variable {where}: {'.'.join(keys)}: {msg}")
        raise ConfigError("; ".join(problems)) from None


def config_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    chosen = explicit or os.environ.get("ORDERFLOW_CONFIG")
    if chosen:
        p = Path(chosen).expanduser()
        if not p.is_dir():
            raise ConfigError(f"config directory {p} does not exist")
        return p
    return REPO_CONFIG_DIR if REPO_CONFIG_DIR.is_dir() else None


def load_config(
    directory: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None
) -> Config:
    """Load defaults <- YAML files <- environment. Raises ConfigError naming the bad key and its source."""
    env = dict(os.environ if environ is None else environ)
    merged: dict[str, Any] = {}
    d = config_dir(directory)
    sources: list[str] = []
    for f in _config_files(d) if d is not None else []:
        try:
            content = yaml.safe_load(f.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{f}: not valid YAML: {e}") from None
        if not isinstance(content, dict):
            raise ConfigError(f"{f}: top level must be a mapping of sections")
        _validate(content, str(f))
        merged = _merge(merged, content)
        sources.append(str(f))
    over, origin = _env_overrides(env)
    if over:
        _validate_env(over, origin, env)
        merged = _merge(merged, over)
    return _validate(merged, " + ".join(sources + (["environment"] if over else [])) or "defaults")


def _config_files(d: Path) -> list[Path]:
    """The YAML files of config directory ``d``: ``*.yaml`` and ``*.yml`` (any case), in name order.
    ``risk.yaml`` next to ``risk.yml`` is an error naming both (which one wins would be a guess). Any
    other file there is read by nobody: a warning names it (not an error: editor backups such as
    ``risk.yaml~`` or ``risk.yaml.bak`` are common and harmless, but a file meant as config and given
    another suffix must not pass unnoticed)."""
    files: list[Path] = []
    by_stem: dict[str, Path] = {}
    for f in sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")):
        if f.suffix.lower() not in (".yaml", ".yml"):
            log.warning("config directory %s: %s is not read (only *.yaml and *.yml are)", d, f.name)
            continue
        if f.stem in by_stem:
            raise ConfigError(f"config directory {d}: both {by_stem[f.stem].name} and {f.name}: keep one")
        by_stem[f.stem] = f
        files.append(f)
    return files


def _validate(data: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {loc}: {msg}")
        if len(lines) == 1:  # one problem: one line naming it
            raise ConfigError(f"invalid configuration in {source}: {lines[0].strip()}") from None
        raise ConfigError(f"invalid configuration in {source}:\n" + "\n".join(lines)) from None


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
