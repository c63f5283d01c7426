"""The ``alerts:`` section (``config/alerts.yaml``): channels by URL, routing by severity, the rules, the
anomaly detectors, Telegram commands, the report schedule and delivery retries.

Rules are on by default with the thresholds below; channels are none by default (nothing is sent until
one is configured). Unknown keys are errors, as in every section. A channel URL is an apprise URL
(``mailto://``, ``tgram://``, ``twilio://``, ``json://``, ``slack://``, ``ntfy://``...) in which
``${NAME}`` stands for a secret: it is read from the environment variable ``NAME``, else from the
``[alerts]`` table of the owner-only secrets file (``$ORDERFLOW_SECRETS_FILE``, key ``name`` in lower
case), and registered for log redaction. :func:`resolve_channels` does that at the alerter's start and
refuses, in one line naming the channel, a URL whose secret is missing.

This module holds only models (it sits below the app config, which includes the section); the
alerter's behaviour is in the rest of :mod:`orderflow.alerts`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orderflow.secrets import SECRETS_FILE_ENV, SecretsError, check_owner_only, register_secret

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
_SECRET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- channels and delivery -------------------------------------------------------------------------
class ChannelConfig(_Frozen):
    url: str = Field(description="an apprise URL; ${NAME} is a secret from the environment or secrets file")
    digest_s: float = Field(
        0.0,
        ge=0,
        description="batch this channel's messages into one every digest_s seconds (0: each at once)",
    )


class RoutingConfig(_Frozen):
    """Which channels each severity goes to."""

    info: tuple[str, ...] = ()
    warning: tuple[str, ...] = ()
    critical: tuple[str, ...] = ()

    def channels(self, severity: str) -> tuple[str, ...]:
        return tuple(getattr(self, severity))


class RetryConfig(_Frozen):
    """How a failed delivery is retried: ``attempts`` tries in all, waiting ``backoff_s`` after the
    first failure and twice as long after each next one, at most ``max_backoff_s``."""

    attempts: int = Field(8, ge=1, le=100, description="tries per delivery, then it is marked failed")
    backoff_s: float = Field(2.0, gt=0, le=3600, description="wait after the first failure, doubling")
    max_backoff_s: float = Field(300.0, gt=0, le=86400, description="longest wait between two tries")
    timeout_s: float = Field(10.0, gt=0, le=300, description="socket connect and read timeout per send")

    @model_validator(mode="after")
    def _order(self) -> RetryConfig:
        if self.max_backoff_s < self.backoff_s:
            raise ValueError(f"max_backoff_s {self.max_backoff_s} is below backoff_s {self.backoff_s}")
        return self

    def delay_s(self, tries: int) -> float:
        """The wait after the ``tries``-th failed try (1: ``backoff_s``, 2: twice that, ... capped)."""
        return min(self.backoff_s * 2.0 ** max(0, tries - 1), self.max_backoff_s)


# -- rules -----------------------------------------------------------------------------------------
class RuleBase(_Frozen):
    enabled: bool = True
    severity: Severity = "warning"
    cooldown_s: float = Field(
        300.0, ge=0, description="a key that re-triggers within this time after it resolved reopens silently"
    )
    escalate_after_s: float | None = Field(
        900.0, gt=0, description="an incident still open after this long is escalated (null: never)"
    )
    max_escalations: int = Field(2, ge=0, description="escalations of one incident at most")


class EventRule(RuleBase):
    """A rule fired by events: its incident stays open while they keep coming and resolves after
    ``quiet_s`` without one."""

    quiet_s: float = Field(
        120.0, gt=0, description="the incident resolves after this long without a new event"
    )


class DrawdownBreakerRule(RuleBase):
    severity: Severity = "critical"


class KillSwitchRule(RuleBase):
    severity: Severity = "critical"
    escalate_after_s: float | None = None


class RefusalBurstRule(EventRule):
    count: int = Field(20, ge=1, description="risk refusals within window_s that make a burst")
    window_s: float = Field(60.0, gt=0)


class LossStreakRule(EventRule):
    trades: int = Field(5, ge=2, description="consecutive losing round trips")
    quiet_s: float = Field(3600.0, gt=0)


class EquityDropRule(RuleBase):
    fraction: float = Field(0.02, gt=0, lt=1, description="equity down this fraction from its UTC-day high")


class OrderRejectedRule(EventRule):
    pass


class PositionMismatchRule(RuleBase):
    severity: Severity = "critical"
    tolerance: float = Field(1e-9, ge=0, description="absolute quantity difference tolerated")


class FeedGapRule(EventRule):
    pass


class StaleFeedRule(RuleBase):
    lag_ms: float = Field(5000.0, gt=0, description="the last market event older than this")
    escalate_after_s: float | None = 300.0


class ReconnectStormRule(EventRule):
    count: int = Field(3, ge=1, description="reconnects within window_s")
    window_s: float = Field(300.0, gt=0)


class RateLimitedRule(EventRule):
    severity: Severity = "critical"


class EngineDownRule(RuleBase):
    severity: Severity = "critical"
    silence_s: float = Field(5.0, gt=0, description="no heartbeat for this long (and at least 3 intervals)")
    max_age_s: float = Field(
        86400.0, gt=0, description="a run silent for longer than this when the alerter starts is not reported"
    )
    escalate_after_s: float | None = 600.0


class LatencyRule(RuleBase):
    p99_us: float = Field(50_000.0, gt=0, description="tick-to-order p99 above this, in microseconds")
    window: int = Field(200, ge=10, description="the last samples the p99 is taken over")
    min_samples: int = Field(50, ge=1)


class CalibrationRule(RuleBase):
    ece: float = Field(
        0.15, gt=0, description="expected calibration error of the last window outcomes above this"
    )
    brier: float | None = Field(
        None, gt=0, description="rolling multi-class Brier score above this (null: not checked)"
    )
    window: int = Field(500, ge=20)
    min_samples: int = Field(200, ge=10)


class FeatureDriftRule(RuleBase):
    psi: float = Field(0.25, gt=0, description="population stability index of a model input above this")
    every_s: float = Field(300.0, gt=0, description="how often the journaled model inputs are compared")
    window_s: float = Field(3600.0, gt=0, description="the recent inputs compared: the last window_s")
    reference: int = Field(300, ge=50, description="a model version's first journaled inputs: the reference")


class ModelChangeRule(EventRule):
    severity: Severity = "info"
    escalate_after_s: float | None = None
    quiet_s: float = Field(60.0, gt=0)


class RulesConfig(_Frozen):
    drawdown_breaker: DrawdownBreakerRule = DrawdownBreakerRule()
    kill_switch: KillSwitchRule = KillSwitchRule()
    refusal_burst: RefusalBurstRule = RefusalBurstRule()
    loss_streak: LossStreakRule = LossStreakRule()
    equity_drop: EquityDropRule = EquityDropRule()
    order_rejected: OrderRejectedRule = OrderRejectedRule()
    position_mismatch: PositionMismatchRule = PositionMismatchRule()
    feed_gap: FeedGapRule = FeedGapRule()
    stale_feed: StaleFeedRule = StaleFeedRule()
    reconnect_storm: ReconnectStormRule = ReconnectStormRule()
    rate_limited: RateLimitedRule = RateLimitedRule()
    engine_down: EngineDownRule = EngineDownRule()
    latency: LatencyRule = LatencyRule()
    calibration: CalibrationRule = CalibrationRule()
    feature_drift: FeatureDriftRule = FeatureDriftRule()
    model_change: ModelChangeRule = ModelChangeRule()


# -- anomalies -------------------------------------------------------------------------------------
class MetricConfig(BaseModel):
    """One metric's detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="score this metric")
    z: float = Field(gt=0, description="|robust z| beyond which a sample is abnormal")
    min_mad: float = Field(gt=0, description="floor of the MAD, in the metric's unit")
    min_mad_rel: float = Field(0.0, ge=0, description="floor of the MAD as a fraction of |median|")
    warmup: int = Field(ge=1, description="samples in the baseline before any alarm")
    window: int = Field(ge=3, le=100_000, description="samples in the rolling baseline")
    confirm: int = Field(1, ge=1, description="consecutive abnormal samples to open an incident")
    confirm_s: float = Field(0.0, ge=0, description="... spanning at least this many seconds of event time")
    clear: int = Field(3, ge=1, description="consecutive normal samples to clear it")
    direction: Literal["high", "low", "both"] = Field("high", description="which tail alarms")
    severity: Literal["info", "warning", "critical"] = "warning"

    @model_validator(mode="after")
    def _warmup_fits(self) -> MetricConfig:
        if self.warmup > self.window:
            raise ValueError(f"warmup {self.warmup} > window {self.window}: the detector would never arm")
        return self


@dataclass(frozen=True)
class _Spec:
    unit: str
    defaults: MetricConfig


def _m(unit: str, **kw: Any) -> _Spec:
    return _Spec(unit, MetricConfig(**kw))


# Defaults tuned on real recordings replayed as telemetry (tests/integration/test_anomaly_recording.py
# prints the figures): 49 minutes of Binance BTCUSDT/ETHUSDT (USD-M and spot) and 24 hours of NEXOUSDT.
# - spread: one tick is 0.016 bps on BTCUSDT and 8 bps on NEXOUSDT, so the floor is half the median
#   (a spread of 7+ ticks alarms from a one-tick median; x10 scores 12); confirm_s because sub-second
#   blowouts are routine in fast markets (BTCUSDT USD-M 2024-08-08: 150 ticks for 0.46 s);
# - slippage, fill_distance: a liquid pair's median is the half spread with a MAD of ~0, the floors
#   put the alarm near 3 and 12 bps (real fills reached 2.2 and 7.9 bps there);
# - trade_pnl: round trips are heavy-tailed and zero-inflated (24 of 58 ETHUSDT trips lost exactly one
#   tick), so a higher z and 50 trips of warm-up; min_mad is in quote currency: scale it to the account;
# - market_trade_rate: bursts of 80-300 trades in a minute against a median of 5 happen several times a
#   day on an illiquid pair (0.29 alarms per hour there at z 10): info only.
METRICS: dict[str, _Spec] = {
    "spread": _m(
        "bps",
        z=8.0,
        min_mad=0.005,
        min_mad_rel=0.5,
        warmup=300,
        window=3000,
        confirm=3,
        confirm_s=1.0,
        clear=20,
    ),
    "feed_lag": _m("ms", z=8.0, min_mad=25.0, warmup=60, window=600, confirm=2, clear=5),
    "slippage": _m("bps", z=8.0, min_mad=0.25, warmup=30, window=500, clear=5),
    "fill_distance": _m("bps", z=8.0, min_mad=1.0, warmup=30, window=500, clear=5, severity="critical"),
    "trade_pnl": _m("quote", z=10.0, min_mad=0.05, warmup=50, window=300, clear=3, direction="both"),
    "trade_rate": _m("per min", z=8.0, min_mad=1.0, warmup=30, window=240, clear=3, severity="critical"),
    "market_trade_rate": _m(
        "per min", z=10.0, min_mad=5.0, min_mad_rel=0.25, warmup=30, window=240, clear=3, severity="info"
    ),
    "flip_flop": _m("per min", z=8.0, min_mad=0.5, warmup=30, window=240, clear=3),
}


class AnomalyConfig(BaseModel):
    """The ``anomaly:`` section of ``config/alerts.yaml``: a metric given as a mapping overrides only
    the keys it names, on that metric's defaults; a metric not given keeps its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="run the anomaly detector")
    metrics: dict[str, MetricConfig] = Field(
        default_factory=lambda: {k: s.defaults for k, s in METRICS.items()},
        description=f"per metric: {', '.join(METRICS)}",
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or data.get("metrics") is None:
            return data
        given = data["metrics"]
        if not isinstance(given, Mapping):
            raise ValueError(f"metrics must be a mapping of metric names, not {type(given).__name__}")
        unknown = sorted(str(k) for k in given if k not in METRICS)
        if unknown:
            raise ValueError(
                f"unknown anomaly metric{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(METRICS)})"
            )
        merged: dict[str, Any] = {k: s.defaults for k, s in METRICS.items()}
        for name, v in given.items():
            merged[name] = {**METRICS[name].defaults.model_dump(), **v} if isinstance(v, Mapping) else v
        return {**data, "metrics": merged}


# -- Telegram commands and reports -----------------------------------------------------------------
class TelegramConfig(_Frozen):
    enabled: bool = False
    token: str = Field("${TELEGRAM_BOT_TOKEN}", description="the bot token (a ${NAME} secret)")
    chat_ids: tuple[int, ...] = Field((), description="the only chats whose commands are answered")
    confirm_s: float = Field(60.0, gt=0, description="time to confirm a /kill with its code")
    long_poll_s: float = Field(25.0, gt=0, le=50)


class ReportsConfig(_Frozen):
    periods: tuple[Literal["daily", "weekly", "monthly"], ...] = ("daily", "weekly", "monthly")
    channels: tuple[str, ...] = Field((), description="where reports go (empty: the info route)")
    out: str | None = Field(
        None, description="where report files are written (default: <user data dir>/reports)"
    )
    pdf: bool = True
    run: int | None = Field(None, description="report one run only (null: every run in the journal)")


class AlertsConfig(_Frozen):
    dashboard_url: str = Field("http://127.0.0.1:8080", description="links in messages point here")
    poll_s: float = Field(0.25, gt=0, le=5, description="how often telemetry is read")
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    routing: RoutingConfig = RoutingConfig()
    retry: RetryConfig = RetryConfig()
    endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="service base URLs for apprise and the Telegram poller (telegram, twilio): a "
        "self-hosted Bot API server, or loopback test servers",
    )
    rules: RulesConfig = RulesConfig()
    anomaly: AnomalyConfig = AnomalyConfig()
    telegram: TelegramConfig = TelegramConfig()
    reports: ReportsConfig = ReportsConfig()

    @model_validator(mode="after")
    def _routes_name_channels(self) -> AlertsConfig:
        for sev in SEVERITIES:
            for ch in self.routing.channels(sev):
                if ch not in self.channels:
                    raise ValueError(f"routing.{sev} names channel {ch!r}, which is not under channels")
        for ch in self.reports.channels:
            if ch not in self.channels:
                raise ValueError(f"reports.channels names channel {ch!r}, which is not under channels")
        return self


# -- secrets ---------------------------------------------------------------------------------------
def _secrets_table(environ: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    name = environ.get(SECRETS_FILE_ENV)
    if not name:
        return {}, None
    path = check_owner_only(Path(name).expanduser())
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SecretsError(f"secrets file {path}: not valid TOML ({type(e).__name__})") from None
    table = data.get("alerts", {})
    if not isinstance(table, dict):
        raise SecretsError(f"secrets file {path}: [alerts] is not a table")
    return {str(k).lower(): str(v) for k, v in table.items()}, str(path)


def resolve_secret_text(text: str, what: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with each ``${NAME}`` replaced by its secret (environment, then the secrets file's
    ``[alerts]`` table); :class:`SecretsError` names ``what`` and the missing secret."""
    env = os.environ if environ is None else environ
    names = _SECRET.findall(text)
    if not names:
        return text
    table, path = _secrets_table(env)
    values: dict[str, str] = {}
    for n in names:
        v = env.get(n) or table.get(n.lower())
        if not v:
            where = f" or key {n.lower()!r} in [alerts] of {path}" if path else f" (or ${SECRETS_FILE_ENV})"
            raise SecretsError(f"{what}: secret ${{{n}}} is not set: set environment variable {n}{where}")
        values[n] = v
        register_secret(v)
    return _SECRET.sub(lambda m: values[m.group(1)], text)


def resolve_channels(cfg: AlertsConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every channel's URL with its secrets filled in (and registered for redaction)."""
    return {
        name: resolve_secret_text(ch.url, f"channel {name!r}", environ) for name, ch in cfg.channels.items()
    }
